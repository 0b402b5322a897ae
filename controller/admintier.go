package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	npav1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"moat.dev/moat/policy"
)

// The admin-tier objects moat owns (--enforcement): cluster-scoped, one or
// more per isolated namespace, labelled with it (policy.AdminTierLabels).
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=adminnetworkpolicies;clusternetworkpolicies,verbs=get;list;watch;create;update;patch;delete

// AddAdminTierToScheme registers the admin-tier types moat writes.
func AddAdminTierToScheme(s *runtime.Scheme) error {
	return errors.Join(npav1alpha1.Install(s), npav1beta1.Install(s))
}

// adminTierKind is the admin-tier object of an Enforcement: an empty object
// and list, for watches and reads. ok is false for NetworkPolicy
// enforcement.
func adminTierKind(e policy.Enforcement) (obj client.Object, list client.ObjectList, ok bool) {
	switch e {
	case policy.EnforcementAdminNetworkPolicy:
		return &npav1alpha1.AdminNetworkPolicy{}, &npav1alpha1.AdminNetworkPolicyList{}, true
	case policy.EnforcementClusterNetworkPolicy:
		return &npav1beta1.ClusterNetworkPolicy{}, &npav1beta1.ClusterNetworkPolicyList{}, true
	}
	return nil, nil, false
}

// adminTierResource is the resource an Enforcement writes.
func adminTierResource(e policy.Enforcement) schema.GroupVersionResource {
	if e == policy.EnforcementClusterNetworkPolicy {
		gv := npav1beta1.GroupVersion
		return schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: "clusternetworkpolicies"}
	}
	gv := npav1alpha1.GroupVersion
	return schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: "adminnetworkpolicies"}
}

// CheckAdminTierServed returns a clear error when the cluster does not serve
// the admin-tier API that e writes (its CRD is not installed, or at another
// version); nil for NetworkPolicy enforcement. mapper is the manager's,
// which reads the API server's discovery.
func CheckAdminTierServed(mapper meta.RESTMapper, e policy.Enforcement) error {
	if !e.AdminTier() {
		return nil
	}
	gvr := adminTierResource(e)
	_, err := mapper.KindFor(gvr)
	if err == nil {
		return nil
	}
	return fmt.Errorf("--enforcement=%s needs the API server to serve %s.%s/%s, and it does not (%v): install the CRDs of sigs.k8s.io/network-policy-api v0.3.0 and a network plugin that enforces them, or use --enforcement=%s",
		e, gvr.Resource, gvr.Group, gvr.Version, err, policy.EnforcementNetworkPolicy)
}

// convergeAdminTier makes the admin-tier objects of namespace what the
// model renders: the main object (with the Deny) first, then the rest;
// stale ones are deleted, all of them when the namespace enforces nothing.
// It returns the failed writes by object name. An object of the same name
// that moat does not manage is left alone and reported as failed.
func (r *Reconciler) convergeAdminTier(ctx context.Context, namespace string, m policy.Model) map[string]error {
	failed := map[string]error{}
	_, list, ok := adminTierKind(r.cfg.Enforcement)
	if !ok {
		return failed
	}
	desired, err := m.AdminTier(r.cfg.Enforcement, r.cfg.AdminTierPriority)
	if err != nil {
		failed[policy.AdminTierName(namespace, 0)] = err
		return failed
	}
	live, err := r.liveAdminTier(ctx, namespace, list)
	if err != nil {
		failed[policy.AdminTierName(namespace, 0)] = err
		return failed
	}
	wanted := map[string]bool{}
	for _, obj := range desired {
		wanted[obj.GetName()] = true
		if err := r.applyAdminTier(ctx, obj, live[obj.GetName()]); err != nil {
			failed[obj.GetName()] = err
		}
	}
	for name, obj := range live {
		if wanted[name] || obj.GetDeletionTimestamp() != nil {
			continue
		}
		uid, rv := obj.GetUID(), obj.GetResourceVersion()
		if err := r.client.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil && !apierrors.IsNotFound(err) {
			failed[name] = fmt.Errorf("deleting %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, name, err)
		}
	}
	return failed
}

// liveAdminTier returns the admin-tier objects moat manages for namespace,
// by name.
func (r *Reconciler) liveAdminTier(ctx context.Context, namespace string, list client.ObjectList) (map[string]client.Object, error) {
	if err := r.client.List(ctx, list, client.MatchingLabels(policy.AdminTierLabels(namespace))); err != nil {
		return nil, fmt.Errorf("listing the admin-tier objects of namespace %s: %w", namespace, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make(map[string]client.Object, len(items))
	for _, item := range items {
		obj, ok := item.(client.Object)
		if ok {
			out[obj.GetName()] = obj
		}
	}
	return out, nil
}

// applyAdminTier server-side applies obj unless current (the managed object
// of that name, nil when there is none) already carries its labels and
// spec. Without a managed object, an object of that name that moat does not
// manage is never overwritten.
func (r *Reconciler) applyAdminTier(ctx context.Context, obj policy.AdminTierObject, current client.Object) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if current != nil && adminTierUpToDate(obj, current) {
		return nil
	}
	if current == nil {
		other, _, _ := adminTierKind(r.cfg.Enforcement)
		err := r.apiReader.Get(ctx, client.ObjectKey{Name: obj.GetName()}, other)
		switch {
		case err == nil && !policy.IsManaged(other):
			return fmt.Errorf("%s %s exists and is not managed by moat (label %s): moat leaves it alone; delete or rename it", kind, obj.GetName(), policy.ManagedLabels())
		case err == nil && other.GetLabels()[policy.AdminTierNamespaceLabel] != obj.GetLabels()[policy.AdminTierNamespaceLabel]:
			return fmt.Errorf("%s %s is moat's object for namespace %q (label %s): moat does not take it over for namespace %q; delete it if that namespace is gone",
				kind, obj.GetName(), other.GetLabels()[policy.AdminTierNamespaceLabel], policy.AdminTierNamespaceLabel, obj.GetLabels()[policy.AdminTierNamespaceLabel])
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("reading %s %s: %w", kind, obj.GetName(), err)
		}
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return err
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	if err := r.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s: %w", kind, obj.GetName(), err)
	}
	return nil
}

// adminTierUpToDate reports whether live carries desired's labels and spec.
func adminTierUpToDate(desired policy.AdminTierObject, live client.Object) bool {
	for k, v := range desired.GetLabels() {
		if live.GetLabels()[k] != v {
			return false
		}
	}
	switch d := desired.(type) {
	case *npav1alpha1.AdminNetworkPolicy:
		l, ok := live.(*npav1alpha1.AdminNetworkPolicy)
		return ok && equality.Semantic.DeepEqual(d.Spec, l.Spec)
	case *npav1beta1.ClusterNetworkPolicy:
		l, ok := live.(*npav1beta1.ClusterNetworkPolicy)
		return ok && equality.Semantic.DeepEqual(d.Spec, l.Spec)
	}
	return false
}

// adminTierToNamespace maps an admin-tier object to the namespace it
// isolates, so that a change or deletion by anyone is put back.
func adminTierToNamespace(_ context.Context, obj client.Object) []reconcile.Request {
	ns, ok := obj.GetLabels()[policy.AdminTierNamespaceLabel]
	if !ok || !policy.IsManaged(obj) {
		return nil
	}
	return []reconcile.Request{namespaceRequest(ns)}
}
