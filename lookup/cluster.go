// Package lookup answers the Service, Namespace and NetworkAllowlist lookups
// that validation and policy rendering need, from a controller-runtime reader
// (in moat serve, the manager's informer cache, so a lookup costs no API
// round trip).
package lookup

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// Cluster serves validation.Cluster and policy.Services from a
// controller-runtime client.Reader. Every method returns (nil, nil) when the
// object does not exist and a non-nil error only when the read itself failed.
// Returned objects are copies the caller may keep and modify.
type Cluster struct {
	reader client.Reader
	ctx    context.Context
}

var (
	_ validation.Cluster = &Cluster{}
	_ policy.Services    = &Cluster{}
)

// New returns a Cluster that reads through reader. Pass the manager's cached
// client (mgr.GetClient() or mgr.GetCache()) for cache-backed lookups.
func New(reader client.Reader) *Cluster {
	return &Cluster{reader: reader, ctx: context.Background()}
}

// WithContext returns a Cluster whose reads use ctx (cancellation, deadlines),
// sharing the same reader.
func (c *Cluster) WithContext(ctx context.Context) *Cluster {
	return &Cluster{reader: c.reader, ctx: ctx}
}

// Service returns the named Service, or (nil, nil) when it does not exist.
func (c *Cluster) Service(namespace, name string) (*corev1.Service, error) {
	svc := &corev1.Service{}
	if err := c.reader.Get(c.ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking up Service %s/%s: %w", namespace, name, err)
	}
	return svc, nil
}

// Namespace returns the named Namespace, or (nil, nil) when it does not exist.
func (c *Cluster) Namespace(name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := c.reader.Get(c.ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking up Namespace %s: %w", name, err)
	}
	return ns, nil
}

// Services returns every Service in the namespace (none when it has none).
func (c *Cluster) Services(namespace string) ([]*corev1.Service, error) {
	list := &corev1.ServiceList{}
	if err := c.reader.List(c.ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Services in namespace %s: %w", namespace, err)
	}
	out := make([]*corev1.Service, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// Allowlists returns every NetworkAllowlist in the namespace (none when it
// has none).
func (c *Cluster) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	list := &v1alpha1.NetworkAllowlistList{}
	if err := c.reader.List(c.ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NetworkAllowlists in namespace %s: %w", namespace, err)
	}
	out := make([]*v1alpha1.NetworkAllowlist, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// Nodes returns every Node of the cluster (none when it has none).
func (c *Cluster) Nodes() ([]*corev1.Node, error) {
	list := &corev1.NodeList{}
	if err := c.reader.List(c.ctx, list); err != nil {
		return nil, fmt.Errorf("listing Nodes: %w", err)
	}
	out := make([]*corev1.Node, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// APIServerEndpointSlices returns the EndpointSlices of the API server's
// Service (policy.APIServerNamespace/policy.APIServerName).
func (c *Cluster) APIServerEndpointSlices() ([]*discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := c.reader.List(c.ctx, list, client.InNamespace(policy.APIServerNamespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: policy.APIServerName}); err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of %s/%s: %w", policy.APIServerNamespace, policy.APIServerName, err)
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}
