package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"moat.dev/moat/test/corpus"
)

// shape is an input that once cost moat validate more than linear time or
// memory (issues 12 and 23).
type shape struct {
	name string
	// sizes are a quarter of and the full size measured for linearity;
	// refused, when not 0, is a size past manifest.MaxDocumentBytes (issue
	// 12's 50 MB), which must be refused at once.
	sizes   [2]int
	unit    string
	refused int
	// write writes the shape at a size and returns the exit status moat
	// validate must give.
	write func(w *bufio.Writer, size int) int
}

// networkPolicy is a NetworkPolicy as a JSON object (valid YAML too), with
// an SCTP port so that each one is a finding.
func networkPolicy(i int) string {
	return fmt.Sprintf(`{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np-%d", "namespace": "ns-%d"}, `+
		`"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.%d.%d.0/24"}}], "ports": [{"protocol": "TCP", "port": 80}]}]}}`,
		i, i%100, i/256%256, i%256)
}

// listBytes is the full size of the List shapes: within
// manifest.MaxDocumentBytes (4 MiB).
const listBytes = 3 << 20

var shapes = []shape{
	{
		// Lists nested 4,998 deep (220 KB): kubectl refuses a List in a
		// List, and so does moat, at once.
		name:  "Lists nested deep (JSON, 44 bytes a level)",
		sizes: [2]int{1250, 4998}, unit: "levels",
		write: func(w *bufio.Writer, depth int) int {
			for range depth {
				w.WriteString(`{"apiVersion":"v1","kind":"List","items":[` + "\n")
			}
			for range depth {
				w.WriteString("]}\n")
			}
			return 1
		},
	},
	{
		// One long line: a List in YAML flow style on one line.
		name:  "one long line (a YAML flow List of NetworkPolicies)",
		sizes: [2]int{listBytes / 4, listBytes}, unit: "bytes", refused: 50e6,
		write: func(w *bufio.Writer, size int) int {
			w.WriteString("apiVersion: v1\nkind: List\nitems: [")
			writeItems(w, size, func(i int) string {
				if i == 0 {
					return networkPolicy(i)
				}
				return ", " + networkPolicy(i)
			})
			w.WriteString("]\n")
			return exitFor(size)
		},
	},
	{
		// One List in block style.
		name:  "one List (block YAML, NetworkPolicies)",
		sizes: [2]int{listBytes / 4, listBytes}, unit: "bytes", refused: 50e6,
		write: func(w *bufio.Writer, size int) int {
			w.WriteString("apiVersion: v1\nkind: List\nitems:\n")
			writeItems(w, size, func(i int) string {
				return fmt.Sprintf("- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata:\n    name: np-%d\n    namespace: ns-%d\n"+
					"  spec:\n    podSelector: {}\n    ingress:\n    - from:\n      - ipBlock:\n          cidr: 10.%d.%d.0/24\n      ports:\n      - protocol: TCP\n        port: 80\n",
					i, i%100, i/256%256, i%256)
			})
			return exitFor(size)
		},
	},
	{
		// Issue 23, case 6: N tenant NetworkPolicies × N allowlists of one
		// isolated namespace (each policy checked against the model of
		// every allowlist).
		name:  "N tenant NetworkPolicies × N allowlists, one namespace",
		sizes: [2]int{1000, 4000}, unit: "of each",
		write: func(w *bufio.Writer, n int) int { return writeDocs(w, corpus.TenantCross(n), 0) },
	},
	{
		// Issue 23, case 6: N allowlists with ingress ports and ipBlocks ×
		// N Services of one namespace.
		name:  "N allowlists × N Services (ingress ports, ipBlocks), one namespace",
		sizes: [2]int{1000, 4000}, unit: "of each",
		write: func(w *bufio.Writer, n int) int { return writeDocs(w, corpus.ServicePortCross(n), 0) },
	},
	{
		// Issue 23, case 5: one 10 KB scalar aliased N times (7,000: the
		// issue's 72 KB, 791 MB), refused at the alias bound.
		name:  "one 10 KB YAML scalar aliased N times (refused: expands past 4 MiB)",
		sizes: [2]int{1750, 7000}, unit: "aliases",
		write: func(w *bufio.Writer, n int) int { return writeDocs(w, [][]byte{corpus.AliasBomb(10000, n)}, 1) },
	},
}

// writeDocs writes documents as one YAML stream and returns exit.
func writeDocs(w *bufio.Writer, docs [][]byte, exit int) int {
	_ = corpus.Write(w, docs) // a bufio.Writer's error is reported by Flush
	return exit
}

// exitFor is moat validate's exit status on a List shape: refused (1) past
// the document limit, else clean (0).
func exitFor(size int) int {
	if size > listBytes {
		return 1
	}
	return 0
}

// writeItems writes item(0), item(1), ... until size bytes are written.
func writeItems(w *bufio.Writer, size int, item func(i int) string) {
	for i, n := 0, 0; n < size; i++ {
		s := item(i)
		w.WriteString(s)
		n += len(s)
	}
}

// benchShapes runs moat validate on each shape at a quarter and at the full
// size: the ratio of the two times (and of the peak RSS) shows whether cost
// grows linearly (4×) or faster. Shapes past the document limit are then
// measured at issue 12's size, where they must be refused.
func benchShapes(ctx context.Context, o *options) error {
	dir, err := os.MkdirTemp("", "moat-bench-shapes")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i, s := range shapes {
		var walls [2]time.Duration
		var rss, sizes [2]int64
		for j, size := range s.sizes {
			walls[j], rss[j], sizes[j], err = runShape(ctx, o, filepath.Join(dir, fmt.Sprintf("shape-%d-%d.yaml", i, j)), s, size)
			if err != nil {
				return err
			}
		}
		record(figure{section: "shapes", name: fmt.Sprintf("%s, %d → %d %s: wall", s.name, s.sizes[0], s.sizes[1], s.unit),
			value:  fmt.Sprintf("%s → %s (%.1f×)", ms(walls[0]), ms(walls[1]), float64(walls[1])/float64(walls[0])),
			target: "linear: about 4×"})
		record(figure{section: "shapes", name: fmt.Sprintf("%s, %d → %d %s: peak RSS", s.name, s.sizes[0], s.sizes[1], s.unit),
			value: fmt.Sprintf("%s → %s (inputs %s → %s)", mib(rss[0]), mib(rss[1]), mib(sizes[0]), mib(sizes[1]))})
		if s.refused != 0 {
			wall, peak, size, err := runShape(ctx, o, filepath.Join(dir, fmt.Sprintf("shape-%d-refused.yaml", i)), s, s.refused)
			if err != nil {
				return err
			}
			record(figure{section: "shapes", name: fmt.Sprintf("%s, %s (refused: over the document limit)", s.name, mib(size)),
				value: fmt.Sprintf("%s, %s peak RSS", ms(wall), mib(peak))})
		}
	}
	return nil
}

// runShape writes a shape at a size and runs moat validate on it -runs times
// under /usr/bin/time -v: median wall time and peak RSS, and the file's size.
func runShape(ctx context.Context, o *options, path string, s shape, size int) (time.Duration, int64, int64, error) {
	want, n, err := writeShape(path, s, size)
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(path)
	var ws []time.Duration
	var rs []int64
	for range o.runs {
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
		// Under /usr/bin/time: the rusage of a child forked from this
		// process would count this process's own pages before the exec.
		u, err := timed(ctx, want, o.moat, "validate", path)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("moat validate on %s (%d %s): %w", s.name, size, s.unit, err)
		}
		ws = append(ws, u.wall)
		rs = append(rs, u.rss)
	}
	return median(ws), median(rs), n, nil
}

func writeShape(path string, s shape, size int) (want int, written int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	want = s.write(w, size)
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, 0, err
	}
	return want, info.Size(), f.Close()
}
