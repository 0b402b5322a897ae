package controller

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// ControllerName is the name of the isolation controller in logs and metrics.
const ControllerName = "isolation"

// ServiceRefIndex is the field index on NetworkAllowlists that lists the
// Services they name, each as "namespace/name".
const ServiceRefIndex = "moat.dev/service-refs"

// SetupWithManager registers the field index and the isolation controller
// with mgr and returns the Reconciler, which the mutating Namespace webhook
// uses as its Converger. The controller runs only on the elected leader when
// the manager uses leader election; ApplyNamespace works on every replica.
func SetupWithManager(mgr ctrl.Manager, opts Options) (*Reconciler, error) {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.NetworkAllowlist{}, ServiceRefIndex, serviceRefs); err != nil {
		return nil, fmt.Errorf("indexing NetworkAllowlists by Service: %w", err)
	}
	// Start the NetworkPolicy informer with the cache on every replica, so
	// that ApplyNamespace, which also runs on replicas that are not the
	// leader, never waits for it to sync.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &networkingv1.NetworkPolicy{}, cache.BlockUntilSynced(false)); err != nil {
		return nil, fmt.Errorf("watching NetworkPolicies: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.NetworkAllowlist{}, KubernetesAPIIndex, usesKubernetesAPI); err != nil {
		return nil, fmt.Errorf("indexing NetworkAllowlists by kubernetesAPI peer: %w", err)
	}
	r := NewReconciler(mgr, opts)
	traffic, err := newTrafficCache(mgr, opts.Config.Policy)
	if err != nil {
		return nil, err
	}
	r.traffic = traffic
	tenantCheck := opts.Config.TenantNetworkPolicies.Effective() != validation.TenantPoliciesOff
	var tenantPolicies cache.Cache
	if tenantCheck {
		if tenantPolicies, err = newTenantPolicyCache(mgr); err != nil {
			return nil, err
		}
		r.tenantPolicies = tenantPolicies
	}
	workers := opts.MaxConcurrentReconciles
	if workers <= 0 {
		workers = DefaultMaxConcurrentReconciles
	}
	ctrlOpts := controller.Options{MaxConcurrentReconciles: workers}
	if opts.SkipNameValidation {
		skip := true
		ctrlOpts.SkipNameValidation = &skip
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(ctrlOpts).
		For(&corev1.Namespace{}).
		Watches(&v1alpha1.NetworkAllowlist{}, handler.EnqueueRequestsFromMapFunc(toNamespace),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(toNamespace),
			builder.WithPredicates(concernsMoat())).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.serviceToNamespaces),
			builder.WithPredicates(serviceChanged())).
		WatchesRawSource(source.Kind(traffic, client.Object(&discoveryv1.EndpointSlice{}),
			handler.EnqueueRequestsFromMapFunc(r.apiServerToNamespaces), apiServerChanged()))
	if tenantCheck {
		// A user policy created, changed (its spec) or deleted is
		// checked again.
		b = b.WatchesRawSource(source.Kind(tenantPolicies, client.Object(&networkingv1.NetworkPolicy{}),
			handler.EnqueueRequestsFromMapFunc(toNamespace), predicate.GenerationChangedPredicate{}))
	}
	if opts.Config.Policy.AllowIngressFromNodes {
		nodes := &nodeWatch{r: r}
		b = b.WatchesRawSource(source.Kind(traffic, client.Object(&corev1.Node{}),
			handler.EnqueueRequestsFromMapFunc(nodes.toNamespaces), nodeAddressesChanged(opts.Config.Policy)))
	}
	if obj, _, ok := adminTierKind(opts.Config.Policy.Enforcement); ok {
		if err := CheckAdminTierServed(mgr.GetRESTMapper(), opts.Config.Policy.Enforcement); err != nil {
			return nil, err
		}
		// A managed admin-tier object changed or deleted by anyone is
		// put back.
		b = b.Watches(obj, handler.EnqueueRequestsFromMapFunc(adminTierToNamespace))
	}
	if err := b.Complete(r); err != nil {
		return nil, fmt.Errorf("setting up the isolation controller: %w", err)
	}
	// Allowed ingress namespaces that do not exist (issue 20, case 10).
	if a := newAllowedNamespaces(mgr.GetCache(), opts.Config.Policy); a != nil {
		if err := mgr.Add(a); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// serviceRefs lists the Services an allowlist names, as "namespace/name".
func serviceRefs(obj client.Object) []string {
	al, ok := obj.(*v1alpha1.NetworkAllowlist)
	if !ok {
		return nil
	}
	var refs []string
	for _, ref := range al.Spec.ServiceRefs() {
		refs = append(refs, ref.NamespaceIn(al.Namespace)+"/"+ref.Name)
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// toNamespace maps a namespaced object to the reconcile request of its namespace.
func toNamespace(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{namespaceRequest(obj.GetNamespace())}
}

// serviceToNamespaces maps a Service to the namespaces whose allowlists name
// it and, for the cluster DNS Service, to every isolated namespace.
func (r *Reconciler) serviceToNamespaces(ctx context.Context, obj client.Object) []reconcile.Request {
	key := obj.GetNamespace() + "/" + obj.GetName()
	seen := map[string]bool{}
	var reqs []reconcile.Request
	add := func(ns string) {
		if !seen[ns] {
			seen[ns] = true
			reqs = append(reqs, namespaceRequest(ns))
		}
	}
	log := logf.FromContext(ctx)
	allowlists := &v1alpha1.NetworkAllowlistList{}
	if err := r.client.List(ctx, allowlists, client.MatchingFields{ServiceRefIndex: key}); err != nil {
		log.Error(err, "listing the NetworkAllowlists that name a Service", "service", key)
	}
	for _, al := range allowlists.Items {
		add(al.Namespace)
	}
	if dns := r.cfg.DNSService; dns != nil && dns.Namespace == obj.GetNamespace() && dns.Name == obj.GetName() {
		for _, req := range r.isolatedNamespaces(ctx) {
			add(req.Name)
		}
	}
	return reqs
}

// isolatedNamespaces returns a reconcile request for every isolated
// namespace: what a change of a cluster-wide input (the DNS Service, the
// nodes' addresses) concerns.
func (r *Reconciler) isolatedNamespaces(ctx context.Context) []reconcile.Request {
	namespaces := &corev1.NamespaceList{}
	if err := r.client.List(ctx, namespaces, client.MatchingLabels{v1alpha1.IsolationLabel: v1alpha1.IsolationOn}); err != nil {
		logf.FromContext(ctx).Error(err, "listing isolated namespaces")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(namespaces.Items))
	for _, ns := range namespaces.Items {
		reqs = append(reqs, namespaceRequest(ns.Name))
	}
	return reqs
}

// concernsMoat passes events of NetworkPolicies that carry moat's label
// (before or after the change) or that have a name moat generates, so that
// a conflicting user policy that goes away lets moat write its own. The name
// only triggers a reconcile; it never makes a policy moat's.
func concernsMoat() predicate.Predicate {
	relevant := func(obj client.Object) bool {
		name := obj.GetName()
		return policy.IsManaged(obj) || policy.IsReservedPolicyName(name)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return relevant(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return relevant(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return relevant(e.ObjectOld) || relevant(e.ObjectNew) },
		GenericFunc: func(e event.GenericEvent) bool { return relevant(e.Object) },
	}
}

// serviceChanged passes Service creations and deletions, and updates that
// change what a generated policy depends on: the selector, the ports or the
// type (an ExternalName Service selects nothing).
func serviceChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, ok1 := e.ObjectOld.(*corev1.Service)
			after, ok2 := e.ObjectNew.(*corev1.Service)
			if !ok1 || !ok2 {
				return true
			}
			return before.Spec.Type != after.Spec.Type ||
				!equality.Semantic.DeepEqual(before.Spec.Selector, after.Spec.Selector) ||
				!equality.Semantic.DeepEqual(before.Spec.Ports, after.Spec.Ports)
		},
	}
}
