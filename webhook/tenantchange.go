package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// strandedPolicies is the tenant side of an allowlist change: when the
// allowlist name of namespace becomes changed (nil: deleted), by anyone but
// the identities Trust names, in an isolated namespace, every NetworkPolicy
// of the namespace that moat does not manage must stay inside the model
// (validation.StrandedTenantPolicies). Everything is read from the API
// server, through the request's live session s: the namespace, its
// allowlists and Services, and its NetworkPolicies, which the manager's
// cache does not hold; the policies only when the change can shrink the
// model (validation.ModelMayShrink). The findings are
// split by Config.TenantNetworkPolicies (errors under restrict, warnings
// under warn, nothing under off).
func (v *AllowlistValidator) strandedPolicies(ctx context.Context, s *sessions, namespace, name string, changed *v1alpha1.NetworkAllowlist, fldPath *field.Path) (field.ErrorList, []validation.Warning, error) {
	if check, err := v.checksTenantPolicies(ctx); !check || err != nil {
		return nil, nil, err
	}
	live := s.liveSession()
	ns, err := live.Namespace(namespace)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	if !v1alpha1.Isolated(ns) || ns.DeletionTimestamp != nil {
		return nil, nil, nil
	}
	stored, err := live.Allowlists(namespace)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	before := validation.TenantModel(ns, stored, v.Config, live)
	after := validation.TenantModel(ns, validation.AllowlistsAfter(stored, name, changed), v.Config, live)
	if !validation.ModelMayShrink(before, after) {
		return nil, nil, nil
	}
	policies, err := live.NetworkPolicies(namespace)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	errs := validation.ValidateTenantPoliciesKept(fldPath, validation.StrandedTenantPolicies(policies, before, after))
	refused, warnings := v.Config.TenantNetworkPolicies.Findings(errs)
	return refused, warnings, nil
}

// checksTenantPolicies reports whether an allowlist change in this request
// is checked against the namespace's NetworkPolicies: unless the mode is
// off, there is no API reader, or the user is one Trust names.
func (v *AllowlistValidator) checksTenantPolicies(ctx context.Context) (bool, error) {
	if v.Config.TenantNetworkPolicies.Effective() == validation.TenantPoliciesOff || v.Live == nil {
		return false, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return false, apierrors.NewInternalError(fmt.Errorf("admission request missing from context: %w", err))
	}
	return !v.Trust.Trusted(req.UserInfo), nil
}
