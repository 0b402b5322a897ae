package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/lookup"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

// EventTenantPolicyBeyondIsolation: a NetworkPolicy that moat does not
// manage admits traffic that the namespace's isolation does not (it was
// stored before the namespace was isolated, or while moat's webhook was
// off). moat reports it and never deletes it.
const EventTenantPolicyBeyondIsolation = "TenantPolicyBeyondIsolation"

var tenantPoliciesBeyondIsolation = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "moat_tenant_network_policies_beyond_isolation",
	Help: "Number of NetworkPolicies not managed by moat that admit traffic beyond what moat admits in their isolated namespace, as found when isolation (or egress restriction) took effect.",
})

func init() {
	metrics.Registry.MustRegister(tenantPoliciesBeyondIsolation)
}

// tenantReports remembers, per namespace, what its user policies were last
// checked against, so that each is checked once when isolation (or egress
// restriction) takes effect rather than on every reconcile.
type tenantReports struct {
	mu      sync.Mutex
	checked map[string]string // namespace -> UID and egress restriction
	found   map[string]int    // namespace -> offending policies
	total   int               // the sum of found
}

func (t *tenantReports) set(namespace, key string, found int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checked == nil {
		t.checked, t.found = map[string]string{}, map[string]int{}
	}
	t.total -= t.found[namespace]
	if key == "" {
		delete(t.checked, namespace)
		delete(t.found, namespace)
	} else {
		t.checked[namespace], t.found[namespace] = key, found
		t.total += found
	}
	tenantPoliciesBeyondIsolation.Set(float64(t.total))
}

func (t *tenantReports) done(namespace, key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checked[namespace] == key
}

// reportTenantPolicies checks, once per isolation of ns (and again when its
// egress becomes restricted), every NetworkPolicy of ns that moat does not
// manage against validation.ValidateTenantNetworkPolicy, and records a
// Warning Event on the namespace for each one that admits more than moat
// does. It never changes or deletes them.
func (r *Reconciler) reportTenantPolicies(ctx context.Context, ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist) error {
	cfg := r.tenantConfig
	if cfg.TenantNetworkPolicies.Effective() == validation.TenantPoliciesOff || !v1alpha1.Isolated(ns) || policy.Protected(ns, r.cfg) {
		r.tenantReports.set(ns.Name, "", 0)
		return nil
	}
	key := fmt.Sprintf("%s/%t", ns.UID, v1alpha1.RestrictsEgress(allowlists))
	if r.tenantReports.done(ns.Name, key) {
		return nil
	}
	// The cache holds only managed policies: read the user's from the API
	// server.
	list := &networkingv1.NetworkPolicyList{}
	if err := r.apiReader.List(ctx, list, client.InNamespace(ns.Name)); err != nil {
		return fmt.Errorf("listing NetworkPolicies in namespace %s: %w", ns.Name, err)
	}
	services := lookup.New(r.client).Session(ctx)
	found := 0
	for i := range list.Items {
		np := &list.Items[i]
		if policy.IsManaged(np) {
			continue
		}
		errs := validation.ValidateTenantNetworkPolicy(np, ns, allowlists, cfg, services)
		if len(errs) == 0 {
			continue
		}
		found++
		details := make([]string, 0, len(errs))
		for _, e := range errs {
			details = append(details, e.Field+": "+e.Detail)
		}
		logf.FromContext(ctx).Info("a NetworkPolicy admits traffic beyond the namespace's isolation", "namespace", ns.Name, "networkPolicy", np.Name)
		r.recorder.Eventf(ns, np, corev1.EventTypeWarning, EventTenantPolicyBeyondIsolation, "CheckPolicy",
			"NetworkPolicy %s admits traffic beyond what moat's isolation admits, so the namespace is not fully isolated; moat does not delete it: review it, "+
				"declare what it needs in a NetworkAllowlist, and delete it (%s)", np.Name, strings.Join(details, "; "))
	}
	r.tenantReports.set(ns.Name, key, found)
	return nil
}
