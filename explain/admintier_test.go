package explain

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"

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
	c.banps = append(c.banps, &npav1alpha1.BaselineAdminNetworkPolicy{
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
