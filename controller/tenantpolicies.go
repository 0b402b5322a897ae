package controller

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
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
// stored before the namespace was isolated, while moat's webhook was off, or
// before what moat admits shrank: an allowlist deleted or narrowed by an
// admin, a move to another project group, a Service's selector changed,
// egress restricted, another configuration). moat records it on the
// NetworkPolicy, in its namespace, and never deletes it.
const EventTenantPolicyBeyondIsolation = "TenantPolicyBeyondIsolation"

// eventNoteLimit is the most an events.k8s.io Event's note may hold.
const eventNoteLimit = 1024

var tenantPoliciesBeyondIsolation = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "moat_tenant_network_policies_beyond_isolation",
	Help: "Number of NetworkPolicies not managed by moat that admit traffic beyond what moat admits in their isolated namespace, as last checked (whenever the policy or what moat admits changes).",
})

func init() {
	metrics.Registry.MustRegister(tenantPoliciesBeyondIsolation)
}

// tenantVerdict is what the check of one user policy (named name) found,
// and against what: the key of the tenant model and the policy's
// generation.
type tenantVerdict struct {
	name   string
	key    string
	beyond bool
}

// tenantReports remembers, per namespace and user policy, the last verdict
// of the tenant check, so that a policy is checked (and reported) again only
// when it or what moat admits changes, not on every reconcile; and it keeps
// the gauge at the number of policies found beyond isolation.
type tenantReports struct {
	mu         sync.Mutex
	namespaces map[string]map[types.UID]tenantVerdict
	total      int // policies whose verdict is beyond
}

// get returns the verdicts of namespace; the caller must not modify them.
func (t *tenantReports) get(namespace string) map[types.UID]tenantVerdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.namespaces[namespace]
}

// set replaces the verdicts of namespace (nil: forget it) and updates the
// gauge.
func (t *tenantReports) set(namespace string, verdicts map[types.UID]tenantVerdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.namespaces == nil {
		t.namespaces = map[string]map[types.UID]tenantVerdict{}
	}
	t.total -= beyond(t.namespaces[namespace])
	if verdicts == nil {
		delete(t.namespaces, namespace)
	} else {
		t.namespaces[namespace] = verdicts
		t.total += beyond(verdicts)
	}
	tenantPoliciesBeyondIsolation.Set(float64(t.total))
}

func beyond(verdicts map[types.UID]tenantVerdict) int {
	n := 0
	for _, v := range verdicts {
		if v.beyond {
			n++
		}
	}
	return n
}

// TenantPoliciesBeyondIsolation returns the names, sorted, of the
// NetworkPolicies of namespace that its last check found admitting more
// than moat does: those that moat_tenant_network_policies_beyond_isolation
// counts for it.
func (r *Reconciler) TenantPoliciesBeyondIsolation(namespace string) []string {
	var names []string
	for _, v := range r.tenantReports.get(namespace) {
		if v.beyond {
			names = append(names, v.name)
		}
	}
	slices.Sort(names)
	return names
}

// reportTenantPolicies checks every NetworkPolicy of ns that moat does not
// manage against the tenant model (validation.TenantModel and
// validation.ValidateTenantNetworkPolicyAgainst) whenever the policy
// (its generation) or the model (validation.TenantModelKey) changed since
// its last check, so that anything that shrinks what moat admits (an
// allowlist deleted, a group move, a Service's selector, egress restricted,
// a new configuration after a restart) is followed by a check. Each policy
// found beyond isolation gets a Warning Event on itself, in its namespace,
// where its authors can see it; the gauge counts them. It never changes or
// deletes them.
func (r *Reconciler) reportTenantPolicies(ctx context.Context, ns *corev1.Namespace, allowlists []*v1alpha1.NetworkAllowlist) error {
	cfg := r.tenantConfig
	if cfg.TenantNetworkPolicies.Effective() == validation.TenantPoliciesOff || !v1alpha1.Isolated(ns) || policy.Protected(ns, r.cfg) {
		r.tenantReports.set(ns.Name, nil)
		return nil
	}
	policies, err := r.userPolicies(ctx, ns.Name)
	if err != nil {
		return err
	}
	if len(policies) == 0 {
		// Nothing to check: the model is not even computed.
		r.tenantReports.set(ns.Name, map[types.UID]tenantVerdict{})
		return nil
	}
	m := validation.TenantModel(ns, allowlists, cfg, lookup.New(r.client).Session(ctx))
	modelKey := validation.TenantModelKey(m)
	last := r.tenantReports.get(ns.Name)
	verdicts := make(map[types.UID]tenantVerdict, len(policies))
	var live *policy.Model
	for _, np := range policies {
		key := modelKey + "/" + strconv.FormatInt(np.Generation, 10)
		if v, ok := last[np.UID]; ok && v.key == key {
			verdicts[np.UID] = v
			continue
		}
		errs := validation.ValidateTenantNetworkPolicyAgainst(np, m)
		if len(errs) > 0 {
			// The caches of allowlists and of user policies are apart:
			// an allowlist may reach its cache after the policy it
			// justifies reaches its own. Confirm against the API server
			// before reporting; if the cache lags, its catching up
			// brings another check.
			if live == nil {
				lm, err := r.liveTenantModel(ctx, ns)
				if err != nil {
					return err
				}
				live = &lm
			}
			errs = validation.ValidateTenantNetworkPolicyAgainst(np, *live)
		}
		verdicts[np.UID] = tenantVerdict{name: np.Name, key: key, beyond: len(errs) > 0}
		if len(errs) == 0 {
			continue
		}
		findings := make([]string, 0, len(errs))
		for _, e := range errs {
			findings = append(findings, e.Field+": "+validation.FindingSummary(e))
		}
		logf.FromContext(ctx).Info("a NetworkPolicy admits traffic beyond the namespace's isolation", "namespace", ns.Name, "networkPolicy", np.Name)
		r.recorder.Eventf(np, nil, corev1.EventTypeWarning, EventTenantPolicyBeyondIsolation, "CheckPolicy", "%s",
			tenantNote(np.Name, ns.Name, findings))
	}
	r.tenantReports.set(ns.Name, verdicts)
	return nil
}

// liveTenantModel is the tenant model of ns with its allowlists and
// Services read from the API server.
func (r *Reconciler) liveTenantModel(ctx context.Context, ns *corev1.Namespace) (policy.Model, error) {
	session := lookup.New(r.apiReader).Session(ctx)
	allowlists, err := session.Allowlists(ns.Name)
	if err != nil {
		return policy.Model{}, err
	}
	return validation.TenantModel(ns, allowlists, r.tenantConfig, session), nil
}

// tenantNote is the note of a TenantPolicyBeyondIsolation Event, cut to what
// an Event may hold.
func tenantNote(policyName, namespace string, findings []string) string {
	note := fmt.Sprintf("NetworkPolicy %s admits traffic beyond what moat admits in namespace %s, so the namespace is not fully isolated; "+
		"moat does not delete it: narrow it to what moat admits, or declare what it needs in a NetworkAllowlist (%s)",
		policyName, namespace, strings.Join(findings, "; "))
	if len(note) > eventNoteLimit {
		note = strings.ToValidUTF8(note[:eventNoteLimit-len("...)")], "") + "...)"
	}
	return note
}

// userPolicies returns the NetworkPolicies of namespace that moat does not
// manage: from the cache of user policies when SetupWithManager made one,
// otherwise from the API server (the manager's cache holds managed policies
// only).
func (r *Reconciler) userPolicies(ctx context.Context, namespace string) ([]*networkingv1.NetworkPolicy, error) {
	reader := r.tenantPolicies
	if reader == nil {
		reader = r.apiReader
	}
	list := &networkingv1.NetworkPolicyList{}
	if err := reader.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing NetworkPolicies in namespace %s: %w", namespace, err)
	}
	out := make([]*networkingv1.NetworkPolicy, 0, len(list.Items))
	for i := range list.Items {
		if !policy.IsManaged(&list.Items[i]) {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}
