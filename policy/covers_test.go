package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
)

// TestPinnedNamespaces: only matchLabels and an In expression on
// kubernetes.io/metadata.name pin a namespaceSelector; NotIn, Exists and
// DoesNotExist on that label select every other namespace and never pin it.
func TestPinnedNamespaces(t *testing.T) {
	expr := func(op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: v1alpha1.NamespaceNameLabel, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name   string
		sel    metav1.LabelSelector
		want   []string
		pinned bool
	}{
		{"matchLabels", metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "a"}}, []string{"a"}, true},
		{"In", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr(metav1.LabelSelectorOpIn, "b", "a")}}, []string{"a", "b"}, true},
		{"NotIn", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr(metav1.LabelSelectorOpNotIn, "a")}}, nil, false},
		{"Exists", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr(metav1.LabelSelectorOpExists)}}, nil, false},
		{"DoesNotExist", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr(metav1.LabelSelectorOpDoesNotExist)}}, nil, false},
		{"In and matchLabels intersect", metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "a"},
			MatchExpressions: []metav1.LabelSelectorRequirement{expr(metav1.LabelSelectorOpIn, "a", "b")}}, []string{"a"}, true},
	} {
		names, pinned := PinnedNamespaces(&tc.sel)
		if pinned != tc.pinned || !cmp.Equal(names, tc.want) {
			t.Errorf("%s: PinnedNamespaces = %v, %t; want %v, %t", tc.name, names, pinned, tc.want, tc.pinned)
		}
	}
}

// TestSelectionsNamespaces: a namespaceSelector is held by an admitted group
// only when it requires that group's value, and by an admitted namespace
// only when pinned to it (NotIn or Exists on the name label is no pin).
func TestSelectionsNamespaces(t *testing.T) {
	m := Model{Namespace: "demo-project-1", Enforced: true, Ingress: []Admission{
		{Peer: Peer{Kind: PeerSelf}},
		{Peer: Peer{Kind: PeerGroup, Label: "kubesphere.io/workspace", Value: "ws"}, Source: Source{Flag: FlagProjectLabel}},
		{Peer: Peer{Kind: PeerNamespace, Namespace: "other"}},
	}}
	sel := func(labels map[string]string, exprs ...metav1.LabelSelectorRequirement) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: labels, MatchExpressions: exprs}}
	}
	name := func(op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: v1alpha1.NamespaceNameLabel, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
		held []bool // per selection
	}{
		{"the group", sel(map[string]string{"kubesphere.io/workspace": "ws"}), []bool{true}},
		{"another group", sel(map[string]string{"kubesphere.io/workspace": "ws2"}), []bool{false}},
		{"the group label with an empty value", sel(map[string]string{"kubesphere.io/workspace": ""}), []bool{false}},
		{"pinned to an admitted namespace", sel(map[string]string{v1alpha1.NamespaceNameLabel: "other"}), []bool{true}},
		{"pinned by In", sel(nil, name(metav1.LabelSelectorOpIn, "other", "demo-project-1")), []bool{true, true}},
		{"In with one namespace not admitted", sel(nil, name(metav1.LabelSelectorOpIn, "other", "third")), []bool{true, false}},
		{"NotIn is no pin", sel(nil, name(metav1.LabelSelectorOpNotIn, "third")), []bool{false}},
		{"Exists is no pin", sel(nil, name(metav1.LabelSelectorOpExists)), []bool{false}},
	} {
		sels := m.Selections(false, tc.peer)
		held := make([]bool, len(sels))
		for i, s := range sels {
			held[i] = len(s.By) > 0
		}
		if !cmp.Equal(held, tc.held) {
			t.Errorf("%s: held %v, want %v (%+v)", tc.name, held, tc.held, sels)
		}
	}
}

// TestSelectionsIPBlocks: an ipBlock is held only by an admitted block that
// holds all of it (an equal block counts), and only when every address the
// admitted block excepts is excepted by the ipBlock too.
func TestSelectionsIPBlocks(t *testing.T) {
	m := Model{Namespace: "demo-project-1", Enforced: true, Ingress: []Admission{
		{Peer: Peer{Kind: PeerAddresses, CIDR: "192.168.0.0/24"}},
		{Peer: Peer{Kind: PeerAddresses, CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
		{Peer: Peer{Kind: PeerAddresses, CIDR: "2001:db8::/64"}},
	}}
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
		held bool
	}{
		{"equal block", npCIDR("192.168.0.0/24"), true},
		{"inside", npCIDR("192.168.0.128/25"), true},
		{"wider, same base address", npCIDR("192.168.0.0/16"), false},
		{"overlapping, wider", npCIDR("192.168.0.0/23"), false},
		{"equal IPv6 block", npCIDR("2001:db8::/64"), true},
		{"wider IPv6 block", npCIDR("2001:db8::/48"), false},
		{"the admitted block without its except", npCIDR("10.0.0.0/8"), false},
		{"the admitted block with its except", npCIDR("10.0.0.0/8", "10.1.0.0/16"), true},
		{"with a wider except", npCIDR("10.0.0.0/8", "10.0.0.0/15"), true},
		{"with a narrower except", npCIDR("10.0.0.0/8", "10.1.0.0/17"), false},
		{"inside the except", npCIDR("10.1.2.0/24"), false},
		{"beside the except", npCIDR("10.2.0.0/16"), true},
		{"does not parse", npCIDR("10.0.0.0/33"), false},
	} {
		sels := m.Selections(false, tc.peer)
		if len(sels) != 1 || (len(sels[0].By) > 0) != tc.held {
			t.Errorf("%s: %+v, want held %t", tc.name, sels, tc.held)
		}
	}
}
