package controller

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
)

// TestTenantReportsGauge: the gauge is the number of policies whose last
// verdict is beyond isolation, over the namespaces still there; a policy
// fixed or gone, and a namespace that is gone or going, drop out of it.
func TestTenantReportsGauge(t *testing.T) {
	var reports tenantReports
	gauge := func(want float64) {
		t.Helper()
		if got := testutil.ToFloat64(tenantPoliciesBeyondIsolation); got != want {
			t.Errorf("gauge = %v, want %v", got, want)
		}
	}
	reports.set("a", map[types.UID]tenantVerdict{"a1": {"p", "k/1", true}, "a2": {"p", "k/1", true}, "a3": {"p", "k/1", false}})
	reports.set("b", map[types.UID]tenantVerdict{"b1": {"p", "k/1", true}, "b2": {"p", "k/1", true}, "b3": {"p", "k/1", true}})
	gauge(5)
	// a2 fixed, a3 deleted.
	reports.set("a", map[types.UID]tenantVerdict{"a1": {"p", "k/1", true}, "a2": {"p", "k/2", false}})
	gauge(4)
	reports.set("b", nil)
	gauge(1)
	if reports.get("b") != nil {
		t.Error("a forgotten namespace still has verdicts")
	}
	if v := reports.get("a")["a1"]; v != (tenantVerdict{"p", "k/1", true}) {
		t.Errorf("verdict of a1 = %+v", v)
	}
	reports.set("a", nil)
	gauge(0)
}

// TestTenantNote: an Event's note names the policy and its namespace and
// never exceeds what the API accepts, also when the findings are long.
func TestTenantNote(t *testing.T) {
	short := tenantNote("open", "t1", []string{"spec.ingress[0].from: an empty list admits ingress from everywhere"})
	for _, want := range []string{"NetworkPolicy open ", "namespace t1", "spec.ingress[0].from: an empty list"} {
		if !strings.Contains(short, want) {
			t.Errorf("note %q lacks %q", short, want)
		}
	}
	long := tenantNote("open", "t1", []string{strings.Repeat("é", 2000)})
	if len(long) > eventNoteLimit || !utf8.ValidString(long) || !strings.HasSuffix(long, "...)") {
		t.Errorf("long note: %d bytes, valid UTF-8 %t, ends %q", len(long), utf8.ValidString(long), long[len(long)-8:])
	}
}
