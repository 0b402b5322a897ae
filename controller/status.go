package controller

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// maxConditionMessage keeps a Ready message well inside the 32768 characters
// that metav1.Condition allows.
const maxConditionMessage = 4096

// desiredStatus returns the status that al must report, starting from its
// current status so that the Ready condition keeps its lastTransitionTime
// while its status does not change. policies are the names of the
// NetworkPolicies in force for it; problems say what is not (policy.Render's
// problems first, then conflicts and apply failures found while writing).
func desiredStatus(al *v1alpha1.NetworkAllowlist, policies []string, problems []policy.Problem) v1alpha1.NetworkAllowlistStatus {
	status := *al.Status.DeepCopy()
	status.ObservedGeneration = al.Generation
	status.Policies = slices.Clone(policies)
	slices.Sort(status.Policies)
	meta.SetStatusCondition(&status.Conditions, readyCondition(al.Generation, policies, problems))
	return status
}

// readyCondition is True/Applied when there is no problem and otherwise
// False with the most important problem's reason and every problem in the
// message.
func readyCondition(generation int64, policies []string, problems []policy.Problem) metav1.Condition {
	if len(problems) == 0 {
		msg := "every rule is in force"
		if len(policies) > 0 {
			msg += " through NetworkPolicy " + strings.Join(policies, ", ")
		}
		return metav1.Condition{
			Type:               v1alpha1.ConditionReady,
			Status:             metav1.ConditionTrue,
			Reason:             v1alpha1.ReasonApplied,
			Message:            msg,
			ObservedGeneration: generation,
		}
	}
	ordered := slices.Clone(problems)
	slices.SortStableFunc(ordered, func(a, b policy.Problem) int {
		return reasonRank(a.Reason) - reasonRank(b.Reason)
	})
	parts := make([]string, 0, len(ordered))
	for _, p := range ordered {
		if p.Field != "" {
			parts = append(parts, fmt.Sprintf("%s: %s", p.Field, p.Message))
		} else {
			parts = append(parts, p.Message)
		}
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > maxConditionMessage {
		msg = msg[:maxConditionMessage-3] + "..."
	}
	return metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionFalse,
		Reason:             ordered[0].Reason,
		Message:            msg,
		ObservedGeneration: generation,
	}
}

// reasonRank orders reasons from the one that disables most of an allowlist
// to the one that drops least of it.
func reasonRank(reason string) int {
	switch reason {
	case v1alpha1.ReasonIsolationDisabled, v1alpha1.ReasonNamespaceProtected:
		return 0
	case v1alpha1.ReasonApplyFailed:
		return 1
	case v1alpha1.ReasonPolicyConflict:
		return 2
	case v1alpha1.ReasonServiceNotFound:
		return 3
	case v1alpha1.ReasonServiceSelectorEmpty:
		return 4
	case v1alpha1.ReasonServicePortNotFound:
		return 5
	default:
		return 6
	}
}

// readyReason returns the reason of the Ready condition, or "" when there is none.
func readyReason(status v1alpha1.NetworkAllowlistStatus) string {
	if c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// conflictProblem reports a NetworkPolicy that moat would generate but that
// someone else already owns.
func conflictProblem(name string) policy.Problem {
	return policy.Problem{
		Reason: v1alpha1.ReasonPolicyConflict,
		Message: fmt.Sprintf("NetworkPolicy %q already exists and is not managed by moat (it lacks the label %s=%s); moat leaves it alone: delete or rename it, or rename this allowlist",
			name, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue),
	}
}

// applyFailedProblem reports a NetworkPolicy that could not be written.
func applyFailedProblem(name string, err error) policy.Problem {
	return policy.Problem{
		Reason:  v1alpha1.ReasonApplyFailed,
		Message: fmt.Sprintf("writing NetworkPolicy %q failed: %v; moat retries", name, err),
	}
}
