package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// KubernetesAPIIndex is the field index on NetworkAllowlists that holds
// "true" for allowlists with a kubernetesAPI peer.
const KubernetesAPIIndex = "moat.dev/kubernetes-api"

// The cluster-wide facts that policies depend on besides namespaces,
// allowlists and Services: the nodes' addresses (--allow-ingress-from-nodes)
// and the API server's endpoints (kubernetesAPI peers). They are read from a
// cache of their own that holds only what moat needs: the API server's own
// EndpointSlice (default/kubernetes, policy.IsAPIServerEndpointSlice), and Nodes stripped to their name, annotations and
// addresses, so that memory stays small in large clusters.

// trafficCache is a cache that the manager starts, and waits for, with its
// own (a runnable with GetCache joins the manager's caches).
type trafficCache struct{ cache.Cache }

func (c trafficCache) GetCache() cache.Cache { return c.Cache }

// newTrafficCache returns the cache of Nodes (only with
// AllowIngressFromNodes) and of the API server's EndpointSlices, added to mgr.
func newTrafficCache(mgr ctrl.Manager, cfg policy.Config) (cache.Cache, error) {
	byObject := map[client.Object]cache.ByObject{
		// Only the slice named like the Service: other slices labelled for
		// it are not the API server's and are never cached, however many
		// there are.
		&discoveryv1.EndpointSlice{}: {
			Namespaces: map[string]cache.Config{policy.APIServerNamespace: {}},
			Label:      labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: policy.APIServerName}),
			Field:      fields.OneTermEqualSelector("metadata.name", policy.APIServerName),
		},
	}
	if cfg.AllowIngressFromNodes {
		byObject[&corev1.Node{}] = cache.ByObject{Transform: stripNode}
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(),
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		ByObject:   byObject,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cache of Nodes and API server endpoints: %w", err)
	}
	if err := mgr.Add(trafficCache{c}); err != nil {
		return nil, err
	}
	// Start the informers with the cache, so that admission (which runs on
	// every replica) never waits for them.
	for obj := range byObject {
		if _, err := c.GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// stripNode keeps of a Node only what NodeAddresses reads.
func stripNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta: node.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            node.Name,
			UID:             node.UID,
			ResourceVersion: node.ResourceVersion,
			Annotations:     node.Annotations,
		},
		Status: corev1.NodeStatus{Addresses: node.Status.Addresses},
	}, nil
}

// clusterFacts fills the cluster-wide part of a render input: node addresses
// when ingress from nodes is on, and the API server's endpoints when an
// allowlist has a kubernetesAPI peer.
func (r *Reconciler) clusterFacts(ctx context.Context, in *policy.Input) error {
	if r.cfg.AllowIngressFromNodes {
		addrs, err := r.nodeAddresses(ctx)
		if err != nil {
			return err
		}
		in.NodeAddresses = addrs
	}
	if slices.ContainsFunc(in.Allowlists, func(al *v1alpha1.NetworkAllowlist) bool { return al.Spec.UsesKubernetesAPI() }) {
		list := &discoveryv1.EndpointSliceList{}
		if err := r.traffic.List(ctx, list, client.InNamespace(policy.APIServerNamespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: policy.APIServerName}); err != nil {
			return fmt.Errorf("listing the EndpointSlices of %s/%s: %w", policy.APIServerNamespace, policy.APIServerName, err)
		}
		endpointSlices := make([]*discoveryv1.EndpointSlice, len(list.Items))
		for i := range list.Items {
			endpointSlices[i] = &list.Items[i]
		}
		in.APIServer = policy.APIServerEndpoints(endpointSlices)
	}
	return nil
}

// nodeAddresses returns the addresses of every node, within the bounds of
// policy.BoundedNodeAddresses.
func (r *Reconciler) nodeAddresses(ctx context.Context) ([]netip.Addr, error) {
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	return policy.NodeAddresses(nodes, r.cfg), nil
}

// nodes lists the Nodes of the traffic cache (read-only: not copied).
func (r *Reconciler) nodes(ctx context.Context) ([]*corev1.Node, error) {
	list := &corev1.NodeList{}
	if err := r.traffic.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Nodes: %w", err)
	}
	nodes := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	return nodes, nil
}

// EventNodeAddressesOverLimit: a Node offers more addresses than
// --max-node-addresses-per-node (or all nodes together more than
// --max-node-addresses); the extra ones are not admitted.
const EventNodeAddressesOverLimit = "NodeAddressesOverLimit"

// reportNodeOverflow records what the node address bounds left out: the
// gauges, and a Warning Event on each node newly over its bound. prev is what
// the last report left out.
func (r *Reconciler) reportNodeOverflow(ctx context.Context, nodes []*corev1.Node, now, prev policy.NodeAddressOverflow) {
	nodesOverAddressLimit.Set(float64(len(now.Nodes)))
	nodeAddressesDropped.Set(float64(now.Dropped))
	for _, node := range nodes {
		if node == nil {
			continue
		}
		if _, over := slices.BinarySearch(now.Nodes, node.Name); !over {
			continue
		}
		if _, before := slices.BinarySearch(prev.Nodes, node.Name); before {
			continue
		}
		logf.FromContext(ctx).Info("a Node offers more addresses than moat admits per node; the extra ones are left out", "node", node.Name)
		r.recorder.Eventf(node, nil, corev1.EventTypeWarning, EventNodeAddressesOverLimit, "ReadAddresses",
			"Node %s offers more than %d addresses (status and --node-address-annotations): only its first %d are admitted into isolated projects; "+
				"check who writes its addresses, or raise --max-node-addresses-per-node", node.Name, perNodeLimit(r.cfg), perNodeLimit(r.cfg))
	}
	if now.Dropped > 0 && prev.Dropped == 0 {
		logf.FromContext(ctx).Info("the nodes offer more addresses than moat admits; the highest are left out", "dropped", now.Dropped,
			"limit", r.cfg.MaxNodeAddresses)
	}
}

func perNodeLimit(cfg policy.Config) int {
	if cfg.MaxNodeAddressesPerNode > 0 {
		return cfg.MaxNodeAddressesPerNode
	}
	return policy.DefaultMaxNodeAddressesPerNode
}

// nodeWatch enqueues every isolated namespace when the set of node addresses
// changes, and nothing otherwise: a node that joins with an address another
// node already has, or a status update that keeps the addresses, costs no
// reconcile.
type nodeWatch struct {
	r        *Reconciler
	mu       sync.Mutex
	last     []netip.Addr
	overflow policy.NodeAddressOverflow
	seen     bool
}

func (w *nodeWatch) toNamespaces(ctx context.Context, _ client.Object) []reconcile.Request {
	nodes, err := w.r.nodes(ctx)
	if err != nil {
		logf.FromContext(ctx).Error(err, "reading node addresses")
		return nil
	}
	addrs, overflow := policy.BoundedNodeAddresses(nodes, w.r.cfg)
	w.mu.Lock()
	changed := !w.seen || !slices.Equal(addrs, w.last)
	prev := w.overflow
	w.seen, w.last, w.overflow = true, addrs, overflow
	w.mu.Unlock()
	w.r.reportNodeOverflow(ctx, nodes, overflow, prev)
	if !changed {
		return nil
	}
	return w.r.isolatedNamespaces(ctx)
}

// nodeAddressesChanged passes Node creations and deletions, and updates that
// change the node's addresses as NodeAddresses reads them.
func nodeAddressesChanged(cfg policy.Config) predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, ok1 := e.ObjectOld.(*corev1.Node)
			after, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return !slices.Equal(policy.NodeAddresses([]*corev1.Node{before}, cfg), policy.NodeAddresses([]*corev1.Node{after}, cfg))
		},
	}
}

// apiServerChanged passes changes of the API server's EndpointSlices that
// change what a kubernetesAPI peer renders to.
func apiServerChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, ok1 := e.ObjectOld.(*discoveryv1.EndpointSlice)
			after, ok2 := e.ObjectNew.(*discoveryv1.EndpointSlice)
			if !ok1 || !ok2 {
				return true
			}
			return !slices.EqualFunc(policy.APIServerEndpoints([]*discoveryv1.EndpointSlice{before}),
				policy.APIServerEndpoints([]*discoveryv1.EndpointSlice{after}), func(a, b policy.Endpoints) bool {
					return slices.Equal(a.Addresses, b.Addresses) && equality.Semantic.DeepEqual(a.Ports, b.Ports)
				})
		},
	}
}

// apiServerToNamespaces maps a change of the API server's endpoints to the
// namespaces whose allowlists have a kubernetesAPI peer.
func (r *Reconciler) apiServerToNamespaces(ctx context.Context, _ client.Object) []reconcile.Request {
	allowlists := &v1alpha1.NetworkAllowlistList{}
	if err := r.client.List(ctx, allowlists, client.MatchingFields{KubernetesAPIIndex: "true"}); err != nil {
		logf.FromContext(ctx).Error(err, "listing the NetworkAllowlists with a kubernetesAPI peer")
		return nil
	}
	seen := map[string]bool{}
	var reqs []reconcile.Request
	for _, al := range allowlists.Items {
		if !seen[al.Namespace] {
			seen[al.Namespace] = true
			reqs = append(reqs, namespaceRequest(al.Namespace))
		}
	}
	return reqs
}

// usesKubernetesAPI is the KubernetesAPIIndex of an allowlist.
func usesKubernetesAPI(obj client.Object) []string {
	if al, ok := obj.(*v1alpha1.NetworkAllowlist); ok && al.Spec.UsesKubernetesAPI() {
		return []string{"true"}
	}
	return nil
}
