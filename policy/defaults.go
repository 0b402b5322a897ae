package policy

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
// rule whose peers are, in this order: the same namespace; one peer per
// allowed namespace (sorted, duplicates removed), each selected by the
// immutable kubernetes.io/metadata.name label; one ipBlock per allowed CIDR
// (sorted, duplicates removed). One peer per namespace, rather than a single
// "In" expression, keeps the policy in the same shape as the allowlist
// namespace peers and readable in `kubectl describe`.
func defaultIngressPolicy(namespace string, cfg Config) networkingv1.NetworkPolicy {
	np := newPolicy(namespace, DefaultIngressPolicyName, networkingv1.PolicyTypeIngress)
	from := []networkingv1.NetworkPolicyPeer{sameNamespacePeer()}
	for _, ns := range sortedUnique(cfg.AllowedIngressNamespaces) {
		from = append(from, namespacePeer(ns))
	}
	for _, cidr := range sortedUnique(cfg.AllowedIngressCIDRs) {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from}}
	return np
}

// defaultEgressPolicy restricts egress to the same namespace and, unless
// cfg.DNSService is nil, to the cluster DNS pods on the DNS Service's target
// ports.
func (r *renderer) defaultEgressPolicy(cfg Config) (networkingv1.NetworkPolicy, error) {
	np := newPolicy(r.namespace, DefaultEgressPolicyName, networkingv1.PolicyTypeEgress)
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{sameNamespacePeer()}}}
	if cfg.DNSService == nil {
		return np, nil
	}
	dns := *cfg.DNSService
	svc, err := r.service(dns.Namespace, dns.Name)
	if err != nil {
		return networkingv1.NetworkPolicy{}, err
	}
	selector := fallbackDNSSelector()
	ports := fallbackDNSPorts()
	if svc != nil && len(svc.Spec.Selector) > 0 {
		selector = svc.Spec.Selector
		if targets := targetPorts(svc.Spec.Ports); len(targets) > 0 {
			ports = targets
		}
	}
	np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: namespaceSelector(dns.Namespace),
			PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(selector)},
		}},
		Ports: ports,
	})
	return np, nil
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

// serviceProtocol is the protocol of a Service port; the API server defaults
// an empty one to TCP, and manifests read offline may not be defaulted.
func serviceProtocol(sp corev1.ServicePort) corev1.Protocol {
	if sp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return sp.Protocol
}

// targetPort is the port on the pods that a Service port forwards to: its
// targetPort, numeric or named, or the port number itself when targetPort is
// unset (as the API server defaults it).
func targetPort(sp corev1.ServicePort) intstr.IntOrString {
	tp := sp.TargetPort
	if (tp.Type == intstr.Int && tp.IntVal == 0) || (tp.Type == intstr.String && tp.StrVal == "") {
		return intstr.FromInt32(sp.Port)
	}
	return tp
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
