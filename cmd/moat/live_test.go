package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/manifest"
)

// startCluster starts a real kube-apiserver and etcd with moat's CRD (and
// the CRDs of crdDirs) and returns a client and the path of a kubeconfig
// for it.
func startCluster(t *testing.T, crdDirs ...string) (client.Client, string) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "..", "bin")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver not found in %s (set KUBEBUILDER_ASSETS or run `make control-plane`): %v", assets, err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join("..", "..", "manifests", "crd", "bases")}, crdDirs...),
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{Name: "moat-validate", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// contextNamespace writes a copy of kubeconfig whose current context is in
// namespace.
func contextNamespace(t *testing.T, kubeconfig, namespace string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = namespace
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

var uidPattern = regexp.MustCompile(`uid: [0-9a-f-]{36}`)

// liveManifests name a Service and a namespace that exist only in the
// cluster.
const liveManifests = `apiVersion: v1
kind: Namespace
metadata:
  name: app
  labels: {moat.dev/isolated: "true"}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: uses-live, namespace: app}
spec:
  ingress:
  - from:
    - namespace: live-ns
    - namespace: nowhere
  egress:
  - to:
    - service: {namespace: live-ns, name: db}
    - service: {namespace: live-ns, name: web}
    - service: {namespace: live-ns, name: missing}
---
apiVersion: moat.dev/v1alpha1
kind: NetworkAllowlist
metadata: {name: from-app, namespace: live-ns}
spec:
  ingress:
  - from:
    - namespace: app
`

// TestLiveCluster checks --kubeconfig: objects that the manifests do not
// define are looked up in a real API server, and what render prints is
// accepted by it.
func TestLiveCluster(t *testing.T) {
	c, kubeconfig := startCluster(t)
	ctx := context.Background()
	tcp := corev1.ProtocolTCP
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live-ns", Labels: map[string]string{v1alpha1.IsolationLabel: "true"}}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "live-ns"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, Protocol: tcp}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "live-ns"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}}},
		},
		&v1alpha1.NetworkAllowlist{
			ObjectMeta: metav1.ObjectMeta{Name: "existing", Namespace: "live-ns"},
			Spec: v1alpha1.NetworkAllowlistSpec{Egress: []v1alpha1.EgressRule{{
				To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: "live-ns", Name: "web"}}},
			}}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s: %v", obj.GetName(), err)
		}
	}

	// Offline, everything in the cluster is unknown: warnings only.
	code, stdout, _ := moat(t, liveManifests, "validate", "-")
	if code != 0 {
		t.Errorf("offline: exit %d, want 0", code)
	}
	golden(t, "live-offline.txt", stdout)

	// With the cluster, the Service without a selector is rejected.
	code, stdout, _ = moat(t, liveManifests, "validate", "--kubeconfig", kubeconfig, "-")
	if code != 1 {
		t.Errorf("with --kubeconfig: exit %d, want 1", code)
	}
	golden(t, "live-online.txt", stdout)

	// Render covers live-ns (defined only in the cluster) with both its
	// allowlists: the one of the manifests and the one of the cluster.
	renderInput := strings.Replace(liveManifests, "    - service: {namespace: live-ns, name: db}\n", "", 1)
	code, rendered, stderr := moat(t, renderInput, "render", "--kubeconfig", kubeconfig, "-")
	if code != 0 {
		t.Fatalf("render: exit %d, stderr %s", code, stderr)
	}
	// The allowlist read from the cluster has a UID, so its policy is owned
	// by it; the UID changes from run to run.
	golden(t, "live-render.yaml", uidPattern.ReplaceAllString(rendered, "uid: UID"))
	golden(t, "live-render.stderr", stderr)

	// The API server accepts every rendered policy as it is.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}); err != nil {
		t.Fatal(err)
	}
	x, err := manifest.Load([]string{manifest.Stdin}, strings.NewReader(rendered), nil)
	if err != nil || len(x.Errors) != 0 {
		t.Fatalf("reading the rendered policies: %v %v", err, x.Errors)
	}
	created := 0
	for _, o := range x.Objects {
		np, ok := o.Object.(*networkingv1.NetworkPolicy)
		if !ok {
			t.Fatalf("render printed a %s", o.Kind)
		}
		if err := c.Create(ctx, np); err != nil {
			t.Errorf("the API server rejects rendered %s/%s: %v", np.Namespace, np.Name, err)
		}
		created++
	}
	if created == 0 {
		t.Error("render printed no NetworkPolicy")
	}

	// Issue 23, case 1: a policy without metadata.namespace goes to the
	// namespace of the kubeconfig's context, as with kubectl apply; there,
	// in the isolated app, the tenant rule refuses it.
	inApp := contextNamespace(t, kubeconfig, "app")
	openAll := liveManifests + "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-all}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n"
	code, stdout, _ = moat(t, openAll, "validate", "--kubeconfig", inApp, "-f", "-")
	if code != 1 || !strings.Contains(stdout, "<stdin>:29: NetworkPolicy/app/open-all: spec.ingress[0].from[0].namespaceSelector: ") {
		t.Errorf("--kubeconfig in app: exit %d, stdout %q; want 1 and the tenant rule's refusal of app/open-all", code, stdout)
	}

	// A kubeconfig that cannot be loaded is a usage error.
	code, _, stderr = moat(t, liveManifests, "validate", "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "-")
	if code != 2 || !strings.Contains(stderr, "loading kubeconfig") {
		t.Errorf("missing kubeconfig: exit %d, stderr %q; want 2 and a loading error", code, stderr)
	}
}
