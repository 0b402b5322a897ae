package explain

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPolicyTypesDefault: a policy stored without policyTypes (offline
// manifests are not defaulted) isolates ingress always, and egress only when
// it has egress rules, as the API server defaults it.
func TestPolicyTypesDefault(t *testing.T) {
	a := corpusPod("a", "a", netip.MustParseAddr("10.0.0.1"), nil)
	b := corpusPod("b", "b", netip.MustParseAddr("10.0.0.2"), nil)
	denyIn := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "deny-in"}}
	egressOnlyToB := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "to-a"},
		Spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.9.0.0/16"}}}}}}}
	x := New(Objects{Pods: []*corev1.Pod{a, b}, NetworkPolicies: []*networkingv1.NetworkPolicy{denyIn, egressOnlyToB}})
	port := Port{Protocol: corev1.ProtocolTCP, Number: 80}
	for _, c := range []struct {
		name     string
		src, dst *corev1.Pod
		egress   bool
		ingress  bool
	}{
		{"b → a: b's egress defaults to Egress (it has egress rules) and a's ingress is denied", b, a, false, false},
		{"a → b: a's egress is open (no egress type), b's ingress is open (to-a has egress rules, and Ingress by default, with none)", a, b, true, false},
	} {
		v := x.Verdict(PodEndpoint(c.src), PodEndpoint(c.dst), port)
		if v.Egress.Allowed != c.egress || v.Ingress.Allowed != c.ingress {
			t.Errorf("%s: egress %v ingress %v, want %v %v", c.name, v.Egress.Allowed, v.Ingress.Allowed, c.egress, c.ingress)
		}
	}
}

// TestHostNetworkPodIsItsNode: no NetworkPolicy selects a pod on the host
// network; as a source it is its node's address.
func TestHostNetworkPodIsItsNode(t *testing.T) {
	p := corpusPod("a", "agent", netip.Addr{}, map[string]string{"app": "agent"})
	p.Spec.HostNetwork, p.Spec.NodeName, p.Status = true, "n1", corev1.PodStatus{HostIP: "10.250.0.1", PodIP: "10.250.0.1"}
	e := PodEndpoint(p)
	if e.Kind != KindNode || e.Prefix != netip.MustParsePrefix("10.250.0.1/32") || e.String() != "node n1 (10.250.0.1)" {
		t.Errorf("host-network pod: %+v (%s)", e, e)
	}
}
