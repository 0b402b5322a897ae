package policy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// TestComputeProvenance: every admission of the model says where it comes
// from (the isolation, a flag, or an allowlist rule and peer) and carries
// the ports it is admitted on.
func TestComputeProvenance(t *testing.T) {
	cfg := Config{
		AllowedIngressNamespaces: []string{"monitoring"},
		AllowedIngressCIDRs:      []string{"10.0.0.0/24"},
		DNSService:               &types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"},
		DNSIPs:                   []netip.Addr{netip.MustParseAddr("169.254.25.10")},
		ProjectLabel:             "kubesphere.io/workspace",
		AllowIngressFromNodes:    true,
	}
	ns := isolatedNamespace("demo-project-1")
	ns.Labels[cfg.ProjectLabel] = "ws-a"
	web := allowlist("web", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2"), v1alpha1.Peer{Project: "ws-b"}), port(corev1.ProtocolTCP, 80))},
		Egress:  []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx")))},
	})
	m, err := Compute(Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{web}, NodeAddresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")}},
		servicesOf(kubeDNS(), nginx()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	port80 := npPorts(npPort(corev1.ProtocolTCP, 80))
	dns := npPorts(npPort(corev1.ProtocolUDP, 53), npPort(corev1.ProtocolTCP, 53))
	want := Model{
		Namespace: "demo-project-1",
		Enforced:  true,
		Ingress: []Admission{
			{Peer: Peer{Kind: PeerSelf}},
			{Peer: Peer{Kind: PeerGroup, Label: cfg.ProjectLabel, Value: "ws-a"}, Source: Source{Flag: FlagProjectLabel}},
			{Peer: Peer{Kind: PeerNamespace, Namespace: "monitoring"}, Source: Source{Flag: FlagAllowedIngressNamespaces}},
			{Peer: Peer{Kind: PeerAddresses, CIDR: "10.0.0.0/24"}, Source: Source{Flag: FlagAllowedIngressCIDRs}},
			{Peer: Peer{Kind: PeerAddresses, CIDR: "192.168.0.1/32"}, Source: Source{Flag: FlagAllowIngressFromNodes}},
			{Peer: Peer{Kind: PeerNamespace, Namespace: "demo-project-2"}, Ports: port80, Source: Source{Allowlist: "web", Field: "spec.ingress[0].from[0]"}},
			{Peer: Peer{Kind: PeerGroup, Label: cfg.ProjectLabel, Value: "ws-b"}, Ports: port80, Source: Source{Allowlist: "web", Field: "spec.ingress[0].from[1]"}},
		},
		EgressRestricted: true,
		Egress: []Admission{
			{Peer: Peer{Kind: PeerSelf}},
			{Peer: Peer{Kind: PeerPods, Namespace: "kube-system", Selector: map[string]string{"k8s-app": "kube-dns"}}, Ports: dns, Source: Source{Flag: FlagDNSService}},
			{Peer: Peer{Kind: PeerAddresses, CIDR: "169.254.25.10/32"}, Ports: dns, Source: Source{Flag: FlagDNSIPs}},
			{Peer: Peer{Kind: PeerPods, Namespace: "demo-project-2", Selector: map[string]string{"app": "nginx"}}, Ports: npPorts(npPort(corev1.ProtocolTCP, 8080)),
				Source: Source{Allowlist: "web", Field: "spec.egress[0].to[0]"}},
		},
		Allowlists: []AllowlistModel{{Name: "web", UID: "uid-web", Ingress: true, Egress: true, Policy: "moat-allowlist-web"}},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("model (-want +got):\n%s", diff)
	}
	if got := m.Ingress[5].Source.String(); got != "allowlist web (spec.ingress[0].from[0])" {
		t.Errorf("source: %q", got)
	}
	if got := m.Egress[1].Source.String(); got != "moat serve --dns-service" {
		t.Errorf("source: %q", got)
	}
	// PolicyOf names, for every admission, the rendered policy that holds
	// its peer.
	rendered := map[string]networkingv1.NetworkPolicy{}
	for _, np := range m.Render().Policies {
		rendered[np.Name] = np
	}
	for _, dir := range []struct {
		egress     bool
		admissions []Admission
	}{{false, m.Ingress}, {true, m.Egress}} {
		for _, a := range dir.admissions {
			name := m.PolicyOf(a, dir.egress)
			np, ok := rendered[name]
			if !ok || !holdsPeer(np, a.Peer.NetworkPolicyPeer(), dir.egress) {
				t.Errorf("PolicyOf(%s, egress %v) = %q, which does not hold the peer", a.Peer.Describe(), dir.egress, name)
			}
		}
	}

	// A model that enforces nothing admits nothing of its own and renders
	// no policy.
	off, err := Compute(Input{Namespace: namespace("demo-project-1", nil), Allowlists: []*v1alpha1.NetworkAllowlist{web}}, nil, cfg)
	if err != nil || off.Enforced || len(off.Ingress) != 0 || len(off.Render().Policies) != 0 {
		t.Errorf("not isolated: %+v, %v", off, err)
	}
}

// TestCoversPort pins how a NetworkPolicy port is read against admitted
// ports.
func TestCoversPort(t *testing.T) {
	admitted := func(ports ...networkingv1.NetworkPolicyPort) []Admission { return []Admission{{Ports: ports}} }
	rng := func(from, to int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(from)), EndPort: ptr.To(to)}
	}
	every := func(protocol corev1.Protocol) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: ptr.To(protocol)}
	}
	tcp80 := npPort(corev1.ProtocolTCP, 80)
	for _, tc := range []struct {
		name     string
		admitted []Admission
		port     *networkingv1.NetworkPolicyPort
		want     bool
	}{
		{"every port admitted", []Admission{{}}, nil, true},
		{"every port asked, some admitted", admitted(tcp80), nil, false},
		{"same port", admitted(tcp80), &tcp80, true},
		{"no protocol is TCP", admitted(tcp80), &networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(80))}, true},
		{"other protocol", admitted(tcp80), ptr.To(npPort(corev1.ProtocolUDP, 80)), false},
		{"other port", admitted(tcp80), ptr.To(npPort(corev1.ProtocolTCP, 81)), false},
		{"inside a range", admitted(rng(8000, 8100)), ptr.To(rng(8000, 8100)), true},
		{"range wider at the top", admitted(rng(8000, 8100)), ptr.To(rng(8000, 8101)), false},
		{"range wider at the bottom", admitted(rng(8000, 8100)), ptr.To(rng(7999, 8100)), false},
		{"port at the range's end", admitted(rng(8000, 8100)), ptr.To(npPort(corev1.ProtocolTCP, 8100)), true},
		{"every port of the protocol admitted", admitted(every(corev1.ProtocolUDP)), ptr.To(npPort(corev1.ProtocolUDP, 53)), true},
		{"every port of the protocol asked", admitted(tcp80), ptr.To(every(corev1.ProtocolTCP)), false},
		{"same name", admitted(npNamedPort(corev1.ProtocolTCP, "http")), ptr.To(npNamedPort(corev1.ProtocolTCP, "http")), true},
		{"name for a number", admitted(tcp80), ptr.To(npNamedPort(corev1.ProtocolTCP, "http")), false},
		{"number for a name", admitted(npNamedPort(corev1.ProtocolTCP, "http")), &tcp80, false},
		{"other name", admitted(npNamedPort(corev1.ProtocolTCP, "http")), ptr.To(npNamedPort(corev1.ProtocolTCP, "metrics")), false},
		{"a second admission", append(admitted(tcp80), admitted(npPort(corev1.ProtocolTCP, 443))...), ptr.To(npPort(corev1.ProtocolTCP, 443)), true},
	} {
		if got := CoversPort(tc.admitted, tc.port); got != tc.want {
			t.Errorf("%s: CoversPort = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestSelectionsPods: a tenant's podSelector is held by admitted pods only
// when it requires every label of their selector (narrower), never wider.
func TestSelectionsPods(t *testing.T) {
	m := Model{Namespace: "demo-project-1", Enforced: true, Ingress: []Admission{
		{Peer: Peer{Kind: PeerSelf}},
		{Peer: Peer{Kind: PeerPods, Namespace: "other", Selector: map[string]string{"app": "web", "tier": "front"}}},
	}}
	pods := func(selector map[string]string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceSelector("other"), PodSelector: &metav1.LabelSelector{MatchLabels: selector}}
	}
	for _, tc := range []struct {
		name string
		peer networkingv1.NetworkPolicyPeer
		held bool
	}{
		{"same selector", pods(map[string]string{"app": "web", "tier": "front"}), true},
		{"narrower", pods(map[string]string{"app": "web", "tier": "front", "v": "2"}), true},
		{"wider", pods(map[string]string{"app": "web"}), false},
		{"other value", pods(map[string]string{"app": "web", "tier": "back"}), false},
		{"every pod of the namespace", networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceSelector("other")}, false},
		{"own pods", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}, true},
	} {
		sels := m.Selections(false, tc.peer)
		if len(sels) != 1 || (len(sels[0].By) > 0) != tc.held {
			t.Errorf("%s: %+v, want held %t", tc.name, sels, tc.held)
		}
	}
}

// TestNarrowestModel: the narrowest model is what an isolated namespace
// admits with no flag set and an allowlist whose only egress peer is
// dropped: its own namespace, both ways, egress restricted.
func TestNarrowestModel(t *testing.T) {
	closed := allowlist("closed", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-1", "missing")))}})
	m, err := Compute(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{closed}}, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	m.Allowlists = nil
	if diff := cmp.Diff(NarrowestModel("demo-project-1"), m); diff != "" {
		t.Errorf("NarrowestModel (-want +got):\n%s", diff)
	}
}

// TestComputeServiceInAllowlistNamespace: a Service peer without a
// namespace names a Service of the allowlist's namespace, and of the
// project's namespace when the allowlist has none (a manifest rendered
// offline).
func TestComputeServiceInAllowlistNamespace(t *testing.T) {
	web := service("demo-project-1", "web", map[string]string{"app": "web"}, svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(8080)))
	al := allowlist("local", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("", "web")))}})
	al.Namespace = ""
	m, err := Compute(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{al}}, servicesOf(web), Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := Admission{Peer: Peer{Kind: PeerPods, Namespace: "demo-project-1", Selector: map[string]string{"app": "web"}},
		Ports: npPorts(npPort(corev1.ProtocolTCP, 8080)), Source: Source{Allowlist: "local", Field: "spec.egress[0].to[0]"}}
	if len(m.Egress) != 2 || !cmp.Equal(m.Egress[1], want) || len(m.Allowlists[0].Problems) != 0 {
		t.Errorf("egress %+v, problems %+v; want the Service's pods", m.Egress, m.Allowlists[0].Problems)
	}
}

// holdsPeer reports whether a rule of np in the direction holds peer.
func holdsPeer(np networkingv1.NetworkPolicy, peer networkingv1.NetworkPolicyPeer, egress bool) bool {
	var peers []networkingv1.NetworkPolicyPeer
	for _, r := range np.Spec.Ingress {
		if !egress {
			peers = append(peers, r.From...)
		}
	}
	for _, r := range np.Spec.Egress {
		if egress {
			peers = append(peers, r.To...)
		}
	}
	for _, p := range peers {
		if cmp.Equal(p, peer) {
			return true
		}
	}
	return false
}
