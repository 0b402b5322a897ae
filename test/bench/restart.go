package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/controller"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/workload"
)

// The restart section (issue 15): o.restartNamespaces isolated namespaces,
// each with the Service "api" and the allowlist "web" naming it
// (workload.Project), converged by a first moat process. Then:
//
//   - restart: SIGTERM, and a fresh `moat serve` (process A). Converged is
//     the first scrape of its metrics endpoint (every 100 ms) at which the
//     isolation controller has taken at least one work item per namespace
//     in the cluster (workqueue_adds_total), its work queue is empty
//     (workqueue_depth) and no reconcile is running
//     (controller_runtime_active_workers): every namespace, enqueued by the
//     initial list before the workers start, has been reconciled. The time
//     runs from just before the process is started.
//   - writes on restart: every write by moat's user in the audit log from
//     the first process's exit until 5 s after A converged (target 0).
//   - peak RSS (VmHWM) of the first process and of each restarted one.
//   - Service change: with A converged, the selector of one namespace's
//     Service changes; the time from the request until the allowlist's
//     NetworkPolicy has the new spec (benchmark's informer), one namespace
//     after the other.
//   - the same Service change during a restart: SIGTERM to A and a fresh
//     process B. One change is made as soon as B's webhook server is ready
//     (its caches are still filling, its controller not started: the time
//     includes its start), then the others one after the other; a change
//     counts as made during the initial resync when the scrape just before
//     it shows the isolation controller's work queue not yet empty.

// restartName is the name of the i-th namespace.
func restartName(i int) string { return fmt.Sprintf("restart-%05d", i) }

// metricsArgs serves moat's metrics on 127.0.0.1:port in plain HTTP, for
// the benchmark's scrapes (production serves them over HTTPS with authn/z).
func metricsArgs(port int) []string {
	return []string{"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port), "--metrics-secure=false"}
}

// queueState is what the convergence test reads from moat's metrics.
type queueState struct {
	adds, depth, active, reconciles, errors float64
}

// scrapeQueue reads the isolation controller's work queue and reconcile
// figures from the metrics endpoint.
func scrapeQueue(url string) (queueState, error) {
	var q queueState
	resp, err := http.Get(url)
	if err != nil {
		return q, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return q, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ctrlLabel := `controller="` + controller.ControllerName + `"`
	queueLabel := `name="` + controller.ControllerName + `"`
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		switch {
		case name == "workqueue_adds_total" && strings.Contains(labels, queueLabel):
			q.adds += v
		case name == "workqueue_depth" && strings.Contains(labels, queueLabel):
			q.depth += v
		case name == "controller_runtime_active_workers" && strings.Contains(labels, ctrlLabel):
			q.active += v
		case name == "controller_runtime_reconcile_total" && strings.Contains(labels, ctrlLabel):
			q.reconciles += v
			if strings.Contains(labels, `result="error"`) {
				q.errors += v
			}
		}
	}
	return q, sc.Err()
}

// waitConverged polls moat's metrics until the isolation controller has
// taken namespaces work items and is idle, and returns when.
func waitConverged(ctx context.Context, p *process, url string, namespaces int, timeout time.Duration) (time.Time, queueState, error) {
	deadline := time.Now().Add(timeout)
	var last queueState
	for {
		if err := p.exited(); err != nil {
			return time.Time{}, last, err
		}
		q, err := scrapeQueue(url)
		if err == nil {
			last = q
			if q.adds >= float64(namespaces) && q.depth == 0 && q.active == 0 {
				return time.Now(), q, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, last, fmt.Errorf("not converged after %v: %+v (last scrape error: %v)", timeout, last, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// oneService answers policy.Services with one Service.
type oneService struct{ svc *corev1.Service }

func (s oneService) Service(namespace, name string) (*corev1.Service, error) {
	if namespace == s.svc.Namespace && name == s.svc.Name {
		return s.svc, nil
	}
	return nil, nil
}

// changedPolicies returns the policies of Project namespace ns that differ
// once its Service selects selector, with their new specs.
func changedPolicies(ns string, selector map[string]string) ([]networkingv1.NetworkPolicy, error) {
	before, err := workload.ExpectedPolicies(ns)
	if err != nil {
		return nil, err
	}
	svc, al := workload.Project(ns)
	svc.Spec.Selector = selector
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		v1alpha1.IsolationLabel: "true", v1alpha1.NamespaceNameLabel: ns}}}
	dns := policy.DefaultDNSService
	res, err := policy.Render(policy.Input{Namespace: nsObj, Allowlists: []*v1alpha1.NetworkAllowlist{al}}, oneService{svc}, policy.Config{DNSService: &dns})
	if err != nil {
		return nil, err
	}
	old := map[string]networkingv1.NetworkPolicySpec{}
	for _, np := range before {
		old[np.Name] = np.Spec
	}
	var changed []networkingv1.NetworkPolicy
	for _, np := range res.Policies {
		workload.DefaultSpec(&np.Spec)
		if !equality.Semantic.DeepEqual(old[np.Name], np.Spec) {
			changed = append(changed, np)
		}
	}
	if len(changed) == 0 {
		return nil, fmt.Errorf("a new selector changes no policy of namespace %s", ns)
	}
	return changed, nil
}

// serviceChange sets the selector of namespace i's Service to app=value and
// returns the time until the benchmark's informer has seen every policy it
// changes with its new spec.
func serviceChange(ctx context.Context, c *cluster, w *watcher, i int, value string) (time.Duration, error) {
	ns := restartName(i)
	changed, err := changedPolicies(ns, map[string]string{"app": value})
	if err != nil {
		return 0, err
	}
	const group = "restart-"
	select { // a stale completion
	case <-w.done[group]:
	default:
	}
	w.expect(group, changed)
	start := time.Now()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"selector":{"app":"`+value+`"}}}`))
	if err := c.admin.Patch(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}, patch); err != nil {
		return 0, err
	}
	end, err := w.wait(ctx, group, 120*time.Second)
	if err != nil {
		return 0, fmt.Errorf("Service %s/api changed: %w", ns, err)
	}
	return end.Sub(start), nil
}

// restartResult is what benchRestart reports.
type restartResult struct {
	setup, converge, ready           time.Duration
	queue                            queueState
	writes                           writes
	hwmFirst, hwmRestarted, hwmAgain int64
	hwmNoTenant                      int64
	steady, resync, after            []time.Duration
	resyncAt                         []time.Duration
	atReady                          time.Duration
	convergeAgain                    time.Duration
	// convergeNoTenant is a restart with --tenant-network-policies=off,
	// and tenantReads its reads.
	convergeNoTenant time.Duration
	tenantReads      map[string]int
}

func restartRun(ctx context.Context, o *options) (*restartResult, error) {
	c, err := startCluster(o, "restart")
	defer c.stop()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &restartResult{}
	n := o.restartNamespaces

	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	first, url, err := startMoat(ctx, o, c, "moat-serve-restart-1", metricsArgs(metricsPort)...)
	if err != nil {
		return nil, err
	}
	defer first.stop()
	if err := testenv.InstallWebhooks(ctx, c.admin, o.repo, url, c.caPEM); err != nil {
		return nil, err
	}
	w, err := startWatcher(ctx, c)
	if err != nil {
		return nil, err
	}
	var want []networkingv1.NetworkPolicy
	for i := range n {
		ps, err := workload.ExpectedPolicies(restartName(i))
		if err != nil {
			return nil, err
		}
		want = append(want, ps...)
	}
	w.expect("restart-", want)

	fmt.Fprintf(os.Stderr, "bench: restart: creating %d isolated namespaces, each with a Service and an allowlist (%d policies)\n", n, len(want))
	start := time.Now()
	if err := parallel(ctx, o.workers, n, func(i int) error {
		ns := restartName(i)
		svc, al := workload.Project(ns)
		for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.IsolationLabel: v1alpha1.IsolationOn}}}, svc, al} {
			if err := c.admin.Create(ctx, obj); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	created := time.Since(start)
	if _, err := w.wait(ctx, "restart-", 60*time.Minute); err != nil {
		return nil, err
	}
	if err := waitAllowlists(ctx, c, n, v1alpha1.ReasonApplied, 30*time.Minute); err != nil {
		return nil, err
	}
	res.setup = time.Since(start)
	fmt.Fprintf(os.Stderr, "bench: restart: set up in %v (objects created in %v)\n", res.setup, created)
	namespaces := &corev1.NamespaceList{}
	if err := c.admin.List(ctx, namespaces); err != nil {
		return nil, err
	}
	total := len(namespaces.Items)
	namespaces = nil
	// Late writes of the first process end before it is stopped.
	time.Sleep(3 * time.Second)
	if res.hwmFirst, _, err = first.memory(); err != nil {
		return nil, err
	}

	// Restart: a fresh process A.
	first.stop()
	off, err := c.auditOffset()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: restart: first process stopped; starting a fresh one (%d namespaces in the cluster)\n", total)
	t0 := time.Now()
	a, _, err := startMoat(ctx, o, c, "moat-serve-restart-2", metricsArgs(metricsPort)...)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	res.ready = time.Since(t0)
	end, q, err := waitConverged(ctx, a, metricsURL, total, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	res.converge, res.queue = end.Sub(t0), q
	time.Sleep(5 * time.Second)
	if res.writes, err = c.writesSince(off, moatUser); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: restart: converged after %v (ready after %v; %+v); writes: %d (%s)\n", res.converge, res.ready, q, res.writes.total, res.writes)

	// One Service change at a time, with A converged.
	samples := o.restartSamples
	for k := range samples {
		i := (k*n/samples + 1) % n
		d, err := serviceChange(ctx, c, w, i, fmt.Sprintf("api-s%d", k))
		if err != nil {
			return nil, err
		}
		res.steady = append(res.steady, d)
	}
	if res.hwmRestarted, _, err = a.memory(); err != nil {
		return nil, err
	}

	// The same during a restart: process B.
	a.stop()
	t0 = time.Now()
	b, _, err := startMoat(ctx, o, c, "moat-serve-restart-3", metricsArgs(metricsPort)...)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	for k := range samples + 1 {
		i := (k*n/(samples+1) + n/(samples+1)/2 + 2) % n
		at := time.Since(t0)
		q, qerr := scrapeQueue(metricsURL)
		d, err := serviceChange(ctx, c, w, i, fmt.Sprintf("api-r%d", k))
		if err != nil {
			return nil, err
		}
		switch {
		case k == 0:
			res.atReady = d
		case qerr == nil && q.depth > 0:
			res.resync, res.resyncAt = append(res.resync, d), append(res.resyncAt, at)
		default:
			res.after = append(res.after, d)
		}
	}
	end, _, err = waitConverged(ctx, b, metricsURL, total, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	res.convergeAgain = end.Sub(t0)
	if res.hwmAgain, _, err = b.memory(); err != nil {
		return nil, err
	}

	// What the tenant NetworkPolicy check costs a restart: a cache of the
	// NetworkPolicies moat does not manage (one List and watch), and the
	// tenant model of each isolated namespace that holds any (before issue
	// 20: one List per isolated namespace against the API server).
	b.stop()
	if off, err = c.auditOffset(); err != nil {
		return nil, err
	}
	t0 = time.Now()
	d, _, err := startMoat(ctx, o, c, "moat-serve-restart-4", append(metricsArgs(metricsPort), "--tenant-network-policies=off")...)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if end, _, err = waitConverged(ctx, d, metricsURL, total, 30*time.Minute); err != nil {
		return nil, err
	}
	res.convergeNoTenant = end.Sub(t0)
	if res.hwmNoTenant, _, err = d.memory(); err != nil {
		return nil, err
	}
	rw, err := c.writesSince(off, moatUser)
	if err != nil {
		return nil, err
	}
	res.tenantReads = rw.reads
	return res, nil
}

// benchRestart runs the restart section once (each run costs a control
// plane with o.restartNamespaces projects).
func benchRestart(ctx context.Context, o *options) error {
	r, err := restartRun(ctx, o)
	if err != nil {
		return err
	}
	n := o.restartNamespaces
	const section = "restart"
	record(figure{section: section, name: fmt.Sprintf("setup: %d isolated projects created and converged", n), value: r.setup.Round(time.Second).String()})
	record(figure{section: section, name: "time from a fresh moat process to converged", value: ms(r.converge),
		baseline: "webhooks ready after " + ms(r.ready)})
	record(figure{section: section, name: "… with --tenant-network-policies=off (no tenant check, no cache of user policies)", value: ms(r.convergeNoTenant),
		baseline: "reads: " + countString(r.tenantReads)})
	failed := ""
	if r.writes.failed > 0 {
		failed = fmt.Sprintf("; %d failed", r.writes.failed)
	}
	wv := "0"
	if r.writes.total > 0 {
		wv = fmt.Sprintf("%d (%s%s)", r.writes.total, r.writes, failed)
	}
	record(figure{section: section, name: "writes by moat from restart to converged + 5 s", value: wv, target: "0", met: met(r.writes.total == 0)})
	reads := 0
	for _, v := range r.writes.reads {
		reads += v
	}
	record(figure{section: section, name: "… reads (lists, gets) by moat in that time", value: fmt.Sprintf("%d (%s)", reads, countString(r.writes.reads))})
	record(figure{section: section, name: "… reconciles in that time", value: fmt.Sprintf("%.0f (%.0f errors)", r.queue.reconciles, r.queue.errors)})
	limit := int64(400 << 20)
	peak := max(r.hwmRestarted, r.hwmAgain, r.hwmNoTenant)
	record(figure{section: section, name: "peak RSS of the restarted processes (highest of 3)", value: fmt.Sprintf("%s (%s, %s, %s)", mib(peak), mib(r.hwmRestarted), mib(r.hwmAgain), mib(r.hwmNoTenant)),
		baseline: "first process " + mib(r.hwmFirst), target: "< 400.0 MiB", met: met(peak < limit && r.hwmFirst < limit)})
	durs := func(ds []time.Duration) string {
		parts := make([]string, len(ds))
		for i, d := range ds {
			parts[i] = ms(d)
		}
		return strings.Join(parts, " ")
	}
	steadyMax, resyncMax := maxDuration(r.steady), maxDuration(r.resync)
	record(figure{section: section, name: fmt.Sprintf("one Service change to its policy, converged (%d samples)", len(r.steady)),
		value: ms(median(r.steady)) + " (max " + ms(steadyMax) + ")", target: "< 1000 ms (max)", met: met(steadyMax < time.Second)})
	record(figure{section: section, name: "… made as a restarted moat's webhooks become ready", value: ms(r.atReady),
		baseline: fmt.Sprintf("that restart converged after %s", ms(r.convergeAgain))})
	if len(r.resync) > 0 {
		record(figure{section: section, name: fmt.Sprintf("… during its initial resync (%d samples)", len(r.resync)),
			value: ms(median(r.resync)) + " (max " + ms(resyncMax) + ")", target: "< 1000 ms (max)", met: met(resyncMax < time.Second)})
	} else {
		record(figure{section: section, name: "… during its initial resync", value: "no sample: the resync ended before the first change"})
	}
	fmt.Fprintf(os.Stderr, "bench: restart: Service changes, converged: %s\n", durs(r.steady))
	fmt.Fprintf(os.Stderr, "bench: restart: Service change at webhooks ready: %s; during the initial resync: %s (made at %s after the process start); after it: %s; peak RSS of that process %s\n",
		ms(r.atReady), durs(r.resync), durs(r.resyncAt), durs(r.after), mib(r.hwmAgain))
	return nil
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
