package policy

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// indexSeeds are allowlist specs and NetworkPolicy peers that reach every
// index of ModelIndex: namespaces, pods of a Service, groups, addresses
// (nested prefixes, excepts, IPv6, a cidr that does not parse).
var indexSeeds = []struct{ spec, peer string }{
	{`{"ingress":[{"from":[{"namespace":"demo-project-2"}]}]}`, `{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"demo-project-2"}}}`},
	{`{"ingress":[{"from":[{"service":{"namespace":"demo-project-2","name":"nginx"}}],"ports":[{"port":80}]}]}`,
		`{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"demo-project-2"}},"podSelector":{"matchLabels":{"app":"nginx","tier":"web"}}}`},
	{`{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}},{"ipBlock":{"cidr":"10.0.0.0/16"}}]}]}`, `{"ipBlock":{"cidr":"10.0.1.0/24"}}`},
	{`{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}]}]}`, `{"ipBlock":{"cidr":"10.1.0.0/24"}}`},
	{`{"egress":[{"to":[{"ipBlock":{"cidr":"2001:db8::/32"}}]}]}`, `{"ipBlock":{"cidr":"2001:db8:1::/48"}}`},
	{`{"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}]}`, `{"ipBlock":{"cidr":"010.0.0.0/8"}}`},
	{`{}`, `{"namespaceSelector":{"matchLabels":{"team":"blue","kubernetes.io/metadata.name":"demo-project-1"}}}`},
	{`{}`, `{"podSelector":{}}`},
}

// FuzzModelIndex: a ModelIndex answers every peer as the model's own scan
// (Model.Selections) does, in both directions.
func FuzzModelIndex(f *testing.F) {
	for _, s := range indexSeeds {
		f.Add([]byte(s.spec), []byte(s.peer))
	}
	services := fuzzServices()
	ns := isolatedNamespace("demo-project-1")
	ns.Labels["team"] = "blue"
	cfg := Config{AllowedIngressNamespaces: []string{"monitoring"}, AllowedIngressCIDRs: []string{"10.0.0.0/24"},
		ProjectLabel: "team", DNSService: ptr.To(DefaultDNSService)}
	f.Fuzz(func(t *testing.T, specJSON, peerJSON []byte) {
		var spec v1alpha1.NetworkAllowlistSpec
		var peer networkingv1.NetworkPolicyPeer
		if json.Unmarshal(specJSON, &spec) != nil || json.Unmarshal(peerJSON, &peer) != nil {
			return
		}
		m, err := Compute(Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{allowlist("fuzz", spec)}}, services, cfg)
		if err != nil {
			t.Fatal(err)
		}
		x := m.Index()
		for _, egress := range []bool{false, true} {
			if diff := cmp.Diff(m.Selections(egress, peer), x.Selections(egress, peer)); diff != "" {
				t.Fatalf("egress %t, spec %s, peer %s (-scan +index):\n%s", egress, specJSON, peerJSON, diff)
			}
		}
	})
}

// TestModelIndexFindsHolders: the seeds are answered with admissions (the
// comparison above is not between two empty answers).
func TestModelIndexFindsHolders(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	m, err := Compute(Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{allowlist("a", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2"), cidrRef("10.0.0.0/8", "10.1.0.0/16")), port(corev1.ProtocolTCP, 80))},
	})}}, fuzzServices(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	x := m.Index()
	for peer, want := range map[string]int{
		indexSeeds[0].peer: 1, // demo-project-2
		indexSeeds[2].peer: 1, // 10.0.1.0/24 in 10.0.0.0/8
		indexSeeds[3].peer: 0, // 10.1.0.0/24 is excepted
		indexSeeds[7].peer: 1, // the namespace itself
	} {
		var p networkingv1.NetworkPolicyPeer
		if err := json.Unmarshal([]byte(peer), &p); err != nil {
			t.Fatal(err)
		}
		sel := x.Selections(false, p)
		if len(sel) != 1 || len(sel[0].By) != want {
			t.Errorf("peer %s: selections %+v, want one held by %d admissions", peer, sel, want)
		}
	}
}
