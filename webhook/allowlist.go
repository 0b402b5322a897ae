package webhook

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/validation"
)

// AllowlistValidator admits NetworkAllowlists that satisfy every rule of
// validation.ValidateNetworkAllowlist and returns its warnings as admission
// warnings. With Trust and Live set, it also refuses (under
// --tenant-network-policies=restrict; warns under warn) a change or delete,
// by anyone Trust does not name, that would leave a NetworkPolicy of an
// isolated namespace admitting more than moat does (tenantchange.go).
type AllowlistValidator struct {
	// Config is the cluster configuration the rules depend on.
	Config validation.Config
	// Cached answers lookups in the common case (the manager's cache).
	Cached *lookup.Cluster
	// Live, when set, answers the lookups again when the cached answer
	// rejects the allowlist or warns about it, so a stale cache (a Service
	// created a moment ago) never decides the outcome. It also serves the
	// check of the namespace's NetworkPolicies against the changed model;
	// nil turns that check off.
	Live *lookup.Cluster
	// Trust names who may change allowlists whatever that leaves of the
	// namespace's NetworkPolicies (moat and the admin groups); the
	// controller reports the policies left admitting more.
	Trust Trust
}

var _ admission.Validator[*v1alpha1.NetworkAllowlist] = &AllowlistValidator{}

// ValidateCreate checks a new allowlist. A new allowlist only adds to what
// moat admits unless it is the namespace's first to declare egress, which
// restricts egress: then the namespace's NetworkPolicies are checked too.
func (v *AllowlistValidator) ValidateCreate(ctx context.Context, nal *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	s := v.sessions(ctx)
	warnings, err := v.validate(s, nal, nil)
	if err != nil || len(nal.Spec.Egress) == 0 {
		return warnings, err
	}
	if check, err := v.checksTenantPolicies(ctx); !check || err != nil || !mayRestrictEgress(s, nal.Namespace) {
		return warnings, err
	}
	return v.keepsTenantPolicies(ctx, s, nal, warnings)
}

// ValidateUpdate checks an allowlist whose spec changes, ratcheted against
// the stored one (validation.ValidateNetworkAllowlistUpdate): it fails only
// on values the update adds, and warns about the ones it keeps. An update
// that leaves the spec alone (metadata such as finalizers or labels) is
// admitted without lookups.
func (v *AllowlistValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	if equality.Semantic.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	s := v.sessions(ctx)
	warnings, err := v.validate(s, newObj, oldObj)
	if err != nil {
		return warnings, err
	}
	return v.keepsTenantPolicies(ctx, s, newObj, warnings)
}

// ValidateDelete admits a deletion unless it would leave a NetworkPolicy of
// the isolated namespace admitting more than moat does (tenantchange.go).
func (v *AllowlistValidator) ValidateDelete(ctx context.Context, nal *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	errs, warnings, err := v.strandedPolicies(ctx, v.sessions(ctx), nal.Namespace, nal.Name, nil, field.NewPath("metadata", "name"))
	if err != nil || len(errs) == 0 {
		return validation.Strings(warnings), err
	}
	return validation.Strings(warnings), apierrors.NewForbidden(v1alpha1.GroupVersion.WithResource("networkallowlists").GroupResource(), nal.Name, errs.ToAggregate())
}

// mayRestrictEgress reports whether, as far as the cache knows, namespace is
// isolated and none of its allowlists declares egress yet, so that a new
// allowlist with egress rules restricts its egress. A failed read answers
// true: the check then reads everything from the API server. Creating
// allowlists, the tenants' common write, thus costs no API round trip.
func mayRestrictEgress(s *sessions, namespace string) bool {
	cached := s.cachedSession()
	if cached == nil {
		return true
	}
	ns, err := cached.Namespace(namespace)
	if err != nil {
		return true
	}
	if !v1alpha1.Isolated(ns) {
		return false
	}
	allowlists, err := cached.Allowlists(namespace)
	return err != nil || !v1alpha1.RestrictsEgress(allowlists)
}

// keepsTenantPolicies adds to the answer of a create or update (warnings,
// already admitted by the other rules) the check of the namespace's
// NetworkPolicies against the model with nal in place.
func (v *AllowlistValidator) keepsTenantPolicies(ctx context.Context, s *sessions, nal *v1alpha1.NetworkAllowlist, warnings admission.Warnings) (admission.Warnings, error) {
	errs, more, err := v.strandedPolicies(ctx, s, nal.Namespace, nal.Name, nal, field.NewPath("spec"))
	warnings = append(warnings, validation.Strings(more)...)
	if err != nil {
		return warnings, err
	}
	return warnings, invalid(v1alpha1.GroupVersion.WithKind("NetworkAllowlist").GroupKind(), nal.Name, errs)
}

// sessions are the lookups of one admission request: each distinct object
// is read at most once per source (the cache, the API server), however many
// peers name it and whichever check asks (lookup.Session). A session is
// made when first asked for; nil when its Cluster is.
type sessions struct {
	ctx          context.Context
	cached, live *lookup.Cluster
	c, l         *lookup.Session
}

func (v *AllowlistValidator) sessions(ctx context.Context) *sessions {
	return &sessions{ctx: ctx, cached: v.Cached, live: v.Live}
}

func (s *sessions) cachedSession() *lookup.Session {
	if s.c == nil && s.cached != nil {
		s.c = s.cached.Session(s.ctx)
	}
	return s.c
}

func (s *sessions) liveSession() *lookup.Session {
	if s.l == nil && s.live != nil {
		s.l = s.live.Session(s.ctx)
	}
	return s.l
}

// validate checks nal, ratcheted against old when old is not nil, with the
// request's lookups s.
func (v *AllowlistValidator) validate(s *sessions, nal, old *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	var cluster validation.Cluster
	if c := s.cachedSession(); c != nil {
		cluster = c
	}
	errs, warnings := validation.ValidateNetworkAllowlistUpdate(nal, old, v.Config, cluster)
	if v.Live != nil && fromLookups(nal, old, v.Config, errs, warnings) {
		errs, warnings = validation.ValidateNetworkAllowlistUpdate(nal, old, v.Config, s.liveSession())
	}
	return validation.Strings(warnings), invalid(v1alpha1.GroupVersion.WithKind("NetworkAllowlist").GroupKind(), nal.Name, errs)
}

// fromLookups reports whether any of the findings came from a lookup: whether
// they differ from the findings without lookups. Those that need none (a /0
// ipBlock, an overlap with the pod network, a malformed port) are the same
// from any source and are never checked again against the API server.
func fromLookups(nal, old *v1alpha1.NetworkAllowlist, cfg validation.Config, errs field.ErrorList, warnings []validation.Warning) bool {
	if len(errs) == 0 && len(warnings) == 0 {
		return false
	}
	plainErrs, plainWarnings := validation.ValidateNetworkAllowlistUpdate(nal, old, cfg, nil)
	if len(plainErrs) != len(errs) || !slices.Equal(plainWarnings, warnings) {
		return true
	}
	for i := range errs {
		if errs[i].Error() != plainErrs[i].Error() {
			return true
		}
	}
	return false
}

// invalid returns nil for no errors and otherwise the API's Invalid status
// error, which carries every field path to the client.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(gk, name, errs)
}
