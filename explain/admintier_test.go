package explain

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// addWideners adds, in every other isolated namespace, what a tenant writes
// to reopen it (ingress: [{}], namespaceSelector: {}, egress: [{}]), and a
// cluster admin's BaselineAdminNetworkPolicy: no ingress from team=red
// namespaces on 80/TCP, no egress to 198.51.100.0/24.
func (c *corpus) addWideners() {
	in := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	out := []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	for i, ns := range c.namespaces {
		if ns.Labels[v1alpha1.IsolationLabel] != "true" || i%2 == 1 {
			continue
		}
		meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns.Name, Name: name} }
		c.policies = append(c.policies,
			&networkingv1.NetworkPolicy{ObjectMeta: meta("ingress-all"), Spec: networkingv1.NetworkPolicySpec{PolicyTypes: in, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}},
			&networkingv1.NetworkPolicy{ObjectMeta: meta("ingress-any-namespace"), Spec: networkingv1.NetworkPolicySpec{PolicyTypes: in, Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}}},
			&networkingv1.NetworkPolicy{ObjectMeta: meta("egress-all"), Spec: networkingv1.NetworkPolicySpec{PolicyTypes: out, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}})
	}
	tcp := corev1.ProtocolTCP
	c.admin.BaselineAdminNetworkPolicies = append(c.admin.BaselineAdminNetworkPolicies, &npav1alpha1.BaselineAdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: npav1alpha1.BaselineAdminNetworkPolicySpec{
			Subject: npav1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []npav1alpha1.BaselineAdminNetworkPolicyIngressRule{{
				Name: "no-red", Action: npav1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				From:  []npav1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "red"}}}},
				Ports: &[]npav1alpha1.AdminNetworkPolicyPort{{PortNumber: &npav1alpha1.Port{Protocol: tcp, Port: 80}}},
			}},
			Egress: []npav1alpha1.BaselineAdminNetworkPolicyEgressRule{{
				Name: "no-partner", Action: npav1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				To: []npav1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Networks: []npav1alpha1.CIDR{"198.51.100.0/24"}}},
			}},
		},
	})
}

// TestAdminTierAgreesWithEvaluator checks the engine against
// kube-network-policies v0.8.0 with moat's AdminNetworkPolicies, tenant
// wideners and a baseline: the admin tier's Deny must hold against the
// wideners, and both tiers must decide some connections.
func TestAdminTierAgreesWithEvaluator(t *testing.T) {
	checked, allowed, adminDenied, baseline := 0, 0, 0, 0
	for seed := range uint64(6) {
		c := newEnforcedCorpus(seed, policy.EnforcementAdminNetworkPolicy, 6, 3, 24)
		c.addWideners()
		n, a, answers := agreeWithEvaluator(t, c, seed)
		checked, allowed = checked+n, allowed+a
		for _, a := range answers {
			for _, s := range []SideAnswer{a.Egress, a.Ingress} {
				if s.Admin.Decides() && !s.Allowed && s.Admin.Managed {
					adminDenied++
				}
				if s.Baseline.Decides() {
					baseline++
				}
			}
		}
	}
	t.Logf("%d verdicts agree (%d allowed); moat's admin tier denies %d sides, the baseline decides %d", checked, allowed, adminDenied, baseline)
	if allowed == 0 || allowed == checked || adminDenied == 0 || baseline == 0 {
		t.Fatalf("the corpus is degenerate: %d of %d allowed, %d sides denied by moat's admin tier, %d decided by the baseline", allowed, checked, adminDenied, baseline)
	}
}

// TestClusterNetworkPolicyAsAdminNetworkPolicy: kube-network-policies
// v0.8.0 does not evaluate ClusterNetworkPolicies, so the engine's reading
// of moat's ClusterNetworkPolicies is checked against its reading, checked
// above, of the equivalent AdminNetworkPolicies: every pod to every pod and
// external address, on every port, with the same wideners and baseline.
func TestClusterNetworkPolicyAsAdminNetworkPolicy(t *testing.T) {
	compared, cnpDecided := 0, 0
	for seed := range uint64(4) {
		var idx [2]*Index
		var c *corpus
		for i, e := range []policy.Enforcement{policy.EnforcementAdminNetworkPolicy, policy.EnforcementClusterNetworkPolicy} {
			c = newEnforcedCorpus(seed, e, 6, 3, 24)
			c.addWideners()
			idx[i] = New(c.objects())
		}
		if len(c.admin.ClusterNetworkPolicies) == 0 || len(c.admin.AdminNetworkPolicies) != 0 {
			t.Fatalf("seed %d: the corpus holds %d ClusterNetworkPolicies and %d AdminNetworkPolicies", seed, len(c.admin.ClusterNetworkPolicies), len(c.admin.AdminNetworkPolicies))
		}
		for _, src := range c.pods {
			for _, dst := range c.pods {
				for _, port := range corpusPorts {
					anp := idx[0].Verdict(PodEndpoint(src), PodEndpoint(dst), port)
					cnp := idx[1].Verdict(PodEndpoint(src), PodEndpoint(dst), port)
					compared++
					if cnp.Ingress.Admin.Decides() && cnp.Ingress.Admin.Kind == "ClusterNetworkPolicy" {
						cnpDecided++
					}
					if anp.Allowed != cnp.Allowed || anp.Egress.Allowed != cnp.Egress.Allowed {
						t.Errorf("seed %d: %s/%s → %s/%s %s: AdminNetworkPolicy %v, ClusterNetworkPolicy %v", seed, src.Namespace, src.Name, dst.Namespace, dst.Name, port, anp.Allowed, cnp.Allowed)
					}
				}
			}
		}
	}
	if cnpDecided == 0 {
		t.Fatalf("no ClusterNetworkPolicy decided any of %d connections", compared)
	}
}

// tierWorld: namespace a (pod a1, 10.0.0.1, a NetworkPolicy admitting
// nothing into it), b (pod b1, 10.0.0.2, selected by no NetworkPolicy),
// node n1 (10.1.0.1, label role=infra).
func tierWorld(cnps ...*npav1beta1.ClusterNetworkPolicy) *Index {
	pod := func(ns, name, ip string) *corev1.Pod {
		return corpusPod(ns, name, netip.MustParseAddr(ip), map[string]string{"app": name})
	}
	return New(Objects{
		Namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}},
		Pods:       []*corev1.Pod{pod("a", "a1", "10.0.0.1"), pod("b", "b1", "10.0.0.2")},
		Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"role": "infra"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.0.1"}}}}},
		NetworkPolicies: []*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "deny-in"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}},
		ClusterNetworkPolicies: cnps,
	})
}

func cnp(name string, tier npav1beta1.Tier, priority int32, subjectNS string, ingress []npav1beta1.ClusterNetworkPolicyIngressRule, egress []npav1beta1.ClusterNetworkPolicyEgressRule) *npav1beta1.ClusterNetworkPolicy {
	return &npav1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: npav1beta1.ClusterNetworkPolicySpec{
		Tier: tier, Priority: priority, Ingress: ingress, Egress: egress,
		Subject: npav1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: subjectNS}}}}}
}

func fromNS(name string, action npav1beta1.ClusterNetworkPolicyRuleAction, ns string, protocols ...npav1beta1.ClusterNetworkPolicyProtocol) npav1beta1.ClusterNetworkPolicyIngressRule {
	return npav1beta1.ClusterNetworkPolicyIngressRule{Name: name, Action: action, Protocols: protocols,
		From: []npav1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: ns}}}}}
}

// TestTierSemantics pins the order of evaluation on ClusterNetworkPolicies:
// priority, rule order, Accept skipping NetworkPolicies, Pass handing on,
// ports, the baseline only for pods no NetworkPolicy selects, egress to
// networks and nodes.
func TestTierSemantics(t *testing.T) {
	accept, deny, pass := npav1beta1.ClusterNetworkPolicyRuleActionAccept, npav1beta1.ClusterNetworkPolicyRuleActionDeny, npav1beta1.ClusterNetworkPolicyRuleActionPass
	tcpRange := npav1beta1.ClusterNetworkPolicyProtocol{TCP: &npav1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 8000, End: 8999}}}}
	admin, baseline := npav1beta1.AdminTier, npav1beta1.BaselineTier
	port := func(n int32) Port { return Port{Protocol: corev1.ProtocolTCP, Number: n} }
	for _, c := range []struct {
		name     string
		cnps     []*npav1beta1.ClusterNetworkPolicy
		src, dst string
		port     Port
		allowed  bool
		decider  string // the deciding rule's name; "" when NetworkPolicies decide
	}{
		{"no admin tier: the NetworkPolicy denies", nil, "b1", "a1", port(80), false, ""},
		{"Accept skips the NetworkPolicy", []*npav1beta1.ClusterNetworkPolicy{cnp("x", admin, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("ok", accept, "b")}, nil)},
			"b1", "a1", port(80), true, "ok"},
		{"a lower priority value wins", []*npav1beta1.ClusterNetworkPolicy{
			cnp("x", admin, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("ok", accept, "b")}, nil),
			cnp("y", admin, 5, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("no", deny, "b")}, nil)},
			"b1", "a1", port(80), false, "no"},
		{"the first matching rule wins; Pass hands on to the NetworkPolicy", []*npav1beta1.ClusterNetworkPolicy{
			cnp("x", admin, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("on", pass, "b"), fromNS("ok", accept, "b")}, nil)},
			"b1", "a1", port(80), false, ""},
		{"a rule's ports: inside the range", []*npav1beta1.ClusterNetworkPolicy{
			cnp("x", admin, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("ok", accept, "b", tcpRange)}, nil)},
			"b1", "a1", port(8080), true, "ok"},
		{"a rule's ports: outside the range", []*npav1beta1.ClusterNetworkPolicy{
			cnp("x", admin, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("ok", accept, "b", tcpRange)}, nil)},
			"b1", "a1", port(9090), false, ""},
		{"the baseline decides for a pod no NetworkPolicy selects", []*npav1beta1.ClusterNetworkPolicy{
			cnp("base", baseline, 10, "b", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("no", deny, "a")}, nil)},
			"a1", "b1", port(80), false, "no"},
		{"the baseline does not override a NetworkPolicy", []*npav1beta1.ClusterNetworkPolicy{
			cnp("base", baseline, 10, "a", []npav1beta1.ClusterNetworkPolicyIngressRule{fromNS("ok", accept, "b")}, nil)},
			"b1", "a1", port(80), false, ""},
		{"egress Deny to networks", []*npav1beta1.ClusterNetworkPolicy{cnp("x", admin, 10, "b", nil, []npav1beta1.ClusterNetworkPolicyEgressRule{{Name: "no-net", Action: deny,
			To: []npav1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []npav1beta1.CIDR{"192.0.2.0/24"}}}}})},
			"b1", "192.0.2.10", port(443), false, "no-net"},
		{"egress Deny to nodes by label", []*npav1beta1.ClusterNetworkPolicy{cnp("x", admin, 10, "b", nil, []npav1beta1.ClusterNetworkPolicyEgressRule{{Name: "no-infra", Action: deny,
			To: []npav1beta1.ClusterNetworkPolicyEgressPeer{{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "infra"}}}}}})},
			"b1", "10.1.0.1", port(10250), false, "no-infra"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := tierWorld(c.cnps...)
			endpoint := func(s string) Endpoint {
				if a, err := netip.ParseAddr(s); err == nil {
					return x.AddressEndpoint(netip.PrefixFrom(a, 32))
				}
				return PodEndpoint(x.podByName[types.NamespacedName{Namespace: s[:1], Name: s}])
			}
			v := x.Verdict(endpoint(c.src), endpoint(c.dst), c.port)
			decider := ""
			for _, s := range []Side{v.Egress, v.Ingress} {
				for _, r := range []*TierRule{s.Admin, s.Baseline} {
					if r.Decides() {
						decider = r.RuleName
					}
				}
			}
			if v.Allowed != c.allowed || decider != c.decider {
				t.Errorf("allowed %v decided by %q; want %v by %q (%+v)", v.Allowed, decider, c.allowed, c.decider, v)
			}
		})
	}
}

// TestAdminTierBlockAdmission: an allowlist that admits 10.244.1.0/24 into
// namespace a admits the pod of namespace b at that address under
// NetworkPolicy enforcement; at the admin tier, whose ingress peers are
// namespaces, moat's Deny refuses it, and the answer says to admit the
// namespace. kube-network-policies agrees in both modes.
func TestAdminTierBlockAdmission(t *testing.T) {
	a, b := namespace("a", true), namespace("b", false)
	al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "block"}, Spec: v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "10.244.1.0/24"}}}, Ports: tcpPort(8080)}}}}
	m, err := policy.Compute(policy.Input{Namespace: a, Allowlists: []*v1alpha1.NetworkAllowlist{al}}, nil, policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []policy.Enforcement{policy.EnforcementNetworkPolicy, policy.EnforcementAdminNetworkPolicy} {
		c := &corpus{namespaces: []*corev1.Namespace{a, b}, models: map[string]policy.Model{"a": m},
			pods: []*corev1.Pod{corpusPod("a", "web", netip.MustParseAddr("10.244.0.1"), nil), corpusPod("b", "client", netip.MustParseAddr("10.244.1.5"), nil)}}
		for _, np := range m.Render().Policies {
			c.policies = append(c.policies, &np)
		}
		tier, err := m.AdminTier(e, policy.DefaultAdminTierPriority)
		if err != nil {
			t.Fatal(err)
		}
		c.admin.AddAdminTier(tier)
		x := New(c.objects())
		ex := &Explainer{Index: x, Models: c.models}
		answer := ex.answer(PodEndpoint(c.pods[1]), PodEndpoint(c.pods[0]), Port{Protocol: corev1.ProtocolTCP, Number: 8080}, Target{})
		_, _, _ = agreeWithEvaluator(t, c, 0)
		want := e == policy.EnforcementNetworkPolicy
		if answer.Allowed != want {
			t.Errorf("%s: allowed %v, want %v: %+v", e, answer.Allowed, want, answer.Ingress)
		}
		if !want && (!strings.Contains(answer.Ingress.Missing, "admit the namespace") || answer.Ingress.Fix == nil || answer.Ingress.Fix.Allowlist.Spec.Ingress[0].From[0].Namespace != "b") {
			t.Errorf("%s: want the hint and a fix admitting namespace b: %+v", e, answer.Ingress)
		}
	}
}
