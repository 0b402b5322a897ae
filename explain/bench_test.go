package explain

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// benchCluster is the scale: 1,000 namespaces of 10 pods, every
// other one isolated with an allowlist admitting the next on TCP 8080 (moat's
// policies rendered for enforcement e) and a tenant policy.
func benchCluster(b *testing.B, e policy.Enforcement) (Objects, map[string]policy.Model) {
	b.Helper()
	var objs Objects
	models := map[string]policy.Model{}
	for i := range 1000 {
		ns := namespace(fmt.Sprintf("ns-%04d", i), i%2 == 1)
		objs.Namespaces = append(objs.Namespaces, ns)
		for j := range 10 {
			ip := netip.AddrFrom4([4]byte{10, byte(i / 250), byte(i % 250), byte(j + 1)})
			objs.Pods = append(objs.Pods, corpusPod(ns.Name, fmt.Sprintf("pod-%d", j), ip, map[string]string{"app": apps[j%3]}))
		}
		if i%2 == 0 {
			continue
		}
		al := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "from-next"}, Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: fmt.Sprintf("ns-%04d", i+1)}}, Ports: tcpPort(8080)}}}}
		m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{al}}, nil, policy.Config{})
		if err != nil {
			b.Fatal(err)
		}
		models[ns.Name] = m
		tier, err := m.AdminTier(e, policy.DefaultAdminTierPriority)
		if err != nil {
			b.Fatal(err)
		}
		objs.AddAdminTier(tier)
		for _, np := range m.Render().Policies {
			objs.NetworkPolicies = append(objs.NetworkPolicies, &np)
			tenant := np.DeepCopy()
			tenant.Name, tenant.Labels = "tenant-"+np.Name, nil
			tenant.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			objs.NetworkPolicies = append(objs.NetworkPolicies, tenant)
		}
	}
	return objs, models
}

// BenchmarkExplain: indexing the whole cluster (what an offline explain
// does once), and one answer on the index (a label selector of 4 pods to a
// pod, every container port: 4 answers with their reasons and fixes); the
// same with moat's 500 AdminNetworkPolicies (AdminTier).
func BenchmarkExplain(b *testing.B) {
	benchExplain(b, policy.EnforcementNetworkPolicy, "")
	benchExplain(b, policy.EnforcementAdminNetworkPolicy, "AdminTier")
}

func benchExplain(b *testing.B, enforcement policy.Enforcement, suffix string) {
	objs, models := benchCluster(b, enforcement)
	b.Run("Index1000Namespaces10000Pods"+suffix, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			New(objs)
		}
	})
	e := &Explainer{Index: New(objs), Models: models}
	src, err := ParseSpec("ns-0003/app=web")
	if err != nil {
		b.Fatal(err)
	}
	dst, err := ParseSpec("ns-0001/pod-5:8080")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Answer"+suffix, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, _ := e.Index.Resolve(src)
			d, _ := e.Index.Resolve(dst)
			if r := e.Explain(s, d); len(r.Answers) != 4 || r.Answers[0].Allowed || r.Answers[0].Ingress.Fix == nil {
				b.Fatalf("unexpected answers: %+v", r.Answers)
			}
		}
	})
}
