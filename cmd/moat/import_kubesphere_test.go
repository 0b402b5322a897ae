package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/testenv"
)

// TestImportKubeSphereCluster runs moat import kubesphere --kubeconfig
// against a real API server with KubeSphere's CRDs (test fixtures in
// testdata/kubesphere/crds), holding the objects of
// testdata/kubesphere/cluster: the output is the one the same objects give
// from a file, and the API server accepts it, as a patch of the Namespaces'
// labels.
func TestImportKubeSphereCluster(t *testing.T) {
	const dir = "testdata/kubesphere/cluster"
	fileCode, fromFile, fileErr := moat(t, "", "import", "kubesphere", dir+"/kubesphere.yaml")
	golden(t, "kubesphere/cluster.out.yaml", fromFile)
	golden(t, "kubesphere/cluster.stderr", fileErr)

	c, kubeconfig := startCluster(t, filepath.Join("testdata", "kubesphere", "crds"))
	ctx := context.Background()
	if err := testenv.CreateManifests(ctx, c, dir, nil); err != nil {
		t.Fatal(err)
	}
	code, fromCluster, stderr := moat(t, "", "import", "kubesphere", "--kubeconfig", kubeconfig)
	if code != fileCode || fromCluster != fromFile {
		t.Errorf("from the cluster: exit %d, output\n%s\nwant exit %d and the output from the file\n%s\nstderr:\n%s", code, fromCluster, fileCode, fromFile, stderr)
	}
	if want := strings.ReplaceAll(fileErr, dir+"/kubesphere.yaml", "<cluster>"); stderr != want {
		t.Errorf("from the cluster, the report\n%s\nwant the report from the file, at <cluster>:\n%s", stderr, want)
	}

	applyOutput(t, ctx, c, fromCluster)
	for name, want := range map[string]map[string]string{
		"team-a-web": {v1alpha1.IsolationLabel: "true", "kubesphere.io/workspace": "team-a"},
		"team-a-db":  {v1alpha1.IsolationLabel: "true", v1alpha1.GroupIngressLabel: "false", "kubesphere.io/workspace": "team-a"},
		"team-c-app": {v1alpha1.IsolationLabel: "true", "kubesphere.io/workspace": "team-c"},
		"legacy":     {v1alpha1.IsolationLabel: "true", v1alpha1.GroupIngressLabel: "false"},
	} {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if ns.Labels[k] != v {
				t.Errorf("namespace %s after applying the import: label %s=%q, want %q", name, k, ns.Labels[k], v)
			}
		}
	}
	allowlists := &v1alpha1.NetworkAllowlistList{}
	if err := c.List(ctx, allowlists); err != nil {
		t.Fatal(err)
	}
	if got, want := len(allowlists.Items), strings.Count(fromCluster, "kind: NetworkAllowlist"); got != want || got == 0 {
		t.Errorf("%d allowlists stored, want the %d of the output", got, want)
	}
}

// applyOutput applies each document of the import's output with
// server-side apply, as docs/kubesphere.md says.
func applyOutput(t *testing.T, ctx context.Context, c client.Client, output string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "moat.yaml"), []byte(output), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.ReadManifests(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("moat-import"), client.ForceOwnership); err != nil {
			t.Fatalf("applying %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}
