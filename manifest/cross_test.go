package manifest

import (
	"bytes"
	"strings"
	"testing"

	"moat.dev/moat/test/corpus"
	"moat.dev/moat/validation"
)

// checkCross runs Check on the documents and returns the findings.
func checkCross(t *testing.T, docs [][]byte) []Finding {
	t.Helper()
	var in bytes.Buffer
	if err := corpus.Write(&in, docs); err != nil {
		t.Fatal(err)
	}
	_, findings, err := Check([]string{Stdin}, bytes.NewReader(in.Bytes()), nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return findings
}

// allocsOfCheck counts the allocations of one Check of the documents.
func allocsOfCheck(t *testing.T, docs [][]byte) float64 {
	t.Helper()
	return testing.AllocsPerRun(2, func() { checkCross(t, docs) })
}

// TestCheckCostIsLinear is issue 23's case 6: N tenant NetworkPolicies
// checked against N allowlists of their namespace, and N allowlists whose
// ingress ports and ipBlocks are checked against N Services of theirs, cost
// work in proportion to N, not N²: eight times the objects take about eight
// times the allocations (each lookup used to copy and sort every allowlist
// or Service of the namespace, and each tenant policy recomputed the
// namespace's model: 43× and 35×).
func TestCheckCostIsLinear(t *testing.T) {
	for name, shape := range map[string]func(int) [][]byte{
		"tenant policies × allowlists": corpus.TenantCross,
		"allowlist ports × Services":   corpus.ServicePortCross,
	} {
		t.Run(name, func(t *testing.T) {
			small, large := allocsOfCheck(t, shape(100)), allocsOfCheck(t, shape(800))
			t.Logf("%.0f → %.0f allocations (%.1f×)", small, large, large/small)
			if ratio := large / small; ratio > 10 {
				t.Errorf("8× the objects cost %.1f× the allocations (%.0f → %.0f): not linear", ratio, small, large)
			}
		})
	}
}

// TestCrossFindings: what the N × N shapes report, whatever N: nothing for
// the tenant policies (each admits what an allowlist admits); for each
// allowlist behind the Services, one warning on the port and one on the
// ipBlock, each naming at most validation.MaxListed Services and saying
// how many more there are.
func TestCrossFindings(t *testing.T) {
	for _, f := range checkCross(t, corpus.TenantCross(50)) {
		if f.Kind == "NetworkPolicy" || f.Severity == SeverityError {
			t.Errorf("tenant shape: unexpected finding %s", f)
		}
	}
	n := 3 * validation.MaxListed
	findings := checkCross(t, corpus.ServicePortCross(n))
	if len(findings) != 2*n {
		t.Fatalf("got %d findings, want %d: %v", len(findings), 2*n, findings)
	}
	for _, f := range findings {
		var more string
		switch f.Field {
		case "spec.ingress[0].ports[0].port":
			more = "; 20 more Services forward it too."
		case "spec.ingress[0].from[0].ipBlock":
			more = ", 20 more Services in namespace cross keep externalTrafficPolicy Cluster"
		}
		if f.Severity != SeverityWarning || more == "" || !strings.Contains(f.Message, more) || strings.Count(f.Message, "svc-") != validation.MaxListed {
			t.Errorf("unexpected finding %s", f)
		}
	}
}
