// Command bench runs moat's end-to-end benchmarks (`make bench`) and prints
// each figure beside its in-run baseline and its target:
//
//   - go: the in-process Go benchmarks (`go test -bench` output given with
//     -gobench): each admission handler, and the 10-rule allowlist beside a
//     no-op validator; `moat validate`'s in-process path per object.
//   - validate: the real `bin/moat validate` process on the issue-8 corpus
//     (package test/corpus) of 1,000 and 10,000 NetworkPolicies: wall time
//     and peak RSS (wait4 rusage).
//   - admission: `bin/moat serve` against a real kube-apiserver (envtest),
//     loaded over HTTPS by bin/loadgen with the ten-rule allowlist review,
//     beside a no-op controller-runtime webhook server with the same TLS and
//     HTTP settings (this program in noop-webhook mode): throughput (closed
//     loop) and p50/p90/p99 at a fixed rate (open loop).
//   - scale: 1,000 namespaces, each with one allowlist naming one Service,
//     labelled moat.dev/isolated at once: time until every NetworkPolicy is in
//     place, the writes moat issued (from the API server's audit log) and
//     moat's peak RSS (VmHWM), beside a plain client that makes the same
//     label requests (a label no moat webhook selects) and creates the same
//     NetworkPolicies; then moat's peak RSS with 10,000 Services cached.
//   - load: Kyverno's published load test shape: 100 concurrent clients
//     (one connection each) creating and deleting a NetworkAllowlist (three
//     Services, a namespace and a CIDR) through a real kube-apiserver for
//     60 s, with moat serving and its webhook configurations installed,
//     then the same clients without moat (webhook configurations deleted,
//     moat stopped): count, average, p99 and max latency of creates and
//     deletes, errors.
//   - restart: 10,000 isolated namespaces (-restart-namespaces), each with
//     one allowlist naming one Service, converged; then a fresh moat
//     process: its time to converge (from its metrics: every namespace
//     taken from the work queue, queue empty), its writes (audit log;
//     target none), its peak RSS, and the time one Service change takes to
//     reach its NetworkPolicy, with moat converged and during a restart.
//   - explain: a real kube-apiserver holding 1,000 namespaces and 10,000
//     pods (-explain-namespaces, -explain-pods), moat's policies, allowlists
//     and tenant policies: the wall time of the real `bin/moat explain
//     --kubeconfig` process, pod to pod and address to pod (target < 1 s),
//     beside `kubectl get pods,networkpolicies` of one namespace.
//
// Figures are medians of -runs runs. Everything runs on 127.0.0.1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"moat.dev/moat/test/testenv"
)

type options struct {
	repo, binDir, moat, loadgen string
	sections                    string
	runs                        int
	// admission
	duration    time.Duration
	concurrency int
	rate        float64
	rateWorkers int
	// explain
	explainNamespaces, explainPods int
	// scale
	namespaces  int
	services    int
	workers     int
	scaleRuns   int
	validateNPs string
	// kyverno is the Kyverno CLI binary; kyvernoSize the corpus size.
	kyverno     string
	kyvernoSize int
	goBench     string
	// load
	loadClients  int
	loadDuration time.Duration
	loadRuns     int
	loadShared   bool
	loadRate     float64
	// profileDir, when set, receives CPU profiles of the API server
	// during the phases of the scale, label and load sections.
	profileDir     string
	profileSeconds int
	// label
	labelRequests, labelKubectl int
	// restart
	restartNamespaces int
	restartSamples    int
}

// figure is one line of the report.
type figure struct {
	section, name string
	value         string
	baseline      string
	target        string
	// met is nil when the figure has no target.
	met *bool
}

var report []figure

func record(f figure) {
	report = append(report, f)
	fmt.Fprintf(os.Stderr, "bench: %s: %s = %s (baseline: %s; target: %s)\n", f.section, f.name, f.value, orDash(f.baseline), orDash(f.target))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func met(ok bool) *bool { return &ok }

func main() {
	if len(os.Args) > 1 && os.Args[1] == noopCommand {
		os.Exit(runNoop(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	// envtest and the informers log through controller-runtime; the
	// report is what matters here.
	logf.SetLogger(logr.Discard())
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sections := map[string]func(context.Context, *options) error{
		"go":        benchGo,
		"validate":  benchValidate,
		"admission": benchAdmission,
		"scale":     benchScale,
		"shapes":    benchShapes,
		"load":      benchLoad,
		"label":     benchLabel,
		"restart":   benchRestart,
		"explain":   benchExplain,
		"kyverno":   benchKyverno,
	}
	failed := false
	for _, name := range strings.Split(o.sections, ",") {
		f, ok := sections[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown section %q (go, validate, admission, scale, shapes, load, label, restart, explain, kyverno)\n", name)
			return 2
		}
		fmt.Fprintf(os.Stderr, "bench: == %s\n", name)
		if err := f(ctx, o); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
			failed = true
		}
	}
	printReport()
	if failed {
		return 1
	}
	return 0
}

func parseFlags() (*options, error) {
	repo, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	o := &options{repo: repo}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.binDir, "bin-dir", filepath.Join(repo, "bin"), "directory holding kube-apiserver and etcd (make control-plane)")
	fs.StringVar(&o.moat, "moat", filepath.Join(repo, "bin", "moat"), "the moat binary (make build)")
	fs.StringVar(&o.loadgen, "loadgen", filepath.Join(repo, "bin", "loadgen"), "the load generator (go build -o bin/loadgen ./test/loadgen)")
	fs.StringVar(&o.sections, "sections", "validate,admission,scale", `comma-separated sections to run: go (report -gobench), validate, admission, scale, shapes, load, label, restart, explain, kyverno (needs -kyverno)`)
	fs.StringVar(&o.goBench, "gobench", "", "output of `go test -bench` to report in the go section")
	fs.IntVar(&o.runs, "runs", 5, "runs per figure (the median is reported)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "admission: length of each load run")
	fs.IntVar(&o.concurrency, "concurrency", 4, "admission: connections in closed-loop runs")
	fs.Float64Var(&o.rate, "rate", 1000, "admission: requests per second in open-loop runs")
	fs.IntVar(&o.rateWorkers, "rate-workers", 32, "admission: connections in open-loop runs")
	fs.IntVar(&o.namespaces, "namespaces", 1000, "scale: namespaces labelled at once")
	fs.IntVar(&o.explainNamespaces, "explain-namespaces", 1000, "explain: namespaces in the cluster explained live")
	fs.IntVar(&o.explainPods, "explain-pods", 10, "explain: pods per namespace")
	fs.IntVar(&o.services, "services", 10000, "scale: Services in the cache for the memory figure (0: no such run)")
	fs.IntVar(&o.workers, "workers", 32, "scale: concurrent requests of the labelling and of the baseline client")
	fs.IntVar(&o.scaleRuns, "scale-runs", 3, "scale: runs, each on a fresh control plane")
	fs.IntVar(&o.loadClients, "load-clients", 100, "load: concurrent clients creating and deleting allowlists (Kyverno's test: 100 virtual users)")
	fs.DurationVar(&o.loadDuration, "load-duration", 60*time.Second, "load: length of each phase (with moat, without), after a 2 s warm-up")
	fs.IntVar(&o.loadRuns, "load-runs", 1, "load: runs, each on a fresh control plane; moat's phase comes first in odd runs, last in even ones")
	fs.Float64Var(&o.loadRate, "load-rate", 0, "load: creates per second of all clients together, each followed by its delete (0: closed loop, as Kyverno's test)")
	fs.BoolVar(&o.loadShared, "load-shared-connection", false, "load: the clients share one HTTP/2 connection instead of one connection each")
	fs.IntVar(&o.restartNamespaces, "restart-namespaces", 10000, "restart: isolated namespaces, each with a Service and an allowlist (1000 for a quick run)")
	fs.IntVar(&o.restartSamples, "restart-samples", 10, "restart: Service changes timed, converged and during a restart")
	fs.StringVar(&o.validateNPs, "validate-sizes", "1000,10000", "validate: corpus sizes (NetworkPolicies)")
	fs.StringVar(&o.kyverno, "kyverno", "", "kyverno: the Kyverno CLI binary (kubectl-kyverno), run side by side with moat validate")
	fs.IntVar(&o.kyvernoSize, "kyverno-size", 10000, "kyverno: corpus size (NetworkPolicies)")
	fs.IntVar(&o.labelRequests, "label-requests", 100, "label: sequential label requests of each kind (moat's label, the plain label)")
	fs.IntVar(&o.labelKubectl, "label-kubectl", 20, "label: `kubectl label` processes of each kind (0: none)")
	fs.StringVar(&o.profileDir, "profile-dir", "", "scale, label, load: save CPU profiles of the API server during each phase in this directory (from the start of the phase)")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 3, "scale, label, load: length of each API server profile")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if o.runs < 1 || o.scaleRuns < 1 || o.loadRuns < 1 || o.loadClients < 1 || o.restartNamespaces < 1 || o.restartSamples < 1 {
		return nil, errors.New("-runs, -scale-runs, -load-runs, -load-clients, -restart-namespaces and -restart-samples must be at least 1")
	}
	for _, f := range []string{o.moat, filepath.Join(o.binDir, "kube-apiserver"), filepath.Join(o.binDir, "etcd")} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make control-plane build` first", f)
		}
	}
	return o, nil
}

func printReport() {
	fmt.Println()
	fmt.Println("moat benchmarks (medians; see docs/benchmarks.md)")
	cpu, n := machine()
	fmt.Printf("machine: %d CPUs, %s\n\n", n, cpu)
	w := [4]int{len("figure"), len("moat"), len("baseline"), len("target")}
	for _, f := range report {
		// fmt pads to a width in runes.
		w[0] = max(w[0], utf8.RuneCountInString(f.section+": "+f.name))
		w[1] = max(w[1], utf8.RuneCountInString(f.value))
		w[2] = max(w[2], utf8.RuneCountInString(orDash(f.baseline)))
		w[3] = max(w[3], utf8.RuneCountInString(orDash(f.target)))
	}
	fmt.Printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], "figure", w[1], "moat", w[2], "baseline", w[3], "target", "met")
	for _, f := range report {
		m := "-"
		if f.met != nil {
			m = map[bool]string{true: "yes", false: "NO"}[*f.met]
		}
		fmt.Printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], f.section+": "+f.name, w[1], f.value, w[2], orDash(f.baseline), w[3], orDash(f.target), m)
	}
}

// machine returns the CPU model and the number of CPUs.
func machine() (string, int) {
	data, _ := os.ReadFile("/proc/cpuinfo")
	model, n := "unknown CPU", 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			model = strings.TrimSpace(v)
		case "processor":
			n++
		}
	}
	return model, n
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread formats min–max of xs.
func spread[T int64 | float64 | time.Duration](xs []T, f func(T) string) string {
	return f(slices.Min(xs)) + "–" + f(slices.Max(xs))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// msf formats d in milliseconds with two decimals.
func msf(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func sortStrings(s []string) { sort.Strings(s) }
