package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// Reasons why the mutating Namespace webhook wrote nothing for a request
// that asked it to (the reason label of
// moat_webhook_admission_writes_refused_total).
const (
	// RefusedProtected: the namespace is protected; moat never writes there.
	RefusedProtected = "protected"
	// RefusedNotFound: no namespace of that name is stored.
	RefusedNotFound = "namespace-not-found"
	// RefusedUIDMismatch: the request's UID is not the stored namespace's.
	RefusedUIDMismatch = "uid-mismatch"
	// RefusedVersionMismatch: the request's old object is not the stored
	// version, or the stored namespace is already isolated or terminating:
	// the request is not a transition of what is stored.
	RefusedVersionMismatch = "not-a-transition"
	// RefusedAwaitingLabel: an earlier admission write for the namespace is
	// still waiting for its label to be stored.
	RefusedAwaitingLabel = "awaiting-label"
	// RefusedBackoff: an earlier admission write for the namespace was not
	// followed by its label being stored; admission writes for it are off
	// for a while.
	RefusedBackoff = "backoff"
)

// Defaults of AdmissionWriteGuard.
const (
	// DefaultLabelGrace is how long the label may take to be stored after
	// an admission write (policy.AdmissionGrace, which the controller
	// honours too).
	DefaultLabelGrace = policy.AdmissionGrace
)

// AdmissionWriteGuard decides whether an admission request may make the
// mutating Namespace webhook write NetworkPolicies. An AdmissionReview can
// be posted by anything that reaches the webhook port, and the UID and
// resourceVersion of a namespace are readable by anyone who may get it, so
// the guard never trusts the body alone:
//
//   - it never allows a write into a protected namespace;
//   - the namespace must be stored with the request's UID, at the version
//     the request changes, and not isolated yet (read from the API server);
//   - once a write was not followed, within DefaultLabelGrace, by the
//     isolation label being stored (a forged or refused request), admission
//     writes for that namespace stop until the label is seen stored or the
//     namespace is deleted. A forger can thus close a tenant's ingress once,
//     for the grace period, and never again while the label is absent. A
//     genuine labelling of such a namespace still takes effect: the
//     controller writes its policies within a second of the label being
//     stored, only not before the request returns.
//
// Refusals are counted and never deny the request: the controller applies
// what a stored label needs anyway. The guard's memory is per process; with
// several replicas each one allows its own first write.
type AdmissionWriteGuard struct {
	// Reader reads the stored namespace: the manager's API reader, never
	// a cache that may lag behind.
	Reader client.Reader
	// ProtectedNamespaces as in policy.Config.
	ProtectedNamespaces []string
	// LabelGrace: zero means DefaultLabelGrace.
	LabelGrace time.Duration

	// now is time.Now, replaced in tests.
	now func() time.Time

	mu sync.Mutex
	// writes holds, by namespace UID, the admission writes whose label has
	// not been seen stored yet.
	writes map[types.UID]*admissionWrite
}

// admissionWrite is the state of one namespace whose admission write has not
// been confirmed by its label.
type admissionWrite struct {
	at time.Time
	// struck: the write was not followed by its label within the grace.
	struck bool
}

// Admit returns "" when the update of old into ns may make moat write the
// policies of ns during admission, and records that write; otherwise it
// returns the reason (one of the Refused* constants) why not. err is set
// only when the stored namespace could not be read; the caller then writes
// nothing.
func (g *AdmissionWriteGuard) Admit(ctx context.Context, ns, old *corev1.Namespace) (reason string, err error) {
	_, reason, err = g.AdmitStored(ctx, ns, old)
	return reason, err
}

// AdmitStored is Admit that also returns, when it admits the write, the
// stored namespace the request changes: what moat may write must be
// rendered from it (with only the isolation label set), never from the
// request's object, whose other labels (a project group, say) a forged
// request chooses.
func (g *AdmissionWriteGuard) AdmitStored(ctx context.Context, ns, old *corev1.Namespace) (stored *corev1.Namespace, reason string, err error) {
	if v1alpha1.IsProtectedNamespace(ns.Name, g.ProtectedNamespaces) || v1alpha1.IsProtectedNamespace(old.Name, g.ProtectedNamespaces) {
		return nil, RefusedProtected, nil
	}
	stored = &corev1.Namespace{}
	if err := g.Reader.Get(ctx, client.ObjectKey{Name: ns.Name}, stored); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, RefusedNotFound, nil
		}
		return nil, "", fmt.Errorf("reading namespace %s: %w", ns.Name, err)
	}
	switch {
	case stored.UID == "" || stored.UID != ns.UID || stored.UID != old.UID || old.Name != ns.Name:
		return nil, RefusedUIDMismatch, nil
	case stored.ResourceVersion != old.ResourceVersion || v1alpha1.Isolated(stored) || stored.DeletionTimestamp != nil:
		return nil, RefusedVersionMismatch, nil
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock()
	w := g.writes[stored.UID]
	if w == nil {
		if g.writes == nil {
			g.writes = map[types.UID]*admissionWrite{}
		}
		g.writes[stored.UID] = &admissionWrite{at: now}
		return stored, "", nil
	}
	if !w.struck && now.Before(w.at.Add(g.grace())) {
		return nil, RefusedAwaitingLabel, nil
	}
	// The last write was never followed by its label: no more admission
	// writes until the label is seen stored (Observe) or the namespace goes.
	w.struck = true
	return nil, RefusedBackoff, nil
}

// Observe is told of every stored namespace (the manager's informer): a
// namespace seen isolated has had its label stored, so its admission writes
// are trusted again.
func (g *AdmissionWriteGuard) Observe(ns *corev1.Namespace) {
	if ns == nil || !v1alpha1.Isolated(ns) {
		return
	}
	g.Forget(ns.UID)
}

// Forget drops what the guard knows about the namespace with this UID (it
// was deleted, or its label was stored).
func (g *AdmissionWriteGuard) Forget(uid types.UID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.writes, uid)
}

func (g *AdmissionWriteGuard) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

func (g *AdmissionWriteGuard) grace() time.Duration {
	if g.LabelGrace > 0 {
		return g.LabelGrace
	}
	return DefaultLabelGrace
}

// observeNamespaces tells guard of every namespace the informers see stored
// or deleted.
func observeNamespaces(c cache.Cache, guard *AdmissionWriteGuard) error {
	informer, err := c.GetInformer(context.Background(), &corev1.Namespace{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				guard.Observe(ns)
			}
		},
		UpdateFunc: func(_, obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				guard.Observe(ns)
			}
		},
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				guard.Forget(ns.UID)
			}
		},
	})
	return err
}
