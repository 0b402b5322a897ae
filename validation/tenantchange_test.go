package validation

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

// changeModels are the tenant models of demo-project-1 with tenantAllowlists
// (before) and without them (after: the allowlist deleted).
func changeModels(t *testing.T) (before, after policy.Model) {
	t.Helper()
	ns := isolatedNamespace("demo-project-1")
	before = TenantModel(ns, tenantAllowlists(), tenantConfig(), tenantCluster())
	after = TenantModel(ns, nil, tenantConfig(), tenantCluster())
	if !before.Enforced || !after.Enforced {
		t.Fatal("models of an isolated namespace must be enforced")
	}
	return before, after
}

func named(np *networkingv1.NetworkPolicy, name string) *networkingv1.NetworkPolicy {
	np.Name = name
	return np
}

func TestTenantModelKey(t *testing.T) {
	before, after := changeModels(t)
	ns := isolatedNamespace("demo-project-1")
	reversed := tenantAllowlists()
	second := &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "demo-project-1", Name: "a-second"},
		Spec: v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{From: []v1alpha1.Peer{{Namespace: "demo-project-3"}}}}}}
	withSecond := TenantModel(ns, append(reversed, second), tenantConfig(), tenantCluster())
	otherEgress := tenantAllowlists()
	otherEgress[0].Spec.Egress[0].To[0].IPBlock.CIDR = "198.51.100.0/24"
	secondFirst := TenantModel(ns, []*v1alpha1.NetworkAllowlist{second, tenantAllowlists()[0]}, tenantConfig(), tenantCluster())

	moved := ns.DeepCopy()
	moved.Labels["workspace"] = "b"
	cfg := tenantConfig()
	cfg.Policy.ProjectLabel = "workspace"
	inA := ns.DeepCopy()
	inA.Labels["workspace"] = "a"

	cases := []struct {
		name  string
		a, b  policy.Model
		equal bool
	}{
		{"the same inputs", before, TenantModel(ns, tenantAllowlists(), tenantConfig(), tenantCluster()), true},
		{"allowlists in another order", withSecond, secondFirst, true},
		{"an allowlist deleted", before, after, false},
		{"an allowlist added", before, withSecond, false},
		{"an egress peer changed", before, TenantModel(ns, otherEgress, tenantConfig(), tenantCluster()), false},
		{"a group move", TenantModel(inA, nil, cfg, nil), TenantModel(moved, nil, cfg, nil), false},
		{"a Service's selector changed", before, TenantModel(ns, tenantAllowlists(), tenantConfig(), newCluster()), false},
		{"isolation off", TenantModel(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-project-1"}}, nil, tenantConfig(), nil), policy.Model{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := TenantModelKey(tc.a), TenantModelKey(tc.b)
			if (a == b) != tc.equal {
				t.Errorf("keys %q and %q: equal %t, want %t", a, b, a == b, tc.equal)
			}
		})
	}
	if got := TenantModelKey(policy.Model{}); got != "off" {
		t.Errorf("key of a model that enforces nothing = %q, want off", got)
	}
}

func TestModelMayShrink(t *testing.T) {
	before, after := changeModels(t)
	ingressOnly := tenantAllowlists()
	ingressOnly[0].Spec.Egress = nil
	ns := isolatedNamespace("demo-project-1")
	open := TenantModel(ns, ingressOnly, tenantConfig(), tenantCluster())
	off := policy.Model{Namespace: "demo-project-1"}
	cases := []struct {
		name          string
		before, after policy.Model
		want          bool
	}{
		{"unchanged", before, before, false},
		{"allowlist deleted (ingress admissions lost)", before, after, true},
		{"allowlist added (ingress only)", after, open, false},
		{"allowlist added that restricts egress", after, before, true},
		{"egress becomes restricted", open, before, true},
		{"egress becomes open again, ingress kept", before, open, false},
		{"isolation turned on", off, before, true},
		{"isolation turned off", before, off, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ModelMayShrink(tc.before, tc.after); got != tc.want {
				t.Errorf("ModelMayShrink = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestAllowlistsAfter(t *testing.T) {
	al := func(name string) *v1alpha1.NetworkAllowlist {
		return &v1alpha1.NetworkAllowlist{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	names := func(als []*v1alpha1.NetworkAllowlist) []string {
		var out []string
		for _, a := range als {
			out = append(out, a.Name)
		}
		return out
	}
	stored := []*v1alpha1.NetworkAllowlist{al("a"), al("b")}
	changed := al("b")
	changed.Generation = 2
	cases := []struct {
		name    string
		target  string
		changed *v1alpha1.NetworkAllowlist
		want    []string
	}{
		{"deleted", "a", nil, []string{"b"}},
		{"changed", "b", changed, []string{"a", "b"}},
		{"created", "c", al("c"), []string{"a", "b", "c"}},
		{"deleted, not stored (a lagging read)", "c", nil, []string{"a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AllowlistsAfter(stored, tc.target, tc.changed)
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if tc.changed != nil && got[len(got)-1] != tc.changed {
				t.Error("the changed allowlist is not the one passed")
			}
		})
	}
	if len(stored) != 2 || stored[1].Generation != 0 {
		t.Error("stored was modified")
	}
}

func TestStrandedTenantPolicies(t *testing.T) {
	before, after := changeModels(t)
	from := field.NewPath("spec", "ingress").Index(0).Child("from")
	to := field.NewPath("spec", "egress").Index(0).Child("to")
	managed := named(ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}), "managed")
	managed.Labels = policy.ManagedLabels()
	// Beyond both models: 0.0.0.0/0 was never admitted; the partner
	// namespace only before.
	preexisting := named(ingressPolicy(block("0.0.0.0/0"), networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}), "preexisting")
	policies := []*networkingv1.NetworkPolicy{
		named(ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("demo-project-2")}), "partner"),
		named(ingressPolicy(networkingv1.NetworkPolicyPeer{NamespaceSelector: pinned("monitoring")}), "monitoring"),
		named(egressPolicy(block("203.0.113.0/25")), "egress-external"),
		managed,
		preexisting,
	}
	want := []StrandedPolicy{
		{Name: "partner", Findings: ValidateTenantNetworkPolicyAgainst(policies[0], after)},
		// Without the allowlist egress is open again: nothing to strand.
		{Name: "preexisting", Findings: field.ErrorList{ValidateTenantNetworkPolicyAgainst(preexisting, after)[1]}},
	}
	if len(want[0].Findings) != 1 || want[0].Findings[0].Field != from.Index(0).Child("namespaceSelector").String() {
		t.Fatalf("findings of partner after the delete: %v", want[0].Findings)
	}
	if want[1].Findings[0].Field != from.Index(1).Child("namespaceSelector").String() {
		t.Fatalf("findings of preexisting after the delete: %v", want[1].Findings)
	}
	if diff := cmp.Diff(want, StrandedTenantPolicies(policies, before, after)); diff != "" {
		t.Errorf("StrandedTenantPolicies (-want +got):\n%s", diff)
	}
	if got := StrandedTenantPolicies(policies, after, before); len(got) != 0 {
		t.Errorf("adding the allowlist strands %v", got)
	}

	// Restricting egress strands an egress policy that the new model does
	// not admit, and leaves the one it admits.
	ns := isolatedNamespace("demo-project-1")
	ingressOnly := tenantAllowlists()
	ingressOnly[0].Spec.Egress = nil
	open := TenantModel(ns, ingressOnly, tenantConfig(), tenantCluster())
	egress := []*networkingv1.NetworkPolicy{
		named(egressPolicy(block("203.0.113.0/25")), "declared"),
		named(egressPolicy(block("198.51.100.0/24")), "undeclared"),
	}
	got := StrandedTenantPolicies(egress, open, before)
	if len(got) != 1 || got[0].Name != "undeclared" || len(got[0].Findings) != 1 || got[0].Findings[0].Field != to.Index(0).Child("ipBlock").String() {
		t.Errorf("restricting egress strands %+v, want undeclared at %s", got, to.Index(0).Child("ipBlock"))
	}
}

func TestValidateTenantPoliciesKept(t *testing.T) {
	spec := field.NewPath("spec")
	finding := tenantForbidden(field.NewPath("spec", "ingress").Index(0).Child("from").Index(0).Child("namespaceSelector"), "admits ingress from namespace demo-project-2")
	other := tenantForbidden(field.NewPath("spec", "ingress").Index(0).Child("ports"), "an empty list admits ingress on every port")
	got := ValidateTenantPoliciesKept(spec, []StrandedPolicy{
		{Name: "partner", Findings: field.ErrorList{finding}},
		{Name: "two", Findings: field.ErrorList{finding, other}},
	})
	want := field.ErrorList{
		field.Forbidden(spec, "NetworkPolicy partner would admit traffic beyond what moat admits once this change is made "+
			"(spec.ingress[0].from[0].namespaceSelector: admits ingress from namespace demo-project-2): narrow or delete that policy first"),
		field.Forbidden(spec, "NetworkPolicy two would admit traffic beyond what moat admits once this change is made "+
			"(spec.ingress[0].from[0].namespaceSelector: admits ingress from namespace demo-project-2; "+
			"spec.ingress[0].ports: an empty list admits ingress on every port): narrow or delete that policy first"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ValidateTenantPoliciesKept (-want +got):\n%s", diff)
	}
	if errs := ValidateTenantPoliciesKept(spec, nil); errs != nil {
		t.Errorf("nothing stranded: %v", errs)
	}
}

func TestFindingSummary(t *testing.T) {
	e := tenantForbidden(field.NewPath("spec"), "admits ingress from everywhere")
	if got := FindingSummary(e); got != "admits ingress from everywhere" {
		t.Errorf("FindingSummary = %q", got)
	}
	plain := field.Forbidden(field.NewPath("spec"), "no advice here")
	if got := FindingSummary(plain); got != "no advice here" {
		t.Errorf("FindingSummary of a detail without advice = %q", got)
	}
}
