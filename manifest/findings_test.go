package manifest

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"moat.dev/moat/validation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got); if the change is intended, run go test -update:\n%s", path, diff)
	}
}

// TestCheckGolden runs every kind of finding through Check and both output
// formats.
func TestCheckGolden(t *testing.T) {
	x, findings, err := Check([]string{"testdata/check.yaml"}, nil, nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, findings); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, findings); err != nil {
		t.Fatal(err)
	}
	golden(t, "check.golden.txt", text.Bytes())
	golden(t, "check.golden.json", js.Bytes())

	if errs, warnings := Count(findings); errs != 7 || warnings != 3 {
		t.Errorf("Count = %d errors, %d warnings; want 7 and 3", errs, warnings)
	}
	// NetworkPolicies are validated as they are read and not kept.
	if x.ObjectsRead != 6 || len(x.Objects) != 5 {
		t.Errorf("ObjectsRead = %d, len(Objects) = %d; want 6 and 5", x.ObjectsRead, len(x.Objects))
	}
}

// TestCheckOrderIndependent shuffles the documents of a stream: every
// finding must stay the same but for its line, lookups included (a Service
// defined after the allowlist that names it is found).
func TestCheckOrderIndependent(t *testing.T) {
	in, err := os.ReadFile("testdata/check.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, doc := range strings.Split(string(in), "\n---\n") {
		// Leave out the duplicate (whose message names the other's line)
		// and the broken document (which swallows what follows it).
		if !strings.Contains(doc, "kind: Namespace\nmetadata:\n  name: legacy") && !strings.Contains(doc, "broken") {
			docs = append(docs, doc)
		}
	}
	docs = append(docs, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: legacy\n")
	withoutLines := func(docs []string) []Finding {
		_, fs, err := Check([]string{Stdin}, strings.NewReader(strings.Join(docs, "\n---\n")), nil, validation.Config{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range fs {
			fs[i].Line = 0
		}
		SortFindings(fs)
		return fs
	}
	want := withoutLines(docs)
	if len(want) != 8 {
		t.Fatalf("got %d findings, want 8: %v", len(want), want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		shuffled := append([]string(nil), docs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(want, withoutLines(shuffled)); diff != "" {
			t.Fatalf("shuffle %d changed the findings (-want +got):\n%s", i, diff)
		}
	}

	// Files given in any order give identical output, lines included.
	dir := t.TempDir()
	var paths []string
	for i, doc := range docs {
		p := filepath.Join(dir, string(rune('a'+i))+".yaml")
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	_, first, err := Check(paths, nil, nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		rng.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
		_, again, err := Check(paths, nil, nil, validation.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("paths %v changed the findings (-want +got):\n%s", paths, diff)
		}
	}
}

func TestFindingString(t *testing.T) {
	tests := []struct {
		f    Finding
		want string
	}{
		{Finding{File: "a.yaml", Line: 3, Kind: "NetworkAllowlist", Namespace: "ns", Name: "n", Field: "spec.ingress[0]", Message: "bad", Severity: SeverityError},
			"a.yaml:3: NetworkAllowlist/ns/n: spec.ingress[0]: bad"},
		{Finding{File: "a.yaml", Line: 3, Kind: "Namespace", Name: "n", Message: "meh", Severity: SeverityWarning},
			"a.yaml:3: warning: Namespace/n: meh"},
		{Finding{File: "<stdin>", Line: 9, Message: "invalid YAML: x", Severity: SeverityError},
			"<stdin>:9: invalid YAML: x"},
		{Finding{File: ClusterSource, Kind: "NetworkAllowlist", Namespace: "ns", Name: "n", Message: "m", Severity: SeverityWarning},
			"<cluster>: warning: NetworkAllowlist/ns/n: m"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestWriteJSONEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "[]\n" {
		t.Errorf("WriteJSON(nil) = %q, want %q", b.String(), "[]\n")
	}
}

// TestCheckReservedPolicyName: issue 20, case 9. A NetworkPolicy under a
// name moat writes, without moat's label, is reported at its name; moat's
// own (labelled) is not.
func TestCheckReservedPolicyName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "squat.yaml")
	if err := os.WriteFile(path, []byte(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: moat-default-ingress
  namespace: shop
spec:
  podSelector: {}
  ingress:
  - {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: moat-default-egress
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: moat
spec:
  podSelector: {}
  policyTypes: [Egress]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, findings, err := Check([]string{path}, nil, nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Finding{{
		File: path, Line: 1, Kind: "NetworkPolicy", Namespace: "shop", Name: "moat-default-ingress", Field: "metadata.name",
		Message:  validation.ValidateNetworkPolicyName(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "moat-default-ingress"}})[0].Detail,
		Severity: SeverityWarning,
	}}
	if diff := cmp.Diff(want, findings); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}
