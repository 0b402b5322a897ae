package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func npProject(key, value string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}}
}

const workspaceLabel = "kubesphere.io/workspace"

func TestRenderProjectGroups(t *testing.T) {
	member := namespace("demo-project-1", map[string]string{"moat.dev/isolated": "true", workspaceLabel: "team-a"})
	peer := allowlist("web", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(v1alpha1.Peer{Project: "team-b"}), port(corev1.ProtocolTCP, 8080))},
	})
	runCases(t, []renderCase{{
		name: "moat-group-ingress admits the namespace's own group, by the project label, apart from the deny",
		ns:   member,
		cfg:  Config{ProjectLabel: workspaceLabel, AllowedIngressNamespaces: []string{"monitoring"}},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1", npNamespace("monitoring")),
				wantExtension("demo-project-1", GroupIngressPolicyName, npProject(workspaceLabel, "team-a"))},
			Allowlists: map[string]AllowlistResult{},
		},
	}, {
		name: "moat.dev/group-ingress=false keeps the group out: the namespace is isolated on its own",
		ns:   namespace("demo-project-1", map[string]string{"moat.dev/isolated": "true", workspaceLabel: "team-a", "moat.dev/group-ingress": "false"}),
		cfg:  Config{ProjectLabel: workspaceLabel, AllowedIngressNamespaces: []string{"monitoring"}},
		want: Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1", npNamespace("monitoring"))}, Allowlists: map[string]AllowlistResult{}},
	}, {
		name: "an invalid moat.dev/group-ingress keeps the group out too (fail closed)",
		ns:   namespace("demo-project-1", map[string]string{"moat.dev/isolated": "true", workspaceLabel: "team-a", "moat.dev/group-ingress": "no"}),
		cfg:  Config{ProjectLabel: workspaceLabel},
		want: Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")}, Allowlists: map[string]AllowlistResult{}},
	}, {
		name: "moat.dev/group-ingress=true is the default",
		ns:   namespace("demo-project-1", map[string]string{"moat.dev/isolated": "true", workspaceLabel: "team-a", "moat.dev/group-ingress": "true"}),
		cfg:  Config{ProjectLabel: workspaceLabel},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1"),
				wantExtension("demo-project-1", GroupIngressPolicyName, npProject(workspaceLabel, "team-a"))},
			Allowlists: map[string]AllowlistResult{},
		},
	}, {
		name: "without a project label configured, the namespace's labels open nothing",
		ns:   member,
		cfg:  Config{},
		want: Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")}, Allowlists: map[string]AllowlistResult{}},
	}, {
		name: "an empty label value names no group",
		ns:   namespace("demo-project-1", map[string]string{"moat.dev/isolated": "true", workspaceLabel: ""}),
		cfg:  Config{ProjectLabel: workspaceLabel},
		want: Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")}, Allowlists: map[string]AllowlistResult{}},
	}, {
		name:       "a project peer selects the group by the project label",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{peer},
		cfg:        Config{ProjectLabel: workspaceLabel},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("web", []networkingv1.NetworkPolicyIngressRule{{
					From:  npPeers(npProject(workspaceLabel, "team-b")),
					Ports: npPorts(npPort(corev1.ProtocolTCP, 8080)),
				}}, nil, ingressOnly...),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"web": applied("web")},
		},
	}, {
		name:       "a project peer without a project label is dropped and reported",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{peer},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("web", nil, nil, ingressOnly...),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"web": {Policies: []string{"moat-allowlist-web"}, Problems: []Problem{{
				Reason:  v1alpha1.ReasonProjectLabelUnset,
				Field:   "spec.ingress[0].from[0].project",
				Message: `moat has no project label (--project-label), so project "team-b" names no namespaces; the peer is left out: set --project-label or use namespace peers`,
			}}}},
		},
	}})
}

func TestRenderDNS(t *testing.T) {
	out := allowlist("out", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")))}})
	wantOut := wantAllowlist("out", nil, []networkingv1.NetworkPolicyEgressRule{{To: npPeers(npCIDR("10.1.0.1/32"))}}, egressOnly...)
	dns53 := npPorts(npPort(corev1.ProtocolUDP, 53), npPort(corev1.ProtocolTCP, 53))
	egressWith := func(rules ...networkingv1.NetworkPolicyEgressRule) networkingv1.NetworkPolicy {
		np := wantDefaultEgress("demo-project-1", nil)
		np.Spec.Egress = append(np.Spec.Egress, rules...)
		return np
	}
	policies := func(egress networkingv1.NetworkPolicy) Result {
		return Result{
			Policies:   []networkingv1.NetworkPolicy{wantOut, egress, wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{"out": applied("out")},
		}
	}
	dnsPods := npPods("kube-system", map[string]string{"k8s-app": "kube-dns"})
	runCases(t, []renderCase{{
		name:       "only the Service ports named dns and dns-tcp, not CoreDNS's metrics port",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		services:   servicesOf(kubeDNS()),
		cfg:        dnsConfig(),
		want:       policies(egressWith(*kubeDNSRule())),
	}, {
		name:       "unnamed ports: those numbered 53, on their target ports",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		services: servicesOf(service("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"},
			svcPort("", corev1.ProtocolUDP, 53, intstr.FromInt32(5353)),
			svcPort("prometheus", corev1.ProtocolTCP, 9153, intstr.FromInt32(9153)))),
		cfg:  dnsConfig(),
		want: policies(egressWith(networkingv1.NetworkPolicyEgressRule{To: npPeers(dnsPods), Ports: npPorts(npPort(corev1.ProtocolUDP, 5353))})),
	}, {
		name:       "no DNS port at all: UDP and TCP 53",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		services: servicesOf(service("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"},
			svcPort("metrics", corev1.ProtocolTCP, 9153, intstr.FromInt32(9153)))),
		cfg:  dnsConfig(),
		want: policies(egressWith(networkingv1.NetworkPolicyEgressRule{To: npPeers(dnsPods), Ports: dns53})),
	}, {
		name:       "node-local caches join the DNS pods' rule on port 53, sorted, as /32 and /128",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		services:   servicesOf(kubeDNS()),
		cfg:        Config{DNSService: ptr.To(DefaultDNSService), DNSIPs: addrs("fd00::a", "169.254.25.10", "169.254.20.10", "169.254.25.10")},
		want: policies(egressWith(networkingv1.NetworkPolicyEgressRule{
			To:    npPeers(dnsPods, npCIDR("169.254.20.10/32"), npCIDR("169.254.25.10/32"), npCIDR("fd00::a/128")),
			Ports: dns53,
		})),
	}, {
		name:       "node-local caches get their own rule when the DNS pods listen elsewhere",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		services: servicesOf(service("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"},
			svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromInt32(5353)))),
		cfg: Config{DNSService: ptr.To(DefaultDNSService), DNSIPs: addrs("169.254.25.10")},
		want: policies(egressWith(
			networkingv1.NetworkPolicyEgressRule{To: npPeers(dnsPods), Ports: npPorts(npPort(corev1.ProtocolUDP, 5353))},
			networkingv1.NetworkPolicyEgressRule{To: npPeers(npCIDR("169.254.25.10/32")), Ports: dns53},
		)),
	}, {
		name:       "node-local caches stay reachable with the DNS Service exception off",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{out},
		cfg:        Config{DNSIPs: addrs("169.254.25.10")},
		want:       policies(egressWith(networkingv1.NetworkPolicyEgressRule{To: npPeers(npCIDR("169.254.25.10/32")), Ports: dns53})),
	}})
}

func TestRenderNodes(t *testing.T) {
	runCases(t, []renderCase{{
		name:  "node addresses are admitted by moat-nodes-ingress, apart from the deny, sorted, once each",
		ns:    isolatedNamespace("demo-project-1"),
		cfg:   Config{AllowIngressFromNodes: true, AllowedIngressCIDRs: []string{"172.31.0.0/16"}},
		nodes: addrs("192.168.0.12", "::ffff:192.168.0.11", "192.168.0.12", "fd00::1"),
		want: Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1", npCIDR("172.31.0.0/16")),
			wantExtension("demo-project-1", NodesIngressPolicyName, npCIDR("192.168.0.11/32"), npCIDR("192.168.0.12/32"), npCIDR("fd00::1/128"))},
			Allowlists: map[string]AllowlistResult{}},
	}, {
		name:  "without --allow-ingress-from-nodes the addresses open nothing",
		ns:    isolatedNamespace("demo-project-1"),
		nodes: addrs("192.168.0.12"),
		want:  Result{Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")}, Allowlists: map[string]AllowlistResult{}},
	}})
}

func TestNodeAddresses(t *testing.T) {
	node := func(name string, annotations map[string]string, addresses ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Status: corev1.NodeStatus{Addresses: addresses}}
	}
	nodes := []*corev1.Node{
		node("a", map[string]string{"projectcalico.org/IPv4Address": "10.0.0.5/24", "kubesphere.io/snat-node-ips": "10.9.0.1, 10.9.0.2,not-an-ip"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.0.11"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.11"},
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "a"}),
		nil,
		node("b", nil, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.0.11"}),
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []netip.Addr
	}{
		{"default: InternalIP only", Config{}, addrs("192.168.0.11")},
		{"configured types", Config{NodeAddressTypes: []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP}}, addrs("192.168.0.11", "203.0.113.11")},
		{"annotations: lists and prefixed forms, junk ignored", Config{NodeAddressAnnotations: []string{"projectcalico.org/IPv4Address", "kubesphere.io/snat-node-ips", "absent"}},
			addrs("10.0.0.5", "10.9.0.1", "10.9.0.2", "192.168.0.11")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, NodeAddresses(nodes, tc.cfg), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("NodeAddresses() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderKubernetesAPI(t *testing.T) {
	operator := allowlist("operator", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{
		egress(peers(v1alpha1.Peer{KubernetesAPI: &v1alpha1.KubernetesAPIPeer{}}, nsRef("tools")), port(corev1.ProtocolTCP, 443)),
	}})
	https := npPorts(npPort(corev1.ProtocolTCP, 6443))
	runCases(t, []renderCase{{
		name:       "the API server's addresses on the EndpointSlice's ports; the rule's ports stay with the other peers",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{operator},
		apiServer:  []Endpoints{{Addresses: addrs("172.18.0.2", "172.18.0.3"), Ports: https}, {Addresses: addrs("fd00::2"), Ports: https}},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("operator", nil, []networkingv1.NetworkPolicyEgressRule{
					{To: npPeers(npCIDR("172.18.0.2/32"), npCIDR("172.18.0.3/32"), npCIDR("fd00::2/128")), Ports: https},
					{To: npPeers(npNamespace("tools")), Ports: npPorts(npPort(corev1.ProtocolTCP, 443))},
				}, egressOnly...),
				wantDefaultEgress("demo-project-1", nil),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"operator": applied("operator")},
		},
	}, {
		name:       "no known endpoints: the peer is dropped and reported",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{operator},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("operator", nil, []networkingv1.NetworkPolicyEgressRule{
					{To: npPeers(npNamespace("tools")), Ports: npPorts(npPort(corev1.ProtocolTCP, 443))},
				}, egressOnly...),
				wantDefaultEgress("demo-project-1", nil),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"operator": {Policies: []string{"moat-allowlist-operator"}, Problems: []Problem{{
				Reason:  v1alpha1.ReasonAPIServerNotFound,
				Field:   "spec.egress[0].to[0].kubernetesAPI",
				Message: "the Service default/kubernetes has no ready endpoints in its EndpointSlices, so the API server's addresses are unknown; the peer is left out until they appear",
			}}}},
		},
	}})
}

func TestAPIServerEndpoints(t *testing.T) {
	// slice returns the API server's own EndpointSlice (default/kubernetes,
	// as kube-apiserver writes it) with the given content.
	slice := func(addressType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, endpoints ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: APIServerNamespace, Name: APIServerName,
				Labels: map[string]string{discoveryv1.LabelServiceName: APIServerName}},
			AddressType: addressType, Ports: ports, Endpoints: endpoints,
		}
	}
	ep := func(ready *bool, a ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: a, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	https := []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443), Protocol: ptr.To(corev1.ProtocolTCP)}}
	tweak := func(s *discoveryv1.EndpointSlice, f func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
		f(s)
		return s
	}
	v4 := func() *discoveryv1.EndpointSlice {
		return slice(discoveryv1.AddressTypeIPv4, https, ep(nil, "172.18.0.2"))
	}
	ownV4 := []Endpoints{{Addresses: addrs("172.18.0.2"), Ports: npPorts(npPort(corev1.ProtocolTCP, 6443))}}
	for _, tc := range []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []Endpoints
	}{{
		name:   "ready and unset-ready endpoints, unnamed ports default to TCP",
		slices: []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Port: ptr.To[int32](6443)}}, ep(ptr.To(true), "172.18.0.3"), ep(ptr.To(false), "172.18.0.9"), ep(nil, "172.18.0.2"))},
		want:   []Endpoints{{Addresses: addrs("172.18.0.2", "172.18.0.3"), Ports: npPorts(npPort(corev1.ProtocolTCP, 6443))}},
	}, {
		name:   "IPv6",
		slices: []*discoveryv1.EndpointSlice{nil, slice(discoveryv1.AddressTypeIPv6, https, ep(nil, "fd00::2"))},
		want:   []Endpoints{{Addresses: addrs("fd00::2"), Ports: npPorts(npPort(corev1.ProtocolTCP, 6443))}},
	}, {
		name:   "FQDN",
		slices: []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeFQDN, https, ep(nil, "api.example.com"))},
	}, {
		name:   "no ready endpoint",
		slices: []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, https, ep(ptr.To(false), "172.18.0.8"))},
	}, {
		// A slice without ports, or whose ports have no number, would open
		// every port of its addresses: left out.
		name:   "no ports",
		slices: []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, nil, ep(nil, "10.0.0.66"))},
	}, {
		name:   "unnumbered port",
		slices: []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr.To("any")}}, ep(nil, "10.0.0.67"))},
	}, {
		// Issue 20, case 8: only the API server's own slice counts.
		name: "other slices labelled for default/kubernetes are ignored",
		slices: []*discoveryv1.EndpointSlice{
			tweak(slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Port: ptr.To[int32](22)}, {Port: ptr.To[int32](3389)}}, ep(nil, "10.201.0.1")),
				func(s *discoveryv1.EndpointSlice) { s.Name = "kubernetes-x7k2p" }),
			tweak(v4(), func(s *discoveryv1.EndpointSlice) {
				s.Labels[discoveryv1.LabelManagedBy] = "endpointslicemirroring-controller.k8s.io"
			}),
			tweak(v4(), func(s *discoveryv1.EndpointSlice) { s.Labels[discoveryv1.LabelManagedBy] = "" }),
			tweak(v4(), func(s *discoveryv1.EndpointSlice) { s.Namespace = "tenant" }),
			tweak(v4(), func(s *discoveryv1.EndpointSlice) { s.Labels = nil }),
		},
	}, {
		name: "the API server's slice among others",
		slices: []*discoveryv1.EndpointSlice{
			tweak(slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Port: ptr.To[int32](22)}}, ep(nil, "10.201.0.1")),
				func(s *discoveryv1.EndpointSlice) { s.Name = "kubernetes-x7k2p" }),
			v4(),
		},
		want: ownV4,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := APIServerEndpoints(tc.slices)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("APIServerEndpoints() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeAddressBounds: a node contributes at most MaxNodeAddressesPerNode
// addresses (a kubelet controls its own Node), all nodes at most
// MaxNodeAddresses; what is left out is reported.
func TestNodeAddressBounds(t *testing.T) {
	flood := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "flood", Annotations: map[string]string{"tunnel": ""}}}
	for i := range 50 {
		flood.Status.Addresses = append(flood.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.1.0.%d", i+1)})
	}
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "10.2.%d.%d,", i/250, i%250+1)
	}
	flood.Annotations["tunnel"] = b.String()
	small := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.168.0.2"}, {Type: corev1.NodeInternalIP, Address: "192.168.0.2"}, {Type: corev1.NodeInternalIP, Address: "::ffff:192.168.0.3"},
	}}}
	cfg := Config{NodeAddressAnnotations: []string{"tunnel"}, MaxNodeAddressesPerNode: 3}
	got, overflow := BoundedNodeAddresses([]*corev1.Node{small, flood}, cfg)
	if diff := cmp.Diff(addrs("10.1.0.1", "10.1.0.2", "10.1.0.3", "192.168.0.2", "192.168.0.3"), got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("per node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(NodeAddressOverflow{Nodes: []string{"flood"}}, overflow); diff != "" {
		t.Errorf("overflow (-want +got):\n%s", diff)
	}
	cfg.MaxNodeAddresses = 4
	got, overflow = BoundedNodeAddresses([]*corev1.Node{small, flood}, cfg)
	if len(got) != 4 || overflow.Dropped != 1 || got[3] != netip.MustParseAddr("192.168.0.2") {
		t.Errorf("total bound: %v, %+v", got, overflow)
	}
	// The defaults bound a flood too.
	got, overflow = BoundedNodeAddresses([]*corev1.Node{flood}, Config{NodeAddressAnnotations: []string{"tunnel"}})
	if len(got) != DefaultMaxNodeAddressesPerNode || overflow.Empty() {
		t.Errorf("default bound: %d addresses, %+v", len(got), overflow)
	}
	// A node with exactly the bound of distinct addresses, one of them
	// repeated, is not over it: repeats do not count.
	full := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "full"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.168.1.1"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.1"},
		{Type: corev1.NodeInternalIP, Address: "192.168.1.2"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.3"},
	}}}
	got, overflow = BoundedNodeAddresses([]*corev1.Node{full}, Config{MaxNodeAddressesPerNode: 3})
	if !slices.Equal(got, addrs("192.168.1.1", "192.168.1.2", "192.168.1.3")) || !overflow.Empty() {
		t.Errorf("exactly the bound: %v, %+v", got, overflow)
	}
}
