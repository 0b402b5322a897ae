package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// defaultIngressPolicy denies ingress from other namespaces. It has a single
// rule whose peers are, in this order: the same namespace; the namespace's
// project group, when cfg.ProjectLabel is set and the namespace carries it
// (selected by that label: see projectPeer); one peer per allowed namespace
// (sorted, duplicates removed), each selected by the immutable
// kubernetes.io/metadata.name label; one ipBlock per allowed CIDR (sorted,
// duplicates removed); with cfg.AllowIngressFromNodes, one /32 or /128
// ipBlock per node address (sorted, duplicates removed). One peer per
// namespace, rather than a single "In" expression, keeps the policy in the
// same shape as the allowlist namespace peers and readable in `kubectl
// describe`.
func defaultIngressPolicy(in Input, cfg Config) networkingv1.NetworkPolicy {
	np := newPolicy(in.Namespace.Name, DefaultIngressPolicyName, networkingv1.PolicyTypeIngress)
	from := []networkingv1.NetworkPolicyPeer{sameNamespacePeer()}
	if project, ok := v1alpha1.ProjectOf(in.Namespace, cfg.ProjectLabel); ok {
		from = append(from, projectPeer(cfg.ProjectLabel, project))
	}
	for _, ns := range sortedUnique(cfg.AllowedIngressNamespaces) {
		from = append(from, namespacePeer(ns))
	}
	for _, cidr := range sortedUnique(cfg.AllowedIngressCIDRs) {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}
	if cfg.AllowIngressFromNodes {
		for _, addr := range sortedAddrs(in.NodeAddresses) {
			from = append(from, hostPeer(addr))
		}
	}
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from}}
	return np
}

// defaultEgressPolicy restricts egress to the same namespace and to DNS:
// unless cfg.DNSService is nil, the cluster DNS pods on the DNS ports of the
// DNS Service (see dnsPorts), and each of cfg.DNSIPs on UDP and TCP 53. The
// node-local addresses share the DNS pods' rule when the ports agree, and get
// a rule of their own otherwise.
func (r *renderer) defaultEgressPolicy(cfg Config) (networkingv1.NetworkPolicy, error) {
	np := newPolicy(r.namespace, DefaultEgressPolicyName, networkingv1.PolicyTypeEgress)
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{sameNamespacePeer()}}}
	if cfg.DNSService != nil {
		dns := *cfg.DNSService
		svc, err := r.service(dns.Namespace, dns.Name)
		if err != nil {
			return networkingv1.NetworkPolicy{}, err
		}
		selector := fallbackDNSSelector()
		ports := fallbackDNSPorts()
		if svc != nil && len(svc.Spec.Selector) > 0 {
			selector = svc.Spec.Selector
			ports = dnsPorts(svc.Spec.Ports)
		}
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: namespaceSelector(dns.Namespace),
				PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(selector)},
			}},
			Ports: ports,
		})
	}
	if addrs := sortedAddrs(cfg.DNSIPs); len(addrs) > 0 {
		var caches []networkingv1.NetworkPolicyPeer
		for _, addr := range addrs {
			caches = append(caches, hostPeer(addr))
		}
		last := &np.Spec.Egress[len(np.Spec.Egress)-1]
		if len(np.Spec.Egress) > 1 && portsKey(last.Ports) == portsKey(fallbackDNSPorts()) {
			last.To = append(last.To, caches...)
		} else {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: caches, Ports: fallbackDNSPorts()})
		}
	}
	return np, nil
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
