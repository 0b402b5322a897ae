package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The guide's scenarios written as KubeSphere objects: what import prints,
// what it reports, and what moat render makes of the output (the traffic
// KubeSphere's controller admits; docs/kubesphere.md maps one to the other).
func TestImportKubeSphere(t *testing.T) {
	const dir = "testdata/kubesphere"
	for _, tc := range []struct {
		name     string
		inputs   []string // besides NAME.yaml
		services []string // given to render with the output
		exit     int
	}{
		{name: "guide", inputs: []string{dir + "/guide-services.yaml"}, services: []string{dir + "/guide-services.yaml"}},
		{name: "workspace"},
		{name: "problems", exit: exitRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"import", "kubesphere", dir + "/" + tc.name + ".yaml"}, tc.inputs...)
			code, stdout, stderr := moat(t, "", args...)
			if code != tc.exit {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.exit, stderr)
			}
			golden(t, "kubesphere/"+tc.name+".out.yaml", stdout)
			golden(t, "kubesphere/"+tc.name+".stderr", stderr)

			out := filepath.Join(t.TempDir(), "import.yaml")
			if err := os.WriteFile(out, []byte(stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			code, rendered, renderErr := moat(t, "", append([]string{"render", out}, tc.services...)...)
			if code != exitOK || renderErr != "" {
				t.Errorf("render of the import: exit %d, stderr %q; want 0 and nothing", code, renderErr)
			}
			golden(t, "kubesphere/"+tc.name+".rendered.yaml", rendered)
		})
	}
}

func TestImportKubeSphereUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"import", "kubesphere"}, "nothing to read: give manifest paths, or --kubeconfig to read a cluster"},
		{[]string{"import", "kubesphere", "testdata/kubesphere/missing.yaml"}, `the path "testdata/kubesphere/missing.yaml" does not exist`},
		{[]string{"import", "kubesphere", "--kubeconfig", "testdata/kubesphere/missing-kubeconfig"}, "loading kubeconfig testdata/kubesphere/missing-kubeconfig"},
	} {
		code, stdout, stderr := moat(t, "", tc.args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, exitUsage, tc.stderr)
		}
	}
}

// A document that is not YAML is reported, and the objects before it are
// still converted.
func TestImportKubeSphereBrokenInput(t *testing.T) {
	input := "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {kubesphere.io/workspace: w}, annotations: {kubesphere.io/network-isolate: enabled}}\n---\nkind: [\n"
	code, stdout, stderr := moat(t, input, "import", "kubesphere", "-")
	if code != exitRejected || !strings.Contains(stdout, "name: a") || !strings.Contains(stderr, "<stdin>:5: not read: invalid YAML") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, namespace a, and a problem at <stdin>:5", code, stdout, stderr)
	}
}
