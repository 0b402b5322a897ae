//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/watchdog"
)

// moatUser is the identity `moat serve` runs as: its ServiceAccount, bound
// to the least-privilege RBAC of manifests/rbac, as in a real installation.
const (
	moatNamespace = "moat-system"
	moatUser      = "system:serviceaccount:" + moatNamespace + ":moat"
)

// Cluster is a real kube-apiserver and etcd (envtest) with moat's CRD, RBAC
// and webhooks, `moat serve` running against it, and, once StartEnforcer
// ran, kube-router's firewall enforcing NetworkPolicies in node1.
type Cluster struct {
	// Admin is a cluster admin (system:masters) client; Watcher the same
	// with watches.
	Admin   client.Client
	Watcher client.WithWatch
	// Scheme knows the core types and moat's.
	Scheme *runtime.Scheme

	// bin holds the control plane and kube-router; dir is this run's
	// scratch directory (certificates, kubeconfigs, logs).
	bin, dir       string
	moatBinary     string
	env            *envtest.Environment
	guard          *watchdog.Watchdog
	moat           *exec.Cmd
	moatExited     chan error
	enforcer       *exec.Cmd
	enforcerExited chan error
	forwarder      *Forwarder
}

// StartCluster starts etcd and kube-apiserver from bin/, installs moat's
// CRD, RBAC and webhooks, and runs moatBinary serve with moatArgs (as
// test/localrun does). Stop undoes it, also after a partial start.
func StartCluster(ctx context.Context, repo, dir, moatBinary string, moatArgs []string) (*Cluster, error) {
	c := &Cluster{moatBinary: moatBinary, bin: filepath.Join(repo, "bin"), dir: dir, moatExited: make(chan error, 1), enforcerExited: make(chan error, 1)}
	c.Scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(c.Scheme))
	utilruntime.Must(moatv1alpha1.AddToScheme(c.Scheme))

	certDir := filepath.Join(dir, "serving-certs")
	ca, err := writeServingCert(certDir)
	if err != nil {
		return c, err
	}
	c.env = &envtest.Environment{
		Scheme:                c.Scheme,
		BinaryAssetsDirectory: c.bin,
		CRDDirectoryPaths:     []string{filepath.Join(repo, "manifests", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	c.env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	cfg, err := c.env.Start()
	if err != nil {
		return c, fmt.Errorf("starting the control plane: %w", err)
	}
	// Should this process be killed outright, the watchdog still stops etcd
	// and kube-apiserver; moat and the enforcer die with their parent.
	pids, err := watchdog.Children(filepath.Join(c.bin, "etcd"), filepath.Join(c.bin, "kube-apiserver"))
	if err != nil {
		return c, err
	}
	if c.guard, err = watchdog.Start(pids); err != nil {
		return c, err
	}
	if c.Watcher, err = client.NewWithWatch(cfg, client.Options{Scheme: c.Scheme}); err != nil {
		return c, err
	}
	c.Admin = c.Watcher
	if err := os.WriteFile(filepath.Join(dir, "admin.kubeconfig"), c.env.KubeConfig, 0o600); err != nil {
		return c, err
	}

	if err := c.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moatNamespace}}); err != nil {
		return c, err
	}
	for _, d := range []string{"rbac", "isolation-toggle"} {
		if err := testenv.CreateManifests(ctx, c.Admin, filepath.Join(repo, "manifests", d), nil); err != nil {
			return c, err
		}
	}
	user, err := c.env.AddUser(envtest.User{Name: moatUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + moatNamespace}}, &rest.Config{QPS: 50, Burst: 100})
	if err != nil {
		return c, fmt.Errorf("provisioning moat's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return c, err
	}
	moatKubeconfig := filepath.Join(dir, "moat.kubeconfig")
	if err := os.WriteFile(moatKubeconfig, kubeconfig, 0o600); err != nil {
		return c, err
	}
	webhookPort, err := freePort()
	if err != nil {
		return c, err
	}
	if err := c.startMoat(ctx, moatKubeconfig, certDir, webhookPort, moatArgs); err != nil {
		return c, err
	}
	// Only now point the API server at moat: the allowlist webhook fails
	// closed, so installing it before moat serves would refuse allowlists.
	return c, testenv.InstallWebhooks(ctx, c.Admin, repo, fmt.Sprintf("https://127.0.0.1:%d", webhookPort), ca.CertPEM)
}

// User returns a client that acts as the named user (no groups beyond
// system:authenticated): a tenant, whose rights are what RBAC grants it.
func (c *Cluster) User(name string) (client.Client, error) {
	u, err := c.env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		return nil, err
	}
	return client.New(u.Config(), client.Options{Scheme: c.Scheme})
}

// writeServingCert issues a certificate for 127.0.0.1 from a new CA into dir.
func writeServingCert(dir string) (*certs.CA, error) {
	ca, err := certs.NewCA(certs.CAOptions{CommonName: "moat data-plane CA", Validity: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	kp, err := ca.Issue(certs.ServingOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	return ca, certs.Write(dir, ca, kp)
}

// startMoat runs bin/moat serve as a child that dies with this process and
// waits until its readiness probe passes.
func (c *Cluster) startMoat(ctx context.Context, kubeconfig, certDir string, webhookPort int, extra []string) error {
	probePort, err := freePort()
	if err != nil {
		return err
	}
	args := append([]string{"serve",
		"--kubeconfig=" + kubeconfig,
		"--cert-dir=" + certDir,
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(webhookPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--metrics-bind-address=0",
		"--leader-elect=false",
		"--service-account=" + moatUser,
	}, extra...)
	log, err := os.Create(filepath.Join(c.dir, "moat.log"))
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(c.moatBinary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+moatNamespace)
	exited, err := startPinned(cmd)
	if err != nil {
		return fmt.Errorf("starting moat: %w", err)
	}
	c.moat = cmd
	go func() { c.moatExited <- <-exited }()
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)
	return waitUntil(ctx, 60*time.Second, c.moatExited, "moat serve", func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// StartEnforcer runs kube-router's network-policy firewall (and nothing
// else of kube-router) in node's namespace as node nodeName, reaching the API
// server through a forwarder of its loopback address. It returns once the
// firewall has written its chains.
func (c *Cluster) StartEnforcer(ctx context.Context, topo *Topology, nodeName string) error {
	server, err := url.Parse(c.env.Config.Host)
	if err != nil {
		return err
	}
	if c.forwarder, err = Forward(topo.Node, server.Host); err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.dir, "admin.kubeconfig")
	cmd, exited, err := topo.Exec(topo.Node, filepath.Join(c.dir, "kube-router.log"), filepath.Join(c.bin, "kube-router"),
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+nodeName,
		"--run-firewall=true",
		"--run-router=false",
		"--run-service-proxy=false",
		"--metrics-port=0",
		"--v=1",
	)
	if err != nil {
		return fmt.Errorf("starting kube-router: %w", err)
	}
	c.enforcer = cmd
	go func() { c.enforcerExited <- <-exited }()
	return waitUntil(ctx, 60*time.Second, c.enforcerExited, "kube-router", func() bool {
		out, err := exec.Command("ip", "netns", "exec", topo.Node.NS, "iptables", "-w", "-S", "KUBE-ROUTER-FORWARD").Output()
		return err == nil && strings.Contains(string(out), "KUBE-POD-FW-")
	})
}

// EnforcerLog returns the last lines of kube-router's log, for a failure.
func (c *Cluster) EnforcerLog(lines int) string {
	return tail(filepath.Join(c.dir, "kube-router.log"), lines)
}

// MoatLog returns the last lines of moat's log, for a failure.
func (c *Cluster) MoatLog(lines int) string {
	return tail(filepath.Join(c.dir, "moat.log"), lines)
}

func tail(file string, lines int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Stop stops moat, the forwarder and the control plane, in that order (the
// enforcer is the topology's: Topology.Teardown kills it). It is safe after
// a partial start.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	if c.moat != nil && c.moat.Process != nil {
		_ = c.moat.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.moatExited:
		case <-time.After(10 * time.Second):
			_ = c.moat.Process.Kill()
			<-c.moatExited
		}
	}
	c.forwarder.Close()
	c.guard.Stop()
	if c.env != nil {
		_ = c.env.Stop()
	}
}

// waitUntil polls ready every 100 ms until it returns true, the process
// whose exit exited reports ends, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, exited chan error, what string, ready func() bool) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("%s exited before becoming ready: %v", what, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%s did not become ready within %s", what, timeout)
		case <-tick.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errEnforcerExited is returned when kube-router is gone mid-run.
var errEnforcerExited = errors.New("kube-router exited")

// EnforcerAlive reports errEnforcerExited once kube-router has exited.
func (c *Cluster) EnforcerAlive() error {
	select {
	case err := <-c.enforcerExited:
		c.enforcerExited <- err
		return fmt.Errorf("%w: %v", errEnforcerExited, err)
	default:
		return nil
	}
}

// Diagnose describes the enforcer's state for a failure: its processes and
// the size of what it wrote into node's namespace.
func (c *Cluster) Diagnose(topo *Topology) string {
	var b strings.Builder
	if c.enforcer != nil && c.enforcer.Process != nil {
		out, _ := exec.Command("ps", "-o", "pid,stat,etime,args", "--ppid", strconv.Itoa(c.enforcer.Process.Pid), "-p", strconv.Itoa(c.enforcer.Process.Pid)).CombinedOutput()
		fmt.Fprintf(&b, "kube-router processes:\n%s", out)
	}
	out, err := exec.Command("ip", "netns", "exec", topo.Node.NS, "iptables-save", "-t", "filter").CombinedOutput()
	fmt.Fprintf(&b, "iptables-save -t filter in %s: %d lines (%v)\n", topo.Node.NS, strings.Count(string(out), "\n"), err)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A KUBE-NWPLCY") || strings.HasPrefix(line, "-A KUBE-POD-FW") && strings.Contains(line, "REJECT") {
			fmt.Fprintln(&b, "  ", line)
		}
	}
	out, err = exec.Command("ip", "netns", "exec", topo.Node.NS, "ipset", "list", "-n").CombinedOutput()
	fmt.Fprintf(&b, "ipsets: %s (%v)\n", strings.Join(strings.Fields(string(out)), " "), err)
	return b.String()
}
