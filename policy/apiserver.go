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

// APIServerNamespace and APIServerName name the Service through which pods
// reach the Kubernetes API server, and the EndpointSlice that the API
// server itself writes for it (see IsAPIServerEndpointSlice).
const (
	APIServerNamespace = "default"
	APIServerName      = "kubernetes"
)

// IsAPIServerEndpointSlice reports whether s is the API server's own
// EndpointSlice: kube-apiserver's endpoint reconciler
// (k8s.io/kubernetes pkg/controlplane/reconcilers) writes exactly one, named
// like the Service (default/kubernetes), labelled
// kubernetes.io/service-name: kubernetes and without an
// endpointslice.kubernetes.io/managed-by label. Any other EndpointSlice
// labelled for that Service is someone else's (a user who may create
// EndpointSlices in default, or a controller: the EndpointSlice and
// mirroring controllers set managed-by and generate their names) and must
// not widen a kubernetesAPI peer. The name is held by the API server's
// slice as long as the API server runs, so no one else can take it without
// the right to delete or update that slice.
func IsAPIServerEndpointSlice(s *discoveryv1.EndpointSlice) bool {
	if s == nil || s.Namespace != APIServerNamespace || s.Name != APIServerName ||
		s.Labels[discoveryv1.LabelServiceName] != APIServerName {
		return false
	}
	_, managed := s.Labels[discoveryv1.LabelManagedBy]
	return !managed
}

// Endpoints are addresses reachable on the same ports: what one
// EndpointSlice of the API server says.
type Endpoints struct {
	// Addresses are single hosts, each rendered as a /32 or /128 ipBlock.
	Addresses []netip.Addr
	// Ports are the ports the addresses serve on; never empty.
	Ports []networkingv1.NetworkPolicyPort
}

// APIServerEndpoints turns the API server's own EndpointSlice (see
// IsAPIServerEndpointSlice; every other slice given is ignored) into
// Endpoints, one per slice that has a ready endpoint, sorted by their first
// address. Endpoints that are not ready (conditions.ready false)
// and FQDN slices are left out; an unset ready condition counts as ready, as
// the EndpointSlice API defines it. Nil slices are skipped, and so are ports
// without a number and slices left without ports (fail closed: they would
// open every port of their addresses; the API server's own slice always
// names its port).
func APIServerEndpoints(endpointSlices []*discoveryv1.EndpointSlice) []Endpoints {
	var out []Endpoints
	for _, s := range endpointSlices {
		if !IsAPIServerEndpointSlice(s) || s.AddressType == discoveryv1.AddressTypeFQDN {
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
