package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"moat.dev/moat/validation"
)

const isolatedKubeSystem = `apiVersion: v1
kind: Namespace
metadata:
  name: kube-system
  labels:
    moat.dev/isolated: "true"
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: dns-clients, namespace: kube-system}
spec:
  ingress:
  - from: [{namespace: default}]
`

// moat validate and moat render refuse to isolate a protected namespace, say
// why, and render nothing for it.
func TestProtectedNamespaceCLI(t *testing.T) {
	code, stdout, _ := moat(t, isolatedKubeSystem, "validate", "-")
	want := `<stdin>:1: Namespace/kube-system: metadata.labels[moat.dev/isolated]: Forbidden: namespace kube-system is protected ` +
		`(moat serve --protected-namespaces=kube-system,kube-public,kube-node-lease,moat-system): isolating it would cut every other namespace ` +
		`off from it (cluster DNS, the API server's webhooks, moat itself), so moat never writes NetworkPolicies into it; ` +
		`remove the label or set it to "false"` + "\n" +
		"<stdin>:8: warning: NetworkAllowlist/kube-system/dns-clients: spec.ingress[0].from[0].namespace: namespace default does not exist yet: whoever creates a namespace of that name is admitted into this project by this rule; create it (or correct the name) before relying on the rule\n"
	if code != 1 || stdout != want {
		t.Errorf("validate: exit %d, stdout\n%s\nwant 1 and\n%s", code, stdout, want)
	}
	code, stdout, stderr := moat(t, isolatedKubeSystem, "render", "-")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "namespace kube-system is protected") {
		t.Errorf("render: exit %d, stdout %q, stderr %q; want 1, nothing rendered, and why", code, stdout, stderr)
	}

	// With kube-system no longer protected, the same manifest renders.
	code, stdout, _ = moat(t, isolatedKubeSystem, "render", "--protected-namespaces=moat-system", "-")
	if code != 0 || !strings.Contains(stdout, "namespace: kube-system") {
		t.Errorf("render --protected-namespaces=moat-system: exit %d, stdout %q; want policies for kube-system", code, stdout)
	}
}

func TestProtectionFlags(t *testing.T) {
	var vcfg validation.Config
	pcfg := &vcfg.Policy
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addProtectionFlags(fs, "platform", &vcfg)
	if diff := cmp.Diff([]string{"kube-system", "kube-public", "kube-node-lease", "platform"}, pcfg.ProtectedNamespaces); diff != "" {
		t.Errorf("default protected namespaces (-want +got):\n%s", diff)
	}
	if vcfg.TenantNetworkPolicies != validation.TenantPoliciesRestrict {
		t.Errorf("default --tenant-network-policies %q, want restrict", vcfg.TenantNetworkPolicies)
	}
	if err := fs.Parse([]string{"--protected-namespaces=a,b", "--protected-namespaces=c", "--tenant-network-policies=warn"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, vcfg.Policy.ProtectedNamespaces); diff != "" {
		t.Errorf("--protected-namespaces replaces the defaults (-want +got):\n%s", diff)
	}
	if vcfg.TenantNetworkPolicies != validation.TenantPoliciesWarn {
		t.Errorf("--tenant-network-policies=warn gave %q", vcfg.TenantNetworkPolicies)
	}
	for _, bad := range []string{"--tenant-network-policies=block", "--protected-namespaces=Kube-System"} {
		if err := fs.Parse([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	fs = pflag.NewFlagSet("test", pflag.ContinueOnError)
	addProtectionFlags(fs, "platform", &vcfg)
	if err := fs.Parse([]string{"--protected-namespaces="}); err != nil || pcfg.ProtectedNamespaces == nil || len(pcfg.ProtectedNamespaces) != 0 {
		t.Errorf(`--protected-namespaces="": %v, %#v; want an empty list (nothing protected)`, err, pcfg.ProtectedNamespaces)
	}
}

// The policy comes before its namespace: the rule needs the whole input.
const openingPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: tenant}
spec:
  podSelector: {}
  ingress:
  - {}
  - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/24}}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: tenant
  labels: {moat.dev/isolated: "true"}
`

// moat validate applies the tenant NetworkPolicy rule of the webhook.
func TestValidateTenantPolicy(t *testing.T) {
	const finding = `NetworkPolicy/tenant/open: spec.ingress[0].from: Forbidden: an empty list admits ingress from everywhere ` +
		`(every pod of every namespace and every address); NetworkPolicies add up, so this would undo moat's isolation of namespace tenant: ` +
		`declare the peer in a NetworkAllowlist (the audited path), or ask a member of moat's admin groups to create this policy` + "\n"
	// 10.0.0.0/24 is admitted everywhere: only the empty rule is refused.
	code, stdout, _ := moat(t, openingPolicy, "validate", "--allowed-ingress-cidrs=10.0.0.0/16", "-")
	if want := "<stdin>:1: " + finding; code != 1 || stdout != want {
		t.Errorf("exit %d, stdout\n%s\nwant 1 and\n%s", code, stdout, want)
	}
	code, stdout, _ = moat(t, openingPolicy, "validate", "--allowed-ingress-cidrs=10.0.0.0/16", "--tenant-network-policies=warn", "-")
	if want := "<stdin>:1: warning: " + strings.Replace(finding, "Forbidden: ", "", 1); code != 0 || stdout != want {
		t.Errorf("warn: exit %d, stdout\n%s\nwant 0 and\n%s", code, stdout, want)
	}
	code, stdout, _ = moat(t, openingPolicy, "validate", "--tenant-network-policies=off", "-")
	if code != 0 || stdout != "" {
		t.Errorf("off: exit %d, stdout %q; want 0 and nothing", code, stdout)
	}
	// Without --allowed-ingress-cidrs the ipBlock is refused as well.
	_, stdout, _ = moat(t, openingPolicy, "validate", "-")
	if !strings.Contains(stdout, "spec.ingress[1].from[1].ipBlock: Forbidden: admits ingress from 10.0.0.0/24, which moat does not admit") {
		t.Errorf("the uncovered ipBlock is not reported:\n%s", stdout)
	}
}

// A tenant policy that admits an allowlisted peer on a port the allowlist
// does not name: moat validate reports it at the port, with the same model
// and flags as the webhook (the group peer needs --project-label).
const portBeyondAllowlist = `apiVersion: v1
kind: Namespace
metadata: {name: partner}
---
apiVersion: v1
kind: Namespace
metadata:
  name: tenant
  labels: {moat.dev/isolated: "true", kubesphere.io/workspace: ws-a}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: web, namespace: tenant}
spec:
  ingress:
  - from: [{namespace: partner}]
    ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: tenant-web, namespace: tenant}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: partner}}
    - namespaceSelector: {matchLabels: {kubesphere.io/workspace: ws-a}}
    ports: [{port: 80}, {port: 8080}]
`

func TestValidateTenantPolicyPorts(t *testing.T) {
	code, stdout, _ := moat(t, portBeyondAllowlist, "validate", "--project-label=kubesphere.io/workspace", "-")
	want := `<stdin>:19: NetworkPolicy/tenant/tenant-web: spec.ingress[0].ports[1]: Forbidden: admits ingress from namespace partner on 8080/TCP, ` +
		`but moat admits it only on 80/TCP (allowlist web (spec.ingress[0].from[0])); NetworkPolicies add up, so this would undo moat's isolation of namespace tenant: ` +
		`declare the peer in a NetworkAllowlist (the audited path), or ask a member of moat's admin groups to create this policy` + "\n"
	if code != 1 || stdout != want {
		t.Errorf("exit %d, stdout\n%s\nwant 1 and\n%s", code, stdout, want)
	}
	// Without --project-label the group selector is an unpinned selector.
	_, stdout, _ = moat(t, portBeyondAllowlist, "validate", "-")
	if !strings.Contains(stdout, "spec.ingress[0].from[1].namespaceSelector: Forbidden: admits ingress from every namespace whose labels match") {
		t.Errorf("without --project-label:\n%s", stdout)
	}
}
