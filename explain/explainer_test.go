package explain

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// A small world: proj-a isolated, admitting proj-b on TCP 80 and
// restricting egress to 192.0.2.0/24 on 443; monitoring admitted by flag;
// the DNS cache by --dns-ips; proj-c not isolated, with a tenant policy
// that closes the egress of its app=locked pods.
var explainCfg = policy.Config{
	AllowedIngressNamespaces: []string{"monitoring"},
	DNSIPs:                   []netip.Addr{netip.MustParseAddr("169.254.25.10")},
}

func tcpPort(n int32) []v1alpha1.Port {
	return []v1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(n))}}
}

func namespace(name string, isolated bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.NamespaceNameLabel: name}}}
	if isolated {
		ns.Labels[v1alpha1.IsolationLabel] = "true"
	}
	return ns
}

func explainWorld(t *testing.T) *Explainer {
	t.Helper()
	allowlists := []*v1alpha1.NetworkAllowlist{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "proj-a", Name: "from-b"}, Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "proj-b"}}, Ports: tcpPort(80)}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "proj-a", Name: "to-outside"}, Spec: v1alpha1.NetworkAllowlistSpec{
			Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "192.0.2.0/24"}}}, Ports: tcpPort(443)}}}},
	}
	objs := Objects{
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "proj-b", Name: "nginx"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "nginx"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}}}}},
		NetworkPolicies: []*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "proj-c", Name: "locked"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}}},
	}
	for _, p := range []struct{ ns, name, ip string }{
		{"proj-a", "web", "10.244.0.1"}, {"proj-a", "db", "10.244.0.2"}, {"proj-b", "client", "10.244.1.1"},
		{"proj-b", "nginx", "10.244.1.2"}, {"proj-c", "other", "10.244.2.1"}, {"proj-c", "locked", "10.244.2.2"},
		{"monitoring", "prometheus", "10.244.3.1"},
	} {
		pod := corpusPod(p.ns, p.name, netip.MustParseAddr(p.ip), map[string]string{"app": p.name})
		if p.name == "nginx" {
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "web", ContainerPort: 8443})
		}
		objs.Pods = append(objs.Pods, pod)
	}
	models := map[string]policy.Model{}
	for _, ns := range []*corev1.Namespace{namespace("proj-a", true), namespace("proj-b", false), namespace("proj-c", false), namespace("monitoring", false)} {
		objs.Namespaces = append(objs.Namespaces, ns)
		var als []*v1alpha1.NetworkAllowlist
		for _, al := range allowlists {
			if al.Namespace == ns.Name {
				als = append(als, al)
			}
		}
		m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: als}, nil, explainCfg)
		if err != nil {
			t.Fatal(err)
		}
		models[ns.Name] = m
		for _, np := range m.Render().Policies {
			objs.NetworkPolicies = append(objs.NetworkPolicies, &np)
		}
	}
	where := func(namespace, name string) string { return "apps/" + namespace + ".yaml:" + name }
	return &Explainer{Index: New(objs), Models: models, Where: where}
}

// explainOne explains src → dst and wants exactly one answer.
func explainOne(t *testing.T, e *Explainer, src, dst string) Answer {
	t.Helper()
	r, err := e.ExplainArgs(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != 1 {
		t.Fatalf("%s → %s: %d answers, want 1: %+v", src, dst, len(r.Answers), r.Answers)
	}
	return r.Answers[0]
}

func sources(s SideAnswer) []string {
	var out []string
	for _, r := range s.Reasons {
		switch {
		case r.Moat == nil:
			out = append(out, "policy "+r.Policy+" "+r.Field)
		case r.Moat.Allowlist != "":
			out = append(out, "allowlist "+r.Moat.Allowlist+" "+r.Moat.Field+" at "+r.Where)
		case r.Moat.Flag != "":
			out = append(out, "flag "+r.Moat.Flag)
		default:
			out = append(out, "isolation")
		}
	}
	return out
}

func TestExplainReasons(t *testing.T) {
	e := explainWorld(t)
	for _, c := range []struct {
		name, src, dst  string
		allowed         bool
		egress, ingress []string
	}{
		{"the namespace itself", "proj-a/db", "proj-a/web:80", true, []string{"isolation"}, []string{"isolation"}},
		{"an allowlist rule, at its file and line", "proj-b/client", "proj-a/web:80", true, nil,
			[]string{"allowlist from-b spec.ingress[0].from[0] at apps/proj-a.yaml:from-b"}},
		{"--allowed-ingress-namespaces", "monitoring/app=prometheus", "proj-a/web:9090", true, nil, []string{"flag --allowed-ingress-namespaces"}},
		{"--dns-ips", "proj-a/web", "169.254.25.10:53/UDP", true, []string{"flag --dns-ips"}, nil},
		{"an egress allowlist to a CIDR", "proj-a/web", "192.0.2.7:443", true, []string{"allowlist to-outside spec.egress[0].to[0] at apps/proj-a.yaml:to-outside"}, nil},
		{"another project, another port", "proj-b/client", "proj-a/web:8080", false, nil, nil},
		{"a tenant policy restricts more than moat", "proj-c/locked", "proj-b/client:80", false, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := explainOne(t, e, c.src, c.dst)
			if a.Allowed != c.allowed {
				t.Fatalf("allowed %v, want %v: %+v", a.Allowed, c.allowed, a)
			}
			if diff := cmp.Diff(c.egress, sources(a.Egress)); diff != "" {
				t.Errorf("egress reasons (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.ingress, sources(a.Ingress)); diff != "" {
				t.Errorf("ingress reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplainFixes(t *testing.T) {
	e := explainWorld(t)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	for _, c := range []struct {
		name, src, dst string
		dir            Direction
		who            string
		spec           v1alpha1.NetworkAllowlistSpec
		alternative    string
	}{
		{"ingress: the destination project admits the source's namespace", "proj-c/other", "proj-a/web:80", Ingress, "the destination project proj-a",
			v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "proj-c"}}, Ports: tcpPort(80)}}},
			"--allowed-ingress-namespaces=proj-c"},
		{"ingress from outside: an ipBlock", "198.51.100.9", "proj-a/web:http", Ingress, "the destination project proj-a",
			v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "198.51.100.9/32"}}}, Ports: tcpPort(8080)}}},
			"--allowed-ingress-cidrs=198.51.100.9/32"},
		{"egress: the source project admits the destination's namespace", "proj-a/web", "proj-b/client:53/udp", Egress, "the source project proj-a",
			v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{Namespace: "proj-b"}}, Ports: []v1alpha1.Port{{Protocol: &udp, Port: ptr.To(intstr.FromInt32(53))}}}}}, ""},
		{"egress to a Service: the Service and its port", "proj-a/web", "proj-b/nginx:http", Egress, "the source project proj-a",
			v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "proj-b", Name: "nginx"}}},
				Ports: []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(80))}}}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := explainOne(t, e, c.src, c.dst)
			side := a.Ingress
			if c.dir == Egress {
				side = a.Egress
			}
			if a.Allowed || side.Allowed || side.Fix == nil {
				t.Fatalf("want the %s side denied with a fix: %+v", c.dir, a)
			}
			if side.Fix.Who != c.who {
				t.Errorf("who: %q, want %q", side.Fix.Who, c.who)
			}
			if diff := cmp.Diff(c.spec, side.Fix.Allowlist.Spec); diff != "" {
				t.Errorf("allowlist (-want +got):\n%s", diff)
			}
			if !strings.Contains(side.Fix.Alternative, c.alternative) {
				t.Errorf("alternative %q does not name %q", side.Fix.Alternative, c.alternative)
			}
			// The fix admits it: with the allowlist, moat's model admits
			// the connection on that side.
			if !e.admitsWithFix(t, c.src, c.dst, side.Fix.Allowlist) {
				t.Errorf("the fix does not admit %s → %s", c.src, c.dst)
			}
		})
	}
}

// admitsWithFix reports whether the connection is allowed once the fix's
// allowlist is applied (moat's policies rendered again).
func (e *Explainer) admitsWithFix(t *testing.T, src, dst string, fix *v1alpha1.NetworkAllowlist) bool {
	t.Helper()
	ns := e.Index.Namespace(fix.Namespace)
	// The fix alone: the namespace's other allowlists only add to it.
	m, err := policy.Compute(policy.Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{fix}}, serviceIndex{e.Index}, explainCfg)
	if err != nil {
		t.Fatal(err)
	}
	objs := Objects{}
	for _, list := range e.Index.pods {
		objs.Pods = append(objs.Pods, list...)
	}
	for _, n := range e.Index.namespaces {
		objs.Namespaces = append(objs.Namespaces, n)
	}
	for _, s := range e.Index.services {
		objs.Services = append(objs.Services, s)
	}
	for _, list := range e.Index.policies {
		for _, c := range list {
			if c.np.Namespace != fix.Namespace || !c.managed {
				objs.NetworkPolicies = append(objs.NetworkPolicies, c.np)
			}
		}
	}
	for _, np := range m.Render().Policies {
		objs.NetworkPolicies = append(objs.NetworkPolicies, &np)
	}
	fixed := &Explainer{Index: New(objs), Models: e.Models}
	return explainOne(t, fixed, src, dst).Allowed
}

type serviceIndex struct{ x *Index }

func (s serviceIndex) Service(namespace, name string) (*corev1.Service, error) {
	return s.x.Service(namespace, name), nil
}

func TestExplainTenantRestrictsMore(t *testing.T) {
	a := explainOne(t, explainWorld(t), "proj-c/locked", "proj-b/client:80")
	if a.Egress.Fix != nil || !strings.Contains(a.Egress.Missing, "locked (not moat's)") || !strings.Contains(a.Egress.Missing, "moat does not restrict egress here") {
		t.Errorf("want the tenant policy named, moat's isolation cleared and no allowlist: %+v", a.Egress)
	}
}

// TestBounds: an endpoint that names more than MaxEndpoints pods is cut,
// and the cut reported; so is an answer list past MaxAnswers.
func TestBounds(t *testing.T) {
	var objs Objects
	for i := range 25 {
		objs.Pods = append(objs.Pods, corpusPod("big", fmt.Sprintf("p%02d", i), netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), nil))
	}
	e := &Explainer{Index: New(objs)}
	r, err := e.ExplainArgs("big", "big")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"big names 25 pods: only the first 20 (by name) are explained",
		"big names 25 pods: only the first 20 (by name) are explained",
		fmt.Sprintf("only the first %d answers are given: name fewer pods or a port", MaxAnswers),
	}
	if diff := cmp.Diff(want, r.Notes); diff != "" || len(r.Answers) != MaxAnswers {
		t.Errorf("%d answers, notes (-want +got):\n%s", len(r.Answers), diff)
	}
}

// TestServiceTargetPort: a Service's port is checked on its target port, a
// name resolved on each pod, and the report says so.
func TestServiceTargetPort(t *testing.T) {
	r, err := explainWorld(t).ExplainArgs("proj-b/client", "proj-b/nginx:80")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != 1 || r.Answers[0].Port != (Port{Protocol: corev1.ProtocolTCP, Number: 8443, Name: "web"}) || !r.Answers[0].Allowed {
		t.Errorf("want one allowed answer on 8443/TCP (web): %+v", r.Answers)
	}
	want := "Service proj-b/nginx port http (80/TCP) forwards to target port web of its pods: NetworkPolicies apply to the pods and their target port, not to the Service"
	if len(r.Notes) != 1 || r.Notes[0] != want {
		t.Errorf("notes %q, want %q", r.Notes, want)
	}
}
