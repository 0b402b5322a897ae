package validation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// What moat admits changes (an allowlist deleted or narrowed, a namespace
// moved to another project group, a Service's selector changed, egress
// restricted, another configuration): the NetworkPolicies that tenants wrote
// against the old model are checked again against the new one. This file
// holds the pure parts of that: a key that changes whenever the tenant model
// does, whether a change can shrink it, and which policies a change strands.

// TenantModelKey identifies what a tenant model admits: two models with the
// same key admit the same connections from the same sources, so a tenant
// policy checked against one needs no new check against the other. A model
// that enforces nothing has the key "off".
func TenantModelKey(m policy.Model) string {
	if !m.Enforced {
		return "off"
	}
	b, err := json.Marshal(struct {
		Namespace        string
		Ingress          []policy.Admission
		EgressRestricted bool
		Egress           []policy.Admission
	}{m.Namespace, m.Ingress, m.EgressRestricted, m.Egress})
	if err != nil {
		// Admissions are plain data; this does not happen. A key that
		// never matches makes every check run again.
		return "unkeyed: " + err.Error()
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ModelMayShrink reports whether after can admit something that before
// admits no longer: an admission of before that after lacks, or egress that
// becomes restricted. When it returns false, every NetworkPolicy inside
// before is inside after.
func ModelMayShrink(before, after policy.Model) bool {
	if !before.Enforced {
		// Nothing was checked against before; after is checked on its own.
		return after.Enforced
	}
	if !after.Enforced {
		return false
	}
	if !containsAll(after.Ingress, before.Ingress) {
		return true
	}
	switch {
	case !after.EgressRestricted:
		return false
	case !before.EgressRestricted:
		return true
	default:
		return !containsAll(after.Egress, before.Egress)
	}
}

// containsAll reports whether every admission of sub is in set (equal peer,
// ports and source).
func containsAll(set, sub []policy.Admission) bool {
	keys := make(map[string]bool, len(set))
	for _, a := range set {
		keys[admissionKey(a)] = true
	}
	for _, a := range sub {
		if !keys[admissionKey(a)] {
			return false
		}
	}
	return true
}

func admissionKey(a policy.Admission) string {
	b, err := json.Marshal(a)
	if err != nil {
		return "unkeyed: " + err.Error()
	}
	return string(b)
}

// AllowlistsAfter returns the allowlists of a namespace as they will be once
// the allowlist named name is replaced by changed (nil: deleted). stored is
// not modified.
func AllowlistsAfter(stored []*v1alpha1.NetworkAllowlist, name string, changed *v1alpha1.NetworkAllowlist) []*v1alpha1.NetworkAllowlist {
	out := make([]*v1alpha1.NetworkAllowlist, 0, len(stored)+1)
	for _, al := range stored {
		if al.Name != name {
			out = append(out, al)
		}
	}
	if changed != nil {
		out = append(out, changed)
	}
	return out
}

// StrandedPolicy is a NetworkPolicy that a change of the model leaves
// admitting traffic beyond what moat admits.
type StrandedPolicy struct {
	// Name is the NetworkPolicy's name.
	Name string
	// Findings are ValidateTenantNetworkPolicyAgainst's errors against the
	// new model that the policy did not have against the old one.
	Findings field.ErrorList
}

// StrandedTenantPolicies returns, in the order of policies, each policy not
// managed by moat that the change from before to after strands: its findings
// against after at field paths where it had none against before. A policy
// that already admitted more than before (stored before its namespace was
// isolated, or while the check was off) is stranded only by what the change
// adds to it.
func StrandedTenantPolicies(policies []*networkingv1.NetworkPolicy, before, after policy.Model) []StrandedPolicy {
	var out []StrandedPolicy
	for _, np := range policies {
		if np == nil || policy.IsManaged(np) {
			continue
		}
		errs := ValidateTenantNetworkPolicyAgainst(np, after)
		if len(errs) == 0 {
			continue
		}
		had := map[string]bool{}
		for _, e := range ValidateTenantNetworkPolicyAgainst(np, before) {
			had[e.Field] = true
		}
		var added field.ErrorList
		for _, e := range errs {
			if !had[e.Field] {
				added = append(added, e)
			}
		}
		if len(added) > 0 {
			out = append(out, StrandedPolicy{Name: np.Name, Findings: added})
		}
	}
	return out
}

// ValidateTenantPoliciesKept refuses an allowlist change (at fldPath: spec
// for an update, metadata.name for a delete) that strands a tenant
// NetworkPolicy of the namespace (StrandedTenantPolicies): one Forbidden
// error per stranded policy, naming it and what it would admit beyond moat.
// The tenant narrows or deletes those policies first.
func ValidateTenantPoliciesKept(fldPath *field.Path, stranded []StrandedPolicy) field.ErrorList {
	var errs field.ErrorList
	for _, s := range stranded {
		findings := make([]string, 0, len(s.Findings))
		for _, f := range s.Findings {
			findings = append(findings, f.Field+": "+FindingSummary(f))
		}
		errs = append(errs, field.Forbidden(fldPath, fmt.Sprintf(
			"NetworkPolicy %s would admit traffic beyond what moat admits once this change is made (%s): narrow or delete that policy first",
			s.Name, strings.Join(findings, "; "))))
	}
	return errs
}

// FindingSummary is the detail of a finding of ValidateTenantNetworkPolicy
// without the advice that ends each one (what to do about it), for reports
// that list several findings and give the advice once.
func FindingSummary(e *field.Error) string {
	detail, _, _ := strings.Cut(e.Detail, tenantFixSeparator)
	return detail
}
