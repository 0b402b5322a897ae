package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// fallbackDNSSelector selects the cluster DNS pods when the configured DNS
// Service cannot be found or has no selector: the label that kube-dns and
// CoreDNS carry in kubeadm, kops, k3s and most managed clusters. It is paired
// with fallbackDNSPorts so that DNS keeps working instead of breaking every
// lookup of a project that restricts its egress.
func fallbackDNSSelector() map[string]string {
	return map[string]string{"k8s-app": "kube-dns"}
}

// fallbackDNSPorts are UDP 53 and TCP 53, used with fallbackDNSSelector and
// whenever the DNS Service declares no ports.
func fallbackDNSPorts() []networkingv1.NetworkPolicyPort {
	return []networkingv1.NetworkPolicyPort{
		policyPort(corev1.ProtocolUDP, intstr.FromInt32(53)),
		policyPort(corev1.ProtocolTCP, intstr.FromInt32(53)),
	}
}

// defaultEgress is what the isolation admits out of a namespace whose egress
// is restricted, in this order: the same namespace (every port); unless
// cfg.DNSService is nil, the cluster DNS pods on the DNS ports of the DNS
// Service (see dnsPorts; the conventional kube-dns pods on UDP and TCP 53
// when the Service is missing or has no selector, so that DNS keeps
// working); each of cfg.DNSIPs (sorted) on UDP and TCP 53.
func (r *renderer) defaultEgress(cfg Config) ([]Admission, error) {
	out := []Admission{{Peer: Peer{Kind: PeerSelf}}}
	if cfg.DNSService != nil {
		dns := *cfg.DNSService
		svc, err := r.service(dns.Namespace, dns.Name)
		if err != nil {
			return nil, err
		}
		selector := fallbackDNSSelector()
		ports := fallbackDNSPorts()
		if svc != nil && len(svc.Spec.Selector) > 0 {
			selector = maps.Clone(svc.Spec.Selector)
			ports = dnsPorts(svc.Spec.Ports)
		}
		out = append(out, Admission{Peer: Peer{Kind: PeerPods, Namespace: dns.Namespace, Selector: selector}, Ports: ports, Source: Source{Flag: FlagDNSService}})
	}
	for _, addr := range sortedAddrs(cfg.DNSIPs) {
		out = append(out, Admission{Peer: hostAddresses(addr), Ports: fallbackDNSPorts(), Source: Source{Flag: FlagDNSIPs}})
	}
	return out, nil
}

// dnsServicePortNames are the names that kube-dns and CoreDNS give the
// DNS ports of their Service (next to e.g. "metrics", 9153).
var dnsServicePortNames = []string{"dns", "dns-tcp"}

// dnsPorts returns the target ports of the DNS Service's DNS ports only: the
// ports named dns or dns-tcp or, when none is, the ports numbered 53; when
// neither exists, UDP and TCP 53. Other ports of the DNS pods (CoreDNS's
// metrics port 9153) stay closed.
func dnsPorts(ports []corev1.ServicePort) []networkingv1.NetworkPolicyPort {
	var named, fiftyThree []corev1.ServicePort
	for _, sp := range ports {
		if slices.Contains(dnsServicePortNames, sp.Name) {
			named = append(named, sp)
		}
		if sp.Port == 53 {
			fiftyThree = append(fiftyThree, sp)
		}
	}
	if out := targetPorts(named); len(out) > 0 {
		return out
	}
	if out := targetPorts(fiftyThree); len(out) > 0 {
		return out
	}
	return fallbackDNSPorts()
}

// sortedAddrs returns the valid addresses sorted, IPv4-mapped IPv6 forms
// unmapped and zones dropped, without duplicates.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// sortedUnique returns the non-empty values sorted, without duplicates.
func sortedUnique(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// policyPort returns a NetworkPolicyPort for one protocol and port.
func policyPort(protocol corev1.Protocol, port intstr.IntOrString) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &port}
}

// serviceProtocol is the protocol of a Service port (v1alpha1.ProtocolOrTCP).
func serviceProtocol(sp corev1.ServicePort) corev1.Protocol {
	return v1alpha1.ProtocolOrTCP(&sp.Protocol)
}

// targetPort is the port on the pods that a Service port forwards to
// (v1alpha1.TargetPort).
func targetPort(sp corev1.ServicePort) intstr.IntOrString {
	return v1alpha1.TargetPort(sp)
}

// targetPorts translates Service ports to the NetworkPolicy ports of their
// targets, in order, without duplicates.
func targetPorts(ports []corev1.ServicePort) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, sp := range ports {
		out = appendUniquePort(out, policyPort(serviceProtocol(sp), targetPort(sp)))
	}
	return out
}

// appendUniquePort appends p unless an equal port is already in ports.
func appendUniquePort(ports []networkingv1.NetworkPolicyPort, p networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	key := portKey(p)
	for _, q := range ports {
		if portKey(q) == key {
			return ports
		}
	}
	return append(ports, p)
}

// portKey identifies a NetworkPolicyPort by protocol, port and end port.
func portKey(p networkingv1.NetworkPolicyPort) string {
	key := ""
	if p.Protocol != nil {
		key = string(*p.Protocol)
	}
	key += "/"
	if p.Port != nil {
		// Distinguish the number 80 from the port name "80".
		if p.Port.Type == intstr.Int {
			key += fmt.Sprintf("#%d", p.Port.IntVal)
		} else {
			key += p.Port.StrVal
		}
	}
	if p.EndPort != nil {
		key += fmt.Sprintf("-%d", *p.EndPort)
	}
	return key
}
