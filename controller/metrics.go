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
	nodesOverAddressLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moat_nodes_over_address_limit",
		Help: "Number of Nodes offering more addresses than --max-node-addresses-per-node; only their first ones are admitted (each has a NodeAddressesOverLimit Event).",
	})
	nodeAddressesDropped = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moat_node_addresses_dropped",
		Help: "Number of node addresses left out past --max-node-addresses (not admitted into isolated projects).",
	})
	isolationIncomplete = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moat_isolation_incomplete_namespaces",
		Help: "Number of isolated namespaces where some policy moat must write could not be written at the last reconcile: the deny is written first, so they are closed, but something they should admit is not (each has an IsolationIncomplete Event).",
	})
	reconcileErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moat_reconcile_errors_total",
		Help: "Number of namespace reconciliations that ended in an error (and were retried).",
	})
)

func init() {
	metrics.Registry.MustRegister(isolatedNamespaces, managedPolicies, reconcileErrors, nodesOverAddressLimit, nodeAddressesDropped, isolationIncomplete)
}

// namespaceState is what the gauges count for one namespace.
type namespaceState struct {
	isolated bool
	policies int
	// incomplete: isolated, but some policy could not be written.
	incomplete bool
}

// gauges keeps the per-namespace figures behind the isolated-namespaces and
// managed-policies gauges, and their sums, so that a reconcile updates them
// in constant time however many namespaces there are.
type gauges struct {
	mu                             sync.Mutex
	namespaces                     map[string]namespaceState
	isolated, policies, incomplete int
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
	if old.incomplete {
		g.incomplete--
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
	if state.incomplete {
		g.incomplete++
	}
	g.policies += state.policies
	isolatedNamespaces.Set(float64(g.isolated))
	managedPolicies.Set(float64(g.policies))
	isolationIncomplete.Set(float64(g.incomplete))
}
