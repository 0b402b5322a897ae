package corpus

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// moatBinary is `moat` built from this tree by TestMain.
var moatBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// `go test -list` (make fuzz) needs no binary.
	flag.Parse()
	if flag.Lookup("test.list").Value.String() != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "moat-corpus-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	moatBinary = filepath.Join(dir, "moat")
	build := exec.Command("go", "build", "-o", moatBinary, "moat.dev/moat/cmd/moat")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building moat:", err)
		return 1
	}
	return m.Run()
}

// result is what a `moat validate` run shows its caller.
type result struct {
	stdout, stderr string
	status         int
}

func runValidate(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	// The corpus is a platform team's repository (admins): the tenant
	// NetworkPolicy rule does not apply to it.
	cmd := exec.Command(moatBinary, append([]string{"validate", "--tenant-network-policies=off"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	status := 0
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("running moat validate: %v", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), status: status}
}

func TestDocumentsAreDeterministic(t *testing.T) {
	o := Options{NetworkPolicies: 200}
	a, b := Documents(o), Documents(o)
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatal("two calls with the same options produced different documents")
	}
	want := Counts{Namespaces: 3, NetworkPolicies: 200, Allowlists: 20, Services: 20, SCTPPolicies: 20}
	if got := CountsOf(o); got != want {
		t.Fatalf("CountsOf = %+v, want %+v", got, want)
	}
	if len(a) != want.Total() {
		t.Fatalf("%d documents, want %d", len(a), want.Total())
	}
	sctp := 0
	for _, d := range a {
		if bytes.Contains(d, []byte("protocol: SCTP")) {
			sctp++
		}
	}
	if sctp != want.SCTPPolicies {
		t.Fatalf("%d documents with SCTP, want %d", sctp, want.SCTPPolicies)
	}
}

// jsonFinding is one element of `moat validate -o json`.
type jsonFinding struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Field     string `json:"field"`
	Message   string `json:"message"`
	Severity  string `json:"severity"`
}

// expectedRejections is the text output of `moat validate` on a corpus
// written as one file per document (doc-NNNN.yaml in generation order):
// exactly one error per SCTP policy, nothing else.
func expectedRejections(t *testing.T, dir string, o Options) string {
	t.Helper()
	c := CountsOf(o)
	firstNP := c.Namespaces + c.Services
	var lines []string
	for i := 9; i < c.NetworkPolicies; i += 10 {
		lines = append(lines, fmt.Sprintf("%s:1: NetworkPolicy/bench-%d/np-%d: spec.ingress[0].ports[1].protocol: ",
			filepath.Join(dir, fmt.Sprintf("doc-%04d.yaml", firstNP+i)), i%(c.Namespaces-1), i))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestValidateOutputIndependentOfOrder runs the real `moat validate` on the
// same corpus given in different orders: one file per document passed in
// generation, reversed and shuffled order must print byte-identical output
// and exit with the same status; one stream with its documents shuffled must
// report the same findings (only the lines move) with the same status.
func TestValidateOutputIndependentOfOrder(t *testing.T) {
	o := Options{NetworkPolicies: 100}
	docs := Documents(o)
	c := CountsOf(o)

	dir := t.TempDir()
	files := make([]string, len(docs))
	for i, d := range docs {
		files[i] = filepath.Join(dir, fmt.Sprintf("doc-%04d.yaml", i))
		if err := os.WriteFile(files[i], d, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	base := runValidate(t, nil, files...)
	if base.status != 1 {
		t.Fatalf("exit status %d, want 1 (SCTP is off); stderr: %s", base.status, base.stderr)
	}
	// Every line is one SCTP rejection, in file order; the message itself
	// belongs to the validation package and is checked there.
	var prefixes []string
	for _, line := range strings.Split(strings.TrimSuffix(base.stdout, "\n"), "\n") {
		const field = "spec.ingress[0].ports[1].protocol: "
		i := strings.Index(line, field)
		if i < 0 || !strings.Contains(line, "SCTP") {
			t.Fatalf("unexpected finding %q", line)
		}
		prefixes = append(prefixes, line[:i+len(field)])
	}
	if got, want := strings.Join(prefixes, "\n"), expectedRejections(t, dir, o); got != want {
		t.Fatalf("findings:\n%s\nwant:\n%s", got, want)
	}
	// The summary's wording belongs to the CLI; it must count the
	// rejections and the objects.
	wantSummary := base.stderr
	if !strings.HasPrefix(wantSummary, fmt.Sprintf("moat validate: %d ", c.SCTPPolicies)) || !strings.HasSuffix(wantSummary, fmt.Sprintf(" in %d objects\n", c.Total())) {
		t.Fatalf("stderr %q, want a summary of %d rejections in %d objects", base.stderr, c.SCTPPolicies, c.Total())
	}

	reversed := slices.Clone(files)
	slices.Reverse(reversed)
	shuffled := slices.Clone(files)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for name, order := range map[string][]string{"reversed": reversed, "shuffled": shuffled, "directory": {dir}} {
		if got := runValidate(t, nil, order...); got != base {
			t.Errorf("%s: got status %d, stdout:\n%s\nstderr: %s\nwant the output of generation order", name, got.status, got.stdout, got.stderr)
		}
	}

	// One stream, documents shuffled: the same findings at other lines.
	streamFindings := func(docs [][]byte) ([]jsonFinding, int, string) {
		var in bytes.Buffer
		if err := Write(&in, docs); err != nil {
			t.Fatal(err)
		}
		r := runValidate(t, in.Bytes(), "-o", "json", "-")
		var fs []jsonFinding
		if err := json.Unmarshal([]byte(r.stdout), &fs); err != nil {
			t.Fatalf("decoding -o json output: %v\n%s", err, r.stdout)
		}
		for i := range fs {
			fs[i].Line = 0
		}
		slices.SortFunc(fs, func(a, b jsonFinding) int {
			return strings.Compare(a.Namespace+"/"+a.Name+"/"+a.Field, b.Namespace+"/"+b.Name+"/"+b.Field)
		})
		return fs, r.status, r.stderr
	}
	wantFs, wantStatus, wantStderr := streamFindings(docs)
	if len(wantFs) != c.SCTPPolicies || wantStatus != 1 || wantStderr != wantSummary {
		t.Fatalf("stream in generation order: %d findings, status %d, stderr %q", len(wantFs), wantStatus, wantStderr)
	}
	for seed := range uint64(3) {
		perm := slices.Clone(docs)
		rand.New(rand.NewPCG(seed, 7)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		gotFs, gotStatus, gotStderr := streamFindings(perm)
		if !slices.Equal(gotFs, wantFs) || gotStatus != wantStatus || gotStderr != wantStderr {
			t.Errorf("shuffle %d: status %d, stderr %q, findings %+v; want the findings of generation order", seed, gotStatus, gotStderr, gotFs)
		}
	}

	// With SCTP declared, the corpus is clean.
	if got := runValidate(t, nil, "--sctp-enabled", dir); got.status != 0 || got.stdout != "" {
		t.Fatalf("--sctp-enabled: status %d, output %q, want 0 and nothing", got.status, got.stdout)
	}
}
