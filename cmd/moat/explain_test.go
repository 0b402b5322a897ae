package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/explain"
	"moat.dev/moat/manifest"
	"moat.dev/moat/test/testenv"
)

const explainWorld = "testdata/explain"

// TestExplainOffline explains from manifests: an allowlist rule at its line,
// a denial with the allowlist that fixes it, a Service's target port.
func TestExplainOffline(t *testing.T) {
	for _, c := range []struct {
		golden string
		code   int
		args   []string
	}{
		{"explain-allowed.txt", 0, []string{"proj-b/client", "proj-a/web:80"}},
		{"explain-denied.txt", 1, []string{"proj-c/other", "proj-a/web"}},
		{"explain-service.txt", 0, []string{"--dns-ips", "169.254.25.10", "proj-a/app=web", "proj-b/nginx:http"}},
		{"explain-dns.txt", 0, []string{"--dns-ips", "169.254.25.10", "-f", "testdata/explain-egress.yaml", "proj-a/web", "169.254.25.10:53/UDP"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			code, stdout, stderr := moat(t, "", append([]string{"explain", "-f", explainWorld}, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr %s", code, c.code, stderr)
			}
			golden(t, c.golden, stdout)
		})
	}
}

// TestExplainAdminTier explains, offline, a tenant NetworkPolicy that
// reopens proj-a (the tenant check off): NetworkPolicy enforcement admits
// proj-c; an admin-tier enforcement denies it at moat's Deny rule, named,
// and still admits the allowlisted proj-b (its Pass rule, then the
// NetworkPolicy tier).
func TestExplainAdminTier(t *testing.T) {
	widened := []string{"explain", "--tenant-network-policies=off", "-f", explainWorld, "-f", "testdata/explain-widener.yaml"}
	for _, c := range []struct {
		golden, enforcement, source string
		code                        int
	}{
		{"explain-widener-networkpolicy.txt", "networkpolicy", "proj-c/other", 0},
		{"explain-widener-adminnetworkpolicy.txt", "adminnetworkpolicy", "proj-c/other", 1},
		{"explain-widener-clusternetworkpolicy.txt", "clusternetworkpolicy", "proj-c/other", 1},
		{"explain-pass-adminnetworkpolicy.txt", "adminnetworkpolicy", "proj-b/client", 0},
	} {
		t.Run(c.golden, func(t *testing.T) {
			code, stdout, stderr := moat(t, "", append(widened, "--enforcement="+c.enforcement, c.source, "proj-a/web:80")...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr %s", code, c.code, stderr)
			}
			golden(t, c.golden, stdout)
		})
	}
}

func TestExplainJSON(t *testing.T) {
	code, stdout, _ := moat(t, "", "explain", "-o", "json", "-f", explainWorld, "192.0.2.10", "proj-a/web:80")
	if code != 1 {
		t.Errorf("exit %d, want 1 (denied)", code)
	}
	var r explain.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(r.Answers) != 1 || r.Answers[0].Allowed || r.Answers[0].Ingress.Fix == nil ||
		r.Answers[0].Ingress.Fix.Allowlist.Spec.Ingress[0].From[0].IPBlock.CIDR != "192.0.2.10/32" {
		t.Errorf("want one denied answer whose fix admits 192.0.2.10/32: %s", stdout)
	}
}

func TestExplainUsageErrors(t *testing.T) {
	for _, c := range []struct {
		name, stderr string
		code         int
		args         []string
	}{
		{"a source with a port", "a source takes no port", 2, []string{"-f", explainWorld, "proj-b/client:80", "proj-a/web"}},
		{"nothing to read", "give manifests with -f PATH, or a cluster with --kubeconfig", 2, []string{"proj-b/client", "proj-a/web"}},
		{"a bad endpoint", `protocol "icmp"`, 2, []string{"-f", explainWorld, "proj-b/client", "proj-a/web:80/icmp"}},
		{"an unknown pod", "proj-a/nope: neither a Service nor a Pod", 2, []string{"-f", explainWorld, "proj-b/client", "proj-a/nope"}},
		{"a Service port that does not exist", "has no port 81", 2, []string{"-f", explainWorld, "proj-a/web", "proj-b/nginx:81"}},
		{"rejected manifests", "nothing explained", 1, []string{"-f", samplesInvalid, "proj-b/client", "proj-a/web"}},
		{"one argument", "accepts 2 arg(s)", 2, []string{"-f", explainWorld, "proj-b/client"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := moat(t, "", append([]string{"explain"}, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.stderr)
			}
		})
	}
}

// createExplainWorld creates explainWorld's objects (pods with their
// status) in the cluster, and moat's policies as moat render writes them
// with flags.
func createExplainWorld(t *testing.T, c client.Client, kubeconfig string, flags ...string) {
	t.Helper()
	ctx := context.Background()
	x, err := manifest.Load([]string{explainWorld}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range x.Objects {
		obj := o.Object.DeepCopyObject().(client.Object)
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s %s: %v", o.Kind, obj.GetName(), err)
		}
		if pod, ok := o.Object.(*corev1.Pod); ok {
			created := obj.(*corev1.Pod)
			created.Status = pod.Status
			if err := c.Status().Update(ctx, created); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, rendered, stderr := moat(t, "", append(append([]string{"render"}, flags...), "--kubeconfig", kubeconfig, explainWorld)...)
	if code != 0 {
		t.Fatalf("render: %s", stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rendered.yaml"), []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateManifests(ctx, c, dir, nil); err != nil {
		t.Fatal(err)
	}
}

// TestExplainLiveAdminTier explains from a real API server with the
// admin-tier CRDs, moat's AdminNetworkPolicies and a tenant widener in
// proj-a: with --enforcement=adminnetworkpolicy explain reads them and
// moat's Deny decides; with networkpolicy it does not read them, and the
// widener admits.
func TestExplainLiveAdminTier(t *testing.T) {
	crds, err := testenv.NetworkPolicyAPICRDs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	c, kubeconfig := startCluster(t, crds...)
	createExplainWorld(t, c, kubeconfig, "--enforcement=adminnetworkpolicy")
	widener := t.TempDir()
	data, err := os.ReadFile("testdata/explain-widener.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(widener, "widener.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateManifests(context.Background(), c, widener, nil); err != nil {
		t.Fatal(err)
	}
	explain := []string{"explain", "--kubeconfig", kubeconfig, "--tenant-network-policies=off", "proj-c/other", "proj-a/web:80"}
	code, stdout, stderr := moat(t, "", append(explain, "--enforcement=adminnetworkpolicy")...)
	if code != 1 || !strings.Contains(stdout, `the admin tier decides: AdminNetworkPolicy moat-isolation-proj-a (priority 20) spec.ingress[2] "deny ingress from other namespaces" (moat's)`) {
		t.Errorf("adminnetworkpolicy: exit %d, stderr %s, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = moat(t, "", append(explain, "--enforcement=networkpolicy")...)
	if code != 0 || strings.Contains(stdout, "admin tier") || !strings.Contains(stdout, "admitted by NetworkPolicy proj-a/ingress-all") {
		t.Errorf("networkpolicy: exit %d, stderr %s, stdout:\n%s", code, stderr, stdout)
	}
}

// TestExplainLive explains from a real API server: moat's policies as moat
// serve writes them (rendered from the same manifests and created), the
// pods with their addresses (status), an allowlist read from the cluster.
func TestExplainLive(t *testing.T) {
	c, kubeconfig := startCluster(t)
	createExplainWorld(t, c, kubeconfig)

	code, stdout, stderr := moat(t, "", "explain", "--kubeconfig", kubeconfig, "proj-b/client", "proj-a/web:80")
	if code != 0 || !strings.Contains(stdout, "admitted by allowlist from-proj-b, rule 0 (spec.ingress[0].from[0]): namespace proj-b on 80/TCP, at <cluster> (NetworkAllowlist proj-a/from-proj-b) [NetworkPolicy proj-a/moat-allowlist-from-proj-b]") {
		t.Errorf("live, allowed: exit %d, stderr %s, stdout:\n%s", code, stderr, stdout)
	}
	// By address: the pod is found by its status.podIP.
	code, stdout, _ = moat(t, "", "explain", "--kubeconfig", kubeconfig, "10.244.1.31", "proj-a/web:80")
	if code != 1 || !strings.Contains(stdout, "proj-c/other → proj-a/web 80/TCP (http): DENIED") || !strings.Contains(stdout, "namespace: proj-c") {
		t.Errorf("live, denied: exit %d, stdout:\n%s", code, stdout)
	}
	golden(t, "explain-live.txt", stdout)
}
