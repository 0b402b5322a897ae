//go:build linux

package dataplane

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"moat.dev/moat/api/v1alpha1"
)

// This file holds what the scenarios create and the verdict matrices they
// expect, so that the real packets (scenarios_test.go) and moat explain's
// verdicts on the same states (explain_test.go) check one matrix.

// worldPods are the pods of the topology, each with its host in the suite.
var worldPods = []struct {
	host     func(*suite) **Host
	ns, name string
	ip       netip.Addr
	labels   map[string]string
}{
	{func(s *suite) **Host { return &s.web }, projA, "web", netip.MustParseAddr("10.244.1.11"), map[string]string{"app": "web"}},
	{func(s *suite) **Host { return &s.db }, projA, "db", netip.MustParseAddr("10.244.1.12"), map[string]string{"app": "db"}},
	{func(s *suite) **Host { return &s.client }, projB, "client", netip.MustParseAddr("10.244.1.21"), map[string]string{"app": "client"}},
	{func(s *suite) **Host { return &s.nginx }, projB, "nginx", netip.MustParseAddr("10.244.1.22"), map[string]string{"app": "nginx"}},
	{func(s *suite) **Host { return &s.other }, projC, "other", netip.MustParseAddr("10.244.1.31"), map[string]string{"app": "other"}},
}

// groups are the project groups of the project-groups scenario.
var groups = map[string]string{projA: "ws1", projB: "ws1", projC: "ws2"}

func nginxService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: projB},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "nginx"},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(portAlt)}},
		},
	}
}

func toNginx() *v1alpha1.NetworkAllowlist {
	return allowlist(projA, "to-nginx", v1alpha1.NetworkAllowlistSpec{
		Egress: []v1alpha1.EgressRule{{
			To:    []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: projB, Name: "nginx"}}},
			Ports: ports(corev1.ProtocolTCP, servicePort),
		}},
	})
}

func outsideAllowlist() *v1alpha1.NetworkAllowlist {
	cidr := netipPrefix(outsideIP)
	return allowlist(projA, "outside", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: cidr}}}, Ports: ports(corev1.ProtocolTCP, portHTTP)}},
		Egress:  []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: cidr}}}, Ports: ports(corev1.ProtocolTCP, portTLS)}},
	})
}

func toOutsideTLS() *v1alpha1.NetworkAllowlist {
	return allowlist(projA, "to-outside-tls", v1alpha1.NetworkAllowlistSpec{
		Egress: []v1alpha1.EgressRule{{To: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: netipPrefix(outsideIP)}}}, Ports: ports(corev1.ProtocolTCP, portTLS)}},
	})
}

func temporaryFromProjC() *v1alpha1.NetworkAllowlist {
	return allowlist(projA, "temporary-from-proj-c", v1alpha1.NetworkAllowlistSpec{
		Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: projC}}, Ports: ports(corev1.ProtocolTCP, portHTTP)}},
	})
}

// letProjCIn admits proj-c into proj-a: beyond what moat admits.
func letProjCIn() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "let-proj-c-in", Namespace: projA},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: projC}},
			}}}},
		},
	}
}

// sameNamespaceWeb is confined to proj-a: within what moat admits.
func sameNamespaceWeb() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "same-namespace-web", Namespace: projA},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt(portHTTP))}},
			}},
		},
	}
}

// launderedProjC is the policy for proj-a/web pinned to proj-c on port 80
// that temporaryFromProjC justifies.
func launderedProjC() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "laundered-proj-c", Namespace: projA},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: projC}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt(portHTTP))}},
			}},
		},
	}
}

// The matrices, one per scenario step.

func (s *suite) resetCells() []Cell {
	return []Cell{
		Allow(s.client, s.tcp(s.web, portHTTP)),
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Allow(s.outside, s.tcp(s.web, portHTTP)),
		Allow(s.web, s.tcp(s.client, portHTTP)),
		Allow(s.web, s.tcp(s.outside, portHTTP)),
	}
}

func (s *suite) fromProjBCells() []Cell {
	return []Cell{
		Allow(s.client, s.tcp(s.web, portHTTP)),
		Allow(s.nginx, s.tcp(s.db, portHTTP)),
		Deny(s.client, s.tcp(s.web, portAlt)),
		Deny(s.client, s.udp(s.web, portUDP)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) fromProjBAltCells() []Cell {
	return []Cell{
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Allow(s.client, s.tcp(s.web, portAlt)),
		Deny(s.client, s.udp(s.web, portUDP)),
		Deny(s.other, s.tcp(s.web, portAlt)),
	}
}

func (s *suite) fromProjBDeletedCells() []Cell {
	return []Cell{
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portAlt)),
	}
}

func (s *suite) egressOpenCells() []Cell {
	return []Cell{
		Allow(s.web, s.tcp(s.nginx, portHTTP)),
		Allow(s.web, s.tcp(s.client, portAlt)),
		Allow(s.web, s.tcp(s.outside, portHTTP)),
	}
}

func (s *suite) toNginxCells() []Cell {
	return []Cell{
		Allow(s.web, s.tcp(s.nginx, portAlt)),
		Deny(s.web, s.tcp(s.nginx, portHTTP)),
		Deny(s.web, s.udp(s.nginx, portUDP)),
		Deny(s.web, s.tcp(s.client, portAlt)),
		Deny(s.web, s.tcp(s.outside, portHTTP)),
		Allow(s.web, s.tcp(s.db, portHTTP)),
		Allow(s.client, s.tcp(s.nginx, portHTTP)),
	}
}

func (s *suite) outsideCells() []Cell {
	return []Cell{
		Allow(s.outside, s.tcp(s.web, portHTTP)),
		Deny(s.outside, s.tcp(s.web, portAlt)),
		Allow(s.web, s.tcp(s.outside, portTLS)),
		Deny(s.web, s.tcp(s.outside, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Deny(s.web, s.tcp(s.client, portHTTP)),
	}
}

func (s *suite) dnsOpenCells() []Cell {
	return []Cell{
		Allow(s.web, s.udp(s.dns, portDNS)),
		Allow(s.web, s.tcp(s.dns, portDNS)),
		Allow(s.web, s.tcp(s.dns, portHTTP)),
	}
}

func (s *suite) dnsOnlyCells() []Cell {
	return []Cell{
		Allow(s.web, s.udp(s.dns, portDNS)),
		Allow(s.web, s.tcp(s.dns, portDNS)),
		Deny(s.web, s.tcp(s.dns, portHTTP)),
		Allow(s.web, s.tcp(s.outside, portTLS)),
		Deny(s.web, s.tcp(s.outside, portHTTP)),
	}
}

func (s *suite) egressRestrictedCells() []Cell {
	return []Cell{
		Deny(s.web, s.tcp(s.outside, portHTTP)),
		Allow(s.web, s.tcp(s.outside, portTLS)),
	}
}

func (s *suite) isolationOffCells() []Cell {
	return []Cell{
		Allow(s.client, s.tcp(s.web, portHTTP)),
		Allow(s.client, s.tcp(s.web, portAlt)),
		Allow(s.client, s.udp(s.web, portUDP)),
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Allow(s.outside, s.tcp(s.web, portHTTP)),
		Allow(s.web, s.tcp(s.outside, portHTTP)),
		Allow(s.web, s.tcp(s.client, portAlt)),
	}
}

func (s *suite) groupsCells() []Cell {
	return []Cell{
		Allow(s.client, s.tcp(s.web, portHTTP)),
		Allow(s.web, s.tcp(s.nginx, portAlt)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.other, s.tcp(s.client, portHTTP)),
		Deny(s.web, s.tcp(s.other, portHTTP)),
	}
}

func (s *suite) groupMovedCells() []Cell {
	return []Cell{
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Allow(s.other, s.tcp(s.client, portHTTP)),
		Allow(s.web, s.tcp(s.other, portHTTP)),
	}
}

func (s *suite) wideRefusedCells() []Cell {
	return []Cell{
		Deny(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) confinedCells() []Cell {
	return []Cell{
		Allow(s.db, s.tcp(s.web, portHTTP)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) wideByAdminCells() []Cell {
	return []Cell{
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) launderedCells() []Cell {
	return append(s.launderRefusedCells(), Deny(s.other, s.tcp(s.web, portAlt)))
}

func (s *suite) launderRefusedCells() []Cell {
	return []Cell{
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Allow(s.other, s.tcp(s.db, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) strandedCells() []Cell {
	return []Cell{
		Allow(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.other, s.tcp(s.db, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) nodesCells() []Cell {
	return []Cell{
		Allow(s.node2, s.tcp(s.web, portHTTP)),
		Allow(s.node2, s.tcp(s.web, portAlt)),
		Deny(s.outside, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) nodeDeletedCells() []Cell {
	return []Cell{
		Deny(s.node2, s.tcp(s.web, portHTTP)),
		Deny(s.outside, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) nodeBackCells() []Cell {
	return []Cell{Allow(s.node2, s.tcp(s.web, portHTTP))}
}

// The node flood (flood_test.go): within, beyond and last are hosts at the
// flooding Node's address #maxNodeAddressesPerNode, the next one and its
// last.

func (s *suite) floodOpenCells(within, beyond, last *Host) []Cell {
	return []Cell{
		Allow(within, s.tcp(s.web, portHTTP)),
		Allow(beyond, s.tcp(s.web, portHTTP)),
		Allow(last, s.tcp(s.web, portHTTP)),
		Allow(s.client, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) floodDenyCells() []Cell {
	return []Cell{
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
		Deny(s.outside, s.tcp(s.web, portHTTP)),
		Allow(s.db, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) floodNodesCells(within *Host) []Cell {
	return []Cell{
		Allow(s.node2, s.tcp(s.web, portHTTP)),
		Allow(within, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) floodBoundedCells(within, beyond, last *Host) []Cell {
	return []Cell{
		Deny(beyond, s.tcp(s.web, portHTTP)),
		Deny(last, s.tcp(s.web, portHTTP)),
		Allow(within, s.tcp(s.web, portHTTP)),
		Allow(s.node2, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
		Deny(s.other, s.tcp(s.web, portHTTP)),
	}
}

func (s *suite) floodDeletedCells(within, beyond *Host) []Cell {
	return []Cell{
		Deny(within, s.tcp(s.web, portHTTP)),
		Deny(beyond, s.tcp(s.web, portHTTP)),
		Allow(s.node2, s.tcp(s.web, portHTTP)),
		Deny(s.client, s.tcp(s.web, portHTTP)),
	}
}
