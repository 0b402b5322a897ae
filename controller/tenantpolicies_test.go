package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTenantReportsGauge: the gauge is the sum over the namespaces still
// there; a namespace that is gone or going drops out of it.
func TestTenantReportsGauge(t *testing.T) {
	var reports tenantReports
	reports.set("a", "uid-a/egress", 2)
	reports.set("b", "uid-b/egress", 3)
	reports.set("a", "uid-a/open", 1)
	if got := testutil.ToFloat64(tenantPoliciesBeyondIsolation); got != 4 {
		t.Errorf("gauge = %v, want 4", got)
	}
	reports.set("b", "", 0)
	if got := testutil.ToFloat64(tenantPoliciesBeyondIsolation); got != 1 {
		t.Errorf("gauge after b is forgotten = %v, want 1", got)
	}
	if reports.done("b", "uid-b/egress") {
		t.Error("a forgotten namespace still counts as checked")
	}
	reports.set("a", "", 0)
	if got := testutil.ToFloat64(tenantPoliciesBeyondIsolation); got != 0 {
		t.Errorf("gauge = %v, want 0", got)
	}
}
