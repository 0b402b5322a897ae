//go:build linux

package dataplane

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// netnsPrefix starts the name of every network namespace the suite creates,
// followed by the creating process's ID, so that a later run can delete the
// namespaces of a run that was killed outright (deleteStaleNamespaces).
const netnsPrefix = "moatdp"

// The addresses of the topology. They exist only inside the network
// namespaces the suite creates: nothing is ever sent anywhere else.
var (
	// node1IP is the first node's InternalIP, on node1's loopback; the pods
	// use it as their gateway.
	node1IP = netip.MustParseAddr("10.250.0.1")
	// node2IP is the second node's InternalIP, a host routed through node1.
	node2IP = netip.MustParseAddr("10.250.0.2")
	// outsideIP is a host outside the cluster (TEST-NET-1).
	outsideIP = netip.MustParseAddr("192.0.2.10")
	// dnsIP is the node-local DNS cache, the address passed to --dns-ips.
	dnsIP = netip.MustParseAddr("169.254.25.10")
	// floodPrefix holds the addresses of the Node that floods its status
	// (the node flood scenario); a few of them are hosts routed through
	// node1.
	floodPrefix = netip.MustParsePrefix("10.251.0.0/16")
)

// routedPrefixes are the prefixes every host routes through node1: the
// topology's addresses and nothing else (no default route).
var routedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"), // pods (node1's are 10.244.1.x)
	netip.MustParsePrefix("10.250.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.PrefixFrom(dnsIP, 32),
	floodPrefix,
}

// Host is a network namespace attached to the node: a pod, the outside
// host, the DNS cache or the second node.
type Host struct {
	// Name is the host's name in the suite's output (e.g. "p1/web").
	Name string
	// NS is the network namespace's name; Path its file under /run/netns.
	NS, Path string
	// IP is the host's only address.
	IP netip.Addr
}

// Topology is the set of network namespaces of one run. Its methods may be
// called from several goroutines; Teardown undoes everything, once.
type Topology struct {
	prefix string
	// Node is node1's namespace (no Name, IP node1IP).
	Node *Host

	mu      sync.Mutex
	created []string // namespace names, in creation order
	nextIf  int
	pids    []int // processes started inside the namespaces
	down    bool
}

// NewTopology creates node1: a network namespace with its loopback up,
// node1IP on it, forwarding on and ICMP rate limiting off (REJECTed
// connections must answer at once, or refusals show up as timeouts).
func NewTopology() (*Topology, error) {
	deleteStaleNamespaces()
	t := &Topology{prefix: fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid())}
	node, err := t.addNamespace("node1")
	if err != nil {
		return t, err
	}
	node.IP = node1IP
	t.Node = node
	if err := ipCmd("-n", node.NS, "addr", "add", node1IP.String()+"/32", "dev", "lo"); err != nil {
		return t, err
	}
	return t, sysctl(node,
		"net.ipv4.ip_forward=1",
		"net.ipv4.icmp_ratelimit=0",
		"net.ipv4.icmp_msgs_per_sec=100000",
		"net.ipv4.icmp_msgs_burst=100000")
}

// addNamespace creates the network namespace prefix+name with its loopback
// up, and records it for Teardown.
func (t *Topology) addNamespace(name string) (*Host, error) {
	ns := t.prefix + name
	t.mu.Lock()
	if t.down {
		t.mu.Unlock()
		return nil, fmt.Errorf("topology is torn down")
	}
	t.created = append(t.created, ns)
	t.mu.Unlock()
	if err := ipCmd("netns", "add", ns); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", ns, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return &Host{Name: name, NS: ns, Path: filepath.Join("/run/netns", ns)}, nil
}

// AddHost creates a network namespace named name with address ip, wired to
// node1 by a veth pair: ip/32 on the host's eth0, a host route to it on
// node1, and routes for routedPrefixes through node1 on the host.
func (t *Topology) AddHost(name string, ip netip.Addr) (*Host, error) {
	t.mu.Lock()
	t.nextIf++
	nodeIf := "veth" + strconv.Itoa(t.nextIf)
	t.mu.Unlock()
	h, err := t.addNamespace(strings.ReplaceAll(name, "/", "-"))
	if err != nil {
		return nil, err
	}
	h.Name, h.IP = name, ip
	node := t.Node.NS
	steps := [][]string{
		// Both ends are made inside the namespaces: nothing appears in the
		// machine's own network namespace, not even for a moment.
		{"-n", node, "link", "add", nodeIf, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"-n", node, "link", "set", nodeIf, "up"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
		{"-n", h.NS, "addr", "add", ip.String() + "/32", "dev", "eth0"},
		{"-n", h.NS, "route", "add", node1IP.String() + "/32", "dev", "eth0", "scope", "link"},
		{"-n", node, "route", "add", ip.String() + "/32", "dev", nodeIf},
	}
	for _, p := range routedPrefixes {
		if p.Contains(ip) && p.Bits() == 32 {
			continue
		}
		steps = append(steps, []string{"-n", h.NS, "route", "add", p.String(), "via", node1IP.String(), "dev", "eth0"})
	}
	for _, args := range steps {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Exec starts a command inside host's network namespace (through `ip netns
// exec`, which execs it: the recorded PID is the command's own) and records
// its PID for Teardown. The command dies with this process; exited reports
// its end.
func (t *Topology) Exec(h *Host, logFile string, name string, args ...string) (cmd *exec.Cmd, exited <-chan error, err error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = log.Close() }() // the child holds its own descriptor
	cmd = exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if exited, err = startPinned(cmd); err != nil {
		return nil, nil, err
	}
	t.mu.Lock()
	t.pids = append(t.pids, cmd.Process.Pid)
	t.mu.Unlock()
	return cmd, exited, nil
}

// startPinned starts cmd in a process group of its own with a parent-death
// signal (SIGKILL), so that it never outlives this process, and returns a
// channel that receives cmd.Wait's result.
//
// The parent-death signal fires when the *thread* that forked the child
// ends, not the process; and this package ends threads (see inNetns). So
// the child is forked from a thread locked to a goroutine that lives, and
// keeps the thread, until the child has exited.
func startPinned(cmd *exec.Cmd) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	return exited, <-started
}

// Teardown kills the recorded processes, then deletes every namespace the
// topology created (which takes the enforcer's iptables chains and ipsets
// with them). It is safe to call more than once and after a partial setup.
func (t *Topology) Teardown() {
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.down {
		t.mu.Unlock()
		return
	}
	t.down = true
	pids, created := t.pids, t.created
	t.mu.Unlock()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := len(created) - 1; i >= 0; i-- {
		deleteNamespace(created[i])
	}
}

// deleteNamespace kills whatever still runs in the namespace and deletes it.
func deleteNamespace(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
}

// deleteStaleNamespaces deletes the namespaces of earlier runs whose process
// is gone (a run killed with SIGKILL gets no chance to clean up).
func deleteStaleNamespaces() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
			continue // that run is still alive
		}
		deleteNamespace(e.Name())
	}
}

// ipCmd runs ip(8) and returns its output in the error when it fails.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sysctl sets kernel parameters ("net.ipv4.ip_forward=1") inside the
// network namespace ns, through /proc/sys as a thread in that namespace
// sees it.
func sysctl(h *Host, settings ...string) error {
	return inNetns(h.Path, func() error {
		for _, s := range settings {
			key, value, _ := strings.Cut(s, "=")
			file := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
			if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", s, h.NS, err)
			}
		}
		return nil
	})
}
