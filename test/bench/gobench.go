package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// benchLine matches a result line of `go test -bench`: name, iterations,
// then value/unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// goBenchResults reads `go test -bench` output: by benchmark name and unit,
// the values of every run (-count).
func goBenchResults(file string) (map[string]map[string][]float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if out[m[1]] == nil {
				out[m[1]] = map[string][]float64{}
			}
			out[m[1]][fields[i+1]] = append(out[m[1]][fields[i+1]], v)
		}
	}
	return out, sc.Err()
}

// benchGo reports the in-process Go benchmarks of -gobench.
func benchGo(_ context.Context, o *options) error {
	res, err := goBenchResults(o.goBench)
	if err != nil {
		return err
	}
	get := func(name, unit string) (float64, string, bool) {
		vs := res[name][unit]
		if len(vs) == 0 {
			return 0, "", false
		}
		return median(vs), fmt.Sprintf("%d runs", len(vs)), true
	}
	us := func(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1000) }

	// Issue 15: the 10-rule allowlist as moat serves it at most 1.3× the
	// no-op validator (controller-runtime's generic webhook admitting
	// everything) on the same request, in the same process and run.
	const (
		allowlist = "BenchmarkAllowlistTenServiceRules/Handle"
		noopName  = "BenchmarkAllowlistTenServiceRules/NoopHandle"
		maxRatio  = 1.3
	)
	ns, runs, ok := get(allowlist, "ns/op")
	noop, _, noopOK := get(noopName, "ns/op")
	if !ok || !noopOK {
		return fmt.Errorf("%s: no result for %s or %s", o.goBench, allowlist, noopName)
	}
	allocs, _, _ := get(allowlist, "allocs/op")
	noopAllocs, _, _ := get(noopName, "allocs/op")
	ratio := ns / noop
	record(figure{section: "in-process", name: "10-rule allowlist, Service peers from the informer cache (" + runs + ")",
		value: fmt.Sprintf("%s, %.0f allocs (%.2f×)", us(ns), allocs, ratio), baseline: fmt.Sprintf("no-op validator %s, %.0f allocs", us(noop), noopAllocs),
		target: fmt.Sprintf("≤ %.1f× the no-op", maxRatio), met: met(ratio <= maxRatio)})
	// The same ratio in CPU time of the benchmark process (garbage
	// collection included), which other processes on the machine inflate
	// less than elapsed time.
	if cpu, _, ok := get(allowlist, "cpu-ns/op"); ok {
		if noopCPU, _, ok := get(noopName, "cpu-ns/op"); ok {
			record(figure{section: "in-process", name: "10-rule allowlist, CPU time per request (process, GC included)",
				value: fmt.Sprintf("%s (%.2f×)", us(cpu), cpu/noopCPU), baseline: "no-op validator " + us(noopCPU)})
		}
	}
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == allowlist || name == noopName {
			continue
		}
		short := strings.TrimPrefix(name, "Benchmark")
		if obj, runs, ok := get(name, "ns/object"); ok {
			allocs, _, _ := get(name, "allocs/object")
			record(figure{section: "in-process", name: short + " (" + runs + ")", value: fmt.Sprintf("%.1f µs/object, %.0f allocs/object", obj/1000, allocs)})
			continue
		}
		if ns, runs, ok := get(name, "ns/op"); ok {
			allocs, _, _ := get(name, "allocs/op")
			record(figure{section: "in-process", name: short + " (" + runs + ")", value: fmt.Sprintf("%s, %.0f allocs", us(ns), allocs)})
		}
	}
	return nil
}
