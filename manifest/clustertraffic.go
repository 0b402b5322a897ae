package manifest

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"moat.dev/moat/policy"
)

// indexClusterObject records a Node, or an EndpointSlice of the API server
// (default/kubernetes); other EndpointSlices are not needed.
func (x *Index) indexClusterObject(o *Object) {
	switch obj := o.Object.(type) {
	case *corev1.Node:
		x.nodes[obj.Name] = o
	case *discoveryv1.EndpointSlice:
		if obj.Namespace == policy.APIServerNamespace && obj.Labels[discoveryv1.LabelServiceName] == policy.APIServerName {
			x.apiServerSlices[obj.Name] = o
		}
	}
}

// clusterFacts returns the cluster-wide part of a render input: with
// cfg.AllowIngressFromNodes the addresses of the Nodes of the manifests and
// the live cluster, and the endpoints of the API server from its own
// EndpointSlice (policy.IsAPIServerEndpointSlice; other slices of
// default/kubernetes are ignored) in the manifests or the live cluster.
// The manifests win over the live cluster for objects of the same
// name.
func (x *Index) clusterFacts(cfg policy.Config) (policy.Input, error) {
	var in policy.Input
	if cfg.AllowIngressFromNodes {
		nodes := make([]*corev1.Node, 0, len(x.nodes))
		for _, o := range x.nodes {
			nodes = append(nodes, o.Object.(*corev1.Node))
		}
		var live []*corev1.Node
		if x.live != nil {
			var err error
			if live, err = noMatchIsNone(x.live.Nodes)(); err != nil {
				return in, err
			}
		}
		in.NodeAddresses = policy.NodeAddresses(merge(nodes, live), cfg)
	}
	slices := make([]*discoveryv1.EndpointSlice, 0, len(x.apiServerSlices))
	for _, o := range x.apiServerSlices {
		slices = append(slices, o.Object.(*discoveryv1.EndpointSlice))
	}
	var live []*discoveryv1.EndpointSlice
	if x.live != nil {
		var err error
		if live, err = noMatchIsNone(x.live.APIServerEndpointSlices)(); err != nil {
			return in, err
		}
	}
	in.APIServer = policy.APIServerEndpoints(merge(slices, live))
	return in, nil
}

// noMatchIsNone makes a kind that the cluster does not serve a lookup that
// finds nothing.
func noMatchIsNone[T any](get func() ([]T, error)) func() ([]T, error) {
	return func() ([]T, error) {
		l, err := get()
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return l, err
	}
}
