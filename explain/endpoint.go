package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"moat.dev/moat/api/v1alpha1"
)

// MaxSpecLength bounds an endpoint argument.
const MaxSpecLength = 1024

// SpecKind is the form of an endpoint argument.
type SpecKind string

const (
	// SpecNamed is NAMESPACE/NAME: a Service, else a pod.
	SpecNamed SpecKind = "named"
	// SpecLabels is NAMESPACE/KEY=VALUE[,...]: the pods a selector selects.
	SpecLabels SpecKind = "labels"
	// SpecNamespace is NAMESPACE: its pods (or a node of that name, when
	// no namespace has it).
	SpecNamespace SpecKind = "namespace"
	// SpecNode is node/NAME.
	SpecNode SpecKind = "node"
	// SpecAddress is an address or CIDR.
	SpecAddress SpecKind = "address"
)

// Spec is a parsed endpoint argument: SOURCE or DESTINATION[:PORT[/PROTOCOL]].
type Spec struct {
	Kind      SpecKind
	Namespace string
	// Name is the pod, Service or node name.
	Name string
	// Selector is the label selector of SpecLabels, as written.
	Selector string
	Prefix   netip.Prefix
	// Port is the port as written (a number or a name); empty when none.
	Port string
	// Protocol is the protocol as written, upper-cased; empty when none.
	Protocol corev1.Protocol
}

// ParseSpec parses an endpoint argument. Every error names the part that is
// wrong and the accepted forms.
func ParseSpec(s string) (Spec, error) {
	if len(s) > MaxSpecLength {
		return Spec{}, fmt.Errorf("endpoint is %d characters long, more than the %d accepted", len(s), MaxSpecLength)
	}
	if s == "" {
		return Spec{}, fmt.Errorf("empty endpoint: give NAMESPACE/POD, NAMESPACE/KEY=VALUE, NAMESPACE, NAMESPACE/SERVICE:PORT, node/NAME, an address or a CIDR")
	}
	if p, ok := parseAddress(s); ok {
		return Spec{Kind: SpecAddress, Prefix: p}, nil
	}
	host, port, err := splitPort(s)
	if err != nil {
		return Spec{}, err
	}
	spec, err := parseHost(host)
	if err != nil {
		return Spec{}, err
	}
	spec.Port, spec.Protocol, err = parsePort(port)
	return spec, err
}

// parseAddress parses an address or CIDR (an IPv6 one may be bracketed).
func parseAddress(s string) (netip.Prefix, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	return netip.Prefix{}, false
}

// splitPort splits HOST:PORT[/PROTOCOL] at its last colon (IPv6 addresses
// with a port are bracketed: [2001:db8::1]:443).
func splitPort(s string) (host, port string, err error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return s, "", nil
	}
	host, port = s[:i], s[i+1:]
	if port == "" {
		return "", "", fmt.Errorf("endpoint %q: nothing after the colon: give a port, e.g. %s:80 or %s:53/UDP", s, host, host)
	}
	return host, port, nil
}

func parseHost(host string) (Spec, error) {
	if p, ok := parseAddress(host); ok {
		return Spec{Kind: SpecAddress, Prefix: p}, nil
	}
	ns, rest, named := strings.Cut(host, "/")
	if ns == "node" && named {
		if errs := validation.IsDNS1123Subdomain(rest); len(errs) > 0 {
			return Spec{}, fmt.Errorf("node name %q: %s", rest, strings.Join(errs, "; "))
		}
		return Spec{Kind: SpecNode, Name: rest}, nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return Spec{}, fmt.Errorf("namespace %q of endpoint %q: %s (forms: NAMESPACE/POD, NAMESPACE/KEY=VALUE, NAMESPACE, NAMESPACE/SERVICE:PORT, node/NAME, an address or a CIDR)",
			ns, host, strings.Join(errs, "; "))
	}
	switch {
	case !named:
		return Spec{Kind: SpecNamespace, Namespace: ns}, nil
	case strings.ContainsAny(rest, "=!(") || strings.Contains(rest, " in ") || strings.Contains(rest, " notin "):
		if _, err := labels.Parse(rest); err != nil {
			return Spec{}, fmt.Errorf("label selector %q of endpoint %q: %v", rest, host, err)
		}
		return Spec{Kind: SpecLabels, Namespace: ns, Selector: rest}, nil
	}
	if errs := validation.IsDNS1123Subdomain(rest); len(errs) > 0 {
		return Spec{}, fmt.Errorf("pod or Service name %q of endpoint %q: %s", rest, host, strings.Join(errs, "; "))
	}
	return Spec{Kind: SpecNamed, Namespace: ns, Name: rest}, nil
}

// parsePort parses PORT[/PROTOCOL]: a number (1-65535) or a port name, and
// TCP, UDP or SCTP in any case.
func parsePort(s string) (string, corev1.Protocol, error) {
	if s == "" {
		return "", "", nil
	}
	port, proto, hasProto := strings.Cut(s, "/")
	var protocol corev1.Protocol
	if hasProto {
		protocol = corev1.Protocol(strings.ToUpper(proto))
		if !slices.Contains([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}, protocol) {
			return "", "", fmt.Errorf("protocol %q: use TCP, UDP or SCTP", proto)
		}
	}
	if n, err := strconv.Atoi(port); err == nil {
		if errs := validation.IsValidPortNum(n); len(errs) > 0 {
			return "", "", fmt.Errorf("port %q: %s", port, strings.Join(errs, "; "))
		}
		return port, protocol, nil
	}
	if errs := validation.IsValidPortName(port); len(errs) > 0 {
		return "", "", fmt.Errorf("port %q: neither a number (1-65535) nor a port name: %s", port, strings.Join(errs, "; "))
	}
	return port, protocol, nil
}

// PodEndpoint is the endpoint of a pod the objects hold. A pod on the host
// network is its node: NetworkPolicies do not select it, and its traffic
// comes from the node's address.
func PodEndpoint(p *corev1.Pod) Endpoint {
	if p.Spec.HostNetwork {
		e := Endpoint{Kind: KindNode, Name: p.Spec.NodeName}
		if ip, err := netip.ParseAddr(p.Status.HostIP); err == nil {
			e.Prefix = netip.PrefixFrom(ip, ip.BitLen())
		}
		return e
	}
	e := Endpoint{Kind: KindPod, Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, pod: p}
	if ips := podIPs(p); len(ips) > 0 {
		e.Prefix = netip.PrefixFrom(ips[0], ips[0].BitLen())
	}
	return e
}

// AddressEndpoint is the endpoint of a block: the pod or the node that has
// the address, else an external endpoint.
func (x *Index) AddressEndpoint(p netip.Prefix) Endpoint {
	if p.IsSingleIP() {
		if pod := x.podByIP[p.Addr()]; pod != nil {
			return PodEndpoint(pod)
		}
		if node := x.nodeByIP[p.Addr()]; node != nil {
			return Endpoint{Kind: KindNode, Name: node.Name, Prefix: p}
		}
	}
	return Endpoint{Kind: KindExternal, Prefix: p}
}

// nodeEndpoint is a node by its first parseable address.
func nodeEndpoint(n *corev1.Node) (Endpoint, error) {
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
			return Endpoint{Kind: KindNode, Name: n.Name, Prefix: netip.PrefixFrom(ip, ip.BitLen())}, nil
		}
	}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			return Endpoint{Kind: KindNode, Name: n.Name, Prefix: netip.PrefixFrom(ip, ip.BitLen())}, nil
		}
	}
	return Endpoint{}, fmt.Errorf("node %s has no address in status.addresses", n.Name)
}

// hypotheticalPod is a pod of namespace with labels that the objects do not
// hold (manifests describe workloads, not their pods).
func hypotheticalPod(namespace string, set map[string]string) Endpoint {
	return Endpoint{Kind: KindPod, Namespace: namespace, Labels: set}
}

// isolatedNamespace reports whether the namespace is labelled for moat's
// isolation.
func (x *Index) isolatedNamespace(name string) bool {
	return v1alpha1.Isolated(x.namespaces[name])
}
