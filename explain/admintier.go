package explain

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// The admin tier: AdminNetworkPolicies (v1alpha1) and ClusterNetworkPolicies
// of the Admin tier (v1beta1) are evaluated before NetworkPolicies, the
// BaselineAdminNetworkPolicy and ClusterNetworkPolicies of the Baseline tier
// after them, as sigs.k8s.io/kube-network-policies v0.8.0 does: per side,
// the admin tier's policies that select the side's pod, by priority (lower
// first, then by name), each rule in order; the first rule whose peers and
// ports match decides. Deny ends; Allow (Accept) admits without consulting
// NetworkPolicies; Pass, or no match, hands on to NetworkPolicies; when none
// selects the pod at all (in either direction, as v0.8.0 reads it), the
// baseline decides the same way (no match allows).

// Admin-tier actions, as the APIs spell them.
const (
	ActionAllow  = "Allow"  // AdminNetworkPolicy, BaselineAdminNetworkPolicy
	ActionAccept = "Accept" // ClusterNetworkPolicy
	ActionDeny   = "Deny"
	ActionPass   = "Pass"
)

// TierRule is the admin-tier rule that matched a connection on one side.
type TierRule struct {
	// Kind is AdminNetworkPolicy, BaselineAdminNetworkPolicy or
	// ClusterNetworkPolicy; the objects are cluster-scoped.
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Priority int32  `json:"priority"`
	// Rule is the index in spec.ingress or spec.egress, RuleName its name.
	Rule     int    `json:"rule"`
	RuleName string `json:"ruleName,omitempty"`
	Action   string `json:"action"`
	// Managed is true for moat's own objects.
	Managed bool `json:"managed,omitempty"`
}

// Decides reports whether the rule ends the evaluation of its side (Deny,
// Allow, Accept) rather than handing it on (Pass).
func (r *TierRule) Decides() bool { return r != nil && r.Action != ActionPass }

// Allows reports whether the rule admits the connection.
func (r *TierRule) Allows() bool { return r.Action == ActionAllow || r.Action == ActionAccept }

// String is e.g. `AdminNetworkPolicy moat-isolation-web (priority 20)
// spec.ingress[1] "deny ingress from other namespaces"`.
func (r *TierRule) String(dir Direction) string {
	s := fmt.Sprintf("%s %s (priority %d) spec.%s[%d]", r.Kind, r.Name, r.Priority, dir, r.Rule)
	if r.RuleName != "" {
		s += fmt.Sprintf(" %q", r.RuleName)
	}
	return s
}

// tierPolicy is an admin-tier object, compiled.
type tierPolicy struct {
	kind, name string
	priority   int32
	managed    bool
	subject    tierPeer
	// subjectSelector is the subject's namespaces selector (nil for a pods
	// subject).
	subjectSelector *metav1.LabelSelector
	ingress         []tierRule
	egress          []tierRule
}

type tierRule struct {
	name, action string
	peers        []tierPeer
	ports        []tierPort // nil: every port
}

// tierPeer is a compiled peer or subject: a namespaces selector, a pods
// selector (with its namespaces), a nodes selector or networks. A selector
// that does not parse selects nothing.
type tierPeer struct {
	namespaces labels.Selector // nil: not a namespaces or pods peer
	pods       labels.Selector // nil: not a pods peer
	nodes      labels.Selector
	networks   []netip.Prefix
}

// tierPort is a port, a range (whole: the protocol's every port) or a
// named port of the destination pod.
type tierPort struct {
	protocol   corev1.Protocol
	start, end int32
	named      string
}

// AddAdminTier adds admin-tier objects (policy.Model.AdminTier's, or read
// from a cluster) to objs by their kind; other objects are ignored.
func (objs *Objects) AddAdminTier(tier []policy.AdminTierObject) {
	for _, o := range tier {
		switch o := o.(type) {
		case *npav1alpha1.AdminNetworkPolicy:
			objs.AdminNetworkPolicies = append(objs.AdminNetworkPolicies, o)
		case *npav1alpha1.BaselineAdminNetworkPolicy:
			objs.BaselineAdminNetworkPolicies = append(objs.BaselineAdminNetworkPolicies, o)
		case *npav1beta1.ClusterNetworkPolicy:
			objs.ClusterNetworkPolicies = append(objs.ClusterNetworkPolicies, o)
		}
	}
}

// tierIndex is one tier's policies, by priority then name, split by
// subject so that an answer costs the policies of its namespaces, not the
// cluster's: moat's objects each select one namespace by its name label.
type tierIndex struct {
	byNamespace map[string][]*tierPolicy
	others      []*tierPolicy
}

func (t *tierIndex) add(p *tierPolicy) {
	if ns := subjectNamespace(p.subjectSelector); ns != "" {
		if t.byNamespace == nil {
			t.byNamespace = map[string][]*tierPolicy{}
		}
		t.byNamespace[ns] = append(t.byNamespace[ns], p)
		return
	}
	t.others = append(t.others, p)
}

func (t *tierIndex) sort() {
	for _, list := range t.byNamespace {
		slices.SortStableFunc(list, byPriority)
	}
	slices.SortStableFunc(t.others, byPriority)
}

// candidates are the policies that may select a pod of namespace ns, by
// priority then name.
func (t *tierIndex) candidates(ns string) []*tierPolicy {
	mine := t.byNamespace[ns]
	if len(mine) == 0 || len(t.others) == 0 {
		return append(mine, t.others...)
	}
	out := slices.Concat(mine, t.others)
	slices.SortStableFunc(out, byPriority)
	return out
}

func byPriority(a, b *tierPolicy) int {
	return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.name, b.name))
}

// subjectNamespace is the namespace a subject selects by name alone
// (matchLabels kubernetes.io/metadata.name), or "".
func subjectNamespace(s *metav1.LabelSelector) string {
	if s == nil || len(s.MatchExpressions) > 0 || len(s.MatchLabels) != 1 {
		return ""
	}
	return s.MatchLabels[v1alpha1.NamespaceNameLabel]
}

// compileTier compiles the admin-tier objects into the admin and the
// baseline tier.
func compileTier(objs Objects) (admin, baseline tierIndex) {
	for _, p := range objs.AdminNetworkPolicies {
		if p != nil {
			admin.add(compileANP(p))
		}
	}
	for _, p := range objs.BaselineAdminNetworkPolicies {
		if p != nil {
			baseline.add(compileBANP(p))
		}
	}
	for _, p := range objs.ClusterNetworkPolicies {
		switch {
		case p == nil:
		case p.Spec.Tier == npav1beta1.BaselineTier:
			baseline.add(compileCNP(p))
		default:
			admin.add(compileCNP(p))
		}
	}
	admin.sort()
	baseline.sort()
	return admin, baseline
}

func newTierPolicy(kind string, meta metav1.ObjectMeta, priority int32, ns *metav1.LabelSelector, pods *npav1alpha1.NamespacedPod) *tierPolicy {
	p := &tierPolicy{kind: kind, name: meta.Name, priority: priority, managed: meta.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedByValue}
	p.subject = podsPeer(ns, pods)
	if pods == nil {
		p.subjectSelector = ns
	}
	return p
}

func compileANP(anp *npav1alpha1.AdminNetworkPolicy) *tierPolicy {
	p := newTierPolicy("AdminNetworkPolicy", anp.ObjectMeta, anp.Spec.Priority, anp.Spec.Subject.Namespaces, anp.Spec.Subject.Pods)
	for _, r := range anp.Spec.Ingress {
		p.ingress = append(p.ingress, tierRule{name: r.Name, action: string(r.Action), peers: anpIngressPeers(r.From), ports: anpPorts(r.Ports)})
	}
	for _, r := range anp.Spec.Egress {
		p.egress = append(p.egress, tierRule{name: r.Name, action: string(r.Action), peers: anpEgressPeers(r.To), ports: anpPorts(r.Ports)})
	}
	return p
}

func compileBANP(banp *npav1alpha1.BaselineAdminNetworkPolicy) *tierPolicy {
	p := newTierPolicy("BaselineAdminNetworkPolicy", banp.ObjectMeta, 0, banp.Spec.Subject.Namespaces, banp.Spec.Subject.Pods)
	for _, r := range banp.Spec.Ingress {
		p.ingress = append(p.ingress, tierRule{name: r.Name, action: string(r.Action), peers: anpIngressPeers(r.From), ports: anpPorts(r.Ports)})
	}
	for _, r := range banp.Spec.Egress {
		var to []npav1alpha1.AdminNetworkPolicyEgressPeer
		for _, peer := range r.To {
			to = append(to, npav1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: peer.Namespaces, Pods: peer.Pods, Nodes: peer.Nodes, Networks: peer.Networks})
		}
		p.egress = append(p.egress, tierRule{name: r.Name, action: string(r.Action), peers: anpEgressPeers(to), ports: anpPorts(r.Ports)})
	}
	return p
}

func compileCNP(cnp *npav1beta1.ClusterNetworkPolicy) *tierPolicy {
	p := newTierPolicy("ClusterNetworkPolicy", cnp.ObjectMeta, cnp.Spec.Priority, cnp.Spec.Subject.Namespaces, alphaPods(cnp.Spec.Subject.Pods))
	for _, r := range cnp.Spec.Ingress {
		var peers []tierPeer
		for _, from := range r.From {
			peers = append(peers, podsPeer(from.Namespaces, alphaPods(from.Pods)))
		}
		p.ingress = append(p.ingress, tierRule{name: r.Name, action: string(r.Action), peers: peers, ports: cnpPorts(r.Protocols)})
	}
	for _, r := range cnp.Spec.Egress {
		var peers []tierPeer
		for _, to := range r.To {
			peer := podsPeer(to.Namespaces, alphaPods(to.Pods))
			peer.nodes = optionalSelector(to.Nodes)
			peer.networks = parseNetworks(to.Networks)
			peers = append(peers, peer)
		}
		p.egress = append(p.egress, tierRule{name: r.Name, action: string(r.Action), peers: peers, ports: cnpPorts(r.Protocols)})
	}
	return p
}

func alphaPods(p *npav1beta1.NamespacedPod) *npav1alpha1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &npav1alpha1.NamespacedPod{NamespaceSelector: p.NamespaceSelector, PodSelector: p.PodSelector}
}

func anpIngressPeers(from []npav1alpha1.AdminNetworkPolicyIngressPeer) []tierPeer {
	out := make([]tierPeer, 0, len(from))
	for _, f := range from {
		out = append(out, podsPeer(f.Namespaces, f.Pods))
	}
	return out
}

func anpEgressPeers(to []npav1alpha1.AdminNetworkPolicyEgressPeer) []tierPeer {
	out := make([]tierPeer, 0, len(to))
	for _, t := range to {
		peer := podsPeer(t.Namespaces, t.Pods)
		peer.nodes = optionalSelector(t.Nodes)
		peer.networks = parseNetworks(t.Networks)
		out = append(out, peer)
	}
	return out
}

// podsPeer compiles a namespaces selector or a pods peer.
func podsPeer(ns *metav1.LabelSelector, pods *npav1alpha1.NamespacedPod) tierPeer {
	if pods != nil {
		return tierPeer{namespaces: optionalSelector(&pods.NamespaceSelector), pods: optionalSelector(&pods.PodSelector)}
	}
	return tierPeer{namespaces: optionalSelector(ns)}
}

// optionalSelector is nil for no selector, labels.Nothing for one that does
// not parse.
func optionalSelector(s *metav1.LabelSelector) labels.Selector {
	if s == nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// parseNetworks parses CIDRs; one that does not parse holds nothing (the
// API server refuses it).
func parseNetworks[C ~string](cidrs []C) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(string(c)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func anpPorts(ports *[]npav1alpha1.AdminNetworkPolicyPort) []tierPort {
	if ports == nil || len(*ports) == 0 {
		return nil
	}
	out := make([]tierPort, 0, len(*ports))
	for _, p := range *ports {
		switch {
		case p.PortNumber != nil:
			out = append(out, tierPort{protocol: p.PortNumber.Protocol, start: p.PortNumber.Port, end: p.PortNumber.Port})
		case p.PortRange != nil:
			out = append(out, tierPort{protocol: p.PortRange.Protocol, start: p.PortRange.Start, end: p.PortRange.End})
		case p.NamedPort != nil:
			out = append(out, tierPort{named: *p.NamedPort})
		}
	}
	return out
}

func cnpPorts(protocols []npav1beta1.ClusterNetworkPolicyProtocol) []tierPort {
	if len(protocols) == 0 {
		return nil
	}
	out := make([]tierPort, 0, len(protocols))
	for _, p := range protocols {
		switch {
		case p.DestinationNamedPort != "":
			out = append(out, tierPort{named: p.DestinationNamedPort})
		case p.TCP != nil:
			out = append(out, cnpPort(corev1.ProtocolTCP, p.TCP.DestinationPort))
		case p.UDP != nil:
			out = append(out, cnpPort(corev1.ProtocolUDP, p.UDP.DestinationPort))
		case p.SCTP != nil:
			out = append(out, cnpPort(corev1.ProtocolSCTP, p.SCTP.DestinationPort))
		}
	}
	return out
}

func cnpPort(proto corev1.Protocol, p *npav1beta1.Port) tierPort {
	switch {
	case p == nil:
		return tierPort{protocol: proto, start: 1, end: 65535}
	case p.Range != nil:
		return tierPort{protocol: proto, start: p.Range.Start, end: p.Range.End}
	}
	return tierPort{protocol: proto, start: p.Number, end: p.Number}
}

// matches reports whether the port holds port of the destination pod dst:
// a named port matches the destination's container port of that name.
func (p tierPort) matches(port Port, dst *corev1.Pod) bool {
	if p.named != "" {
		return port.Name == p.named || namedPort(dst, p.named, port)
	}
	if p.protocol != port.Protocol {
		return false
	}
	if p.start <= 1 && p.end >= 65535 {
		return true // every port, "any other port" too
	}
	return port.Number != 0 && p.start <= port.Number && port.Number <= p.end
}

// tierRuleFor returns the first rule, of the policies of tier that select
// self, that matches the connection in direction dir, or nil.
func (x *Index) tierRuleFor(tier *tierIndex, dir Direction, self, peer, dst Endpoint, port Port) *TierRule {
	for _, p := range tier.candidates(self.Namespace) {
		if !x.tierPeerMatches(p.subject, self) {
			continue
		}
		rules := p.ingress
		if dir == Egress {
			rules = p.egress
		}
		for i, r := range rules {
			if x.tierRuleMatches(r, peer, dst, port) {
				return &TierRule{Kind: p.kind, Name: p.name, Priority: p.priority, Rule: i, RuleName: r.name, Action: r.action, Managed: p.managed}
			}
		}
	}
	return nil
}

func (x *Index) tierRuleMatches(r tierRule, peer, dst Endpoint, port Port) bool {
	if r.ports != nil && !slices.ContainsFunc(r.ports, func(p tierPort) bool { return p.matches(port, dst.pod) }) {
		return false
	}
	return slices.ContainsFunc(r.peers, func(p tierPeer) bool { return x.tierPeerMatches(p, peer) })
}

// tierPeerMatches reports whether a peer (or subject) selects e: networks
// hold its address; nodes select a node by its labels; namespaces (and
// pods) select a pod by its namespace's labels (and its own).
func (x *Index) tierPeerMatches(p tierPeer, e Endpoint) bool {
	for _, n := range p.networks {
		if e.Prefix.IsValid() && prefixHolds(n, e.Prefix) {
			return true
		}
	}
	switch {
	case p.nodes != nil:
		return e.Kind == KindNode && x.nodes[e.Name] != nil && p.nodes.Matches(labels.Set(x.nodes[e.Name].Labels))
	case p.namespaces == nil || e.Kind != KindPod:
		return false
	}
	return p.namespaces.Matches(x.namespaceLabels(e.Namespace)) && (p.pods == nil || p.pods.Matches(labels.Set(e.Labels)))
}
