package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/workload"
)

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, workers, n int, f func(i int) error) error {
	var (
		next  atomic.Int64
		first atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// watcher follows every NetworkPolicy through an informer and records when
// all wanted ones are in place with the wanted spec.
type watcher struct {
	mu      sync.Mutex
	want    map[string]networkingv1.NetworkPolicySpec
	matched map[string]bool
	// groups counts, by key prefix, the wanted policies still missing;
	// done is closed when a group reaches zero.
	missing map[string]int
	done    map[string]chan time.Time
}

func newWatcher() *watcher {
	return &watcher{want: map[string]networkingv1.NetworkPolicySpec{}, matched: map[string]bool{},
		missing: map[string]int{}, done: map[string]chan time.Time{}}
}

// expect registers the wanted policies of a group (a namespace prefix).
func (w *watcher) expect(group string, policies []networkingv1.NetworkPolicy) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done[group] == nil {
		w.done[group] = make(chan time.Time, 1)
	}
	for _, np := range policies {
		// A policy expected again (with a new spec) is missing until it
		// is seen with that spec.
		key := np.Namespace + "/" + np.Name
		if _, wanted := w.want[key]; !wanted || w.matched[key] {
			w.missing[group]++
		}
		w.want[key] = np.Spec
		w.matched[key] = false
	}
}

func (w *watcher) observe(obj any, deleted bool) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		if d, isTomb := obj.(toolscache.DeletedFinalStateUnknown); isTomb {
			np, ok = d.Obj.(*networkingv1.NetworkPolicy)
		}
		if !ok {
			return
		}
	}
	key := np.Namespace + "/" + np.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	spec, wanted := w.want[key]
	if !wanted {
		return
	}
	group := np.Namespace[:strings.IndexByte(np.Namespace, '-')+1]
	now := !deleted && equality.Semantic.DeepEqual(spec, np.Spec)
	if now == w.matched[key] {
		return
	}
	w.matched[key] = now
	if now {
		w.missing[group]--
		if w.missing[group] == 0 {
			w.done[group] <- time.Now()
		}
	} else {
		w.missing[group]++
	}
}

func (w *watcher) wait(ctx context.Context, group string, timeout time.Duration) (time.Time, error) {
	select {
	case t := <-w.done[group]:
		return t, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(timeout):
		w.mu.Lock()
		defer w.mu.Unlock()
		return time.Time{}, fmt.Errorf("%d NetworkPolicies of %s* still missing or different after %v", w.missing[group], group, timeout)
	}
}

func startWatcher(ctx context.Context, c *cluster) (*watcher, error) {
	w := newWatcher()
	informers, err := cache.New(c.cfg, cache.Options{Scheme: newScheme()})
	if err != nil {
		return nil, err
	}
	inf, err := informers.GetInformer(ctx, &networkingv1.NetworkPolicy{})
	if err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(obj, false) },
		UpdateFunc: func(_, obj any) { w.observe(obj, false) },
		DeleteFunc: func(obj any) { w.observe(obj, true) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the benchmark's NetworkPolicy informer did not sync")
	}
	return w, nil
}

// plainLabel is the label the baseline client sets: as long as moat's, and
// selected by none of moat's webhooks.
const plainLabel = "bench.moat.dev/isolated"

// scaleResult is one run of the scale benchmark.
type scaleResult struct {
	moatTime, baseTime time.Duration
	// labelTime is how long the label requests took (they return once the
	// mutating webhook has written the default policies).
	labelTime time.Duration
	// labelP50 is the median latency of one label request.
	labelP50              time.Duration
	moatWrites, baseWrite writes
	neededPolicies        int
	hwm                   int64
	// moatCPU and baseCPU say how much CPU each process used from the
	// start of a phase until every policy existed; apiCPU the API server's
	// share of each.
	moatCPU, baseCPU       string
	moatAPICPU, baseAPICPU time.Duration
}

func scaleRun(ctx context.Context, o *options, run int) (*scaleResult, error) {
	c, err := startCluster(o, "scale")
	defer c.stop()
	if err != nil {
		return nil, err
	}
	// Stops the benchmark's informers before the control plane.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	moat, url, err := startMoat(ctx, o, c, "moat-serve-scale")
	if err != nil {
		return nil, err
	}
	defer moat.stop()
	if err := testenv.InstallWebhooks(ctx, c.admin, o.repo, url, c.caPEM); err != nil {
		return nil, err
	}
	w, err := startWatcher(ctx, c)
	if err != nil {
		return nil, err
	}
	baseline, err := client.New(c.baseline, client.Options{Scheme: newScheme()})
	if err != nil {
		return nil, err
	}

	n := o.namespaces
	moatNS := func(i int) string { return fmt.Sprintf("scale-%04d", i) }
	baseNS := func(i int) string { return fmt.Sprintf("plain-%04d", i) }
	var moatPolicies, basePolicies []networkingv1.NetworkPolicy
	for i := range n {
		ps, err := workload.ExpectedPolicies(moatNS(i))
		if err != nil {
			return nil, err
		}
		moatPolicies = append(moatPolicies, ps...)
		ps, err = workload.ExpectedPolicies(baseNS(i))
		if err != nil {
			return nil, err
		}
		// The plain client writes the same specs under its own names,
		// without moat's label, so that moat leaves them alone.
		for _, p := range ps {
			basePolicies = append(basePolicies, networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: "plain-" + p.Name},
				Spec:       p.Spec,
			})
		}
	}
	w.expect("scale-", moatPolicies)
	w.expect("plain-", basePolicies)

	fmt.Fprintf(os.Stderr, "bench: scale run %d: creating %d projects (Namespace, Service, allowlist) and %d plain namespaces\n", run+1, n, n)
	if err := parallel(ctx, o.workers, n, func(i int) error {
		svc, al := workload.Project(moatNS(i))
		for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moatNS(i)}}, svc, al,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: baseNS(i)}}} {
			if err := c.admin.Create(ctx, obj); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Let moat settle: every allowlist reports IsolationDisabled.
	if err := waitAllowlists(ctx, c, n, v1alpha1.ReasonIsolationDisabled, 180*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)

	res := &scaleResult{neededPolicies: len(moatPolicies)}
	moatPhase := func() error {
		off, err := c.auditOffset()
		if err != nil {
			return err
		}
		profiled := o.profile(c, fmt.Sprintf("scale-%d-moat", run+1))
		defer profiled()
		cpu := cpuTimes()
		start := time.Now()
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+v1alpha1.IsolationLabel+`":"true"}}}`))
		latencies := make([]time.Duration, n)
		if err := parallel(ctx, o.workers, n, func(i int) error {
			t := time.Now()
			err := c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: moatNS(i)}}, patch)
			latencies[i] = time.Since(t)
			return err
		}); err != nil {
			return err
		}
		res.labelP50 = median(latencies)
		res.labelTime = time.Since(start)
		end, err := w.wait(ctx, "scale-", 300*time.Second)
		if err != nil {
			return err
		}
		res.moatCPU, res.moatAPICPU = cpuSince(cpu), cpuTimes()["kube-apiserver"]-cpu["kube-apiserver"]
		res.moatTime = end.Sub(start)
		if err := waitAllowlists(ctx, c, n, v1alpha1.ReasonApplied, 120*time.Second); err != nil {
			return err
		}
		// Late writes (retries, duplicates) would show up here.
		time.Sleep(5 * time.Second)
		res.moatWrites, err = c.writesSince(off, moatUser)
		return err
	}
	// The fair baseline: what a user does without moat. The same client
	// identity makes the same N label requests (a label that no moat
	// webhook selects) and creates the same 3·N NetworkPolicies, per
	// namespace one after the other, at the same concurrency.
	basePhase := func() error {
		off, err := c.auditOffset()
		if err != nil {
			return err
		}
		profiled := o.profile(c, fmt.Sprintf("scale-%d-plain", run+1))
		defer profiled()
		cpu := cpuTimes()
		start := time.Now()
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+plainLabel+`":"true"}}}`))
		perNS := len(basePolicies) / n
		if err := parallel(ctx, o.workers, n, func(i int) error {
			if err := baseline.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: baseNS(i)}}, patch); err != nil {
				return err
			}
			for _, np := range basePolicies[i*perNS : (i+1)*perNS] {
				if err := baseline.Create(ctx, np.DeepCopy()); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		end, err := w.wait(ctx, "plain-", 300*time.Second)
		if err != nil {
			return err
		}
		res.baseCPU, res.baseAPICPU = cpuSince(cpu), cpuTimes()["kube-apiserver"]-cpu["kube-apiserver"]
		res.baseTime = end.Sub(start)
		res.baseWrite, err = c.writesSince(off, baselineUser)
		return err
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
	if err := moat.exited(); err != nil {
		return nil, err
	}
	if res.hwm, _, err = moat.memory(); err != nil {
		return nil, err
	}
	return res, nil
}

// waitAllowlists waits until n allowlists report Ready with reason and the
// current generation.
func waitAllowlists(ctx context.Context, c *cluster, n int, reason string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list := &v1alpha1.NetworkAllowlistList{}
		if err := c.admin.List(ctx, list); err != nil {
			return err
		}
		ok := 0
		for _, al := range list.Items {
			cond := meta.FindStatusCondition(al.Status.Conditions, v1alpha1.ConditionReady)
			if cond != nil && cond.Reason == reason && al.Status.ObservedGeneration == al.Generation {
				ok++
			}
		}
		if ok >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d allowlists report %s after %v", ok, n, reason, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// servicesRun measures moat's peak RSS with o.services Services in its
// cache, after it has isolated 10 namespaces.
func servicesRun(ctx context.Context, o *options) (hwm, rss int64, err error) {
	c, err := startCluster(o, "services")
	defer c.stop()
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	moat, url, err := startMoat(ctx, o, c, "moat-serve-services")
	if err != nil {
		return 0, 0, err
	}
	defer moat.stop()
	if err := testenv.InstallWebhooks(ctx, c.admin, o.repo, url, c.caPEM); err != nil {
		return 0, 0, err
	}
	w, err := startWatcher(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	const perNamespace = 100
	namespaces := (o.services + perNamespace - 1) / perNamespace
	if err := parallel(ctx, o.workers, namespaces, func(i int) error {
		return c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%03d", i)}})
	}); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(os.Stderr, "bench: creating %d Services\n", o.services)
	if err := parallel(ctx, o.workers, o.services, func(i int) error {
		svc, _ := workload.Project(fmt.Sprintf("svc-%03d", i/perNamespace))
		svc.Name = fmt.Sprintf("api-%03d", i%perNamespace)
		svc.Spec.Selector = map[string]string{"app": svc.Name}
		return c.admin.Create(ctx, svc)
	}); err != nil {
		return 0, 0, err
	}
	// Ten projects isolated on top, so that moat does its work with the
	// full cache.
	const projects = 10
	var want []networkingv1.NetworkPolicy
	for i := range projects {
		ps, err := workload.ExpectedPolicies(fmt.Sprintf("scale-%04d", i))
		if err != nil {
			return 0, 0, err
		}
		want = append(want, ps...)
	}
	// Registered before the first policy can appear.
	w.expect("scale-", want)
	for i := range projects {
		ns := fmt.Sprintf("scale-%04d", i)
		svc, al := workload.Project(ns)
		for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.IsolationLabel: "true"}}}, svc, al} {
			if err := c.admin.Create(ctx, obj); err != nil {
				return 0, 0, err
			}
		}
	}
	if _, err := w.wait(ctx, "scale-", 120*time.Second); err != nil {
		return 0, 0, err
	}
	time.Sleep(3 * time.Second)
	if err := moat.exited(); err != nil {
		return 0, 0, err
	}
	return moat.memory()
}

// benchScale runs the scale benchmark -scale-runs times and the Services
// memory run once.
func benchScale(ctx context.Context, o *options) error {
	var moatTimes, baseTimes, labelTimes, labelP50s []time.Duration
	var ratios, cpuRatios []float64
	var moatAPI, baseAPI []time.Duration
	var hwms []int64
	var last *scaleResult
	for run := range o.scaleRuns {
		r, err := scaleRun(ctx, o, run)
		if err != nil {
			return fmt.Errorf("scale run %d: %w", run+1, err)
		}
		fmt.Fprintf(os.Stderr, "bench: scale run %d: moat %v (label requests done after %v, median label request %v), plain client %v; moat writes: %s; plain client writes: %s; moat peak RSS %s\n",
			run+1, r.moatTime, r.labelTime, r.labelP50, r.baseTime, r.moatWrites, r.baseWrite, mib(r.hwm))
		fmt.Fprintf(os.Stderr, "bench: scale run %d: moat reads: %s\n", run+1, countString(r.moatWrites.reads))
		fmt.Fprintf(os.Stderr, "bench: scale run %d: CPU until every policy existed: moat phase: %s; plain client phase: %s\n", run+1, r.moatCPU, r.baseCPU)
		moatTimes, baseTimes = append(moatTimes, r.moatTime), append(baseTimes, r.baseTime)
		labelTimes, labelP50s = append(labelTimes, r.labelTime), append(labelP50s, r.labelP50)
		ratios = append(ratios, float64(r.moatTime)/float64(r.baseTime))
		moatAPI, baseAPI = append(moatAPI, r.moatAPICPU), append(baseAPI, r.baseAPICPU)
		if r.baseAPICPU > 0 {
			cpuRatios = append(cpuRatios, float64(r.moatAPICPU)/float64(r.baseAPICPU))
		}
		hwms = append(hwms, r.hwm)
		last = r
	}
	n := o.namespaces
	ratio := median(ratios)
	record(figure{section: "scale", name: fmt.Sprintf("%d namespaces labelled at once: time to all policies", n),
		value: ms(median(moatTimes)) + " (" + spread(moatTimes, ms) + ")", baseline: "plain client " + ms(median(baseTimes)) + " (" + spread(baseTimes, ms) + ")"})
	record(figure{section: "scale", name: "… of which the label requests (median request)",
		value: ms(median(labelTimes)) + " (" + ms(median(labelP50s)) + " each)"})
	record(figure{section: "scale", name: "time ratio moat / plain client (labels + policies)", value: fmt.Sprintf("%.2f× (%s)", ratio, spread(ratios, func(v float64) string { return fmt.Sprintf("%.2f", v) })),
		target: "≤ 1.50×", met: met(ratio <= 1.5)})
	if len(cpuRatios) > 0 {
		secs := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
		record(figure{section: "scale", name: "API server CPU until every policy existed",
			value:    secs(median(moatAPI)) + " (" + spread(moatAPI, secs) + fmt.Sprintf("), %.2f× the plain client's", median(cpuRatios)),
			baseline: "plain client " + secs(median(baseAPI)) + " (" + spread(baseAPI, secs) + ")"})
	}
	npWrites, events := 0, 0
	for k, v := range last.moatWrites.byKind {
		switch {
		case strings.HasSuffix(k, " networkpolicies"):
			npWrites += v
		case strings.HasSuffix(k, " events"):
			events += v
		}
	}
	record(figure{section: "scale", name: "NetworkPolicy writes by moat (last run)", value: fmt.Sprint(npWrites),
		baseline: fmt.Sprintf("plain client %d", last.baseWrite.count("create networkpolicies")), target: fmt.Sprintf("= %d policies needed", last.neededPolicies), met: met(npWrites == last.neededPolicies)})
	statusWrites := last.moatWrites.count("patch networkallowlists/status") + last.moatWrites.count("update networkallowlists/status")
	record(figure{section: "scale", name: "allowlist status writes by moat (last run)", value: fmt.Sprint(statusWrites),
		target: fmt.Sprintf("= %d allowlists", n), met: met(statusWrites == n)})
	record(figure{section: "scale", name: "Events recorded by moat (last run)", value: fmt.Sprint(events),
		target: fmt.Sprintf("≤ %d (one per namespace)", n), met: met(events <= n)})
	record(figure{section: "scale", name: "all writes by moat (last run)", value: fmt.Sprintf("%d (%s; %d failed)", last.moatWrites.total, last.moatWrites, last.moatWrites.failed),
		baseline: fmt.Sprintf("plain client %d (%s)", last.baseWrite.total, last.baseWrite),
		target:   fmt.Sprintf("= %d needed + ≤ %d Events, none failed", last.neededPolicies+n, n),
		met:      met(last.moatWrites.failed == 0 && last.moatWrites.total <= last.neededPolicies+n+n && npWrites == last.neededPolicies && statusWrites == n && events <= n)})
	reads := 0
	for _, v := range last.moatWrites.reads {
		reads += v
	}
	record(figure{section: "scale", name: "reads by moat from the API server (last run)", value: fmt.Sprintf("%d (%s)", reads, countString(last.moatWrites.reads))})
	peak := median(hwms)
	record(figure{section: "scale", name: fmt.Sprintf("moat peak RSS, %d projects", n), value: mib(peak) + " (" + spread(hwms, mib) + ")",
		target: "< 150.0 MiB", met: met(peak < 150<<20)})

	if o.services == 0 {
		return nil
	}
	hwm, rss, err := servicesRun(ctx, o)
	if err != nil {
		return fmt.Errorf("services run: %w", err)
	}
	record(figure{section: "scale", name: fmt.Sprintf("moat peak RSS, %d Services cached", o.services), value: mib(hwm) + " (RSS now " + mib(rss) + ")",
		target: "< 150.0 MiB", met: met(hwm < 150<<20)})
	return nil
}
