package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// applyAll server-side applies the policies: the deny policies
// (policy.IsDenyPolicy) first, then the rest, at most maxParallelApplies at
// a time, so that a namespace is closed before anything extends it and an
// extension that cannot be written leaves it closed, never open. It records
// IsolationEnabled (at most one Event) when it creates the default ingress
// policy of a stored namespace, and returns the failed writes by policy
// name.
func (r *Reconciler) applyAll(ctx context.Context, ns *corev1.Namespace, nps []networkingv1.NetworkPolicy, live map[string]*networkingv1.NetworkPolicy) map[string]error {
	errs := make([]error, len(nps))
	var deny, rest []int
	for i := range nps {
		if policy.IsDenyPolicy(nps[i].Name) {
			deny = append(deny, i)
		} else {
			rest = append(rest, i)
		}
	}
	for _, batch := range [][]int{deny, rest} {
		if len(batch) == 1 {
			errs[batch[0]] = r.apply(ctx, &nps[batch[0]])
			continue
		}
		var wg sync.WaitGroup
		slots := make(chan struct{}, maxParallelApplies)
		for _, i := range batch {
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

// EventIsolationIncomplete: some policy of an isolated namespace could not
// be written. The deny is written first, so the namespace is closed; what
// the failed policies admit (its group, the nodes, an allowlist) is not.
const EventIsolationIncomplete = "IsolationIncomplete"

// reportIncomplete records a Warning Event on an isolated namespace whose
// policies (NetworkPolicies, and admin-tier objects with --enforcement)
// could not all be written, naming them and the first error.
func (r *Reconciler) reportIncomplete(ns *corev1.Namespace, isolated bool, failed map[string]error) {
	if !isolated || len(failed) == 0 || ns.UID == "" {
		return
	}
	names := slices.Sorted(maps.Keys(failed))
	r.recorder.Eventf(ns, nil, corev1.EventTypeWarning, EventIsolationIncomplete, "ApplyPolicy",
		"could not write the policies %s (%v); the namespace is isolated by its deny NetworkPolicy (written first), but until they are written it may not admit what they admit, and a missing admin-tier object leaves it to NetworkPolicies alone; moat retries",
		strings.Join(names, ", "), failed[names[0]])
}
