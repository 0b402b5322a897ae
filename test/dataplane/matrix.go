//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"
)

// Cell is one line of a verdict matrix: traffic from a host to a target,
// and whether it must get through.
type Cell struct {
	From *Host
	To   Target
	Want bool
}

// Key names the cell's traffic, whatever its expectation.
func (c Cell) Key() string { return c.From.Name + " → " + c.To.String() }

// Allow and Deny build cells.
func Allow(from *Host, to Target) Cell { return Cell{From: from, To: to, Want: true} }

// Deny builds a cell whose traffic must not get through.
func Deny(from *Host, to Target) Cell { return Cell{From: from, To: to, Want: false} }

// Result is a cell as observed: the last probe's verdict and detail, how
// many probes it took and when (since the change) the last one ended.
type Result struct {
	Cell
	Got    bool
	Detail string
	Probes int
	After  time.Duration
}

// OK reports whether the observed verdict is the expected one.
func (r Result) OK() bool { return r.Got == r.Want }

// Matrix probes cells, each until it shows its expected verdict or the
// deadline passes, all at once. since is when the change that the matrix
// checks was made: each result's After counts from it.
func Matrix(ctx context.Context, cells []Cell, since time.Time, deadline time.Duration) []Result {
	results := make([]Result, len(cells))
	var wg sync.WaitGroup
	for i, cell := range cells {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probeUntil(ctx, cell, since, since.Add(deadline))
		}()
	}
	wg.Wait()
	return results
}

// probeRetry is the pause between two probes of one cell.
const probeRetry = 20 * time.Millisecond

func probeUntil(ctx context.Context, cell Cell, since, deadline time.Time) Result {
	r := Result{Cell: cell}
	for {
		r.Got, r.Detail = Probe(ctx, cell.From, cell.To)
		r.Probes++
		r.After = time.Since(since)
		if r.OK() || !time.Now().Before(deadline) || ctx.Err() != nil {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(probeRetry):
		}
	}
}

// Mismatches returns the results whose observed verdict is not the expected
// one.
func Mismatches(results []Result) []Result {
	var bad []Result
	for _, r := range results {
		if !r.OK() {
			bad = append(bad, r)
		}
	}
	return bad
}

// PrintMatrix writes the verdict matrix of a scenario step: source →
// destination:port/protocol, expected, observed, and how it was observed.
func PrintMatrix(w io.Writer, title string, results []Result) {
	fmt.Fprintf(w, "\n== %s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SOURCE\tDESTINATION\tEXPECTED\tOBSERVED\t\tPROBES\tAFTER\tDETAIL")
	for _, r := range results {
		mark := "ok"
		if !r.OK() {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.From.Name, r.To, verdict(r.Want), verdict(r.Got), mark,
			r.Probes, r.After.Round(time.Millisecond), r.Detail)
	}
	_ = tw.Flush()
}

func verdict(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

// Convergence collects, per kind of change, how long the data plane took to
// follow it: from the API call to the end of the first probe that showed
// the new verdict, for the slowest of the cells the change flipped.
type Convergence struct {
	mu      sync.Mutex
	samples map[string][]time.Duration
}

// Record adds a sample for kind from the results of the matrix that checked
// the change: the slowest result among the cells in flipped. Nothing is
// recorded when no flipped cell is in results, or when one of them never
// showed its verdict.
func (c *Convergence) Record(kind string, results []Result, flipped []Cell) {
	var worst time.Duration
	found := false
	for _, r := range results {
		if !slices.ContainsFunc(flipped, func(f Cell) bool { return f.Key() == r.Key() }) {
			continue
		}
		if !r.OK() {
			return
		}
		found = true
		worst = max(worst, r.After)
	}
	if found {
		c.Add(kind, worst)
	}
}

// Add adds a sample for kind.
func (c *Convergence) Add(kind string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == nil {
		c.samples = map[string][]time.Duration{}
	}
	c.samples[kind] = append(c.samples[kind], d)
}

// ConvergenceStats are the figures of one kind of change.
type ConvergenceStats struct {
	Kind          string
	N             int
	P50, P99, Max time.Duration
}

// Stats returns the figures per kind, and for all kinds together ("all"),
// sorted by kind.
func (c *Convergence) Stats() []ConvergenceStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []time.Duration
	var out []ConvergenceStats
	for kind, s := range c.samples {
		out = append(out, stats(kind, s))
		all = append(all, s...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	if len(all) > 0 {
		out = append(out, stats("all", all))
	}
	return out
}

// stats computes nearest-rank percentiles.
func stats(kind string, samples []time.Duration) ConvergenceStats {
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return ConvergenceStats{Kind: kind, N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// PrintConvergence writes the figures as a table under title.
func PrintConvergence(w io.Writer, title string, stats []ConvergenceStats) {
	fmt.Fprintf(w, "\n== %s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHANGE\tN\tP50\tP99\tMAX")
	for _, s := range stats {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", s.Kind, s.N, ms(s.P50), ms(s.P99), ms(s.Max))
	}
	_ = tw.Flush()
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
