package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tenantTree is issue 23's case 1: an isolated namespace, and a policy
// without metadata.namespace that reopens it.
func tenantTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {moat.dev/isolated: \"true\"}\n",
		"np.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-all}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeKubeconfig writes a kubeconfig whose current context is in namespace.
func writeKubeconfig(t *testing.T, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: `+namespace+`}
current-context: ctx
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidateNamespaceFlags: -n and the kubeconfig context's namespace
// place objects without metadata.namespace as kubectl apply does.
func TestValidateNamespaceFlags(t *testing.T) {
	dir := tenantTree(t)
	np := filepath.Join(dir, "np.yaml")
	code, stdout, _ := moat(t, "", "validate", "-f", dir)
	if code != 0 || !strings.Contains(stdout, np+":1: warning: NetworkPolicy/default/open-all: metadata.namespace: not set") {
		t.Errorf("offline: exit %d, stdout %q; want 0 and the namespace warning", code, stdout)
	}
	code, stdout, _ = moat(t, "", "validate", "-n", "shop", "-f", dir)
	if code != 1 || !strings.HasPrefix(stdout, np+":1: NetworkPolicy/shop/open-all: spec.ingress[0].from[0].namespaceSelector: ") {
		t.Errorf("-n shop: exit %d, stdout %q; want 1 and the tenant rule's refusal", code, stdout)
	}
	var f sourceFlags
	src, err := f.source([]string{dir}, writeKubeconfig(t, "shop"))
	if err != nil || src.Namespace != "shop" || src.EnforceNamespace {
		t.Errorf("kubeconfig in shop: source %+v, err %v; want namespace shop, not enforced", src, err)
	}
	f = sourceFlags{namespace: "other", filenames: []string{"a.yaml", "b.yaml"}}
	src, err = f.source([]string{dir}, writeKubeconfig(t, "shop"))
	if err != nil || src.Namespace != "other" || !src.EnforceNamespace || strings.Join(src.Filenames, " ") != "a.yaml b.yaml "+dir {
		t.Errorf("-n other with a kubeconfig in shop: source %+v, err %v; want namespace other, enforced, -f values then PATHs", src, err)
	}
}

// TestValidateRecursiveFlag: -R reads subdirectories, as kubectl apply -R.
func TestValidateRecursiveFlag(t *testing.T) {
	dir := tenantTree(t)
	sub := filepath.Join(dir, ".ci")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "port.yaml"), []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 99999}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := moat(t, "", "validate", "-n", "x", dir); code != 0 || strings.Contains(stdout, "99999") {
		t.Errorf("without -R: exit %d, stdout %q; want 0 and .ci/ unread", code, stdout)
	}
	if code, stdout, _ := moat(t, "", "validate", "-n", "x", "-R", "-f", dir); code != 1 || !strings.Contains(stdout, "99999") {
		t.Errorf("with -R: exit %d, stdout %q; want 1 and .ci/port.yaml's finding", code, stdout)
	}
}
