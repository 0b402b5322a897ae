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

// tenantRule applies the tenant rule (validation.ValidateTenantNetworkPolicy)
// to the NetworkPolicies of the manifests: each namespace's model is computed
// once, however many policies the namespace has, so the cost is linear in
// the number of policies plus allowlists.
type tenantRule struct {
	cluster validation.Cluster
	cfg     validation.Config
	// models holds each namespace's model; nil when there is none to
	// check against (no such namespace, or a failed lookup).
	models map[string]*policy.ModelIndex
}

func newTenantRule(cluster validation.Cluster, cfg validation.Config) *tenantRule {
	return &tenantRule{cluster: cluster, cfg: cfg, models: map[string]*policy.ModelIndex{}}
}

// findings appends what the tenant rule says about the NetworkPolicy o
// (nothing for other kinds and for policies moat manages), with its
// namespace and allowlists from the manifests or the cluster: errors or
// warnings by cfg.TenantNetworkPolicies. moat validate does not know who
// will apply the manifests; an admin whose policies are meant to open a
// project runs it with --tenant-network-policies=warn.
func (r *tenantRule) findings(out []Finding, o *Object) []Finding {
	if r.cfg.TenantNetworkPolicies.Effective() == validation.TenantPoliciesOff || !tenantCandidate(o) {
		return out
	}
	np := o.Object.(*networkingv1.NetworkPolicy)
	m := r.model(np.Namespace)
	if m == nil {
		return out
	}
	errs, warnings := r.cfg.TenantNetworkPolicies.Findings(validation.ValidateTenantNetworkPolicyAgainstIndex(np, m))
	at := func(sev Severity, fld, msg string) Finding {
		return Finding{File: o.File, Line: o.Line, Kind: o.Kind, Namespace: np.Namespace, Name: np.Name, Field: fld, Message: msg, Severity: sev}
	}
	return appendFindings(out, at, errs, warnings)
}

// model returns the tenant model of a namespace (validation.TenantModel),
// computed and indexed on first use; nil when the namespace is not defined or a lookup
// fails.
func (r *tenantRule) model(namespace string) *policy.ModelIndex {
	if m, ok := r.models[namespace]; ok {
		return m
	}
	var m *policy.ModelIndex
	ns, err := r.cluster.Namespace(namespace)
	if err == nil && ns != nil {
		if allowlists, err := r.cluster.Allowlists(namespace); err == nil {
			m = validation.TenantModel(ns, allowlists, r.cfg, r.cluster).Index()
		}
	}
	r.models[namespace] = m
	return m
}
