//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/testenv"
)

// The suite's cluster.
const (
	node1Name = "dp-node1"
	node2Name = "dp-node2"
	// projectLabel groups namespaces (moat's --project-label).
	projectLabel = "kubesphere.io/workspace"

	projA = "proj-a"
	projB = "proj-b"
	projC = "proj-c"
)

// The ports every pod listens on, and the Service port of proj-b/nginx.
const (
	portHTTP    = 80
	portAlt     = 8080
	portUDP     = 9000
	portDNS     = 53
	portTLS     = 443
	servicePort = 80 // nginx's Service port; its target port is portAlt
)

// Deadlines: a cell must show its verdict within matrixDeadline of the
// change; the negative control gives each cell negativeDeadline to show
// that nothing is enforced.
const (
	matrixDeadline   = 10 * time.Second
	negativeDeadline = 2 * time.Second
)

// suite is one run: the cluster, the topology and its hosts, the last
// observed verdict of every cell, and the convergence samples.
type suite struct {
	ctx     context.Context
	cluster *Cluster
	topo    *Topology

	web, db, client, nginx, other *Host // pods: proj-a/web, proj-a/db, proj-b/client, proj-b/nginx, proj-c/other
	outside, dns, node2           *Host

	mu   sync.Mutex
	last map[string]bool

	// convergence is API call → packets; policyWrites API call → moat's
	// first NetworkPolicy event in proj-a, for the same changes.
	convergence, policyWrites Convergence
	policyEvents              policyEvents
}

// policyEvents records when moat's NetworkPolicies in proj-a changed.
type policyEvents struct {
	mu    sync.Mutex
	times []time.Time
}

// watch records every event of moat's NetworkPolicies in ns until ctx ends.
func (e *policyEvents) watch(ctx context.Context, c client.WithWatch, ns string) error {
	w, err := c.Watch(ctx, &networkingv1.NetworkPolicyList{}, client.InNamespace(ns),
		client.MatchingLabels{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue})
	if err != nil {
		return err
	}
	go func() {
		defer w.Stop()
		for range w.ResultChan() {
			e.mu.Lock()
			e.times = append(e.times, time.Now())
			e.mu.Unlock()
		}
	}()
	return nil
}

// firstAfter returns how long after start the first event came.
func (e *policyEvents) firstAfter(start time.Time) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.times {
		if !t.Before(start) {
			return t.Sub(start), true
		}
	}
	return 0, false
}

// missingPrerequisites names what this machine lacks to run the suite, or
// returns "".
func missingPrerequisites() string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "not root")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "iptables-restore", "ipset"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" not found")
		}
	}
	if len(missing) == 0 {
		// Network namespaces: can one be made here (a container without
		// CAP_SYS_ADMIN cannot)?
		ns := fmt.Sprintf("%s%d-probe", netnsPrefix, os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			missing = append(missing, "cannot create a network namespace: "+strings.TrimSpace(string(out)))
		} else {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	return strings.Join(missing, "; ")
}

// TestDataPlane is the data-plane suite: a negative control without an
// enforcer, then every scenario with kube-router's firewall enforcing moat's
// policies, then the convergence figures.
//
// Cases 1 and 2 of the issue "Fail closed under change and abuse" (issue
// 20) are scenarios: the node flood, and laundering a tenant NetworkPolicy
// through a temporary allowlist (the tenant's delete of the allowlist is
// refused, naming the policy; an admin's is admitted, and the stranded
// policy is reported with an Event, never deleted).
func TestDataPlane(t *testing.T) {
	logf.SetLogger(logr.Discard())
	if reason := missingPrerequisites(); reason != "" {
		t.Skip("data-plane suite: needs root, ip netns, iptables and ipset: " + reason + " (see README, make test-dataplane)")
	}
	s := setUp(t)

	t.Run("negative control: no enforcer, the matrix must fail", s.negativeControl)
	if err := s.cluster.StartEnforcer(s.ctx, s.topo, node1Name); err != nil {
		t.Fatalf("%v\nkube-router's log:\n%s", err, s.cluster.EnforcerLog(40))
	}
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"isolated project denies ingress from other projects", s.isolatedProject},
		{"ingress from another project on its port only", s.ingressFromProject},
		{"egress to a Service in another project on its target port", s.egressToService},
		{"external CIDR in and out", s.externalCIDR},
		{"DNS on UDP and TCP 53 only", s.dnsOnly},
		{"isolation off again restores connectivity", s.isolationOff},
		{"project groups admit each other", s.projectGroups},
		{"tenant NetworkPolicy refused, confined one accepted", s.tenantPolicies},
		{"laundering through a temporary allowlist", s.laundering},
		{"ingress from nodes", s.ingressFromNodes},
		{"node flood: the deny holds, node addresses bounded per node", s.nodeFlood},
		{"convergence", s.convergenceRounds},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s.reset(t)
			sc.run(t)
			if err := s.cluster.EnforcerAlive(); err != nil {
				t.Fatalf("%v\nkube-router's log:\n%s", err, s.cluster.EnforcerLog(40))
			}
			if t.Failed() {
				t.Logf("moat's log:\n%s\nkube-router's log:\n%s\n%s", s.cluster.MoatLog(20), s.cluster.EnforcerLog(20), s.cluster.Diagnose(s.topo))
			}
		})
	}
	PrintConvergence(os.Stdout, "moat: API call → first event of moat's NetworkPolicies in proj-a", s.policyWrites.Stats())
	PrintConvergence(os.Stdout, "data plane: API call → first probe with the new verdict", s.convergence.Stats())
}

// setUp builds what is missing, starts the control plane and moat, and
// creates the topology and the objects that describe it. Everything is torn
// down when the test ends, or on SIGINT/SIGTERM.
func setUp(t *testing.T) *suite {
	repo, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(repo, "bin", name)); err != nil {
			t.Fatalf("bin/%s is missing: run `make control-plane` (or make test-dataplane)", name)
		}
	}
	buildEnforcer(t, repo)
	dir := t.TempDir()
	// moat is built afresh: the suite tests this tree, not a stale bin/moat.
	moatBinary := filepath.Join(dir, "moat")
	goBuild(t, repo, moatBinary, "./cmd/moat")

	ctx, cancel := context.WithCancel(context.Background())
	s := &suite{ctx: ctx, last: map[string]bool{}}
	var once sync.Once
	teardown := func() {
		once.Do(func() {
			cancel()
			s.topo.Teardown()
			s.cluster.Stop()
		})
	}
	t.Cleanup(teardown)
	// A Ctrl-C must not leave namespaces, the enforcer or the control plane
	// behind: tear down, then exit as the signal would have.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	t.Cleanup(func() { signal.Stop(signals); close(done) })
	go func() {
		select {
		case sig := <-signals:
			fmt.Fprintf(os.Stderr, "data-plane suite: %v: tearing down\n", sig)
			teardown()
			os.Exit(130)
		case <-done:
		}
	}()

	s.cluster, err = StartCluster(ctx, repo, dir, moatBinary, []string{
		"--project-label=" + projectLabel,
		"--dns-ips=" + dnsIP.String(),
		"--allow-ingress-from-nodes",
		"--max-node-addresses-per-node=" + strconv.Itoa(maxNodeAddressesPerNode),
		"--zap-log-level=info",
	})
	if err != nil {
		t.Fatalf("%v\nmoat's log:\n%s", err, s.cluster.MoatLog(40))
	}
	if s.topo, err = NewTopology(); err != nil {
		t.Fatal(err)
	}
	s.createWorld(t)
	if err := s.policyEvents.watch(ctx, s.cluster.Watcher, projA); err != nil {
		t.Fatal(err)
	}
	return s
}

// buildEnforcer builds bin/kube-router from the enforcer module when it is
// missing (make test-dataplane builds it first; this is for go test alone).
func buildEnforcer(t *testing.T, repo string) {
	out := filepath.Join(repo, "bin", "kube-router")
	if _, err := os.Stat(out); err == nil {
		return
	}
	t.Log("building bin/kube-router (the test enforcer) from test/dataplane/enforcer")
	goBuild(t, filepath.Join(repo, "test", "dataplane", "enforcer"), out, "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router")
}

// goBuild builds pkg (static, as make does) in the module at dir into out.
func goBuild(t *testing.T, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// createWorld creates the hosts (network namespaces with listeners) and
// the Nodes, namespaces, Pods and Service that describe them.
func (s *suite) createWorld(t *testing.T) {
	ctx, c := s.ctx, s.cluster.Admin
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(CreateNode(ctx, c, node1Name, node1IP))
	must(CreateNode(ctx, c, node2Name, node2IP))
	for _, ns := range []string{projA, projB, projC} {
		must(CreateNamespace(ctx, c, ns))
	}
	for _, p := range worldPods {
		h, err := s.topo.AddHost(p.ns+"/"+p.name, p.ip)
		must(err)
		*p.host(s) = h
		s.listen(t, h, []int{portHTTP, portAlt}, []int{portUDP})
		must(CreatePod(ctx, c, p.ns, p.name, p.labels, node1Name, node1IP, h))
	}
	must(c.Create(ctx, nginxService()))
	var err error
	s.outside, err = s.topo.AddHost("outside", outsideIP)
	must(err)
	s.listen(t, s.outside, []int{portHTTP, portTLS}, nil)
	s.dns, err = s.topo.AddHost("node-local-dns", dnsIP)
	must(err)
	s.listen(t, s.dns, []int{portDNS, portHTTP}, []int{portDNS})
	s.node2, err = s.topo.AddHost(node2Name, node2IP)
	must(err)
}

func (s *suite) listen(t *testing.T, h *Host, tcp, udp []int) {
	l, err := Listen(h, tcp, udp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
}

// step makes a change through the API, then checks the matrix: every cell
// must show its verdict within matrixDeadline of the change. kind, when not
// empty, records the change's convergence (cells whose verdict flipped since
// they were last observed).
func (s *suite) step(t *testing.T, title, kind string, change func() error, cells ...Cell) {
	t.Helper()
	start := time.Now()
	if change != nil {
		if err := change(); err != nil {
			t.Fatalf("%s: %v", title, err)
		}
	}
	results := Matrix(s.ctx, cells, start, matrixDeadline)
	PrintMatrix(os.Stdout, title, results)
	s.mu.Lock()
	var flipped []Cell
	for _, c := range cells {
		if last, seen := s.last[c.Key()]; seen && last != c.Want {
			flipped = append(flipped, c)
		}
	}
	for _, r := range results {
		s.last[r.Key()] = r.Got
	}
	s.mu.Unlock()
	if kind != "" {
		s.convergence.Record(kind, results, flipped)
		if d, ok := s.policyEvents.firstAfter(start); ok && d < matrixDeadline {
			s.policyWrites.Add(kind, d)
		}
	}
	for _, r := range Mismatches(results) {
		t.Errorf("%s: %s: expected %s, observed %s (%s, %d probes)", title, r.Key(), verdict(r.Want), verdict(r.Got), r.Detail, r.Probes)
	}
}

// reset brings the cluster back to no isolation, no allowlists, no tenant
// policies and no project labels, and checks that traffic flows again.
func (s *suite) reset(t *testing.T) {
	t.Helper()
	ctx, c := s.ctx, s.cluster.Admin
	for _, ns := range []string{projA, projB, projC} {
		if err := c.DeleteAllOf(ctx, &v1alpha1.NetworkAllowlist{}, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteAllOf(ctx, &networkingv1.NetworkPolicy{}, client.InNamespace(ns),
			client.HasLabels{"!" + v1alpha1.ManagedByLabel}); err != nil {
			t.Fatal(err)
		}
		if err := s.labelNamespace(ns, map[string]*string{v1alpha1.IsolationLabel: nil, projectLabel: nil}); err != nil {
			t.Fatal(err)
		}
	}
	s.step(t, "reset: nothing isolated", "", nil, s.resetCells()...)
}

func (s *suite) tcp(h *Host, port int) Target { return Target{Host: h, Port: port, Proto: TCP} }
func (s *suite) udp(h *Host, port int) Target { return Target{Host: h, Port: port, Proto: UDP} }

// labelNamespace sets (or, with nil, removes) labels of a namespace with a
// merge patch, as the cluster admin.
func (s *suite) labelNamespace(name string, labels map[string]*string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	patch := `{"metadata":{"labels":{`
	first := true
	for k, v := range labels {
		if !first {
			patch += ","
		}
		first = false
		value := "null"
		if v != nil {
			value = strconv.Quote(*v)
		}
		patch += strconv.Quote(k) + ":" + value
	}
	patch += "}}}"
	return s.cluster.Admin.Patch(s.ctx, ns, client.RawPatch("application/merge-patch+json", []byte(patch)))
}

// isolate turns a project's isolation on or off, as the guide does.
func (s *suite) isolate(ns string, on bool) func() error {
	return func() error {
		return s.labelNamespace(ns, map[string]*string{v1alpha1.IsolationLabel: ptr.To(strconv.FormatBool(on))})
	}
}
