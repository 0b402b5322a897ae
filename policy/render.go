package policy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// Input is one project: its Namespace and every NetworkAllowlist in it, and
// the cluster-wide facts its policies may depend on.
type Input struct {
	Namespace  *corev1.Namespace
	Allowlists []*v1alpha1.NetworkAllowlist

	// NodeAddresses are the addresses of every node (see NodeAddresses);
	// used only with Config.AllowIngressFromNodes. Order and duplicates do
	// not matter.
	NodeAddresses []netip.Addr
	// APIServer are the endpoints of the Kubernetes API server (see
	// APIServerEndpoints), for kubernetesAPI peers; empty when unknown.
	APIServer []Endpoints
}

// Result is everything moat must own in the namespace.
type Result struct {
	// Policies are the desired NetworkPolicies, sorted by name; empty when
	// isolation is off.
	Policies []networkingv1.NetworkPolicy `json:"policies,omitempty"`
	// Allowlists holds, by allowlist name, one entry per input allowlist.
	Allowlists map[string]AllowlistResult `json:"allowlists,omitempty"`
}

// AllowlistResult is what status must say about one allowlist.
type AllowlistResult struct {
	// Policies names the NetworkPolicies generated from the allowlist, sorted.
	Policies []string `json:"policies,omitempty"`
	// Problems say why parts of the allowlist are not in force; empty when
	// the allowlist is fully applied.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one reason why part of an allowlist is not in force.
type Problem struct {
	// Reason is one of the v1alpha1.Reason* constants.
	Reason string `json:"reason"`
	// Field is the path of the offending part, e.g.
	// spec.egress[0].to[1].service; empty when the whole allowlist is
	// concerned.
	Field string `json:"field,omitempty"`
	// Message explains the problem to a human.
	Message string `json:"message"`
}

// Render computes the NetworkPolicies moat must own in the namespace of in
// and what each allowlist's status must report: Compute, then Model.Render.
// It is deterministic: the same namespace, allowlists (in any order),
// Services and configuration give identical results.
//
// A nil services is a cluster without Services: every Service peer is then
// reported as not found. Render returns an error only when a Services lookup
// fails; it never returns a partial Result in that case.
func Render(in Input, services Services, cfg Config) (Result, error) {
	m, err := Compute(in, services, cfg)
	if err != nil {
		return Result{}, err
	}
	return m.Render(), nil
}

// Render returns the NetworkPolicies that enforce the model, sorted by name,
// and what each allowlist's status must say:
//
//   - moat-default-ingress, the deny: one rule admitting the namespace
//     itself and the allowed namespaces and CIDRs;
//   - moat-group-ingress and moat-nodes-ingress, when there is anything to
//     admit: one rule admitting the project group, the nodes' addresses;
//   - moat-default-egress, while egress is restricted: the same for egress,
//     one rule per port list (the namespace itself; the DNS pods and DNS
//     caches, which share a rule when their ports agree);
//   - moat-allowlist-<name> per allowlist that has a policy, owned by the
//     allowlist: one rule per declared rule and port list, in order of
//     first appearance. An allowlist whose peers are all dropped keeps its
//     policy, with policyTypes but no rules: it allows nothing, and its
//     name in the status does not flicker while a Service comes and goes.
//
// A model that enforces nothing renders no policy.
func (m Model) Render() Result {
	result := Result{Allowlists: make(map[string]AllowlistResult, len(m.Allowlists))}
	for _, am := range m.Allowlists {
		status := AllowlistResult{Problems: am.Problems}
		if am.Policy != "" {
			status.Policies = []string{am.Policy}
		}
		result.Allowlists[am.Name] = status
	}
	if !m.Enforced {
		return result
	}
	ingress, egress := byAllowlist(m.Ingress), byAllowlist(m.Egress)
	deny, extensions := splitExtensions(ingress[""])
	np := newPolicy(m.Namespace, DefaultIngressPolicyName, networkingv1.PolicyTypeIngress)
	np.Spec.Ingress = ingressRules(deny)
	policies := []networkingv1.NetworkPolicy{np}
	for _, ext := range extensionPolicies {
		if admissions := extensions[ext.flag]; len(admissions) > 0 {
			np := newPolicy(m.Namespace, ext.name, networkingv1.PolicyTypeIngress)
			np.Spec.Ingress = ingressRules(admissions)
			policies = append(policies, np)
		}
	}
	if m.EgressRestricted {
		np := newPolicy(m.Namespace, DefaultEgressPolicyName, networkingv1.PolicyTypeEgress)
		np.Spec.Egress = egressRules(egress[""])
		policies = append(policies, np)
	}
	for _, am := range m.Allowlists {
		if am.Policy != "" {
			policies = append(policies, allowlistPolicy(m.Namespace, am, ingress[am.Name], egress[am.Name]))
		}
	}
	slices.SortStableFunc(policies, func(a, b networkingv1.NetworkPolicy) int {
		return cmp.Compare(a.Name, b.Name)
	})
	result.Policies = policies
	return result
}

// extensionPolicies are the policies that extend moat-default-ingress, by
// the flag whose admissions each holds.
var extensionPolicies = []struct{ flag, name string }{
	{FlagProjectLabel, GroupIngressPolicyName},
	{FlagAllowIngressFromNodes, NodesIngressPolicyName},
}

// PolicyOf names the NetworkPolicy of the model's namespace that Render
// writes admission a (of m.Ingress, or of m.Egress when egress) into; empty
// for an allowlist that has no policy.
func (m Model) PolicyOf(a Admission, egress bool) string {
	if a.Source.Allowlist != "" {
		for _, am := range m.Allowlists {
			if am.Name == a.Source.Allowlist {
				return am.Policy
			}
		}
		return ""
	}
	if egress {
		return DefaultEgressPolicyName
	}
	for _, ext := range extensionPolicies {
		if ext.flag == a.Source.Flag {
			return ext.name
		}
	}
	return DefaultIngressPolicyName
}

// splitExtensions splits the ingress the isolation and the flags admit into
// the deny policy's (the namespace itself, the allowed namespaces and
// CIDRs: bounded by the flags) and, by flag, the extensions' (the project
// group, the nodes' addresses: inputs others control).
func splitExtensions(admissions []Admission) (deny []Admission, extensions map[string][]Admission) {
	extensions = map[string][]Admission{}
	for _, a := range admissions {
		switch a.Source.Flag {
		case FlagProjectLabel, FlagAllowIngressFromNodes:
			extensions[a.Source.Flag] = append(extensions[a.Source.Flag], a)
		default:
			deny = append(deny, a)
		}
	}
	return deny, extensions
}

// allowlistPolicy is the NetworkPolicy of one allowlist.
func allowlistPolicy(namespace string, am AllowlistModel, ingress, egress []Admission) networkingv1.NetworkPolicy {
	var types []networkingv1.PolicyType
	if am.Ingress {
		types = append(types, networkingv1.PolicyTypeIngress)
	}
	if am.Egress {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	np := newPolicy(namespace, am.Policy, types...)
	if len(validation.IsValidLabelValue(am.Name)) == 0 {
		np.Labels[AllowlistLabel] = am.Name
	}
	// An owner reference needs a UID; allowlists rendered offline have none.
	if am.UID != "" {
		np.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         v1alpha1.GroupVersion.String(),
			Kind:               "NetworkAllowlist",
			Name:               am.Name,
			UID:                am.UID,
			Controller:         ptr.To(true),
			BlockOwnerDeletion: ptr.To(true),
		}}
	}
	np.Spec.Ingress = ingressRules(ingress)
	np.Spec.Egress = egressRules(egress)
	return np
}

// byAllowlist splits admissions by the allowlist they come from ("" for the
// isolation and the flags), keeping their order.
func byAllowlist(admissions []Admission) map[string][]Admission {
	out := map[string][]Admission{}
	for _, a := range admissions {
		out[a.Source.Allowlist] = append(out[a.Source.Allowlist], a)
	}
	return out
}

// rule is one generated NetworkPolicy rule: peers that share a port list.
type rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

// rules groups admissions into rules: one per source rule and port list, in
// order of first appearance. Each rule owns its port list.
func rules(admissions []Admission) []rule {
	type key struct {
		rule  int
		ports string
	}
	var out []rule
	index := map[key]int{}
	for _, a := range admissions {
		k := key{a.Source.Rule, portsKey(a.Ports)}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, rule{ports: clonePorts(a.Ports)})
		}
		out[i].peers = append(out[i].peers, a.Peer.NetworkPolicyPeer())
	}
	return out
}

func ingressRules(admissions []Admission) []networkingv1.NetworkPolicyIngressRule {
	var out []networkingv1.NetworkPolicyIngressRule
	for _, r := range rules(admissions) {
		out = append(out, networkingv1.NetworkPolicyIngressRule{From: r.peers, Ports: r.ports})
	}
	return out
}

func egressRules(admissions []Admission) []networkingv1.NetworkPolicyEgressRule {
	var out []networkingv1.NetworkPolicyEgressRule
	for _, r := range rules(admissions) {
		out = append(out, networkingv1.NetworkPolicyEgressRule{To: r.peers, Ports: r.ports})
	}
	return out
}

// renderer holds what one Render call shares: the namespace and the Service
// lookups, each Service looked up at most once.
type renderer struct {
	namespace string
	services  Services
	cache     map[serviceKey]*corev1.Service
	// projectLabel is Config.ProjectLabel; apiServer is Input.APIServer.
	projectLabel string
	apiServer    []Endpoints
}

type serviceKey struct{ namespace, name string }

// service returns the named Service, or nil when it does not exist.
func (r *renderer) service(namespace, name string) (*corev1.Service, error) {
	key := serviceKey{namespace, name}
	if svc, ok := r.cache[key]; ok {
		return svc, nil
	}
	var svc *corev1.Service
	if r.services != nil {
		var err error
		if svc, err = r.services.Service(namespace, name); err != nil {
			return nil, fmt.Errorf("looking up Service %s/%s: %w", namespace, name, err)
		}
	}
	r.cache[key] = svc
	return svc, nil
}

// uniqueAllowlists returns the allowlists sorted by name, without nil
// entries and with one allowlist per name. Names are unique in a namespace;
// should the input repeat one (the same manifest given twice offline), the
// first in a stable order (UID, then spec) is used, so the input order never
// matters.
func uniqueAllowlists(in []*v1alpha1.NetworkAllowlist) []*v1alpha1.NetworkAllowlist {
	allowlists := make([]*v1alpha1.NetworkAllowlist, 0, len(in))
	for _, al := range in {
		if al != nil {
			allowlists = append(allowlists, al)
		}
	}
	slices.SortFunc(allowlists, func(a, b *v1alpha1.NetworkAllowlist) int {
		if c := cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID)); c != 0 {
			return c
		}
		// Only reached for a repeated name and UID.
		specA, _ := json.Marshal(a.Spec)
		specB, _ := json.Marshal(b.Spec)
		return bytes.Compare(specA, specB)
	})
	return slices.CompactFunc(allowlists, func(a, b *v1alpha1.NetworkAllowlist) bool {
		return a.Name == b.Name
	})
}

func isolationDisabled(ns *corev1.Namespace) Problem {
	name := "the namespace"
	if ns != nil {
		name = fmt.Sprintf("namespace %q", ns.Name)
	}
	return Problem{
		Reason: v1alpha1.ReasonIsolationDisabled,
		Message: fmt.Sprintf("%s is not isolated, so no NetworkPolicy is generated; label it %s=true to enforce this allowlist",
			name, v1alpha1.IsolationLabel),
	}
}

// nameTaken reports an allowlist whose policy name is already generated for
// another allowlist (other) of the namespace, or for a default policy when
// other is empty.
func nameTaken(policyName, other string) Problem {
	by := "a default policy of the namespace"
	if other != "" {
		by = fmt.Sprintf("allowlist %q", other)
	}
	return Problem{
		Reason: v1alpha1.ReasonPolicyConflict,
		Field:  "metadata.name",
		Message: fmt.Sprintf("the NetworkPolicy name %q generated for this allowlist is already generated for %s (long names are shortened with a hash); nothing is generated for this allowlist: give it a shorter name",
			policyName, by),
	}
}

// declaresEgress reports whether any allowlist declares an egress rule.
// Declared rules count, not resolved peers: an egress rule whose Service
// peers are all dropped still closes egress (fail closed).
func declaresEgress(allowlists []*v1alpha1.NetworkAllowlist) bool {
	return v1alpha1.RestrictsEgress(allowlists)
}

// newPolicy returns a NetworkPolicy with moat's TypeMeta, name, namespace and
// managed-by label, selecting every pod of the namespace.
func newPolicy(namespace, name string, types ...networkingv1.PolicyType) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{
			APIVersion: networkingv1.SchemeGroupVersion.String(),
			Kind:       "NetworkPolicy",
		},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    ManagedLabels(),
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: types,
		},
	}
}

// namespaceSelector selects the named namespace by its immutable
// kubernetes.io/metadata.name label.
func namespaceSelector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: name}}
}
