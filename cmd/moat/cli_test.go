package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/manifest"
	"moat.dev/moat/policy"
	"moat.dev/moat/validation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	samples        = "../../manifests/samples"
	samplesInvalid = "../../manifests/samples-invalid"
)

// moat runs the command in-process and returns its exit status and output.
func moat(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); if the change is intended, run go test -update:\n%s", path, diff)
	}
}

// kustomizeBuild renders a kustomization as `kustomize build` does.
func kustomizeBuild(t *testing.T, dir string) string {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestValidateSamples(t *testing.T) {
	code, stdout, stderr := moat(t, "", "validate", samples)
	if code != 0 || stdout != "" || stderr != "" {
		t.Errorf("validate %s: exit %d, stdout %q, stderr %q; want 0 and no output", samples, code, stdout, stderr)
	}
}

func TestValidateInvalidSamples(t *testing.T) {
	code, stdout, stderr := moat(t, "", "validate", samplesInvalid)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	golden(t, "validate-invalid.txt", stdout)
	if want := "moat validate: 2 errors, 0 warnings in 3 objects\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}

	// The seed's SCTP example is accepted once the cluster supports SCTP.
	code, stdout, _ = moat(t, "", "validate", "--sctp-enabled", filepath.Join(samplesInvalid, "sctp.yaml"))
	if code != 0 || stdout != "" {
		t.Errorf("validate --sctp-enabled sctp.yaml: exit %d, stdout %q; want 0 and no output", code, stdout)
	}
}

func TestValidateJSON(t *testing.T) {
	code, stdout, _ := moat(t, "", "validate", "-o", "json", samplesInvalid)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	golden(t, "validate-invalid.json", stdout)
	var findings []manifest.Finding
	if err := json.Unmarshal([]byte(stdout), &findings); err != nil {
		t.Fatalf("output is not a JSON array of findings: %v", err)
	}
	if len(findings) != 2 || findings[0].Severity != manifest.SeverityError || findings[0].Line != 3 {
		t.Errorf("findings = %+v; want two errors, the first on line 3", findings)
	}

	code, stdout, _ = moat(t, "", "validate", "-o", "json", samples)
	if code != 0 || stdout != "[]\n" {
		t.Errorf("validate -o json %s: exit %d, stdout %q; want 0 and []", samples, code, stdout)
	}
}

// wideOpen is admitted with a warning (0.0.0.0/0).
const wideOpen = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {moat.dev/isolated: "true"}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: anywhere, namespace: shop}
spec:
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0}
`

func TestValidateStrict(t *testing.T) {
	want := "<stdin>:7: warning: NetworkAllowlist/shop/anywhere: spec.egress[0].to[0].ipBlock.cidr: 0.0.0.0/0 matches every IPv4 address, which depending on the network plugin includes the pods of every project: list the external networks you mean instead\n"
	code, stdout, stderr := moat(t, wideOpen, "validate", "-")
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("without --strict: exit %d, stdout %q, stderr %q; want 0, %q and no stderr", code, stdout, stderr, want)
	}
	code, stdout, stderr = moat(t, wideOpen, "validate", "--strict", "-")
	if code != 1 || stdout != want || stderr != "moat validate: 0 errors, 1 warning in 2 objects\n" {
		t.Errorf("with --strict: exit %d, stdout %q, stderr %q; want 1 and the warning", code, stdout, stderr)
	}
}

// TestValidateKustomizeBuild is `kustomize build DIR | moat validate -`.
func TestValidateKustomizeBuild(t *testing.T) {
	code, stdout, stderr := moat(t, kustomizeBuild(t, samples), "validate", "-")
	if code != 0 || stdout != "" || stderr != "" {
		t.Errorf("samples: exit %d, stdout %q, stderr %q; want 0 and no output", code, stdout, stderr)
	}
	code, stdout, _ = moat(t, kustomizeBuild(t, samplesInvalid), "validate", "-")
	if code != 1 {
		t.Errorf("invalid samples: exit %d, want 1", code)
	}
	golden(t, "validate-invalid-kustomize.txt", stdout)
}

// TestValidateOrderIndependent gives the same files in other orders.
func TestValidateOrderIndependent(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(samplesInvalid, "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("glob: %v, %v", files, err)
	}
	_, first, _ := moat(t, "", append([]string{"validate"}, files...)...)
	for i := range files {
		rotated := append(append([]string{}, files[i:]...), files[:i]...)
		if _, out, _ := moat(t, "", append([]string{"validate"}, rotated...)...); out != first {
			t.Errorf("paths %v: output\n%s\nwant\n%s", rotated, out, first)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args   []string
		stdin  string
		stderr string
	}{
		{[]string{"validate"}, "", "moat: nothing to read: give -f FILE, -f DIR or -f - (stdin), as to kubectl apply\nRun 'moat validate --help' for usage.\n"},
		{[]string{"render"}, "", "moat: nothing to read: give -f FILE, -f DIR or -f - (stdin), as to kubectl apply\nRun 'moat render --help' for usage.\n"},
		{[]string{"validate", "does-not-exist.yaml"}, "", "moat: the path \"does-not-exist.yaml\" does not exist\n"},
		{[]string{"validate", "-f", "https://example.com/np.yaml"}, "", "moat: https://example.com/np.yaml: URLs are not read: download the file and give its path\n"},
		{[]string{"validate", "-n", "Shop", "-f", samples}, "", "moat: -n/--namespace \"Shop\" is not a valid namespace name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\nRun 'moat validate --help' for usage.\n"},
		{[]string{"validate", "-", "-"}, "", "moat: \"-\" given more than once: stdin can be read only once\n"},
		{[]string{"validate", "-o", "yaml", samples}, "", "moat: invalid value \"yaml\" for -o/--output: use one of text, json, sarif, junit, github\n"},
		{[]string{"validate", "--pod-cidrs", "10.0.0.1/8", samples}, "",
			"moat: invalid argument \"10.0.0.1/8\" for \"--pod-cidrs\" flag: \"10.0.0.1/8\" must not have host bits set: use the network address 10.0.0.0/8, or 10.0.0.1/32 for the single address 10.0.0.1\nRun 'moat validate --help' for usage.\n"},
		{[]string{"validate", "--service-cidrs", "10.96.0.0/12,nope", samples}, "",
			"moat: invalid argument \"10.96.0.0/12,nope\" for \"--service-cidrs\" flag: \"nope\" must be a CIDR such as 10.1.0.0/24, 192.168.1.1/32 or 2001:db8::/64\nRun 'moat validate --help' for usage.\n"},
		{[]string{"render", "--allowed-ingress-namespaces", "Monitoring", samples}, "",
			"moat: invalid argument \"Monitoring\" for \"--allowed-ingress-namespaces\" flag: \"Monitoring\" is not a valid namespace name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\nRun 'moat render --help' for usage.\n"},
		{[]string{"render", "--dns-service", "kube-dns", samples}, "",
			"moat: invalid argument \"kube-dns\" for \"--dns-service\" flag: \"kube-dns\" must be namespace/name, e.g. kube-system/kube-dns, or \"\" to turn the DNS exception off\nRun 'moat render --help' for usage.\n"},
		{[]string{"validate", "--no-such-flag", samples}, "", "moat: unknown flag: --no-such-flag\nRun 'moat validate --help' for usage.\n"},
		{[]string{"render", "--enforcement", "calico", samples}, "",
			"moat: invalid argument \"calico\" for \"--enforcement\" flag: unknown enforcement \"calico\": use one of networkpolicy, adminnetworkpolicy or clusternetworkpolicy\nRun 'moat render --help' for usage.\n"},
		{[]string{"render", "--admin-tier-priority", "5000", samples}, "",
			"moat: invalid argument \"5000\" for \"--admin-tier-priority\" flag: \"5000\" is not a priority from 1 to 1000\nRun 'moat render --help' for usage.\n"},
		{[]string{"frobnicate"}, "", "moat: unknown command \"frobnicate\" for \"moat\"\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := moat(t, tt.stdin, tt.args...)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and no output", code, stdout)
			}
			if diff := cmp.Diff(tt.stderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var cfg validation.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addConfigFlags(fs, "moat-system", &cfg)
	if diff := cmp.Diff(policy.Config{DNSService: &policy.DefaultDNSService, ProtectedNamespaces: v1alpha1.DefaultProtectedNamespaces("moat-system"),
		MaxNodeAddressesPerNode: policy.DefaultMaxNodeAddressesPerNode, MaxNodeAddresses: policy.DefaultMaxNodeAddresses,
		Enforcement: policy.EnforcementNetworkPolicy, AdminTierPriority: policy.DefaultAdminTierPriority}, cfg.Policy); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	err := fs.Parse([]string{
		"--sctp-enabled",
		"--pod-cidrs", "10.244.0.0/16, fd00:10:244::/56", "--pod-cidrs=10.245.0.0/16",
		"--service-cidrs", "10.96.0.0/12",
		"--allowed-ingress-namespaces", "monitoring,ingress-nginx", "--allowed-ingress-namespaces", "gateway",
		"--allowed-ingress-cidrs", "192.168.0.0/24",
		"--dns-service", "dns/coredns",
		"--project-label", "kubesphere.io/workspace",
		"--dns-ips", "169.254.25.10,fd00::a", "--dns-ips", "169.254.20.10",
		"--allow-ingress-from-nodes",
		"--node-address-types", "InternalIP,ExternalIP",
		"--node-address-annotations", "projectcalico.org/IPv4IPIPTunnelAddr",
		"--max-node-addresses-per-node", "4", "--max-node-addresses", "500",
		"--enforcement", "clusternetworkpolicy", "--admin-tier-priority", "700",
	})
	if err != nil {
		t.Fatal(err)
	}
	wantV := validation.Config{
		TenantNetworkPolicies: validation.TenantPoliciesRestrict,
		SCTPEnabled:           true,
		PodCIDRs:              []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56"), netip.MustParsePrefix("10.245.0.0/16")},
		ServiceCIDRs:          []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
	}
	wantP := policy.Config{
		AllowedIngressNamespaces: []string{"monitoring", "ingress-nginx", "gateway"},
		AllowedIngressCIDRs:      []string{"192.168.0.0/24"},
		DNSService:               &types.NamespacedName{Namespace: "dns", Name: "coredns"},
		DNSIPs:                   []netip.Addr{netip.MustParseAddr("169.254.25.10"), netip.MustParseAddr("fd00::a"), netip.MustParseAddr("169.254.20.10")},
		ProjectLabel:             "kubesphere.io/workspace",
		AllowIngressFromNodes:    true,
		NodeAddressTypes:         []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP},
		NodeAddressAnnotations:   []string{"projectcalico.org/IPv4IPIPTunnelAddr"},
		ProtectedNamespaces:      v1alpha1.DefaultProtectedNamespaces("moat-system"),
		MaxNodeAddressesPerNode:  4,
		MaxNodeAddresses:         500,
		Enforcement:              policy.EnforcementClusterNetworkPolicy,
		AdminTierPriority:        700,
	}
	if diff := cmp.Diff(wantP, cfg.Policy, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("policy config (-want +got):\n%s", diff)
	}
	wantV.Policy = cfg.Policy
	if diff := cmp.Diff(wantV, cfg, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("validation config (-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{{"--dns-ips", "169.254.25.10/32"}, {"--project-label", "not a key"}, {"--node-address-types", "Internal"},
		{"--admin-tier-priority", "0"}, {"--admin-tier-priority", "1001"}, {"--enforcement", "anp"}} {
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	if err := fs.Parse([]string{"--dns-service="}); err != nil || cfg.Policy.DNSService != nil {
		t.Errorf(`--dns-service="": err %v, DNSService %v; want the DNS exception off`, err, cfg.Policy.DNSService)
	}
}

// TestRenderAdminTier: with an admin-tier enforcement, render prints the
// same NetworkPolicies, then the admin-tier objects of each isolated
// namespace.
func TestRenderAdminTier(t *testing.T) {
	_, policies, _ := moat(t, "", "render", samples)
	for _, e := range []policy.Enforcement{policy.EnforcementAdminNetworkPolicy, policy.EnforcementClusterNetworkPolicy} {
		code, stdout, stderr := moat(t, "", "render", "--enforcement", string(e), samples)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q; want 0 and no stderr", e, code, stderr)
		}
		if !strings.HasPrefix(stdout, policies+"---\n") {
			t.Errorf("%s: the NetworkPolicies differ from networkpolicy mode's", e)
		}
		golden(t, "render-samples-"+string(e)+".yaml", strings.TrimPrefix(stdout, policies+"---\n"))
	}
}

func TestRenderSamples(t *testing.T) {
	code, stdout, stderr := moat(t, "", "render", samples)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and no stderr", code, stderr)
	}
	golden(t, "render-samples.yaml", stdout)

	// The output reads back as exactly the NetworkPolicies, all valid.
	x, findings, err := manifest.Check([]string{manifest.Stdin}, strings.NewReader(stdout), nil, validation.Config{})
	if err != nil || len(findings) != 0 || x.ObjectsRead != 6 || len(x.Errors) != 0 {
		t.Errorf("reading the output back: err %v, findings %v, %d objects, errors %v; want 6 valid NetworkPolicies", err, findings, x.ObjectsRead, x.Errors)
	}

	// Through kustomize and stdin the result is the same.
	if code, fromStdin, _ := moat(t, kustomizeBuild(t, samples), "render", "-"); code != 0 || fromStdin != stdout {
		t.Errorf("render - of kustomize build: exit %d, output differs:\n%s", code, fromStdin)
	}
}

// renderProblems holds allowlists that are not (fully) in force.
const renderProblems = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {moat.dev/isolated: "true"}
---
apiVersion: v1
kind: Namespace
metadata:
  name: open
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: to-db, namespace: shop}
spec:
  egress:
  - to:
    - service: {namespace: data, name: db}
    ports:
    - port: 5432
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: unused, namespace: open}
spec:
  ingress:
  - from:
    - namespace: shop
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: lost, namespace: nowhere}
spec:
  ingress:
  - from:
    - namespace: shop
`

func TestRenderClusterTraffic(t *testing.T) {
	code, stdout, stderr := moat(t, "", "render", "--project-label", "kubesphere.io/workspace", "--dns-ips", "169.254.25.10",
		"--allow-ingress-from-nodes", filepath.Join("testdata", "cluster-traffic.yaml"))
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and no stderr", code, stderr)
	}
	golden(t, "render-cluster-traffic.yaml", stdout)

	// Without --project-label the project peer is left out, and said so.
	code, _, stderr = moat(t, "", "render", filepath.Join("testdata", "cluster-traffic.yaml"))
	if code != 0 || !strings.Contains(stderr, "spec.ingress[0].from[0].project: moat has no project label (--project-label)") {
		t.Errorf("without --project-label: exit %d, stderr %q; want 0 and the project peer's finding", code, stderr)
	}
}

func TestRenderProblems(t *testing.T) {
	code, stdout, stderr := moat(t, renderProblems, "render", "--dns-service=", "--allowed-ingress-namespaces=monitoring", "-")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	golden(t, "render-problems.yaml", stdout)
	golden(t, "render-problems.stderr", stderr)
}

func TestRenderRejectsInvalid(t *testing.T) {
	code, stdout, stderr := moat(t, "", "render", samplesInvalid)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing rendered", code, stdout)
	}
	_, findings, _ := moat(t, "", "validate", samplesInvalid)
	if want := findings + "moat render: nothing rendered: 2 errors (as moat validate reports them)\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// TestBinary builds the real binary and runs it as a user would, with a
// pipe on stdin.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "moat")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runBin := func(stdin string, args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = io.Discard
		err := cmd.Run()
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode(), stdout.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stdout.String()
	}
	if code, out := runBin("", "validate", samples); code != 0 || out != "" {
		t.Errorf("validate samples: exit %d, output %q", code, out)
	}
	if code, out := runBin(kustomizeBuild(t, samples), "validate", "-"); code != 0 || out != "" {
		t.Errorf("kustomize build samples | moat validate -: exit %d, output %q", code, out)
	}
	_, want, _ := moat(t, "", "validate", "-o", "json", samplesInvalid)
	if code, out := runBin("", "validate", "-o", "json", samplesInvalid); code != 1 || out != want {
		t.Errorf("validate -o json invalid samples: exit %d, output %q; want 1 and %q", code, out, want)
	}
	if code, _ := runBin("", "validate", "--pod-cidrs", "bad", samples); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	_, want, _ = moat(t, "", "render", samples)
	if code, out := runBin("", "render", samples); code != 0 || out != want {
		t.Errorf("render samples: exit %d, output differs from the in-process run", code)
	}
}

// TestUnreachableCluster: a cluster that cannot be reached is one usage
// error, not a failed lookup per object.
func TestUnreachableCluster(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: nobody
  user: {token: none}
contexts:
- name: gone
  context: {cluster: gone, user: nobody}
current-context: gone
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := moat(t, "", "validate", "--kubeconfig", kubeconfig, samples)
	want := "moat: reading Namespaces in the cluster of kubeconfig " + kubeconfig + " (at https://127.0.0.1:1): "
	if code != 2 || stdout != "" || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "connection refused") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and an error starting %q about the refused connection", code, stdout, stderr, want)
	}
}
