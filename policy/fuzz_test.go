package policy

import (
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// fuzzServices is the cluster every fuzzed allowlist is rendered against:
// Services with numeric, named and unset target ports, one without selector,
// one ExternalName and one without ports.
func fuzzServices() serviceMap {
	return servicesOf(
		kubeDNS(),
		nginx(),
		service("demo-project-1", "api", map[string]string{"app": "api"},
			svcPort("grpc", corev1.ProtocolTCP, 9090, intstr.FromString("grpc")),
			svcPort("", "", 8000, intstr.IntOrString{}),
			svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromInt32(5353))),
		service("demo-project-2", "headless", nil, svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(80))),
		service("demo-project-2", "portless", map[string]string{"app": "portless"}),
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-2", Name: "external"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		},
	)
}

// FuzzRender renders arbitrary allowlist specs (JSON) and checks that Render
// never panics, never fails with working lookups, never emits a rule with an
// empty peer list or an empty peer (both mean "everyone"), keeps egress closed
// whenever an egress rule is declared, and is deterministic.
func FuzzRender(f *testing.F) {
	seeds := []v1alpha1.NetworkAllowlistSpec{
		{},
		{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}},
		{Ingress: []v1alpha1.IngressRule{ingress(peers(cidrRef("192.168.1.1/32")), port(corev1.ProtocolTCP, 80))}},
		{Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")), port(corev1.ProtocolTCP, 80))}},
		{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx")), port(corev1.ProtocolTCP, 80))}},
		{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx"), svcRef("", "api"), cidrRef("10.0.0.0/8", "10.1.0.0/16")),
			port(corev1.ProtocolTCP, 80), namedPort(corev1.ProtocolTCP, "grpc"), v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolUDP)},
			v1alpha1.Port{Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](9090)})}},
		{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "missing"), svcRef("demo-project-2", "headless"),
			svcRef("demo-project-2", "external"), svcRef("demo-project-2", "portless")))}},
		{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{}, {Namespace: "a", Service: &v1alpha1.ServiceReference{Name: "b"}}}}, {}}},
	}
	for _, s := range seeds {
		data, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"egress":[{"to":[{"service":{"name":""}}],"ports":[{"port":"","endPort":-1}]}]}`))
	f.Add([]byte(`{"ingress":[{"from":[{"ipBlock":{"cidr":""}}],"ports":[{"protocol":"","port":0}]}]}`))

	services := fuzzServices()
	ns := isolatedNamespace("demo-project-1")
	cfg := Config{AllowedIngressNamespaces: []string{"monitoring"}, AllowedIngressCIDRs: []string{"10.0.0.0/24"}, DNSService: ptr.To(DefaultDNSService)}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec v1alpha1.NetworkAllowlistSpec
		if err := json.Unmarshal(data, &spec); err != nil {
			return
		}
		als := []*v1alpha1.NetworkAllowlist{
			allowlist("fuzz", spec),
			allowlist("other", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}}),
		}
		result, err := Render(Input{Namespace: ns, Allowlists: als}, services, cfg)
		if err != nil {
			t.Fatalf("Render() error = %v", err)
		}
		if err := checkResult(result, len(spec.Egress) > 0); err != nil {
			t.Fatalf("%v\nspec: %s", err, data)
		}
		again, err := Render(Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{als[1], als[0]}}, services, cfg)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := json.Marshal(result)
		second, _ := json.Marshal(again)
		if string(first) != string(second) {
			t.Fatalf("Render() is not deterministic:\n%s\n%s", first, second)
		}
	})
}

// checkResult checks the invariants that every isolated Result must hold.
func checkResult(r Result, egressDeclared bool) error {
	names := map[string]bool{}
	for _, np := range r.Policies {
		if errs := validation.IsDNS1123Subdomain(np.Name); len(errs) > 0 {
			return fmt.Errorf("policy name %q: %v", np.Name, errs)
		}
		if !IsManaged(&np) {
			return fmt.Errorf("policy %s lacks the managed-by label", np.Name)
		}
		if !IsReservedPolicyName(np.Name) {
			return fmt.Errorf("policy name %q is not reserved for moat (IsReservedPolicyName): a tenant could take it first", np.Name)
		}
		if len(np.Spec.PolicyTypes) == 0 {
			return fmt.Errorf("policy %s has no policyTypes", np.Name)
		}
		names[np.Name] = true
		for i, rule := range np.Spec.Ingress {
			if err := checkPeers(rule.From); err != nil {
				return fmt.Errorf("policy %s ingress[%d]: %w", np.Name, i, err)
			}
		}
		for i, rule := range np.Spec.Egress {
			if err := checkPeers(rule.To); err != nil {
				return fmt.Errorf("policy %s egress[%d]: %w", np.Name, i, err)
			}
		}
	}
	if !names[DefaultIngressPolicyName] {
		return fmt.Errorf("no %s", DefaultIngressPolicyName)
	}
	if names[DefaultEgressPolicyName] != egressDeclared {
		return fmt.Errorf("%s present = %v, want %v", DefaultEgressPolicyName, names[DefaultEgressPolicyName], egressDeclared)
	}
	for name, status := range r.Allowlists {
		for _, p := range status.Policies {
			if !names[p] {
				return fmt.Errorf("allowlist %s reports policy %s that is not rendered", name, p)
			}
		}
		for _, p := range status.Problems {
			switch p.Reason {
			case v1alpha1.ReasonServiceNotFound, v1alpha1.ReasonServiceSelectorEmpty, v1alpha1.ReasonServicePortNotFound:
			default:
				return fmt.Errorf("allowlist %s: unexpected problem %+v", name, p)
			}
			if p.Field == "" || p.Message == "" {
				return fmt.Errorf("allowlist %s: problem without field or message: %+v", name, p)
			}
		}
	}
	return nil
}

func checkPeers(peers []networkingv1.NetworkPolicyPeer) error {
	if len(peers) == 0 {
		return fmt.Errorf("empty peer list")
	}
	for i, p := range peers {
		if p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil {
			return fmt.Errorf("peer %d selects everyone", i)
		}
		if p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchLabels) == 0 {
			return fmt.Errorf("peer %d selects every namespace", i)
		}
	}
	return nil
}

func BenchmarkRender(b *testing.B) {
	services := fuzzServices()
	for i := range 10 {
		services[fmt.Sprintf("demo-project-2/svc-%d", i)] = service("demo-project-2", fmt.Sprintf("svc-%d", i),
			map[string]string{"app": fmt.Sprintf("svc-%d", i)},
			svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(8080)),
			svcPort("https", corev1.ProtocolTCP, 443, intstr.FromString("https")))
	}
	var rules []v1alpha1.EgressRule
	for i := range 10 {
		rules = append(rules, egress(peers(
			svcRef("demo-project-2", fmt.Sprintf("svc-%d", i)),
			svcRef("demo-project-2", "nginx"),
			cidrRef(fmt.Sprintf("10.%d.0.0/16", i)),
		), port(corev1.ProtocolTCP, 80), port(corev1.ProtocolTCP, 443)))
	}
	in := Input{
		Namespace:  isolatedNamespace("demo-project-1"),
		Allowlists: []*v1alpha1.NetworkAllowlist{allowlist("bench", v1alpha1.NetworkAllowlistSpec{Egress: rules})},
	}
	cfg := Config{AllowedIngressNamespaces: []string{"monitoring"}, DNSService: ptr.To(DefaultDNSService)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in, services, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
