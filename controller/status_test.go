package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

func TestDesiredStatus(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	applied := metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonApplied,
		Message: "every rule is in force through NetworkPolicy moat-allowlist-web", ObservedGeneration: 1, LastTransitionTime: earlier,
	}
	notFound := policy.Problem{Reason: v1alpha1.ReasonServiceNotFound, Field: "spec.egress[0].to[0].service", Message: `Service "demo-project-2/nginx" does not exist; the peer is dropped`}
	portMissing := policy.Problem{Reason: v1alpha1.ReasonServicePortNotFound, Field: "spec.egress[1].ports[0]", Message: "no port 8080"}

	tests := map[string]struct {
		before   v1alpha1.NetworkAllowlistStatus
		policies []string
		problems []policy.Problem
		want     v1alpha1.NetworkAllowlistStatus
		// sameTime: the condition keeps its lastTransitionTime.
		sameTime bool
	}{
		"converged status is unchanged": {
			before:   v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Policies: []string{"moat-allowlist-web"}, Conditions: []metav1.Condition{applied}},
			policies: []string{"moat-allowlist-web"},
			want:     v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Policies: []string{"moat-allowlist-web"}, Conditions: []metav1.Condition{applied}},
			sameTime: true,
		},
		"problems ordered by importance, all in the message": {
			policies: []string{"moat-allowlist-web"},
			problems: []policy.Problem{portMissing, notFound},
			want: v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Policies: []string{"moat-allowlist-web"}, Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonServiceNotFound, ObservedGeneration: 1,
				Message: `spec.egress[0].to[0].service: Service "demo-project-2/nginx" does not exist; the peer is dropped; spec.egress[1].ports[0]: no port 8080`,
			}}},
		},
		"isolation disabled": {
			before:   v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Policies: []string{"moat-allowlist-web"}, Conditions: []metav1.Condition{applied}},
			problems: []policy.Problem{{Reason: v1alpha1.ReasonIsolationDisabled, Message: "namespace p1 is not isolated"}},
			want: v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonIsolationDisabled,
				Message: "namespace p1 is not isolated", ObservedGeneration: 1,
			}}},
		},
		"conflict outranks a missing Service": {
			problems: []policy.Problem{notFound, conflictProblem("moat-allowlist-web")},
			want: v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPolicyConflict, ObservedGeneration: 1,
				Message: `NetworkPolicy "moat-allowlist-web" already exists and is not managed by moat (it lacks the label app.kubernetes.io/managed-by=moat); moat leaves it alone: delete or rename it, or rename this allowlist; ` +
					`spec.egress[0].to[0].service: Service "demo-project-2/nginx" does not exist; the peer is dropped`,
			}}},
		},
		"apply failure": {
			problems: []policy.Problem{applyFailedProblem("moat-allowlist-web", errors.New("boom"))},
			want: v1alpha1.NetworkAllowlistStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonApplyFailed, ObservedGeneration: 1,
				Message: `writing NetworkPolicy "moat-allowlist-web" failed: boom; moat retries`,
			}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "p1", Generation: 1}, Status: tc.before}
			got := desiredStatus(al, tc.policies, tc.problems)
			if len(got.Conditions) != 1 {
				t.Fatalf("conditions = %+v, want exactly Ready", got.Conditions)
			}
			if tc.sameTime != got.Conditions[0].LastTransitionTime.Equal(&earlier) {
				t.Errorf("lastTransitionTime = %v, kept = %v", got.Conditions[0].LastTransitionTime, tc.sameTime)
			}
			got.Conditions[0].LastTransitionTime = tc.want.Conditions[0].LastTransitionTime
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceRefs(t *testing.T) {
	al := &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "p1"},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{
				{Service: &v1alpha1.ServiceReference{Name: "local"}},
				{Namespace: "p2"},
			}}},
			Egress: []v1alpha1.EgressRule{
				{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "demo-project-2", Name: "nginx"}}}},
				{To: []v1alpha1.Peer{
					{Service: &v1alpha1.ServiceReference{Namespace: "demo-project-2", Name: "nginx"}},
					{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}},
				}},
			},
		},
	}
	if diff := cmp.Diff([]string{"demo-project-2/nginx", "p1/local"}, serviceRefs(al)); diff != "" {
		t.Errorf("serviceRefs (-want +got):\n%s", diff)
	}
}
