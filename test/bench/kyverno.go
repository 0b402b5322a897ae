package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"moat.dev/moat/test/corpus"
)

// kyvernoPolicy is the one rule Kyverno checks in the side-by-side run: no
// SCTP port in a NetworkPolicy, which moat rejects too (SCTP off by
// default). The corpus holds one such policy in ten.
const kyvernoPolicy = `apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: no-sctp
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: no-sctp
    match:
      any:
      - resources:
          kinds: [NetworkPolicy]
    validate:
      message: SCTP is not enabled on this cluster
      pattern:
        spec:
          =(ingress):
          - =(ports):
            - =(protocol): "!SCTP"
          =(egress):
          - =(ports):
            - =(protocol): "!SCTP"
`

// usage is what /usr/bin/time -v reports of one process.
type usage struct {
	wall time.Duration // measured here, from start to exit
	cpu  time.Duration // user + system
	rss  int64         // maximum resident set size
	// stdout is what the process printed.
	stdout string
}

var (
	timeUser   = regexp.MustCompile(`User time \(seconds\): ([0-9.]+)`)
	timeSystem = regexp.MustCompile(`System time \(seconds\): ([0-9.]+)`)
	timeRSS    = regexp.MustCompile(`Maximum resident set size \(kbytes\): ([0-9]+)`)
	// kyvernoFailed is the Kyverno CLI's count of failed checks.
	kyvernoFailed = regexp.MustCompile(`fail: ([0-9]+),`)
)

// timed runs a command under /usr/bin/time -v; wantExit is its expected
// exit status.
func timed(ctx context.Context, wantExit int, name string, args ...string) (usage, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", name}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	u := usage{wall: time.Since(start), stdout: stdout.String()}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		return u, err
	}
	if code != wantExit {
		return u, fmt.Errorf("%s: exit status %d, want %d; stdout: %.300s; stderr: %.500s", name, code, wantExit, stdout.String(), stderr.String())
	}
	seconds := func(re *regexp.Regexp) time.Duration {
		m := re.FindSubmatch(stderr.Bytes())
		if m == nil {
			return 0
		}
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		return time.Duration(f * float64(time.Second))
	}
	u.cpu = seconds(timeUser) + seconds(timeSystem)
	if m := timeRSS.FindSubmatch(stderr.Bytes()); m != nil {
		kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
		u.rss = kb << 10
	} else {
		return u, fmt.Errorf("no peak RSS in /usr/bin/time's output: %.300s", stderr.String())
	}
	return u, nil
}

// benchKyverno runs `moat validate` and the Kyverno CLI (-kyverno) side by
// side on the corpus (-kyverno-size NetworkPolicies), -runs times each,
// alternating: medians of wall time, CPU time and peak RSS.
func benchKyverno(ctx context.Context, o *options) error {
	if o.kyverno == "" {
		return errors.New("-kyverno is not set: build the Kyverno CLI (docs/benchmarks.md) and pass its path")
	}
	dir, err := os.MkdirTemp("", "moat-bench-kyverno")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := corpus.Options{NetworkPolicies: o.kyvernoSize}
	counts := corpus.CountsOf(opts)
	resources := filepath.Join(dir, "corpus")
	if _, err := corpus.WriteDir(resources, corpus.Documents(opts), 500); err != nil {
		return err
	}
	policy := filepath.Join(dir, "no-sctp.yaml")
	if err := os.WriteFile(policy, []byte(kyvernoPolicy), 0o600); err != nil {
		return err
	}
	var moat, kyverno []usage
	for range o.runs {
		m, err := timed(ctx, 1, o.moat, "validate", "--tenant-network-policies=off", resources)
		if err != nil {
			return err
		}
		k, err := timed(ctx, 1, o.kyverno, "apply", policy, "--resource", resources)
		if err != nil {
			return err
		}
		if err := sameFindings(m, k, counts.SCTPPolicies); err != nil {
			return err
		}
		moat, kyverno = append(moat, m), append(kyverno, k)
	}
	name := fmt.Sprintf("%d NetworkPolicies + %d allowlists (%d objects)", counts.NetworkPolicies, counts.Allowlists, counts.Total())
	mWall, kWall := median(field(moat, func(u usage) time.Duration { return u.wall })), median(field(kyverno, func(u usage) time.Duration { return u.wall }))
	mCPU, kCPU := median(field(moat, func(u usage) time.Duration { return u.cpu })), median(field(kyverno, func(u usage) time.Duration { return u.cpu }))
	mRSS, kRSS := median(field(moat, func(u usage) int64 { return u.rss })), median(field(kyverno, func(u usage) int64 { return u.rss }))
	record(figure{section: "kyverno", name: name + ": wall", value: ms(mWall), baseline: "Kyverno CLI " + ms(kWall),
		target: "≥ 20× faster", met: met(kWall >= 20*mWall)})
	record(figure{section: "kyverno", name: name + ": faster by", value: fmt.Sprintf("%.1f× (wall), %.1f× (CPU)", float64(kWall)/float64(mWall), float64(kCPU)/float64(mCPU))})
	record(figure{section: "kyverno", name: name + ": CPU", value: ms(mCPU), baseline: "Kyverno CLI " + ms(kCPU)})
	record(figure{section: "kyverno", name: name + ": peak RSS", value: mib(mRSS), baseline: "Kyverno CLI " + mib(kRSS),
		target: "< 64.0 MiB", met: met(mRSS < 64<<20)})
	return nil
}

// sameFindings checks that moat printed one finding and Kyverno counted
// one failure per SCTP policy, and nothing else.
func sameFindings(moat, kyverno usage, want int) error {
	if got := strings.Count(moat.stdout, "\n"); got != want {
		return fmt.Errorf("moat validate printed %d findings, want %d", got, want)
	}
	m := kyvernoFailed.FindStringSubmatch(kyverno.stdout)
	if m == nil || m[1] != strconv.Itoa(want) {
		return fmt.Errorf("the Kyverno CLI did not report %d failures: %.300s", want, kyverno.stdout)
	}
	return nil
}

func field[T any](us []usage, f func(usage) T) []T {
	out := make([]T, len(us))
	for i, u := range us {
		out[i] = f(u)
	}
	return out
}
