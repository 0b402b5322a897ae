package explain

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/evaluator"
)

// corpus is a random cluster: namespaces (some isolated by moat, with
// allowlists), pods with named container ports, moat's rendered policies and
// random tenant policies (pod and namespace selectors, expressions, ipBlocks
// with excepts, named ports, ranges, protocols).
type corpus struct {
	rng        *rand.Rand
	namespaces []*corev1.Namespace
	pods       []*corev1.Pod
	policies   []*networkingv1.NetworkPolicy
	externals  []netip.Addr
	models     map[string]policy.Model
	// enforcement renders moat's admin-tier objects too.
	enforcement policy.Enforcement
	admin       Objects // the admin tier only
}

var (
	apps  = []string{"web", "db", "api"}
	teams = []string{"red", "blue"}
)

func newCorpus(seed uint64, namespaces, podsPerNamespace, tenantPolicies int) *corpus {
	return newEnforcedCorpus(seed, policy.EnforcementNetworkPolicy, namespaces, podsPerNamespace, tenantPolicies)
}

// newEnforcedCorpus is newCorpus with moat's policies rendered for
// enforcement e.
func newEnforcedCorpus(seed uint64, e policy.Enforcement, namespaces, podsPerNamespace, tenantPolicies int) *corpus {
	c := &corpus{rng: rand.New(rand.NewPCG(seed, 1)), models: map[string]policy.Model{}, enforcement: e}
	c.externals = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("192.0.2.200")}
	for i := range namespaces {
		name := fmt.Sprintf("ns-%d", i)
		lbls := map[string]string{v1alpha1.NamespaceNameLabel: name, "team": teams[c.rng.IntN(len(teams))], "kubesphere.io/workspace": fmt.Sprintf("ws%d", c.rng.IntN(2))}
		if c.rng.IntN(2) == 0 {
			lbls[v1alpha1.IsolationLabel] = "true"
		}
		c.namespaces = append(c.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}})
		for j := range podsPerNamespace {
			c.pods = append(c.pods, corpusPod(name, fmt.Sprintf("p%d", j), netip.AddrFrom4([4]byte{10, 244, byte(i), byte(j + 1)}),
				map[string]string{"app": apps[c.rng.IntN(len(apps))], "team": teams[c.rng.IntN(len(teams))]}))
		}
	}
	c.renderMoat()
	for i := range tenantPolicies {
		c.policies = append(c.policies, c.tenantPolicy(i))
	}
	return c
}

func corpusPod(ns, name string, ip netip.Addr, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
		}}}},
		Status: corev1.PodStatus{PodIP: ip.String(), PodIPs: []corev1.PodIP{{IP: ip.String()}}},
	}
}

// renderMoat adds moat's policies for every isolated namespace, from random
// allowlists.
func (c *corpus) renderMoat() {
	cfg := policy.Config{AllowedIngressNamespaces: []string{"ns-0"}, ProjectLabel: "kubesphere.io/workspace", DNSIPs: []netip.Addr{netip.MustParseAddr("169.254.25.10")}}
	for _, ns := range c.namespaces {
		var als []*v1alpha1.NetworkAllowlist
		for k := range c.rng.IntN(3) {
			als = append(als, c.allowlist(ns.Name, k))
		}
		m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: als}, nil, cfg)
		if err != nil {
			panic(err)
		}
		c.models[ns.Name] = m
		res := m.Render()
		for i := range res.Policies {
			c.policies = append(c.policies, &res.Policies[i])
		}
		tier, err := m.AdminTier(c.enforcement, policy.DefaultAdminTierPriority)
		if err != nil {
			panic(err)
		}
		c.admin.AddAdminTier(tier)
	}
}

func (c *corpus) allowlist(ns string, k int) *v1alpha1.NetworkAllowlist {
	peer := func() v1alpha1.Peer {
		if c.rng.IntN(3) == 0 {
			return v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}}}
		}
		return v1alpha1.Peer{Namespace: c.namespaces[c.rng.IntN(len(c.namespaces))].Name}
	}
	ports := []v1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(8080))}}
	if c.rng.IntN(2) == 0 {
		ports = nil
	}
	spec := v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{peer()}, Ports: ports}}}
	if c.rng.IntN(3) == 0 {
		spec.Egress = []v1alpha1.EgressRule{{To: []v1alpha1.Peer{peer()}, Ports: ports}}
	}
	return &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("al-%d", k)}, Spec: spec}
}

func (c *corpus) pick(options ...string) string { return options[c.rng.IntN(len(options))] }

func (c *corpus) selector() *metav1.LabelSelector {
	switch c.rng.IntN(4) {
	case 0:
		return &metav1.LabelSelector{}
	case 1:
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": c.pick(apps...)}}
	case 2:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{c.pick(apps...), c.pick(apps...)}}}}
	}
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpNotIn, Values: []string{c.pick(teams...)}}}}
}

func (c *corpus) peer() networkingv1.NetworkPolicyPeer {
	switch c.rng.IntN(6) {
	case 0:
		return networkingv1.NetworkPolicyPeer{PodSelector: c.selector()}
	case 1:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": c.pick(teams...)}}}
	case 2:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: c.namespaces[c.rng.IntN(len(c.namespaces))].Name}}, PodSelector: c.selector()}
	case 3:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}
	case 4:
		block := [][2]string{{"10.244.0.0/16", "10.244.1.0/24"}, {"192.0.2.0/24", "192.0.2.10/32"}, {"0.0.0.0/0", "10.9.0.0/16"}}[c.rng.IntN(3)]
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: block[0], Except: []string{block[1]}}}
	}
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: c.pick("10.244.2.0/24", "198.51.100.0/24", "10.9.0.5/32")}}
}

func (c *corpus) ports() []networkingv1.NetworkPolicyPort {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	switch c.rng.IntN(7) {
	case 0:
		return nil
	case 1:
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8080))}}
	case 2:
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromString(c.pick("http", "metrics")))}}
	case 3:
		return []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: ptr.To(intstr.FromString("dns"))}}
	case 4:
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](9000)}}
	case 5:
		return []networkingv1.NetworkPolicyPort{{Protocol: &udp}}
	}
	return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(80))}, {Protocol: &udp, Port: ptr.To(intstr.FromInt32(53))}}
}

func (c *corpus) peers() []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for range c.rng.IntN(3) {
		out = append(out, c.peer())
	}
	return out
}

func (c *corpus) tenantPolicy(i int) *networkingv1.NetworkPolicy {
	ns := c.namespaces[c.rng.IntN(len(c.namespaces))].Name
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("tenant-%d", i)}, Spec: networkingv1.NetworkPolicySpec{PodSelector: *c.selector()}}
	if c.rng.IntN(3) != 0 {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		for range c.rng.IntN(3) {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: c.peers(), Ports: c.ports()})
		}
	}
	if len(np.Spec.PolicyTypes) == 0 || c.rng.IntN(2) == 0 {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		for range c.rng.IntN(3) {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: c.peers(), Ports: c.ports()})
		}
	}
	return np
}

func (c *corpus) objects() Objects {
	objs := c.admin
	objs.Namespaces, objs.Pods, objs.NetworkPolicies = c.namespaces, c.pods, c.policies
	return objs
}

func (c *corpus) evaluatorObjects() evaluator.Objects {
	var objs evaluator.Objects
	for _, ns := range c.namespaces {
		objs.Namespaces = append(objs.Namespaces, *ns)
	}
	for _, p := range c.pods {
		objs.Pods = append(objs.Pods, *p)
	}
	for _, np := range c.policies {
		objs.NetworkPolicies = append(objs.NetworkPolicies, *np)
	}
	for _, p := range c.admin.AdminNetworkPolicies {
		objs.AdminNetworkPolicies = append(objs.AdminNetworkPolicies, *p)
	}
	for _, p := range c.admin.BaselineAdminNetworkPolicies {
		objs.BaselineAdminNetworkPolicies = append(objs.BaselineAdminNetworkPolicies, *p)
	}
	return objs
}

// corpusPorts are the ports every pair is checked on: named ports' numbers,
// a range's inside and edges, and ports no rule names.
var corpusPorts = []Port{
	{Protocol: corev1.ProtocolTCP, Number: 80}, {Protocol: corev1.ProtocolTCP, Number: 8080}, {Protocol: corev1.ProtocolTCP, Number: 9090},
	{Protocol: corev1.ProtocolTCP, Number: 9000}, {Protocol: corev1.ProtocolTCP, Number: 7999}, {Protocol: corev1.ProtocolTCP, Number: 443},
	{Protocol: corev1.ProtocolUDP, Number: 53}, {Protocol: corev1.ProtocolUDP, Number: 5353},
}

// TestAgreesWithEvaluator checks every verdict of the engine against
// kube-network-policies v0.8.0's on random corpora: every pod to every pod
// and external address, every external address to every pod, on every port
// of corpusPorts. Where one of moat's policies admits, moat's model must say
// why (an admission of the model holds the peer and the port).
func TestAgreesWithEvaluator(t *testing.T) {
	checked, allowed := 0, 0
	for seed := range uint64(6) {
		n, a, _ := agreeWithEvaluator(t, newCorpus(seed, 6, 3, 24), seed)
		checked, allowed = checked+n, allowed+a
	}
	t.Logf("%d verdicts agree (%d allowed, %d denied)", checked, allowed, checked-allowed)
	if allowed == 0 || allowed == checked {
		t.Fatalf("the corpus is degenerate: %d of %d allowed", allowed, checked)
	}
}

// agreeWithEvaluator checks every verdict of the engine on corpus c against
// kube-network-policies v0.8.0's: every pod to every pod and external
// address, every external address to every pod, on every port of
// corpusPorts. Where one of moat's policies admits, moat's model must say
// why. It returns the verdicts checked and allowed, and the answers.
func agreeWithEvaluator(t *testing.T, c *corpus, seed uint64) (checked, allowed int, answers []Answer) {
	t.Helper()
	x := New(c.objects())
	e := &Explainer{Index: x, Models: c.models}
	ev, err := evaluator.New(c.evaluatorObjects())
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []Endpoint
	for _, p := range c.pods {
		endpoints = append(endpoints, PodEndpoint(p))
	}
	for _, a := range c.externals {
		endpoints = append(endpoints, x.AddressEndpoint(netip.PrefixFrom(a, 32)))
	}
	for _, src := range endpoints {
		for _, dst := range endpoints {
			if src.Kind != KindPod && dst.Kind != KindPod {
				continue
			}
			for _, port := range corpusPorts {
				a := e.answer(src, dst, port, Target{})
				for _, side := range []SideAnswer{a.Egress, a.Ingress} {
					for _, r := range side.Reasons {
						if r.Moat == nil && strings.Contains(r.Policy, "/"+policy.ReservedPolicyNamePrefix) {
							t.Errorf("seed %d: %s → %s %s: moat's policy admits what its model does not explain: %s", seed, src, dst, port, r.Text)
						}
					}
				}
				want, err := ev.Allowed(src.Prefix.Addr().String(), dst.Prefix.Addr().String(), int(port.Number), port.Protocol)
				if err != nil {
					t.Fatal(err)
				}
				checked++
				answers = append(answers, a)
				if want {
					allowed++
				}
				if a.Allowed != want {
					t.Errorf("seed %d: %s → %s %s: explain says %v (egress %+v, ingress %+v), kube-network-policies %v",
						seed, src, dst, port, a.Allowed, a.Egress.Side, a.Ingress.Side, want)
				}
			}
		}
	}
	return checked, allowed, answers
}
