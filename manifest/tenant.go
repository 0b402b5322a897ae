package manifest

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

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
	x   *Index
	cfg validation.Config
	// models holds each namespace's model; nil when there is none to
	// check against (no such namespace, or a failed lookup).
	models map[string]*tenantModel
}

// tenantModel is a namespace's model, indexed, and whether it depends on
// objects without metadata.namespace (an allowlist of the namespace, or a
// Service that the model looked up), which kubectl apply may put elsewhere.
type tenantModel struct {
	index          *policy.ModelIndex
	dependsOnUnset bool
}

func newTenantRule(x *Index, cfg validation.Config) *tenantRule {
	return &tenantRule{x: x, cfg: cfg, models: map[string]*tenantModel{}}
}

// findings appends what the tenant rule says about the NetworkPolicy o
// (nothing for other kinds and for policies moat manages), with its
// namespace and allowlists from the manifests or the cluster: errors or
// warnings by cfg.TenantNetworkPolicies. moat validate does not know who
// will apply the manifests; an admin whose policies are meant to open a
// project runs it with --tenant-network-policies=warn. probe, when not nil,
// notes the lookups that depend on unset namespaces, as the other checks'.
func (r *tenantRule) findings(out []Finding, o *Object, probe *namespaceProbe) []Finding {
	if r.cfg.TenantNetworkPolicies.Effective() == validation.TenantPoliciesOff || !tenantCandidate(o) {
		return out
	}
	np := o.Object.(*networkingv1.NetworkPolicy)
	if probe != nil {
		probe.in(np.Namespace) // the policy's Namespace
	}
	m := r.model(np.Namespace)
	if m == nil {
		return out
	}
	if probe != nil {
		probe.dependsOn = probe.dependsOn || m.dependsOnUnset
	}
	errs, warnings := r.cfg.TenantNetworkPolicies.Findings(validation.ValidateTenantNetworkPolicyAgainstIndex(np, m.index))
	at := func(sev Severity, fld, msg string) Finding {
		return Finding{File: o.File, Line: o.Line, Kind: o.Kind, Namespace: np.Namespace, Name: np.Name, Field: fld, Message: msg, Severity: sev}
	}
	return appendFindings(out, at, errs, warnings)
}

// model returns the tenant model of a namespace (validation.TenantModel),
// computed and indexed on first use; nil when the namespace is not defined
// or a lookup fails.
func (r *tenantRule) model(namespace string) *tenantModel {
	if m, ok := r.models[namespace]; ok {
		return m
	}
	var m *tenantModel
	ns, err := r.x.Namespace(namespace)
	if err == nil && ns != nil {
		if allowlists, err := r.x.Allowlists(namespace); err == nil {
			lookups := &unsetServices{Index: r.x}
			m = &tenantModel{index: validation.TenantModel(ns, allowlists, r.cfg, lookups).Index()}
			m.dependsOnUnset = lookups.found || r.x.unsetKinds()[kindIn{"NetworkAllowlist", namespace}]
		}
	}
	r.models[namespace] = m
	return m
}

// unsetServices is the index, noting whether a Service it answers with has
// no metadata.namespace.
type unsetServices struct {
	*Index
	found bool
}

func (u *unsetServices) Service(namespace, name string) (*corev1.Service, error) {
	if o := u.services[types.NamespacedName{Namespace: namespace, Name: name}]; o != nil && o.NamespaceUnset {
		u.found = true
	}
	return u.Index.Service(namespace, name)
}
