package manifest

import (
	networkingv1 "k8s.io/api/networking/v1"

	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// tenantCandidate reports whether o is a NetworkPolicy that the tenant rule
// could refuse in some isolated namespace: one that admits more than the
// narrowest model moat ever has (policy.NarrowestModel). A wider model never
// refuses more, so every other policy passes wherever it
// is.
func tenantCandidate(o *Object) bool {
	np, ok := o.Object.(*networkingv1.NetworkPolicy)
	if !ok || policy.IsManaged(np) {
		return false
	}
	return len(validation.ValidateTenantNetworkPolicyAgainst(np, policy.NarrowestModel(np.Namespace))) > 0
}

// tenantFindings appends what validation.ValidateTenantNetworkPolicy says
// about the NetworkPolicy o (nothing for other kinds and for policies moat
// manages), with its namespace and allowlists from the manifests or the
// cluster: errors or warnings by cfg.TenantNetworkPolicies. moat validate
// does not know who will apply the manifests; an admin whose policies are
// meant to open a project runs it with --tenant-network-policies=warn.
func tenantFindings(out []Finding, o *Object, cluster validation.Cluster, cfg validation.Config) []Finding {
	if !tenantCandidate(o) {
		return out
	}
	np := o.Object.(*networkingv1.NetworkPolicy)
	ns, err := cluster.Namespace(np.Namespace)
	if err != nil || ns == nil {
		return out
	}
	allowlists, err := cluster.Allowlists(np.Namespace)
	if err != nil {
		return out
	}
	errs, warnings := cfg.TenantNetworkPolicies.Findings(validation.ValidateTenantNetworkPolicy(np, ns, allowlists, cfg, cluster))
	at := func(sev Severity, fld, msg string) Finding {
		return Finding{File: o.File, Line: o.Line, Kind: o.Kind, Namespace: np.Namespace, Name: np.Name, Field: fld, Message: msg, Severity: sev}
	}
	return appendFindings(out, at, errs, warnings)
}
