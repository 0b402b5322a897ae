package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"moat.dev/moat/test/corpus"
)

// Kyverno CLI figures quoted by issue 8 (same kind of 2-core machine, not
// measured here: Kyverno is not part of this repository).
var kyverno = map[int]string{1000: "Kyverno CLI ~1.7 s / 280 MiB (issue 8)", 10000: "Kyverno CLI ~10 s / 700 MiB (issue 8)"}

// benchValidate runs `moat validate` on the corpus of each size, -runs times.
func benchValidate(ctx context.Context, o *options) error {
	dir, err := os.MkdirTemp("", "moat-bench-validate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// In-run baseline: kubectl reading and decoding the same files
	// (create --dry-run=client: no object is sent), against a control plane
	// that knows the CRD.
	c, err := startCluster(o, "validate")
	defer c.stop()
	if err != nil {
		return err
	}
	kubeconfig, err := c.adminKubeconfig()
	if err != nil {
		return err
	}
	kubectl := filepath.Join(o.binDir, "kubectl")

	for _, s := range strings.Split(o.validateNPs, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10 {
			return fmt.Errorf("-validate-sizes: %q is not a size of at least 10", s)
		}
		opts := corpus.Options{NetworkPolicies: n}
		counts := corpus.CountsOf(opts)
		corpusDir := filepath.Join(dir, s)
		// A rendered repository: files of 500 documents.
		if _, err := corpus.WriteDir(corpusDir, corpus.Documents(opts), 500); err != nil {
			return err
		}
		var walls []time.Duration
		var rss []int64
		for range o.runs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cmd := exec.CommandContext(ctx, o.moat, "validate", "--tenant-network-policies=off", corpusDir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			wall := time.Since(start)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				return fmt.Errorf("moat validate on %d NetworkPolicies: %v (want exit status 1: the SCTP policies are rejected); stderr: %s", n, err, stderr.String())
			}
			if lines := strings.Count(stdout.String(), "\n"); lines != counts.SCTPPolicies {
				return fmt.Errorf("moat validate on %d NetworkPolicies printed %d findings, want %d", n, lines, counts.SCTPPolicies)
			}
			walls = append(walls, wall)
			rss = append(rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss<<10)
		}
		var kWalls []time.Duration
		var kRSS []int64
		for range min(o.runs, 3) {
			cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "create", "--dry-run=client", "--validate=false", "-o", "name", "-R", "-f", corpusDir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("kubectl create --dry-run=client on %d NetworkPolicies: %v; stderr: %.500s", n, err, stderr.String())
			}
			kWalls = append(kWalls, time.Since(start))
			kRSS = append(kRSS, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss<<10)
			if lines := strings.Count(stdout.String(), "\n"); lines != counts.Total() {
				return fmt.Errorf("kubectl printed %d objects, want %d", lines, counts.Total())
			}
		}
		kubectlFigure := fmt.Sprintf("kubectl create --dry-run=client %s / %s; %s", ms(median(kWalls)), mib(median(kRSS)), kyverno[n])
		name := fmt.Sprintf("%d NetworkPolicies + %d allowlists (%d objects)", counts.NetworkPolicies, counts.Allowlists, counts.Total())
		wallTarget, rssTarget := 200*time.Millisecond, int64(0)
		if n >= 10000 {
			wallTarget, rssTarget = time.Second, 100<<20
		}
		wall, peak := median(walls), median(rss)
		record(figure{section: "validate", name: name + " wall", value: ms(wall) + " (" + spread(walls, ms) + ")",
			baseline: kubectlFigure, target: "< " + ms(wallTarget), met: met(wall < wallTarget)})
		f := figure{section: "validate", name: name + " peak RSS", value: mib(peak) + " (" + spread(rss, mib) + ")", baseline: kubectlFigure}
		if rssTarget > 0 {
			f.target, f.met = "< "+mib(rssTarget), met(peak < rssTarget)
		}
		record(f)
	}
	return nil
}
