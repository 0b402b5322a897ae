package webhook

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// tenant applies validation.ValidateTenantNetworkPolicy to a policy written
// by anyone but the identities Trust names, in the mode of
// Config.TenantNetworkPolicies. The namespace is read from the API server
// (a namespace isolated a moment ago must not slip through a lagging
// cache); its allowlists and Services from the cache, and again from the
// API server when the cached answer refuses. On update, a finding in a rule
// that the stored policy already holds unchanged is reported as a warning,
// not refused (validation.RatchetTenantFindings), so that a policy stored
// before its namespace was isolated can still be changed elsewhere.
func (v *NetworkPolicyValidator) tenant(ctx context.Context, np, old *networkingv1.NetworkPolicy) (field.ErrorList, []validation.Warning, error) {
	mode := v.Config.TenantNetworkPolicies.Effective()
	if mode == validation.TenantPoliciesOff || v.Cached == nil {
		return nil, nil, nil
	}
	if _, trusted, err := v.requester(ctx); err != nil || trusted {
		return nil, nil, err
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
	check := func(source validation.Cluster) (field.ErrorList, error) {
		allowlists, err := source.Allowlists(np.Namespace)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		return validation.ValidateTenantNetworkPolicy(np, ns, allowlists, v.Config, source), nil
	}
	errs, err := check(v.Cached.Session(ctx))
	if err == nil && len(errs) > 0 && v.Live != nil {
		errs, err = check(v.Live.Session(ctx))
	}
	if err != nil {
		return nil, nil, err
	}
	refused, ratcheted := validation.RatchetTenantFindings(np, old, errs)
	refused, warnings := mode.Findings(refused)
	_, ratchetWarnings := validation.TenantPoliciesWarn.Findings(ratcheted)
	return refused, append(warnings, ratchetWarnings...), nil
}
