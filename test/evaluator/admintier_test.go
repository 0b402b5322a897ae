package evaluator

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// The corpus: two isolated projects (web, with allowlists, and partner),
// an open namespace (shop), the monitoring namespace that
// --allowed-ingress-namespaces admits, the DNS pods, a quarantined
// namespace a cluster admin's BaselineAdminNetworkPolicy shuts out, and
// addresses outside the pod network.
const (
	webPod, webPod2 = "10.0.1.1", "10.0.1.2"
	partnerPod      = "10.0.2.1"
	shopDB, shopWeb = "10.0.3.1", "10.0.3.2"
	monitoringPod   = "10.0.4.1"
	dnsPod          = "10.0.5.1"
	quarantinePod   = "10.0.6.1"
	siblingPod      = "10.0.7.1"       // isolated, in web's project group
	partnerAPI      = "198.51.100.10"  // allowlisted egress (198.51.100.0/24 on 443)
	exceptedAPI     = "198.51.100.200" // in the allowlist's except
	internet        = "8.8.8.8"
	externalClient  = "192.0.2.10"
	nodeLocalDNS    = "169.254.25.10" // --dns-ips
	apiServer       = "192.0.2.1"     // the API server's endpoint, port 6443
)

type serviceMap map[types.NamespacedName]*corev1.Service

func (m serviceMap) Service(namespace, name string) (*corev1.Service, error) {
	return m[types.NamespacedName{Namespace: namespace, Name: name}], nil
}

func corpusConfig() policy.Config {
	dns := policy.DefaultDNSService
	return policy.Config{DNSService: &dns, AllowedIngressNamespaces: []string{"monitoring"}, DNSIPs: []netip.Addr{netip.MustParseAddr(nodeLocalDNS)},
		ProjectLabel: groupLabel}
}

// groupLabel groups web and sibling into one project (--project-label).
const groupLabel = "example.com/project"

func isolated(name string) corev1.Namespace {
	n := ns(name, map[string]string{v1alpha1.IsolationLabel: v1alpha1.IsolationOn})
	if name == "web" || name == "sibling" {
		n.Labels[groupLabel] = "blue"
	}
	return n
}

func corpusServices() serviceMap {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	return serviceMap{
		{Namespace: "shop", Name: "db"}: {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Port: 5432, Protocol: tcp, TargetPort: intstr.FromInt32(5432)}}}},
		{Namespace: "kube-system", Name: "kube-dns"}: {ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ServicePort{{Port: 53, Protocol: udp, TargetPort: intstr.FromInt32(53)}}}},
	}
}

// webAllowlist opens web to partner on 8080 and restricts its egress to
// shop's db Service and 198.51.100.0/24 except its upper half, on 443.
func webAllowlist() *v1alpha1.NetworkAllowlist {
	tcp := corev1.ProtocolTCP
	return &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "web"},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "partner"}},
				Ports: []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8080))}}}},
			Egress: []v1alpha1.EgressRule{
				{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "shop", Name: "db"}}}},
				{To: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "198.51.100.0/24", Except: []string{"198.51.100.128/25"}}}},
					Ports: []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(443))}}},
				{To: []v1alpha1.Peer{{KubernetesAPI: &v1alpha1.KubernetesAPIPeer{}}}},
			},
		},
	}
}

// tenantWideners are what a tenant of web writes to reopen it, with the
// tenant check (--tenant-network-policies) off.
func tenantWideners() []networkingv1.NetworkPolicy {
	all := metav1.ObjectMeta{Namespace: "web"}
	np := func(name string, spec networkingv1.NetworkPolicySpec) networkingv1.NetworkPolicy {
		m := all
		m.Name = name
		return networkingv1.NetworkPolicy{ObjectMeta: m, Spec: spec}
	}
	in := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	out := []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	everywhere := []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}
	return []networkingv1.NetworkPolicy{
		np("ingress-all", networkingv1.NetworkPolicySpec{PolicyTypes: in, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}),
		np("ingress-any-namespace", networkingv1.NetworkPolicySpec{PolicyTypes: in, Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}}),
		np("ingress-everywhere", networkingv1.NetworkPolicySpec{PolicyTypes: in, Ingress: []networkingv1.NetworkPolicyIngressRule{{From: everywhere}}}),
		np("egress-all", networkingv1.NetworkPolicySpec{PolicyTypes: out, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}),
		np("egress-everywhere", networkingv1.NetworkPolicySpec{PolicyTypes: out, Egress: []networkingv1.NetworkPolicyEgressRule{{To: everywhere}}}),
	}
}

// quarantine is a cluster admin's own baseline: the quarantine namespace
// reaches nothing that no policy admits. It shows moat's objects next to
// others' admin-tier objects.
func quarantine() npav1alpha1.BaselineAdminNetworkPolicy {
	return npav1alpha1.BaselineAdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: npav1alpha1.BaselineAdminNetworkPolicySpec{
			Subject: npav1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []npav1alpha1.BaselineAdminNetworkPolicyIngressRule{{
				Name: "quarantine", Action: npav1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				From: []npav1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "quarantine"}}}},
			}},
		},
	}
}

// corpus renders moat's policies for web and partner (enforcement e) and
// returns the cluster state, with tenants' policies added.
func corpus(t *testing.T, e policy.Enforcement, tenants []networkingv1.NetworkPolicy) Objects {
	t.Helper()
	objs := Objects{
		Namespaces: []corev1.Namespace{isolated("web"), isolated("partner"), isolated("sibling"), ns("shop", nil), ns("monitoring", nil), ns("kube-system", nil), ns("quarantine", nil)},
		Pods: []corev1.Pod{
			pod("web", "web-1", webPod, nil), pod("web", "web-2", webPod2, nil), pod("partner", "p", partnerPod, nil),
			pod("shop", "db", shopDB, map[string]string{"app": "db"}), pod("shop", "web", shopWeb, nil),
			pod("monitoring", "prom", monitoringPod, nil), pod("kube-system", "dns", dnsPod, map[string]string{"k8s-app": "kube-dns"}),
			pod("quarantine", "q", quarantinePod, nil), pod("sibling", "s", siblingPod, nil),
		},
		NetworkPolicies:              tenants,
		BaselineAdminNetworkPolicies: []npav1alpha1.BaselineAdminNetworkPolicy{quarantine()},
	}
	inputs := map[string][]*v1alpha1.NetworkAllowlist{"web": {webAllowlist()}}
	for _, name := range []string{"web", "partner", "sibling"} {
		n := isolated(name)
		m, err := policy.Compute(policy.Input{Namespace: &n, Allowlists: inputs[name], APIServer: apiServerEndpoints()}, corpusServices(), corpusConfig())
		if err != nil {
			t.Fatal(err)
		}
		objs.NetworkPolicies = append(objs.NetworkPolicies, m.Render().Policies...)
		if e == policy.EnforcementAdminNetworkPolicy {
			anps, err := m.AdminNetworkPolicies(policy.DefaultAdminTierPriority)
			if err != nil {
				t.Fatal(err)
			}
			objs.AdminNetworkPolicies = append(objs.AdminNetworkPolicies, anps...)
		}
	}
	return objs
}

// apiServerEndpoints are the API server's, as its EndpointSlice gives them.
func apiServerEndpoints() []policy.Endpoints {
	tcp, port := corev1.ProtocolTCP, intstr.FromInt32(6443)
	return []policy.Endpoints{{Addresses: []netip.Addr{netip.MustParseAddr(apiServer)},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}}
}

type flow struct {
	src, dst string
	port     int
	proto    corev1.Protocol
}

func (f flow) String() string { return fmt.Sprintf("%s -> %s:%d/%s", f.src, f.dst, f.port, f.proto) }

func verdict(t *testing.T, e *Evaluator, f flow) bool {
	t.Helper()
	ok, err := e.Allowed(f.src, f.dst, f.port, f.proto)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestAdminTierHoldsAgainstTenants: with the tenant check off, tenant
// NetworkPolicies that admit everything reopen an isolated project under
// NetworkPolicy enforcement; with AdminNetworkPolicies they widen nothing
// the admin tier can express, and what moat admits still flows.
func TestAdminTierHoldsAgainstTenants(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	cases := []struct {
		name               string
		flow               flow
		networkPolicy      bool // verdict under NetworkPolicy enforcement
		adminNetworkPolicy bool
	}{
		{"other namespace in", flow{shopWeb, webPod, 80, tcp}, true, false},
		{"quarantine in (baseline denies; tenant policy widens it at the NetworkPolicy tier)", flow{quarantinePod, webPod, 80, tcp}, true, false},
		{"allowlisted project on its port", flow{partnerPod, webPod, 8080, tcp}, true, true},
		{"allowlisted project on another port", flow{partnerPod, webPod, 9090, tcp}, true, false},
		{"allowed ingress namespace", flow{monitoringPod, webPod, 9100, tcp}, true, true},
		{"same namespace", flow{webPod2, webPod, 80, tcp}, true, true},
		{"egress to the allowlisted Service", flow{webPod, shopDB, 5432, tcp}, true, true},
		{"egress to the Service's pods on another port", flow{webPod, shopDB, 80, tcp}, true, false},
		{"egress to other pods of that namespace", flow{webPod, shopWeb, 5432, tcp}, true, false},
		{"egress to DNS", flow{webPod, dnsPod, 53, udp}, true, true},
		{"egress to DNS pods on another port", flow{webPod, dnsPod, 80, tcp}, true, false},
		{"egress to the allowlisted block", flow{webPod, partnerAPI, 443, tcp}, true, true},
		{"egress to the block's except", flow{webPod, exceptedAPI, 443, tcp}, true, false},
		{"egress to the internet", flow{webPod, internet, 443, tcp}, true, false},
		{"egress to an isolated project", flow{webPod, partnerPod, 80, tcp}, false, false},
		{"ingress from the project group", flow{siblingPod, webPod, 9090, tcp}, true, true},
		{"egress to the project group (not allowlisted)", flow{webPod, siblingPod, 80, tcp}, true, false},
		{"egress to the node-local DNS cache", flow{webPod, nodeLocalDNS, 53, udp}, true, true},
		{"egress to the node-local DNS cache on another port", flow{webPod, nodeLocalDNS, 80, tcp}, true, false},
		{"egress to the API server (kubernetesAPI peer)", flow{webPod, apiServer, 6443, tcp}, true, true},
		{"egress to the API server on another port", flow{webPod, apiServer, 443, tcp}, true, false},
		// The admin tier has no ingress peer for addresses outside the pod
		// network (v1alpha1 and v1beta1 alike): a tenant's ipBlock
		// 0.0.0.0/0 still admits external clients at the NetworkPolicy
		// tier. --tenant-network-policies=restrict is what refuses it.
		{"external client in (NetworkPolicy tier only)", flow{externalClient, webPod, 80, tcp}, true, true},
	}
	judges := map[policy.Enforcement]*Evaluator{}
	for _, e := range []policy.Enforcement{policy.EnforcementNetworkPolicy, policy.EnforcementAdminNetworkPolicy} {
		ev, err := New(corpus(t, e, tenantWideners()))
		if err != nil {
			t.Fatal(err)
		}
		judges[e] = ev
	}
	for _, c := range cases {
		if got := verdict(t, judges[policy.EnforcementNetworkPolicy], c.flow); got != c.networkPolicy {
			t.Errorf("%s (%s), networkpolicy mode: allowed = %v, want %v", c.name, c.flow, got, c.networkPolicy)
		}
		if got := verdict(t, judges[policy.EnforcementAdminNetworkPolicy], c.flow); got != c.adminNetworkPolicy {
			t.Errorf("%s (%s), adminnetworkpolicy mode: allowed = %v, want %v", c.name, c.flow, got, c.adminNetworkPolicy)
		}
	}
}

// TestAdminTierAgreesWithModel: without tenant policies, the admin tier
// changes no verdict among pods and the addresses of the corpus: both
// enforcements are the same model. Every flow between the corpus's
// endpoints on a set of ports is compared.
func TestAdminTierAgreesWithModel(t *testing.T) {
	np, err := New(corpus(t, policy.EnforcementNetworkPolicy, nil))
	if err != nil {
		t.Fatal(err)
	}
	anp, err := New(corpus(t, policy.EnforcementAdminNetworkPolicy, nil))
	if err != nil {
		t.Fatal(err)
	}
	pods := []string{webPod, webPod2, partnerPod, shopDB, shopWeb, monitoringPod, dnsPod, quarantinePod, siblingPod}
	endpoints := append(append([]string{}, pods...), partnerAPI, exceptedAPI, internet, nodeLocalDNS, apiServer)
	ports := []struct {
		port  int
		proto corev1.Protocol
	}{{53, corev1.ProtocolUDP}, {80, corev1.ProtocolTCP}, {443, corev1.ProtocolTCP}, {5432, corev1.ProtocolTCP}, {6443, corev1.ProtocolTCP}, {8080, corev1.ProtocolTCP}}
	allowed, compared := 0, 0
	for _, src := range pods {
		for _, dst := range endpoints {
			for _, p := range ports {
				f := flow{src, dst, p.port, p.proto}
				want, got := verdict(t, np, f), verdict(t, anp, f)
				if got != want {
					t.Errorf("%s: adminnetworkpolicy mode allowed = %v, networkpolicy mode %v", f, got, want)
				}
				compared++
				if got {
					allowed++
				}
			}
		}
	}
	// Both verdicts occur: the comparison is not between two "allow all"
	// or two "deny all" clusters.
	if allowed == 0 || allowed == compared {
		t.Errorf("%d of %d flows allowed: the corpus does not discriminate", allowed, compared)
	}
}
