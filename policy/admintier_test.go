package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, v := range s {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}

func TestSubtract(t *testing.T) {
	for _, c := range []struct {
		from, except, want []string
	}{
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.128/25"}, []string{"10.0.0.0/25"}},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/26"}, []string{"10.0.0.64/26", "10.0.0.128/25"}},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/8"}, nil},
		{[]string{"10.0.0.0/24"}, []string{"192.168.0.0/16", "fd00::/8"}, []string{"10.0.0.0/24"}},
		{[]string{"10.0.0.0/30"}, []string{"10.0.0.1/32", "10.0.0.2/32"}, []string{"10.0.0.0/32", "10.0.0.3/32"}},
		{[]string{"fd00::/126"}, []string{"fd00::3/128"}, []string{"fd00::/127", "fd00::2/128"}},
	} {
		got := Subtract(prefixes(c.from...), prefixes(c.except...))
		if !slices.Equal(got, prefixes(c.want...)) {
			t.Errorf("%v minus %v = %v, want %v", c.from, c.except, got, c.want)
		}
	}
}

// FuzzSubtract: an address is in the result exactly when it is in from and
// in no except, and the result's prefixes are disjoint.
func FuzzSubtract(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0}, uint8(24), []byte{10, 0, 0, 128}, uint8(25), []byte{10, 0, 0, 200})
	f.Add([]byte{0, 0, 0, 0}, uint8(0), []byte{192, 168, 1, 1}, uint8(32), []byte{192, 168, 1, 1})
	f.Fuzz(func(t *testing.T, from []byte, fromBits uint8, except []byte, exceptBits uint8, probe []byte) {
		fa, ok1 := netip.AddrFromSlice(from)
		ea, ok2 := netip.AddrFromSlice(except)
		pa, ok3 := netip.AddrFromSlice(probe)
		if !ok1 || !ok2 || !ok3 || int(fromBits) > fa.BitLen() || int(exceptBits) > ea.BitLen() {
			return
		}
		fp, _ := fa.Prefix(int(fromBits))
		ep, _ := ea.Prefix(int(exceptBits))
		got := Subtract([]netip.Prefix{fp}, []netip.Prefix{ep})
		in := 0
		for i, p := range got {
			if p.Contains(pa) {
				in++
			}
			for _, q := range got[i+1:] {
				if p.Overlaps(q) {
					t.Fatalf("%v minus %v: %v and %v overlap", fp, ep, p, q)
				}
			}
		}
		want := fp.Contains(pa) && !ep.Contains(pa)
		if (in == 1) != want || in > 1 {
			t.Fatalf("%v minus %v = %v: holds %v %d times, want %v", fp, ep, got, pa, in, want)
		}
	})
}

// manyRules is a model whose ingress needs n Pass rules (one per allowlist
// rule) and whose egress is restricted to one.
func manyRules(n int) Model {
	m := NarrowestModel("big")
	for i := range n {
		m.Ingress = append(m.Ingress, Admission{Peer: Peer{Kind: PeerNamespace, Namespace: fmt.Sprintf("ns-%d", i)},
			Source: Source{Allowlist: "wide", Rule: i}})
	}
	return m
}

func TestAdminTierSplits(t *testing.T) {
	anps, err := manyRules(250).AdminNetworkPolicies(20)
	if err != nil {
		t.Fatal(err)
	}
	// 251 Pass rules (the namespace itself, then 250): 99 and the Deny in
	// the main object, then 100 and 52 one priority higher.
	type shape struct {
		name              string
		priority          int32
		ingress, egress   int
		lastIngressAction npav1alpha1.AdminNetworkPolicyRuleAction
	}
	var got []shape
	for _, a := range anps {
		got = append(got, shape{a.Name, a.Spec.Priority, len(a.Spec.Ingress), len(a.Spec.Egress), a.Spec.Ingress[len(a.Spec.Ingress)-1].Action})
	}
	want := []shape{
		{"moat-isolation-big", 20, 100, 2, npav1alpha1.AdminNetworkPolicyRuleActionDeny},
		{"moat-isolation-big.1", 19, 100, 0, npav1alpha1.AdminNetworkPolicyRuleActionPass},
		{"moat-isolation-big.2", 19, 52, 0, npav1alpha1.AdminNetworkPolicyRuleActionPass},
	}
	if !slices.Equal(got, want) {
		t.Errorf("AdminNetworkPolicies: %+v, want %+v", got, want)
	}
	cnps, err := manyRules(250).ClusterNetworkPolicies(20)
	if err != nil {
		t.Fatal(err)
	}
	// 24 Pass rules and the Deny, then 227 in ten objects of 25 or fewer.
	if len(cnps) != 11 || len(cnps[0].Spec.Ingress) != 25 || len(cnps[10].Spec.Ingress) != 2 {
		t.Errorf("ClusterNetworkPolicies: %d objects, main with %d ingress rules", len(cnps), len(cnps[0].Spec.Ingress))
	}
	if _, err := manyRules(250).AdminNetworkPolicies(0); err == nil {
		t.Error("priority 0 with overflow objects: no error")
	}
	if anps, err := manyRules(0).AdminNetworkPolicies(0); err != nil || len(anps) != 1 {
		t.Errorf("priority 0 without overflow: %d objects, %v", len(anps), err)
	}
}

func TestAdminTierPeerLimits(t *testing.T) {
	m := NarrowestModel("big")
	for i := range 30 {
		m.Ingress = append(m.Ingress, Admission{Peer: Peer{Kind: PeerNamespace, Namespace: fmt.Sprintf("ns-%d", i)}, Source: Source{Flag: FlagAllowedIngressNamespaces}})
	}
	// 10.0.0.0/16 minus 40 single addresses: hundreds of prefixes, 25 per peer.
	block := Peer{Kind: PeerAddresses, CIDR: "10.0.0.0/16"}
	for i := range 40 {
		block.Except = append(block.Except, fmt.Sprintf("10.0.%d.1/32", i))
	}
	m.Egress = append(m.Egress, Admission{Peer: block, Source: Source{Allowlist: "a"}})
	cnps, err := m.ClusterNetworkPolicies(20)
	if err != nil {
		t.Fatal(err)
	}
	in, out := cnps[0].Spec.Ingress, cnps[0].Spec.Egress
	// Ingress: the namespace itself; 30 allowed namespaces as 25 + 5; the Deny.
	if len(in) != 4 || len(in[1].From) != 25 || len(in[2].From) != 5 {
		t.Fatalf("ingress rules %d: %+v", len(in), in)
	}
	networks := 0
	for _, r := range out[1:] {
		if r.Action == npav1beta1.ClusterNetworkPolicyRuleActionDeny {
			break
		}
		for _, p := range r.To {
			if len(p.Networks) > 25 {
				t.Errorf("a peer with %d networks", len(p.Networks))
			}
			networks += len(p.Networks)
		}
	}
	if want := len(Subtract(parsePrefixes([]string{block.CIDR}), parsePrefixes(block.Except))); networks != want || want <= 25 {
		t.Errorf("%d networks passed, want %d", networks, want)
	}
}

// TestAdminTierLeavesOut: what the admin tier cannot express. Ingress
// addresses stay with the NetworkPolicy tier (no rule); an egress address
// with a named port is denied (no Pass), never opened wider.
func TestAdminTierLeavesOut(t *testing.T) {
	m := NarrowestModel("p")
	m.Ingress = append(m.Ingress, Admission{Peer: Peer{Kind: PeerAddresses, CIDR: "192.0.2.0/24"}, Source: Source{Flag: FlagAllowedIngressCIDRs}})
	named := intstr.FromString("https")
	m.Egress = append(m.Egress, Admission{Peer: Peer{Kind: PeerAddresses, CIDR: "192.0.2.0/24"}, Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}, Source: Source{Allowlist: "a"}})
	anps, err := m.AdminNetworkPolicies(20)
	if err != nil {
		t.Fatal(err)
	}
	if len(anps) != 1 || len(anps[0].Spec.Ingress) != 2 || len(anps[0].Spec.Egress) != 2 {
		t.Fatalf("got %+v", anps)
	}
	if off := (Model{Namespace: "p"}); len(must(off.AdminNetworkPolicies(20))) != 0 {
		t.Error("a model that enforces nothing renders admin-tier objects")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAdminTierPorts: NetworkPolicy ports as both admin-tier APIs say them.
// A named port is the whole range of its protocol: the fields that match by
// name are not in the standard channel's CRDs (an object naming one is
// refused, its Deny with it), and the protocol is kept.
func TestAdminTierPorts(t *testing.T) {
	udp, sctp := corev1.ProtocolUDP, corev1.ProtocolSCTP
	p80, named := intstr.FromInt32(80), intstr.FromString("http")
	ports := []networkingv1.NetworkPolicyPort{
		{Port: &p80},
		{Protocol: &udp, Port: &p80, EndPort: ptr.To[int32](90)},
		{Protocol: &sctp},
		{Port: &named},
		{Protocol: &udp, Port: &p80, EndPort: ptr.To[int32](80)},
		{Protocol: &udp, Port: &named},
	}
	anp := anpPorts(ports)
	wantANP := []npav1alpha1.AdminNetworkPolicyPort{
		{PortNumber: &npav1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 80}},
		{PortRange: &npav1alpha1.PortRange{Protocol: udp, Start: 80, End: 90}},
		{PortRange: &npav1alpha1.PortRange{Protocol: sctp, Start: 1, End: 65535}},
		{PortRange: &npav1alpha1.PortRange{Protocol: corev1.ProtocolTCP, Start: 1, End: 65535}},
		{PortNumber: &npav1alpha1.Port{Protocol: udp, Port: 80}},
		{PortRange: &npav1alpha1.PortRange{Protocol: udp, Start: 1, End: 65535}},
	}
	if got, want := toJSON(t, anp), toJSON(t, wantANP); got != want {
		t.Errorf("ANP ports %s, want %s", got, want)
	}
	wantCNP := []npav1beta1.ClusterNetworkPolicyProtocol{
		{TCP: &npav1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npav1beta1.Port{Number: 80}}},
		{UDP: &npav1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 80, End: 90}}}},
		{SCTP: &npav1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 1, End: 65535}}}},
		{TCP: &npav1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 1, End: 65535}}}},
		{UDP: &npav1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &npav1beta1.Port{Number: 80}}},
		{UDP: &npav1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 1, End: 65535}}}},
	}
	if got, want := toJSON(t, cnpProtocols(ports)), toJSON(t, wantCNP); got != want {
		t.Errorf("CNP protocols %s, want %s", got, want)
	}
	if anpPorts(nil) != nil || cnpProtocols(nil) != nil {
		t.Error("every port is not rendered as no ports")
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tuple is one (action, peer, port) of an admin-tier object in a
// direction, in API-neutral form: the ClusterNetworkPolicy translation is
// checked against the AdminNetworkPolicy one on these.
type tuple struct {
	egress, deny bool
	peer, port   string
}

// anpPortKey and cnpPortKey say an ANP port and a CNP protocol the same way.
func anpPortKey(p npav1alpha1.AdminNetworkPolicyPort) string {
	switch {
	case p.NamedPort != nil:
		return "name " + *p.NamedPort
	case p.PortNumber != nil:
		return fmt.Sprintf("%s %d-%d", p.PortNumber.Protocol, p.PortNumber.Port, p.PortNumber.Port)
	default:
		return fmt.Sprintf("%s %d-%d", p.PortRange.Protocol, p.PortRange.Start, p.PortRange.End)
	}
}

func cnpPortKey(p npav1beta1.ClusterNetworkPolicyProtocol) string {
	if p.DestinationNamedPort != "" {
		return "name " + p.DestinationNamedPort
	}
	proto, port := corev1.ProtocolTCP, (*npav1beta1.Port)(nil)
	switch {
	case p.TCP != nil:
		port = p.TCP.DestinationPort
	case p.UDP != nil:
		proto, port = corev1.ProtocolUDP, p.UDP.DestinationPort
	case p.SCTP != nil:
		proto, port = corev1.ProtocolSCTP, p.SCTP.DestinationPort
	}
	switch {
	case port == nil:
		return fmt.Sprintf("%s 1-65535", proto)
	case port.Range != nil:
		return fmt.Sprintf("%s %d-%d", proto, port.Range.Start, port.Range.End)
	default:
		return fmt.Sprintf("%s %d-%d", proto, port.Number, port.Number)
	}
}

// tuples flattens rules (peers as JSON, the same for both APIs) in
// evaluation order.
func tuples[R any](t *testing.T, rules []R, read func(R) (deny bool, peers []any, ports []string), egress bool) []tuple {
	var out []tuple
	for _, r := range rules {
		deny, peers, ports := read(r)
		if len(ports) == 0 {
			ports = []string{"any"}
		}
		for _, p := range peers {
			for _, port := range ports {
				out = append(out, tuple{egress: egress, deny: deny, peer: toJSON(t, p), port: port})
			}
		}
	}
	return out
}

// passBeforeDeny checks that in evaluation order (priority ascending, the
// main object, with the Deny, last at its priority) every Pass precedes
// every Deny, and returns the Pass and Deny tuples, sorted.
func passBeforeDeny(t *testing.T, name string, ordered []tuple) (pass, deny []string) {
	t.Helper()
	for _, tp := range ordered {
		s := fmt.Sprint(tp)
		if tp.deny {
			deny = append(deny, s)
		} else {
			if len(deny) > 0 {
				t.Errorf("%s: Pass %s after a Deny", name, s)
			}
			pass = append(pass, s)
		}
	}
	slices.Sort(pass)
	slices.Sort(deny)
	return pass, deny
}

// TestClusterNetworkPolicySemantics: the ClusterNetworkPolicy rendering of
// a model admits and denies the very (peer, port) pairs of its
// AdminNetworkPolicy rendering, with every Pass before the Deny, though
// the smaller limits of v1beta1 split it differently. The evaluator does not
// implement ClusterNetworkPolicy; this and the API server's validation of
// the written objects (test/e2e) are what verify it.
func TestClusterNetworkPolicySemantics(t *testing.T) {
	m := manyRules(60)
	tcp := corev1.ProtocolTCP
	p443, named := intstr.FromInt32(443), intstr.FromString("metrics")
	m.Ingress = append(m.Ingress, Admission{Peer: Peer{Kind: PeerPods, Namespace: "mon", Selector: map[string]string{"app": "prom"}},
		Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}, Source: Source{Allowlist: "m"}})
	m.Egress = append(m.Egress,
		Admission{Peer: Peer{Kind: PeerAddresses, CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.3.4/32"}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p443}}, Source: Source{Allowlist: "e", Rule: 1}},
		Admission{Peer: Peer{Kind: PeerGroup, Label: "team", Value: "x"}, Source: Source{Allowlist: "e", Rule: 2}})
	anps := must(m.AdminNetworkPolicies(20))
	cnps := must(m.ClusterNetworkPolicies(20))
	slices.Reverse(anps) // the overflow objects (one priority higher) first
	slices.Reverse(cnps)
	for _, egress := range []bool{false, true} {
		var a, c []tuple
		for _, o := range anps {
			if egress {
				a = append(a, tuples(t, o.Spec.Egress, func(r npav1alpha1.AdminNetworkPolicyEgressRule) (bool, []any, []string) {
					return r.Action == npav1alpha1.AdminNetworkPolicyRuleActionDeny, anyOf(r.To), portKeys(r.Ports)
				}, true)...)
			} else {
				a = append(a, tuples(t, o.Spec.Ingress, func(r npav1alpha1.AdminNetworkPolicyIngressRule) (bool, []any, []string) {
					return r.Action == npav1alpha1.AdminNetworkPolicyRuleActionDeny, anyOf(r.From), portKeys(r.Ports)
				}, false)...)
			}
		}
		for _, o := range cnps {
			want := int32(19)
			if o.Name == AdminTierName("big", 0) {
				want = 20
			}
			if o.Spec.Tier != npav1beta1.AdminTier || o.Spec.Priority != want {
				t.Errorf("%s: tier %s priority %d", o.Name, o.Spec.Tier, o.Spec.Priority)
			}
			if egress {
				c = append(c, tuples(t, o.Spec.Egress, func(r npav1beta1.ClusterNetworkPolicyEgressRule) (bool, []any, []string) {
					return r.Action == npav1beta1.ClusterNetworkPolicyRuleActionDeny, anyOf(r.To), protocolKeys(r.Protocols)
				}, true)...)
			} else {
				c = append(c, tuples(t, o.Spec.Ingress, func(r npav1beta1.ClusterNetworkPolicyIngressRule) (bool, []any, []string) {
					return r.Action == npav1beta1.ClusterNetworkPolicyRuleActionDeny, anyOf(r.From), protocolKeys(r.Protocols)
				}, false)...)
			}
		}
		aPass, aDeny := passBeforeDeny(t, "AdminNetworkPolicies", a)
		cPass, cDeny := passBeforeDeny(t, "ClusterNetworkPolicies", c)
		if len(aPass) == 0 || len(aDeny) == 0 {
			t.Fatalf("egress %v: %d Pass and %d Deny tuples", egress, len(aPass), len(aDeny))
		}
		if !slices.Equal(aPass, cPass) || !slices.Equal(aDeny, cDeny) {
			t.Errorf("egress %v: the two renderings differ:\nANP pass %v\nCNP pass %v\nANP deny %v\nCNP deny %v", egress, aPass, cPass, aDeny, cDeny)
		}
	}
}

// anyOf lists peers of either API: their JSON forms are the same.
func anyOf[P any](peers []P) []any {
	out := make([]any, len(peers))
	for i, p := range peers {
		out[i] = p
	}
	return out
}

func portKeys(ports *[]npav1alpha1.AdminNetworkPolicyPort) []string {
	if ports == nil {
		return nil
	}
	var out []string
	for _, p := range *ports {
		out = append(out, anpPortKey(p))
	}
	return out
}

func protocolKeys(protocols []npav1beta1.ClusterNetworkPolicyProtocol) []string {
	var out []string
	for _, p := range protocols {
		out = append(out, cnpPortKey(p))
	}
	return out
}

// TestAdminTierIsolationOff: a namespace that is not isolated has no
// admin-tier objects, in either API.
func TestAdminTierIsolationOff(t *testing.T) {
	m, err := Compute(Input{Namespace: namespace("p", map[string]string{v1alpha1.IsolationLabel: "false"})}, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range Enforcements {
		if objs, err := m.AdminTier(e, DefaultAdminTierPriority); err != nil || len(objs) != 0 {
			t.Errorf("%s: %d objects, %v", e, len(objs), err)
		}
	}
}

// BenchmarkAdminTier renders large models: n allowlist rules into another
// namespace each and an egress block with 32 exceptions (the CRD's most), as
// AdminNetworkPolicies and as ClusterNetworkPolicies. Cost should grow
// linearly with n.
func BenchmarkAdminTier(b *testing.B) {
	for _, n := range []int{250, 1000} {
		m := manyRules(n)
		block := Peer{Kind: PeerAddresses, CIDR: "10.0.0.0/8"}
		for i := range 32 {
			block.Except = append(block.Except, fmt.Sprintf("10.%d.0.0/16", i*7))
		}
		m.Egress = append(m.Egress, Admission{Peer: block, Source: Source{Allowlist: "e"}})
		for _, e := range []Enforcement{EnforcementAdminNetworkPolicy, EnforcementClusterNetworkPolicy} {
			b.Run(fmt.Sprintf("%s/rules=%d", e, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.AdminTier(e, DefaultAdminTierPriority); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestAdminTierNamesDisjoint: no namespace's admin-tier object takes the
// name of another namespace's (namespace team's overflow objects and the
// main objects of team-1, team-2, ... were the same names with a "-N"
// suffix: the two namespaces overwrote each other's Deny).
func TestAdminTierNamesDisjoint(t *testing.T) {
	owner := map[string]string{}
	for _, ns := range []string{"team", "team-1", "team-2", "team-1-1", "t", "t-10"} {
		for part := range 12 {
			name := AdminTierName(ns, part)
			if prev, ok := owner[name]; ok && prev != ns {
				t.Errorf("%s is the name of an object of namespace %s and of namespace %s", name, prev, ns)
			}
			owner[name] = ns
		}
	}
}
