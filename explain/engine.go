package explain

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// EndpointKind is what an endpoint of a connection is.
type EndpointKind string

const (
	// KindPod is a pod: one the objects hold, or (Name empty) a pod they do
	// not hold, known by its namespace and labels (the pods of a Service
	// or a label selector, offline).
	KindPod EndpointKind = "Pod"
	// KindNode is a node, by its address.
	KindNode EndpointKind = "Node"
	// KindExternal is an address or block outside the pod network.
	KindExternal EndpointKind = "External"
)

// Endpoint is one end of a connection.
type Endpoint struct {
	Kind EndpointKind `json:"kind"`
	// Namespace, Name and Labels are a pod's; Name is a node's too.
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Prefix is the endpoint's address as a /32 or /128, or the block of
	// an external endpoint; invalid for a pod without a known address.
	Prefix netip.Prefix `json:"-"`
	pod    *corev1.Pod
}

// String names the endpoint for a human: "proj-a/web", "pods app=web in
// proj-a", "node n1 (10.0.0.1)", "192.0.2.0/24".
func (e Endpoint) String() string {
	switch {
	case e.Kind == KindPod && e.Name != "":
		return e.Namespace + "/" + e.Name
	case e.Kind == KindPod && len(e.Labels) == 0:
		return "a pod without labels in namespace " + e.Namespace
	case e.Kind == KindPod:
		return fmt.Sprintf("a pod %s in namespace %s", labels.Set(e.Labels).String(), e.Namespace)
	case e.Kind == KindNode:
		return fmt.Sprintf("node %s (%s)", e.Name, e.Prefix.Addr())
	}
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().String()
	}
	return e.Prefix.String()
}

// Port is the destination port of a connection.
type Port struct {
	Protocol corev1.Protocol `json:"protocol"`
	// Number is 0 when unknown: a named port of a pod the objects do not
	// hold, or no port at all (a port that no rule names).
	Number int32 `json:"port,omitempty"`
	// Name is the destination container port's name, when known.
	Name string `json:"name,omitempty"`
}

// String is e.g. "80/TCP", "http/TCP", "8080/TCP (http)", "any other TCP port".
func (p Port) String() string {
	switch {
	case p.Number == 0 && p.Name == "":
		return "any other " + string(p.Protocol) + " port"
	case p.Number == 0:
		return p.Name + "/" + string(p.Protocol)
	case p.Name != "":
		return fmt.Sprintf("%d/%s (%s)", p.Number, p.Protocol, p.Name)
	}
	return fmt.Sprintf("%d/%s", p.Number, p.Protocol)
}

// Direction is a side of a connection.
type Direction string

const (
	Egress  Direction = "egress"
	Ingress Direction = "ingress"
)

// RuleRef is a NetworkPolicy rule that admits a connection.
type RuleRef struct {
	Namespace string `json:"namespace"`
	Policy    string `json:"policy"`
	// Managed is true for moat's own policies.
	Managed bool `json:"managed,omitempty"`
	// Rule is the index of the rule in spec.ingress or spec.egress; Peer
	// the index of the first peer that matches, -1 when the rule names no
	// peer (every peer).
	Rule int `json:"rule"`
	Peer int `json:"peer"`
}

// Field is the path of the matching part, e.g. spec.ingress[0].from[1].
func (r RuleRef) Field(dir Direction) string {
	rules, peers := "ingress", "from"
	if dir == Egress {
		rules, peers = "egress", "to"
	}
	if r.Peer < 0 {
		return fmt.Sprintf("spec.%s[%d]", rules, r.Rule)
	}
	return fmt.Sprintf("spec.%s[%d].%s[%d]", rules, r.Rule, peers, r.Peer)
}

// Side is the verdict of one side of a connection: the egress of the
// source, or the ingress of the destination.
type Side struct {
	Direction Direction `json:"direction"`
	// Applies is false when the side's endpoint is not a pod: no
	// NetworkPolicy applies to it, and the side allows.
	Applies bool `json:"applies"`
	// Selecting are the policies that select the pod for this direction;
	// none: the pod is not isolated in this direction, and the side allows.
	Selecting []PolicyRef `json:"selecting,omitempty"`
	// Admitting are the rules that admit the connection.
	Admitting []RuleRef `json:"admitting,omitempty"`
	// Admin is the admin-tier rule that matched first: when it decides
	// (Deny, Allow, Accept), NetworkPolicies are not consulted.
	Admin *TierRule `json:"admin,omitempty"`
	// Baseline is the baseline-tier rule that matched, consulted when no
	// NetworkPolicy selects the pod in this direction.
	Baseline *TierRule `json:"baseline,omitempty"`
	Allowed  bool      `json:"allowed"`
}

// PolicyRef names a NetworkPolicy.
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Managed   bool   `json:"managed,omitempty"`
}

// Check evaluates one side of a connection from src to dst on port: the
// egress of src (dir Egress) or the ingress of dst (dir Ingress): the admin
// tier, then NetworkPolicies, then the baseline tier (see admintier.go).
func (x *Index) Check(dir Direction, src, dst Endpoint, port Port) Side {
	self, peer := dst, src
	if dir == Egress {
		self, peer = src, dst
	}
	side := Side{Direction: dir, Allowed: true}
	if self.Kind != KindPod {
		return side
	}
	side.Applies = true
	if side.Admin = x.tierRuleFor(&x.admin, dir, self, peer, dst, port); side.Admin.Decides() {
		side.Allowed = side.Admin.Allows()
		return side
	}
	x.checkNetworkPolicies(&side, self, peer, dst, port)
	if !x.selectedByAny(self) {
		if side.Baseline = x.tierRuleFor(&x.baseline, dir, self, peer, dst, port); side.Baseline.Decides() {
			side.Allowed = side.Baseline.Allows()
		}
	}
	return side
}

// checkNetworkPolicies evaluates the NetworkPolicies of self's namespace.
func (x *Index) checkNetworkPolicies(side *Side, self, peer, dst Endpoint, port Port) {
	dir := side.Direction
	for _, c := range x.policies[self.Namespace] {
		if !c.selects(dir, self) {
			continue
		}
		side.Selecting = append(side.Selecting, PolicyRef{Namespace: c.np.Namespace, Name: c.np.Name, Managed: c.managed})
		side.Admitting = append(side.Admitting, x.admittingRules(c, dir, peer, dst, port)...)
	}
	side.Allowed = len(side.Selecting) == 0 || len(side.Admitting) > 0
}

// selectedByAny reports whether a NetworkPolicy of either direction
// selects pod e: kube-network-policies v0.8.0 consults the baseline tier
// only for a pod that none selects.
func (x *Index) selectedByAny(e Endpoint) bool {
	for _, c := range x.policies[e.Namespace] {
		if c.selector != nil && c.selector.Matches(labels.Set(e.Labels)) {
			return true
		}
	}
	return false
}

// selects reports whether the policy isolates pod e in direction dir.
func (c *compiled) selects(dir Direction, e Endpoint) bool {
	if (dir == Egress && !c.egress) || (dir == Ingress && !c.ingress) || c.selector == nil {
		return false
	}
	return c.selector.Matches(labels.Set(e.Labels))
}

// admittingRules returns the rules of the policy, in direction dir, that
// admit peer on port of dst.
func (x *Index) admittingRules(c *compiled, dir Direction, peer, dst Endpoint, port Port) []RuleRef {
	var out []RuleRef
	add := func(i int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
		if !PortsMatch(ports, port, dst.pod) {
			return
		}
		if j := x.matchingPeer(c.np.Namespace, peers, peer); j >= 0 || len(peers) == 0 {
			out = append(out, RuleRef{Namespace: c.np.Namespace, Policy: c.np.Name, Managed: c.managed, Rule: i, Peer: j})
		}
	}
	if dir == Egress {
		for i, r := range c.np.Spec.Egress {
			add(i, r.To, r.Ports)
		}
		return out
	}
	for i, r := range c.np.Spec.Ingress {
		add(i, r.From, r.Ports)
	}
	return out
}

// matchingPeer returns the index of the first of peers (of a policy in
// namespace policyNS) that selects e, or -1.
func (x *Index) matchingPeer(policyNS string, peers []networkingv1.NetworkPolicyPeer, e Endpoint) int {
	for j := range peers {
		if x.PeerMatches(policyNS, &peers[j], e) {
			return j
		}
	}
	return -1
}

// PeerMatches reports whether a NetworkPolicy peer of a policy in namespace
// policyNS selects e: an ipBlock holds all of e's addresses (its cidr, minus
// its excepts); selectors select pods only, by their labels and their
// namespace's (a namespace the objects do not hold has only its
// kubernetes.io/metadata.name label). A selector that does not parse selects
// nothing (the API server refuses it).
func (x *Index) PeerMatches(policyNS string, peer *networkingv1.NetworkPolicyPeer, e Endpoint) bool {
	if peer.IPBlock != nil {
		return e.Prefix.IsValid() && blockHolds(peer.IPBlock, e.Prefix)
	}
	if e.Kind != KindPod || (peer.PodSelector == nil && peer.NamespaceSelector == nil) {
		return false
	}
	if peer.PodSelector != nil && !selectorMatches(peer.PodSelector, e.Labels) {
		return false
	}
	if peer.NamespaceSelector == nil {
		return e.Namespace == policyNS
	}
	return selectorMatches(peer.NamespaceSelector, x.namespaceLabels(e.Namespace))
}

// namespaceLabels are a namespace's labels, with the immutable
// kubernetes.io/metadata.name that the API server sets on every namespace.
func (x *Index) namespaceLabels(name string) labels.Set {
	set := labels.Set{v1alpha1.NamespaceNameLabel: name}
	if ns := x.namespaces[name]; ns != nil {
		for k, v := range ns.Labels {
			set[k] = v
		}
		set[v1alpha1.NamespaceNameLabel] = name
	}
	return set
}

func selectorMatches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

// blockHolds reports whether the ipBlock holds every address of p: its cidr
// holds p and no except overlaps it. A block that does not parse holds
// nothing.
func blockHolds(b *networkingv1.IPBlock, p netip.Prefix) bool {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !prefixHolds(cidr.Masked(), p) {
		return false
	}
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil || ex.Masked().Overlaps(p) {
			return false
		}
	}
	return true
}

func prefixHolds(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// PortsMatch reports whether a rule's ports admit port on the destination
// pod dst (nil when the destination is not a pod the objects hold): no
// ports admit every port; a port without protocol is TCP, without number
// every port of its protocol; a range holds port to endPort; a named port
// matches the destination's container port of that name, number and
// protocol.
func PortsMatch(ports []networkingv1.NetworkPolicyPort, port Port, dst *corev1.Pod) bool {
	if len(ports) == 0 {
		return true
	}
	for i := range ports {
		if portMatches(&ports[i], port, dst) {
			return true
		}
	}
	return false
}

func portMatches(pp *networkingv1.NetworkPolicyPort, port Port, dst *corev1.Pod) bool {
	if v1alpha1.ProtocolOrTCP(pp.Protocol) != port.Protocol {
		return false
	}
	switch {
	case pp.Port == nil:
		return true
	case pp.Port.Type == intstr.String:
		return port.Name == pp.Port.StrVal || namedPort(dst, pp.Port.StrVal, port)
	case port.Number == 0:
		return false
	case pp.EndPort != nil:
		return pp.Port.IntVal <= port.Number && port.Number <= *pp.EndPort
	}
	return pp.Port.IntVal == port.Number
}

// namedPort reports whether pod has a container port called name with
// port's number and protocol.
func namedPort(pod *corev1.Pod, name string, port Port) bool {
	if pod == nil || port.Number == 0 {
		return false
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name && cp.ContainerPort == port.Number && v1alpha1.ProtocolOrTCP(&cp.Protocol) == port.Protocol {
				return true
			}
		}
	}
	return false
}

// Verdict is the engine's answer for one connection: both sides, and
// whether the connection is allowed (both sides allow).
type Verdict struct {
	Egress  Side `json:"egress"`
	Ingress Side `json:"ingress"`
	Allowed bool `json:"allowed"`
}

// Verdict evaluates a new connection from src to dst on port.
func (x *Index) Verdict(src, dst Endpoint, port Port) Verdict {
	v := Verdict{Egress: x.Check(Egress, src, dst, port), Ingress: x.Check(Ingress, src, dst, port)}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}
