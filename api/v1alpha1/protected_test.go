package v1alpha1

import (
	"slices"
	"testing"
)

func TestDefaultProtectedNamespaces(t *testing.T) {
	want := []string{"kube-system", "kube-public", "kube-node-lease", "platform"}
	if got := DefaultProtectedNamespaces("platform"); !slices.Equal(got, want) {
		t.Errorf("DefaultProtectedNamespaces(platform) = %v, want %v", got, want)
	}
	// The result is the caller's: changing it leaves SystemNamespaces alone.
	DefaultProtectedNamespaces("platform")[0] = "changed"
	if SystemNamespaces[0] != "kube-system" {
		t.Errorf("SystemNamespaces changed through a returned list: %v", SystemNamespaces)
	}
}

func TestIsProtectedNamespace(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protected []string
		want      bool
	}{
		{"kube-system", nil, true},
		{"kube-public", nil, true},
		{"kube-node-lease", nil, true},
		{DefaultSystemNamespace, nil, true},
		{"default", nil, false},
		{"kube-system", []string{}, false},
		{"platform", []string{"platform"}, true},
		{"kube-system", []string{"platform"}, false},
	} {
		if got := IsProtectedNamespace(tc.name, tc.protected); got != tc.want {
			t.Errorf("IsProtectedNamespace(%q, %#v) = %v, want %v", tc.name, tc.protected, got, tc.want)
		}
	}
}

func TestRestrictsEgress(t *testing.T) {
	ingress := &NetworkAllowlist{Spec: NetworkAllowlistSpec{Ingress: []IngressRule{{From: []Peer{{Namespace: "a"}}}}}}
	egress := &NetworkAllowlist{Spec: NetworkAllowlistSpec{Egress: []EgressRule{{}}}}
	for _, tc := range []struct {
		allowlists []*NetworkAllowlist
		want       bool
	}{
		{nil, false},
		{[]*NetworkAllowlist{nil, ingress}, false},
		{[]*NetworkAllowlist{ingress, nil, egress}, true},
	} {
		if got := RestrictsEgress(tc.allowlists); got != tc.want {
			t.Errorf("RestrictsEgress(%v) = %v, want %v", tc.allowlists, got, tc.want)
		}
	}
}
