package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// This file reads a NetworkPolicy peer against the model: which admissions
// hold everything the peer selects, and on which ports. The tenant rule
// (validation.ValidateTenantNetworkPolicy) is built on it. The reading is
// conservative (fail closed): a peer or port counts as admitted only when a
// single admission holds all of it.

// Selection is one part of what a NetworkPolicy peer selects, with the
// admissions of the model that hold all of it.
type Selection struct {
	// What names the part for a human, e.g. "namespace demo-project-2".
	What string
	// Field is the part of the peer that selects it: ipBlock,
	// namespaceSelector or podSelector.
	Field string
	// By are the admissions that hold the part; empty when none does.
	By []Admission
	// Why continues "admits ingress from What" when By is empty: why the
	// part is not admitted and, where there is one, the fix.
	Why string
}

// Selections splits what peer selects, in a NetworkPolicy of the model's
// namespace, into parts and finds the admissions of the given direction
// (egress: m.Egress, else m.Ingress) that hold each:
//
//   - an ipBlock: the admitted address blocks that hold its cidr minus its
//     excepts (a block that does not parse is held by none);
//   - a namespaceSelector that requires the project label to equal an
//     admitted group's value: that group (other terms only narrow it);
//   - a namespaceSelector pinned to namespaces by the immutable
//     kubernetes.io/metadata.name label (matchLabels or an In expression;
//     see PinnedNamespaces): one part per namespace, held by the namespace
//     itself (Self), an admitted namespace, or admitted pods of that
//     namespace whose selector the peer's podSelector narrows;
//   - any other namespaceSelector: one part held by none;
//   - a podSelector alone: the pods of the policy's own namespace (Self).
func (m Model) Selections(egress bool, peer networkingv1.NetworkPolicyPeer) []Selection {
	admissions := m.Ingress
	if egress {
		admissions = m.Egress
	}
	return selections(m.Namespace, scan{admissions}, peer)
}

// holders finds the admissions of one direction that hold a part of a peer,
// in the order of the direction's list: scan reads the whole list, an
// admissionIndex (ModelIndex) only the admissions that may hold the part.
type holders interface {
	// pods returns the admissions that hold every pod podSelector (nil:
	// every pod) selects in the namespace name of a model of namespace
	// self.
	pods(self, name string, podSelector *metav1.LabelSelector) []Admission
	// group returns the group admissions whose label selector requires
	// (in matchLabels, with a non-empty value).
	group(selector *metav1.LabelSelector) []Admission
	// block returns the address admissions that hold every address of
	// block (its cidr minus its excepts). A block that does not parse is
	// held by none (fail closed: the API server reads some forms, such as
	// leading zeros, that netip refuses).
	block(block *networkingv1.IPBlock) []Admission
}

// selections is Model.Selections for a model of namespace self whose
// admissions of the direction asked are found by h.
func selections(self string, h holders, peer networkingv1.NetworkPolicyPeer) []Selection {
	switch {
	case peer.IPBlock != nil:
		return []Selection{{What: describeIPBlock(peer.IPBlock), Field: "ipBlock", By: h.block(peer.IPBlock),
			Why: ", which moat does not admit"}}
	case peer.NamespaceSelector != nil:
		if by := h.group(peer.NamespaceSelector); len(by) > 0 {
			return []Selection{{What: "namespaces " + metav1.FormatLabelSelector(peer.NamespaceSelector), Field: "namespaceSelector", By: by}}
		}
		names, pinned := PinnedNamespaces(peer.NamespaceSelector)
		if !pinned {
			return []Selection{{What: "every namespace whose labels match", Field: "namespaceSelector",
				Why: fmt.Sprintf("; pin it to one namespace with the %s label", v1alpha1.NamespaceNameLabel)}}
		}
		out := make([]Selection, 0, len(names))
		for _, name := range names {
			out = append(out, Selection{What: "namespace " + name, Field: "namespaceSelector",
				By: h.pods(self, name, peer.PodSelector), Why: ", which moat does not admit"})
		}
		return out
	default:
		return []Selection{{What: "namespace " + self, Field: "podSelector", By: h.pods(self, self, peer.PodSelector),
			Why: ", which moat does not admit"}}
	}
}

// scan is the holders that reads every admission.
type scan struct{ admissions []Admission }

func (s scan) pods(self, name string, podSelector *metav1.LabelSelector) []Admission {
	return filter(s.admissions, nil, func(a *Admission) bool { return holdsPods(a, self, name, podSelector) })
}

func (s scan) group(selector *metav1.LabelSelector) []Admission {
	return filter(s.admissions, nil, func(a *Admission) bool { return holdsGroup(a, selector) })
}

func (s scan) block(block *networkingv1.IPBlock) []Admission {
	cidr, except, ok := parseBlock(block)
	if !ok {
		return nil
	}
	return filter(s.admissions, nil, func(a *Admission) bool { return holdsBlock(a, cidr, except) })
}

// filter returns the admissions (those at the positions at, in order, or
// all when at is nil) for which keep holds.
func filter(admissions []Admission, at []int, keep func(*Admission) bool) []Admission {
	var out []Admission
	if at == nil {
		for i := range admissions {
			if keep(&admissions[i]) {
				out = append(out, admissions[i])
			}
		}
		return out
	}
	for _, i := range at {
		if keep(&admissions[i]) {
			out = append(out, admissions[i])
		}
	}
	return out
}

// holdsPods reports whether a holds every pod podSelector (nil: every pod)
// selects in the namespace name, for a model of namespace self.
func holdsPods(a *Admission, self, name string, podSelector *metav1.LabelSelector) bool {
	switch a.Peer.Kind {
	case PeerSelf:
		return name == self
	case PeerNamespace:
		return a.Peer.Namespace == name
	case PeerPods:
		return a.Peer.Namespace == name && podSelector != nil && requiresLabels(podSelector, a.Peer.Selector)
	}
	return false
}

// requiresLabels reports whether selector requires every label of labels
// (in matchLabels), so that it selects no pod that labels does not.
func requiresLabels(selector *metav1.LabelSelector, labels map[string]string) bool {
	for k, v := range labels {
		if got, ok := selector.MatchLabels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// holdsGroup reports whether a is a group admission whose label selector
// requires (in matchLabels, with a non-empty value).
func holdsGroup(a *Admission, selector *metav1.LabelSelector) bool {
	if a.Peer.Kind != PeerGroup {
		return false
	}
	value, ok := selector.MatchLabels[a.Peer.Label]
	return ok && value != "" && value == a.Peer.Value
}

// parseBlock parses an ipBlock into its masked cidr and excepts; ok is false
// when the cidr does not parse.
func parseBlock(block *networkingv1.IPBlock) (cidr netip.Prefix, except []netip.Prefix, ok bool) {
	cidr, err := netip.ParsePrefix(block.CIDR)
	if err != nil {
		return netip.Prefix{}, nil, false
	}
	return cidr.Masked(), parsePrefixes(block.Except), true
}

// holdsBlock reports whether a is an address admission that holds every
// address of cidr minus except.
func holdsBlock(a *Admission, cidr netip.Prefix, except []netip.Prefix) bool {
	if a.Peer.Kind != PeerAddresses {
		return false
	}
	admitted, err := netip.ParsePrefix(a.Peer.CIDR)
	if err != nil || !PrefixContains(admitted.Masked(), cidr) {
		return false
	}
	// Every address the admission excepts that the block could hold must
	// be excepted by the block too.
	for _, ae := range parsePrefixes(a.Peer.Except) {
		if ae.Overlaps(cidr) && !slices.ContainsFunc(except, func(be netip.Prefix) bool { return PrefixContains(be, ae) }) {
			return false
		}
	}
	return true
}

func parsePrefixes(values []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// PrefixContains reports whether outer holds every address of inner (of the
// same address family).
func PrefixContains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// PinnedNamespaces returns the namespaces a namespaceSelector can select
// when it is pinned by the immutable kubernetes.io/metadata.name label
// (matchLabels, or a matchExpressions In): the intersection of every such
// requirement. Other requirements (NotIn, Exists, other keys) only narrow
// it further and never pin it. pinned is false when nothing pins it.
func PinnedNamespaces(sel *metav1.LabelSelector) (names []string, pinned bool) {
	if name, ok := sel.MatchLabels[v1alpha1.NamespaceNameLabel]; ok {
		names, pinned = []string{name}, true
	}
	for _, req := range sel.MatchExpressions {
		if req.Key != v1alpha1.NamespaceNameLabel || req.Operator != metav1.LabelSelectorOpIn {
			continue
		}
		if !pinned {
			names, pinned = slices.Clone(req.Values), true
			continue
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(req.Values, n) })
	}
	slices.Sort(names)
	return slices.Compact(names), pinned
}

// CoversPort reports whether one of the admissions admits every connection
// that port admits; a nil port is every port of every protocol. A port with
// no protocol is TCP (the API server's default), one with no number every
// port of its protocol. A named port is admitted only by the same name (or
// every port of the protocol), a number or range only by a number or range
// that holds it.
func CoversPort(admissions []Admission, port *networkingv1.NetworkPolicyPort) bool {
	for _, a := range admissions {
		if a.Ports == nil {
			return true
		}
		if port == nil {
			continue
		}
		for i := range a.Ports {
			if portHolds(&a.Ports[i], port) {
				return true
			}
		}
	}
	return false
}

// portHolds reports whether the admitted port outer holds every connection of
// inner.
func portHolds(outer, inner *networkingv1.NetworkPolicyPort) bool {
	if v1alpha1.ProtocolOrTCP(outer.Protocol) != v1alpha1.ProtocolOrTCP(inner.Protocol) {
		return false
	}
	switch {
	case outer.Port == nil:
		return true
	case inner.Port == nil:
		return false
	case outer.Port.Type == intstr.String || inner.Port.Type == intstr.String:
		return outer.Port.Type == intstr.String && inner.Port.Type == intstr.String && outer.Port.StrVal == inner.Port.StrVal
	}
	lo, hi := portRange(outer)
	innerLo, innerHi := portRange(inner)
	return lo <= innerLo && innerHi <= hi
}

// portRange is the numeric range of a numbered port: [port, endPort], or
// [port, port] without an end port.
func portRange(p *networkingv1.NetworkPolicyPort) (int32, int32) {
	lo := p.Port.IntVal
	if p.EndPort != nil && *p.EndPort > lo {
		return lo, *p.EndPort
	}
	return lo, lo
}

// DescribePorts names admitted ports for a human: "every port", or e.g.
// "80/TCP, 8000-8080/TCP, \"http\"/TCP".
func DescribePorts(ports []networkingv1.NetworkPolicyPort) string {
	if ports == nil {
		return "every port"
	}
	parts := make([]string, 0, len(ports))
	for i := range ports {
		parts = append(parts, DescribePort(&ports[i]))
	}
	return strings.Join(parts, ", ")
}

// DescribePort names one NetworkPolicy port for a human; nil is every port.
func DescribePort(p *networkingv1.NetworkPolicyPort) string {
	if p == nil {
		return "every port"
	}
	protocol := v1alpha1.ProtocolOrTCP(p.Protocol)
	switch {
	case p.Port == nil:
		return "every " + string(protocol) + " port"
	case p.Port.Type == intstr.String:
		return fmt.Sprintf("%q/%s", p.Port.StrVal, protocol)
	case p.EndPort != nil:
		return fmt.Sprintf("%d-%d/%s", p.Port.IntVal, *p.EndPort, protocol)
	default:
		return fmt.Sprintf("%d/%s", p.Port.IntVal, protocol)
	}
}

func describeIPBlock(b *networkingv1.IPBlock) string {
	if len(b.Except) == 0 {
		return b.CIDR
	}
	return b.CIDR + " except " + strings.Join(b.Except, ", ")
}
