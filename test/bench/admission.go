package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/certs"
	"moat.dev/moat/test/workload"
	"moat.dev/moat/webhook"
)

// loadResult is bin/loadgen's -json output.
type loadResult struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"firstError"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50ms"`
	P90        float64 `json:"p90ms"`
	P99        float64 `json:"p99ms"`
}

func runLoad(ctx context.Context, o *options, url, caFile, body string, concurrency int, rate float64) (loadResult, error) {
	var r loadResult
	cmd := exec.CommandContext(ctx, o.loadgen, "-json", "-url", url, "-ca", caFile, "-body", body,
		"-concurrency", strconv.Itoa(concurrency), "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"-duration", o.duration.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		return r, fmt.Errorf("loadgen against %s: %v (%v); stderr: %s", url, err, jerr, stderr.String())
	}
	if err != nil || r.Errors > 0 {
		return r, fmt.Errorf("loadgen against %s: %d errors of %d requests, first: %s", url, r.Errors, r.Requests, r.FirstError)
	}
	return r, nil
}

// benchAdmission loads moat's allowlist webhook and the no-op baseline.
func benchAdmission(ctx context.Context, o *options) error {
	if _, err := os.Stat(o.loadgen); err != nil {
		return fmt.Errorf("%s is missing: go build -o bin/loadgen ./test/loadgen", o.loadgen)
	}
	c, err := startCluster(o, "admission")
	defer c.stop()
	if err != nil {
		return err
	}
	// The Services the allowlist names, so that moat's lookups hit its cache.
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "backends"}}); err != nil {
		return err
	}
	for _, svc := range workload.Services("backends") {
		if err := c.admin.Create(ctx, svc); err != nil {
			return err
		}
	}
	body, err := workload.TenRuleAllowlistReview("frontend", "backends")
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(c.dir, "review.json")
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		return err
	}
	caFile := filepath.Join(c.certDir, certs.CAFile)

	moat, moatURL, err := startMoat(ctx, o, c, "moat-serve-admission")
	if err != nil {
		return err
	}
	defer moat.stop()
	noop, noopURL, err := startNoop(ctx, c)
	if err != nil {
		return err
	}
	defer noop.stop()
	moatURL += webhook.ValidateNetworkAllowlistPath
	noopURL += noopPath

	// Alternate the servers run by run, so that drift in the machine's
	// load hits both alike.
	var (
		moatTput, noopTput, ratios   []float64
		moatP50, moatP90, moatP99    []float64
		noopP50, noopP90, noopP99    []float64
		moatClosedP99, noopClosedP99 []float64
	)
	for i := range o.runs {
		order := []string{"moat", "noop"}
		if i%2 == 1 {
			order = []string{"noop", "moat"}
		}
		var m, n loadResult
		for _, which := range order {
			url := map[string]string{"moat": moatURL, "noop": noopURL}[which]
			r, err := runLoad(ctx, o, url, caFile, bodyFile, o.concurrency, 0)
			if err != nil {
				return err
			}
			if which == "moat" {
				m = r
			} else {
				n = r
			}
		}
		moatTput, noopTput = append(moatTput, m.Throughput), append(noopTput, n.Throughput)
		moatClosedP99, noopClosedP99 = append(moatClosedP99, m.P99), append(noopClosedP99, n.P99)
		ratios = append(ratios, m.Throughput/n.Throughput)
		fmt.Fprintf(os.Stderr, "bench: admission run %d closed loop: moat %.0f req/s, no-op %.0f req/s (%.2f×)\n", i+1, m.Throughput, n.Throughput, m.Throughput/n.Throughput)

		for _, which := range order {
			url := map[string]string{"moat": moatURL, "noop": noopURL}[which]
			r, err := runLoad(ctx, o, url, caFile, bodyFile, o.rateWorkers, o.rate)
			if err != nil {
				return err
			}
			if which == "moat" {
				moatP50, moatP90, moatP99 = append(moatP50, r.P50), append(moatP90, r.P90), append(moatP99, r.P99)
			} else {
				noopP50, noopP90, noopP99 = append(noopP50, r.P50), append(noopP90, r.P90), append(noopP99, r.P99)
			}
			fmt.Fprintf(os.Stderr, "bench: admission run %d at %.0f req/s: %s p50 %.2f p90 %.2f p99 %.2f ms (%.0f req/s achieved)\n", i+1, o.rate, which, r.P50, r.P90, r.P99, r.Throughput)
		}
	}
	if err := moat.exited(); err != nil {
		return err
	}
	reqps := func(v float64) string { return fmt.Sprintf("%.0f req/s", v) }
	msf := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	ratio := median(ratios)
	record(figure{section: "admission", name: fmt.Sprintf("HTTPS throughput, 10-rule allowlist, %d connections", o.concurrency),
		value: reqps(median(moatTput)) + " (" + spread(moatTput, reqps) + ")", baseline: "no-op webhook " + reqps(median(noopTput)) + " (" + spread(noopTput, reqps) + ")"})
	record(figure{section: "admission", name: "throughput ratio moat / no-op", value: fmt.Sprintf("%.2f× (%s)", ratio, spread(ratios, func(v float64) string { return fmt.Sprintf("%.2f", v) })),
		target: "≥ 0.85×", met: met(ratio >= 0.85)})
	record(figure{section: "admission", name: fmt.Sprintf("closed-loop p99, %d connections", o.concurrency), value: msf(median(moatClosedP99)), baseline: "no-op " + msf(median(noopClosedP99))})
	p99 := median(moatP99)
	record(figure{section: "admission", name: fmt.Sprintf("latency at %.0f req/s p50/p90", o.rate),
		value: msf(median(moatP50)) + " / " + msf(median(moatP90)), baseline: "no-op " + msf(median(noopP50)) + " / " + msf(median(noopP90))})
	record(figure{section: "admission", name: fmt.Sprintf("latency at %.0f req/s p99", o.rate),
		value: msf(p99) + " (" + spread(moatP99, msf) + ")", baseline: "no-op " + msf(median(noopP99)) + " (" + spread(noopP99, msf) + ")", target: "< 3 ms", met: met(p99 < 3)})
	return nil
}
