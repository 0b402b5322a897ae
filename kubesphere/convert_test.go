package kubesphere

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
	moatpolicy "moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// The fixtures: project "web" in workspace "team", isolated by annotation.

func isolatedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{WorkspaceLabel: "team"},
		Annotations: map[string]string{IsolateAnnotation: IsolateEnabled},
	}}
}

func policy(spec NamespaceNetworkPolicySpec) *NamespaceNetworkPolicy {
	return &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "np"}, Spec: spec}
}

func ipBlockPeer(cidr string, except ...string) Peer {
	return Peer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func namespacePeer(name string) Peer {
	return Peer{Namespace: &NamespaceSelector{Name: name}}
}

func npPort(protocol corev1.Protocol, port int32) networkingv1.NetworkPolicyPort {
	p := networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromInt32(port))}
	if protocol != "" {
		p.Protocol = &protocol
	}
	return p
}

func moatPort(protocol corev1.Protocol, port int32) v1alpha1.Port {
	return v1alpha1.Port{Protocol: &protocol, Port: ptr.To(intstr.FromInt32(port))}
}

var (
	npRef    = ObjectRef{Kind: "NamespaceNetworkPolicy", Namespace: "web", Name: "np"}
	ingress0 = field.NewPath("spec", "ingress").Index(0)
	egress0  = field.NewPath("spec", "egress").Index(0)
)

// refused is the problem for a validation error on a peer of np.
func refused(err *field.Error, what string) Problem {
	return Problem{Object: npRef, Field: err.Field, Severity: SeverityError,
		Message: err.ErrorBody() + ": moat refuses such a " + what + ", so it is not carried over"}
}

func converted(s, to string, path *field.Path) Problem {
	return Problem{Object: npRef, Field: path.String(), Severity: SeverityWarning,
		Message: fmt.Sprintf("%q has host bits set or is not in canonical form: converted to %s, the network NetworkPolicy matches", s, to)}
}

// notInInput is the warning for a Service peer whose Service the input
// does not hold.
func notInInput(path *field.Path, namespace, name string) Problem {
	return Problem{Object: npRef, Field: path.String(), Severity: SeverityWarning, Message: "Service " + namespace + "/" + name +
		" is not in the input: if it does not exist, KubeSphere's controller refuses the whole policy (none of its rules is in force), " +
		"while moat admits the policy's other peers now and this one once the Service exists"}
}

var noPortLeft = "none of the rule's ports carries over, and without ports the rule would admit every port: the rule is not carried over"

// convertPolicy converts np in the isolated namespace web and returns the
// allowlist made of it (nil for none) and the problems about np.
func convertPolicy(t *testing.T, np *NamespaceNetworkPolicy, cfg validation.Config) (*v1alpha1.NetworkAllowlistSpec, []Problem) {
	t.Helper()
	result := Convert(Input{Namespaces: []*corev1.Namespace{isolatedNamespace("web")}, Policies: []*NamespaceNetworkPolicy{np}}, cfg)
	var spec *v1alpha1.NetworkAllowlistSpec
	for _, al := range result.Allowlists {
		if errs, _ := validation.ValidateNetworkAllowlist(al, cfg, nil); len(errs) > 0 {
			t.Errorf("allowlist %s/%s in the output fails validation: %v", al.Namespace, al.Name, errs)
		}
		if al.Name == np.Name {
			spec = &al.Spec
		}
	}
	var problems []Problem
	for _, p := range result.Problems {
		if p.Object == npRef {
			problems = append(problems, p)
		}
	}
	return spec, problems
}

// TestConvertIPBlocks: CIDRs go through validation. Host bits are cleared
// (what NetworkPolicy matches) with a warning; a peer that moat refuses is
// left out with the validation error at its KubeSphere field, never a
// narrower except or an invalid allowlist.
func TestConvertIPBlocks(t *testing.T) {
	from0 := ingress0.Child("from").Index(0)
	keep := namespacePeer("monitoring")
	for _, tc := range []struct {
		name         string
		peer         Peer
		want         []v1alpha1.Peer // besides namespace monitoring
		wantProblems []Problem
	}{{
		name: "valid",
		peer: ipBlockPeer("10.2.0.0/24", "10.2.0.128/25"),
		want: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "10.2.0.0/24", Except: []string{"10.2.0.128/25"}}}},
	}, {
		name: "host bits in cidr and except are cleared",
		peer: ipBlockPeer("10.2.0.7/24", "10.2.0.130/25"),
		want: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "10.2.0.0/24", Except: []string{"10.2.0.128/25"}}}},
		wantProblems: []Problem{
			converted("10.2.0.7/24", "10.2.0.0/24", from0.Child("ipBlock", "cidr")),
			converted("10.2.0.130/25", "10.2.0.128/25", from0.Child("ipBlock", "except").Index(0)),
		},
	}, {
		name: "IPv6 in canonical form",
		peer: ipBlockPeer("2001:DB8::1/64"),
		want: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "2001:db8::/64"}}},
		wantProblems: []Problem{
			converted("2001:DB8::1/64", "2001:db8::/64", from0.Child("ipBlock", "cidr")),
		},
	}, {
		name: "an except outside cidr: the whole peer is left out",
		peer: ipBlockPeer("10.2.0.0/24", "10.3.0.0/25"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "except").Index(0), "10.3.0.0/25",
			"lies outside cidr 10.2.0.0/24: except can only remove addresses inside cidr; remove this entry or widen cidr"), "peer")},
	}, {
		name: "an except wider than cidr at the same address",
		peer: ipBlockPeer("10.0.0.0/24", "10.0.0.0/16"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "except").Index(0), "10.0.0.0/16",
			"is wider than cidr 10.0.0.0/24: an except entry must be a smaller network inside cidr"), "peer")},
	}, {
		name: "an except that does not parse",
		peer: ipBlockPeer("10.2.0.0/24", "10.2.0.300/32"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "except").Index(0), "10.2.0.300/32",
			"must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"), "peer")},
	}, {
		name: "leading zeros",
		peer: ipBlockPeer("010.2.0.0/24"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "cidr"), "010.2.0.0/24",
			"must not have leading zeros (some tools read them as octal): write 10.2.0.0/24"), "peer")},
	}, {
		name: "IPv4-mapped IPv6",
		peer: ipBlockPeer("::ffff:10.2.0.0/120"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "cidr"), "::ffff:10.2.0.0/120",
			"must not be an IPv4-mapped IPv6 address: write the IPv4 CIDR 10.2.0.0/24"), "peer")},
	}, {
		name: "spaces are not trimmed",
		peer: ipBlockPeer(" 10.2.0.0/24"),
		wantProblems: []Problem{refused(field.Invalid(from0.Child("ipBlock", "cidr"), " 10.2.0.0/24",
			"must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"), "peer")},
	}, {
		name: "empty cidr",
		peer: ipBlockPeer(""),
		wantProblems: []Problem{refused(field.Required(from0.Child("ipBlock", "cidr"),
			"set a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"), "peer")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			spec, problems := convertPolicy(t, policy(NamespaceNetworkPolicySpec{
				Ingress: []IngressRule{{From: []Peer{tc.peer, keep}}},
			}), validation.Config{})
			want := &v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: append(tc.want, v1alpha1.Peer{Namespace: "monitoring"})}}}
			if diff := cmp.Diff(want, spec); diff != "" {
				t.Errorf("allowlist (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantProblems, problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConvertPorts: ports go through validation. A refused port is left
// out; a rule left without any of its ports is left out too, since without
// ports it would admit every port.
func TestConvertPorts(t *testing.T) {
	ports := ingress0.Child("ports")
	tcp := corev1.ProtocolTCP
	for _, tc := range []struct {
		name         string
		ports        []networkingv1.NetworkPolicyPort
		cfg          validation.Config
		want         []v1alpha1.Port // nil: the rule is left out
		wantProblems []Problem
	}{{
		name:  "no protocol is TCP",
		ports: []networkingv1.NetworkPolicyPort{npPort("", 80), npPort(corev1.ProtocolUDP, 53)},
		want:  []v1alpha1.Port{moatPort(tcp, 80), moatPort(corev1.ProtocolUDP, 53)},
	}, {
		name:  "a range",
		ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](8080)}},
		want:  []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](8080)}},
	}, {
		name:         "a port out of range is left out",
		ports:        []networkingv1.NetworkPolicyPort{npPort("", 70000), npPort("", 8443)},
		want:         []v1alpha1.Port{moatPort(tcp, 8443)},
		wantProblems: []Problem{refused(field.Invalid(ports.Index(0).Child("port"), int32(70000), "must be between 1 and 65535, inclusive"), "port")},
	}, {
		name:  "port 0",
		ports: []networkingv1.NetworkPolicyPort{npPort("", 0)},
		wantProblems: []Problem{
			refused(field.Invalid(ports.Index(0).Child("port"), int32(0), "must be between 1 and 65535, inclusive"), "port"),
			{Object: npRef, Field: ports.String(), Severity: SeverityError, Message: noPortLeft},
		},
	}, {
		name:  "an unknown protocol: no port left, no rule",
		ports: []networkingv1.NetworkPolicyPort{npPort("ICMP", 1)},
		wantProblems: []Problem{
			refused(field.NotSupported(ports.Index(0).Child("protocol"), corev1.Protocol("ICMP"), []corev1.Protocol{"TCP", "UDP", "SCTP"}), "port"),
			{Object: npRef, Field: ports.String(), Severity: SeverityError, Message: noPortLeft},
		},
	}, {
		name:  "endPort below port",
		ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(8080)), EndPort: ptr.To[int32](8000)}},
		wantProblems: []Problem{
			refused(field.Invalid(ports.Index(0).Child("endPort"), int32(8000), "must not be below port 8080: the range is port..endPort"), "port"),
			{Object: npRef, Field: ports.String(), Severity: SeverityError, Message: noPortLeft},
		},
	}, {
		name:  "SCTP while moat has SCTP off",
		ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolSCTP, 3868)},
		wantProblems: []Problem{
			refused(field.Forbidden(ports.Index(0).Child("protocol"), "SCTP is turned off because not every network plugin supports it: "+
				"once the cluster's network plugin supports SCTP, turn it on with `moat serve --sctp-enabled` "+
				"(and `moat validate --sctp-enabled`), or use TCP or UDP"), "port"),
			{Object: npRef, Field: ports.String(), Severity: SeverityError, Message: noPortLeft},
		},
	}, {
		name:  "SCTP with SCTP on",
		ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolSCTP, 3868)},
		cfg:   validation.Config{SCTPEnabled: true},
		want:  []v1alpha1.Port{moatPort(corev1.ProtocolSCTP, 3868)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			spec, problems := convertPolicy(t, policy(NamespaceNetworkPolicySpec{
				Ingress: []IngressRule{{From: []Peer{namespacePeer("monitoring")}, Ports: tc.ports}},
			}), tc.cfg)
			var want *v1alpha1.NetworkAllowlistSpec
			if tc.want != nil {
				want = &v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "monitoring"}}, Ports: tc.want}}}
			}
			if diff := cmp.Diff(want, spec); diff != "" {
				t.Errorf("allowlist (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantProblems, problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConvertEgressPortsLeftOut: an egress rule left without ports is left
// out, while its Service peers, which ignore the rule's ports in KubeSphere,
// carry over.
func TestConvertEgressPortsLeftOut(t *testing.T) {
	spec, problems := convertPolicy(t, policy(NamespaceNetworkPolicySpec{
		Egress: []EgressRule{{
			To:    []Peer{ipBlockPeer("10.2.0.0/24"), {Service: &ServiceSelector{Namespace: "db", Name: "pg"}}},
			Ports: []networkingv1.NetworkPolicyPort{npPort("", 99999)},
		}},
	}), validation.Config{})
	want := &v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "db", Name: "pg"}}}}}}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("allowlist (-want +got):\n%s", diff)
	}
	wantProblems := []Problem{
		refused(field.Invalid(egress0.Child("ports").Index(0).Child("port"), int32(99999), "must be between 1 and 65535, inclusive"), "port"),
		{Object: npRef, Field: egress0.Child("ports").String(), Severity: SeverityError, Message: noPortLeft},
		notInInput(egress0.Child("to").Index(1).Child("service"), "db", "pg"),
		{Object: npRef, Field: egress0.Child("ports").String(), Severity: SeverityWarning,
			Message: "KubeSphere ignores the rule's ports for the Service peer spec.egress[0].to[1] (it admits the Service's ports); so does the conversion"},
	}
	if diff := cmp.Diff(wantProblems, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConvertPeers: namespace and Service peers, with the KubeSphere
// controller's reading and moat's names.
func TestConvertPeers(t *testing.T) {
	from := ingress0.Child("from")
	services := []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "pg"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "pg"}, Ports: []corev1.ServicePort{{Port: 5432}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "moved"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "pg"}, Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(5432)}, {Port: 80, TargetPort: intstr.FromString("http")}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "manual"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "alias"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", Selector: map[string]string{"app": "pg"}}},
	}
	svc := func(name string) Peer { return Peer{Service: &ServiceSelector{Namespace: "db", Name: name}} }
	np := policy(NamespaceNetworkPolicySpec{Ingress: []IngressRule{{From: []Peer{
		svc("pg"),                               // 0: kept
		svc("moved"),                            // 1: kept, targetPort http differs
		svc("manual"),                           // 2: no selector
		svc("alias"),                            // 3: ExternalName
		svc("absent"),                           // 4: not in the input: kept
		{Service: &ServiceSelector{Name: "pg"}}, // 5: no namespace
		namespacePeer(""),                       // 6: empty
		namespacePeer("Monitoring"),             // 7: not a DNS label
		{},                                      // 8: nothing
		{Namespace: &NamespaceSelector{Name: "logging"}, IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}, // 9: namespace wins
		svc("Bad_Name"), // 10: not a DNS-1035 label
	}}}})
	result := Convert(Input{Namespaces: []*corev1.Namespace{isolatedNamespace("web")}, Services: services, Policies: []*NamespaceNetworkPolicy{np}}, validation.Config{})
	ref := func(name string) v1alpha1.Peer {
		return v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: "db", Name: name}}
	}
	want := []*v1alpha1.NetworkAllowlist{newAllowlist("web", "np", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{
		ref("pg"), ref("moved"), ref("absent"), {Namespace: "logging"},
	}}}})}
	if diff := cmp.Diff(want, result.Allowlists); diff != "" {
		t.Errorf("allowlists (-want +got):\n%s", diff)
	}
	selectorless := func(name, what string) string {
		return "Service db/" + name + " " + what + ", so no NetworkPolicy can select its endpoints: KubeSphere's controller refuses the whole policy " +
			"and moat refuses such a peer; use an ipBlock peer with the addresses behind the Service"
	}
	// An ingress Service peer uses no Service port (in KubeSphere as in
	// moat): no targetPort warning for "moved".
	wantProblems := []Problem{
		{Object: npRef, Field: from.Index(2).Child("service").String(), Severity: SeverityError, Message: selectorless("manual", "has no selector")},
		{Object: npRef, Field: from.Index(3).Child("service").String(), Severity: SeverityError, Message: selectorless("alias", "is of type ExternalName")},
		notInInput(from.Index(4).Child("service"), "db", "absent"),
		{Object: npRef, Field: from.Index(5).Child("service").String(), Severity: SeverityError,
			Message: "service.name and service.namespace are both required: KubeSphere's controller cannot resolve the Service and refuses the whole policy"},
		{Object: npRef, Field: from.Index(6).Child("namespace", "name").String(), Severity: SeverityError, Message: "empty: name the namespace to admit"},
		refused(field.Invalid(from.Index(7).Child("namespace"), "Monitoring", `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`), "peer"),
		{Object: npRef, Field: from.Index(8).String(), Severity: SeverityError,
			Message: "a peer must set one of namespace, service or ipBlock: KubeSphere's controller refuses the whole policy for it"},
		{Object: npRef, Field: from.Index(9).String(), Severity: SeverityWarning,
			Message: "a peer sets more than one of service, namespace and ipBlock: KubeSphere uses only the first of them in that order; so does the conversion"},
		notInInput(from.Index(10).Child("service"), "db", "Bad_Name"),
		refused(field.Invalid(from.Index(10).Child("service", "name"), "Bad_Name", `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`), "peer"),
	}
	if diff := cmp.Diff(wantProblems, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConvertRules: what KubeSphere's controller does with rules that moat
// cannot express, and the DNS allowlist of a project that restricts egress.
func TestConvertRules(t *testing.T) {
	spec := field.NewPath("spec")
	for _, tc := range []struct {
		name         string
		spec         NamespaceNetworkPolicySpec
		want         []*v1alpha1.NetworkAllowlist
		wantProblems []Problem
	}{{
		name: "an ingress rule without peers",
		spec: NamespaceNetworkPolicySpec{Ingress: []IngressRule{{}, {From: []Peer{namespacePeer("a")}}}},
		want: []*v1alpha1.NetworkAllowlist{newAllowlist("web", "np", v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "a"}}}}})},
		wantProblems: []Problem{{Object: npRef, Field: ingress0.Child("from").String(), Severity: SeverityError,
			Message: "an ingress rule without peers admits every source in KubeSphere; a moat allowlist names its sources: " +
				"list the projects (namespace peers) or addresses (ipBlock peers) to admit"}},
	}, {
		name: "an egress rule without peers, and the DNS allowlist",
		spec: NamespaceNetworkPolicySpec{Egress: []EgressRule{{}, {To: []Peer{namespacePeer("a")}}}},
		want: []*v1alpha1.NetworkAllowlist{
			dnsAllowlist("web"),
			newAllowlist("web", "np", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{Namespace: "a"}}}}}),
		},
		wantProblems: []Problem{{Object: npRef, Field: egress0.Child("to").String(), Severity: SeverityWarning,
			Message: "an egress rule without peers admits nothing in KubeSphere (its controller skips it): nothing to carry over"}},
	}, {
		name: "no egress rule carries over",
		spec: NamespaceNetworkPolicySpec{Egress: []EgressRule{{To: []Peer{{}}}}},
		want: []*v1alpha1.NetworkAllowlist{dnsAllowlist("web")},
		wantProblems: []Problem{
			{Object: npRef, Field: egress0.Child("to").Index(0).String(), Severity: SeverityError,
				Message: "a peer must set one of namespace, service or ipBlock: KubeSphere's controller refuses the whole policy for it"},
			// The DNS allowlist keeps egress restricted: a warning that
			// says so, not a second error.
			{Object: npRef, Field: spec.Child("egress").String(), Severity: SeverityWarning,
				Message: "none of the policy's egress rules carries over: as in KubeSphere, the project's egress stays restricted, " +
					"to DNS (allowlist kubesphere-nodelocaldns and moat serve --dns-service) and the egress rules of its other allowlists"},
		},
	}, {
		name: "deny all egress",
		spec: NamespaceNetworkPolicySpec{Egress: []EgressRule{}},
		wantProblems: []Problem{{Object: npRef, Field: spec.Child("egress").String(), Severity: SeverityError,
			Message: "an empty egress list denies all egress of the project in KubeSphere; moat cannot deny all egress with an allowlist: " +
				"write a NetworkPolicy with policyTypes [Egress] and no rules instead"}},
	}, {
		name: "more rules than an allowlist holds: left out",
		spec: NamespaceNetworkPolicySpec{Ingress: func() []IngressRule {
			rules := make([]IngressRule, v1alpha1.MaxRules+1)
			for i := range rules {
				rules[i] = IngressRule{From: []Peer{namespacePeer("a")}}
			}
			return rules
		}()},
		wantProblems: []Problem{{Object: npRef, Severity: SeverityError, Message: fmt.Sprintf(
			"converted to NetworkAllowlist web/np, which moat refuses (spec.ingress: %s): the allowlist is not in the output",
			field.TooMany(spec.Child("ingress"), v1alpha1.MaxRules+1, v1alpha1.MaxRules).ErrorBody())}},
	}, {
		name: "as many rules as an allowlist holds",
		spec: NamespaceNetworkPolicySpec{Ingress: func() []IngressRule {
			rules := make([]IngressRule, v1alpha1.MaxRules)
			for i := range rules {
				rules[i] = IngressRule{From: []Peer{namespacePeer("a")}}
			}
			return rules
		}()},
		want: []*v1alpha1.NetworkAllowlist{newAllowlist("web", "np", v1alpha1.NetworkAllowlistSpec{Ingress: func() []v1alpha1.IngressRule {
			rules := make([]v1alpha1.IngressRule, v1alpha1.MaxRules)
			for i := range rules {
				rules[i] = v1alpha1.IngressRule{From: []v1alpha1.Peer{{Namespace: "a"}}}
			}
			return rules
		}()})},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			result := Convert(Input{Namespaces: []*corev1.Namespace{isolatedNamespace("web")}, Policies: []*NamespaceNetworkPolicy{policy(tc.spec)}}, validation.Config{})
			if diff := cmp.Diff(tc.want, result.Allowlists); diff != "" {
				t.Errorf("allowlists (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantProblems, result.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if got, want := result.Errors(), countErrors(tc.wantProblems); got != want {
				t.Errorf("Errors() = %d, want %d", got, want)
			}
		})
	}
}

func countErrors(problems []Problem) int {
	n := 0
	for _, p := range problems {
		if p.Severity == SeverityError {
			n++
		}
	}
	return n
}

func namespace(name, workspace string, annotations map[string]string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	if workspace != "" {
		ns.Labels = map[string]string{WorkspaceLabel: workspace}
	}
	return ns
}

func isolationPatch(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.IsolationLabel: "true"}},
	}
}

// alonePatch isolates name on its own: without its project group.
func alonePatch(name string) *corev1.Namespace {
	ns := isolationPatch(name)
	ns.Labels[v1alpha1.GroupIngressLabel] = "false"
	return ns
}

func workspaceWarning(name, workspace string, others int) Problem {
	return Problem{Object: ObjectRef{Kind: "Namespace", Name: name}, Severity: SeverityWarning, Message: fmt.Sprintf(
		"isolated at the workspace level (workspace %s): moat admits the %d other namespaces of the workspace found in the input by name; "+
			"namespaces that join the workspace later must be added to allowlist %s, or run moat serve and this import with --project-label=kubesphere.io/workspace",
		workspace, others, WorkspaceAllowlistName)}
}

// TestConvertIsolation: which namespaces KubeSphere's controller isolates,
// and how; moat never isolates a protected namespace.
func TestConvertIsolation(t *testing.T) {
	enabled := map[string]string{IsolateAnnotation: IsolateEnabled}
	nsRef := func(name string) ObjectRef { return ObjectRef{Kind: "Namespace", Name: name} }
	in := Input{
		Namespaces: []*corev1.Namespace{
			namespace("annotated", "team", enabled),
			namespace("disabled", "team", map[string]string{IsolateAnnotation: "Enabled"}),
			namespace("loose", "", enabled),
			namespace("plain", "team", nil),
			namespace("ws-a", "ws", nil),
			namespace("ws-b", "ws", enabled), // the annotation wins
			namespace("kube-system", "team", enabled),
			namespace("off", "off-ws", nil),
			namespace("lost", "missing-ws", nil),
			namespace("lost-annotated", "missing-ws", enabled), // the annotation wins anyway
			nil,
		},
		Workspaces: []Workspace{{Name: "ws", NetworkIsolation: true}, {Name: "off-ws"}, {Name: "team"}},
	}
	result := Convert(in, validation.Config{})
	wantNamespaces := []*corev1.Namespace{alonePatch("annotated"), alonePatch("lost-annotated"), isolationPatch("ws-a"), alonePatch("ws-b")}
	if diff := cmp.Diff(wantNamespaces, result.Namespaces); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	wantAllowlists := []*v1alpha1.NetworkAllowlist{newAllowlist("ws-a", WorkspaceAllowlistName, v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "ws-b"}}}}})}
	if diff := cmp.Diff(wantAllowlists, result.Allowlists); diff != "" {
		t.Errorf("allowlists (-want +got):\n%s", diff)
	}
	wantProblems := []Problem{
		{Object: nsRef("disabled"), Field: "metadata.annotations[" + IsolateAnnotation + "]", Severity: SeverityWarning,
			Message: `value "Enabled" does not turn isolation on (only "enabled" does): not isolated`},
		{Object: nsRef("kube-system"), Severity: SeverityError, Message: "isolated in KubeSphere, but moat refuses the label that would isolate it (" +
			validation.ValidateNamespaceProtection(isolationPatch("kube-system"), validation.Config{})[0].Error() + "): not carried over"},
		{Object: nsRef("loose"), Field: "metadata.labels[" + WorkspaceLabel + "]", Severity: SeverityWarning,
			Message: "KubeSphere's controller ignores namespaces outside a workspace, so this one is not isolated although annotated: " +
				"not carried over; to isolate it with moat, run: kubectl label namespace loose moat.dev/isolated=true"},
		{Object: nsRef("lost"), Field: "metadata.labels[" + WorkspaceLabel + "]", Severity: SeverityError,
			Message: "workspace missing-ws is not in the input, so whether KubeSphere isolates this namespace at the workspace level is unknown: " +
				"it is converted as not isolated; include the workspace (kubectl get workspaces missing-ws -o yaml) and run the import again"},
		workspaceWarning("ws-a", "ws", 1),
	}
	if diff := cmp.Diff(wantProblems, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if result.Errors() != 2 {
		t.Errorf("Errors() = %d, want 2", result.Errors())
	}

	// Protected namespaces are moat's configuration.
	result = Convert(in, validation.Config{Policy: moatpolicy.Config{ProtectedNamespaces: []string{}}})
	wantNamespaces = []*corev1.Namespace{alonePatch("annotated"), alonePatch("kube-system"), alonePatch("lost-annotated"), isolationPatch("ws-a"), alonePatch("ws-b")}
	if diff := cmp.Diff(wantNamespaces, result.Namespaces); diff != "" {
		t.Errorf("with no protected namespaces: namespaces (-want +got):\n%s", diff)
	}
}

// TestConvertLargeWorkspace: a rule holds at most v1alpha1.MaxPeers peers,
// so the workspace allowlist of a large workspace takes several.
func TestConvertLargeWorkspace(t *testing.T) {
	in := Input{Workspaces: []Workspace{{Name: "ws", NetworkIsolation: true}}}
	var peers []v1alpha1.Peer
	for i := range v1alpha1.MaxPeers + 2 {
		name := fmt.Sprintf("ns-%03d", i)
		in.Namespaces = append(in.Namespaces, namespace(name, "ws", nil))
		if i > 0 {
			peers = append(peers, v1alpha1.Peer{Namespace: name})
		}
	}
	result := Convert(in, validation.Config{})
	if len(result.Allowlists) != v1alpha1.MaxPeers+2 {
		t.Fatalf("%d allowlists, want one per namespace", len(result.Allowlists))
	}
	want := newAllowlist("ns-000", WorkspaceAllowlistName, v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{
		{From: peers[:v1alpha1.MaxPeers]}, {From: peers[v1alpha1.MaxPeers:]},
	}})
	if diff := cmp.Diff(want, result.Allowlists[0]); diff != "" {
		t.Errorf("allowlist (-want +got):\n%s", diff)
	}
	if result.Errors() != 0 {
		t.Errorf("problems: %v", result.Problems)
	}
}

// TestConvertPoliciesNotInForce: KubeSphere deletes the policies of a
// namespace that is not isolated, or isolated at the workspace level; a
// policy of a namespace the input does not hold is converted.
func TestConvertPoliciesNotInForce(t *testing.T) {
	np := func(namespace string) *NamespaceNetworkPolicy {
		return &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "np"},
			Spec: NamespaceNetworkPolicySpec{Ingress: []IngressRule{{From: []Peer{namespacePeer("a")}}}}}
	}
	ref := func(namespace string) ObjectRef {
		return ObjectRef{Kind: "NamespaceNetworkPolicy", Namespace: namespace, Name: "np"}
	}
	result := Convert(Input{
		Namespaces: []*corev1.Namespace{namespace("plain", "team", nil), namespace("ws-a", "ws", nil)},
		Workspaces: []Workspace{{Name: "ws", NetworkIsolation: true}, {Name: "team"}},
		Policies:   []*NamespaceNetworkPolicy{np("ws-a"), np("unknown"), nil, np("plain")},
	}, validation.Config{})
	want := []*v1alpha1.NetworkAllowlist{newAllowlist("unknown", "np", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "a"}}}}})}
	if diff := cmp.Diff(want, result.Allowlists); diff != "" {
		t.Errorf("allowlists (-want +got):\n%s", diff)
	}
	wantProblems := []Problem{
		workspaceWarning("ws-a", "ws", 0),
		{Object: ref("plain"), Severity: SeverityWarning, Message: "not in force: KubeSphere deletes the NamespaceNetworkPolicies of namespace plain, whose isolation is off; nothing to carry over"},
		{Object: ref("unknown"), Severity: SeverityWarning, Message: "namespace unknown is not in the input, so whether KubeSphere isolates it is unknown: the policy is converted; " +
			"if the project is isolated, also run: kubectl label namespace unknown moat.dev/isolated=true"},
		{Object: ref("ws-a"), Severity: SeverityWarning, Message: "not in force: namespace ws-a is isolated at the workspace level, where KubeSphere deletes its NamespaceNetworkPolicies; nothing to carry over"},
	}
	if diff := cmp.Diff(wantProblems, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConvertNodes: node SNAT addresses become a flag value, reported once
// a namespace is isolated.
func TestConvertNodes(t *testing.T) {
	node := func(ips string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{SNATNodeIPsAnnotation: ips}}}
	}
	nodes := []*corev1.Node{node("10.0.0.12; 10.0.0.11"), node("not-an-ip;;2001:db8::1"), nil}
	result := Convert(Input{Nodes: nodes}, validation.Config{})
	if len(result.Problems) != 0 {
		t.Errorf("no namespace isolated: problems %v, want none", result.Problems)
	}
	result = Convert(Input{Nodes: nodes, Namespaces: []*corev1.Namespace{isolatedNamespace("web")}}, validation.Config{})
	want := []Problem{{Object: ObjectRef{Kind: "Node", Name: "*"}, Field: "metadata.annotations[" + SNATNodeIPsAnnotation + "]", Severity: SeverityWarning,
		Message: "KubeSphere admits these node SNAT addresses into every isolated project; moat does so when it runs with --allowed-ingress-cidrs=10.0.0.11/32,10.0.0.12/32,2001:db8::1/128"}}
	if diff := cmp.Diff(want, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Origin: "a.yaml", Object: npRef, Field: "spec.egress", Message: "m", Severity: SeverityError}, "a.yaml: NamespaceNetworkPolicy/web/np: spec.egress: m"},
		{Problem{Object: ObjectRef{Kind: "Namespace", Name: "web"}, Message: "m", Severity: SeverityWarning}, "<input>: warning: Namespace/web: m"},
		{Problem{Origin: "<stdin>:5", Message: "m", Severity: SeverityError}, "<stdin>:5: m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestConvertRuleWithoutPeersLeft: an ingress rule whose peers are all
// refused is left out (an empty peer list would be refused, and with it the
// whole allowlist); the other rules carry over.
func TestConvertRuleWithoutPeersLeft(t *testing.T) {
	spec, problems := convertPolicy(t, policy(NamespaceNetworkPolicySpec{Ingress: []IngressRule{
		{From: []Peer{ipBlockPeer("10.300.0.0/16")}},
		{From: []Peer{namespacePeer("a")}},
	}}), validation.Config{})
	want := &v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "a"}}}}}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("allowlist (-want +got):\n%s", diff)
	}
	wantProblems := []Problem{refused(field.Invalid(ingress0.Child("from").Index(0).Child("ipBlock", "cidr"), "10.300.0.0/16",
		"must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64"), "peer")}
	if diff := cmp.Diff(wantProblems, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConvertOutsideWorkspaces: KubeSphere enforces the NamespaceNetworkPolicies
// of a namespace in no workspace (nothing deletes them), so the namespace
// admits only their peers (issue 22, case 1): moat isolates it on its own.
// A policy there that restricts only egress cannot be carried over without
// closing the namespace's ingress.
func TestConvertOutsideWorkspaces(t *testing.T) {
	np := func(namespace string, spec NamespaceNetworkPolicySpec) *NamespaceNetworkPolicy {
		return &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "np"}, Spec: spec}
	}
	ingressOnly := NamespaceNetworkPolicySpec{Ingress: []IngressRule{{From: []Peer{namespacePeer("a")}}}}
	egressOnly := NamespaceNetworkPolicySpec{Egress: []EgressRule{{To: []Peer{namespacePeer("a")}}}}
	// A policy with neither list: the API server defaults its NetworkPolicy's
	// type to Ingress, and without rules it admits nothing.
	result := Convert(Input{
		Namespaces: []*corev1.Namespace{namespace("legacy", "", nil), namespace("outbound", "", nil), namespace("idle", "", nil), namespace("shut", "", nil)},
		Policies:   []*NamespaceNetworkPolicy{np("legacy", ingressOnly), np("outbound", egressOnly), np("shut", NamespaceNetworkPolicySpec{})},
	}, validation.Config{})
	if diff := cmp.Diff([]*corev1.Namespace{alonePatch("legacy"), alonePatch("shut")}, result.Namespaces); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	want := []*v1alpha1.NetworkAllowlist{newAllowlist("legacy", "np", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "a"}}}}})}
	if diff := cmp.Diff(want, result.Allowlists); diff != "" {
		t.Errorf("allowlists (-want +got):\n%s", diff)
	}
	wantProblems := []Problem{
		{Object: ObjectRef{Kind: "Namespace", Name: "legacy"}, Severity: SeverityWarning, Message: "in no workspace, so KubeSphere writes no isolation policy here, " +
			"but its NamespaceNetworkPolicies are in force: the namespace admits only their peers; moat isolates it on its own with their allowlists, " +
			"and also admits the namespace itself and what moat serve's --allowed-ingress-namespaces and --allowed-ingress-cidrs admit (moat.dev/group-ingress=false)"},
		{Object: ObjectRef{Kind: "Namespace", Name: "shut"}, Severity: SeverityWarning, Message: "in no workspace, so KubeSphere writes no isolation policy here, " +
			"but its NamespaceNetworkPolicies are in force: the namespace admits only their peers; moat isolates it on its own with their allowlists, " +
			"and also admits the namespace itself and what moat serve's --allowed-ingress-namespaces and --allowed-ingress-cidrs admit (moat.dev/group-ingress=false)"},
		{Object: ObjectRef{Kind: "NamespaceNetworkPolicy", Namespace: "outbound", Name: "np"}, Severity: SeverityError, Message: "namespace outbound is in no workspace, " +
			"where KubeSphere enforces the policy as it is: it restricts the namespace's egress only, and moat restricts egress only in an isolated namespace, " +
			"which would also close its ingress: not carried over; to restrict egress with moat, isolate the namespace and add the ingress it needs"},
	}
	if diff := cmp.Diff(wantProblems, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestConvertWorkspaceWithProjectLabel: with --project-label set to
// KubeSphere's workspace label, moat's group ingress is the workspace
// isolation: no allowlist names the workspace's namespaces.
func TestConvertWorkspaceWithProjectLabel(t *testing.T) {
	result := Convert(Input{
		Namespaces: []*corev1.Namespace{namespace("ws-a", "ws", nil), namespace("ws-b", "ws", map[string]string{IsolateAnnotation: IsolateEnabled})},
		Workspaces: []Workspace{{Name: "ws", NetworkIsolation: true}},
	}, validation.Config{Policy: moatpolicy.Config{ProjectLabel: WorkspaceLabel}})
	if diff := cmp.Diff([]*corev1.Namespace{isolationPatch("ws-a"), alonePatch("ws-b")}, result.Namespaces); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	if len(result.Allowlists) != 0 {
		t.Errorf("allowlists %v, want none", result.Allowlists)
	}
	want := []Problem{{Object: ObjectRef{Kind: "Namespace", Name: "ws-a"}, Severity: SeverityWarning, Message: "isolated at the workspace level (workspace ws): " +
		"moat serve --project-label=kubesphere.io/workspace admits the workspace's namespaces, those that join it later included"}}
	if diff := cmp.Diff(want, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// Another project label does not group by workspace: the allowlist
	// names the workspace's namespaces.
	result = Convert(Input{
		Namespaces: []*corev1.Namespace{namespace("ws-a", "ws", nil), namespace("ws-b", "ws", nil)},
		Workspaces: []Workspace{{Name: "ws", NetworkIsolation: true}},
	}, validation.Config{Policy: moatpolicy.Config{ProjectLabel: "field.cattle.io/projectId"}})
	if len(result.Allowlists) != 2 || result.Allowlists[0].Name != WorkspaceAllowlistName {
		t.Errorf("with another project label: allowlists %v, want %s in each namespace", result.Allowlists, WorkspaceAllowlistName)
	}
}

// TestConvertDNSAllowlistOnce: the DNS allowlist goes with any policy of
// the namespace that has egress rules, whatever the others have.
func TestConvertDNSAllowlistOnce(t *testing.T) {
	egress := &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "a-out"},
		Spec: NamespaceNetworkPolicySpec{Egress: []EgressRule{{To: []Peer{namespacePeer("a")}}}}}
	ingress := &NamespaceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "b-in"},
		Spec: NamespaceNetworkPolicySpec{Ingress: []IngressRule{{From: []Peer{namespacePeer("a")}}}}}
	result := Convert(Input{Namespaces: []*corev1.Namespace{isolatedNamespace("web")}, Policies: []*NamespaceNetworkPolicy{ingress, egress}}, validation.Config{})
	var names []string
	for _, al := range result.Allowlists {
		names = append(names, al.Name)
	}
	if diff := cmp.Diff([]string{"a-out", "b-in", DNSAllowlistName}, names); diff != "" {
		t.Errorf("allowlists (-want +got):\n%s", diff)
	}
}

// TestConvertEgressServiceTargetPort: KubeSphere admits an egress Service
// peer on the Service's ports, moat on its target ports: reported.
func TestConvertEgressServiceTargetPort(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "moved"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "pg"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	np := policy(NamespaceNetworkPolicySpec{Egress: []EgressRule{{To: []Peer{{Service: &ServiceSelector{Namespace: "db", Name: "moved"}}}}}})
	result := Convert(Input{Namespaces: []*corev1.Namespace{isolatedNamespace("web")}, Services: []*corev1.Service{svc}, Policies: []*NamespaceNetworkPolicy{np}}, validation.Config{})
	want := []Problem{{Object: npRef, Field: egress0.Child("to").Index(0).Child("service").String(), Severity: SeverityWarning,
		Message: "Service db/moved port 80 goes to target port 8080: KubeSphere's policy admitted port 80 on the pods, moat admits the target port that the Service really uses"}}
	if diff := cmp.Diff(want, result.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
