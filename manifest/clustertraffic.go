package manifest

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
// the live cluster, and the endpoints of the API server from the
// EndpointSlices of default/kubernetes in the manifests and the live
// cluster. The manifests win over the live cluster for objects of the same
// name.
func (x *Index) clusterFacts(cfg policy.Config) (policy.Input, error) {
	var in policy.Input
	if cfg.AllowIngressFromNodes {
		byName := map[string]*corev1.Node{}
		for name, o := range x.nodes {
			byName[name] = o.Object.(*corev1.Node)
		}
		live, err := liveListAll(x, &corev1.NodeList{}, func(l *corev1.NodeList) []*corev1.Node {
			out := make([]*corev1.Node, len(l.Items))
			for i := range l.Items {
				out[i] = &l.Items[i]
			}
			return out
		})
		if err != nil {
			return in, err
		}
		in.NodeAddresses = policy.NodeAddresses(merge(byName, live), cfg)
	}
	byName := map[string]*discoveryv1.EndpointSlice{}
	for name, o := range x.apiServerSlices {
		byName[name] = o.Object.(*discoveryv1.EndpointSlice)
	}
	live, err := liveListAll(x, &discoveryv1.EndpointSliceList{}, func(l *discoveryv1.EndpointSliceList) []*discoveryv1.EndpointSlice {
		out := make([]*discoveryv1.EndpointSlice, len(l.Items))
		for i := range l.Items {
			out[i] = &l.Items[i]
		}
		return out
	}, client.InNamespace(policy.APIServerNamespace), client.MatchingLabels{discoveryv1.LabelServiceName: policy.APIServerName})
	if err != nil {
		return in, err
	}
	in.APIServer = policy.APIServerEndpoints(merge(byName, live))
	return in, nil
}

// liveListAll lists objects of the live cluster (none without one).
func liveListAll[L client.ObjectList, T client.Object](x *Index, list L, items func(L) []T, opts ...client.ListOption) ([]T, error) {
	if x.live == nil {
		return nil, nil
	}
	switch err := x.live.List(context.Background(), list, opts...); {
	case meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("listing %T in the cluster: %w", list, err)
	}
	return items(list), nil
}
