package evaluator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

func ns(name string, labels map[string]string) corev1.Namespace {
	if labels == nil {
		labels = map[string]string{}
	}
	labels["kubernetes.io/metadata.name"] = name
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pod(namespace, name, ip string, labels map[string]string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status:     corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// TestLayout pins the packet mirror: each case's verdict depends on a field
// the engine reads (source and destination address, protocol, destination
// port); a mismatched layout reads garbage and fails at least one.
func TestLayout(t *testing.T) {
	tcp := corev1.ProtocolTCP
	port := intstr.FromString("http")
	objs := Objects{
		Namespaces: []corev1.Namespace{ns("a", nil), ns("b", map[string]string{"team": "x"}), ns("c", nil)},
		Pods: []corev1.Pod{
			pod("a", "web", "10.0.0.1", map[string]string{"app": "web"}),
			pod("b", "client", "10.0.0.2", nil),
			pod("c", "other", "10.0.0.3", nil),
		},
		NetworkPolicies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}}, {IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}},
			},
		}},
	}
	e, err := New(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src, dst string
		port     int
		proto    corev1.Protocol
		want     bool
	}{
		{"10.0.0.2", "10.0.0.1", 8080, tcp, true},
		{"10.0.0.2", "10.0.0.1", 8081, tcp, false},
		{"10.0.0.2", "10.0.0.1", 8080, corev1.ProtocolUDP, false},
		{"10.0.0.3", "10.0.0.1", 8080, tcp, false},
		{"192.168.2.9", "10.0.0.1", 8080, tcp, true},
		{"192.168.1.9", "10.0.0.1", 8080, tcp, false},
		{"10.0.0.1", "10.0.0.3", 9999, tcp, true},
	} {
		got, err := e.Allowed(c.src, c.dst, c.port, c.proto)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s -> %s:%d/%s = %v, want %v", c.src, c.dst, c.port, c.proto, got, c.want)
		}
	}
}

// TestAdminTier: an AdminNetworkPolicy Deny wins over a NetworkPolicy that
// admits everything; Pass hands the decision to NetworkPolicy.
func TestAdminTier(t *testing.T) {
	objs := Objects{
		Namespaces: []corev1.Namespace{ns("a", map[string]string{"iso": "y"}), ns("b", nil)},
		Pods:       []corev1.Pod{pod("a", "web", "10.0.0.1", nil), pod("b", "client", "10.0.0.2", nil)},
		NetworkPolicies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "all"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}},
		}},
		AdminNetworkPolicies: []npav1alpha1.AdminNetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Name: "iso"},
			Spec: npav1alpha1.AdminNetworkPolicySpec{
				Priority: 10,
				Subject:  npav1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"iso": "y"}}},
				Ingress: []npav1alpha1.AdminNetworkPolicyIngressRule{{
					Name: "deny-others", Action: npav1alpha1.AdminNetworkPolicyRuleActionDeny,
					From: []npav1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}},
				}},
			},
		}},
	}
	e, err := New(objs)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Allowed("10.0.0.2", "10.0.0.1", 80, corev1.ProtocolTCP); ok {
		t.Error("admin-tier Deny did not win over a NetworkPolicy admitting everything")
	}
	objs.AdminNetworkPolicies[0].Spec.Ingress[0].Action = npav1alpha1.AdminNetworkPolicyRuleActionPass
	e, _ = New(objs)
	if ok, _ := e.Allowed("10.0.0.2", "10.0.0.1", 80, corev1.ProtocolTCP); !ok {
		t.Error("Pass did not delegate to the NetworkPolicy admitting everything")
	}
}
