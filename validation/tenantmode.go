package validation

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TenantPolicyMode says what happens to a NetworkPolicy that admits traffic
// beyond what moat admits in an isolated namespace (moat serve
// --tenant-network-policies).
type TenantPolicyMode string

const (
	// TenantPoliciesRestrict refuses such a policy (the default).
	TenantPoliciesRestrict TenantPolicyMode = "restrict"
	// TenantPoliciesWarn admits it with a warning.
	TenantPoliciesWarn TenantPolicyMode = "warn"
	// TenantPoliciesOff does not check NetworkPolicies against isolation.
	TenantPoliciesOff TenantPolicyMode = "off"
)

// TenantPolicyModes lists the valid modes, the default first.
var TenantPolicyModes = []TenantPolicyMode{TenantPoliciesRestrict, TenantPoliciesWarn, TenantPoliciesOff}

// ParseTenantPolicyMode returns the mode named s, or an error that lists the
// valid ones.
func ParseTenantPolicyMode(s string) (TenantPolicyMode, error) {
	if m := TenantPolicyMode(s); slices.Contains(TenantPolicyModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("%q is not a tenant NetworkPolicy mode: use restrict (refuse policies that open an isolated namespace), warn (admit them with a warning) or off", s)
}

// Effective returns the mode, with "" meaning TenantPoliciesRestrict.
func (m TenantPolicyMode) Effective() TenantPolicyMode {
	if m == "" {
		return TenantPoliciesRestrict
	}
	return m
}

// Findings splits the errors of ValidateTenantNetworkPolicy by mode:
// errors under restrict, warnings under warn, nothing under off.
func (m TenantPolicyMode) Findings(errs field.ErrorList) (field.ErrorList, []Warning) {
	switch m.Effective() {
	case TenantPoliciesRestrict:
		return errs, nil
	case TenantPoliciesWarn:
		warnings := make([]Warning, 0, len(errs))
		for _, e := range errs {
			warnings = append(warnings, Warning{Field: e.Field, Detail: e.Detail})
		}
		return nil, warnings
	default:
		return nil, nil
	}
}
