package webhook

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
)

// storedNamespace is a client.Reader holding one stored Namespace; the
// admission tests on the real API server are in test/e2e.
type storedNamespace struct {
	client.Reader
	ns *corev1.Namespace
}

func (s storedNamespace) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if s.ns == nil || key.Name != s.ns.Name {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), key.Name)
	}
	s.ns.DeepCopyInto(obj.(*corev1.Namespace))
	return nil
}

// The guard's timeline for one namespace whose admission write is never
// followed by its label: one write, nothing during the grace, then nothing
// ever again until a stored label clears it.
func TestAdmissionWriteGuardTimeline(t *testing.T) {
	stored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant", UID: "uid-1", ResourceVersion: "7"}}
	labelled := stored.DeepCopy()
	labelled.Labels = map[string]string{v1alpha1.IsolationLabel: "true"}
	now := time.Unix(1_000_000, 0)
	g := &AdmissionWriteGuard{Reader: storedNamespace{ns: stored}, now: func() time.Time { return now }}
	ctx := context.Background()
	admit := func(want string) {
		t.Helper()
		got, err := g.Admit(ctx, labelled, stored)
		if err != nil || got != want {
			t.Fatalf("at %s: Admit = %q, %v; want %q", now.Format(time.TimeOnly), got, err, want)
		}
	}
	admit("")
	admit(RefusedAwaitingLabel)
	now = now.Add(DefaultLabelGrace)
	admit(RefusedBackoff)
	for _, later := range []time.Duration{time.Minute, time.Hour, 7 * 24 * time.Hour} {
		now = now.Add(later)
		admit(RefusedBackoff)
	}

	// The label is stored after all: admission writes are trusted again.
	g.Observe(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant", UID: "uid-1", Labels: labelled.Labels}})
	admit("")
}

func TestAdmissionWriteGuardChecksTheStoredNamespace(t *testing.T) {
	stored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant", UID: "uid-1", ResourceVersion: "7"}}
	with := func(f func(*corev1.Namespace)) *corev1.Namespace {
		ns := stored.DeepCopy()
		f(ns)
		return ns
	}
	isolated := func(ns *corev1.Namespace) { ns.Labels = map[string]string{v1alpha1.IsolationLabel: "true"} }
	for _, tc := range []struct {
		name     string
		stored   *corev1.Namespace
		old, new *corev1.Namespace
		want     string
	}{
		{"kube-system", with(func(ns *corev1.Namespace) { ns.Name = "kube-system" }),
			with(func(ns *corev1.Namespace) { ns.Name = "kube-system" }), with(func(ns *corev1.Namespace) { ns.Name = "kube-system"; isolated(ns) }), RefusedProtected},
		{"moat's namespace", stored, with(func(ns *corev1.Namespace) { ns.Name = "moat-system" }), with(func(ns *corev1.Namespace) { ns.Name = "moat-system"; isolated(ns) }), RefusedProtected},
		{"not stored", nil, stored, with(isolated), RefusedNotFound},
		{"made-up UID", stored, with(func(ns *corev1.Namespace) { ns.UID = "forged" }), with(func(ns *corev1.Namespace) { ns.UID = "forged"; isolated(ns) }), RefusedUIDMismatch},
		{"UIDs differ", stored, stored, with(func(ns *corev1.Namespace) { ns.UID = "forged"; isolated(ns) }), RefusedUIDMismatch},
		{"old version", stored, with(func(ns *corev1.Namespace) { ns.ResourceVersion = "6" }), with(isolated), RefusedVersionMismatch},
		{"already isolated", with(isolated), stored, with(isolated), RefusedVersionMismatch},
		{"terminating", with(func(ns *corev1.Namespace) { ns.DeletionTimestamp = &metav1.Time{} }), stored, with(isolated), RefusedVersionMismatch},
		{"plausible", stored, stored, with(isolated), ""},
	} {
		g := &AdmissionWriteGuard{Reader: storedNamespace{ns: tc.stored}}
		got, err := g.Admit(context.Background(), tc.new, tc.old)
		if err != nil || got != tc.want {
			t.Errorf("%s: Admit = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
