package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			// Exit status 1: the SCTP policies are rejected.
			u, err := timed(ctx, 1, o.moat, "validate", "--tenant-network-policies=off", corpusDir)
			if err != nil {
				return fmt.Errorf("moat validate on %d NetworkPolicies: %w", n, err)
			}
			if lines := strings.Count(u.stdout, "\n"); lines != counts.SCTPPolicies {
				return fmt.Errorf("moat validate on %d NetworkPolicies printed %d findings, want %d", n, lines, counts.SCTPPolicies)
			}
			walls = append(walls, u.wall)
			rss = append(rss, u.rss)
		}
		var kWalls []time.Duration
		var kRSS []int64
		for range min(o.runs, 3) {
			u, err := timed(ctx, 0, kubectl, "--kubeconfig", kubeconfig, "create", "--dry-run=client", "--validate=false", "-o", "name", "-R", "-f", corpusDir)
			if err != nil {
				return fmt.Errorf("kubectl create --dry-run=client on %d NetworkPolicies: %w", n, err)
			}
			if lines := strings.Count(u.stdout, "\n"); lines != counts.Total() {
				return fmt.Errorf("kubectl printed %d objects, want %d", lines, counts.Total())
			}
			kWalls = append(kWalls, u.wall)
			kRSS = append(kRSS, u.rss)
		}
		kubectlFigure := fmt.Sprintf("kubectl create --dry-run=client %s / %s; %s", ms(median(kWalls)), mib(median(kRSS)), kyverno[n])
		name := fmt.Sprintf("%d NetworkPolicies + %d allowlists (%d objects)", counts.NetworkPolicies, counts.Allowlists, counts.Total())
		wallTarget, rssTarget := 200*time.Millisecond, int64(0)
		if n >= 10000 {
			wallTarget, rssTarget = time.Second, 64<<20 // issue 8: 1 s; issue 23: 64 MiB
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
