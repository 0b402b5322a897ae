package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/testenv"
)

// Kyverno's load test (its scaling page): admission latency at 100
// concurrent k6 virtual users against one Kyverno replica.
const (
	kyvernoAvg = "42.67 ms"
	kyvernoMax = "141 ms"
)

const (
	// loadNamespaces is the number of project namespaces the clients
	// spread over; loadShared is the namespace every project reaches.
	loadNamespaces = 4
	loadShared     = "load-shared"
	// loadWarmup is run at full concurrency before each phase's clock
	// starts; its requests are not counted.
	loadWarmup = 2 * time.Second
	// Names of moat's webhook configurations (manifests/webhook).
	moatMutating   = "moat-mutating-webhook-configuration"
	moatValidating = "moat-validating-webhook-configuration"
)

func loadNamespace(i int) string { return fmt.Sprintf("load-%d", i) }

// loadServices are the Services of each project namespace and of
// loadShared that the allowlists name.
var loadServices = []string{"api", "db", "cache"}

// loadAllowlist is the allowlist each client creates: ingress from the
// shared namespace, egress to two Services of its own namespace, one of the
// shared namespace, and a CIDR with an exception. moat's webhook looks up the three Services and the namespace,
// checks the CIDRs and admits it without warnings.
func loadAllowlist(namespace, name string) *v1alpha1.NetworkAllowlist {
	tcp := corev1.ProtocolTCP
	port := func(p int32) []v1alpha1.Port {
		return []v1alpha1.Port{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(p))}}
	}
	return &v1alpha1.NetworkAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1alpha1.NetworkAllowlistSpec{
			Ingress: []v1alpha1.IngressRule{
				{From: []v1alpha1.Peer{{Namespace: loadShared}}},
			},
			Egress: []v1alpha1.EgressRule{
				{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Name: "api"}}}, Ports: port(80)},
				{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Name: "db"}}}, Ports: port(80)},
				{To: []v1alpha1.Peer{{Service: &v1alpha1.ServiceReference{Namespace: loadShared, Name: "cache"}}}, Ports: port(80)},
				{To: []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.0/24", Except: []string{"203.0.113.128/25"}}}}, Ports: port(443)},
			},
		},
	}
}

// webhookProbe is an allowlist that the CRD's schema admits and moat's
// validating webhook refuses (SCTP, which moat serve does not allow by
// default). A dry-run create of it tells whether the API server calls moat.
func webhookProbe() *v1alpha1.NetworkAllowlist {
	sctp := corev1.ProtocolSCTP
	al := loadAllowlist(loadNamespace(0), "probe")
	al.Spec.Ingress = nil
	al.Spec.Egress = []v1alpha1.EgressRule{{
		To:    []v1alpha1.Peer{{IPBlock: &v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}}},
		Ports: []v1alpha1.Port{{Protocol: &sctp, Port: ptr.To(intstr.FromInt32(9999))}},
	}}
	return al
}

// latencies are one phase's create and delete latencies and errors.
type latencies struct {
	creates, deletes []time.Duration
	errors           int
	firstErrors      []string
	warnings         int64
	// dials counts the TCP connections the clients opened.
	dials int64
	// elapsed is the measured part of the phase (after the warm-up).
	elapsed time.Duration
	// cpu is the CPU time each process used in the measured part.
	cpu map[string]time.Duration
}

// cpuPerRequest is the CPU time of the API server, etcd and moat per
// request (create or delete) of the measured part.
func (l *latencies) cpuPerRequest() time.Duration {
	n := len(l.creates) + len(l.deletes)
	if n == 0 {
		return 0
	}
	return (l.cpu["kube-apiserver"] + l.cpu["etcd"] + l.cpu["moat"]) / time.Duration(n)
}

type stats struct {
	n             int
	avg, p99, max time.Duration
}

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	// p99: the smallest value at or above 99% of the samples.
	i := (len(s)*99+99)/100 - 1
	return stats{n: len(s), avg: sum / time.Duration(len(s)), p99: s[i], max: s[len(s)-1]}
}

// countingWarnings counts the warnings the API server returns (moat's
// webhook warnings included).
type countingWarnings struct{ n *atomic.Int64 }

func (w countingWarnings) HandleWarningHeader(code int, _ string, _ string) {
	if code == 299 {
		w.n.Add(1)
	}
}

// loadClients returns n clients of the baseline user. Each has its own
// HTTP transport, hence its own TCP connection (one HTTP/2 connection per
// client, like k6's virtual users), unless shared is set: then all of them
// share one transport, which client-go multiplexes over one HTTP/2
// connection. Client-side rate limiting is off.
func loadClients(c *cluster, n int, shared bool, dials, warnings *atomic.Int64) ([]client.Client, error) {
	mapper := c.admin.RESTMapper()
	var sharedHTTP *http.Client
	out := make([]client.Client, 0, n)
	for range n {
		cfg := rest.CopyConfig(c.baseline)
		cfg.QPS, cfg.Burst = -1, 0
		cfg.WarningHandlerWithContext = nil
		cfg.WarningHandler = countingWarnings{warnings}
		// A Dial of our own makes client-go build a transport per
		// config instead of sharing its cached one, and counts the
		// connections.
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}
		hc := sharedHTTP
		if hc == nil {
			var err error
			if hc, err = rest.HTTPClientFor(cfg); err != nil {
				return nil, err
			}
			if shared {
				sharedHTTP = hc
			}
		}
		cl, err := client.New(cfg, client.Options{Scheme: newScheme(), Mapper: mapper, HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		out = append(out, cl)
	}
	return out, nil
}

// loadPhase runs the clients for loadWarmup + d: each creates an allowlist
// and deletes it, again and again. Only requests that start after the
// warm-up are counted.
//
// With rate > 0 (creates per second, all clients together) the loop is open:
// each client starts a create every len(clients)/rate, staggered, and a
// latency is measured from the scheduled start, so a client that falls
// behind counts its wait (no coordinated omission).
func loadPhase(ctx context.Context, clients []client.Client, prefix string, d time.Duration, rate float64, dials, warnings *atomic.Int64) *latencies {
	type result struct {
		creates, deletes []time.Duration
		errs             []string
		errors           int
	}
	results := make([]result, len(clients))
	dials0, warnings0 := dials.Load(), warnings.Load()
	start := time.Now()
	measure := start.Add(loadWarmup)
	end := measure.Add(d)
	cpu0 := make(chan map[string]time.Duration, 1)
	cpuTimer := time.AfterFunc(loadWarmup, func() { cpu0 <- cpuTimes() })
	var wg sync.WaitGroup
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(len(clients)) / rate * float64(time.Second))
	}
	for i, cl := range clients {
		wg.Go(func() {
			r := &results[i]
			next := start.Add(interval * time.Duration(i) / time.Duration(len(clients)))
			// Every failure counts, warm-up included.
			fail := func(err error) {
				r.errors++
				if len(r.errs) < 3 {
					r.errs = append(r.errs, err.Error())
				}
				// No hot loop when every request fails.
				time.Sleep(10 * time.Millisecond)
			}
			for j := 0; ctx.Err() == nil; j++ {
				t0 := time.Now()
				if interval > 0 {
					if !next.Before(end) {
						return
					}
					if wait := time.Until(next); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
					t0, next = next, next.Add(interval)
				}
				if !t0.Before(end) {
					return
				}
				al := loadAllowlist(loadNamespace(i%loadNamespaces), fmt.Sprintf("%s-%03d-%06d", prefix, i, j))
				if err := cl.Create(ctx, al); err != nil {
					fail(fmt.Errorf("create %s/%s: %w", al.Namespace, al.Name, err))
					continue
				}
				t1 := time.Now()
				err := cl.Delete(ctx, al)
				t2 := time.Now()
				if !t0.Before(measure) {
					r.creates = append(r.creates, t1.Sub(t0))
				}
				if err != nil {
					fail(fmt.Errorf("delete %s/%s: %w", al.Namespace, al.Name, err))
					continue
				}
				if !t1.Before(measure) {
					r.deletes = append(r.deletes, t2.Sub(t1))
				}
			}
		})
	}
	wg.Wait()
	l := &latencies{elapsed: time.Since(measure), dials: dials.Load() - dials0, warnings: warnings.Load() - warnings0, cpu: cpuTimes()}
	if !cpuTimer.Stop() {
		for k, v := range <-cpu0 {
			l.cpu[k] -= v
		}
	}
	for _, r := range results {
		l.creates = append(l.creates, r.creates...)
		l.deletes = append(l.deletes, r.deletes...)
		l.errors += r.errors
		for _, e := range r.errs {
			if len(l.firstErrors) < 5 {
				l.firstErrors = append(l.firstErrors, e)
			}
		}
	}
	return l
}

// moatCalled reports whether the API server calls moat's validating webhook
// for allowlists: a dry-run create of webhookProbe is refused by moat (true)
// or admitted (false). Any other answer (moat stopped while the API server
// still calls it, for one) is an error.
func moatCalled(ctx context.Context, c *cluster) (bool, error) {
	err := c.admin.Create(ctx, webhookProbe(), client.DryRunAll)
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsInvalid(err) && strings.Contains(err.Error(), "SCTP"):
		return true, nil
	default:
		return false, err
	}
}

// waitMoatCalled waits until moatCalled answers want.
func waitMoatCalled(ctx context.Context, c *cluster, want bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := moatCalled(ctx, c)
		if err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server still does not answer as if moat's webhook were %s after 30 s (called: %v, %v)",
				map[bool]string{true: "installed", false: "absent"}[want], got, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadRunResult is one run of the load benchmark.
type loadRunResult struct {
	moat, base *latencies
	moatWrites writes
	// conns is the number of TCP connections the clients opened in the
	// whole run.
	conns int64
}

func loadRun(ctx context.Context, o *options, run int) (*loadRunResult, error) {
	c, err := startCluster(o, "load")
	defer c.stop()
	if err != nil {
		return nil, err
	}
	namespaces := []string{loadShared}
	for i := range loadNamespaces {
		namespaces = append(namespaces, loadNamespace(i))
	}
	for _, ns := range namespaces {
		if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
		for _, name := range loadServices {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: corev1.ServiceSpec{
					Selector: map[string]string{"app": name},
					Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
				},
			}
			if err := c.admin.Create(ctx, svc); err != nil {
				return nil, err
			}
		}
	}
	var dials, warnings atomic.Int64
	clients, err := loadClients(c, o.loadClients, o.loadShared, &dials, &warnings)
	if err != nil {
		return nil, err
	}
	// Each client opens its connection now, one after the other: 100
	// first requests at once through a shared transport would each dial
	// their own connection before HTTP/2 is negotiated.
	for _, cl := range clients {
		if err := cl.Get(ctx, client.ObjectKey{Name: loadShared}, &corev1.Namespace{}); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: load run %d: the clients opened %d connections\n", run+1, dials.Load())
	res := &loadRunResult{}
	var moat *process
	defer func() {
		if moat != nil {
			moat.stop()
		}
	}()
	moatPhase := func() error {
		p, url, err := startMoat(ctx, o, c, "moat-serve-load")
		if err != nil {
			return err
		}
		moat = p
		if err := testenv.InstallWebhooks(ctx, c.admin, o.repo, url, c.caPEM); err != nil {
			return err
		}
		if err := waitMoatCalled(ctx, c, true); err != nil {
			return err
		}
		off, err := c.auditOffset()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: load run %d: moat's webhooks installed: %d clients for %v\n", run+1, len(clients), o.loadDuration)
		profiled := o.profile(c, fmt.Sprintf("load-%d-moat", run+1))
		res.moat = loadPhase(ctx, clients, "moat", o.loadDuration, o.loadRate, &dials, &warnings)
		profiled()
		if err := moat.exited(); err != nil {
			return err
		}
		// moat's own writes during the phase (allowlist statuses): the
		// load its controller adds to the API server.
		if res.moatWrites, err = c.writesSince(off, moatUser); err != nil {
			return err
		}
		// The baseline is the API server without moat: no webhook
		// configurations, no moat process. With moat stopped, a create
		// that still reached its webhook would fail (failurePolicy
		// Fail), so an admitted probe shows that the API server no
		// longer calls it.
		for _, obj := range []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: moatMutating}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: moatValidating}},
		} {
			if err := c.admin.Delete(ctx, obj); err != nil {
				return err
			}
		}
		moat.stop()
		moat = nil
		return nil
	}
	basePhase := func() error {
		if err := waitMoatCalled(ctx, c, false); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: load run %d: without moat: %d clients for %v\n", run+1, len(clients), o.loadDuration)
		profiled := o.profile(c, fmt.Sprintf("load-%d-base", run+1))
		res.base = loadPhase(ctx, clients, "base", o.loadDuration, o.loadRate, &dials, &warnings)
		profiled()
		return nil
	}
	phases := []func() error{moatPhase, basePhase}
	if run%2 == 1 {
		phases = []func() error{basePhase, moatPhase}
	}
	for _, p := range phases {
		if err := p(); err != nil {
			return nil, err
		}
	}
	res.conns = dials.Load()
	return res, nil
}

// benchLoad runs Kyverno's load test shape -load-runs times, moat first in
// odd runs and the baseline first in even ones. Each run is a fresh envtest
// control plane with loadNamespaces namespaces and loadShared, three
// Services in each; -load-clients clients (the baseline user, no client
// rate limit, one connection each unless -load-shared-connection) then
// create and delete loadAllowlist in a closed loop, first with moat serving
// and its production webhook configurations installed, then without moat
// (configurations deleted, process stopped, checked with webhookProbe).
// Each phase lasts loadWarmup + -load-duration; only the requests after
// the warm-up count. Any failed request is an error of the benchmark.
func benchLoad(ctx context.Context, o *options) error {
	var (
		mc, bc, md, bd                []stats
		mcpu, bcpu                    []time.Duration
		mrate, brate, added, addedRel []float64
		errs, warns                   int
		firstErrs                     []string
		last                          *loadRunResult
	)
	for run := range o.loadRuns {
		r, err := loadRun(ctx, o, run)
		if err != nil {
			return fmt.Errorf("load run %d: %w", run+1, err)
		}
		last = r
		for _, p := range []struct {
			name string
			l    *latencies
		}{{"moat", r.moat}, {"without moat", r.base}} {
			cs, ds := summarize(p.l.creates), summarize(p.l.deletes)
			fmt.Fprintf(os.Stderr, "bench: load run %d: %s: %d creates avg %s p99 %s max %s; %d deletes avg %s p99 %s max %s; %d errors, %d warnings, %d connections, %.0f requests/s\n",
				run+1, p.name, cs.n, msf(cs.avg), msf(cs.p99), msf(cs.max), ds.n, msf(ds.avg), msf(ds.p99), msf(ds.max),
				p.l.errors, p.l.warnings, p.l.dials, float64(cs.n+ds.n)/p.l.elapsed.Seconds())
			fmt.Fprintf(os.Stderr, "bench: load run %d: %s: CPU in %v: kube-apiserver %v, etcd %v, moat %v, clients %v; %s per request\n",
				run+1, p.name, p.l.elapsed.Round(time.Millisecond), p.l.cpu["kube-apiserver"], p.l.cpu["etcd"], p.l.cpu["moat"], p.l.cpu["bench"], msf(p.l.cpuPerRequest()))
			errs += p.l.errors
			warns += int(p.l.warnings)
			firstErrs = append(firstErrs, p.l.firstErrors...)
		}
		fmt.Fprintf(os.Stderr, "bench: load run %d: moat's writes during its phase: %s; its reads: %s\n", run+1, r.moatWrites, countString(r.moatWrites.reads))
		m, b := summarize(r.moat.creates), summarize(r.base.creates)
		mc, bc = append(mc, m), append(bc, b)
		md, bd = append(md, summarize(r.moat.deletes)), append(bd, summarize(r.base.deletes))
		mrate = append(mrate, float64(len(r.moat.creates)+len(r.moat.deletes))/r.moat.elapsed.Seconds())
		brate = append(brate, float64(len(r.base.creates)+len(r.base.deletes))/r.base.elapsed.Seconds())
		mcpu, bcpu = append(mcpu, r.moat.cpuPerRequest()), append(bcpu, r.base.cpuPerRequest())
		added = append(added, float64(m.avg-b.avg)/float64(time.Millisecond))
		addedRel = append(addedRel, float64(m.avg)/float64(b.avg))
	}
	counts := func(ss []stats) string {
		out := make([]int64, len(ss))
		for i, s := range ss {
			out[i] = int64(s.n)
		}
		return fmt.Sprint(median(out))
	}
	get := func(ss []stats, f func(stats) time.Duration) []time.Duration {
		out := make([]time.Duration, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		return out
	}
	avg := func(s stats) time.Duration { return s.avg }
	p99 := func(s stats) time.Duration { return s.p99 }
	mx := func(s stats) time.Duration { return s.max }
	// med formats the median over the runs, with the range when there are
	// several.
	med := func(xs []time.Duration) string {
		if len(xs) == 1 {
			return msf(xs[0])
		}
		return msf(median(xs)) + " (" + spread(xs, msf) + ")"
	}
	conns := "one connection each"
	if o.loadShared {
		conns = "one shared HTTP/2 connection"
	}
	shape := fmt.Sprintf("%d clients (%s), %v", o.loadClients, conns, o.loadDuration)
	loop := "closed loop"
	if o.loadRate > 0 {
		loop = fmt.Sprintf("open loop, %.0f creates/s", o.loadRate)
		shape += ", " + loop
	}
	record(figure{section: "load", name: shape + ": creates / deletes",
		value:    fmt.Sprintf("%s / %s (%.0f requests/s)", counts(mc), counts(md), median(mrate)),
		baseline: fmt.Sprintf("without moat %s / %s (%.0f requests/s)", counts(bc), counts(bd), median(brate))})
	record(figure{section: "load", name: "allowlist create: average",
		value: med(get(mc, avg)), baseline: "without moat " + med(get(bc, avg)) + "; Kyverno (100 VUs, 1 replica) " + kyvernoAvg})
	record(figure{section: "load", name: "allowlist create: p99",
		value: med(get(mc, p99)), baseline: "without moat " + med(get(bc, p99))})
	record(figure{section: "load", name: "allowlist create: max",
		value: med(get(mc, mx)), baseline: "without moat " + med(get(bc, mx)) + "; Kyverno " + kyvernoMax})
	tput := make([]float64, len(mrate))
	for i := range mrate {
		tput[i] = mrate[i] / brate[i]
	}
	record(figure{section: "load", name: "throughput ratio moat / without moat (" + loop + ")", value: fmt.Sprintf("%.2f×%s", median(tput), rangeOf(tput, "%.2f"))})
	record(figure{section: "load", name: "CPU per request: kube-apiserver + etcd + moat",
		value: med(mcpu), baseline: "without moat " + med(bcpu)})
	a := median(added)
	record(figure{section: "load", name: "added by moat to the average create",
		value:  fmt.Sprintf("%+.2f ms%s, ratio %.2f×", a, rangeOf(added, "%+.2f"), median(addedRel)),
		target: "< 5 ms", met: met(a < 5)})
	record(figure{section: "load", name: "allowlist delete (no webhook): average / p99 / max",
		value:    med(get(md, avg)) + " / " + med(get(md, p99)) + " / " + med(get(md, mx)),
		baseline: "without moat " + med(get(bd, avg)) + " / " + med(get(bd, p99)) + " / " + med(get(bd, mx))})
	record(figure{section: "load", name: "errors (all runs; a refused create is one) / warnings",
		value: fmt.Sprintf("%d / %d", errs, warns), target: "0 / 0", met: met(errs == 0 && warns == 0)})
	want := int64(o.loadClients)
	if o.loadShared {
		want = 1
	}
	record(figure{section: "load", name: "TCP connections the clients opened (last run, both phases)",
		value: fmt.Sprint(last.conns), target: fmt.Sprintf("= %d", want), met: met(last.conns == want)})
	record(figure{section: "load", name: "moat's writes during its phase (last run)",
		value: fmt.Sprintf("%d (%s; %d failed)", last.moatWrites.total, last.moatWrites, last.moatWrites.failed)})
	if errs > 0 {
		return fmt.Errorf("%d requests failed, e.g. %s", errs, strings.Join(firstErrs, "; "))
	}
	if warns > 0 {
		return errors.New("the API server returned warnings for the allowlists: the load is not the intended one")
	}
	return nil
}

// rangeOf formats " (min–max)" of xs, or nothing for one value.
func rangeOf(xs []float64, format string) string {
	if len(xs) < 2 {
		return ""
	}
	return " (" + spread(xs, func(v float64) string { return fmt.Sprintf(format, v) }) + ")"
}
