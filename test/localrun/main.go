// Command localrun runs moat on a real, local control plane: kube-apiserver
// and etcd from bin/ (built by `make control-plane`), moat's CRD, RBAC and
// webhook configurations installed, and `moat serve` running as a child
// process with a serving certificate from package certs. It writes an admin
// kubeconfig for kubectl.
//
// Usage (from the repository, usually through make):
//
//	go run ./test/localrun                  # `make run`: serve until Ctrl-C
//	go run ./test/localrun -- CMD ARGS...   # run CMD against the cluster, exit with its status
//
// CMD runs with KUBECONFIG set to the admin kubeconfig and bin/ first on
// PATH. On SIGINT or SIGTERM, or when CMD exits, localrun stops everything it
// started: the command, moat, kube-apiserver and etcd.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// moatUser is the identity `moat serve` runs as: the user name of the
// ServiceAccount that manifests/rbac binds moat's roles to, so that the local
// run exercises the same least-privilege RBAC as a real installation.
const (
	moatNamespace = "moat-system"
	moatUser      = "system:serviceaccount:" + moatNamespace + ":moat"
)

type options struct {
	repo        string
	binDir      string
	kubeconfig  string
	stateDir    string
	moatBinary  string
	webhookPort int
	probePort   int
	moatArgs    string
	// adminTierCRDs installs the network-policy-api CRDs (--admin-tier-crds).
	adminTierCRDs bool
	command       []string
}

func main() {
	os.Exit(run())
}

// run returns the process exit status: the command's status in command mode,
// 0 after a clean shutdown on a signal, 1 when something failed.
func run() int {
	o, err := parseFlags()
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cluster, err := start(ctx, o)
	// Stop whatever did start, also after a failure half-way.
	defer cluster.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		return 1
	}

	if len(o.command) > 0 {
		return cluster.runCommand(ctx, o.command)
	}
	cluster.printUsage()
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "localrun: stopping")
		return 0
	case err := <-cluster.moatExited:
		fmt.Fprintf(os.Stderr, "localrun: moat serve exited: %v\n", err)
		return 1
	}
}

func parseFlags() (*options, error) {
	repo, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	o := &options{repo: repo}
	fs := flag.NewFlagSet("localrun", flag.ContinueOnError)
	fs.StringVar(&o.binDir, "bin-dir", filepath.Join(repo, "bin"), "directory holding kube-apiserver, etcd and kubectl (built by make control-plane)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default: bin/kubeconfig; with a COMMAND, a private file)")
	fs.StringVar(&o.moatBinary, "moat", filepath.Join(repo, "bin", "moat"), `the moat binary (make build); "" runs the control plane without moat`)
	fs.IntVar(&o.webhookPort, "webhook-port", 0, "port of moat's webhook server on 127.0.0.1 (0: a free port)")
	fs.IntVar(&o.probePort, "probe-port", 0, "port of moat's health probes on 127.0.0.1 (0: a free port)")
	fs.StringVar(&o.moatArgs, "moat-args", "", "extra flags for moat serve, space-separated (e.g. --sctp-enabled)")
	fs.BoolVar(&o.adminTierCRDs, "admin-tier-crds", false, "also install the admin-tier CRDs of sigs.k8s.io/network-policy-api (from the Go module cache), for moat serve --enforcement")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: localrun [flags] [-- COMMAND ARGS...]\n\n"+
			"Runs kube-apiserver, etcd and `moat serve` locally. With a COMMAND, runs it with\n"+
			"KUBECONFIG set and exits with its status; without, serves until interrupted.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	o.command = fs.Args()
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(o.binDir, name)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make control-plane` first", name, o.binDir)
		}
	}
	if o.moatBinary != "" {
		if _, err := os.Stat(o.moatBinary); err != nil {
			return nil, fmt.Errorf("moat binary %s not found: run `make build` first, or pass --moat= to run without moat", o.moatBinary)
		}
	}
	// Every run keeps its certificates and moat's kubeconfig in a directory
	// of its own, so that `make run` and `make demo` can run side by side.
	stateDir, err := os.MkdirTemp("", "moat-localrun-")
	if err != nil {
		return nil, err
	}
	o.stateDir = stateDir
	if o.kubeconfig == "" {
		o.kubeconfig = filepath.Join(repo, "bin", "kubeconfig")
		if len(o.command) > 0 {
			o.kubeconfig = filepath.Join(stateDir, "kubeconfig")
		}
	}
	return o, nil
}

// cluster is what localrun started, so that stop can undo it.
type cluster struct {
	opts       *options
	env        *envtest.Environment
	guard      *watchdog.Watchdog
	moat       *exec.Cmd
	moatExited chan error
	webhookURL string
}

func start(ctx context.Context, o *options) (*cluster, error) {
	c := &cluster{opts: o, moatExited: make(chan error, 1)}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(moatv1alpha1.AddToScheme(scheme))

	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return c, err
	}
	certDir := filepath.Join(o.stateDir, "serving-certs")
	ca, err := writeServingCert(certDir)
	if err != nil {
		return c, err
	}

	crds := []string{filepath.Join(o.repo, "manifests", "crd", "bases")}
	if o.adminTierCRDs {
		files, err := testenv.NetworkPolicyAPICRDs(o.repo)
		if err != nil {
			return c, err
		}
		crds = append(crds, files...)
	}
	c.env = &envtest.Environment{
		Scheme:                scheme,
		BinaryAssetsDirectory: o.binDir,
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
	}
	c.env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	fmt.Fprintln(os.Stderr, "localrun: starting etcd and kube-apiserver from", o.binDir)
	cfg, err := c.env.Start()
	if err != nil {
		return c, fmt.Errorf("starting the control plane: %w", err)
	}
	// Should localrun itself be killed outright (SIGKILL), the watchdog
	// still stops etcd and kube-apiserver; moat dies with its parent.
	pids, err := watchdog.Children(filepath.Join(o.binDir, "etcd"), filepath.Join(o.binDir, "kube-apiserver"))
	if err != nil {
		return c, err
	}
	if c.guard, err = watchdog.Start(pids); err != nil {
		return c, err
	}
	if err := writeFile(o.kubeconfig, c.env.KubeConfig); err != nil {
		return c, err
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return c, err
	}

	// moat's namespace, ServiceAccount and RBAC, as manifests/rbac declares them.
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moatNamespace}}); err != nil {
		return c, fmt.Errorf("creating namespace %s: %w", moatNamespace, err)
	}
	if err := testenv.CreateManifests(ctx, admin, filepath.Join(o.repo, "manifests", "rbac"), nil); err != nil {
		return c, err
	}
	// Self-service isolation: the toggle role and its admission policy.
	if err := testenv.CreateManifests(ctx, admin, filepath.Join(o.repo, "manifests", "isolation-toggle"), nil); err != nil {
		return c, err
	}

	if o.moatBinary == "" {
		fmt.Fprintln(os.Stderr, "localrun: --moat is empty: running WITHOUT moat (no webhooks, no controller)")
		return c, nil
	}
	if o.webhookPort == 0 {
		if o.webhookPort, err = freePort(); err != nil {
			return c, err
		}
	}
	if o.probePort == 0 {
		if o.probePort, err = freePort(); err != nil {
			return c, err
		}
	}
	user, err := c.env.AddUser(envtest.User{Name: moatUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + moatNamespace}}, &rest.Config{QPS: 50, Burst: 100})
	if err != nil {
		return c, fmt.Errorf("provisioning moat's user: %w", err)
	}
	moatKubeconfig, err := user.KubeConfig()
	if err != nil {
		return c, err
	}
	moatKubeconfigPath := filepath.Join(o.stateDir, "moat.kubeconfig")
	if err := writeFile(moatKubeconfigPath, moatKubeconfig); err != nil {
		return c, err
	}
	if err := c.startMoat(ctx, moatKubeconfigPath, certDir); err != nil {
		return c, err
	}

	// Only now point the API server at moat: the allowlist webhook fails
	// closed, so installing it before moat serves would refuse allowlists.
	c.webhookURL = fmt.Sprintf("https://127.0.0.1:%d", o.webhookPort)
	webhookDir := filepath.Join(o.repo, "manifests", "webhook")
	if _, err := os.Stat(webhookDir); err != nil {
		fmt.Fprintf(os.Stderr, "localrun: %s is missing: running without webhook configurations\n", webhookDir)
		return c, nil
	}
	if err := testenv.CreateManifests(ctx, admin, webhookDir, func(u *unstructured.Unstructured) error {
		return pointWebhooksAt(u, c.webhookURL, ca.CertPEM)
	}); err != nil {
		return c, err
	}
	return c, nil
}

// writeServingCert issues a certificate for 127.0.0.1 and localhost from a new
// CA into dir and returns the CA.
func writeServingCert(dir string) (*certs.CA, error) {
	ca, err := certs.NewCA(certs.CAOptions{CommonName: "moat localrun CA", Validity: 30 * 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	kp, err := ca.Issue(certs.ServingOptions{
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Validity:    30 * 24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	return ca, certs.Write(dir, ca, kp)
}

// startMoat runs `moat serve` as a child that dies with localrun and waits
// until its readiness probe (webhook server started) passes.
func (c *cluster) startMoat(ctx context.Context, kubeconfig, certDir string) error {
	o := c.opts
	args := []string{"serve",
		"--kubeconfig=" + kubeconfig,
		"--cert-dir=" + certDir,
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + strconv.Itoa(o.webhookPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(o.probePort),
		"--metrics-bind-address=0",
		"--leader-elect=false",
		"--service-account=" + moatUser,
	}
	args = append(args, strings.Fields(o.moatArgs)...)
	cmd := exec.Command(o.moatBinary, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+moatNamespace)
	// Own process group: a Ctrl-C reaches localrun, which stops moat (with
	// SIGTERM) before the API server. Pdeathsig: moat never outlives
	// localrun, even one killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintln(os.Stderr, "localrun: starting", o.moatBinary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting moat: %w", err)
	}
	c.moat = cmd
	go func() { c.moatExited <- cmd.Wait() }()

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", o.probePort)
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-c.moatExited:
			c.moatExited <- err
			return fmt.Errorf("moat serve exited before becoming ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("moat serve did not become ready at %s within 60s", readyz)
		case <-tick.C:
			resp, err := http.Get(readyz)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// runCommand runs the command with the cluster's kubeconfig and returns its
// exit status. A signal to localrun is passed on to the command, which
// decides when to stop.
func (c *cluster) runCommand(ctx context.Context, command []string) int {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+c.opts.kubeconfig,
		"PATH="+c.opts.binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "localrun: running %s: %v\n", command[0], err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code >= 0 {
			return code
		}
		return 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
	default:
		fmt.Fprintf(os.Stderr, "localrun: %s: %v\n", command[0], err)
		return 1
	}
}

// stop undoes start in reverse order. It is safe after a partial start.
func (c *cluster) stop() {
	if c.moat != nil && c.moat.Process != nil {
		select {
		case <-c.moatExited:
		default:
			_ = c.moat.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.moatExited:
			case <-time.After(15 * time.Second):
				_ = c.moat.Process.Kill()
				<-c.moatExited
			}
		}
	}
	c.guard.Stop()
	if c.env != nil {
		fmt.Fprintln(os.Stderr, "localrun: stopping kube-apiserver and etcd")
		if err := c.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "localrun: stopping the control plane:", err)
		}
	}
	// The kubeconfig points at a server that no longer exists; leave it if
	// another run has overwritten it since.
	if c.env != nil && len(c.env.KubeConfig) > 0 {
		if data, err := os.ReadFile(c.opts.kubeconfig); err == nil && bytes.Equal(data, c.env.KubeConfig) {
			_ = os.Remove(c.opts.kubeconfig)
		}
	}
	_ = os.RemoveAll(c.opts.stateDir)
}

func (c *cluster) printUsage() {
	kubectl := filepath.Join(c.opts.binDir, "kubectl")
	rel := func(p string) string {
		if r, err := filepath.Rel(c.opts.repo, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	moat := "moat is NOT running (--moat was empty)"
	if c.webhookURL != "" {
		moat = "moat serve is running, webhooks at " + c.webhookURL
	}
	fmt.Printf(`
moat is running on a local control plane (%s).

  %s --kubeconfig %s get crd networkallowlists.moat.dev
  export KUBECONFIG=%s

Try: %s --kubeconfig %s apply -k manifests/samples

Press Ctrl-C to stop kube-apiserver, etcd and moat.
`, moat, rel(kubectl), rel(c.opts.kubeconfig), c.opts.kubeconfig, rel(kubectl), rel(c.opts.kubeconfig))
}
