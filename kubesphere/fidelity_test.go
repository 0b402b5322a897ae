package kubesphere_test

// The fidelity suite: each file of testdata/fidelity holds KubeSphere
// objects, the NetworkPolicies that KubeSphere 3.4's network controller
// (pkg/controller/network/nsnetworkpolicy) writes for them, written by hand
// from its behaviour, pods, and a ConfigMap "fidelity" that says how to
// compare (see fidelityCase). The suite converts the KubeSphere objects with
// Convert, renders the result with moat's renderer (what moat render and the
// controller write), and evaluates both sets of policies on every pair of
// endpoints and every port of the case with test/evaluator
// (kube-network-policies' engine). The verdicts must be identical, except
// for the differences the case lists, each named by a key of the table of
// intentional differences in docs/kubesphere.md.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/kubesphere"
	"moat.dev/moat/manifest"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/evaluator"
	"moat.dev/moat/validation"
)

// kubeSphereNamespaceLabel is the label KubeSphere sets on every namespace
// to its name; its policies select namespaces by it.
const kubeSphereNamespaceLabel = "kubesphere.io/namespace"

// fidelityCase is one file of testdata/fidelity.
type fidelityCase struct {
	input      *kubesphere.Reader
	kubeSphere []networkingv1.NetworkPolicy // what KubeSphere's controller writes
	namespaces []corev1.Namespace           // as KubeSphere labels them
	pods       []corev1.Pod
	// From the ConfigMap "fidelity":
	ports     []probePort // data.ports: "TCP/80 UDP/53"
	addresses []string    // data.addresses: endpoints outside the pod network
	// data.allowedIngressNamespaces and data.allowedIngressCIDRs: moat
	// serve's flags, as docs/kubesphere.md maps KubeSphere's settings.
	allowedNamespaces, allowedCIDRs []string
	// data.differences: one per line, "FROM TO PORT only-kubesphere|only-moat
	// KEY", FROM and TO a pod (namespace/name), "namespace/*", an address
	// or "*", PORT "PROTOCOL/NUMBER" or "*"; KEY names a row of the table
	// of differences in docs/kubesphere.md.
	differences []difference
	// data.expect: "FROM TO PORT allow|deny" verdicts that moat must give
	// (the acceptance of issue 22, spelled out).
	expect []expectation
	// data.errors: how many problems of severity error the import reports.
	errors int
	// data.report: substrings that the import's report must hold, one a line.
	report []string
}

type probePort struct {
	protocol corev1.Protocol
	port     int
}

func (p probePort) String() string { return fmt.Sprintf("%s/%d", p.protocol, p.port) }

type difference struct {
	from, to, port, only, key string
	seen                      bool
}

type expectation struct {
	from, to string
	port     probePort
	allow    bool
}

// endpoint is a pod (by namespace/name) or an address outside the pods.
type endpoint struct{ name, ip string }

func TestFidelity(t *testing.T) {
	keys := documentedDifferences(t)
	files, err := filepath.Glob("testdata/fidelity/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fidelity cases: %v", err)
	}
	for _, file := range files {
		tc := readFidelityCase(t, file)
		for _, projectLabel := range []string{"", kubesphere.WorkspaceLabel} {
			name := strings.TrimSuffix(filepath.Base(file), ".yaml") + "/project-label=" + projectLabel
			t.Run(name, func(t *testing.T) {
				tc.run(t, projectLabel, keys)
			})
		}
	}
}

// run imports the case under moat's configuration with projectLabel and
// compares moat's verdicts with KubeSphere's.
func (tc *fidelityCase) run(t *testing.T, projectLabel string, keys map[string]bool) {
	cfg := validation.Config{Policy: policy.Config{
		AllowedIngressNamespaces: tc.allowedNamespaces,
		AllowedIngressCIDRs:      tc.allowedCIDRs,
		DNSService:               &policy.DefaultDNSService,
		ProjectLabel:             projectLabel,
	}}
	result := kubesphere.Convert(tc.input.Input, cfg)
	tc.checkReport(t, result)
	moatPolicies := tc.render(t, result, cfg.Policy)
	ks, err := evaluator.New(evaluator.Objects{Namespaces: tc.namespaces, Pods: tc.pods, NetworkPolicies: tc.kubeSphere})
	if err != nil {
		t.Fatal(err)
	}
	moat, err := evaluator.New(evaluator.Objects{Namespaces: tc.mergedNamespaces(result), Pods: tc.pods, NetworkPolicies: moatPolicies})
	if err != nil {
		t.Fatal(err)
	}
	for i := range tc.differences {
		tc.differences[i].seen = false
		if !keys[tc.differences[i].key] {
			t.Errorf("difference key %q is not in the table of differences of docs/kubesphere.md", tc.differences[i].key)
		}
	}
	endpoints := tc.endpoints()
	for _, src := range endpoints {
		for _, dst := range endpoints {
			if src.ip == dst.ip {
				continue
			}
			for _, port := range tc.ports {
				tc.compare(t, ks, moat, src, dst, port)
			}
		}
	}
	for _, d := range tc.differences {
		if !d.seen {
			t.Errorf("listed difference %s %s %s %s (%s) did not occur: remove it", d.from, d.to, d.port, d.only, d.key)
		}
	}
	tc.checkExpectations(t, moat)
}

// compare evaluates one probe with both policy sets.
func (tc *fidelityCase) compare(t *testing.T, ks, moat *evaluator.Evaluator, src, dst endpoint, port probePort) {
	t.Helper()
	want := verdict(t, ks, src, dst, port)
	got := verdict(t, moat, src, dst, port)
	if want == got {
		return
	}
	only := "only-moat"
	if want {
		only = "only-kubesphere"
	}
	for i := range tc.differences {
		if d := &tc.differences[i]; d.only == only && matches(d.from, src) && matches(d.to, dst) && (d.port == "*" || d.port == port.String()) {
			d.seen = true
			return
		}
	}
	t.Errorf("%s -> %s %s: KubeSphere %s, moat %s; not a listed difference", src.name, dst.name, port, word(want), word(got))
}

func verdict(t *testing.T, e *evaluator.Evaluator, src, dst endpoint, port probePort) bool {
	t.Helper()
	ok, err := e.Allowed(src.ip, dst.ip, port.port, port.protocol)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func word(allowed bool) string {
	if allowed {
		return "allows"
	}
	return "denies"
}

// matches reports whether pattern (a name, "namespace/*" or "*") names e.
func matches(pattern string, e endpoint) bool {
	if pattern == "*" || pattern == e.name {
		return true
	}
	ns, ok := strings.CutSuffix(pattern, "/*")
	return ok && strings.HasPrefix(e.name, ns+"/")
}

func (tc *fidelityCase) checkExpectations(t *testing.T, moat *evaluator.Evaluator) {
	t.Helper()
	byName := map[string]endpoint{}
	for _, e := range tc.endpoints() {
		byName[e.name] = e
	}
	for _, x := range tc.expect {
		src, ok1 := byName[x.from]
		dst, ok2 := byName[x.to]
		if !ok1 || !ok2 {
			t.Fatalf("expect names unknown endpoints %s, %s", x.from, x.to)
		}
		if got := verdict(t, moat, src, dst, x.port); got != x.allow {
			t.Errorf("moat %s %s -> %s %s, want the opposite", word(got), x.from, x.to, x.port)
		}
	}
}

// checkReport checks the import's errors and report lines.
func (tc *fidelityCase) checkReport(t *testing.T, result kubesphere.Result) {
	t.Helper()
	var report strings.Builder
	for _, p := range result.Problems {
		report.WriteString(p.String() + "\n")
	}
	if got := result.Errors(); got != tc.errors {
		t.Errorf("the import reports %d errors, want %d:\n%s", got, tc.errors, report.String())
	}
	for _, want := range tc.report {
		if !strings.Contains(report.String(), want) {
			t.Errorf("the import's report lacks %q:\n%s", want, report.String())
		}
	}
}

// render is moat render on the import's output applied to the cluster:
// the Namespaces as the import's patches leave them, the Services, and the
// allowlists.
func (tc *fidelityCase) render(t *testing.T, result kubesphere.Result, cfg policy.Config) []networkingv1.NetworkPolicy {
	t.Helper()
	x := manifest.NewIndex(nil)
	namespaces := tc.mergedNamespaces(result)
	for i := range namespaces {
		x.Object(manifest.Object{Object: &namespaces[i], Kind: "Namespace"})
	}
	for _, svc := range tc.input.Input.Services {
		x.Object(manifest.Object{Object: svc, Kind: "Service"})
	}
	for _, al := range result.Allowlists {
		x.Object(manifest.Object{Object: al, Kind: "NetworkAllowlist"})
	}
	x.Build()
	policies, _, err := manifest.Render(x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return policies
}

// mergedNamespaces are the case's namespaces with the labels of the
// import's Namespace patches (kubectl apply --server-side).
func (tc *fidelityCase) mergedNamespaces(result kubesphere.Result) []corev1.Namespace {
	patches := map[string]map[string]string{}
	for _, ns := range result.Namespaces {
		patches[ns.Name] = ns.Labels
	}
	out := make([]corev1.Namespace, len(tc.namespaces))
	for i, ns := range tc.namespaces {
		out[i] = *ns.DeepCopy()
		for k, v := range patches[ns.Name] {
			out[i].Labels[k] = v
		}
	}
	return out
}

func (tc *fidelityCase) endpoints() []endpoint {
	var out []endpoint
	for _, p := range tc.pods {
		out = append(out, endpoint{name: p.Namespace + "/" + p.Name, ip: p.Status.PodIP})
	}
	for _, a := range tc.addresses {
		out = append(out, endpoint{name: a, ip: a})
	}
	return out
}

// readFidelityCase reads one case file.
func readFidelityCase(t *testing.T, file string) *fidelityCase {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tc := &fidelityCase{input: kubesphere.NewReader()}
	var objs []*unstructured.Unstructured
	var bad []string
	err = manifest.ReadUnstructured(file, f, func(_ manifest.Position, u *unstructured.Unstructured) {
		objs = append(objs, u)
	}, func(e *manifest.Error) { bad = append(bad, e.Position.String()+": "+e.Message) })
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	var data map[string]string
	for _, u := range objs {
		tc.input.Add(u, file)
		switch u.GetKind() {
		case "NetworkPolicy":
			tc.kubeSphere = append(tc.kubeSphere, decodeAs[networkingv1.NetworkPolicy](t, u))
		case "Pod":
			tc.pods = append(tc.pods, decodeAs[corev1.Pod](t, u))
		case "Namespace":
			tc.namespaces = append(tc.namespaces, kubeSphereNamespace(decodeAs[corev1.Namespace](t, u)))
		case "ConfigMap":
			data = decodeAs[corev1.ConfigMap](t, u).Data
		}
	}
	if len(tc.input.Problems) > 0 {
		t.Fatalf("%s: %v", file, tc.input.Problems)
	}
	tc.parseConfig(t, data)
	return tc
}

// kubeSphereNamespace labels ns as the API server and KubeSphere do.
func kubeSphereNamespace(ns corev1.Namespace) corev1.Namespace {
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[v1alpha1.NamespaceNameLabel] = ns.Name
	ns.Labels[kubeSphereNamespaceLabel] = ns.Name
	return ns
}

func (tc *fidelityCase) parseConfig(t *testing.T, data map[string]string) {
	t.Helper()
	for _, s := range strings.Fields(data["ports"]) {
		tc.ports = append(tc.ports, parsePort(t, s))
	}
	tc.addresses = strings.Fields(data["addresses"])
	tc.allowedNamespaces = strings.Fields(data["allowedIngressNamespaces"])
	tc.allowedCIDRs = strings.Fields(data["allowedIngressCIDRs"])
	for _, line := range lines(data["differences"]) {
		f := strings.Fields(line)
		if len(f) != 5 || (f[3] != "only-kubesphere" && f[3] != "only-moat") {
			t.Fatalf("difference %q: want FROM TO PORT only-kubesphere|only-moat KEY", line)
		}
		tc.differences = append(tc.differences, difference{from: f[0], to: f[1], port: f[2], only: f[3], key: f[4]})
	}
	for _, line := range lines(data["expect"]) {
		f := strings.Fields(line)
		if len(f) != 4 || (f[3] != "allow" && f[3] != "deny") {
			t.Fatalf("expect %q: want FROM TO PORT allow|deny", line)
		}
		tc.expect = append(tc.expect, expectation{from: f[0], to: f[1], port: parsePort(t, f[2]), allow: f[3] == "allow"})
	}
	tc.report = lines(data["report"])
	if s := data["errors"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("errors %q: %v", s, err)
		}
		tc.errors = n
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func parsePort(t *testing.T, s string) probePort {
	t.Helper()
	proto, num, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		t.Fatalf("port %q: want PROTOCOL/NUMBER", s)
	}
	return probePort{protocol: corev1.Protocol(proto), port: n}
}

func decodeAs[T any](t *testing.T, u *unstructured.Unstructured) T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true); err != nil {
		t.Fatalf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out
}

// documentedDifferences returns the keys of the table of intentional
// differences in docs/kubesphere.md: the first cell of each row, in
// backquotes.
func documentedDifferences(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../docs/kubesphere.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "## Intentional differences")
	if !ok {
		t.Fatal("docs/kubesphere.md has no section \"Intentional differences\"")
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|").FindAllStringSubmatch(table, -1) {
		keys[m[1]] = true
	}
	if len(keys) == 0 {
		t.Fatal("the table of intentional differences in docs/kubesphere.md has no keys")
	}
	return keys
}
