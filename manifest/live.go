package manifest

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
)

// clusterTimeout bounds each request to the live cluster.
const clusterTimeout = 15 * time.Second

// NewCluster returns the lookups (the webhook's, package lookup: one
// Session for the whole run, so each object is read at most once) of the
// live cluster that a kubeconfig file points at (its current context), for
// Index lookups of objects that the manifests do not define. It only reads:
// Services, Namespaces and NetworkAllowlists. It fails when the cluster cannot
// be reached, so that an unreachable cluster is one clear error rather than a
// failed lookup per object.
func NewCluster(kubeconfig string) (*lookup.Session, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Timeout = clusterTimeout
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := errors.Join(npav1alpha1.Install(scheme), npav1beta1.Install(scheme)); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster of kubeconfig %s: %w", kubeconfig, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.List(ctx, &corev1.NamespaceList{}, client.Limit(1)); err != nil {
		return nil, fmt.Errorf("reading Namespaces in the cluster of kubeconfig %s (at %s): %w", kubeconfig, cfg.Host, err)
	}
	return lookup.New(c).Session(context.Background()), nil
}
