package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
)

func TestTLSOptions(t *testing.T) {
	tests := []struct {
		flags     serveOptions
		wantMin   uint16
		wantProto []string
	}{
		{serveOptions{tlsMinVersion: "1.3"}, tls.VersionTLS13, []string{"http/1.1"}},
		{serveOptions{tlsMinVersion: "1.2"}, tls.VersionTLS12, []string{"http/1.1"}},
		{serveOptions{tlsMinVersion: "1.2", enableHTTP2: true}, tls.VersionTLS12, []string{"h2"}},
	}
	for _, tt := range tests {
		opts, err := tt.flags.tlsOptions()
		if err != nil {
			t.Fatalf("%+v: %v", tt.flags, err)
		}
		// The servers start from NextProtos [h2], as controller-runtime's do.
		cfg := &tls.Config{NextProtos: []string{"h2"}}
		for _, o := range opts {
			o(cfg)
		}
		if cfg.MinVersion != tt.wantMin || strings.Join(cfg.NextProtos, ",") != strings.Join(tt.wantProto, ",") {
			t.Errorf("%+v: MinVersion %x, NextProtos %v; want %x, %v", tt.flags, cfg.MinVersion, cfg.NextProtos, tt.wantMin, tt.wantProto)
		}
	}
	if _, err := (&serveOptions{tlsMinVersion: "1.1"}).tlsOptions(); err == nil ||
		err.Error() != `--tls-min-version: "1.1" is not supported: use "1.2" or "1.3"` {
		t.Errorf("--tls-min-version=1.1: error %v", err)
	}
}

func TestServeDefaults(t *testing.T) {
	t.Setenv(podNamespaceEnv, "platform")
	fs := newServeCommand().Flags()
	want := map[string]string{
		"service-account":           "system:serviceaccount:platform:moat",
		"admin-groups":              "[system:masters]",
		"tls-min-version":           "1.3",
		"enable-http2":              "false",
		"leader-elect":              "true",
		"leader-election-id":        "moat.dev",
		"sctp-enabled":              "false",
		"webhook-port":              "9443",
		"cert-name":                 "tls.crt",
		"key-name":                  "tls.key",
		"metrics-secure":            "true",
		"dns-service":               "kube-system/kube-dns",
		"health-probe-bind-address": ":8081",
		"protected-namespaces":      "kube-system,kube-public,kube-node-lease,platform",
		"tenant-network-policies":   "restrict",
		"webhook-client-ca-name":    "",
		"concurrent-reconciles":     "4",
	}
	for name, value := range want {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s is missing", name)
			continue
		}
		if f.DefValue != value {
			t.Errorf("--%s defaults to %q, want %q", name, f.DefValue, value)
		}
	}
	for _, name := range []string{"kubeconfig", "zap-log-level", "cert-dir", "webhook-host", "metrics-bind-address",
		"leader-election-namespace", "pod-cidrs", "service-cidrs", "allowed-ingress-namespaces", "allowed-ingress-cidrs"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag --%s is missing", name)
		}
	}
}

// freeAddress returns a local address nobody listens on right now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveHooks adapt startServe: apiServer configures the control plane
// before it starts, beforeServe runs once it has started (its webhook
// serving directory exists) and before moat serve does. Either may be nil.
type serveHooks struct {
	apiServer, beforeServe func(*envtest.Environment)
}

// startServe starts a control plane with moat's CRD and webhook
// configurations (binaries from `make control-plane`), runs `moat serve`
// against it with args added to the usual flags until the test ends, and
// returns an admin client once moat is ready.
func startServe(t *testing.T, hooks serveHooks, args ...string) (client.Client, *envtest.Environment) {
	t.Helper()
	root := filepath.Join("..", "..")
	env := &envtest.Environment{
		Scheme:                newScheme(),
		BinaryAssetsDirectory: filepath.Join(root, "bin"),
		CRDDirectoryPaths:     []string{filepath.Join(root, "manifests", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "manifests", "webhook")}},
	}
	if hooks.apiServer != nil {
		hooks.apiServer(env)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane (run `make control-plane` first): %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		t.Fatal(err)
	}

	// moat connects as a cluster admin through a kubeconfig file.
	user, err := env.AddUser(envtest.User{Name: "moat-serve-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	if hooks.beforeServe != nil {
		hooks.beforeServe(env)
	}
	wh := env.WebhookInstallOptions
	probeAddr := freeAddress(t)
	cmd := newServeCommand()
	cmd.SetArgs(append([]string{
		"--kubeconfig", kubeconfigPath,
		"--webhook-host", wh.LocalServingHost,
		"--webhook-port", strconv.Itoa(wh.LocalServingPort),
		"--cert-dir", wh.LocalServingCertDir,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", probeAddr,
		"--leader-election-namespace", "default",
		"--leader-election-id", "moat-serve-test",
		"--zap-log-level", "error",
	}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("moat serve returned %v after its context ended, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("moat serve did not stop within 30s of its context ending")
		}
	})

	// Readiness follows the webhook server.
	readyz := "http://" + probeAddr + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("moat serve exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 30s (last error %v)", readyz, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	return c, env
}

// TestServe runs `moat serve` against a real API server with moat's webhook
// configurations installed (envtest, binaries from `make control-plane`)
// and checks the wiring end to end: readiness, the webhook server requiring
// the API server's client certificate (--webhook-client-ca-name), the
// mutating webhook with the controller's Converger, validating webhooks,
// the controller with its filtered NetworkPolicy cache, and a clean
// shutdown. One serve per process: controller names are global.
func TestServe(t *testing.T) {
	hooks, args := withClientCA(t)
	c, env := startServe(t, hooks, args...)
	checkClientCA(t, c, env)
	bg := context.Background()

	// A validating webhook answers: SCTP is off by default.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serve-test"}}
	if err := c.Create(bg, ns); err != nil {
		t.Fatal(err)
	}
	sctp := &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "sctp"},
		Spec: v1alpha1.NetworkAllowlistSpec{Ingress: []v1alpha1.IngressRule{{
			From:  []v1alpha1.Peer{{Namespace: "default"}},
			Ports: []v1alpha1.Port{{Protocol: ptr.To(corev1.ProtocolSCTP), Port: ptr.To(intstr.FromInt32(9000))}},
		}}},
	}
	err := c.Create(bg, sctp)
	if err == nil || !strings.Contains(err.Error(), `admission webhook "networkallowlists.moat.dev" denied the request`) ||
		!strings.Contains(err.Error(), "spec.ingress[0].ports[0].protocol") {
		t.Errorf("creating an SCTP allowlist: error %v, want a denial by networkallowlists.moat.dev", err)
	}

	// The mutating webhook writes the default policy during the labelling
	// request, through the controller's Converger.
	ns.Labels = map[string]string{v1alpha1.IsolationLabel: "true"}
	if err := c.Update(bg, ns); err != nil {
		t.Fatal(err)
	}
	np := &networkingv1.NetworkPolicy{}
	if err := c.Get(bg, client.ObjectKey{Namespace: ns.Name, Name: policy.DefaultIngressPolicyName}, np); err != nil {
		t.Errorf("reading %s right after labelling the namespace: %v", policy.DefaultIngressPolicyName, err)
	}

	// The controller (leader-elected) writes the policies of a namespace
	// created isolated.
	created := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serve-test-created", Labels: map[string]string{v1alpha1.IsolationLabel: "true"}}}
	if err := c.Create(bg, created); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Get(bg, client.ObjectKey{Namespace: created.Name, Name: policy.DefaultIngressPolicyName}, np)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not write %s/%s within 30s: %v", created.Name, policy.DefaultIngressPolicyName, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseIsolateNewNamespaces(t *testing.T) {
	for in, want := range map[string]string{"": "<nil>", "  ": "<nil>", "tenant": "tenant", "env in (dev,prod)": "env in (dev,prod)"} {
		sel, err := parseIsolateNewNamespaces(in)
		got := "<nil>"
		if sel != nil {
			got = sel.String()
		}
		if err != nil || got != want {
			t.Errorf("parseIsolateNewNamespaces(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"env in (", "a=b=c", ","} {
		if _, err := parseIsolateNewNamespaces(in); err == nil || !strings.Contains(err.Error(), "--isolate-new-namespaces:") {
			t.Errorf("parseIsolateNewNamespaces(%q): error %v, want one naming the flag", in, err)
		}
	}
}
