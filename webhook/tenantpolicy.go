package webhook

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// tenant applies validation.ValidateTenantNetworkPolicy to a policy written
// by anyone but the identities Trust names, in the mode of
// Config.TenantNetworkPolicies. The namespace is read from the API server
// (a namespace isolated a moment ago must not slip through a lagging
// cache); its allowlists and Services from the cache, and again from the
// API server when the cached answer refuses. On update, a peer that the
// stored policy already had is reported as a warning, not refused, so that
// a policy stored before its namespace was isolated can still be changed
// elsewhere (ratcheting).
func (v *NetworkPolicyValidator) tenant(ctx context.Context, np, old *networkingv1.NetworkPolicy) (field.ErrorList, []validation.Warning, error) {
	mode := v.Config.TenantNetworkPolicies.Effective()
	if mode == validation.TenantPoliciesOff || v.Cached == nil {
		return nil, nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(fmt.Errorf("admission request missing from context: %w", err))
	}
	if v.Trust.Trusted(req.UserInfo) {
		return nil, nil, nil
	}
	reader := v.Cached
	if v.Live != nil {
		reader = v.Live
	}
	ns, err := reader.Session(ctx).Namespace(np.Namespace)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	if !v1alpha1.Isolated(ns) {
		return nil, nil, nil
	}
	check := func(source validation.Cluster) (field.ErrorList, field.ErrorList, error) {
		allowlists, err := source.Allowlists(np.Namespace)
		if err != nil {
			return nil, nil, apierrors.NewInternalError(err)
		}
		errs := validation.ValidateTenantNetworkPolicy(np, ns, allowlists, v.Config, source)
		var before field.ErrorList
		if old != nil && len(errs) > 0 {
			before = validation.ValidateTenantNetworkPolicy(old, ns, allowlists, v.Config, source)
		}
		return errs, before, nil
	}
	errs, before, err := check(v.Cached.Session(ctx))
	if err == nil && len(errs) > 0 && v.Live != nil {
		errs, before, err = check(v.Live.Session(ctx))
	}
	if err != nil {
		return nil, nil, err
	}
	kept := map[string]bool{}
	for _, e := range before {
		kept[e.Error()] = true
	}
	var refused, ratcheted field.ErrorList
	for _, e := range errs {
		if kept[e.Error()] {
			ratcheted = append(ratcheted, e)
		} else {
			refused = append(refused, e)
		}
	}
	refused, warnings := mode.Findings(refused)
	_, ratchetWarnings := validation.TenantPoliciesWarn.Findings(ratcheted)
	return refused, append(warnings, ratchetWarnings...), nil
}
