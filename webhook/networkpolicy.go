package webhook

import (
	"context"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// NetworkPolicyValidator applies moat's CIDR, port and SCTP checks to
// NetworkPolicies and guards the ones moat manages: only trusted users may
// create, change or delete a policy labelled app.kubernetes.io/managed-by:
// moat (or add or remove that label).
type NetworkPolicyValidator struct {
	// Config is the cluster configuration the checks depend on.
	Config validation.Config
	// Trust says who may touch managed policies, and whose policies may
	// open an isolated namespace.
	Trust Trust
	// Cached and Live answer the lookups of the tenant rule
	// (tenantpolicy.go); nil Cached turns that rule off.
	Cached, Live *lookup.Cluster
}

var _ admission.Validator[*networkingv1.NetworkPolicy] = &NetworkPolicyValidator{}

// ValidateCreate checks a new policy; only trusted users may create one
// labelled managed-by moat or named like the policies moat writes
// (policy.IsReservedPolicyName), and a managed policy is not checked further
// (see exemptFromChecks).
func (v *NetworkPolicyValidator) ValidateCreate(ctx context.Context, np *networkingv1.NetworkPolicy) (admission.Warnings, error) {
	if err := v.guard(ctx, np, "create"); err != nil {
		return nil, err
	}
	if err := v.reservedName(ctx, np); err != nil {
		return nil, err
	}
	if exemptFromChecks(np) {
		return nil, nil
	}
	return v.validate(ctx, np, nil)
}

// ValidateUpdate checks a policy whose spec changes, ratcheted against the
// stored one (validation.ValidateNetworkPolicyUpdate: it fails only on values
// the update adds); only trusted users may update a policy that is or becomes
// managed by moat. An update that leaves the spec alone is not checked again,
// so that policies stored before moat was installed can still be relabelled;
// neither is a policy that stays managed by moat (see exemptFromChecks).
func (v *NetworkPolicyValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *networkingv1.NetworkPolicy) (admission.Warnings, error) {
	managed := oldObj
	if !policy.IsManaged(oldObj) {
		managed = newObj
	}
	if err := v.guard(ctx, managed, "update"); err != nil {
		return nil, err
	}
	if equality.Semantic.DeepEqual(oldObj.Spec, newObj.Spec) || exemptFromChecks(newObj) {
		return nil, nil
	}
	return v.validate(ctx, newObj, oldObj)
}

// ValidateDelete lets only trusted users delete a managed policy.
func (v *NetworkPolicyValidator) ValidateDelete(ctx context.Context, np *networkingv1.NetworkPolicy) (admission.Warnings, error) {
	return nil, v.guard(ctx, np, "delete")
}

// validate checks np, ratcheted against old when old is not nil, and, in an
// isolated namespace, applies the tenant rule (tenant.go).
func (v *NetworkPolicyValidator) validate(ctx context.Context, np, old *networkingv1.NetworkPolicy) (admission.Warnings, error) {
	errs, warnings := validation.ValidateNetworkPolicyUpdate(np, old, v.Config)
	tenantErrs, tenantWarnings, err := v.tenant(ctx, np, old)
	if err != nil {
		return validation.Strings(warnings), err
	}
	errs, warnings = append(errs, tenantErrs...), append(warnings, tenantWarnings...)
	return validation.Strings(warnings), invalid(networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy").GroupKind(), np.Name, errs)
}

// exemptFromChecks reports whether np is a policy moat manages, written (the
// guard has passed) by moat itself or another trusted identity. Such a policy
// is moat's translation of allowlists that were validated when they were
// admitted and of Services whose owners may change them at any time (an SCTP
// port added while SCTP is off, say), and the controller puts any other
// content back. Checking it here would make moat refuse its own write and
// leave the allowlist without any policy; the checks are for policies that
// users write.
func exemptFromChecks(np *networkingv1.NetworkPolicy) bool {
	return policy.IsManaged(np)
}

// guard returns a Forbidden error when np is managed by moat and the
// requesting user is not trusted. Dry-run requests get the same answer as
// real ones.
func (v *NetworkPolicyValidator) guard(ctx context.Context, np *networkingv1.NetworkPolicy, verb string) error {
	if !policy.IsManaged(np) {
		return nil
	}
	req, trusted, err := v.requester(ctx)
	if err != nil || trusted {
		return err
	}
	who := "moat itself, the namespace controller and the garbage collector"
	if len(v.Trust.AdminGroups) > 0 {
		who += ", and members of " + strings.Join(v.Trust.AdminGroups, ", ")
	}
	return apierrors.NewForbidden(networkingv1.SchemeGroupVersion.WithResource("networkpolicies").GroupResource(), np.Name,
		fmt.Errorf("user %q may not %s a NetworkPolicy labelled %s=%s: moat manages it and would put it back; "+
			"change the NetworkAllowlists or the %s label of namespace %s instead (only %s may change managed policies)",
			req.UserInfo.Username, verb, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue,
			v1alpha1.IsolationLabel, np.Namespace, who))
}

// reservedName returns a Forbidden error when a user that Trust does not
// trust creates a NetworkPolicy under a name reserved for moat
// (policy.IsReservedPolicyName), in any namespace: moat never takes over a
// policy it did not write, so such a policy would keep moat's own from being
// written once the namespace is isolated (issue 20, case 9: a tenant's
// moat-default-ingress with ingress: [{}], created before an admin isolates
// the namespace, kept it open). Updates are not refused: a policy stored
// before moat was installed keeps working, and the labelling that isolates
// its namespace reports it.
func (v *NetworkPolicyValidator) reservedName(ctx context.Context, np *networkingv1.NetworkPolicy) error {
	if !policy.IsReservedPolicyName(np.Name) {
		return nil
	}
	req, trusted, err := v.requester(ctx)
	if err != nil || trusted {
		return err
	}
	return apierrors.NewForbidden(networkingv1.SchemeGroupVersion.WithResource("networkpolicies").GroupResource(), np.Name,
		fmt.Errorf("user %q may not create a NetworkPolicy named %q: names starting with %q are reserved for the policies moat writes "+
			"(a policy of that name that moat does not manage would keep moat from isolating namespace %s); choose another name",
			req.UserInfo.Username, np.Name, policy.ReservedPolicyNamePrefix, np.Namespace))
}

// requester returns the admission request in ctx and whether Trust trusts
// its user.
func (v *NetworkPolicyValidator) requester(ctx context.Context) (admission.Request, bool, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return req, false, apierrors.NewInternalError(fmt.Errorf("admission request missing from context: %w", err))
	}
	return req, v.Trust.Trusted(req.UserInfo), nil
}
