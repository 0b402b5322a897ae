package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
