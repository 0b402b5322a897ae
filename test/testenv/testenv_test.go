package testenv

import (
	"os"
	"path/filepath"
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
