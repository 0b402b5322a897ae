package validation

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// tenantConfig admits ingress from the monitoring namespace and 10.0.0.0/24
// everywhere, and keeps kube-system/kube-dns reachable.
func tenantConfig() Config {
	return Config{Policy: policy.Config{
		AllowedIngressNamespaces: []string{"monitoring"},
		AllowedIngressCIDRs:      []string{"10.0.0.0/24"},
		DNSService:               ptr.To(policy.DefaultDNSService),
	}}
}

func isolatedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.IsolationLabel: "true"}}}
}

// tenantAllowlists open demo-project-1 to ingress from demo-project-2, the
// pods of Service other/web and 192.168.0.0/16 except 192.168.1.0/24, and
// egress to 203.0.113.0/24 and the Service other/db.
func tenantAllowlists() []*v1alpha1.NetworkAllowlist {
	return []*v1alpha1.NetworkAllowlist{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "in"},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{
				{Namespace: "demo-project-2"},
				{Service: &v1alpha1.ServiceReference{Namespace: "other", Name: "web"}},
				{IPBlock: &v1alpha1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
			}}},
			Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{
				{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}},
				{Service: &v1alpha1.ServiceReference{Namespace: "other", Name: "db"}},
			}}},
		},
	}}
}

func tenantCluster() *mapCluster {
	svc := func(ns, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: selector, Ports: ports}}
	}
	return newCluster(
		svc("other", "web", map[string]string{"app": "web"}),
		svc("other", "db", map[string]string{"app": "db"}, corev1.ServicePort{Port: 5432, Protocol: corev1.ProtocolTCP}),
		svc("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"},
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			corev1.ServicePort{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP}),
	)
}

func pinned(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: name}}
}

func labels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func ingressPolicy(peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "tenant"},
		Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers}}},
	}
}

func egressPolicy(peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "tenant"},
		Spec:       networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: peers}}},
	}
}

var (
	dbPods  = networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("other"), PodSelector: labels("app", "db")}
	dnsPods = networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("kube-system"), PodSelector: labels("k8s-app", "kube-dns")}
)

// withPorts sets the ports of the first rule of np.
func withPorts(np *networkingv1.NetworkPolicy, ports ...networkingv1.NetworkPolicyPort) *networkingv1.NetworkPolicy {
	if len(np.Spec.Ingress) > 0 {
		np.Spec.Ingress[0].Ports = ports
	} else {
		np.Spec.Egress[0].Ports = ports
	}
	return np
}

func npPort(protocol corev1.Protocol, port intstr.IntOrString, end ...int32) networkingv1.NetworkPolicyPort {
	p := networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &port}
	if len(end) > 0 {
		p.EndPort = &end[0]
	}
	return p
}

func tcp(port int32, end ...int32) networkingv1.NetworkPolicyPort {
	return npPort(corev1.ProtocolTCP, intstr.FromInt32(port), end...)
}

func udp(port int32) networkingv1.NetworkPolicyPort {
	return npPort(corev1.ProtocolUDP, intstr.FromInt32(port))
}

func block(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func tenantForbidden(path *field.Path, detail string) *field.Error {
	return field.Forbidden(path, detail+"; NetworkPolicies add up, so this would undo moat's isolation of namespace demo-project-1: "+
		"declare the peer in a NetworkAllowlist (the audited path), or ask a member of moat's admin groups to create this policy")
}

func TestValidateTenantNetworkPolicy(t *testing.T) {
	from := field.NewPath("spec", "ingress").Index(0).Child("from")
	to := field.NewPath("spec", "egress").Index(0).Child("to")
	ns := isolatedNamespace("demo-project-1")
	cases := []struct {
		name       string
		np         *networkingv1.NetworkPolicy
		ns         *corev1.Namespace
		allowlists []*v1alpha1.NetworkAllowlist
		cfg        func(*Config)
		want       field.ErrorList
	}{
		{name: "pods of the namespace", np: ingressPolicy(networkingv1.NetworkPolicyPeer{PodSelector: labels("app", "a")})},
		{name: "own namespace pinned", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-1")})},
		{name: "allowed ingress namespace", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("monitoring")})},
		{name: "allowed ingress CIDR, narrower", np: ingressPolicy(block("10.0.0.128/25"))},
		{name: "pinned by an In expression", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: v1alpha1.NamespaceNameLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"monitoring", "demo-project-1"}}}}})},
		{name: "empty ingress", np: ingressPolicy(), want: field.ErrorList{tenantForbidden(from,
			"an empty list admits ingress from everywhere (every pod of every namespace and every address)")}},
		{name: "every namespace", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("namespaceSelector"), "admits ingress from every namespace whose labels match; pin it to one namespace with the kubernetes.io/metadata.name label")}},
		{name: "namespaces by an editable label", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: labels("team", "a")}), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("namespaceSelector"), "admits ingress from every namespace whose labels match; pin it to one namespace with the kubernetes.io/metadata.name label")}},
		{name: "another namespace", np: ingressPolicy(networkingv1.NetworkPolicyPeer{PodSelector: labels("app", "x"), NamespaceSelector: pinned("demo-project-3")}), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("namespaceSelector"), "admits ingress from namespace demo-project-3, which moat does not admit")}},
		{name: "everywhere", np: ingressPolicy(block("0.0.0.0/0")), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("ipBlock"), "admits ingress from 0.0.0.0/0, which moat does not admit")}},
		{name: "wider than the allowed CIDR", np: ingressPolicy(block("10.0.0.0/23")), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("ipBlock"), "admits ingress from 10.0.0.0/23, which moat does not admit")}},
		{name: "IPv6 never covered by IPv4", np: ingressPolicy(block("::/0")), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("ipBlock"), "admits ingress from ::/0, which moat does not admit")}},
		{name: "second peer named", np: ingressPolicy(networkingv1.NetworkPolicyPeer{PodSelector: labels()}, block("0.0.0.0/0", "10.0.0.0/8")), want: field.ErrorList{tenantForbidden(
			from.Index(1).Child("ipBlock"), "admits ingress from 0.0.0.0/0 except 10.0.0.0/8, which moat does not admit")}},
		{name: "egress is open without egress allowlists", np: egressPolicy()},

		{name: "allowlisted namespace", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}), allowlists: tenantAllowlists()},
		{name: "allowlisted Service's pods", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("other"), PodSelector: labels("app", "web", "tier", "x")}), allowlists: tenantAllowlists()},
		{name: "more than the allowlisted Service's pods", np: ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("other"), PodSelector: labels("tier", "x")}),
			allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(
				from.Index(0).Child("namespaceSelector"), "admits ingress from namespace other, which moat does not admit")}},
		{name: "allowlisted block, its except kept", np: ingressPolicy(block("192.168.0.0/17", "192.168.0.0/23")), allowlists: tenantAllowlists()},
		{name: "allowlisted block, its except dropped", np: ingressPolicy(block("192.168.0.0/17")), allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(
			from.Index(0).Child("ipBlock"), "admits ingress from 192.168.0.0/17, which moat does not admit")}},
		{name: "restricted egress: everywhere", np: egressPolicy(), allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(to,
			"an empty list admits egress to everywhere (every pod of every namespace and every address)")}},
		{name: "restricted egress: declared block", np: egressPolicy(block("203.0.113.7/32")), allowlists: tenantAllowlists()},
		{name: "restricted egress: declared Service on its target port", np: withPorts(egressPolicy(dbPods), tcp(5432)), allowlists: tenantAllowlists()},
		{name: "restricted egress: DNS on its ports", np: withPorts(egressPolicy(dnsPods), udp(53), tcp(53)), allowlists: tenantAllowlists()},
		{name: "restricted egress: declared Service on every port", np: egressPolicy(dbPods), allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(
			field.NewPath("spec", "egress").Index(0).Child("ports"),
			"an empty list admits egress to namespace other on every port, but moat admits it only on 5432/TCP (allowlist in (spec.egress[0].to[1])): list those ports")}},
		{name: "restricted egress: declared Service on another port", np: withPorts(egressPolicy(dbPods), tcp(5432), tcp(22)), allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(
			field.NewPath("spec", "egress").Index(0).Child("ports").Index(1),
			"admits egress to namespace other on 22/TCP, but moat admits it only on 5432/TCP (allowlist in (spec.egress[0].to[1]))")}},
		{name: "restricted egress: DNS on every port", np: egressPolicy(dnsPods), allowlists: tenantAllowlists(), want: field.ErrorList{tenantForbidden(
			field.NewPath("spec", "egress").Index(0).Child("ports"),
			"an empty list admits egress to namespace kube-system on every port, but moat admits it only on 53/UDP, 53/TCP (moat serve --dns-service): list those ports")}},
		{name: "restricted egress: undeclared", np: egressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("kube-system")}, block("198.51.100.0/24")), allowlists: tenantAllowlists(),
			want: field.ErrorList{
				tenantForbidden(to.Index(0).Child("namespaceSelector"), "admits egress to namespace kube-system, which moat does not admit"),
				tenantForbidden(to.Index(1).Child("ipBlock"), "admits egress to 198.51.100.0/24, which moat does not admit"),
			}},
		{name: "restricted egress without DNS exception", np: egressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("kube-system"), PodSelector: labels("k8s-app", "kube-dns")}),
			allowlists: tenantAllowlists(), cfg: func(c *Config) { c.Policy.DNSService = nil }, want: field.ErrorList{
				tenantForbidden(to.Index(0).Child("namespaceSelector"), "admits egress to namespace kube-system, which moat does not admit")}},

		{name: "namespace not isolated", np: ingressPolicy(), ns: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1"}}},
		{name: "invalid isolation label", np: ingressPolicy(), ns: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1", Labels: map[string]string{v1alpha1.IsolationLabel: "yes"}}}},
		{name: "protected namespace", np: ingressPolicy(), ns: isolatedNamespace("kube-system")},
		{name: "mode off", np: ingressPolicy(), cfg: func(c *Config) { c.TenantNetworkPolicies = TenantPoliciesOff }},
		{name: "no policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tenantConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			n := ns
			if tc.ns != nil {
				n = tc.ns
			}
			got := ValidateTenantNetworkPolicy(tc.np, n, tc.allowlists, cfg, tenantCluster())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTenantPolicyModeFindings(t *testing.T) {
	errs := field.ErrorList{field.Forbidden(field.NewPath("spec", "ingress").Index(0).Child("from"), "opens it")}
	for _, tc := range []struct {
		mode         TenantPolicyMode
		wantErrs     field.ErrorList
		wantWarnings []string
	}{
		{"", errs, nil},
		{TenantPoliciesRestrict, errs, nil},
		{TenantPoliciesWarn, nil, []string{"spec.ingress[0].from: opens it"}},
		{TenantPoliciesOff, nil, nil},
	} {
		gotErrs, gotWarnings := tc.mode.Findings(errs)
		if diff := cmp.Diff(tc.wantErrs, gotErrs); diff != "" {
			t.Errorf("%q errors (-want +got):\n%s", tc.mode, diff)
		}
		if diff := cmp.Diff(tc.wantWarnings, Strings(gotWarnings)); diff != "" {
			t.Errorf("%q warnings (-want +got):\n%s", tc.mode, diff)
		}
	}
	for _, s := range []string{"restrict", "warn", "off"} {
		if m, err := ParseTenantPolicyMode(s); err != nil || string(m) != s {
			t.Errorf("ParseTenantPolicyMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseTenantPolicyMode("Restrict"); err == nil ||
		err.Error() != `"Restrict" is not a tenant NetworkPolicy mode: use restrict (refuse policies that open an isolated namespace), warn (admit them with a warning) or off` {
		t.Errorf("ParseTenantPolicyMode(Restrict): %v", err)
	}
}

func TestValidateNamespaceProtection(t *testing.T) {
	label := field.NewPath("metadata", "labels").Key(v1alpha1.IsolationLabel)
	ns := func(name, value string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if value != "" {
			n.Labels = map[string]string{v1alpha1.IsolationLabel: value}
		}
		return n
	}
	cases := []struct {
		name string
		ns   *corev1.Namespace
		cfg  Config
		want field.ErrorList
	}{
		{name: "kube-system isolated", ns: ns("kube-system", "true"), want: field.ErrorList{field.Forbidden(label,
			`namespace kube-system is protected (moat serve --protected-namespaces=kube-system,kube-public,kube-node-lease,moat-system): `+
				`isolating it would cut every other namespace off from it (cluster DNS, the API server's webhooks, moat itself), `+
				`so moat never writes NetworkPolicies into it; remove the label or set it to "false"`)}},
		{name: "moat's namespace isolated", ns: ns("moat-system", "true"), want: field.ErrorList{field.Forbidden(label,
			`namespace moat-system is protected (moat serve --protected-namespaces=kube-system,kube-public,kube-node-lease,moat-system): `+
				`isolating it would cut every other namespace off from it (cluster DNS, the API server's webhooks, moat itself), `+
				`so moat never writes NetworkPolicies into it; remove the label or set it to "false"`)}},
		{name: "configured list", ns: ns("platform", "true"), cfg: Config{Policy: policy.Config{ProtectedNamespaces: []string{"platform"}}}, want: field.ErrorList{field.Forbidden(label,
			`namespace platform is protected (moat serve --protected-namespaces=platform): `+
				`isolating it would cut every other namespace off from it (cluster DNS, the API server's webhooks, moat itself), `+
				`so moat never writes NetworkPolicies into it; remove the label or set it to "false"`)}},
		{name: "configured list replaces the defaults", ns: ns("kube-system", "true"), cfg: Config{Policy: policy.Config{ProtectedNamespaces: []string{"platform"}}}},
		{name: "kube-system not isolated", ns: ns("kube-system", "false")},
		{name: "kube-system unlabelled", ns: ns("kube-system", "")},
		{name: "tenant isolated", ns: ns("demo-project-1", "true")},
		{name: "nil"},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, ValidateNamespaceProtection(tc.ns, tc.cfg)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// FuzzValidateTenantNetworkPolicy checks that no NetworkPolicy makes the
// tenant rule panic, that it is deterministic, that every error is at a
// field of the policy's ingress or egress with a message, and that a scope
// that admits more never yields more errors.
func FuzzValidateTenantNetworkPolicy(f *testing.F) {
	for _, np := range []*networkingv1.NetworkPolicy{
		ingressPolicy(), ingressPolicy(block("0.0.0.0/0")), ingressPolicy(block("10.0.0.0/24", "10.0.0.0/25")),
		ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}),
		ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2"), PodSelector: labels("app", "web")}),
		egressPolicy(), egressPolicy(block("203.0.113.0/25")), validNetworkPolicy(),
	} {
		data, err := json.Marshal(np)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"spec":{"ingress":[{"from":[{"ipBlock":{"cidr":"::ffff:1.2.3.4/128","except":["x"]}},{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"In"}]}}]}]}}`))
	ns := isolatedNamespace("demo-project-1")
	f.Fuzz(func(t *testing.T, data []byte) {
		var np networkingv1.NetworkPolicy
		if err := json.Unmarshal(data, &np); err != nil {
			return
		}
		narrow := ValidateTenantNetworkPolicy(&np, ns, nil, tenantConfig(), nil)
		again := ValidateTenantNetworkPolicy(&np, ns, nil, tenantConfig(), nil)
		if diff := cmp.Diff(narrow, again); diff != "" {
			t.Fatalf("not deterministic:\n%s", diff)
		}
		allowlists, cluster := tenantAllowlists(), tenantCluster()
		wide := ValidateTenantNetworkPolicy(&np, ns, allowlists, tenantConfig(), cluster)
		// What the webhook looks up is the informer cache's own
		// objects (lookup.NewReadOnly): validation must not modify it.
		if !reflect.DeepEqual(ns, isolatedNamespace("demo-project-1")) || !reflect.DeepEqual(allowlists, tenantAllowlists()) ||
			!reflect.DeepEqual(cluster, tenantCluster()) {
			t.Errorf("validation modified the objects it looked up")
		}
		if len(wide) > len(narrow) && len(np.Spec.Egress) == 0 {
			t.Errorf("a wider scope gave more errors: %v, then %v", narrow, wide)
		}
		for _, e := range append(narrow, wide...) {
			if e.Type != field.ErrorTypeForbidden || e.Detail == "" || (len(e.Field) < len("spec.egress[0].to")) {
				t.Errorf("unexpected error %#v", e)
			}
		}
	})
}

// TestRatchetTenantFindings: findings are kept only inside a rule the stored
// policy holds unchanged, under the same pod selector and policy types.
func TestRatchetTenantFindings(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	findings := func(np *networkingv1.NetworkPolicy) field.ErrorList {
		return ValidateTenantNetworkPolicy(np, ns, tenantAllowlists(), tenantConfig(), tenantCluster())
	}
	// Stored before the namespace was isolated: the metrics pods admit
	// Prometheus of a namespace labelled team=monitoring (not pinned).
	stored := ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: labels("team", "monitoring"), PodSelector: labels("app", "prometheus")})
	stored.Spec.PodSelector = *labels("app", "metrics")
	if len(findings(stored)) != 1 {
		t.Fatalf("the stored policy should have one finding, got %v", findings(stored))
	}
	withRule := func(np *networkingv1.NetworkPolicy, first networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
		np = np.DeepCopy()
		np.Spec.Ingress = append([]networkingv1.NetworkPolicyIngressRule{first}, np.Spec.Ingress...)
		return np
	}
	confined := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "web")}}}

	cases := []struct {
		name     string
		np, old  *networkingv1.NetworkPolicy
		wantAct  int
		wantKept int
	}{
		{name: "create", np: stored, wantAct: 1},
		{name: "unchanged rule, a confined rule added before it", np: withRule(stored, confined), old: stored, wantKept: 1},
		{name: "the rule widened to every namespace", np: func() *networkingv1.NetworkPolicy {
			np := stored.DeepCopy()
			np.Spec.Ingress[0].From[0] = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}
			return np
		}(), old: stored, wantAct: 1},
		{name: "the same rule applied to every pod", np: func() *networkingv1.NetworkPolicy {
			np := stored.DeepCopy()
			np.Spec.PodSelector = metav1.LabelSelector{}
			return np
		}(), old: stored, wantAct: 1},
		{name: "the same rule applied to fewer pods, a confined rule added before it", np: func() *networkingv1.NetworkPolicy {
			np := withRule(stored, confined)
			np.Spec.PodSelector.MatchLabels["tier"] = "backend"
			return np
		}(), old: stored, wantKept: 1},
		{name: "the same rule under another pod selector", np: func() *networkingv1.NetworkPolicy {
			np := stored.DeepCopy()
			np.Spec.PodSelector = *labels("app", "db")
			return np
		}(), old: stored, wantAct: 1},
		{name: "the same peer on other ports", np: func() *networkingv1.NetworkPolicy {
			old := stored.DeepCopy()
			port := intstr.FromInt32(9090)
			old.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &port}}
			return old
		}(), old: stored, wantAct: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			act, kept := RatchetTenantFindings(tc.np, tc.old, findings(tc.np))
			if len(act) != tc.wantAct || len(kept) != tc.wantKept {
				t.Errorf("act %v, kept %v; want %d and %d", act, kept, tc.wantAct, tc.wantKept)
			}
			for _, e := range kept {
				if e.Field != "spec.ingress[1].from[0].namespaceSelector" {
					t.Errorf("kept finding at %s, want the moved rule spec.ingress[1].from[0].namespaceSelector", e.Field)
				}
			}
		})
	}
}

// TestTenantRuleUnparsableBlockNotCovered: an ipBlock that netip cannot read
// (the API server reads leading zeros) is never taken as covered.
func TestTenantRuleUnparsableBlockNotCovered(t *testing.T) {
	np := ingressPolicy(block("000.000.000.000/0"))
	errs := ValidateTenantNetworkPolicy(np, isolatedNamespace("demo-project-1"), tenantAllowlists(), tenantConfig(), tenantCluster())
	if len(errs) != 1 || errs[0].Field != "spec.ingress[0].from[0].ipBlock" {
		t.Errorf("want one finding at spec.ingress[0].from[0].ipBlock, got %v", errs)
	}
}

// TestTenantRuleProjectGroups: with --project-label, a tenant policy may
// admit what moat admits of groups: the namespace's own group (its default
// ingress policy) and the groups its allowlists name as project peers.
func TestTenantRuleProjectGroups(t *testing.T) {
	const key = "kubesphere.io/workspace"
	cfg := tenantConfig()
	cfg.Policy.ProjectLabel = key
	ns := isolatedNamespace("demo-project-1")
	ns.Labels[key] = "ws-a"
	allowlists := append(tenantAllowlists(), &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "from-ws-b"},
		Spec:       v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Project: "ws-b"}}}}},
	})
	from := field.NewPath("spec", "ingress").Index(0).Child("from").Index(0).Child("namespaceSelector")
	unpinned := "admits ingress from every namespace whose labels match; pin it to one namespace with the kubernetes.io/metadata.name label"
	for _, tc := range []struct {
		name       string
		allowlists []*v1alpha1.NetworkAllowlist
		selector   *metav1.LabelSelector
		want       field.ErrorList
	}{
		{"its own group", tenantAllowlists(), labels(key, "ws-a"), nil},
		{"its own group, narrowed", tenantAllowlists(), labels(key, "ws-a", "team", "x"), nil},
		{"another group", tenantAllowlists(), labels(key, "ws-b"), field.ErrorList{tenantForbidden(from, unpinned)}},
		{"another group an allowlist names", allowlists, labels(key, "ws-b"), nil},
		{"an empty group value", allowlists, labels(key, ""), field.ErrorList{tenantForbidden(from, unpinned)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: tc.selector})
			got := ValidateTenantNetworkPolicy(np, ns, tc.allowlists, cfg, tenantCluster())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Without --project-label the group label is an ordinary label.
	np := ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: labels(key, "ws-a")})
	if got := ValidateTenantNetworkPolicy(np, ns, tenantAllowlists(), tenantConfig(), tenantCluster()); len(got) != 1 {
		t.Errorf("without --project-label: %v, want one finding", got)
	}
}

// TestTenantRulePorts: a tenant policy may admit an allowlisted peer only on
// the ports moat admits it on; each port moat does not admit is refused at
// its own field path.
func TestTenantRulePorts(t *testing.T) {
	web := &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "web"},
		Spec: v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{
			From: []v1alpha1.Peer{{Namespace: "demo-project-2"}, {IPBlock: &v1alpha1.IPBlock{CIDR: "192.0.2.0/24"}}},
			Ports: []v1alpha1.Port{
				{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))},
				{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](8100)},
				{Protocol: ptr.To(corev1.ProtocolUDP)},
				{Port: ptr.To(intstr.FromString("metrics"))},
			},
		}}},
	}
	project2 := networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}
	ports := field.NewPath("spec", "ingress").Index(0).Child("ports")
	refused := func(k int, port string) *field.Error {
		return tenantForbidden(ports.Index(k), "admits ingress from namespace demo-project-2 on "+port+
			`, but moat admits it only on 80/TCP, 8000-8100/TCP, every UDP port, "metrics"/TCP (allowlist web (spec.ingress[0].from[0]))`)
	}
	for _, tc := range []struct {
		name  string
		peer  networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
		want  field.ErrorList
	}{
		{name: "the allowlisted port", peer: project2, ports: []networkingv1.NetworkPolicyPort{tcp(80)}},
		{name: "no protocol is TCP", peer: project2, ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(80))}}},
		{name: "inside the range", peer: project2, ports: []networkingv1.NetworkPolicyPort{tcp(8080), tcp(8000, 8100)}},
		{name: "any UDP port", peer: project2, ports: []networkingv1.NetworkPolicyPort{udp(5353), {Protocol: ptr.To(corev1.ProtocolUDP)}}},
		{name: "the named port", peer: project2, ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, intstr.FromString("metrics"))}},
		{name: "another port", peer: project2, ports: []networkingv1.NetworkPolicyPort{tcp(80), tcp(8080, 8200), tcp(22)},
			want: field.ErrorList{refused(1, "8080-8200/TCP"), refused(2, "22/TCP")}},
		{name: "every TCP port", peer: project2, ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP)}},
			want: field.ErrorList{refused(0, "every TCP port")}},
		{name: "SCTP", peer: project2, ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolSCTP, intstr.FromInt32(80))},
			want: field.ErrorList{refused(0, "80/SCTP")}},
		{name: "a name for a numbered port", peer: project2, ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, intstr.FromString("http"))},
			want: field.ErrorList{refused(0, `"http"/TCP`)}},
		{name: "every port", peer: project2, want: field.ErrorList{tenantForbidden(ports,
			`an empty list admits ingress from namespace demo-project-2 on every port, but moat admits it only on 80/TCP, 8000-8100/TCP, every UDP port, "metrics"/TCP (allowlist web (spec.ingress[0].from[0])): list those ports`)}},
		{name: "the allowlisted block, narrower, on its port", peer: block("192.0.2.128/25"), ports: []networkingv1.NetworkPolicyPort{tcp(80)}},
		{name: "own pods on every port", peer: networkingv1.NetworkPolicyPeer{PodSelector: labels()}},
		{name: "the allowed namespace on every port", peer: networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("monitoring")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := withPorts(ingressPolicy(tc.peer), tc.ports...)
			got := ValidateTenantNetworkPolicy(np, isolatedNamespace("demo-project-1"), []*v1alpha1.NetworkAllowlist{web}, tenantConfig(), tenantCluster())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTenantRulePins: only matchLabels and In on kubernetes.io/metadata.name
// pin a namespaceSelector; NotIn and Exists select every other namespace.
func TestTenantRulePins(t *testing.T) {
	from := field.NewPath("spec", "ingress").Index(0).Child("from").Index(0).Child("namespaceSelector")
	unpinned := tenantForbidden(from, "admits ingress from every namespace whose labels match; pin it to one namespace with the kubernetes.io/metadata.name label")
	expr := func(op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: v1alpha1.NamespaceNameLabel, Operator: op, Values: values}}}
	}
	for _, tc := range []struct {
		name     string
		selector *metav1.LabelSelector
		want     field.ErrorList
	}{
		{"In an admitted namespace", expr(metav1.LabelSelectorOpIn, "monitoring"), nil},
		{"NotIn", expr(metav1.LabelSelectorOpNotIn, "demo-project-3"), field.ErrorList{unpinned}},
		{"Exists", expr(metav1.LabelSelectorOpExists), field.ErrorList{unpinned}},
		{"NotIn next to matchLabels", &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "monitoring"},
			MatchExpressions: expr(metav1.LabelSelectorOpNotIn, "x").MatchExpressions}, nil},
		{"In intersected with matchLabels", &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.NamespaceNameLabel: "demo-project-3"},
			MatchExpressions: expr(metav1.LabelSelectorOpIn, "monitoring", "demo-project-3").MatchExpressions},
			field.ErrorList{tenantForbidden(from, "admits ingress from namespace demo-project-3, which moat does not admit")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: tc.selector})
			got := ValidateTenantNetworkPolicy(np, isolatedNamespace("demo-project-1"), nil, tenantConfig(), tenantCluster())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTenantRuleLookupFailureFailsClosed: when Services cannot be looked up,
// the tenant model leaves their pods out and keeps the rest: the rule still
// refuses what moat does not admit instead of letting everything through.
func TestTenantRuleLookupFailureFailsClosed(t *testing.T) {
	cluster := tenantCluster()
	cluster.err = errors.New("API server unreachable")
	ns := isolatedNamespace("demo-project-1")
	for _, tc := range []struct {
		name    string
		np      *networkingv1.NetworkPolicy
		refused bool
	}{
		{"an admitted namespace", ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}), false},
		{"the pods of a Service that could not be looked up", ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("other"), PodSelector: labels("app", "web")}), true},
		{"every namespace", ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}), true},
	} {
		if errs := ValidateTenantNetworkPolicy(tc.np, ns, tenantAllowlists(), tenantConfig(), cluster); (len(errs) > 0) != tc.refused {
			t.Errorf("%s: %v, want refused %t", tc.name, errs, tc.refused)
		}
	}
}

// TestRatchetTenantFindingsKeptRules: a finding is kept only in a rule the
// stored policy holds unchanged (egress rules too, and spec.ingress[1] is
// not spec.ingress[10]), under a pod selector that keeps every term of the
// stored one (matchExpressions too) and the same policy types.
func TestRatchetTenantFindingsKeptRules(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	findings := func(np *networkingv1.NetworkPolicy) field.ErrorList {
		return ValidateTenantNetworkPolicy(np, ns, tenantAllowlists(), tenantConfig(), tenantCluster())
	}
	unpinned := networkingv1.NetworkPolicyPeer{NamespaceSelector: labels("team", "monitoring")}
	confined := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "web")}}}
	stored := ingressPolicy(unpinned)
	stored.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a"}}}}
	stored.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}

	// The stored rule moved to index 1, a new unadmitted rule at index 10.
	eleven := stored.DeepCopy()
	eleven.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{confined, stored.Spec.Ingress[0]}
	for range 8 {
		eleven.Spec.Ingress = append(eleven.Spec.Ingress, confined)
	}
	eleven.Spec.Ingress = append(eleven.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: labels("team", "other")}}})

	withoutExpression := stored.DeepCopy()
	withoutExpression.Spec.PodSelector = metav1.LabelSelector{}
	withEgressType := stored.DeepCopy()
	withEgressType.Spec.PolicyTypes = append(withEgressType.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)

	storedEgress := egressPolicy(unpinned)
	movedEgress := storedEgress.DeepCopy()
	movedEgress.Spec.Egress = append([]networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{dbPods}, Ports: []networkingv1.NetworkPolicyPort{tcp(5432)}}}, movedEgress.Spec.Egress...)

	for _, tc := range []struct {
		name     string
		np, old  *networkingv1.NetworkPolicy
		wantAct  []string
		wantKept []string
	}{
		{"unchanged", stored, stored, nil, []string{"spec.ingress[0].from[0].namespaceSelector"}},
		{"a new rule at index 10 beside the kept rule at 1", eleven, stored,
			[]string{"spec.ingress[10].from[0].namespaceSelector"}, []string{"spec.ingress[1].from[0].namespaceSelector"}},
		{"a pod selector without the stored expression", withoutExpression, stored, []string{"spec.ingress[0].from[0].namespaceSelector"}, nil},
		{"egress added to the policy types", withEgressType, stored, []string{"spec.ingress[0].from[0].namespaceSelector"}, nil},
		{"an unchanged egress rule that moved", movedEgress, storedEgress, nil, []string{"spec.egress[1].to[0].namespaceSelector"}},
	} {
		act, kept := RatchetTenantFindings(tc.np, tc.old, findings(tc.np))
		fields := func(errs field.ErrorList) []string {
			var out []string
			for _, e := range errs {
				out = append(out, e.Field)
			}
			return out
		}
		if !cmp.Equal(fields(act), tc.wantAct) || !cmp.Equal(fields(kept), tc.wantKept) {
			t.Errorf("%s: act %v, kept %v; want %v and %v", tc.name, fields(act), fields(kept), tc.wantAct, tc.wantKept)
		}
	}
}
