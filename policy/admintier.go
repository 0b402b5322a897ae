package policy

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Enforcement is how moat enforces a model: with NetworkPolicies only
// (the default), or with admin-tier policies of sigs.k8s.io/network-policy-api
// on top of them, which a tenant's NetworkPolicy cannot widen.
type Enforcement string

const (
	// EnforcementNetworkPolicy writes NetworkPolicies only (Model.Render).
	EnforcementNetworkPolicy Enforcement = "networkpolicy"
	// EnforcementAdminNetworkPolicy also writes AdminNetworkPolicies
	// (policy.networking.k8s.io/v1alpha1; Model.AdminNetworkPolicies).
	EnforcementAdminNetworkPolicy Enforcement = "adminnetworkpolicy"
	// EnforcementClusterNetworkPolicy also writes ClusterNetworkPolicies of
	// the Admin tier (policy.networking.k8s.io/v1beta1;
	// Model.ClusterNetworkPolicies).
	EnforcementClusterNetworkPolicy Enforcement = "clusternetworkpolicy"
)

// Enforcements lists every Enforcement, the default first.
var Enforcements = []Enforcement{EnforcementNetworkPolicy, EnforcementAdminNetworkPolicy, EnforcementClusterNetworkPolicy}

// ParseEnforcement reads an Enforcement by name.
func ParseEnforcement(s string) (Enforcement, error) {
	for _, e := range Enforcements {
		if string(e) == s {
			return e, nil
		}
	}
	return "", fmt.Errorf("unknown enforcement %q: use one of %s", s, JoinEnforcements())
}

// JoinEnforcements lists the Enforcements as "a, b or c".
func JoinEnforcements() string {
	return fmt.Sprintf("%s, %s or %s", Enforcements[0], Enforcements[1], Enforcements[2])
}

// AdminTier reports whether e writes admin-tier policies.
func (e Enforcement) AdminTier() bool {
	return e == EnforcementAdminNetworkPolicy || e == EnforcementClusterNetworkPolicy
}

// Admin-tier priorities: moat's objects hold two adjacent priorities of the
// cluster-wide space 0-1000 (lower wins). Each isolated namespace's main
// object, with the Deny rules, is at the configured priority; the objects
// that a namespace needs when its Pass rules overflow one object are one
// lower, so every Pass precedes the Deny. Subjects are disjoint (one
// namespace each), so all namespaces share the two priorities.
const (
	DefaultAdminTierPriority int32 = 20
	MinAdminTierPriority     int32 = 1
	MaxAdminTierPriority     int32 = 1000
)

// AdminTierNamespaceLabel names, on an admin-tier object, the namespace it
// isolates: the controller lists a namespace's objects by it.
const AdminTierNamespaceLabel = "moat.dev/namespace"

// AdminTierName is the name of the part-th admin-tier object of namespace
// (0: the main object, with the Deny rules): "moat-isolation-<namespace>",
// then ".1", ".2", ... The part is set off by a dot, which a namespace name
// cannot hold, so that no namespace's object takes the name of another's
// (with "-1", namespace team's first overflow object would be namespace
// team-1's main object). A namespace name (at most 63 characters) always
// fits in an object name (a DNS subdomain, at most 253).
func AdminTierName(namespace string, part int) string {
	name := ReservedPolicyNamePrefix + "isolation-" + namespace
	if part > 0 {
		name = fmt.Sprintf("%s.%d", name, part)
	}
	return name
}

// AdminTierLabels are the labels of every admin-tier object of namespace.
func AdminTierLabels(namespace string) map[string]string {
	labels := ManagedLabels()
	labels[AdminTierNamespaceLabel] = namespace
	return labels
}

// adminLimits are the per-object bounds of an admin-tier API (its CRD's
// MaxItems): rules per direction, peers and ports per rule, networks per peer.
type adminLimits struct{ rules, peers, ports, networks int }

var (
	anpLimits = adminLimits{rules: 100, peers: 100, ports: 100, networks: 25}
	cnpLimits = adminLimits{rules: 25, peers: 25, ports: 25, networks: 25}
)

// maxRuleNameLength is the longest rule name both APIs accept.
const maxRuleNameLength = 100

// adminPeer is one admin-tier peer: exactly one field is set.
type adminPeer struct {
	namespaces *metav1.LabelSelector
	pods       *podsPeer
	networks   []string
}

type podsPeer struct{ namespaces, pods metav1.LabelSelector }

// adminRule is one admin-tier rule before it is typed to an API. ports nil
// means every port of every protocol.
type adminRule struct {
	name  string
	deny  bool
	peers []adminPeer
	ports []networkingv1.NetworkPolicyPort
}

// adminObject is one admin-tier object before it is typed to an API.
type adminObject struct {
	name            string
	priority        int32
	ingress, egress []adminRule
}

// adminObjects lays the model out as admin-tier objects within lim: for
// each direction that moat restricts, a Pass rule per admitted peer group
// (what the model admits is handed on to the NetworkPolicy tier), then a
// Deny rule: ingress from every namespace, egress (once restricted) to every
// namespace and every address. Ingress from addresses (ipBlock peers,
// --allowed-ingress-cidrs, node addresses) is not expressible at the admin
// tier (its ingress peers are namespaces and pods only) and stays with the
// NetworkPolicy tier. A model that enforces nothing has no objects.
func (m Model) adminObjects(priority int32, lim adminLimits) ([]adminObject, error) {
	if !m.Enforced {
		return nil, nil
	}
	ingress := m.passRules(m.Ingress, false, lim)
	var egress []adminRule
	if m.EgressRestricted {
		egress = m.passRules(m.Egress, true, lim)
	}
	main, ingress, egress := m.mainObject(priority, lim, ingress, egress)
	if (len(ingress) > 0 || len(egress) > 0) && priority < MinAdminTierPriority {
		return nil, fmt.Errorf("namespace %s needs more than one admin-tier object, whose Pass rules go one priority above the Deny: set --admin-tier-priority to at least %d", m.Namespace, MinAdminTierPriority)
	}
	objects := []adminObject{main}
	for part := 1; len(ingress) > 0 || len(egress) > 0; part++ {
		o := adminObject{name: AdminTierName(m.Namespace, part), priority: priority - 1}
		ingress = takeInto(&o.ingress, ingress, lim.rules)
		egress = takeInto(&o.egress, egress, lim.rules)
		objects = append(objects, o)
	}
	return objects, nil
}

// mainObject is the namespace's object at priority: the first Pass rules
// of each direction that fit beside the Deny, then the Deny. It returns the
// Pass rules left for the overflow objects.
func (m Model) mainObject(priority int32, lim adminLimits, ingress, egress []adminRule) (main adminObject, restIn, restOut []adminRule) {
	main = adminObject{name: AdminTierName(m.Namespace, 0), priority: priority}
	restIn = takeInto(&main.ingress, ingress, lim.rules-1)
	main.ingress = append(main.ingress, adminRule{name: "deny ingress from other namespaces", deny: true,
		peers: []adminPeer{{namespaces: &metav1.LabelSelector{}}}})
	if !m.EgressRestricted {
		return main, restIn, nil
	}
	restOut = takeInto(&main.egress, egress, lim.rules-1)
	main.egress = append(main.egress, adminRule{name: "deny egress not allowlisted", deny: true,
		peers: []adminPeer{{namespaces: &metav1.LabelSelector{}}, {networks: []string{"0.0.0.0/0", "::/0"}}}})
	return main, restIn, restOut
}

// takeInto moves up to n rules from the front of rules to *dst and returns
// the rest.
func takeInto(dst *[]adminRule, rules []adminRule, n int) []adminRule {
	n = min(n, len(rules))
	*dst = append(*dst, rules[:n]...)
	return rules[n:]
}

// passRules groups admissions into Pass rules: one per source rule, port
// list and peer class (networks cannot share a rule with named ports), in
// order of first appearance, each split to fit lim.
func (m Model) passRules(admissions []Admission, egress bool, lim adminLimits) []adminRule {
	type key struct {
		source   Source
		ports    string
		networks bool
	}
	var groups []adminRule
	index := map[key]int{}
	for _, a := range admissions {
		peers, ok := m.adminPeers(a, egress, lim.networks)
		if !ok {
			continue
		}
		k := key{Source{Flag: a.Source.Flag, Allowlist: a.Source.Allowlist, Rule: a.Source.Rule}, portsKey(a.Ports), peers[0].networks != nil}
		i, seen := index[k]
		if !seen {
			i = len(groups)
			index[k] = i
			groups = append(groups, adminRule{name: ruleName(a.Source, egress), ports: clonePorts(a.Ports)})
		}
		groups[i].peers = append(groups[i].peers, peers...)
	}
	var out []adminRule
	for _, g := range groups {
		out = append(out, splitRule(g, lim)...)
	}
	return out
}

// splitRule splits a rule into rules of at most lim.peers peers and
// lim.ports ports: together they admit exactly what it admits.
func splitRule(r adminRule, lim adminLimits) []adminRule {
	var out []adminRule
	for peers := range chunks(r.peers, lim.peers) {
		if r.ports == nil {
			out = append(out, adminRule{name: r.name, peers: peers})
			continue
		}
		for ports := range chunks(r.ports, lim.ports) {
			out = append(out, adminRule{name: r.name, peers: peers, ports: ports})
		}
	}
	return out
}

// chunks yields s in consecutive pieces of at most n elements.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// ruleName names a Pass rule after its source, within maxRuleNameLength.
func ruleName(s Source, egress bool) string {
	name := "pass " + s.String()
	if s.Allowlist != "" {
		dir := "ingress"
		if egress {
			dir = "egress"
		}
		name = fmt.Sprintf("pass allowlist %s spec.%s[%d]", s.Allowlist, dir, s.Rule)
	}
	if len(name) > maxRuleNameLength {
		name = name[:maxRuleNameLength]
	}
	return name
}

// adminPeers is the admission's peer at the admin tier: ok is false when
// the tier cannot express it (an ingress address, an address with a named
// port, an address range that excludes all of itself), which leaves it to
// the NetworkPolicy tier (ingress) or denies it (egress: fail closed). An
// address peer is its CIDR minus its exceptions, as disjoint prefixes of at
// most maxNetworks per peer.
func (m Model) adminPeers(a Admission, egress bool, maxNetworks int) ([]adminPeer, bool) {
	p := a.Peer
	switch p.Kind {
	case PeerSelf:
		return []adminPeer{{namespaces: namespaceSelector(m.Namespace)}}, true
	case PeerNamespace:
		return []adminPeer{{namespaces: namespaceSelector(p.Namespace)}}, true
	case PeerGroup:
		return []adminPeer{{namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{p.Label: p.Value}}}}, true
	case PeerPods:
		return []adminPeer{{pods: &podsPeer{namespaces: *namespaceSelector(p.Namespace),
			pods: metav1.LabelSelector{MatchLabels: maps.Clone(p.Selector)}}}}, true
	}
	if !egress || hasNamedPort(a.Ports) {
		return nil, false
	}
	networks := Subtract(parsePrefixes([]string{p.CIDR}), parsePrefixes(p.Except))
	var out []adminPeer
	for part := range chunks(networks, maxNetworks) {
		strs := make([]string, len(part))
		for i, n := range part {
			strs[i] = n.String()
		}
		out = append(out, adminPeer{networks: strs})
	}
	return out, len(out) > 0
}

func hasNamedPort(ports []networkingv1.NetworkPolicyPort) bool {
	for _, p := range ports {
		if p.Port != nil && p.Port.StrVal != "" {
			return true
		}
	}
	return false
}

// Subtract returns the addresses of from minus those of except as disjoint
// prefixes, sorted by address. Each except adds at most the address length
// in prefixes, so the result holds at most len(from) + len(except) × 128
// and the cost is O(len(except) × that); an allowlist's except list is
// bounded by its CRD (32 entries).
func Subtract(from, except []netip.Prefix) []netip.Prefix {
	out := slices.Clone(from)
	for _, e := range except {
		var next []netip.Prefix
		for _, p := range out {
			next = append(next, subtractOne(p, e)...)
		}
		out = next
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return out
}

// subtractOne returns p minus e: p when they do not overlap, nothing when e
// holds p, otherwise the sibling of every prefix on the path from p down to e.
func subtractOne(p, e netip.Prefix) []netip.Prefix {
	switch {
	case !p.Overlaps(e):
		return []netip.Prefix{p}
	case PrefixContains(e, p):
		return nil
	}
	var out []netip.Prefix
	for bits := p.Bits() + 1; bits <= e.Bits(); bits++ {
		onPath, _ := e.Addr().Prefix(bits)
		out = append(out, sibling(onPath))
	}
	return out
}

// sibling is the other half of the prefix one bit shorter than p.
func sibling(p netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	bit := p.Bits() - 1
	b[bit/8] ^= 0x80 >> (bit % 8)
	addr, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(addr, p.Bits())
}
