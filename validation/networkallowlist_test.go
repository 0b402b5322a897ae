package validation

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// validAllowlist is the seed's example: demo-project-1 lets demo-project-2
// and an external client in, and reaches demo-project-2's nginx, its own api
// Service and an external server.
//
//	spec.ingress[0].from[0]  namespace demo-project-2
//	spec.ingress[0].from[1]  ipBlock 192.168.1.1/32
//	spec.ingress[0].ports[0] TCP 80
//	spec.egress[0].to[0]     service demo-project-2/nginx
//	spec.egress[0].to[1]     ipBlock 10.1.0.1/32
//	spec.egress[0].ports[0]  TCP 80
//	spec.egress[1].to[0]     service api (same namespace)
//	spec.egress[1].ports[0]  port http (protocol unset: TCP)
//	spec.egress[1].ports[1]  UDP 8000-8080
func validAllowlist() *v1alpha1.NetworkAllowlist {
	tcp80 := v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))}
	return &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "web"},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{{
				From: []v1alpha1.Peer{
					{Namespace: "demo-project-2"},
					{IPBlock: &v1alpha1.IPBlock{CIDR: "192.168.1.1/32"}},
				},
				Ports: []v1alpha1.Port{tcp80},
			}},
			Egress: []v1alpha1.EgressRule{
				{
					To: []v1alpha1.Peer{
						{Service: &v1alpha1.ServiceReference{Namespace: "demo-project-2", Name: "nginx"}},
						{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32", Except: []string{}}},
					},
					Ports: []v1alpha1.Port{tcp80},
				},
				{
					To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Name: "api"}}},
					Ports: []v1alpha1.Port{
						{Port: ptr.To(intstr.FromString("http"))},
						{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(8000)), EndPort: ptr.To[int32](8080)},
					},
				},
			},
		},
	}
}

// validCluster holds everything validAllowlist refers to.
func validCluster() *mapCluster {
	return newCluster(
		namespace("demo-project-1", "true"),
		namespace("demo-project-2", "true"),
		service("demo-project-2", "nginx", nil),
		service("demo-project-1", "api", nil),
	)
}

const (
	dns1123Detail = `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`
	dns1035Detail = `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`
)

var (
	ingress0 = field.NewPath("spec", "ingress").Index(0)
	egress0  = field.NewPath("spec", "egress").Index(0)
	egress1  = field.NewPath("spec", "egress").Index(1)
)

type allowlistCase struct {
	name    string
	tweak   func(*v1alpha1.NetworkAllowlist)
	cluster func(*mapCluster) // changes validCluster; nil keeps it
	cfg     Config

	wantErrs     field.ErrorList
	wantWarnings []string
}

func runAllowlistCases(t *testing.T, cases []allowlistCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nal := validAllowlist()
			if tc.tweak != nil {
				tc.tweak(nal)
			}
			cluster := validCluster()
			if tc.cluster != nil {
				tc.cluster(cluster)
			}
			errs, warnings := ValidateNetworkAllowlist(nal, tc.cfg, cluster)
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}
}

func TestValidateNetworkAllowlistValid(t *testing.T) { runAllowlistCases(t, allowlistValidCases()) }

// allowlistValidCases are table cases and fuzz seeds.
func allowlistValidCases() []allowlistCase {
	return []allowlistCase{
		{name: "seed example"},
		{name: "empty spec", tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec = v1alpha1.NetworkAllowlistSpec{} }},
		{name: "SCTP with --sctp-enabled", cfg: Config{SCTPEnabled: true}, tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Egress[0].Ports[0].Protocol = ptr.To(corev1.ProtocolSCTP)
		}},
		{name: "ingress from own namespace is not checked for egress", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].From[0].Namespace = "demo-project-1"
		}, cluster: func(c *mapCluster) {
			c.add(egressAllowlist("demo-project-1", v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}))
		}},
		{name: "ingress ipBlock next to Local and ClusterIP Services", cluster: func(c *mapCluster) {
			c.add(service("demo-project-1", "lb", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}))
		}},
	}
}

func TestValidateNetworkAllowlistRejectsPeers(t *testing.T) {
	runAllowlistCases(t, allowlistPeerCases())
}

// allowlistPeerCases are table cases and fuzz seeds.
func allowlistPeerCases() []allowlistCase {
	return []allowlistCase{
		{
			name:  "peer with no kind",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[0].To[1] = v1alpha1.Peer{} },
			wantErrs: field.ErrorList{
				field.Required(egress0.Child("to").Index(1), "set exactly one of namespace, service, ipBlock, project or kubernetesAPI"),
			},
		},
		{
			name: "peer with namespace and ipBlock",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[1].Namespace = "demo-project-2"
			},
			wantErrs: field.ErrorList{
				field.Forbidden(egress0.Child("to").Index(1), "sets namespace and ipBlock: a peer must set exactly one of namespace, service, ipBlock, project or kubernetesAPI; write one peer per kind"),
			},
		},
		{
			name: "peer with all three kinds, each of them broken",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[0] = v1alpha1.Peer{
					Namespace: "Demo_Project",
					Service:   &v1alpha1.ServiceReference{Name: "1nginx"},
					IPBlock:   &v1alpha1.IPBlock{CIDR: "10.1.0.1/24"},
				}
			},
			wantErrs: field.ErrorList{
				field.Forbidden(egress0.Child("to").Index(0), "sets namespace and service and ipBlock: a peer must set exactly one of namespace, service, ipBlock, project or kubernetesAPI; write one peer per kind"),
				field.Invalid(egress0.Child("to").Index(0).Child("namespace"), "Demo_Project", dns1123Detail),
				field.Invalid(egress0.Child("to").Index(0).Child("service", "name"), "1nginx", dns1035Detail),
				field.Invalid(egress0.Child("to").Index(0).Child("ipBlock", "cidr"), "10.1.0.1/24",
					"must not have host bits set: use the network address 10.1.0.0/24, or 10.1.0.1/32 for the single address 10.1.0.1"),
			},
		},
		{
			name:  "invalid namespace name",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Ingress[0].From[0].Namespace = "demo.project" },
			wantErrs: field.ErrorList{
				field.Invalid(ingress0.Child("from").Index(0).Child("namespace"), "demo.project", "must not contain dots"),
			},
		},
		{
			name:  "invalid Service name",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[0].To[0].Service.Name = "1nginx" },
			wantErrs: field.ErrorList{
				field.Invalid(egress0.Child("to").Index(0).Child("service", "name"), "1nginx", dns1035Detail),
			},
		},
		{
			name:  "missing Service name",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[0].To[0].Service.Name = "" },
			wantErrs: field.ErrorList{
				field.Required(egress0.Child("to").Index(0).Child("service", "name"), "name the Service, e.g. nginx"),
			},
		},
		{
			name:  "invalid Service namespace",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[0].To[0].Service.Namespace = "-demo" },
			wantErrs: field.ErrorList{
				field.Invalid(egress0.Child("to").Index(0).Child("service", "namespace"), "-demo", dns1123Detail),
			},
		},
		{
			name:  "empty from",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Ingress[0].From = nil },
			wantErrs: field.ErrorList{
				field.Required(ingress0.Child("from"), "list at least one peer (an empty list would mean everyone); to allow every address, add an ipBlock peer with cidr 0.0.0.0/0 (and one with ::/0)"),
			},
		},
		{
			name:  "empty to",
			tweak: func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[1].To = []v1alpha1.Peer{} },
			wantErrs: field.ErrorList{
				field.Required(egress1.Child("to"), "list at least one peer (an empty list would mean everyone); to allow every address, add an ipBlock peer with cidr 0.0.0.0/0 (and one with ::/0)"),
			},
		},
		{
			name: "invalid except in an ipBlock peer",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[1].IPBlock = &v1alpha1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.2.0/24", "10.2.0.0/24"}}
			},
			wantErrs: field.ErrorList{
				field.Invalid(egress0.Child("to").Index(1).Child("ipBlock", "except").Index(1), "10.2.0.0/24",
					"lies outside cidr 10.1.0.0/16: except can only remove addresses inside cidr; remove this entry or widen cidr"),
			},
		},
		{
			name: "too many rules, peers and ports",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				for len(n.Spec.Egress) < 65 {
					n.Spec.Egress = append(n.Spec.Egress, n.Spec.Egress[1])
				}
				n.Spec.Egress[0].To = nil
				n.Spec.Egress[0].Ports = nil
				for i := range 65 {
					n.Spec.Egress[0].To = append(n.Spec.Egress[0].To, v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: fmt.Sprintf("10.1.0.%d/32", i)}})
					n.Spec.Egress[0].Ports = append(n.Spec.Egress[0].Ports, v1alpha1.Port{Port: ptr.To(intstr.FromInt32(int32(1000 + i)))})
				}
			},
			wantErrs: field.ErrorList{
				field.TooMany(field.NewPath("spec", "egress"), 65, 64),
				field.TooMany(egress0.Child("to"), 65, 64),
				field.TooMany(egress0.Child("ports"), 65, 64),
			},
		},
	}
}

func TestValidateNetworkAllowlistPorts(t *testing.T) { runAllowlistCases(t, allowlistPortCases()) }

// allowlistPortCases are table cases and fuzz seeds.
func allowlistPortCases() []allowlistCase {
	port0 := egress0.Child("ports").Index(0)
	setPort := func(p v1alpha1.Port) func(*v1alpha1.NetworkAllowlist) {
		return func(n *v1alpha1.NetworkAllowlist) { n.Spec.Egress[0].Ports[0] = p }
	}
	num := func(n int32) *intstr.IntOrString { return ptr.To(intstr.FromInt32(n)) }
	name := func(s string) *intstr.IntOrString { return ptr.To(intstr.FromString(s)) }
	proto := func(p string) *corev1.Protocol { return ptr.To(corev1.Protocol(p)) }
	const (
		rangeDetail = "must be between 1 and 65535, inclusive"
		sctpDetail  = "SCTP is turned off because not every network plugin supports it: once the cluster's network plugin supports SCTP, " +
			"turn it on with `moat serve --sctp-enabled` (and `moat validate --sctp-enabled`), or use TCP or UDP"
	)
	return []allowlistCase{
		{name: "every port of every protocol", tweak: setPort(v1alpha1.Port{})},
		{name: "full range", tweak: setPort(v1alpha1.Port{Port: num(1), EndPort: ptr.To[int32](65535)})},
		{name: "endPort equal to port", tweak: setPort(v1alpha1.Port{Port: num(443), EndPort: ptr.To[int32](443)})},
		{name: "15-character port name", tweak: setPort(v1alpha1.Port{Port: name("abcdefghijklmn1")})},
		{name: "port 0", tweak: setPort(v1alpha1.Port{Port: num(0)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), int32(0), rangeDetail)}},
		{name: "negative port", tweak: setPort(v1alpha1.Port{Port: num(-80)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), int32(-80), rangeDetail)}},
		{name: "port 65536", tweak: setPort(v1alpha1.Port{Port: num(65536)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), int32(65536), rangeDetail)}},
		{name: "upper-case port name", tweak: setPort(v1alpha1.Port{Port: name("HTTP")}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), "HTTP",
				"a named port must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-); must contain at least one letter (a-z)")}},
		{name: "port name too long", tweak: setPort(v1alpha1.Port{Port: name("abcdefghijklmnop")}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), "abcdefghijklmnop", "a named port must be no more than 15 characters")}},
		{name: "port name with leading hyphen", tweak: setPort(v1alpha1.Port{Port: name("-http")}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), "-http", "a named port must not begin or end with a hyphen")}},
		{name: "quoted port number", tweak: setPort(v1alpha1.Port{Port: name("80")}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), "80",
				"is a quoted number: write the port number without quotes, or use a port name such as http")}},
		{name: "empty port name", tweak: setPort(v1alpha1.Port{Port: name("")}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("port"), "",
				"a named port must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-); must contain at least one letter (a-z)")}},
		{name: "endPort below port", tweak: setPort(v1alpha1.Port{Port: num(8080), EndPort: ptr.To[int32](8000)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("endPort"), int32(8000), "must not be below port 8080: the range is port..endPort")}},
		{name: "endPort above 65535", tweak: setPort(v1alpha1.Port{Port: num(8080), EndPort: ptr.To[int32](70000)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("endPort"), int32(70000), rangeDetail)}},
		{name: "endPort with a named port", tweak: setPort(v1alpha1.Port{Port: name("http"), EndPort: ptr.To[int32](8080)}),
			wantErrs: field.ErrorList{field.Invalid(port0.Child("endPort"), int32(8080),
				"must not be set with a named port: use a port number as the start of the range, or remove endPort")}},
		{name: "endPort without port", tweak: setPort(v1alpha1.Port{EndPort: ptr.To[int32](8080)}),
			wantErrs: field.ErrorList{field.Required(port0.Child("port"),
				"endPort is set, so port must be set to the first port of the range; or remove endPort")}},
		{name: "unsupported protocol", tweak: setPort(v1alpha1.Port{Protocol: proto("ICMP"), Port: num(80)}),
			wantErrs: field.ErrorList{field.NotSupported(port0.Child("protocol"), corev1.Protocol("ICMP"), supportedProtocols)}},
		{name: "lower-case protocol", tweak: setPort(v1alpha1.Port{Protocol: proto("tcp")}),
			wantErrs: field.ErrorList{field.NotSupported(port0.Child("protocol"), corev1.Protocol("tcp"), supportedProtocols)}},
		{name: "SCTP without --sctp-enabled", tweak: setPort(v1alpha1.Port{Protocol: proto("SCTP"), Port: num(9999)}),
			wantErrs: field.ErrorList{field.Forbidden(port0.Child("protocol"), sctpDetail)}},
		{name: "SCTP with --sctp-enabled", cfg: Config{SCTPEnabled: true}, tweak: setPort(v1alpha1.Port{Protocol: proto("SCTP"), Port: num(9999)})},
		{name: "ingress port, several defects", tweak: func(n *v1alpha1.NetworkAllowlist) {
			n.Spec.Ingress[0].Ports = append(n.Spec.Ingress[0].Ports, v1alpha1.Port{Protocol: proto("SCTP"), Port: num(0), EndPort: ptr.To[int32](0)})
		}, wantErrs: field.ErrorList{
			field.Forbidden(ingress0.Child("ports").Index(1).Child("protocol"), sctpDetail),
			field.Invalid(ingress0.Child("ports").Index(1).Child("port"), int32(0), rangeDetail),
			field.Invalid(ingress0.Child("ports").Index(1).Child("endPort"), int32(0), rangeDetail),
		}},
	}
}

// egressAllowlist returns an allowlist in ns with one egress rule to peers.
func egressAllowlist(ns string, peers ...v1alpha1.Peer) *v1alpha1.NetworkAllowlist {
	return &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "out"},
		Spec:       v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{To: peers}}},
	}
}

func TestValidateNetworkAllowlistLookups(t *testing.T) { runAllowlistCases(t, allowlistLookupCases()) }

// allowlistLookupCases are table cases and fuzz seeds.
func allowlistLookupCases() []allowlistCase {
	nginxPath := egress0.Child("to").Index(0).Child("service")
	apiPath := egress1.Child("to").Index(0).Child("service")
	ingressIPBlockPath := ingress0.Child("from").Index(1).Child("ipBlock")
	const peerEgressWarning = "spec.ingress[0].from[0].namespace: namespace demo-project-2 restricts its egress and none of its egress rules reaches demo-project-1, " +
		"so its pods still cannot connect: add an egress rule to namespace demo-project-1 (or to a Service in it) in a NetworkAllowlist of demo-project-2"

	return []allowlistCase{
		{
			name:    "Service without selector",
			cluster: func(c *mapCluster) { c.services["demo-project-2/nginx"].Spec.Selector = nil },
			wantErrs: field.ErrorList{field.Invalid(nginxPath, "demo-project-2/nginx",
				"Service demo-project-2/nginx has no selector: NetworkPolicy cannot select its endpoints; use an ipBlock peer with the endpoint addresses "+
					"(kubectl get endpointslices -n demo-project-2 -l kubernetes.io/service-name=nginx)")},
		},
		{
			name: "Service without selector, namespace defaulted to the allowlist's",
			cluster: func(c *mapCluster) {
				c.services["demo-project-1/api"].Spec.Selector = map[string]string{}
			},
			wantErrs: field.ErrorList{field.Invalid(apiPath, "demo-project-1/api",
				"Service demo-project-1/api has no selector: NetworkPolicy cannot select its endpoints; use an ipBlock peer with the endpoint addresses "+
					"(kubectl get endpointslices -n demo-project-1 -l kubernetes.io/service-name=api)")},
		},
		{
			name: "ExternalName Service",
			cluster: func(c *mapCluster) {
				c.add(service("demo-project-2", "nginx", func(s *corev1.Service) {
					s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "nginx.example.com"}
				}))
			},
			wantErrs: field.ErrorList{field.Invalid(nginxPath, "demo-project-2/nginx",
				"Service demo-project-2/nginx is of type ExternalName (nginx.example.com): NetworkPolicy cannot select its endpoints; "+
					"use an ipBlock peer with the addresses nginx.example.com resolves to")},
		},
		{
			name: "ExternalName Service that kept its selector",
			cluster: func(c *mapCluster) {
				c.services["demo-project-2/nginx"].Spec.Type = corev1.ServiceTypeExternalName
				c.services["demo-project-2/nginx"].Spec.ExternalName = "nginx.example.com"
			},
			wantErrs: field.ErrorList{field.Invalid(nginxPath, "demo-project-2/nginx",
				"Service demo-project-2/nginx is of type ExternalName (nginx.example.com): NetworkPolicy cannot select its endpoints; "+
					"use an ipBlock peer with the addresses nginx.example.com resolves to")},
		},
		{
			name:    "Service does not exist yet",
			cluster: func(c *mapCluster) { delete(c.services, "demo-project-2/nginx") },
			wantWarnings: []string{
				"spec.egress[0].to[0].service: Service demo-project-2/nginx does not exist yet; the peer allows nothing until it is created (the Ready condition reports ServiceNotFound meanwhile)",
			},
		},
		{
			name: "Service in the allowlist's namespace does not exist yet",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[1].To[0].Service.Name = "nginx"
			},
			wantWarnings: []string{
				"spec.egress[1].to[0].service: Service demo-project-1/nginx does not exist yet; the peer allows nothing until it is created (the Ready condition reports ServiceNotFound meanwhile)",
			},
		},
		{
			name: "Service and its namespace do not exist yet",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[0].Service.Namespace = "demo-project-3"
			},
			wantWarnings: []string{
				"spec.egress[0].to[0].service: Service demo-project-3/nginx does not exist yet and neither does namespace demo-project-3; the peer allows nothing until both are created, and whoever creates namespace demo-project-3 chooses the pods it selects: create the namespace (or correct the name)",
			},
		},
		{
			name: "egress namespace peer does not exist yet",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[0] = v1alpha1.Peer{Namespace: "demo-project-9"}
			},
			wantWarnings: []string{
				"spec.egress[0].to[0].namespace: namespace demo-project-9 does not exist yet: whoever creates a namespace of that name receives this project's traffic through this rule; create it (or correct the name) before relying on the rule",
			},
		},
		{
			name:    "namespace peer does not exist yet",
			cluster: func(c *mapCluster) { delete(c.namespaces, "demo-project-2") },
			wantWarnings: []string{
				"spec.ingress[0].from[0].namespace: namespace demo-project-2 does not exist yet: whoever creates a namespace of that name is admitted into this project by this rule; create it (or correct the name) before relying on the rule",
			},
		},
		{
			name:    "lookups fail",
			cluster: func(c *mapCluster) { c.err = errors.New("cache not synced") },
			wantWarnings: []string{
				"spec.ingress[0].from[0].namespace: could not look up namespace demo-project-2, so it was not checked: cache not synced",
				"spec.ingress[0].from[1].ipBlock: could not list the Services of namespace demo-project-1, so their externalTrafficPolicy was not checked: cache not synced",
				"spec.egress[0].to[0].service: could not look up Service demo-project-2/nginx, so it was not checked: cache not synced",
				"spec.egress[1].to[0].service: could not look up Service demo-project-1/api, so it was not checked: cache not synced",
			},
		},
		{
			name: "ingress ipBlock with NodePort and LoadBalancer Services on externalTrafficPolicy Cluster",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Ingress = append(n.Spec.Ingress, v1alpha1.IngressRule{From: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}}}})
			},
			cluster: func(c *mapCluster) {
				c.add(service("demo-project-1", "web", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }))
				c.add(service("demo-project-1", "lb", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				}))
				c.add(service("demo-project-1", "local", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				}))
				c.add(service("demo-project-2", "elsewhere", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }))
			},
			wantWarnings: []string{
				ingressIPBlockPath.String() + ": Services lb (LoadBalancer), web (NodePort) in namespace demo-project-1 keep externalTrafficPolicy Cluster, " +
					"so clients that come in through a node arrive with a node's address and this ipBlock does not match them: " +
					"set spec.externalTrafficPolicy: Local on the Service to keep the client's source address",
				"spec.ingress[1].from[0].ipBlock: Services lb (LoadBalancer), web (NodePort) in namespace demo-project-1 keep externalTrafficPolicy Cluster, " +
					"so clients that come in through a node arrive with a node's address and this ipBlock does not match them: " +
					"set spec.externalTrafficPolicy: Local on the Service to keep the client's source address",
			},
		},
		{
			name: "ingress ipBlock with one NodePort Service; egress ipBlocks are not concerned",
			cluster: func(c *mapCluster) {
				c.add(service("demo-project-1", "web", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }))
			},
			wantWarnings: []string{
				ingressIPBlockPath.String() + ": Service web (NodePort) in namespace demo-project-1 keeps externalTrafficPolicy Cluster, " +
					"so clients that come in through a node arrive with a node's address and this ipBlock does not match them: " +
					"set spec.externalTrafficPolicy: Local on the Service to keep the client's source address",
			},
		},
		{
			name: "ingress from a project whose egress rules do not reach this one",
			cluster: func(c *mapCluster) {
				c.add(egressAllowlist("demo-project-2",
					v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}},
					v1alpha1.Peer{Namespace: "demo-project-3"},
					v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Name: "db"}}, // demo-project-2/db
				))
			},
			wantWarnings: []string{peerEgressWarning},
		},
		{
			name: "ingress from a project with an egress rule to this namespace",
			cluster: func(c *mapCluster) {
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}))
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{Namespace: "demo-project-1"}))
			},
		},
		{
			name: "ingress from a project with an egress rule to a Service in this namespace",
			cluster: func(c *mapCluster) {
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: "demo-project-1", Name: "api"}}))
			},
		},
		{
			name: "ingress from a project whose egress is open",
			cluster: func(c *mapCluster) {
				c.add(&v1alpha1.NetworkAllowlist{
					ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-2", Name: "in"},
					Spec:       v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "demo-project-3"}}}}},
				})
			},
		},
		{
			name: "ingress from a project that is not isolated",
			cluster: func(c *mapCluster) {
				c.namespaces["demo-project-2"] = namespace("demo-project-2", "false")
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}))
			},
		},
		{
			name: "egress namespace peers are not checked for the peer's egress",
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To[1] = v1alpha1.Peer{Namespace: "demo-project-2"}
				n.Spec.Ingress[0].From[0] = v1alpha1.Peer{Namespace: "demo-project-1"}
			},
			cluster: func(c *mapCluster) {
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}))
			},
		},
		{
			name: "every warning at once, with pod and service networks configured",
			cfg: Config{
				PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
				ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
			},
			tweak: func(n *v1alpha1.NetworkAllowlist) {
				n.Spec.Egress[0].To = append(n.Spec.Egress[0].To,
					v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.244.1.0/24"}},
					v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.96.0.10/32"}},
					v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}},
				)
			},
			cluster: func(c *mapCluster) {
				delete(c.services, "demo-project-2/nginx")
				c.add(egressAllowlist("demo-project-2", v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.1.0.1/32"}}))
			},
			wantWarnings: []string{
				peerEgressWarning,
				"spec.egress[0].to[0].service: Service demo-project-2/nginx does not exist yet; the peer allows nothing until it is created (the Ready condition reports ServiceNotFound meanwhile)",
				"spec.egress[0].to[2].ipBlock.cidr: 10.244.1.0/24 overlaps the cluster's pod network 10.244.0.0/16: pod IPs change as pods come and go; use a namespace or service peer to reach pods",
				"spec.egress[0].to[3].ipBlock.cidr: 10.96.0.10/32 overlaps the cluster's Service network 10.96.0.0/12: NetworkPolicy sees the pod IP behind a Service's cluster IP, never the cluster IP; use a service peer instead",
				"spec.egress[0].to[4].ipBlock.cidr: 0.0.0.0/0 matches every IPv4 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
			},
		},
	}
}

func TestValidateNetworkAllowlistWithoutLookups(t *testing.T) {
	cases := []struct {
		name         string
		nal          *v1alpha1.NetworkAllowlist
		cluster      Cluster
		wantErrs     field.ErrorList
		wantWarnings []string
	}{
		{name: "nil allowlist", nal: nil, cluster: validCluster()},
		{name: "nil cluster skips every lookup", nal: func() *v1alpha1.NetworkAllowlist {
			n := validAllowlist()
			n.Spec.Egress[0].To[0].Service.Namespace = "nowhere"
			n.Spec.Ingress[0].From[0].Namespace = "nowhere"
			return n
		}()},
		{name: "nil cluster still checks everything else", nal: func() *v1alpha1.NetworkAllowlist {
			n := validAllowlist()
			n.Spec.Egress[0].To[1].IPBlock.CIDR = "::/0"
			n.Spec.Egress[1].Ports[0].Protocol = ptr.To(corev1.ProtocolSCTP)
			n.Spec.Egress[1].To[0].Service.Name = "API"
			return n
		}(), wantErrs: field.ErrorList{
			field.Invalid(egress1.Child("to").Index(0).Child("service", "name"), "API", dns1035Detail),
			field.Forbidden(egress1.Child("ports").Index(0).Child("protocol"), sctpDisabledDetail),
		}, wantWarnings: []string{
			"spec.egress[0].to[1].ipBlock.cidr: ::/0 matches every IPv6 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead",
		}},
		{name: "allowlist without a namespace skips lookups that need it", cluster: newCluster(), nal: func() *v1alpha1.NetworkAllowlist {
			n := validAllowlist()
			n.Namespace = ""
			n.Spec.Egress[0].To[0].Service.Namespace = ""
			return n
		}(), wantWarnings: []string{
			"spec.ingress[0].from[0].namespace: namespace demo-project-2 does not exist yet: whoever creates a namespace of that name is admitted into this project by this rule; create it (or correct the name) before relying on the rule",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs, warnings := ValidateNetworkAllowlist(tc.nal, Config{}, tc.cluster)
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}
}

// BenchmarkValidateNetworkAllowlist10Rules measures the webhook's cost for a
// typical allowlist: ten egress rules, each to a Service found in the cache.
func BenchmarkValidateNetworkAllowlist10Rules(b *testing.B) {
	cluster := validCluster()
	nal := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "bench"}}
	for i := range 10 {
		name := fmt.Sprintf("svc-%d", i)
		cluster.add(service("demo-project-2", name, nil))
		nal.Spec.Egress = append(nal.Spec.Egress, v1alpha1.EgressRule{
			To:    []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "demo-project-2", Name: name}}},
			Ports: []v1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))}},
		})
	}
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	if errs, warnings := ValidateNetworkAllowlist(nal, cfg, cluster); len(errs) > 0 || len(warnings) > 0 {
		b.Fatalf("benchmark allowlist is not clean: %v %v", errs, warnings)
	}
	b.ReportAllocs()
	for b.Loop() {
		ValidateNetworkAllowlist(nal, cfg, cluster)
	}
}

// TestValidatePeer: one peer, at the caller's path, with the rules of
// ValidateNetworkAllowlist that need no lookup.
func TestValidatePeer(t *testing.T) {
	at := field.NewPath("spec", "egress").Index(3).Child("to").Index(2)
	for _, tc := range []struct {
		name         string
		peer         v1alpha1.Peer
		ingress      bool
		wantErrs     field.ErrorList
		wantWarnings []string
	}{
		{name: "valid namespace", peer: v1alpha1.Peer{Namespace: "demo-project-2"}},
		{name: "a Service is not looked up", peer: v1alpha1.Peer{Service: &v1alpha1.ServiceReference{Namespace: "nowhere", Name: "nothing"}}},
		{name: "none", wantErrs: field.ErrorList{field.Required(at, "set exactly one of namespace, service, ipBlock, project or kubernetesAPI")}},
		{name: "invalid namespace", peer: v1alpha1.Peer{Namespace: "Demo"}, wantErrs: field.ErrorList{
			field.Invalid(at.Child("namespace"), "Demo", dns1123Detail)}},
		{name: "invalid except", peer: v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "10.0.0.0/24", Except: []string{"10.0.0.0/16"}}}, wantErrs: field.ErrorList{
			field.Invalid(at.Child("ipBlock", "except").Index(0), "10.0.0.0/16", "is wider than cidr 10.0.0.0/24: an except entry must be a smaller network inside cidr")}},
		{name: "whole address space warns", peer: v1alpha1.Peer{IPBlock: &v1alpha1.IPBlock{CIDR: "0.0.0.0/0"}}, wantWarnings: []string{
			at.Child("ipBlock", "cidr").String() + ": 0.0.0.0/0 matches every IPv4 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead"}},
		{name: "kubernetesAPI in egress", peer: v1alpha1.Peer{KubernetesAPI: &v1alpha1.KubernetesAPIPeer{}}},
		{name: "kubernetesAPI in ingress", peer: v1alpha1.Peer{KubernetesAPI: &v1alpha1.KubernetesAPIPeer{}}, ingress: true, wantErrs: field.ErrorList{
			field.Forbidden(at.Child("kubernetesAPI"), "kubernetesAPI is an egress peer: the API server is reached from the project, it does not connect into it; move it to an egress rule")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, warnings := ValidatePeer(&tc.peer, tc.ingress, at, Config{})
			checkFindings(t, errs, warnings, tc.wantErrs, tc.wantWarnings)
		})
	}
}

// TestValidateNetworkAllowlistAtLimits: exactly MaxRules rules of MaxPeers
// peers and MaxPorts ports are accepted.
func TestValidateNetworkAllowlistAtLimits(t *testing.T) {
	var peers []v1alpha1.Peer
	for i := range v1alpha1.MaxPeers {
		peers = append(peers, v1alpha1.Peer{Namespace: fmt.Sprintf("ns-%d", i)})
	}
	var ports []v1alpha1.Port
	for i := range v1alpha1.MaxPorts {
		ports = append(ports, v1alpha1.Port{Port: ptr.To(intstr.FromInt32(int32(8000 + i)))})
	}
	nal := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "full"}}
	for range v1alpha1.MaxRules {
		nal.Spec.Ingress = append(nal.Spec.Ingress, v1alpha1.IngressRule{From: peers, Ports: ports})
		nal.Spec.Egress = append(nal.Spec.Egress, v1alpha1.EgressRule{To: peers, Ports: ports})
	}
	if errs, _ := ValidateNetworkAllowlist(nal, Config{}, nil); len(errs) != 0 {
		t.Errorf("at the limits: %v", errs[:min(len(errs), 3)])
	}
}
