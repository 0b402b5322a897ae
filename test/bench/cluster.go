package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	moatv1alpha1 "moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/certs"
)

// moatUser is the identity `moat serve` runs as in the benchmarks: its
// ServiceAccount with the RBAC of manifests/rbac and a ServiceAccount token,
// as in a cluster (moatIdentity). baselineUser is the plain client's, a
// cluster admin (system:masters), like the admin that labels namespaces.
const (
	moatUser     = "system:serviceaccount:moat-system:moat"
	baselineUser = "bench-baseline"
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(moatv1alpha1.AddToScheme(s))
	return s
}

// cluster is a real kube-apiserver + etcd (envtest) with an audit log of
// every write, a serving certificate for 127.0.0.1, and kubeconfigs for
// moat and the baseline client.
type cluster struct {
	env        *envtest.Environment
	cfg        *rest.Config
	admin      client.Client
	dir        string
	certDir    string
	caPEM      []byte
	auditLog   string
	moatConfig string
	baseline   *rest.Config
}

// auditPolicy logs every write (Metadata level: who, what, result), and
// moat's reads too (not its watches), so that the report can say where its
// requests go.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: Metadata
  users: ["` + moatUser + `"]
  verbs: [get, list]
- level: None
`

func startCluster(o *options, name string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "moat-bench-"+name)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, certDir: filepath.Join(dir, "certs"), auditLog: filepath.Join(dir, "audit.log")}
	if err := os.WriteFile(filepath.Join(dir, "audit-policy.yaml"), []byte(auditPolicy), 0o600); err != nil {
		return c, err
	}
	ca, err := certs.NewCA(certs.CAOptions{CommonName: "moat bench CA", Validity: 24 * time.Hour})
	if err != nil {
		return c, err
	}
	kp, err := ca.Issue(certs.ServingOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Validity: 24 * time.Hour})
	if err != nil {
		return c, err
	}
	if err := certs.Write(c.certDir, ca, kp); err != nil {
		return c, err
	}
	c.caPEM = ca.CertPEM

	scheme := newScheme()
	c.env = &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: o.binDir,
		CRDDirectoryPaths:     []string{filepath.Join(o.repo, "manifests", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	c.env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", filepath.Join(dir, "audit-policy.yaml")).
		Set("audit-log-path", c.auditLog).
		Set("audit-log-mode", "blocking").
		// Room for 10,000 ClusterIP Services (envtest's default is a /24).
		Set("service-cluster-ip-range", "10.96.0.0/12")
	if c.cfg, err = c.env.Start(); err != nil {
		return c, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", o.binDir, err)
	}
	c.cfg.QPS, c.cfg.Burst = -1, 0
	if c.admin, err = client.New(c.cfg, client.Options{Scheme: scheme}); err != nil {
		return c, err
	}
	base, err := c.env.AddUser(envtest.User{Name: baselineUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return c, err
	}
	c.baseline = base.Config()
	c.baseline.QPS, c.baseline.Burst = -1, 0
	if err := c.admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "moat-system"}}); err != nil {
		return c, err
	}
	return c, moatIdentity(context.Background(), o, c)
}

// adminKubeconfig writes the control plane's admin kubeconfig into the
// cluster's directory, for the processes a section runs, and returns its path.
func (c *cluster) adminKubeconfig() (string, error) {
	path := filepath.Join(c.dir, "admin.kubeconfig")
	return path, os.WriteFile(path, c.env.KubeConfig, 0o600)
}

func (c *cluster) stop() {
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: stopping the control plane:", err)
		}
	}
	_ = os.RemoveAll(c.dir)
}

// auditOffset is the current size of the audit log: writes logged after it
// belong to what comes next.
func (c *cluster) auditOffset() (int64, error) {
	fi, err := os.Stat(c.auditLog)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// writes counts the writes in the audit log after offset by user, keyed
// "verb resource[/subresource]", and the failed ones (HTTP status >= 400).
// reads counts the user's get and list requests the same way (logged for
// moat only).
type writes struct {
	byKind map[string]int
	failed int
	total  int
	reads  map[string]int
}

func (w writes) count(verbResource string) int { return w.byKind[verbResource] }

func (w writes) String() string { return countString(w.byKind) }

func countString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func (c *cluster) writesSince(offset int64, user string) (writes, error) {
	w := writes{byKind: map[string]int{}, reads: map[string]int{}}
	f, err := os.Open(c.auditLog)
	if err != nil {
		return w, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return w, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Verb string `json:"verb"`
			User struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return w, fmt.Errorf("audit log: %w", err)
		}
		if ev.User.Username != user {
			continue
		}
		key := ev.Verb + " " + ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			key += "/" + ev.ObjectRef.Subresource
		}
		if ev.Verb == "get" || ev.Verb == "list" {
			w.reads[key]++
			continue
		}
		w.byKind[key]++
		w.total++
		if ev.ResponseStatus.Code >= 400 {
			w.failed++
		}
	}
	return w, sc.Err()
}

// process is a child process of the benchmark (moat serve or the no-op
// webhook server).
type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProcess(name, logFile string, binary string, args ...string) (*process, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=moat-system")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: logFile}
	go func() { err := cmd.Wait(); _ = out.Close(); p.done <- err }()
	return p, nil
}

// memory returns the process's peak (VmHWM) and current (VmRSS) resident
// set size in bytes, from /proc/PID/status.
func (p *process) memory() (hwm, rss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = kib << 10
		case "VmRSS:":
			rss = kib << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	return hwm, rss, nil
}

// stop sends SIGTERM and waits (SIGKILL after 20 s).
func (p *process) stop() {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
	}
}

// exited reports the process's exit, if it has exited.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return fmt.Errorf("%s exited early (%v); its log is in %s", p.name, err, p.log)
	default:
		return nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startMoat runs `moat serve` against the cluster, serving webhooks on
// 127.0.0.1, and waits until it is ready. It returns the process and the
// webhook server's base URL. extra flags come last and so override the
// defaults (e.g. --metrics-bind-address).
func startMoat(ctx context.Context, o *options, c *cluster, name string, extra ...string) (*process, string, error) {
	webhookPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	probePort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{"serve",
		"--kubeconfig=" + c.moatConfig,
		"--cert-dir=" + c.certDir,
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(webhookPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--metrics-bind-address=0",
		"--leader-elect=false",
		"--service-account=" + moatUser,
	}
	args = append(args, extra...)
	p, err := startProcess(name, filepath.Join(c.dir, name+".log"), o.moat, args...)
	if err != nil {
		return nil, "", err
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)
	if err := waitFor(ctx, p, 60*time.Second, func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("moat serve did not become ready: %w", err)
	}
	return p, fmt.Sprintf("https://127.0.0.1:%d", webhookPort), nil
}

// startNoop runs the no-op controller-runtime webhook server (this program,
// in noop-webhook mode) with the same certificate and TLS settings and waits
// until it answers.
func startNoop(ctx context.Context, c *cluster) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := startProcess("noop-webhook", filepath.Join(c.dir, "noop-webhook.log"), self,
		noopCommand, "--cert-dir="+c.certDir, "--port="+strconv.Itoa(port))
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: time.Second}
	if err := waitFor(ctx, p, 30*time.Second, func() bool {
		resp, err := hc.Post(url+noopPath, "application/json", bytes.NewReader([]byte("{}")))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return true
	}); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("no-op webhook did not start: %w", err)
	}
	return p, url, nil
}

func waitFor(ctx context.Context, p *process, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := p.exited(); err != nil {
			return err
		}
		if ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %v; log: %s", timeout, p.log)
}
