package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	isolatedNamespaces = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moat_isolated_namespaces",
		Help: "Number of namespaces labelled moat.dev/isolated=true, as last reconciled by the leader.",
	})
	managedPolicies = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moat_managed_network_policies",
		Help: "Number of NetworkPolicies moat manages across all namespaces, as last reconciled by the leader.",
	})
	reconcileErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moat_reconcile_errors_total",
		Help: "Number of namespace reconciliations that ended in an error (and were retried).",
	})
)

func init() {
	metrics.Registry.MustRegister(isolatedNamespaces, managedPolicies, reconcileErrors)
}

// namespaceState is what the gauges count for one namespace.
type namespaceState struct {
	isolated bool
	policies int
}

// gauges keeps the per-namespace figures behind the isolated-namespaces and
// managed-policies gauges, and their sums, so that a reconcile updates them
// in constant time however many namespaces there are.
type gauges struct {
	mu                 sync.Mutex
	namespaces         map[string]namespaceState
	isolated, policies int
}

func newGauges() *gauges {
	return &gauges{namespaces: map[string]namespaceState{}}
}

// set records the state of a namespace and refreshes both gauges.
func (g *gauges) set(namespace string, state namespaceState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.namespaces[namespace]
	if old.isolated {
		g.isolated--
	}
	g.policies -= old.policies
	if state == (namespaceState{}) {
		delete(g.namespaces, namespace)
	} else {
		g.namespaces[namespace] = state
	}
	if state.isolated {
		g.isolated++
	}
	g.policies += state.policies
	isolatedNamespaces.Set(float64(g.isolated))
	managedPolicies.Set(float64(g.policies))
}
