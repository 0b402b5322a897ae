package robustness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/certs"
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/workload"
	"moat.dev/moat/webhook"
)

const moatUser = "system:serviceaccount:moat-system:moat"

// server is the running `moat serve`.
var server struct {
	base   string // https://127.0.0.1:PORT
	addr   string // 127.0.0.1:PORT
	client *http.Client
	tls    *tls.Config
	proc   *exec.Cmd
	exited chan error
	// args and logFile start it again (faults_test.go).
	binary  string
	args    []string
	logFile *os.File
	probe   int
}

// env is the control plane, and admin a client of it as cluster admin.
var (
	env   *envtest.Environment
	admin client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// `go test -list` (make fuzz) needs no server.
	flag.Parse()
	if flag.Lookup("test.list").Value.String() != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "moat-robustness")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop, err := start(dir)
	defer stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "robustness:", err)
		return 1
	}
	return m.Run()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start builds moat, starts the control plane and `moat serve`, and
// returns what undoes it.
func start(dir string) (func(), error) {
	var undo []func()
	stop := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	repo, err := testenv.RepoRoot()
	if err != nil {
		return stop, err
	}
	moat := filepath.Join(dir, "moat")
	build := exec.Command("go", "build", "-o", moat, "moat.dev/moat/cmd/moat")
	build.Dir, build.Stdout, build.Stderr = repo, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return stop, fmt.Errorf("building moat: %w", err)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	env = &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: filepath.Join(repo, "bin"),
		CRDDirectoryPaths:     []string{filepath.Join(repo, "manifests", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// A fixed directory keeps the API server's serving certificate (and its
	// port) across the restart of faults_test.go.
	env.ControlPlane.GetAPIServer().CertDir = filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(env.ControlPlane.GetAPIServer().CertDir, 0o700); err != nil {
		return stop, err
	}
	cfg, err := env.Start()
	if err != nil {
		return stop, fmt.Errorf("starting kube-apiserver and etcd from bin/ (make control-plane): %w", err)
	}
	undo = append(undo, func() { _ = env.Stop() })
	if admin, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return stop, err
	}
	user, err := env.AddUser(envtest.User{Name: moatUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return stop, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return stop, err
	}
	kubeconfigFile := filepath.Join(dir, "moat.kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		return stop, err
	}

	ca, err := certs.NewCA(certs.CAOptions{CommonName: "robustness CA", Validity: time.Hour})
	if err != nil {
		return stop, err
	}
	kp, err := ca.Issue(certs.ServingOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
	if err != nil {
		return stop, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := certs.Write(certDir, ca, kp); err != nil {
		return stop, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	server.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	server.client = &http.Client{Transport: &http.Transport{TLSClientConfig: server.tls.Clone()}, Timeout: 60 * time.Second}

	port, err := freePort()
	if err != nil {
		return stop, err
	}
	if server.probe, err = freePort(); err != nil {
		return stop, err
	}
	server.addr = "127.0.0.1:" + strconv.Itoa(port)
	server.base = "https://" + server.addr
	server.binary = moat
	server.args = []string{"serve",
		"--kubeconfig=" + kubeconfigFile,
		"--cert-dir=" + certDir,
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(port),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(server.probe),
		"--metrics-bind-address=0",
		"--leader-elect=false",
		"--service-account=" + moatUser}
	if server.logFile, err = os.Create(filepath.Join(dir, "moat.log")); err != nil {
		return stop, err
	}
	undo = append(undo, func() {
		stopMoat(syscall.SIGTERM)
		_ = server.logFile.Close()
	})
	if err := startMoat(); err != nil {
		return stop, err
	}
	// The API server calls moat, as in a cluster.
	return stop, testenv.InstallWebhooks(context.Background(), admin, repo, server.base, ca.CertPEM)
}

// startMoat starts `moat serve` and waits until it is ready.
func startMoat() error {
	cmd := exec.Command(server.binary, server.args...)
	cmd.Stdout, cmd.Stderr = server.logFile, server.logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	server.proc, server.exited = cmd, exited
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", server.probe))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(server.logFile.Name())
			return fmt.Errorf("moat serve exited: %v\n%s", err, log)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("moat serve did not become ready within 60s")
		}
	}
}

// stopMoat sends sig to `moat serve` and waits until it has exited
// (SIGKILL after 20 s).
func stopMoat(sig syscall.Signal) {
	if server.proc == nil {
		return
	}
	_ = server.proc.Process.Signal(sig)
	select {
	case err := <-server.exited:
		server.exited <- err
	case <-time.After(20 * time.Second):
		_ = server.proc.Process.Kill()
		server.exited <- <-server.exited
	}
}

// alive fails the test when moat serve has exited.
func alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-server.exited:
		server.exited <- err
		t.Fatalf("moat serve exited: %v", err)
	default:
	}
}

// post sends body to path and returns the HTTP status and the decoded
// AdmissionReview answer.
func post(t *testing.T, path, contentType string, body io.Reader) (int, *admissionv1.AdmissionReview) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, server.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := server.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	// An answer is small; a bounded read proves it is bounded.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		t.Fatalf("POST %s: answer %q is not an AdmissionReview response (%v)", path, data, err)
	}
	return resp.StatusCode, &review
}

// goodReviews are valid requests every endpoint allows, by path.
func goodReviews(t *testing.T) map[string][]byte {
	t.Helper()
	tenant := authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: labels}}
	}
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}}}},
		},
	}
	review := func(op admissionv1.Operation, gvr schema.GroupVersionResource, obj, old runtime.Object) []byte {
		r, err := workload.Review("4b3f0c2a-0000-4000-8000-00000000000a", op, gvr, obj, old, tenant)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	allowlist, err := workload.TenRuleAllowlistReview("frontend", "backends")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		webhook.ValidateNetworkAllowlistPath: allowlist,
		webhook.ValidateNetworkPolicyPath:    review(admissionv1.Create, networkingv1.SchemeGroupVersion.WithResource("networkpolicies"), np, nil),
		webhook.ValidateNamespacePath:        review(admissionv1.Create, namespaces, ns(map[string]string{v1alpha1.IsolationLabel: "false"}), nil),
		// Not becoming isolated: the mutator writes nothing.
		webhook.MutateNamespacePath: review(admissionv1.Update, namespaces, ns(map[string]string{"team": "a"}), ns(nil)),
	}
}

// checkServes sends every endpoint its valid request and expects it
// allowed, with the request's uid.
func checkServes(t *testing.T) {
	t.Helper()
	alive(t)
	for path, body := range goodReviews(t) {
		var sent admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatal(err)
		}
		code, review := post(t, path, "application/json", bytes.NewReader(body))
		if code != http.StatusOK || !review.Response.Allowed || review.Response.UID != sent.Request.UID {
			t.Fatalf("POST %s (valid): HTTP %d, response %+v; want allowed with uid %s", path, code, review.Response, sent.Request.UID)
		}
	}
}

// TestBadRequestsGetBoundedAnswers sends every endpoint malformed requests:
// each gets HTTP 200 with an AdmissionReview that denies it with the status
// code of the problem, and the server keeps serving valid requests.
func TestBadRequestsGetBoundedAnswers(t *testing.T) {
	t.Parallel()
	checkServes(t)
	huge := bytes.Repeat([]byte("x"), 10<<20)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		code        int32
		message     string
		// mutatorAllows: the mutating endpoint, which never denies,
		// answers a request without an UPDATE operation with an allowed
		// response and no patch.
		mutatorAllows bool
	}{
		{"not JSON", "application/json", []byte("this is not JSON"), http.StatusBadRequest, "", false},
		{"truncated JSON", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":`), http.StatusBadRequest, "", false},
		{"wrong kind", "application/json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`), http.StatusBadRequest, `unknown operation ""`, true},
		{"wrong apiVersion", "application/json", []byte(`{"apiVersion":"example.com/v9","kind":"AdmissionReview","request":{"uid":"u"}}`), http.StatusBadRequest, `unknown operation ""`, true},
		{"missing request", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest, `unknown operation ""`, true},
		{"empty body", "application/json", nil, http.StatusBadRequest, "request body is empty", false},
		{"not JSON content type", "text/plain", []byte(`{}`), http.StatusBadRequest, "contentType=text/plain, expected application/json", false},
		{"10 MiB body", "application/json", huge, http.StatusRequestEntityTooLarge, "request entity is too large; limit is 7340032 bytes", false},
	}
	for _, tc := range cases {
		for _, path := range []string{webhook.ValidateNetworkAllowlistPath, webhook.ValidateNetworkPolicyPath, webhook.ValidateNamespacePath, webhook.MutateNamespacePath} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				var body io.Reader = http.NoBody
				if tc.body != nil {
					body = bytes.NewReader(tc.body)
				}
				code, review := post(t, path, tc.contentType, body)
				res := review.Response
				if tc.mutatorAllows && path == webhook.MutateNamespacePath {
					if code != http.StatusOK || !res.Allowed || res.Patch != nil {
						t.Fatalf("HTTP %d, response %+v; want HTTP 200 allowing without a patch", code, res)
					}
					checkServes(t)
					return
				}
				if code != http.StatusOK || res.Allowed || res.Result == nil || res.Result.Code != tc.code {
					t.Fatalf("HTTP %d, response %+v; want HTTP 200 denying with code %d", code, res, tc.code)
				}
				if res.Result.Message == "" || tc.message != "" && res.Result.Message != tc.message {
					t.Fatalf("message %q, want %q", res.Result.Message, tc.message)
				}
				checkServes(t)
			})
		}
	}
}

// TestSlowClientsDoNotStopServing holds connections that send their headers
// (or their body) a byte at a time while valid requests keep being
// answered, and checks that the server closes the slow connections itself
// (controller-runtime's ReadHeaderTimeout, 32 s, for headers; moat's
// --webhook-read-timeout, 10 s, for bodies) instead of holding them forever.
func TestSlowClientsDoNotStopServing(t *testing.T) {
	t.Parallel()
	const slowHeaders, slowBodies = 20, 5
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dial := func() *tls.Conn {
		conn, err := tls.Dial("tcp", server.addr, server.tls.Clone())
		if err != nil {
			t.Fatalf("dialing %s: %v", server.addr, err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	// trickle writes data one byte per 500 ms until ctx ends or the server
	// closes the connection; it reports when the server closed it.
	trickle := func(conn *tls.Conn, data []byte, closed chan<- time.Duration) {
		start := time.Now()
		for i := 0; ; i++ {
			if _, err := conn.Write(data[i%len(data) : i%len(data)+1]); err != nil {
				closed <- time.Since(start)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}

	headersClosed := make(chan time.Duration, slowHeaders)
	var wg sync.WaitGroup
	for range slowHeaders {
		conn := dial()
		// Never-ending headers: X-Slow: xxxxx...
		if _, err := io.WriteString(conn, "POST "+webhook.ValidateNamespacePath+" HTTP/1.1\r\nHost: moat\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { trickle(conn, []byte("x"), headersClosed) })
		// The server closes the connection without an answer, or with a
		// 408; either way the read returns.
		wg.Go(func() { _, _ = io.Copy(io.Discard, conn) })
	}
	bodiesClosed := make(chan time.Duration, slowBodies)
	for range slowBodies {
		conn := dial()
		if _, err := io.WriteString(conn, "POST "+webhook.ValidateNamespacePath+" HTTP/1.1\r\nHost: moat\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { trickle(conn, []byte(`"a":1,`), bodiesClosed) })
	}

	// While they trickle, everyone else is served.
	for range 20 {
		checkServes(t)
		time.Sleep(100 * time.Millisecond)
	}

	// Each slow-header connection is closed by the server: a bounded wait
	// (controller-runtime's ReadHeaderTimeout is 32 s), not forever.
	limit := time.After(90 * time.Second)
	for i := range slowHeaders {
		select {
		case <-headersClosed:
		case <-limit:
			t.Fatalf("after 90 s the server still holds %d of %d connections whose headers never end", slowHeaders-i, slowHeaders)
		}
	}
	// Each slow-body connection is closed too: moat's webhook server gives a
	// request body --webhook-read-timeout (10 s) to arrive.
	for i := range slowBodies {
		select {
		case <-bodiesClosed:
		case <-limit:
			t.Fatalf("after 90 s the server still reads %d of %d bodies sent a byte at a time", slowBodies-i, slowBodies)
		}
	}
	checkServes(t)
	cancel()
	wg.Wait()
}
