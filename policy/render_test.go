package policy

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

type renderCase struct {
	name       string
	ns         *corev1.Namespace
	allowlists []*v1alpha1.NetworkAllowlist
	services   Services
	cfg        Config
	// nodes and apiServer are Input.NodeAddresses and Input.APIServer.
	nodes     []netip.Addr
	apiServer []Endpoints
	want      Result
}

func TestRenderIsolation(t *testing.T) {
	web := allowlist("web", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))},
	})
	db := allowlist("db", v1alpha1.NetworkAllowlistSpec{
		Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")))},
	})
	disabled := func(ns string) AllowlistResult {
		return AllowlistResult{Problems: []Problem{{
			Reason:  "IsolationDisabled",
			Message: `namespace "` + ns + `" is not isolated, so no NetworkPolicy is generated; label it moat.dev/isolated=true to enforce this allowlist`,
		}}}
	}
	runCases(t, []renderCase{{
		name:       "label absent",
		ns:         namespace("demo-project-1", nil),
		allowlists: []*v1alpha1.NetworkAllowlist{web, db},
		services:   servicesOf(kubeDNS()),
		cfg:        dnsConfig(),
		want: Result{Allowlists: map[string]AllowlistResult{
			"web": disabled("demo-project-1"),
			"db":  disabled("demo-project-1"),
		}},
	}, {
		name:       "label false",
		ns:         namespace("demo-project-1", map[string]string{"moat.dev/isolated": "false"}),
		allowlists: []*v1alpha1.NetworkAllowlist{web},
		cfg:        Config{AllowedIngressNamespaces: []string{"monitoring"}},
		want:       Result{Allowlists: map[string]AllowlistResult{"web": disabled("demo-project-1")}},
	}, {
		name:       "label with another value is not isolation",
		ns:         namespace("demo-project-1", map[string]string{"moat.dev/isolated": "True"}),
		allowlists: []*v1alpha1.NetworkAllowlist{web},
		want:       Result{Allowlists: map[string]AllowlistResult{"web": disabled("demo-project-1")}},
	}, {
		name:       "no namespace",
		allowlists: []*v1alpha1.NetworkAllowlist{web},
		want: Result{Allowlists: map[string]AllowlistResult{"web": {Problems: []Problem{{
			Reason:  "IsolationDisabled",
			Message: "the namespace is not isolated, so no NetworkPolicy is generated; label it moat.dev/isolated=true to enforce this allowlist",
		}}}}},
	}, {
		name: "isolation off makes no Service lookups",
		ns:   namespace("demo-project-1", nil),
		allowlists: []*v1alpha1.NetworkAllowlist{allowlist("svc", v1alpha1.NetworkAllowlistSpec{
			Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx")))},
		})},
		services: failingServices{},
		cfg:      dnsConfig(),
		want:     Result{Allowlists: map[string]AllowlistResult{"svc": disabled("demo-project-1")}},
	}, {
		name: "isolation on without allowlists: ingress isolated, egress open",
		ns:   isolatedNamespace("demo-project-1"),
		cfg:  dnsConfig(),
		want: Result{
			Policies:   []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{},
		},
	}, {
		name: "allowed ingress namespaces and CIDRs, sorted and without duplicates",
		ns:   isolatedNamespace("demo-project-1"),
		cfg: Config{
			AllowedIngressNamespaces: []string{"monitoring", "gateway", "monitoring", ""},
			AllowedIngressCIDRs:      []string{"192.168.0.0/16", "10.0.0.0/8", "2001:db8::/64", "10.0.0.0/8"},
		},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1",
				npNamespace("gateway"), npNamespace("monitoring"),
				npCIDR("10.0.0.0/8"), npCIDR("192.168.0.0/16"), npCIDR("2001:db8::/64"),
			)},
			Allowlists: map[string]AllowlistResult{},
		},
	}})
}

func TestRenderDefaultEgress(t *testing.T) {
	ingressOnlyAllowlist := allowlist("web", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))},
	})
	webPolicy := wantAllowlist("web", []networkingv1.NetworkPolicyIngressRule{{From: npPeers(npNamespace("demo-project-2"))}}, nil, ingressOnly...)
	egressAllowlist := allowlist("ext", v1alpha1.NetworkAllowlistSpec{
		Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")), port(corev1.ProtocolTCP, 80))},
	})
	extPolicy := wantAllowlist("ext", nil, []networkingv1.NetworkPolicyEgressRule{{
		To: npPeers(npCIDR("10.1.0.1/32")), Ports: npPorts(npPort(corev1.ProtocolTCP, 80)),
	}}, egressOnly...)
	namedDNS := service("kube-system", "kube-dns", map[string]string{"k8s-app": "coredns"},
		svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromString("dns")),
		svcPort("dns-tcp", "", 53, intstr.FromString("dns-tcp")),
		svcPort("dns-again", corev1.ProtocolUDP, 5353, intstr.FromString("dns")),
	)
	otherDNS := types.NamespacedName{Namespace: "dns-system", Name: "coredns"}
	runCases(t, []renderCase{{
		name:       "ingress rules alone leave egress open",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{ingressOnlyAllowlist},
		services:   servicesOf(kubeDNS()),
		cfg:        dnsConfig(),
		want: Result{
			Policies:   []networkingv1.NetworkPolicy{webPolicy, wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{"web": applied("web")},
		},
	}, {
		name:       "the first egress rule closes egress and opens DNS on the Service's target ports",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{ingressOnlyAllowlist, egressAllowlist},
		services:   servicesOf(kubeDNS()),
		cfg:        dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				webPolicy,
				wantDefaultEgress("demo-project-1", kubeDNSRule()),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"web": applied("web"), "ext": applied("ext")},
		},
	}, {
		name:       "DNS Service with named target ports, defaulted protocol and duplicate targets",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		services:   servicesOf(namedDNS),
		cfg:        dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", &networkingv1.NetworkPolicyEgressRule{
					To:    npPeers(npPods("kube-system", map[string]string{"k8s-app": "coredns"})),
					Ports: npPorts(npNamedPort(corev1.ProtocolUDP, "dns"), npNamedPort(corev1.ProtocolTCP, "dns-tcp")),
				}),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}, {
		name:       "DNS Service missing: conventional kube-dns selector on UDP and TCP 53",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		services:   servicesOf(),
		cfg:        Config{DNSService: &otherDNS},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", fallbackDNSRule("dns-system")),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}, {
		name:       "DNS Service without selector: fallback",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		services:   servicesOf(service("kube-system", "kube-dns", nil, svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromInt32(1053)))),
		cfg:        dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", fallbackDNSRule("kube-system")),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}, {
		name:       "DNS Service without ports: its selector on UDP and TCP 53",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		services:   servicesOf(service("kube-system", "kube-dns", map[string]string{"app": "dns"})),
		cfg:        dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", &networkingv1.NetworkPolicyEgressRule{
					To:    npPeers(npPods("kube-system", map[string]string{"app": "dns"})),
					Ports: npPorts(npPort(corev1.ProtocolUDP, 53), npPort(corev1.ProtocolTCP, 53)),
				}),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}, {
		name:       "DNS exception off",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		services:   failingServices{},
		cfg:        Config{},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", nil),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}, {
		name:       "no Services at all",
		ns:         isolatedNamespace("demo-project-1"),
		allowlists: []*v1alpha1.NetworkAllowlist{egressAllowlist},
		cfg:        dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				extPolicy,
				wantDefaultEgress("demo-project-1", fallbackDNSRule("kube-system")),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"ext": applied("ext")},
		},
	}})
}

// TestRenderEgressFollowsDeclaredRules walks one namespace through adding and
// removing its egress rules: the default egress policy comes with the first
// rule and goes with the last.
func TestRenderEgressFollowsDeclaredRules(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	a := allowlist("a", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(cidrRef("10.1.0.1/32")))}})
	b := allowlist("b", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(nsRef("demo-project-2")))}})
	c := allowlist("c", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}})
	steps := []struct {
		allowlists []*v1alpha1.NetworkAllowlist
		want       []string
	}{
		{nil, []string{"moat-default-ingress"}},
		{[]*v1alpha1.NetworkAllowlist{c}, []string{"moat-allowlist-c", "moat-default-ingress"}},
		{[]*v1alpha1.NetworkAllowlist{c, a}, []string{"moat-allowlist-a", "moat-allowlist-c", "moat-default-egress", "moat-default-ingress"}},
		{[]*v1alpha1.NetworkAllowlist{c, a, b}, []string{"moat-allowlist-a", "moat-allowlist-b", "moat-allowlist-c", "moat-default-egress", "moat-default-ingress"}},
		{[]*v1alpha1.NetworkAllowlist{c, b}, []string{"moat-allowlist-b", "moat-allowlist-c", "moat-default-egress", "moat-default-ingress"}},
		{[]*v1alpha1.NetworkAllowlist{c}, []string{"moat-allowlist-c", "moat-default-ingress"}},
	}
	for i, step := range steps {
		got, err := Render(Input{Namespace: ns, Allowlists: step.allowlists}, servicesOf(kubeDNS()), dnsConfig())
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if diff := cmp.Diff(step.want, policyNames(got)); diff != "" {
			t.Errorf("step %d: policies (-want +got):\n%s", i, diff)
		}
	}
}

func TestRenderServicePeers(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	multi := service("demo-project-2", "multi", map[string]string{"app": "multi"},
		svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(8080)),
		svcPort("https", corev1.ProtocolTCP, 443, intstr.FromString("tls")),
		svcPort("plain", "", 8000, intstr.IntOrString{}),
		svcPort("dns", corev1.ProtocolUDP, 53, intstr.FromInt32(5353)),
		svcPort("alt", corev1.ProtocolTCP, 81, intstr.FromInt32(8080)),
	)
	local := service("demo-project-1", "api", map[string]string{"app": "api"},
		svcPort("grpc", corev1.ProtocolTCP, 9090, intstr.FromInt32(9090)))
	external := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-2", Name: "external"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", Selector: map[string]string{"app": "ignored"}},
	}
	headless := service("demo-project-2", "headless", nil, svcPort("http", corev1.ProtocolTCP, 80, intstr.FromInt32(80)))
	portless := service("demo-project-2", "portless", map[string]string{"app": "portless"})
	services := servicesOf(kubeDNS(), nginx(), multi, local, external, headless, portless)
	multiPods := npPods("demo-project-2", map[string]string{"app": "multi"})
	nginxPods := npPods("demo-project-2", map[string]string{"app": "nginx"})
	withEgress := func(name string, rules ...networkingv1.NetworkPolicyEgressRule) []networkingv1.NetworkPolicy {
		return []networkingv1.NetworkPolicy{
			wantAllowlist(name, nil, rules, egressOnly...),
			wantDefaultEgress("demo-project-1", kubeDNSRule()),
			wantDefaultIngress("demo-project-1"),
		}
	}
	egressAllowlist := func(name string, rules ...v1alpha1.EgressRule) []*v1alpha1.NetworkAllowlist {
		return []*v1alpha1.NetworkAllowlist{allowlist(name, v1alpha1.NetworkAllowlistSpec{Egress: rules})}
	}
	cases := []renderCase{{
		name:       "numeric target port",
		ns:         ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "nginx")), port(corev1.ProtocolTCP, 80))),
		want: Result{
			Policies:   withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(nginxPods), Ports: npPorts(npPort(corev1.ProtocolTCP, 8080))}),
			Allowlists: map[string]AllowlistResult{"svc": applied("svc")},
		},
	}, {
		name: "named target port, Service port named by name, unset target port, protocol defaulted to TCP",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "multi")),
			namedPort(corev1.ProtocolTCP, "https"),
			v1alpha1.Port{Port: ptr.To(intstr.FromInt32(8000))},
			port(corev1.ProtocolUDP, 53),
		)),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(multiPods), Ports: npPorts(
				npNamedPort(corev1.ProtocolTCP, "tls"), npPort(corev1.ProtocolTCP, 8000), npPort(corev1.ProtocolUDP, 5353),
			)}),
			Allowlists: map[string]AllowlistResult{"svc": applied("svc")},
		},
	}, {
		name:       "no ports: every target port of the Service, once each, in Service order",
		ns:         ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "multi")))),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(multiPods), Ports: npPorts(
				npPort(corev1.ProtocolTCP, 8080), npNamedPort(corev1.ProtocolTCP, "tls"), npPort(corev1.ProtocolTCP, 8000), npPort(corev1.ProtocolUDP, 5353),
			)}),
			Allowlists: map[string]AllowlistResult{"svc": applied("svc")},
		},
	}, {
		name: "port range and protocol-only port select Service ports",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "multi")),
			v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80)), EndPort: ptr.To[int32](443)},
			v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolUDP)},
		)),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(multiPods), Ports: npPorts(
				npPort(corev1.ProtocolTCP, 8080), npNamedPort(corev1.ProtocolTCP, "tls"), npPort(corev1.ProtocolUDP, 5353),
			)}),
			Allowlists: map[string]AllowlistResult{"svc": applied("svc")},
		},
	}, {
		name:       "Service namespace defaults to the allowlist's namespace",
		ns:         ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("", "api")))),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{
				To:    npPeers(npPods("demo-project-1", map[string]string{"app": "api"})),
				Ports: npPorts(npPort(corev1.ProtocolTCP, 9090)),
			}),
			Allowlists: map[string]AllowlistResult{"svc": applied("svc")},
		},
	}, {
		name: "rule split by resolved port lists, in order of first appearance",
		ns:   ns,
		allowlists: egressAllowlist("split", egress(peers(
			cidrRef("10.1.0.1/32"),
			svcRef("demo-project-2", "nginx"),
			nsRef("demo-project-3"),
			svcRef("demo-project-2", "multi"),
			cidrRef("10.2.0.0/16", "10.2.1.0/24"),
		), port(corev1.ProtocolTCP, 80))),
		want: Result{
			Policies: withEgress("split",
				networkingv1.NetworkPolicyEgressRule{
					To:    npPeers(npCIDR("10.1.0.1/32"), npNamespace("demo-project-3"), npCIDR("10.2.0.0/16", "10.2.1.0/24")),
					Ports: npPorts(npPort(corev1.ProtocolTCP, 80)),
				},
				networkingv1.NetworkPolicyEgressRule{To: npPeers(nginxPods, multiPods), Ports: npPorts(npPort(corev1.ProtocolTCP, 8080))},
			),
			Allowlists: map[string]AllowlistResult{"split": applied("split")},
		},
	}, {
		name: "missing Service: the peer is dropped, the others stay",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(
			svcRef("demo-project-2", "missing"), cidrRef("10.1.0.1/32"),
		), port(corev1.ProtocolTCP, 80))),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(npCIDR("10.1.0.1/32")), Ports: npPorts(npPort(corev1.ProtocolTCP, 80))}),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServiceNotFound",
				Field:   "spec.egress[0].to[0].service",
				Message: "Service demo-project-2/missing does not exist; the peer is left out until the Service is created",
			}}}},
		},
	}, {
		name: "Service without selector and ExternalName Service are dropped",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(
			svcRef("demo-project-2", "headless"), nsRef("demo-project-3"), svcRef("demo-project-2", "external"),
		))),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(npNamespace("demo-project-3"))}),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServiceSelectorEmpty",
				Field:   "spec.egress[0].to[0].service",
				Message: "Service demo-project-2/headless has no selector, so a NetworkPolicy cannot match its endpoints; the peer is left out: give the Service a selector or use an ipBlock peer",
			}, {
				Reason:  "ServiceSelectorEmpty",
				Field:   "spec.egress[0].to[2].service",
				Message: "Service demo-project-2/external is of type ExternalName and selects no pods, so a NetworkPolicy cannot match it; the peer is left out: use an ipBlock peer with the external address instead",
			}}}},
		},
	}, {
		name: "a port that names no Service port is dropped for that peer",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "nginx"), cidrRef("10.1.0.1/32")),
			port(corev1.ProtocolTCP, 80), port(corev1.ProtocolUDP, 80), namedPort(corev1.ProtocolTCP, "metrics"),
		)),
		want: Result{
			Policies: withEgress("svc",
				networkingv1.NetworkPolicyEgressRule{To: npPeers(nginxPods), Ports: npPorts(npPort(corev1.ProtocolTCP, 8080))},
				networkingv1.NetworkPolicyEgressRule{To: npPeers(npCIDR("10.1.0.1/32")), Ports: npPorts(
					npPort(corev1.ProtocolTCP, 80), npPort(corev1.ProtocolUDP, 80), npNamedPort(corev1.ProtocolTCP, "metrics"),
				)},
			),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].ports[1]",
				Message: `port 80/UDP matches no port of Service demo-project-2/nginx (its ports: 80/TCP "http"); it is left out for this peer`,
			}, {
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].ports[2]",
				Message: `port "metrics"/TCP matches no port of Service demo-project-2/nginx (its ports: 80/TCP "http"); it is left out for this peer`,
			}}}},
		},
	}, {
		name: "no port left: the peer is dropped",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "nginx"), nsRef("demo-project-3")),
			port(corev1.ProtocolTCP, 8080),
		)),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(npNamespace("demo-project-3")), Ports: npPorts(npPort(corev1.ProtocolTCP, 8080))}),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].ports[0]",
				Message: `port 8080/TCP matches no port of Service demo-project-2/nginx (its ports: 80/TCP "http"); it is left out for this peer`,
			}, {
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].to[0].service",
				Message: "none of the rule's ports is a port of Service demo-project-2/nginx; the peer is left out",
			}}}},
		},
	}, {
		name:       "Service without ports and no ports listed: the peer is dropped",
		ns:         ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "portless"), cidrRef("10.1.0.1/32")))),
		want: Result{
			Policies: withEgress("svc", networkingv1.NetworkPolicyEgressRule{To: npPeers(npCIDR("10.1.0.1/32"))}),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].to[0].service",
				Message: "Service demo-project-2/portless declares no ports; the peer is left out: add ports to the Service or list them in the rule with an ipBlock or namespace peer",
			}}}},
		},
	}, {
		name: "ranges and protocols that match no port of a Service without ports",
		ns:   ns,
		allowlists: egressAllowlist("svc", egress(peers(svcRef("demo-project-2", "portless")),
			v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(1000)), EndPort: ptr.To[int32](2000)},
			v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolUDP)},
		)),
		want: Result{
			Policies: withEgress("svc"),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].ports[0]",
				Message: "port range 1000-2000/TCP matches no port of Service demo-project-2/portless (its ports: none); it is left out for this peer",
			}, {
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].ports[1]",
				Message: "every UDP port matches no port of Service demo-project-2/portless (its ports: none); it is left out for this peer",
			}, {
				Reason:  "ServicePortNotFound",
				Field:   "spec.egress[0].to[0].service",
				Message: "none of the rule's ports is a port of Service demo-project-2/portless; the peer is left out",
			}}}},
		},
	}, {
		name: "every peer dropped: the rule is dropped, egress stays closed",
		ns:   ns,
		allowlists: egressAllowlist("svc",
			egress(peers(svcRef("demo-project-2", "missing"), svcRef("demo-project-2", "headless"))),
		),
		want: Result{
			Policies: withEgress("svc"),
			Allowlists: map[string]AllowlistResult{"svc": {Policies: []string{"moat-allowlist-svc"}, Problems: []Problem{{
				Reason:  "ServiceNotFound",
				Field:   "spec.egress[0].to[0].service",
				Message: "Service demo-project-2/missing does not exist; the peer is left out until the Service is created",
			}, {
				Reason:  "ServiceSelectorEmpty",
				Field:   "spec.egress[0].to[1].service",
				Message: "Service demo-project-2/headless has no selector, so a NetworkPolicy cannot match its endpoints; the peer is left out: give the Service a selector or use an ipBlock peer",
			}}}},
		},
	}, {
		name: "ingress from a Service's pods keeps the declared ports (they are this project's ports)",
		ns:   ns,
		allowlists: []*v1alpha1.NetworkAllowlist{allowlist("in", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{
			ingress(peers(svcRef("demo-project-2", "nginx"), nsRef("demo-project-3"), svcRef("demo-project-2", "missing")), port(corev1.ProtocolTCP, 9000)),
		}})},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("in", []networkingv1.NetworkPolicyIngressRule{{
					From:  npPeers(nginxPods, npNamespace("demo-project-3")),
					Ports: npPorts(npPort(corev1.ProtocolTCP, 9000)),
				}}, nil, ingressOnly...),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"in": {Policies: []string{"moat-allowlist-in"}, Problems: []Problem{{
				Reason:  "ServiceNotFound",
				Field:   "spec.ingress[0].from[2].service",
				Message: "Service demo-project-2/missing does not exist; the peer is left out until the Service is created",
			}}}},
		},
	}}
	for i := range cases {
		cases[i].services = services
		cases[i].cfg = dnsConfig()
	}
	runCases(t, cases)
}

func TestRenderAllowlistPolicy(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	offline := allowlist("offline", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}})
	offline.UID = ""
	offlinePolicy := wantAllowlist("offline", []networkingv1.NetworkPolicyIngressRule{{From: npPeers(npNamespace("demo-project-2"))}}, nil, ingressOnly...)
	offlinePolicy.OwnerReferences = nil

	long := allowlist(longName(240), v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}})
	longPolicy := wantAllowlist(long.Name, []networkingv1.NetworkPolicyIngressRule{{From: npPeers(npNamespace("demo-project-2"))}}, nil, ingressOnly...)
	longPolicy.Name = PolicyName(long.Name)
	longPolicy.Labels = managed()

	runCases(t, []renderCase{{
		name: "both directions, ranges, named ports, defaulted protocol, holes",
		ns:   ns,
		allowlists: []*v1alpha1.NetworkAllowlist{allowlist("web", v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{
				ingress(peers(nsRef("demo-project-2"), cidrRef("192.168.1.1/32")), port(corev1.ProtocolTCP, 80)),
				ingress(peers(nsRef("monitoring")), namedPort(corev1.ProtocolTCP, "metrics")),
			},
			Egress: []v1alpha1.EgressRule{
				egress(peers(cidrRef("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16")),
					v1alpha1.Port{Port: ptr.To(intstr.FromInt32(30000)), EndPort: ptr.To[int32](32767)},
					v1alpha1.Port{Protocol: ptr.To(corev1.ProtocolSCTP)},
				),
				egress(peers(nsRef("demo-project-3"))),
			},
		})},
		services: servicesOf(kubeDNS()),
		cfg:      dnsConfig(),
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("web", []networkingv1.NetworkPolicyIngressRule{{
					From:  npPeers(npNamespace("demo-project-2"), npCIDR("192.168.1.1/32")),
					Ports: npPorts(npPort(corev1.ProtocolTCP, 80)),
				}, {
					From:  npPeers(npNamespace("monitoring")),
					Ports: npPorts(npNamedPort(corev1.ProtocolTCP, "metrics")),
				}}, []networkingv1.NetworkPolicyEgressRule{{
					To: npPeers(npCIDR("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16")),
					Ports: npPorts(
						networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(30000)), EndPort: ptr.To[int32](32767)},
						networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolSCTP)},
					),
				}, {
					To: npPeers(npNamespace("demo-project-3")),
				}}, both...),
				wantDefaultEgress("demo-project-1", kubeDNSRule()),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"web": applied("web")},
		},
	}, {
		name: "an allowlist without rules generates nothing",
		ns:   ns,
		allowlists: []*v1alpha1.NetworkAllowlist{
			allowlist("empty", v1alpha1.NetworkAllowlistSpec{}),
		},
		want: Result{
			Policies:   []networkingv1.NetworkPolicy{wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{"empty": {}},
		},
	}, {
		name: "malformed peers and rules without peers are left out",
		ns:   ns,
		allowlists: []*v1alpha1.NetworkAllowlist{allowlist("bad", v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{
				{From: []v1alpha1.Peer{{}, {Namespace: "a", IPBlock: &v1alpha1.IPBlock{CIDR: "10.0.0.0/8"}}}},
				{},
			},
		})},
		want: Result{
			Policies: []networkingv1.NetworkPolicy{
				wantAllowlist("bad", nil, nil, ingressOnly...),
				wantDefaultIngress("demo-project-1"),
			},
			Allowlists: map[string]AllowlistResult{"bad": applied("bad")},
		},
	}, {
		name:       "no UID (offline render): no owner reference",
		ns:         ns,
		allowlists: []*v1alpha1.NetworkAllowlist{offline},
		want: Result{
			Policies:   []networkingv1.NetworkPolicy{offlinePolicy, wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{"offline": applied("offline")},
		},
	}, {
		name:       "a name too long for a label value gets no allowlist label and a hashed policy name",
		ns:         ns,
		allowlists: []*v1alpha1.NetworkAllowlist{long},
		want: Result{
			Policies:   []networkingv1.NetworkPolicy{longPolicy, wantDefaultIngress("demo-project-1")},
			Allowlists: map[string]AllowlistResult{long.Name: {Policies: []string{PolicyName(long.Name)}}},
		},
	}})
}

func TestRenderLookupError(t *testing.T) {
	ns := isolatedNamespace("demo-project-1")
	for _, tc := range []struct {
		name string
		al   *v1alpha1.NetworkAllowlist
		cfg  Config
	}{{
		name: "DNS Service",
		al:   allowlist("a", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(nsRef("b")))}}),
		cfg:  dnsConfig(),
	}, {
		name: "ingress Service peer",
		al:   allowlist("a", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(svcRef("demo-project-2", "nginx")))}}),
		cfg:  dnsConfig(),
	}, {
		name: "egress Service peer",
		al:   allowlist("a", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx")))}}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(Input{Namespace: ns, Allowlists: []*v1alpha1.NetworkAllowlist{tc.al}}, failingServices{}, tc.cfg)
			if !errors.Is(err, errLookup) {
				t.Fatalf("Render() error = %v, want %v", err, errLookup)
			}
			if diff := cmp.Diff(Result{}, got); diff != "" {
				t.Errorf("Render() returned a partial result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderLooksUpEachServiceOnce(t *testing.T) {
	al := allowlist("a", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{
		egress(peers(svcRef("demo-project-2", "nginx"), svcRef("demo-project-2", "nginx"))),
		egress(peers(svcRef("demo-project-2", "nginx"), svcRef("demo-project-2", "missing"), svcRef("demo-project-2", "missing"))),
	}})
	services := &countingServices{serviceMap: servicesOf(kubeDNS(), nginx())}
	if _, err := Render(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{al}}, services, dnsConfig()); err != nil {
		t.Fatal(err)
	}
	if services.calls != 3 {
		t.Errorf("Service lookups = %d, want 3 (kube-dns, nginx, missing)", services.calls)
	}
}

func TestRenderOrderIndependent(t *testing.T) {
	als := []*v1alpha1.NetworkAllowlist{
		allowlist("c", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx"), cidrRef("10.1.0.1/32")), port(corev1.ProtocolTCP, 80))}}),
		allowlist("a", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}}),
		allowlist("b", v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "missing")))}}),
		nil,
		// The same allowlist given twice with different specs (offline input).
		allowlist("d", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("x")))}}),
		allowlist("d", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("y")))}}),
	}
	cfg := Config{AllowedIngressNamespaces: []string{"z", "a"}, AllowedIngressCIDRs: []string{"10.0.0.0/8"}, DNSService: ptr.To(DefaultDNSService)}
	render := func(order []*v1alpha1.NetworkAllowlist) []byte {
		t.Helper()
		got, err := Render(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: order}, servicesOf(kubeDNS(), nginx()), cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := render(als)
	got, err := Render(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: als}, servicesOf(kubeDNS(), nginx()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"moat-allowlist-a", "moat-allowlist-b", "moat-allowlist-c", "moat-allowlist-d", "moat-default-egress", "moat-default-ingress"}, policyNames(got)); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(npPeers(npNamespace("x")), got.Policies[3].Spec.Ingress[0].From); diff != "" {
		t.Errorf("of two allowlists named d, the first by spec must win (-want +got):\n%s", diff)
	}
	// Every order of the input gives the same bytes.
	rng := rand.New(rand.NewPCG(1, 2))
	order := slices.Clone(als)
	for i := range 50 {
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		if got := render(order); string(got) != string(want) {
			t.Fatalf("shuffle %d changed the result:\n%s", i, cmp.Diff(string(want), string(got)))
		}
	}
	slices.Reverse(order)
	if got := render(order); string(got) != string(want) {
		t.Fatalf("reversed order changed the result:\n%s", cmp.Diff(string(want), string(got)))
	}
}

func TestManaged(t *testing.T) {
	if diff := cmp.Diff(map[string]string{"app.kubernetes.io/managed-by": "moat"}, ManagedLabels()); diff != "" {
		t.Errorf("ManagedLabels() (-want +got):\n%s", diff)
	}
	labels := ManagedLabels()
	labels["x"] = "y"
	if len(ManagedLabels()) != 1 {
		t.Error("ManagedLabels() returns a shared map")
	}
	for _, tc := range []struct {
		obj  metav1.Object
		want bool
	}{
		{nil, false},
		{&networkingv1.NetworkPolicy{}, false},
		{&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/managed-by": "helm"}}}, false},
		{&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Labels: ManagedLabels()}}, true},
	} {
		if got := IsManaged(tc.obj); got != tc.want {
			t.Errorf("IsManaged(%v) = %v, want %v", tc.obj, got, tc.want)
		}
	}
}

func longName(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

func policyNames(r Result) []string {
	var names []string
	for _, p := range r.Policies {
		names = append(names, p.Name)
	}
	return names
}

func runCases(t *testing.T, cases []renderCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(Input{Namespace: tc.ns, Allowlists: tc.allowlists, NodeAddresses: tc.nodes, APIServer: tc.apiServer}, tc.services, tc.cfg)
			if err != nil {
				t.Fatalf("Render() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Render() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderDoesNotAlias checks that the Result shares no map or slice with
// the inputs: callers (the controller, server-side apply) may modify it.
func TestRenderDoesNotAlias(t *testing.T) {
	services := servicesOf(kubeDNS(), nginx())
	al := allowlist("a", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{ingress(peers(cidrRef("10.0.0.0/8", "10.1.0.0/16")), port(corev1.ProtocolTCP, 80))},
		Egress:  []v1alpha1.EgressRule{egress(peers(svcRef("demo-project-2", "nginx"), cidrRef("10.2.0.0/16", "10.2.1.0/24")), port(corev1.ProtocolTCP, 80))},
	})
	in := Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{al}}
	render := func() Result {
		t.Helper()
		r, err := Render(in, services, dnsConfig())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	want, err := json.Marshal(render())
	if err != nil {
		t.Fatal(err)
	}
	scribble := render()
	for i := range scribble.Policies {
		np := &scribble.Policies[i]
		np.Labels["scribbled"] = "yes"
		for _, p := range flattenPeers(np) {
			for _, sel := range []*metav1.LabelSelector{p.PodSelector, p.NamespaceSelector} {
				if sel != nil {
					for k := range sel.MatchLabels {
						sel.MatchLabels[k] = "scribbled"
					}
				}
			}
			if p.IPBlock != nil && len(p.IPBlock.Except) > 0 {
				p.IPBlock.Except[0] = "scribbled"
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, port := range rule.Ports {
				*port.Protocol = "scribbled"
				*port.Port = intstr.FromString("scribbled")
			}
		}
	}
	got, err := json.Marshal(render())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("modifying a Result changed the next one (-want +got):\n%s", diff)
	}
}

func flattenPeers(np *networkingv1.NetworkPolicy) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, r := range np.Spec.Ingress {
		out = append(out, r.From...)
	}
	for _, r := range np.Spec.Egress {
		out = append(out, r.To...)
	}
	return out
}

func TestRenderPolicyNameCollision(t *testing.T) {
	// A long allowlist name is shortened with a hash; a second allowlist can
	// be named exactly like the shortened policy name minus the prefix.
	long := longName(250)
	short := strings.TrimPrefix(PolicyName(long), AllowlistPolicyPrefix)
	if PolicyName(short) != PolicyName(long) {
		t.Fatalf("test setup: PolicyName(%q) = %q, want %q", short, PolicyName(short), PolicyName(long))
	}
	spec := func(ns string) v1alpha1.NetworkAllowlistSpec {
		return v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef(ns)))}}
	}
	got, err := Render(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{
		allowlist(long, spec("a")), allowlist(short, spec("b")),
	}}, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by name, the shorter name (a prefix of the longer one) comes first.
	first, second := short, long
	want := wantAllowlist(first, []networkingv1.NetworkPolicyIngressRule{{From: npPeers(npNamespace("b"))}}, nil, ingressOnly...)
	want.Labels = managed()
	if diff := cmp.Diff([]networkingv1.NetworkPolicy{want, wantDefaultIngress("demo-project-1")}, got.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	wantResults := map[string]AllowlistResult{
		first:  {Policies: []string{PolicyName(first)}},
		second: {Problems: []Problem{nameTaken(PolicyName(second), first)}},
	}
	if diff := cmp.Diff(wantResults, got.Allowlists); diff != "" {
		t.Errorf("allowlist results (-want +got):\n%s", diff)
	}
}

// TestRenderKeepsDeclaredRules: two declared rules with the same ports stay
// two rules in the generated policy (one per declared rule and port list),
// so that the policy reads like the allowlist it comes from.
func TestRenderKeepsDeclaredRules(t *testing.T) {
	web := allowlist("web", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{
		ingress(peers(nsRef("demo-project-2")), port(corev1.ProtocolTCP, 80)),
		ingress(peers(nsRef("demo-project-3")), port(corev1.ProtocolTCP, 80)),
	}})
	r, err := Render(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: []*v1alpha1.NetworkAllowlist{web}}, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []networkingv1.NetworkPolicyIngressRule{
		{From: npPeers(npNamespace("demo-project-2")), Ports: npPorts(npPort(corev1.ProtocolTCP, 80))},
		{From: npPeers(npNamespace("demo-project-3")), Ports: npPorts(npPort(corev1.ProtocolTCP, 80))},
	}
	if len(r.Policies) != 2 || r.Policies[0].Name != "moat-allowlist-web" {
		t.Fatalf("policies: %+v", r.Policies)
	}
	if diff := cmp.Diff(want, r.Policies[0].Spec.Ingress); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

// TestRenderRepeatedAllowlistName: should the input repeat an allowlist
// name (a manifest given twice offline), the one with the lowest UID is
// used, whatever the input order.
func TestRenderRepeatedAllowlistName(t *testing.T) {
	a := allowlist("web", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-2")))}})
	a.UID = "a"
	b := allowlist("web", v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{ingress(peers(nsRef("demo-project-3")))}})
	b.UID = "b"
	for _, in := range [][]*v1alpha1.NetworkAllowlist{{a, b}, {b, a}} {
		m, err := Compute(Input{Namespace: isolatedNamespace("demo-project-1"), Allowlists: in}, nil, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Allowlists) != 1 || m.Allowlists[0].UID != "a" || m.Ingress[len(m.Ingress)-1].Peer.Namespace != "demo-project-2" {
			t.Errorf("allowlists %+v, ingress %+v; want the one with UID a", m.Allowlists, m.Ingress)
		}
	}
}
