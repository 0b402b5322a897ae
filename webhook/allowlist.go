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
// warnings.
type AllowlistValidator struct {
	// Config is the cluster configuration the rules depend on.
	Config validation.Config
	// Cached answers lookups in the common case (the manager's cache).
	Cached *lookup.Cluster
	// Live, when set, answers the lookups again when the cached answer
	// rejects the allowlist or warns about it, so a stale cache (a Service
	// created a moment ago) never decides the outcome.
	Live *lookup.Cluster
}

var _ admission.Validator[*v1alpha1.NetworkAllowlist] = &AllowlistValidator{}

// ValidateCreate checks a new allowlist.
func (v *AllowlistValidator) ValidateCreate(ctx context.Context, nal *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return v.validate(ctx, nal, nil)
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
	return v.validate(ctx, newObj, oldObj)
}

// ValidateDelete admits every deletion.
func (v *AllowlistValidator) ValidateDelete(context.Context, *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	return nil, nil
}

// validate checks nal, ratcheted against old when old is not nil. Each
// distinct object is read at most once per source in this request, however
// many peers name it (lookup.Session).
func (v *AllowlistValidator) validate(ctx context.Context, nal, old *v1alpha1.NetworkAllowlist) (admission.Warnings, error) {
	var cluster validation.Cluster
	if v.Cached != nil {
		cluster = v.Cached.Session(ctx)
	}
	errs, warnings := validation.ValidateNetworkAllowlistUpdate(nal, old, v.Config, cluster)
	if v.Live != nil && fromLookups(nal, old, v.Config, errs, warnings) {
		errs, warnings = validation.ValidateNetworkAllowlistUpdate(nal, old, v.Config, v.Live.Session(ctx))
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
