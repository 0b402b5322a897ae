// Package lookup answers the Service, Namespace and NetworkAllowlist lookups
// that validation and policy rendering need, from a controller-runtime reader
// (in moat serve, the manager's informer cache, so a lookup costs no API
// round trip).
package lookup

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// Cluster reads lookups through a controller-runtime client.Reader. It holds
// no per-request state and is safe for concurrent use; each admission
// request or reconcile takes its own Session.
type Cluster struct {
	reader client.Reader
	// getOpts are passed to every Get: client.UnsafeDisableDeepCopy for
	// a read-only Cluster (NewReadOnly).
	getOpts []client.GetOption
}

// New returns a Cluster that reads through reader. Pass the manager's cache
// (mgr.GetCache() or mgr.GetClient()) for cache-backed lookups, or its API
// reader for live ones.
func New(reader client.Reader) *Cluster {
	return &Cluster{reader: reader}
}

// NewReadOnly returns a Cluster whose Service and Namespace lookups return
// the informer cache's own objects instead of deep copies of them
// (client.UnsafeDisableDeepCopy; readers other than the cache ignore it and
// return objects of their own). It is for callers that only read what they
// get, such as the validating webhooks: modifying a returned Service or
// Namespace would modify the cache, and every later reader would see the
// change. Lists (Services, Allowlists, ...) are still copied. The controller
// uses New.
func NewReadOnly(reader client.Reader) *Cluster {
	return &Cluster{reader: reader, getOpts: []client.GetOption{client.UnsafeDisableDeepCopy}}
}

// Session returns the lookups of one admission request or reconcile: its
// reads use ctx, and each distinct Service, Namespace, Service list and
// allowlist list is read at most once, however often the rules ask for it
// (an allowlist may name one Service in each of its 64x64 peers). The
// answers, failed reads included, live as long as the Session, so they are
// never staler than the request itself.
//
// A Session keeps ctx because validation.Cluster and policy.Services take no
// context (validation and rendering stay pure); it must not outlive the
// request or reconcile it was made for, and is not safe for concurrent use.
func (c *Cluster) Session(ctx context.Context) *Session {
	return &Session{
		ctx:        ctx,
		reader:     c.reader,
		getOpts:    c.getOpts,
		services:   map[[2]string]answer[*corev1.Service]{},
		namespaces: map[string]answer[*corev1.Namespace]{},
		lists:      map[string]answer[[]*corev1.Service]{},
		allowlists: map[string]answer[[]*v1alpha1.NetworkAllowlist]{},
	}
}

// Session serves validation.Cluster and policy.Services for one request (see
// Cluster.Session). Every method returns (nil, nil) when the object does not
// exist and a non-nil error only when the read itself failed. Returned
// objects are shared by the Session's callers, and for a Session of a
// NewReadOnly Cluster with every other reader of the cache: read them, do not
// modify them.
type Session struct {
	ctx     context.Context
	reader  client.Reader
	getOpts []client.GetOption

	services   map[[2]string]answer[*corev1.Service]
	namespaces map[string]answer[*corev1.Namespace]
	lists      map[string]answer[[]*corev1.Service]
	allowlists map[string]answer[[]*v1alpha1.NetworkAllowlist]
	// Cluster-wide lists, for moat render's --kubeconfig.
	nodes           *answer[[]*corev1.Node]
	apiServerSlices *answer[[]*discoveryv1.EndpointSlice]
}

var (
	_ validation.Cluster = &Session{}
	_ policy.Services    = &Session{}
)

type answer[T any] struct {
	value T
	err   error
}

// once returns the remembered answer for key, or reads and remembers it.
func once[K comparable, T any](answers map[K]answer[T], key K, read func() (T, error)) (T, error) {
	if a, ok := answers[key]; ok {
		return a.value, a.err
	}
	value, err := read()
	answers[key] = answer[T]{value, err}
	return value, err
}

// Service returns the named Service, or (nil, nil) when it does not exist.
func (s *Session) Service(namespace, name string) (*corev1.Service, error) {
	return once(s.services, [2]string{namespace, name}, func() (*corev1.Service, error) {
		svc := &corev1.Service{}
		if err := s.reader.Get(s.ctx, client.ObjectKey{Namespace: namespace, Name: name}, svc, s.getOpts...); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("looking up Service %s/%s: %w", namespace, name, err)
		}
		return svc, nil
	})
}

// Namespace returns the named Namespace, or (nil, nil) when it does not exist.
func (s *Session) Namespace(name string) (*corev1.Namespace, error) {
	return once(s.namespaces, name, func() (*corev1.Namespace, error) {
		ns := &corev1.Namespace{}
		if err := s.reader.Get(s.ctx, client.ObjectKey{Name: name}, ns, s.getOpts...); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("looking up Namespace %s: %w", name, err)
		}
		return ns, nil
	})
}

// Services returns every Service in the namespace (none when it has none).
func (s *Session) Services(namespace string) ([]*corev1.Service, error) {
	return once(s.lists, namespace, func() ([]*corev1.Service, error) {
		list := &corev1.ServiceList{}
		if err := s.reader.List(s.ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing Services in namespace %s: %w", namespace, err)
		}
		out := make([]*corev1.Service, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	})
}

// Allowlists returns every NetworkAllowlist in the namespace (none when it
// has none).
func (s *Session) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	return once(s.allowlists, namespace, func() ([]*v1alpha1.NetworkAllowlist, error) {
		list := &v1alpha1.NetworkAllowlistList{}
		if err := s.reader.List(s.ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing NetworkAllowlists in namespace %s: %w", namespace, err)
		}
		out := make([]*v1alpha1.NetworkAllowlist, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	})
}

// Nodes returns every Node of the cluster (none when it has none).
func (s *Session) Nodes() ([]*corev1.Node, error) {
	return onceValue(&s.nodes, func() ([]*corev1.Node, error) {
		list := &corev1.NodeList{}
		if err := s.reader.List(s.ctx, list); err != nil {
			return nil, fmt.Errorf("listing Nodes: %w", err)
		}
		out := make([]*corev1.Node, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	})
}

// APIServerEndpointSlices returns the EndpointSlices of the API server's
// Service (policy.APIServerNamespace/policy.APIServerName).
func (s *Session) APIServerEndpointSlices() ([]*discoveryv1.EndpointSlice, error) {
	return onceValue(&s.apiServerSlices, func() ([]*discoveryv1.EndpointSlice, error) {
		list := &discoveryv1.EndpointSliceList{}
		if err := s.reader.List(s.ctx, list, client.InNamespace(policy.APIServerNamespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: policy.APIServerName}); err != nil {
			return nil, fmt.Errorf("listing the EndpointSlices of %s/%s: %w", policy.APIServerNamespace, policy.APIServerName, err)
		}
		out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		return out, nil
	})
}

// NetworkPolicies returns every NetworkPolicy in the namespace that the
// reader holds (none when it has none). It is not remembered: each call
// reads again.
func (s *Session) NetworkPolicies(namespace string) ([]*networkingv1.NetworkPolicy, error) {
	list := &networkingv1.NetworkPolicyList{}
	if err := s.reader.List(s.ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NetworkPolicies in namespace %s: %w", namespace, err)
	}
	out := make([]*networkingv1.NetworkPolicy, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// AdminTier returns the admin-tier objects that enforcement e evaluates
// (for moat explain): every AdminNetworkPolicy and the
// BaselineAdminNetworkPolicy (none when its API is not installed) for
// adminnetworkpolicy, every ClusterNetworkPolicy for clusternetworkpolicy,
// nothing for networkpolicy. It is not remembered: each call reads again.
func (s *Session) AdminTier(e policy.Enforcement) ([]policy.AdminTierObject, error) {
	switch e {
	case policy.EnforcementAdminNetworkPolicy:
		anps := &npav1alpha1.AdminNetworkPolicyList{}
		if err := s.list(anps, "AdminNetworkPolicies", e); err != nil {
			return nil, err
		}
		banps := &npav1alpha1.BaselineAdminNetworkPolicyList{}
		if err := s.list(banps, "BaselineAdminNetworkPolicies", e); err != nil && !meta.IsNoMatchError(errors.Unwrap(err)) {
			return nil, err
		}
		out := make([]policy.AdminTierObject, 0, len(anps.Items)+len(banps.Items))
		for i := range anps.Items {
			out = append(out, &anps.Items[i])
		}
		for i := range banps.Items {
			out = append(out, &banps.Items[i])
		}
		return out, nil
	case policy.EnforcementClusterNetworkPolicy:
		cnps := &npav1beta1.ClusterNetworkPolicyList{}
		if err := s.list(cnps, "ClusterNetworkPolicies", e); err != nil {
			return nil, err
		}
		out := make([]policy.AdminTierObject, 0, len(cnps.Items))
		for i := range cnps.Items {
			out = append(out, &cnps.Items[i])
		}
		return out, nil
	}
	return nil, nil
}

func (s *Session) list(list client.ObjectList, what string, e policy.Enforcement) error {
	if err := s.reader.List(s.ctx, list); err != nil {
		return fmt.Errorf("listing %s (--enforcement=%s): %w", what, e, err)
	}
	return nil
}

// Pods returns every Pod in the namespace (for moat explain). It is not
// remembered: each call reads again.
func (s *Session) Pods(namespace string) ([]*corev1.Pod, error) {
	return s.pods(fmt.Sprintf("in namespace %s", namespace), client.InNamespace(namespace))
}

// PodsWithIP returns the Pods of every namespace whose status.podIP is ip
// (for moat explain): a field selector, so that the API server, not the
// caller, searches.
func (s *Session) PodsWithIP(ip string) ([]*corev1.Pod, error) {
	return s.pods("with address "+ip, client.MatchingFields{"status.podIP": ip})
}

func (s *Session) pods(what string, opts ...client.ListOption) ([]*corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := s.reader.List(s.ctx, list, opts...); err != nil {
		return nil, fmt.Errorf("listing Pods %s: %w", what, err)
	}
	out := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// onceValue is once for a Session-wide answer.
func onceValue[T any](a **answer[T], read func() (T, error)) (T, error) {
	if *a == nil {
		value, err := read()
		*a = &answer[T]{value, err}
	}
	return (*a).value, (*a).err
}
