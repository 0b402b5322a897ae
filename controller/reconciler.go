package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// Reasons of the Events moat records. Allowlist events reuse the
// v1alpha1.Reason* constants of the Ready condition.
const (
	// EventIsolationEnabled: moat created a namespace's default isolation policy.
	EventIsolationEnabled = "IsolationEnabled"
	// EventIsolationDisabled: moat deleted a namespace's managed policies because isolation is off.
	EventIsolationDisabled = "IsolationDisabled"
)

// conflictRetry is how soon a namespace is reconciled again after a write
// lost an optimistic-concurrency race.
const conflictRetry = 100 * time.Millisecond

// conflictRecheck is how often a namespace whose generated policy names are
// taken by user policies is checked again.
const conflictRecheck = 10 * time.Second

// Reconciler converges one namespace at a time: it renders the namespace's
// NetworkPolicies with policy.Render, server-side applies the ones that
// differ from the live managed policies, deletes managed policies that are no
// longer wanted and reports on every NetworkAllowlist. It never writes a
// NetworkPolicy that lacks moat's managed-by label, and it makes no write at
// all when the namespace is converged.
//
// Reconciler also implements the mutating webhook's Converger
// (ApplyNamespace), so admission and the controller write identical policies.
type Reconciler struct {
	client    client.Client
	apiReader client.Reader
	// traffic reads Nodes and the API server's EndpointSlices (see
	// newTrafficCache); the client when SetupWithManager did not set it.
	traffic  client.Reader
	cfg      policy.Config
	recorder events.EventRecorder
	gauges   *gauges

	// tenantConfig is the whole configuration (cfg is its Policy), for the
	// tenant NetworkPolicy check (tenantpolicies.go); tenantReports what it
	// found.
	tenantConfig  validation.Config
	tenantReports tenantReports
	// tenantPolicies reads the NetworkPolicies that moat does not manage
	// (newTenantPolicyCache); nil: the API reader.
	tenantPolicies client.Reader
	// later holds a slot per running background write (applyLater); nil:
	// none is started.
	later chan struct{}
}

// NewReconciler returns a Reconciler that reads through the manager's cache
// (or opts.Client) and records Events as EventSource. It does not register
// any controller; SetupWithManager does.
func NewReconciler(mgr ctrl.Manager, opts Options) *Reconciler {
	c := opts.Client
	if c == nil {
		c = mgr.GetClient()
	}
	reader := opts.APIReader
	if reader == nil {
		reader = mgr.GetAPIReader()
	}
	return &Reconciler{
		client:       c,
		apiReader:    reader,
		traffic:      c,
		cfg:          opts.Config.Policy,
		recorder:     mgr.GetEventRecorder(EventSource),
		gauges:       newGauges(),
		tenantConfig: opts.Config,
		later:        make(chan struct{}, maxLaterApplies),
	}
}

// Reconcile converges the namespace named by req.Name.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	result, err := r.reconcile(ctx, req.Name)
	if err != nil {
		if apierrors.IsConflict(err) {
			// Someone changed an object between our read and our write;
			// the watch event that follows brings the new version.
			logf.FromContext(ctx).V(1).Info("conflict while writing, retrying", "error", err.Error())
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		reconcileErrors.Inc()
	}
	return result, err
}

// reconcile converges one namespace: read it, plan, hold back deletes of
// policies that a labelling request still being admitted wrote, write,
// report, and say when to look again.
func (r *Reconciler) reconcile(ctx context.Context, name string) (reconcile.Result, error) {
	ns, err := r.namespace(ctx, name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ns == nil {
		// Cluster-scoped, the admin-tier objects of a namespace outlive
		// it unless they are deleted.
		for _, err := range r.convergeAdminTier(ctx, name, policy.Model{Namespace: name}) {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	c, err := r.converge(ctx, ns)
	if err != nil {
		return reconcile.Result{}, err
	}
	var admissionRecheck time.Duration
	if !v1alpha1.Isolated(ns) {
		c.plan.delete, admissionRecheck = holdAdmissionWrites(ns, c.plan.delete, time.Now())
	}
	failed := r.applyAll(ctx, ns, c.plan.apply, c.live)
	errs := []error{r.deleteAll(ctx, ns, c.plan.delete)}
	// The admin tier after the NetworkPolicies: the namespace is closed by
	// its deny NetworkPolicy before anything else is written.
	maps.Copy(failed, r.convergeAdminTier(ctx, name, c.model))
	r.reportConflicts(ns, c)
	isolated := v1alpha1.Isolated(ns)
	r.reportIncomplete(ns, isolated, failed)
	r.gauges.set(name, namespaceState{isolated: isolated, policies: c.managed(failed), incomplete: isolated && len(failed) > 0})
	for _, al := range c.allowlists {
		errs = append(errs, r.updateStatus(ctx, al, c.rendered.Allowlists[al.Name], c.plan.conflicts, failed))
	}
	for _, err := range failed {
		errs = append(errs, err)
	}
	if err := r.reportTenantPolicies(ctx, ns, c.allowlists); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeueAfter(admissionRecheck, len(c.plan.conflicts) > 0)}, nil
}

// namespace reads the namespace to reconcile; nil (and the namespace's
// gauges cleared) when it is gone or going: the namespace controller then
// deletes every policy and allowlist in it.
func (r *Reconciler) namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := r.client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(name)
			return nil, nil
		}
		return nil, fmt.Errorf("reading Namespace %s: %w", name, err)
	}
	if ns.DeletionTimestamp != nil {
		r.forget(name)
		return nil, nil
	}
	return ns, nil
}

// forget clears what the gauges and the tenant reports hold for a namespace
// that is gone or going.
func (r *Reconciler) forget(name string) {
	r.gauges.set(name, namespaceState{})
	r.tenantReports.set(name, nil)
}

// requeueAfter says when to look at a namespace again without an event:
// when the grace period of a policy written during admission ends
// (admissionRecheck; zero for none) and, while user policies hold names that
// moat generates (conflicts), at least every conflictRecheck, since the cache
// may hold only managed policies and their removal may bring no event.
func requeueAfter(admissionRecheck time.Duration, conflicts bool) time.Duration {
	if conflicts && (admissionRecheck == 0 || admissionRecheck > conflictRecheck) {
		return conflictRecheck
	}
	return admissionRecheck
}

// ApplyNamespace renders the policies of ns as given (during admission, its
// labels are the ones being admitted, not yet stored) with the namespace's
// allowlists and Services from the cache, and server-side applies its deny
// policies (policy.IsDenyPolicy) that are missing or differ, as field
// manager "moat": the namespace is closed when the request returns. The
// policies that extend the deny are then written in the background
// (applyLater), and by the controller once the label is stored. When ns carries a
// resourceVersion (that of the stored namespace the request changes), every
// policy it needs is also marked with AdmissionVersionAnnotation, so that a
// reconcile that still sees the namespace without the label neither deletes
// them (see holdAdmissionWrites) nor succeeds with a delete it decided on
// before (deletes carry the policy's resourceVersion as a precondition).
// It deletes nothing and never touches a NetworkPolicy that moat does not
// manage (when such a policy holds the name of one the namespace needs, it
// returns a *policy.NamesTakenError after writing the others); the
// controller converges the rest. A namespace that is not
// isolated, or is protected (policy.Protected), needs nothing and returns
// nil. For a namespace that does not exist yet the apply fails with a NotFound error: the controller then
// writes the policies as soon as the namespace is stored.
func (r *Reconciler) ApplyNamespace(ctx context.Context, ns *corev1.Namespace) error {
	write, err := r.PrepareNamespace(ctx, ns)
	if err != nil || write == nil {
		return err
	}
	return write(ctx)
}

// PrepareNamespace does the reads of ApplyNamespace (the cache, and the
// namespace's NetworkPolicies from the API server when the cache lacks one
// it needs) and returns its writes without making them: write(ctx) then
// applies exactly what ApplyNamespace would. write is nil when there is
// nothing to write and nothing to report. When policies moat does not manage
// hold names of policies the namespace needs, write applies the others and
// returns a *policy.NamesTakenError naming them (joined with any failed
// write), so that the labelling request can say so. The mutating webhook prepares while its forgery guard
// reads the stored namespace, and writes only if the guard admits the
// request.
func (r *Reconciler) PrepareNamespace(ctx context.Context, ns *corev1.Namespace) (write func(context.Context) error, err error) {
	if !v1alpha1.Isolated(ns) || policy.Protected(ns, r.cfg) {
		return nil, nil
	}
	c, err := r.converge(ctx, ns)
	if err != nil {
		return nil, err
	}
	// The deny policies are written inside the request, on their own and
	// first: the namespace is closed when the request returns. What
	// extends the deny (the group, the nodes, allowlists) is written right
	// after, in the background (applyLater), and by the controller once
	// the label is stored.
	isDeny := func(np networkingv1.NetworkPolicy) bool { return policy.IsDenyPolicy(np.Name) }
	toApply := slices.Clone(c.plan.apply)
	if ns.ResourceVersion != "" {
		// Policies left from an earlier isolation that the controller has
		// not deleted yet are marked too, so that it keeps them
		// (admission.go).
		for _, np := range c.rendered.Policies {
			cur := c.live[np.Name]
			if cur != nil && policy.IsManaged(cur) && cur.Annotations[AdmissionVersionAnnotation] != ns.ResourceVersion &&
				!slices.ContainsFunc(toApply, func(a networkingv1.NetworkPolicy) bool { return a.Name == np.Name }) {
				toApply = append(toApply, np)
			}
		}
		for i := range toApply {
			metav1.SetMetaDataAnnotation(&toApply[i].ObjectMeta, AdmissionVersionAnnotation, ns.ResourceVersion)
		}
	}
	extensions := slices.DeleteFunc(slices.Clone(toApply), isDeny)
	toApply = slices.DeleteFunc(toApply, func(np networkingv1.NetworkPolicy) bool { return !isDeny(np) })
	var taken error
	if len(c.plan.conflicts) > 0 {
		taken = &policy.NamesTakenError{Namespace: ns.Name, Names: slices.Clone(c.plan.conflicts)}
	}
	if len(toApply) == 0 && len(extensions) == 0 {
		if taken != nil {
			return func(context.Context) error { return taken }, nil
		}
		return nil, nil
	}
	return func(ctx context.Context) error {
		var errs []error
		for _, err := range r.applyAll(ctx, ns, toApply, c.live) {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			r.applyLater(ns, extensions, c.live)
		}
		return errors.Join(append(errs, taken)...)
	}, nil
}

// maxLaterApplies bounds the extension writes that admission leaves running
// (applyLater): a burst of label requests cannot start more; past it the
// controller writes them once the labels are stored.
const maxLaterApplies = 32

// laterApplyTimeout bounds one background write of extensions.
const laterApplyTimeout = 10 * time.Second

// applyLater writes the extension policies of a namespace whose deny an
// admission request has just written, without holding up that request. It
// writes nothing when maxLaterApplies such writes are running already; a
// failure is logged, and the controller converges either way.
func (r *Reconciler) applyLater(ns *corev1.Namespace, nps []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) {
	if len(nps) == 0 {
		return
	}
	select {
	case r.later <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.later }()
		ctx, cancel := context.WithTimeout(context.Background(), laterApplyTimeout)
		defer cancel()
		for name, err := range r.applyAll(ctx, ns, nps, live) {
			logf.FromContext(ctx).Info("writing an extension policy after admission failed; the controller will converge", "namespace", ns.Name, "networkPolicy", name, "error", err.Error())
		}
	}()
}

// namespaceRequest is the reconcile request for a namespace.
func namespaceRequest(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
}

func names(nps []networkingv1.NetworkPolicy) []string {
	out := make([]string, 0, len(nps))
	for _, np := range nps {
		out = append(out, np.Name)
	}
	return out
}
