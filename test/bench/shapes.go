package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// shape is an input that once cost moat validate more than linear time or
// memory (issue 12), written at a given size.
type shape struct {
	name string
	// write writes the shape at scale n (1 is the size quoted by issue 12)
	// and returns the exit status moat validate must give.
	write func(w *bufio.Writer, scale float64) int
}

// networkPolicy is a NetworkPolicy as a JSON object (valid YAML too), with
// an SCTP port so that each one is a finding.
func networkPolicy(i int) string {
	return fmt.Sprintf(`{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np-%d", "namespace": "ns-%d"}, `+
		`"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.%d.%d.0/24"}}], "ports": [{"protocol": "TCP", "port": 80}]}]}}`,
		i, i%100, i/256%256, i%256)
}

var shapes = []shape{
	{
		// Lists nested 4,998 deep (220 KB): kubectl refuses a List in a
		// List, and so does moat, at once.
		name: "Lists nested 4,998 deep (220 KB JSON)",
		write: func(w *bufio.Writer, scale float64) int {
			depth := int(4998 * scale)
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
		// One 50 MB line: a List in YAML flow style on one line.
		name: "one 50 MB line (a YAML flow List)",
		write: func(w *bufio.Writer, scale float64) int {
			w.WriteString("apiVersion: v1\nkind: List\nitems: [")
			writeItems(w, int(50e6*scale), func(i int) string {
				if i == 0 {
					return networkPolicy(i)
				}
				return ", " + networkPolicy(i)
			})
			w.WriteString("]\n")
			return 0
		},
	},
	{
		// One 50 MB List in block style.
		name: "one 50 MB List (block YAML)",
		write: func(w *bufio.Writer, scale float64) int {
			w.WriteString("apiVersion: v1\nkind: List\nitems:\n")
			writeItems(w, int(50e6*scale), func(i int) string {
				return fmt.Sprintf("- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata:\n    name: np-%d\n    namespace: ns-%d\n"+
					"  spec:\n    podSelector: {}\n    ingress:\n    - from:\n      - ipBlock:\n          cidr: 10.%d.%d.0/24\n      ports:\n      - protocol: TCP\n        port: 80\n",
					i, i%100, i/256%256, i%256)
			})
			return 0
		},
	},
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
// size of issue 12: the ratio of the two times (and of the peak RSS above the
// process's floor) shows whether cost grows linearly (4×) or faster.
func benchShapes(ctx context.Context, o *options) error {
	dir, err := os.MkdirTemp("", "moat-bench-shapes")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i, s := range shapes {
		var walls [2]time.Duration
		var rss [2]int64
		var sizes [2]int64
		for j, scale := range []float64{0.25, 1} {
			path := filepath.Join(dir, fmt.Sprintf("shape-%d-%d.yaml", i, j))
			want, size, err := writeShape(path, s, scale)
			if err != nil {
				return err
			}
			sizes[j] = size
			var ws []time.Duration
			var rs []int64
			for range o.runs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cmd := exec.CommandContext(ctx, o.moat, "validate", path)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				start := time.Now()
				err := cmd.Run()
				wall := time.Since(start)
				code := 0
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				} else if err != nil {
					return err
				}
				if code != want {
					return fmt.Errorf("moat validate on %s: exit status %d, want %d; stderr: %.300s", s.name, code, want, stderr.String())
				}
				ws = append(ws, wall)
				rs = append(rs, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss<<10)
			}
			walls[j], rss[j] = median(ws), median(rs)
			os.Remove(path)
		}
		record(figure{section: "shapes", name: s.name + ": wall (quarter size → full size)",
			value:  fmt.Sprintf("%s → %s (%.1f×)", ms(walls[0]), ms(walls[1]), float64(walls[1])/float64(walls[0])),
			target: "linear: about 4×"})
		record(figure{section: "shapes", name: s.name + ": peak RSS (quarter size → full size)",
			value: fmt.Sprintf("%s → %s; %.1f× the %s input", mib(rss[0]), mib(rss[1]), float64(rss[1])/float64(sizes[1]), mib(sizes[1]))})
	}
	return nil
}

func writeShape(path string, s shape, scale float64) (want int, size int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	want = s.write(w, scale)
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
