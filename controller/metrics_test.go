package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestGauges follows the isolated-namespaces and managed-policies gauges
// through namespaces that become isolated, change, lose isolation and go.
func TestGauges(t *testing.T) {
	g := newGauges()
	check := func(step string, isolated, policies float64) {
		t.Helper()
		if got := testutil.ToFloat64(isolatedNamespaces); got != isolated {
			t.Errorf("%s: moat_isolated_namespaces = %v, want %v", step, got, isolated)
		}
		if got := testutil.ToFloat64(managedPolicies); got != policies {
			t.Errorf("%s: moat_managed_network_policies = %v, want %v", step, got, policies)
		}
	}
	g.set("a", namespaceState{isolated: true, policies: 3})
	g.set("b", namespaceState{isolated: true, policies: 2})
	check("two isolated", 2, 5)
	g.set("a", namespaceState{isolated: true, policies: 4})
	check("a gains a policy", 2, 6)
	g.set("a", namespaceState{isolated: true, policies: 4})
	check("a reconciled again", 2, 6)
	// Isolation off, a policy not deleted yet.
	g.set("b", namespaceState{policies: 1})
	check("b no longer isolated", 1, 5)
	g.set("b", namespaceState{})
	check("b converged", 1, 4)
	g.set("c", namespaceState{})
	check("c never isolated", 1, 4)
	g.set("a", namespaceState{})
	check("a gone", 0, 0)
	if len(g.namespaces) != 0 {
		t.Errorf("gauges still hold %v", g.namespaces)
	}
}
