package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"moat.dev/moat/api/v1alpha1"
	"moat.dev/moat/policy"
	"moat.dev/moat/test/testenv"
	"moat.dev/moat/test/workload"
)

// benchLabel measures the latency a user feels when isolating one
// namespace on an idle cluster with moat serving and its production webhook
// configurations installed: -label-requests sequential label requests
// moat.dev/isolated=true, each on its own existing namespace (with a Service
// and an allowlist, like the scale run), against as many sequential requests
// setting plainLabel (selected by none of moat's webhooks) on other
// namespaces of the same shape, by the same client, the two interleaved.
// Then the same with a real `kubectl label` process for -label-kubectl
// namespaces of each kind.
func benchLabel(ctx context.Context, o *options) error {
	c, err := startCluster(o, "label")
	defer c.stop()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	moat, url, err := startMoat(ctx, o, c, "moat-serve-label")
	if err != nil {
		return err
	}
	defer moat.stop()
	if err := testenv.InstallWebhooks(ctx, c.admin, o.repo, url, c.caPEM); err != nil {
		return err
	}

	// One warm-up namespace of each kind, then the requests, then kubectl's.
	n, k := o.labelRequests, o.labelKubectl
	total := 1 + n + k
	moatNS := func(i int) string { return fmt.Sprintf("label-%03d", i) }
	plainNS := func(i int) string { return fmt.Sprintf("plain-%03d", i) }
	fmt.Fprintf(os.Stderr, "bench: label: creating %d projects of each kind (Namespace, Service, allowlist)\n", total)
	if err := parallel(ctx, o.workers, total, func(i int) error {
		for _, name := range []string{moatNS(i), plainNS(i)} {
			svc, al := workload.Project(name)
			for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, svc, al} {
				if err := c.admin.Create(ctx, obj); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := waitAllowlists(ctx, c, 2*total, v1alpha1.ReasonIsolationDisabled, 120*time.Second); err != nil {
		return err
	}
	// Idle: moat has nothing left to do.
	time.Sleep(2 * time.Second)

	label := func(key string) client.Patch {
		return client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+key+`":"true"}}}`))
	}
	request := func(ns, key string) (time.Duration, error) {
		start := time.Now()
		err := c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, label(key))
		return time.Since(start), err
	}
	kubeconfig, err := c.adminKubeconfig()
	if err != nil {
		return err
	}
	kubectl := func(ns, key string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(o.binDir, "kubectl"), "--kubeconfig="+kubeconfig,
			"--cache-dir="+filepath.Join(c.dir, "kube-cache"), "label", "namespace", ns, key+"=true")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("kubectl label namespace %s %s=true: %w: %s", ns, key, err, out)
		}
		return time.Since(start), nil
	}
	// measure runs count requests of each kind from index first, moat's
	// and the plain one alternating which goes first.
	measure := func(do func(ns, key string) (time.Duration, error), first, count int) (moatTimes, plainTimes []time.Duration, err error) {
		for i := first; i < first+count; i++ {
			steps := []func() error{
				func() error {
					d, err := do(moatNS(i), v1alpha1.IsolationLabel)
					moatTimes = append(moatTimes, d)
					return err
				},
				func() error { d, err := do(plainNS(i), plainLabel); plainTimes = append(plainTimes, d); return err },
			}
			if i%2 == 1 {
				slices.Reverse(steps)
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return nil, nil, err
				}
			}
		}
		return moatTimes, plainTimes, nil
	}
	// Warm-up: connections, kubectl's discovery cache.
	if _, _, err := measure(kubectl, 0, 1); err != nil {
		return err
	}
	profiled := o.profile(c, "label-requests")
	moatTimes, plainTimes, err := measure(request, 1, n)
	profiled()
	if err != nil {
		return err
	}
	moatKubectl, plainKubectl, err := measure(kubectl, 1+n, k)
	if err != nil {
		return err
	}
	// DESIGN §4: the default isolation policies exist when the request
	// that labels the namespace returns. Each labelled namespace is checked
	// once, now (every request has returned).
	defaults := []string{policy.DefaultIngressPolicyName}
	for i := 1; i < total; i++ {
		for _, name := range defaults {
			if err := c.admin.Get(ctx, client.ObjectKey{Namespace: moatNS(i), Name: name}, &networkingv1.NetworkPolicy{}); err != nil {
				return fmt.Errorf("namespace %s after its label request: %w", moatNS(i), err)
			}
		}
	}
	if err := moat.exited(); err != nil {
		return err
	}

	latency := func(what string, m, p []time.Duration, ceiling time.Duration) {
		m50, p50 := percentile(m, 50), percentile(p, 50)
		m99, p99 := percentile(m, 99), percentile(p, 99)
		r50, r99 := float64(m50)/float64(p50), float64(m99)/float64(p99)
		record(figure{section: "label", name: fmt.Sprintf("%s, p50 of %d", what, len(m)), value: msf(m50),
			baseline: "plain label " + msf(p50), target: "≤ 2× baseline", met: met(r50 <= 2)})
		record(figure{section: "label", name: "… ratio moat / plain label, p50", value: fmt.Sprintf("%.2f×", r50), target: "≤ 2.00×", met: met(r50 <= 2)})
		p99Target, p99Met := "≤ 2× baseline", r99 <= 2
		if ceiling > 0 {
			p99Target, p99Met = fmt.Sprintf("≤ 2× baseline and < %s", msf(ceiling)), r99 <= 2 && m99 < ceiling
		}
		record(figure{section: "label", name: fmt.Sprintf("%s, p99 of %d", what, len(m)), value: msf(m99) + " (max " + msf(slices.Max(m)) + ")",
			baseline: "plain label " + msf(p99) + " (max " + msf(slices.Max(p)) + ")", target: p99Target, met: met(p99Met)})
		record(figure{section: "label", name: "… ratio moat / plain label, p99", value: fmt.Sprintf("%.2f×", r99), target: "≤ 2.00×", met: met(r99 <= 2)})
	}
	latency("one label request (client-go), idle cluster", moatTimes, plainTimes, 50*time.Millisecond)
	if k > 0 {
		latency("`kubectl label ns` process, idle cluster", moatKubectl, plainKubectl, 0)
	}
	return nil
}

// percentile returns the p-th percentile of xs (nearest rank).
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}
