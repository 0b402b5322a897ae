// Command mutate applies hand-written single-line mutants one at a time and
// runs a package's own tests against each (see docs/testing.md, "Mutation
// testing"). Each mutant is three lines in a mutants file:
//
//	@ ID path/to/file.go
//	- exact source text (must occur exactly once in the file)
//	+ replacement text
//
// Blank lines and lines starting with # are ignored. For every mutant it
// replaces the text, runs `go test -count=1 ./DIR/` (DIR is the file's
// directory), prints "ID killed by TestA, TestB" or "ID survived", and
// restores the file. A mutant that does not compile is reported as an error
// and not counted.
// Run it from the repository root:
//
//	KUBEBUILDER_ASSETS=$PWD/bin go run ./test/mutate test/mutate/policy.txt [ID...]
//
// With IDs, only those mutants run.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

type mutant struct{ id, file, from, to string }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mutate MUTANTS-FILE [ID...]")
		os.Exit(2)
	}
	mutants, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	only := os.Args[2:]
	killed, total := 0, 0
	for _, m := range mutants {
		if len(only) > 0 && !slices.Contains(only, m.id) {
			continue
		}
		failed, err := run(m)
		if err != nil {
			fmt.Printf("%s error: %v\n", m.id, err)
			continue
		}
		total++
		if failed != nil {
			killed++
			fmt.Printf("%s killed by %s\n", m.id, strings.Join(failed, ", "))
		} else {
			fmt.Printf("%s survived\n", m.id)
		}
	}
	fmt.Printf("%d of %d killed\n", killed, total)
}

func read(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mutant
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "@ "):
			fields := strings.Fields(line[2:])
			if len(fields) != 2 {
				return nil, fmt.Errorf("bad mutant header %q", line)
			}
			out = append(out, mutant{id: fields[0], file: fields[1]})
		case strings.HasPrefix(line, "- ") && len(out) > 0:
			out[len(out)-1].from = line[2:]
		case strings.HasPrefix(line, "+ ") && len(out) > 0:
			out[len(out)-1].to = line[2:]
		default:
			return nil, fmt.Errorf("bad line %q", line)
		}
	}
	return out, sc.Err()
}

// run applies m, runs the tests of its package and restores the file; it
// returns the tests that failed (top-level names; "the package" when none is
// named, e.g. on a panic), nil when all passed.
func run(m mutant) ([]string, error) {
	orig, err := os.ReadFile(m.file)
	if err != nil {
		return nil, err
	}
	if n := strings.Count(string(orig), m.from); n != 1 || m.from == "" {
		return nil, fmt.Errorf("%q occurs %d times in %s", m.from, n, m.file)
	}
	mutated := strings.Replace(string(orig), m.from, m.to, 1)
	if err := os.WriteFile(m.file, []byte(mutated), 0o644); err != nil {
		return nil, err
	}
	defer os.WriteFile(m.file, orig, 0o644)
	cmd := exec.Command("go", "test", "-count=1", "./"+filepath.Dir(m.file)+"/")
	out, err := cmd.CombinedOutput()
	if err != nil && (strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]")) {
		return nil, fmt.Errorf("does not compile: %s", firstLine(string(out)))
	}
	if err == nil {
		return nil, nil
	}
	var failed []string
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(l, "--- FAIL: "); ok && !strings.Contains(name, "/") {
			name, _, _ = strings.Cut(name, " ")
			failed = append(failed, name)
		}
	}
	if len(failed) == 0 {
		failed = []string{"the package"}
	}
	return failed, nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, ".go:") {
			return l
		}
	}
	s, _, _ = strings.Cut(s, "\n")
	return s
}
