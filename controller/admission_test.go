package controller

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHoldAdmissionWrites(t *testing.T) {
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "100"}}
	np := func(name, admittedAt string, age time.Duration) *networkingv1.NetworkPolicy {
		p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))}}
		if admittedAt != "" {
			p.Annotations = map[string]string{AdmissionVersionAnnotation: admittedAt}
		}
		return p
	}
	names := func(nps []*networkingv1.NetworkPolicy) []string {
		out := []string{}
		for _, p := range nps {
			out = append(out, p.Name)
		}
		return out
	}
	tests := []struct {
		name        string
		ns          *corev1.Namespace
		deletes     []*networkingv1.NetworkPolicy
		wantDeleted []string
		wantRecheck time.Duration
	}{
		{"written while a change to this namespace version is admitted", ns,
			[]*networkingv1.NetworkPolicy{np("a", "100", 2*time.Second)}, []string{}, 9 * time.Second},
		{"the earliest end of grace decides the recheck", ns,
			[]*networkingv1.NetworkPolicy{np("a", "100", 2*time.Second), np("b", "100", 5*time.Second)}, []string{}, 6 * time.Second},
		{"the namespace changed since (label removed again)", ns,
			[]*networkingv1.NetworkPolicy{np("a", "99", time.Second)}, []string{"a"}, 0},
		{"written by the controller", ns,
			[]*networkingv1.NetworkPolicy{np("a", "", time.Second)}, []string{"a"}, 0},
		{"the grace period is over", ns,
			[]*networkingv1.NetworkPolicy{np("a", "100", admissionGrace), np("b", "100", time.Second)}, []string{"a"}, 10 * time.Second},
		{"a namespace without a version", &corev1.Namespace{},
			[]*networkingv1.NetworkPolicy{np("a", "", time.Second)}, []string{"a"}, 0},
		{"nothing to delete", ns, nil, []string{}, 0},
		{"an old policy marked during admission just now", ns,
			[]*networkingv1.NetworkPolicy{remarked(np("a", "100", time.Hour), now.Add(-3*time.Second))}, []string{}, 8 * time.Second},
		{"an old policy marked long ago", ns,
			[]*networkingv1.NetworkPolicy{remarked(np("a", "100", time.Hour), now.Add(-time.Minute))}, []string{"a"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deleted, recheck := holdAdmissionWrites(tt.ns, tt.deletes, now)
			if diff := cmp.Diff(tt.wantDeleted, names(deleted)); diff != "" {
				t.Errorf("deleted now (-want +got):\n%s", diff)
			}
			if recheck != tt.wantRecheck {
				t.Errorf("recheck after %v, want %v", recheck, tt.wantRecheck)
			}
		})
	}
}

// remarked records a server-side apply by moat at the given time, as the
// API server does when ApplyNamespace marks an existing policy.
func remarked(np *networkingv1.NetworkPolicy, at time.Time) *networkingv1.NetworkPolicy {
	np.ManagedFields = append(np.ManagedFields,
		metav1.ManagedFieldsEntry{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: &metav1.Time{Time: at.Add(time.Second)}},
		metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: at}})
	return np
}
