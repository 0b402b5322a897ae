package controller

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"moat.dev/moat/policy"
)

// TestCheckAdminTierServed: the chosen admin-tier API must be served at the
// version moat writes; the error names the flag and both ways out.
func TestCheckAdminTierServed(t *testing.T) {
	anp := schema.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1alpha1", Kind: "AdminNetworkPolicy"}
	cnpOld := schema.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1alpha2", Kind: "ClusterNetworkPolicy"}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(anp, meta.RESTScopeRoot)
	mapper.Add(cnpOld, meta.RESTScopeRoot)

	if err := CheckAdminTierServed(mapper, policy.EnforcementNetworkPolicy); err != nil {
		t.Errorf("networkpolicy: %v", err)
	}
	if err := CheckAdminTierServed(mapper, policy.EnforcementAdminNetworkPolicy); err != nil {
		t.Errorf("adminnetworkpolicy, served: %v", err)
	}
	err := CheckAdminTierServed(mapper, policy.EnforcementClusterNetworkPolicy)
	want := "--enforcement=clusternetworkpolicy needs the API server to serve clusternetworkpolicies.policy.networking.k8s.io/v1beta1, and it does not (no matches for policy.networking.k8s.io/v1beta1, Resource=clusternetworkpolicies): install the CRDs of sigs.k8s.io/network-policy-api v0.3.0 and a network plugin that enforces them, or use --enforcement=networkpolicy"
	if err == nil || err.Error() != want {
		t.Errorf("clusternetworkpolicy at v1alpha2 only:\n got %v\nwant %s", err, want)
	}
	err = CheckAdminTierServed(meta.NewDefaultRESTMapper(nil), policy.EnforcementAdminNetworkPolicy)
	if err == nil || !strings.HasPrefix(err.Error(), "--enforcement=adminnetworkpolicy needs the API server to serve adminnetworkpolicies.policy.networking.k8s.io/v1alpha1, and it does not (") {
		t.Errorf("adminnetworkpolicy, not served: %v", err)
	}
}
