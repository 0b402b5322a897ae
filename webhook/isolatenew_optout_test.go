package webhook

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// TestMatchesWithoutOptOuts: labels that leave a namespace out of the
// selector do not count; labels that bring it in do.
func TestMatchesWithoutOptOuts(t *testing.T) {
	for _, tc := range []struct {
		selector string
		labels   labels.Set
		want     bool
	}{
		{"!not-a-tenant", labels.Set{"not-a-tenant": "yes"}, true},
		{"!not-a-tenant", nil, true},
		{"env notin (prod)", labels.Set{"env": "prod"}, true},
		{"tenant", nil, false},
		{"zone=tenants,!not-a-tenant", labels.Set{"zone": "tenants", "not-a-tenant": "yes"}, true},
		{"zone=tenants,!not-a-tenant", labels.Set{"not-a-tenant": "yes"}, false},
		{"zone=tenants,!not-a-tenant", labels.Set{"zone": "other"}, false},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		if got := matchesWithoutOptOuts(tc.labels, sel); got != tc.want {
			t.Errorf("%q on %v: %t, want %t", tc.selector, tc.labels, got, tc.want)
		}
	}
}
