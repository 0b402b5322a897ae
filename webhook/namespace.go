package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// NamespaceValidator admits a Namespace only when its moat.dev/isolated
// label is absent, "true" or "false", refuses to isolate a protected
// namespace, and lets the project label be set, changed or removed only by
// those ProjectLabel trusts.
type NamespaceValidator struct {
	// Config holds the protected namespaces.
	Config validation.Config
	// ProjectLabel guards the project label; its zero value guards nothing.
	ProjectLabel ProjectLabelGuard
}

var _ admission.Validator[*corev1.Namespace] = &NamespaceValidator{}

// ValidateCreate checks the isolation label of a new Namespace.
func (v *NamespaceValidator) ValidateCreate(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	errs := append(v.validate(ns), v.ProjectLabel.check(ctx, ns, nil)...)
	return nil, invalid(corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind(), ns.Name, errs)
}

// ValidateUpdate checks moat's labels (isolation, group ingress) when an
// update changes one of them. A value stored before moat was installed does
// not block unrelated updates.
func (v *NamespaceValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *corev1.Namespace) (admission.Warnings, error) {
	errs := v.ProjectLabel.check(ctx, newObj, oldObj)
	errs = append(errs, changedLabelErrors(v.validate(newObj), oldObj, newObj, v1alpha1.IsolationLabel, v1alpha1.GroupIngressLabel)...)
	return nil, invalid(corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind(), newObj.Name, errs)
}

// changedLabelErrors keeps the errors at the labels among keys that the
// update sets, changes or removes (ratcheting: a value stored before moat
// does not block an update that leaves it alone).
func changedLabelErrors(errs field.ErrorList, oldObj, newObj *corev1.Namespace, keys ...string) field.ErrorList {
	var out field.ErrorList
	for _, key := range keys {
		// ProjectLabelChanged compares any label key.
		if !validation.ProjectLabelChanged(newObj, oldObj, key) {
			continue
		}
		path := field.NewPath("metadata", "labels").Key(key).String()
		for _, e := range errs {
			if e.Field == path {
				out = append(out, e)
			}
		}
	}
	return out
}

// validate checks the values of moat's labels and that it does not isolate a
// protected namespace.
func (v *NamespaceValidator) validate(ns *corev1.Namespace) field.ErrorList {
	return append(validation.ValidateNamespace(ns), validation.ValidateNamespaceProtection(ns, v.Config)...)
}

// ValidateDelete admits every deletion.
func (v *NamespaceValidator) ValidateDelete(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

// NamespaceMutator makes isolation take effect within the request that
// turns it on: when an existing Namespace is updated to moat.dev/isolated:
// "true", it writes the namespace's default isolation NetworkPolicies
// through the Converger before answering. It never changes the Namespace
// itself (no patch) and never denies: when the write fails, the request is
// admitted with a warning, the failure is logged and counted, and the
// isolation controller converges. When NetworkPolicies that moat does not
// manage hold the names of the ones it writes (policy.NamesTakenError),
// the request is admitted with a warning per policy saying what is missing
// and how to fix it, logged and counted as a failure. Dry-run requests write
// nothing.
type NamespaceMutator struct {
	// Converger writes the policies.
	Converger Converger
	// Decoder decodes the Namespaces of the request.
	Decoder admission.Decoder
	// Timeout bounds the write.
	Timeout time.Duration
	// Guard, when set, decides whether a request may make it write at
	// all: the request body is never trusted alone (forgery.go). Its read
	// of the stored namespace counts against Timeout.
	Guard *AdmissionWriteGuard
}

var _ admission.Handler = &NamespaceMutator{}

// Handle implements admission.Handler.
func (m *NamespaceMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Update {
		// A namespace being created cannot hold objects yet: the
		// controller writes its policies once it exists.
		return admission.Allowed("")
	}
	ns, old := &corev1.Namespace{}, &corev1.Namespace{}
	if err := m.Decoder.DecodeRaw(req.Object, ns); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if err := m.Decoder.DecodeRaw(req.OldObject, old); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if !v1alpha1.Isolated(ns) || v1alpha1.Isolated(old) || ns.DeletionTimestamp != nil {
		return admission.Allowed("")
	}
	if req.DryRun != nil && *req.DryRun {
		return admission.Allowed("dry run: no NetworkPolicy written")
	}

	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	write, refused, err := m.prepare(ctx, req, ns, old)
	if refused != nil {
		return *refused
	}
	if err == nil && write != nil {
		err = write(ctx)
	}
	return m.answer(ctx, req, ns, old, err)
}

// prepare returns the write that the request may make: nil with a response
// when the guard does not trust the request (or could not check it), and
// otherwise the Converger's write of the policies rendered from the stored
// namespace with only the isolation label turned on (err: its reads
// failed).
func (m *NamespaceMutator) prepare(ctx context.Context, req admission.Request, ns, old *corev1.Namespace) (write func(context.Context) error, refused *admission.Response, err error) {
	// The namespace as it is about to be stored, at the version of the
	// stored object it changes (see Converger).
	target := ns.DeepCopy()
	target.ResourceVersion = old.ResourceVersion
	write = func(ctx context.Context) error { return m.Converger.ApplyNamespace(ctx, target) }
	if m.Guard == nil {
		return write, nil, nil
	}
	var (
		stored     *corev1.Namespace
		reason     string
		guardErr   error
		prepareErr error
	)
	preparing, canPrepare := m.Converger.(PreparingConverger)
	if canPrepare {
		// The converger's reads run while the guard reads the stored
		// namespace; its writes wait for the guard's answer.
		var wg sync.WaitGroup
		wg.Go(func() { stored, reason, guardErr = m.Guard.AdmitStored(ctx, ns, old) })
		write, prepareErr = preparing.PrepareNamespace(ctx, target)
		wg.Wait()
	} else {
		stored, reason, guardErr = m.Guard.AdmitStored(ctx, ns, old)
	}
	if guardErr != nil {
		isolationApplies.WithLabelValues(resultFailure).Inc()
		log.FromContext(ctx).Error(guardErr, "could not check the request against the stored namespace; nothing written, the controller will converge", "namespace", ns.Name)
		resp := admission.Allowed("").WithWarnings("moat did not write the isolation NetworkPolicies of namespace " + ns.Name +
			" during this request; its controller applies them once the label is stored (" + guardErr.Error() + ")")
		return nil, &resp, nil
	}
	if reason != "" {
		admissionWritesRefused.WithLabelValues(reason).Inc()
		log.FromContext(ctx).Info("admission request not trusted for a write; nothing written", "namespace", ns.Name,
			"reason", reason, "user", req.UserInfo.Username, "uid", ns.UID, "resourceVersion", old.ResourceVersion)
		resp := admission.Allowed("").WithWarnings("moat did not write the isolation NetworkPolicies of namespace " + ns.Name +
			" during this request (" + reason + "); its controller applies them once the label is stored")
		return nil, &resp, nil
	}
	// What is written comes from the stored namespace with only the
	// isolation label turned on: the rest of the request's object is not
	// trusted. When it differs (another label changed in the same request,
	// or a forged object), the write is prepared again from the stored
	// state.
	fromStored := storedWithIsolation(stored, old.ResourceVersion)
	if !maps.Equal(fromStored.Labels, target.Labels) {
		target = fromStored
		if canPrepare {
			write, prepareErr = preparing.PrepareNamespace(ctx, target)
		} else {
			write = func(ctx context.Context) error { return m.Converger.ApplyNamespace(ctx, target) }
		}
	}
	return write, nil, prepareErr
}

// answer is the response to a request whose write ended with err: admitted
// always, with warnings for policies not written (names held by user
// policies, failed writes); logged and counted.
func (m *NamespaceMutator) answer(ctx context.Context, req admission.Request, ns, old *corev1.Namespace, err error) admission.Response {
	taken, err := splitNamesTaken(err)
	var warnings []string
	if taken != nil {
		// Issue 20, case 9: the label is admitted, but the user's
		// policies keep moat's own from being written; say so here, not
		// only in Events.
		log.FromContext(ctx).Info("NetworkPolicies not managed by moat hold the names of its policies; they were not written",
			"namespace", ns.Name, "policies", taken.Names, "user", req.UserInfo.Username)
		warnings = namesTakenWarnings(taken)
		if err == nil {
			isolationApplies.WithLabelValues(resultFailure).Inc()
			return admission.Allowed("").WithWarnings(warnings...)
		}
	}
	if err != nil {
		isolationApplies.WithLabelValues(resultFailure).Inc()
		log.FromContext(ctx).Error(err, "writing the default isolation policies during admission failed; the controller will converge", "namespace", ns.Name)
		return admission.Allowed("").WithWarnings(append(warnings,
			"moat could not write the isolation NetworkPolicies of namespace "+ns.Name+
				" during this request; its controller applies them shortly ("+err.Error()+")")...)
	}
	isolationApplies.WithLabelValues(resultSuccess).Inc()
	log.FromContext(ctx).Info("isolation policies written during admission", "namespace", ns.Name,
		"user", req.UserInfo.Username, "uid", ns.UID, "resourceVersion", old.ResourceVersion)
	return admission.Allowed("")
}

// storedWithIsolation is the stored namespace as the request would leave it
// if it changed nothing but the isolation label: what an admission write
// renders from.
func storedWithIsolation(stored *corev1.Namespace, resourceVersion string) *corev1.Namespace {
	out := stored.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[v1alpha1.IsolationLabel] = "true"
	out.ResourceVersion = resourceVersion
	return out
}

// splitNamesTaken separates a *policy.NamesTakenError from the other errors
// of a Converger's write (errors.Join of both, or either alone).
func splitNamesTaken(err error) (*policy.NamesTakenError, error) {
	var taken *policy.NamesTakenError
	if !errors.As(err, &taken) {
		return nil, err
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return taken, nil
	}
	var rest []error
	for _, e := range joined.Unwrap() {
		var t *policy.NamesTakenError
		if !errors.As(e, &t) {
			rest = append(rest, e)
		}
	}
	return taken, errors.Join(rest...)
}

// namesTakenWarnings are the admission warnings, one per policy, for
// policies moat did not write because policies it does not manage hold
// their names.
func namesTakenWarnings(taken *policy.NamesTakenError) []string {
	out := make([]string, 0, len(taken.Names))
	for _, name := range taken.Names {
		what := "what moat would enforce with it is missing"
		switch name {
		case policy.DefaultIngressPolicyName:
			what = "the namespace is NOT isolated: its ingress stays as that policy says"
		case policy.DefaultEgressPolicyName:
			what = "the namespace's egress restriction is missing"
		}
		out = append(out, fmt.Sprintf("NetworkPolicy %s/%s exists and is not managed by moat (it lacks the label %s=%s), so moat did not write its own policy of that name and %s; "+
			"delete or rename it (names starting with %q are moat's) and moat writes its own within seconds",
			taken.Namespace, name, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue, what, policy.ReservedPolicyNamePrefix))
	}
	return out
}
