package policy

import (
	"cmp"
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"moat.dev/moat/api/v1alpha1"
)

// APIServerService is the Service through which pods reach the Kubernetes
// API server; its EndpointSlices (labelled kubernetes.io/service-name:
// kubernetes) list the API server's addresses and ports.
const (
	APIServerNamespace = "default"
	APIServerName      = "kubernetes"
)

// Endpoints are addresses reachable on the same ports: what one
// EndpointSlice of the API server says.
type Endpoints struct {
	// Addresses are single hosts, each rendered as a /32 or /128 ipBlock.
	Addresses []netip.Addr
	// Ports are the ports the addresses serve on; never empty.
	Ports []networkingv1.NetworkPolicyPort
}

// APIServerEndpoints turns the EndpointSlices of the default/kubernetes
// Service into Endpoints, one per slice that has a ready endpoint, sorted by
// their first address. Endpoints that are not ready (conditions.ready false)
// and FQDN slices are left out; an unset ready condition counts as ready, as
// the EndpointSlice API defines it. Nil slices are skipped, and so are ports
// without a number and slices left without ports (fail closed: they would
// open every port of their addresses; the API server's own slice always
// names its port).
func APIServerEndpoints(endpointSlices []*discoveryv1.EndpointSlice) []Endpoints {
	var out []Endpoints
	for _, s := range endpointSlices {
		if s == nil || s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var addrs []netip.Addr
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				addrs = appendAddr(addrs, a)
			}
		}
		addrs = sortedAddrs(addrs)
		if len(addrs) == 0 {
			continue
		}
		var ports []networkingv1.NetworkPolicyPort
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			protocol := v1alpha1.ProtocolOrTCP(p.Protocol)
			port := intstr.FromInt32(*p.Port)
			ports = appendUniquePort(ports, networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &port})
		}
		if len(ports) == 0 {
			continue
		}
		slices.SortFunc(ports, func(a, b networkingv1.NetworkPolicyPort) int { return cmp.Compare(portKey(a), portKey(b)) })
		out = append(out, Endpoints{Addresses: addrs, Ports: ports})
	}
	slices.SortStableFunc(out, func(a, b Endpoints) int {
		return cmp.Or(a.Addresses[0].Compare(b.Addresses[0]), cmp.Compare(portsKey(a.Ports), portsKey(b.Ports)))
	})
	return out
}
