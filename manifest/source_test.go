package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moat.dev/moat/validation"
)

// The manifests of issue 23's cases 1 to 4.
const (
	// openAll reopens an isolated project to every namespace: the tenant
	// rule refuses it there. It has no metadata.namespace.
	openAll = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-all}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n"
	// shopOpenAll is openAll in the namespace shop.
	shopOpenAll = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-all, namespace: shop}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n"
)

// shopNamespace is the Namespace shop, isolated or not.
func shopNamespace(isolated string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {moat.dev/isolated: \"" + isolated + "\"}\n"
}

// writeTree writes files (path: content) below a new directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// summary is a finding without its file's directory, and with only the
// start of its message.
func summary(dir string, fs []Finding) []string {
	var out []string
	for _, f := range fs {
		f.File = strings.TrimPrefix(f.File, dir+string(filepath.Separator))
		msg := f.Message
		if i := strings.IndexAny(msg, ":;"); i > 0 {
			msg = msg[:i]
		}
		f.Message = strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
		out = append(out, f.String())
	}
	return out
}

func checkSource(t *testing.T, src Source) []Finding {
	t.Helper()
	_, findings, err := CheckSource(src, nil, nil, validation.Config{TenantNetworkPolicies: validation.TenantPoliciesRestrict})
	if err != nil {
		t.Fatal(err)
	}
	return findings
}

const tenantRefusal = "NetworkPolicy/shop/open-all: spec.ingress[0].from[0].namespaceSelector"

// TestSourceNamespace is issue 23's case 1: objects without
// metadata.namespace go where kubectl apply puts them.
func TestSourceNamespace(t *testing.T) {
	dir := writeTree(t, map[string]string{"ns.yaml": shopNamespace("true"), "np.yaml": openAll})
	// Offline, without -n: "default", and a warning that it matters.
	got := summary(dir, checkSource(t, Source{Filenames: []string{dir}}))
	want := []string{`np.yaml:1: warning: NetworkPolicy/default/open-all: metadata.namespace: not set, and what moat finds depends on it`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("without -n (-want +got):\n%s", diff)
	}
	// With -n shop (or a kubeconfig context in shop), the tenant rule
	// refuses it, as the webhook would.
	for _, enforce := range []bool{true, false} {
		got = summary(dir, checkSource(t, Source{Filenames: []string{dir}, Namespace: "shop", EnforceNamespace: enforce}))
		if len(got) != 1 || !strings.HasPrefix(got[0], "np.yaml:1: "+tenantRefusal) {
			t.Errorf("namespace shop (enforced: %v): findings %q, want the tenant rule's refusal", enforce, got)
		}
	}
	// -n refuses objects of another namespace, as kubectl apply -n does;
	// a kubeconfig context's namespace does not.
	other := Source{Filenames: []string{dir}, Namespace: "other", EnforceNamespace: true}
	dir2 := writeTree(t, map[string]string{"np.yaml": shopOpenAll})
	other.Filenames = []string{dir2}
	want = []string{`np.yaml:1: NetworkPolicy/shop/open-all: metadata.namespace "shop" is not the namespace "other" of -n`}
	if diff := cmp.Diff(want, summary(dir2, checkSource(t, other))); diff != "" {
		t.Errorf("-n other (-want +got):\n%s", diff)
	}
	other.EnforceNamespace = false
	if got := checkSource(t, other); len(got) != 0 {
		t.Errorf("context namespace other: %v, want no finding", got)
	}
}

// TestSourceServiceNamespace: a Service peer without a namespace is looked
// up in the allowlist's namespace, which kubectl apply chooses.
func TestSourceServiceNamespace(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"ns.yaml":  shopNamespace("true"),
		"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n",
		"al.yaml":  "apiVersion: moat.dev/v1alpha1\nkind: NetworkAllowlist\nmetadata: {name: to-db}\nspec:\n  egress:\n  - to:\n    - service: {name: db}\n",
	})
	got := summary(dir, checkSource(t, Source{Filenames: []string{dir}}))
	want := []string{
		`al.yaml:1: warning: NetworkAllowlist/default/to-db: metadata.namespace: not set, and what moat finds depends on it`,
		`al.yaml:1: warning: NetworkAllowlist/default/to-db: spec.egress[0].to[0].service: Service default/db does not exist`,
	}
	if diff := cmp.Diff(want, got, prefixes()); diff != "" {
		t.Errorf("without -n (-want +got):\n%s", diff)
	}
	if got := checkSource(t, Source{Filenames: []string{dir}, Namespace: "shop"}); len(got) != 0 {
		t.Errorf("in shop: %v, want no finding (the Service is there)", got)
	}

	// The other way round: the allowlist has its namespace, the Service
	// it names does not.
	dir = writeTree(t, map[string]string{
		"ns.yaml":  shopNamespace("true"),
		"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n",
		"al.yaml":  "apiVersion: moat.dev/v1alpha1\nkind: NetworkAllowlist\nmetadata: {name: to-db, namespace: shop}\nspec:\n  egress:\n  - to:\n    - service: {name: db, namespace: default}\n",
	})
	got = summary(dir, checkSource(t, Source{Filenames: []string{dir}}))
	want = []string{`al.yaml:1: warning: NetworkAllowlist/shop/to-db: what moat finds depends on objects without metadata.namespace (a Service, an allowlist)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("a Service without namespace (-want +got):\n%s", diff)
	}
}

// TestSourceDirectories is issue 23's case 2: a directory is read at its
// top level only, unless -R, which reads dot-directories too.
func TestSourceDirectories(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"ns.yaml":      shopNamespace("true"),
		"np.yaml":      "# allowed: the namespace is not isolated... in old/\n" + shopOpenAll,
		"old/ns.yaml":  shopNamespace("false"),
		".ci/np.yaml":  strings.Replace(shopOpenAll, "open-all", "ci-open-all", 1),
		".ci/skip.txt": "not read",
	})
	got := summary(dir, checkSource(t, Source{Filenames: []string{dir}}))
	want := []string{"np.yaml:2: " + tenantRefusal}
	if diff := cmp.Diff(want, got, prefixes()); diff != "" {
		t.Errorf("-f DIR (-want +got):\n%s", diff)
	}
	// With -R, kubectl applies .ci/ first and old/ns.yaml last: shop ends
	// up not isolated, so nothing is refused, and the duplicate is said.
	got = summary(dir, checkSource(t, Source{Filenames: []string{dir}, Recursive: true}))
	want = []string{"old/ns.yaml:1: warning: Namespace/shop: defined again"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-R -f DIR (-want +got):\n%s", diff)
	}
	files, err := Source{Filenames: []string{dir}, Recursive: true}.Files()
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{".ci/np.yaml", "np.yaml", "ns.yaml", "old/ns.yaml"}
	if diff := cmp.Diff(wantFiles, trimDir(dir, files)); diff != "" {
		t.Errorf("files of -R (-want +got):\n%s", diff)
	}
}

// prefixes compares findings by prefix: want holds the start of each.
func prefixes() cmp.Option {
	return cmp.Comparer(func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) })
}

func trimDir(dir string, files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimPrefix(f, dir+string(filepath.Separator))
	}
	return out
}

// TestSourceOrder is issue 23's case 3: the last definition is the last
// that kubectl apply applies (argument order, then walk order: a/ before
// a-b/), and the warning names the one it replaces.
func TestSourceOrder(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"np.yaml":     shopOpenAll,
		"a/ns.yaml":   shopNamespace("false"),
		"a-b/ns.yaml": shopNamespace("true"),
	})
	got := summary(dir, checkSource(t, Source{Filenames: []string{dir}, Recursive: true}))
	want := []string{
		"a-b/ns.yaml:1: warning: Namespace/shop: defined again: the previous definition is at a/ns.yaml:1",
		"np.yaml:1: " + tenantRefusal,
	}
	if diff := cmp.Diff(want, got, prefixes()); diff != "" {
		t.Errorf("-R (-want +got):\n%s", diff)
	}
	// Arguments in the other order: a/ns.yaml is applied last.
	src := Source{Filenames: []string{filepath.Join(dir, "a-b"), filepath.Join(dir, "a"), filepath.Join(dir, "np.yaml")}}
	got = summary(dir, checkSource(t, src))
	want = []string{"a/ns.yaml:1: warning: Namespace/shop: defined again: the previous definition is at a-b/ns.yaml:1"}
	if diff := cmp.Diff(want, got, prefixes()); diff != "" {
		t.Errorf("-f a-b -f a (-want +got):\n%s", diff)
	}
}

// TestSourceLinksAndGlobs is issue 23's case 4: symbolic links that loop or
// point at a directory fail as with kubectl; glob patterns are expanded.
func TestSourceLinksAndGlobs(t *testing.T) {
	dir := writeTree(t, map[string]string{"ns.yaml": shopNamespace("true"), "sub/np.yaml": shopOpenAll, "sub/x.yml": shopNamespace("false")})
	for name, target := range map[string]string{"loop/self.yaml": "self.yaml", "dirlink/sub.yaml": "../sub", "dangling/gone.json": "gone"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	for sub, wantErr := range map[string]string{
		"loop":     "open " + filepath.Join(dir, "loop/self.yaml") + ": too many levels of symbolic links",
		"dirlink":  "read " + filepath.Join(dir, "dirlink/sub.yaml") + ": is a directory",
		"dangling": "open " + filepath.Join(dir, "dangling/gone.json") + ": no such file or directory",
	} {
		_, _, err := CheckSource(Source{Filenames: []string{filepath.Join(dir, sub)}}, nil, nil, validation.Config{})
		if err == nil || err.Error() != wantErr {
			t.Errorf("%s: err = %v, want %q", sub, err, wantErr)
		}
	}
	// A quoted glob, as kubectl expands it: sub/*.yaml is np.yaml alone.
	got := summary(dir, checkSource(t, Source{Filenames: []string{filepath.Join(dir, "ns.yaml"), filepath.Join(dir, "sub", "*.yaml")}}))
	if want := []string{"sub/np.yaml:1: " + tenantRefusal}; !cmp.Equal(want, got, prefixes()) {
		t.Errorf("glob: %q, want %q", got, want)
	}
	for pattern, wantErr := range map[string]string{
		filepath.Join(dir, "*.txt"): `the path "` + filepath.Join(dir, "*.txt") + `" does not exist`,
		filepath.Join(dir, "[x"):    `pattern "` + filepath.Join(dir, "[x") + `" is not valid: syntax error in pattern`,
	} {
		if _, err := (Source{Filenames: []string{pattern}}).Files(); err == nil || err.Error() != wantErr {
			t.Errorf("%s: err = %v, want %q", pattern, err, wantErr)
		}
	}
}

// TestSourceNothingToRead: like kubectl, an argument that yields no file is
// an error unless an earlier argument yielded one.
func TestSourceNothingToRead(t *testing.T) {
	dir := writeTree(t, map[string]string{"ns.yaml": shopNamespace("true"), "empty/README.md": "not read", "deep/sub/np.yaml": shopOpenAll})
	empty, deep, ns := filepath.Join(dir, "empty"), filepath.Join(dir, "deep"), filepath.Join(dir, "ns.yaml")
	for _, args := range [][]string{{empty}, {deep}, {empty, ns}} {
		if _, err := (Source{Filenames: args}).Files(); err == nil || !strings.Contains(err.Error(), ": no file to read: ") {
			t.Errorf("%v: err = %v, want no file to read", args, err)
		}
		if _, err := applyLikeKubectl(t, Source{Filenames: args}); err == nil {
			t.Errorf("%v: kubectl reads it without error", args)
		}
	}
	if _, err := applyLikeKubectl(t, Source{Filenames: []string{ns, empty}}); err != nil {
		t.Errorf("ns.yaml then empty/: kubectl fails: %v", err)
	}
	files, err := Source{Filenames: []string{ns, empty}}.Files()
	if err != nil || !cmp.Equal(files, []string{ns}) {
		t.Errorf("ns.yaml then empty/: %v, %v; want ns.yaml alone, as kubectl", files, err)
	}
	files, err = Source{Filenames: []string{deep}, Recursive: true}.Files()
	if err != nil || !cmp.Equal(files, []string{filepath.Join(deep, "sub", "np.yaml")}) {
		t.Errorf("-R deep/: %v, %v", files, err)
	}
}
