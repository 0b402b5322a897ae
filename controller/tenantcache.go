package controller

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
)

// The tenant check (tenantpolicies.go) reads the NetworkPolicies that moat
// does not manage, which the manager's cache leaves out (moat serve caches
// its own policies only). They come from a cache of their own, stripped to
// what the check reads (name, UID, generation, labels and spec: no
// annotations, such as kubectl's last-applied copy of the spec, and no
// managed fields), so that a restart checks every isolated namespace without
// one List per namespace against the API server, and a user policy that is
// created, changed or deleted is checked again at once.

// newTenantPolicyCache returns the cache of NetworkPolicies not labelled
// managed-by moat, added to mgr.
func newTenantPolicyCache(mgr ctrl.Manager) (cache.Cache, error) {
	notManaged, err := labels.NewRequirement(v1alpha1.ManagedByLabel, selection.NotEquals, []string{v1alpha1.ManagedByValue})
	if err != nil {
		return nil, err
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(),
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{
			&networkingv1.NetworkPolicy{}: {Label: labels.NewSelector().Add(*notManaged), Transform: stripTenantPolicy},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cache of user NetworkPolicies: %w", err)
	}
	if err := mgr.Add(trafficCache{c}); err != nil {
		return nil, err
	}
	if _, err := c.GetInformer(context.Background(), &networkingv1.NetworkPolicy{}, cache.BlockUntilSynced(false)); err != nil {
		return nil, fmt.Errorf("watching user NetworkPolicies: %w", err)
	}
	return c, nil
}

// stripTenantPolicy keeps of a NetworkPolicy what the tenant check and its
// Events read.
func stripTenantPolicy(obj any) (any, error) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return obj, nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: np.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: np.Name, Namespace: np.Namespace, UID: np.UID, ResourceVersion: np.ResourceVersion,
			Generation: np.Generation, Labels: np.Labels,
		},
		Spec: np.Spec,
	}, nil
}
