package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moat.dev/moat/policy"
	"moat.dev/moat/test/corpus"
	"moat.dev/moat/validation"
)

// seen is one object or error as the tests compare them.
type seen struct {
	Pos                   string
	Kind, Namespace, Name string
	Unknown               []string
	Error                 string
}

// collector is a Handler that records what it is given, in order.
type collector struct{ got []seen }

func (c *collector) Object(o Object) {
	c.got = append(c.got, seen{Pos: o.Position.String(), Kind: o.Kind, Namespace: o.Object.GetNamespace(), Name: o.Object.GetName(), Unknown: o.Unknown})
}

func (c *collector) Error(e *Error) {
	c.got = append(c.got, seen{Pos: e.Position.String(), Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Error: e.Message})
}

func readFileForTest(t *testing.T, name string) []seen {
	t.Helper()
	var c collector
	if err := ReadPaths([]string{name}, nil, &c); err != nil {
		t.Fatal(err)
	}
	return c.got
}

func TestReadPositions(t *testing.T) {
	tests := map[string][]seen{
		"testdata/multi.yaml": {
			{Pos: "testdata/multi.yaml:2", Kind: "Namespace", Name: "a"},
			// The Deployment (line 10) is a kind moat does not read.
			{Pos: "testdata/multi.yaml:15", Kind: "NetworkPolicy", Namespace: "default", Name: "np"},
			// The Namespace after "..." (line 23) is not read, as by kubectl.
			{Pos: "testdata/multi.yaml:27", Kind: "Service", Namespace: "a", Name: "svc"},
		},
		"testdata/list.yaml": {
			{Pos: "testdata/list.yaml:4", Kind: "Service", Namespace: "apps", Name: "s1"},
			{Pos: "testdata/list.yaml:7", Kind: "NetworkAllowlist", Namespace: "apps", Name: "al"},
			// Items of a typed list take their kind from the list.
			{Pos: "testdata/list.yaml:22", Kind: "NetworkPolicy", Namespace: "apps", Name: "p1"},
			{Pos: "testdata/list.yaml:24", Kind: "NetworkPolicy", Namespace: "apps", Name: "p2"},
		},
		"testdata/stream.json": {
			{Pos: "testdata/stream.json:1", Kind: "Namespace", Name: "j1"},
			{Pos: "testdata/stream.json:5", Kind: "Service", Namespace: "x", Name: "s"},
			{Pos: "testdata/stream.json:7", Kind: "Namespace", Name: "j2"},
			{Pos: "testdata/stream.json:12", Kind: "Namespace", Name: "j3"},
		},
		"testdata/broken.yaml": {
			{Pos: "testdata/broken.yaml:1", Kind: "Namespace", Name: "ok"},
			{Pos: "testdata/broken.yaml:10", Error: "invalid YAML: mapping values are not allowed in this context"},
			{Pos: "testdata/broken.yaml:12", Error: "not a Kubernetes object: expected a mapping with apiVersion and kind"},
			{Pos: "testdata/broken.yaml:15", Name: "no-kind", Error: "cannot decode: kind is not set: kubectl refuses a document without kind"},
			{Pos: "testdata/broken.yaml:18", Kind: "NetworkAllowlist", Namespace: "apps", Name: "old",
				Error: `unsupported apiVersion "moat.dev/v1beta1" for kind NetworkAllowlist: use "moat.dev/v1alpha1"`},
			{Pos: "testdata/broken.yaml:22", Kind: "NetworkAllowlist", Namespace: "apps", Name: "wrongtype",
				Error: "cannot decode: cannot unmarshal string into Go struct field NetworkAllowlistSpec.spec.egress of type []v1alpha1.EgressRule"},
			{Pos: "testdata/broken.yaml:28", Kind: "NetworkAllowlist", Namespace: "apps", Name: "typo", Unknown: []string{"spec.ingress[0].fromm"}},
			{Pos: "testdata/broken.yaml:36", Kind: "Namespace", Name: "last"},
		},
		"testdata/broken.json": {
			{Pos: "testdata/broken.json:1", Kind: "Namespace", Name: "before"},
			// A JSON syntax error ends the stream: nothing after it is read.
			{Pos: "testdata/broken.json:4", Error: "invalid JSON: invalid character ',' looking for beginning of object key string"},
		},
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			if diff := cmp.Diff(want, readFileForTest(t, file)); diff != "" {
				t.Errorf("read %s (-want +got):\n%s", file, diff)
			}
		})
	}
}

func TestReadDropsBulkyMetadata(t *testing.T) {
	x, err := Load([]string{"testdata/multi.yaml"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := x.Service("a", "svc")
	if err != nil || svc == nil {
		t.Fatalf("Service(a, svc) = %v, %v", svc, err)
	}
	if svc.Annotations != nil || svc.ManagedFields != nil {
		t.Errorf("annotations %v and managedFields %v are kept; want both dropped", svc.Annotations, svc.ManagedFields)
	}
	if diff := cmp.Diff(map[string]string{"app": "x"}, svc.Spec.Selector); diff != "" {
		t.Errorf("selector (-want +got):\n%s", diff)
	}
}

func TestReadStdin(t *testing.T) {
	in := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-stdin\n"
	var c collector
	if err := ReadPaths([]string{Stdin}, strings.NewReader(in), &c); err != nil {
		t.Fatal(err)
	}
	want := []seen{{Pos: "<stdin>:1", Kind: "Namespace", Name: "from-stdin"}}
	if diff := cmp.Diff(want, c.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	err := ReadPaths([]string{Stdin, Stdin}, strings.NewReader(in), &collector{})
	if err == nil || err.Error() != `"-" given more than once: stdin can be read only once` {
		t.Errorf("reading stdin twice: err = %v", err)
	}
}

func TestReadDirectory(t *testing.T) {
	ns := func(name string) string {
		return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
	}
	dir := writeTree(t, map[string]string{
		"b.yaml":           ns("b"),
		"a/nested/c.yml":   ns("c"),
		"a/d.json":         `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}`,
		"a/README.md":      ns("not-read"),
		"e.YAML":           ns("e"),
		"kustomization.x":  ns("not-read-either"),
		".github/ci.yaml":  "name: not a manifest\n",
		"a/.hidden/f.yaml": ns("hidden"),
	})
	if err := os.Symlink(filepath.Join(dir, "b.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	got := readFileForTest(t, dir)
	// Files are read in kubectl's walk order (lexical per directory);
	// e.YAML is left out, as kubectl matches extensions case-sensitively;
	// dot-directories are read, as by kubectl apply -R.
	want := []seen{
		{Pos: filepath.Join(dir, ".github/ci.yaml") + ":1", Error: "cannot decode: kind is not set: kubectl refuses a document without kind"},
		{Pos: filepath.Join(dir, "a/.hidden/f.yaml") + ":1", Kind: "Namespace", Name: "hidden"},
		{Pos: filepath.Join(dir, "a/d.json") + ":1", Kind: "Namespace", Name: "d"},
		{Pos: filepath.Join(dir, "a/nested/c.yml") + ":1", Kind: "Namespace", Name: "c"},
		{Pos: filepath.Join(dir, "b.yaml") + ":1", Kind: "Namespace", Name: "b"},
		{Pos: filepath.Join(dir, "link.yaml") + ":1", Kind: "Namespace", Name: "b"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	missing := filepath.Join(dir, "missing.yaml")
	err := ReadPaths([]string{missing}, nil, &collector{})
	if err == nil || err.Error() != `the path "`+missing+`" does not exist` {
		t.Errorf("missing file: err = %v, want kubectl's \"the path ... does not exist\"", err)
	}
}

func TestReadLongLinesAndNoFinalNewline(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	in := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: long\n  annotations:\n    note: " + long + "\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: last"
	var c collector
	if err := Read("long.yaml", strings.NewReader(in), &c); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{Pos: "long.yaml:1", Kind: "Namespace", Name: "long"},
		{Pos: "long.yaml:8", Kind: "Namespace", Name: "last"},
	}
	if diff := cmp.Diff(want, c.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestReadYAML11Scalars pins the YAML 1.1 reading that kubectl has: an
// unquoted yes/no/on/off is a boolean, so it cannot be a label value.
func TestReadYAML11Scalars(t *testing.T) {
	in := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quoted\n  labels:\n    moat.dev/isolated: \"true\"\n    other: 'yes'\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: unquoted\n  labels:\n    moat.dev/isolated: yes\n"
	x := NewIndex(nil)
	if err := Read("scalars.yaml", strings.NewReader(in), x); err != nil {
		t.Fatal(err)
	}
	x.Build()
	ns, _ := x.Namespace("quoted")
	if diff := cmp.Diff(map[string]string{"moat.dev/isolated": "true", "other": "yes"}, ns.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	want := []*Error{{Position: Position{"scalars.yaml", 9}, Kind: "Namespace", Name: "unquoted",
		Message: "cannot decode: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"}}
	if diff := cmp.Diff(want, x.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestReadLimits: input past a documented limit is an error at its line,
// and what follows is still read.
func TestReadLimits(t *testing.T) {
	defer func(n int) { maxDocumentBytes = n }(maxDocumentBytes)
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: after}\n"
	tooBig := "document of more than 4 MiB: moat reads documents of up to 4 MiB; split it (a List into several files)"
	tests := map[string]struct {
		in    string
		limit int // maxDocumentBytes when not 0
		want  []seen
	}{
		"big YAML document": {
			limit: 1000,
			in:    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: big\n  annotations:\n    a: " + strings.Repeat("x", 2000) + "\n---\n" + ns,
			want:  []seen{{Pos: "f:1", Error: tooBig}, {Pos: "f:8", Kind: "Namespace", Name: "after"}},
		},
		"big JSON document": {
			limit: 1000,
			in:    `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big", "annotations": {"a": "` + strings.Repeat("x", 2000) + `"}}}`,
			want:  []seen{{Pos: "f:1", Error: tooBig}},
		},
		"YAML nested too deep": {
			in:   "a: " + strings.Repeat("[", MaxNestingDepth+1) + "\n---\n" + ns,
			want: []seen{{Pos: "f:1", Error: "invalid YAML: exceeded max depth of 10000"}, {Pos: "f:3", Kind: "Namespace", Name: "after"}},
		},
		"JSON nested too deep": {
			in:   `{"a": ` + strings.Repeat("[", MaxNestingDepth+1),
			want: []seen{{Pos: "f:1", Error: "invalid JSON: invalid character '[' exceeded max depth"}},
		},
		"Lists nested 4,998 deep": {
			in:   strings.Repeat(`{"apiVersion":"v1","kind":"List","items":[`+"\n", 4998) + strings.Repeat("]}\n", 4998),
			want: []seen{{Pos: "f:2", Kind: "List", Error: "items[0]: a List inside a List: kubectl refuses the whole List document; move the inner items up"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			maxDocumentBytes = MaxDocumentBytes
			if tc.limit != 0 {
				maxDocumentBytes = tc.limit
			}
			var c collector
			if err := Read("f", strings.NewReader(tc.in), &c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// addFileSeeds adds every manifest of testdata and of the samples.
func addFileSeeds(f *testing.F) {
	for _, dir := range []string{"testdata", "../manifests/samples", "../manifests/samples-invalid"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !e.IsDir() {
				f.Add(b)
			}
		}
	}
}

// FuzzRead feeds arbitrary bytes to the reader: it must never panic, never
// return an error for content (only for I/O), and place everything on a
// line of the input. What it reads must then validate and render without a
// panic either.
func FuzzRead(f *testing.F) {
	addFileSeeds(f)
	for _, in := range differentialSeeds {
		f.Add([]byte(in))
	}
	f.Add([]byte("{}"))
	f.Add([]byte("[1, 2]"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, {kind: Service}]\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},3]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		lines := bytes.Count(in, []byte("\n")) + 1
		var c collector
		if err := Read("fuzz", bytes.NewReader(in), &c); err != nil {
			t.Fatalf("Read returned an error for in-memory input: %v", err)
		}
		for _, s := range c.got {
			line, err := strconv.Atoi(strings.TrimPrefix(s.Pos, "fuzz:"))
			if err != nil || line < 1 || line > lines {
				t.Fatalf("position %s is outside the %d lines of the input", s.Pos, lines)
			}
		}
		x := NewIndex(nil)
		if err := Read("fuzz", bytes.NewReader(in), x); err != nil {
			t.Fatal(err)
		}
		x.Build()
		Validate(x, validation.Config{})
		if _, _, err := Render(x, policy.Config{DNSService: &policy.DefaultDNSService}); err != nil {
			t.Fatalf("Render without a live cluster failed: %v", err)
		}
	})
}

// TestReadBoundsAliasExpansion: a document whose aliases expand past the
// document limit is refused at its line before any JSON is built (memory
// stays a small multiple of the input), and the next document is read.
func TestReadBoundsAliasExpansion(t *testing.T) {
	after := "apiVersion: v1\nkind: Namespace\nmetadata: {name: after}\n"
	in := string(corpus.AliasBomb(10000, 7000)) + "---\n" + after // 38 KB; 70 MB expanded
	var before, end runtime.MemStats
	runtime.ReadMemStats(&before)
	var c collector
	if err := Read("f", strings.NewReader(in), &c); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&end)
	want := []seen{{Pos: "f:1", Error: aliasMessage}, {Pos: "f:9", Kind: "Namespace", Name: "after"}}
	if diff := cmp.Diff(want, c.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Expanding it would allocate more than 70 MB; measuring it, about
	// as many kilobytes as it has nodes.
	if got := end.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("reading %d bytes allocated %d MiB, want < 16 MiB", len(in), got>>20)
	}
}

// TestReadAliasesWithinTheLimit: aliases that expand within the limit are
// read as kubectl reads them (FuzzReadLikeKubectl compares the rest).
func TestReadAliasesWithinTheLimit(t *testing.T) {
	var c collector
	if err := Read("f", bytes.NewReader(corpus.AliasBomb(100, 1000)), &c); err != nil {
		t.Fatal(err)
	}
	if want := []seen{{Pos: "f:1", Kind: "Namespace", Name: "bomb"}}; !cmp.Equal(want, c.got) {
		t.Errorf("got %v, want %v", c.got, want)
	}
}
