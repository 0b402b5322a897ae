package webhook

import (
	corev1 "k8s.io/api/core/v1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/validation"
)

// memoCluster answers the lookups of one admission request: each distinct
// Service, Namespace, Service list and allowlist list is read from the
// wrapped Cluster at most once, however often the rules ask for it (an
// allowlist may name one Service in each of its 64x64 peers). Answers,
// failed reads included, are kept for the life of the request only, so they
// are never stale by more than the request's own duration.
type memoCluster struct {
	inner      validation.Cluster
	services   map[[2]string]memoAnswer[*corev1.Service]
	namespaces map[string]memoAnswer[*corev1.Namespace]
	lists      map[string]memoAnswer[[]*corev1.Service]
	allowlists map[string]memoAnswer[[]*v1alpha1.NetworkAllowlist]
}

type memoAnswer[T any] struct {
	value T
	err   error
}

var _ validation.Cluster = &memoCluster{}

// newMemoCluster wraps inner; a nil inner gives a nil Cluster (no lookups).
func newMemoCluster(inner validation.Cluster) validation.Cluster {
	if inner == nil {
		return nil
	}
	return &memoCluster{
		inner:      inner,
		services:   map[[2]string]memoAnswer[*corev1.Service]{},
		namespaces: map[string]memoAnswer[*corev1.Namespace]{},
		lists:      map[string]memoAnswer[[]*corev1.Service]{},
		allowlists: map[string]memoAnswer[[]*v1alpha1.NetworkAllowlist]{},
	}
}

func memoize[K comparable, T any](m map[K]memoAnswer[T], key K, read func() (T, error)) (T, error) {
	if a, ok := m[key]; ok {
		return a.value, a.err
	}
	value, err := read()
	m[key] = memoAnswer[T]{value, err}
	return value, err
}

func (c *memoCluster) Service(namespace, name string) (*corev1.Service, error) {
	return memoize(c.services, [2]string{namespace, name}, func() (*corev1.Service, error) { return c.inner.Service(namespace, name) })
}

func (c *memoCluster) Namespace(name string) (*corev1.Namespace, error) {
	return memoize(c.namespaces, name, func() (*corev1.Namespace, error) { return c.inner.Namespace(name) })
}

func (c *memoCluster) Services(namespace string) ([]*corev1.Service, error) {
	return memoize(c.lists, namespace, func() ([]*corev1.Service, error) { return c.inner.Services(namespace) })
}

func (c *memoCluster) Allowlists(namespace string) ([]*v1alpha1.NetworkAllowlist, error) {
	return memoize(c.allowlists, namespace, func() ([]*v1alpha1.NetworkAllowlist, error) { return c.inner.Allowlists(namespace) })
}
