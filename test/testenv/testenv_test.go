package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "moat", "test", "e2e")
	other := filepath.Join(root, "other")
	for _, d := range []string{deep, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "moat", "go.mod"), "// moat\nmodule moat.dev/moat\n\ngo 1.26\n")
	// A nested module of another name (like test/controlplane) is skipped.
	write(filepath.Join(root, "moat", "test", "go.mod"), "module moat.dev/moat/test/controlplane\n")
	write(filepath.Join(other, "go.mod"), "module example.com/other\n")

	t.Chdir(deep)
	got, err := RepoRoot()
	if want := filepath.Join(root, "moat"); err != nil || got != want {
		t.Fatalf("RepoRoot() from %s = %q, %v; want %q", deep, got, err, want)
	}
	t.Chdir(other)
	if got, err := RepoRoot(); err == nil {
		t.Fatalf("RepoRoot() outside the repository = %q, want an error", got)
	}
}

// TestReadManifests: the objects of every YAML file but kustomization.yaml,
// in file order, List items one by one; a document kubectl would refuse is an
// error naming its file.
func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [b.yaml]\n")
	write("b.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b, namespace: moat-system}\n---\n"+
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c1}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c2}}\n")
	write("a.yaml", "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
	write("notes.txt", "kind: Secret\n")
	objs, err := ReadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if want := []string{"Namespace/a", "ServiceAccount/b", "ConfigMap/c1", "ConfigMap/c2"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}

	write("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x}\n")
	if _, err := ReadManifests(dir); err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Fatalf("a document kubectl refuses: error %v, want one naming c.yaml", err)
	}
}
