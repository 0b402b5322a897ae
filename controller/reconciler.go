package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
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

	// tenantConfig is the configuration of the tenant NetworkPolicy check
	// (tenantpolicies.go), tenantReports what it found.
	tenantConfig  validation.Config
	tenantReports tenantReports
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
	tenantConfig := validation.Config{
		ProtectedNamespaces:   opts.Policy.ProtectedNamespaces,
		TenantNetworkPolicies: opts.TenantNetworkPolicies,
		Isolation:             IsolationBaseline(opts.Policy),
	}
	return &Reconciler{
		client:       c,
		apiReader:    reader,
		traffic:      c,
		cfg:          opts.Policy,
		recorder:     mgr.GetEventRecorder(EventSource),
		gauges:       newGauges(),
		tenantConfig: tenantConfig,
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
	if err != nil || ns == nil {
		return reconcile.Result{}, err
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
	r.reportConflicts(ns, c)
	r.gauges.set(name, namespaceState{isolated: v1alpha1.Isolated(ns), policies: c.managed(failed)})
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
	r.tenantReports.set(name, "", 0)
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
// allowlists and Services from the cache, and server-side applies the ones
// that are missing or differ, as field manager "moat". When ns carries a
// resourceVersion (that of the stored namespace the request changes), every
// policy it needs is also marked with AdmissionVersionAnnotation, so that a
// reconcile that still sees the namespace without the label neither deletes
// them (see holdAdmissionWrites) nor succeeds with a delete it decided on
// before (deletes carry the policy's resourceVersion as a precondition).
// It deletes nothing and never touches a NetworkPolicy that moat does not
// manage; the controller converges the rest. A namespace that is not
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
// nothing to write. The mutating webhook prepares while its forgery guard
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
	toApply := c.plan.apply
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
	if len(toApply) == 0 {
		return nil, nil
	}
	return func(ctx context.Context) error {
		var errs []error
		for _, err := range r.applyAll(ctx, ns, toApply, c.live) {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}, nil
}

// convergence is what converging one namespace starts from: its
// allowlists, what policy.Render makes of them, the live policies and the
// writes that would make them agree.
type convergence struct {
	allowlists []*v1alpha1.NetworkAllowlist
	rendered   policy.Result
	live       map[string]*networkingv1.NetworkPolicy
	plan       changes
}

// converge reads the allowlists of ns, renders its policies with ns as
// given (during admission: as it is about to be stored) and plans the writes
// against the live policies. The reconciler and admission (ApplyNamespace)
// both start here, so they write identical policies.
func (r *Reconciler) converge(ctx context.Context, ns *corev1.Namespace) (*convergence, error) {
	cluster := lookup.New(r.client).Session(ctx)
	allowlists, err := cluster.Allowlists(ns.Name)
	if err != nil {
		return nil, err
	}
	in := policy.Input{Namespace: ns, Allowlists: allowlists}
	if err := r.clusterFacts(ctx, &in); err != nil {
		return nil, err
	}
	rendered, err := policy.Render(in, cluster, r.cfg)
	if err != nil {
		return nil, fmt.Errorf("rendering the policies of namespace %s: %w", ns.Name, err)
	}
	live, err := r.livePolicies(ctx, ns.Name)
	if err != nil {
		return nil, err
	}
	p, err := r.plan(ctx, rendered.Policies, live)
	if err != nil {
		return nil, err
	}
	if len(p.apply)+len(p.delete)+len(p.conflicts) > 0 {
		logf.FromContext(ctx).V(1).Info("converging", "namespace", ns.Name, "isolated", v1alpha1.Isolated(ns),
			"apply", names(p.apply), "delete", len(p.delete), "conflicts", p.conflicts)
	}
	return &convergence{allowlists: allowlists, rendered: rendered, live: live, plan: p}, nil
}

// managed counts the rendered policies that moat holds: neither taken by a
// user policy nor missing after a failed write.
func (c *convergence) managed(failed map[string]error) int {
	n := 0
	for _, np := range c.rendered.Policies {
		if !slices.Contains(c.plan.conflicts, np.Name) && (failed[np.Name] == nil || c.live[np.Name] != nil) {
			n++
		}
	}
	return n
}

// maxParallelApplies bounds the server-side applies of one namespace that
// are in flight at once (a namespace needs two or three policies; more come
// with many allowlists).
const maxParallelApplies = 4

// applyAll server-side applies the policies, at most maxParallelApplies at a
// time, records IsolationEnabled (at most one Event) when it creates the
// default ingress policy of a stored namespace, and returns the failed
// writes by policy name.
func (r *Reconciler) applyAll(ctx context.Context, ns *corev1.Namespace, nps []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) map[string]error {
	errs := make([]error, len(nps))
	if len(nps) == 1 {
		errs[0] = r.apply(ctx, &nps[0])
	} else {
		var wg sync.WaitGroup
		slots := make(chan struct{}, maxParallelApplies)
		for i := range nps {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				errs[i] = r.apply(ctx, &nps[i])
			})
		}
		wg.Wait()
	}
	failed := map[string]error{}
	for i, np := range nps {
		if errs[i] != nil {
			failed[np.Name] = errs[i]
			continue
		}
		if np.Name == policy.DefaultIngressPolicyName && live[np.Name] == nil && ns.UID != "" {
			r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, EventIsolationEnabled, "ApplyPolicy",
				"isolation is on: created NetworkPolicy %s, ingress from other namespaces is now denied", policy.DefaultIngressPolicyName)
		}
	}
	return failed
}

// deleteAll deletes the policies and, when that removes the default ingress
// policy of a namespace that is not isolated, records IsolationDisabled.
func (r *Reconciler) deleteAll(ctx context.Context, ns *corev1.Namespace, nps []*networkingv1.NetworkPolicy) error {
	var errs []error
	deletedDefault := false
	for _, np := range nps {
		if err := r.delete(ctx, np); err != nil {
			errs = append(errs, err)
			continue
		}
		deletedDefault = deletedDefault || np.Name == policy.DefaultIngressPolicyName
	}
	if deletedDefault && !v1alpha1.Isolated(ns) {
		r.recorder.Eventf(ns, nil, corev1.EventTypeNormal, EventIsolationDisabled, "DeletePolicies",
			"isolation is off: deleted every NetworkPolicy moat managed in namespace %s; NetworkPolicies written by users are kept", ns.Name)
	}
	return errors.Join(errs...)
}

// reportConflicts records a Warning Event on the namespace for each default
// policy whose name a user policy holds; allowlists report their own
// conflicts in their status.
func (r *Reconciler) reportConflicts(ns *corev1.Namespace, c *convergence) {
	for _, conflict := range c.plan.conflicts {
		if !isAllowlistPolicy(c.rendered, conflict) {
			r.recorder.Eventf(ns, nil, corev1.EventTypeWarning, v1alpha1.ReasonPolicyConflict, "ApplyPolicy", "%s", conflictProblem(conflict).Message)
		}
	}
}

// livePolicies returns every NetworkPolicy of the namespace in the cache by
// name.
func (r *Reconciler) livePolicies(ctx context.Context, namespace string) (map[string]*networkingv1.NetworkPolicy, error) {
	return listPolicies(ctx, r.client, namespace)
}

// listPolicies returns every NetworkPolicy of the namespace that reader
// holds, by name.
func listPolicies(ctx context.Context, reader client.Reader, namespace string) (map[string]*networkingv1.NetworkPolicy, error) {
	list := &networkingv1.NetworkPolicyList{}
	if err := reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NetworkPolicies in namespace %s: %w", namespace, err)
	}
	out := make(map[string]*networkingv1.NetworkPolicy, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// changes is what a reconcile must write.
type changes struct {
	// apply holds the desired policies that are missing or out of date.
	apply []networkingv1.NetworkPolicy
	// delete holds the managed policies that are no longer desired.
	delete []*networkingv1.NetworkPolicy
	// conflicts names desired policies whose name a policy without moat's
	// label already has; moat leaves those alone.
	conflicts []string
}

// plan compares the desired policies with the live ones of the namespace
// (from the cache, which may hold only the policies moat manages). Each
// desired policy missing from the cache is read from the API server, all of
// them at once, before anything is written: a user's policy of the same name
// is a conflict and is left alone, and a managed one the cache has not seen
// yet is written only if it differs. They are read with a GET each rather
// than one List of the namespace: the API server reads a GET from etcd at
// once, while it serves a consistent List from its watch cache only after
// that cache has caught up with etcd, which on a quiet cluster takes tens of
// milliseconds and sits in the labelling request's latency.
func (r *Reconciler) plan(ctx context.Context, desired []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) (changes, error) {
	c := diff(desired, live)
	var missing []int
	for i, np := range c.apply {
		if live[np.Name] == nil {
			missing = append(missing, i)
		}
	}
	stored := make([]*networkingv1.NetworkPolicy, len(c.apply))
	errs := make([]error, len(c.apply))
	var wg sync.WaitGroup
	for _, i := range missing {
		wg.Go(func() {
			np := &networkingv1.NetworkPolicy{}
			err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: c.apply[i].Namespace, Name: c.apply[i].Name}, np)
			switch {
			case err == nil:
				stored[i] = np
			case !apierrors.IsNotFound(err):
				errs[i] = fmt.Errorf("reading NetworkPolicy %s/%s: %w", c.apply[i].Namespace, c.apply[i].Name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return changes{}, err
	}
	apply := c.apply[:0:0]
	for i, np := range c.apply {
		current := stored[i]
		switch {
		case live[np.Name] != nil || current == nil:
			apply = append(apply, np)
		case !policy.IsManaged(current):
			c.conflicts = append(c.conflicts, np.Name)
		case !upToDate(&np, current):
			apply = append(apply, np)
		}
	}
	c.apply = apply
	slices.Sort(c.conflicts)
	return c, nil
}

// diff compares the desired policies with the live ones of the namespace.
func diff(desired []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) changes {
	var c changes
	wanted := make(map[string]bool, len(desired))
	for _, np := range desired {
		wanted[np.Name] = true
		current := live[np.Name]
		switch {
		case current == nil:
			c.apply = append(c.apply, np)
		case !policy.IsManaged(current):
			c.conflicts = append(c.conflicts, np.Name)
		case !upToDate(&np, current):
			c.apply = append(c.apply, np)
		}
	}
	names := make([]string, 0, len(live))
	for name := range live {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if np := live[name]; !wanted[name] && policy.IsManaged(np) && np.DeletionTimestamp == nil {
			c.delete = append(c.delete, np)
		}
	}
	return c
}

func (r *Reconciler) apply(ctx context.Context, np *networkingv1.NetworkPolicy) error {
	ac, err := applyConfiguration(np)
	if err != nil {
		return err
	}
	if err := r.client.Apply(ctx, ac, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	return nil
}

// delete removes a managed policy, only if it is still the object we saw.
func (r *Reconciler) delete(ctx context.Context, np *networkingv1.NetworkPolicy) error {
	err := r.client.Delete(ctx, np, client.Preconditions{UID: &np.UID, ResourceVersion: &np.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	return nil
}

// isAllowlistPolicy reports whether name is generated from an allowlist
// (rather than being a default policy of the namespace).
func isAllowlistPolicy(rendered policy.Result, name string) bool {
	for _, ar := range rendered.Allowlists {
		if slices.Contains(ar.Policies, name) {
			return true
		}
	}
	return false
}

// superseded reports whether the cache already holds a newer version of al,
// or knows it is deleted or being deleted. A status write at al's version
// would then fail (409 or 404) and only load the API server: the watch event
// that changed the cache has queued this namespace again, and that
// reconcile writes the status of the version it sees.
func (r *Reconciler) superseded(ctx context.Context, al *v1alpha1.NetworkAllowlist) bool {
	current := &v1alpha1.NetworkAllowlist{}
	err := r.client.Get(ctx, client.ObjectKeyFromObject(al), current, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		return true
	case err != nil:
		return false
	}
	return current.ResourceVersion != al.ResourceVersion || current.DeletionTimestamp != nil
}

// updateStatus writes the allowlist's status when it differs from what it
// must say, and records an Event when its Ready reason changes to a problem
// the user should see.
func (r *Reconciler) updateStatus(ctx context.Context, al *v1alpha1.NetworkAllowlist, ar policy.AllowlistResult, conflicts []string, failed map[string]error) error {
	var inForce []string
	problems := slices.Clone(ar.Problems)
	for _, name := range ar.Policies {
		switch {
		case slices.Contains(conflicts, name):
			problems = append(problems, conflictProblem(name))
		case failed[name] != nil:
			problems = append(problems, applyFailedProblem(name, failed[name]))
		default:
			inForce = append(inForce, name)
		}
	}
	status := desiredStatus(al, inForce, problems)
	if equality.Semantic.DeepEqual(status, al.Status) {
		return nil
	}
	if r.superseded(ctx, al) {
		return nil
	}
	before := readyReason(al.Status)
	updated := al.DeepCopy()
	updated.Status = status
	if err := r.client.Status().Patch(ctx, updated, client.MergeFromWithOptions(al, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("updating the status of NetworkAllowlist %s/%s: %w", al.Namespace, al.Name, err)
	}
	after := readyReason(status)
	if after == before {
		return nil
	}
	switch after {
	case v1alpha1.ReasonApplied:
		// Coming from IsolationDisabled, the namespace's IsolationEnabled
		// Event already tells the story: one Event per namespace.
		if before != "" && before != v1alpha1.ReasonIsolationDisabled {
			r.recorder.Eventf(al, nil, corev1.EventTypeNormal, after, "UpdateStatus", "every rule is in force again")
		}
	case v1alpha1.ReasonIsolationDisabled:
		// The namespace's IsolationDisabled Event already tells the story.
	default:
		for _, pr := range problems {
			if pr.Reason == after {
				r.recorder.Eventf(al, nil, corev1.EventTypeWarning, after, "UpdateStatus", "%s", describe(pr))
				break
			}
		}
	}
	return nil
}

func describe(p policy.Problem) string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
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
