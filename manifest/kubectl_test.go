package manifest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"moat.dev/moat/validation"
)

// read is one object or refused document as both readers see it.
type read struct {
	APIVersion, Kind, Namespace, Name string
	Object                            map[string]any
}

// readLikeKubectl reads a file with kubectl's own code for `kubectl apply -f
// FILE` (see applyLikeKubectl).
func readLikeKubectl(t *testing.T, path string) ([]read, error) {
	t.Helper()
	infos, err := applyLikeKubectl(t, Source{Filenames: []string{path}})
	out := make([]read, len(infos))
	for i, info := range infos {
		out[i] = info.Read
	}
	return out, err
}

func readOf(u *unstructured.Unstructured) read {
	return read{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Object: u.Object}
}

// readLikeMoat reads a file with ReadUnstructured (what moat validate reads
// before decoding the kinds it checks).
func readLikeMoat(t *testing.T, path string) (objs []read, errs []*Error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = ReadUnstructured(path, f, func(_ Position, u *unstructured.Unstructured) {
		objs = append(objs, readOf(u))
	}, func(e *Error) { errs = append(errs, e) })
	if err != nil {
		t.Fatalf("ReadUnstructured returned an I/O error for a file: %v", err)
	}
	return objs, errs
}

// differentialSeeds are the cases where moat once read something other than
// what kubectl applies (issue 12), and the corners of kubectl's decoder.
var differentialSeeds = map[string]string{
	// U+2028, U+2029 and U+0085 end a comment for kubectl's YAML decoder.
	"ls-after-comment":  "apiVersion: moat.dev/v1alpha1\nkind: NetworkAllowlist\nmetadata: {name: a, namespace: p}\nspec:\n  ingress:\n  - from:\n    - namespace: friend # reviewed\u2028    - namespace: attacker\n",
	"ps-after-comment":  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: p\n  labels:\n    moat.dev/isolated: \"true\" # on\u2029    moat.dev/isolated: \"false\"\n",
	"nel-after-comment": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: p # x\u0085  namespace: q\n",
	// Duplicate items in a JSON List: kubectl takes the last array.
	"json-list-duplicate-items": `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"first"}}],` +
		`"items":[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"last","namespace":"p"},"spec":{"podSelector":{},"ingress":[{"ports":[{"port":99999}]}]}}]}`,
	// Header fields are matched case-sensitively.
	"json-Kind":   `{"apiVersion":"networking.k8s.io/v1","Kind":"ConfigMap","kind":"NetworkPolicy","metadata":{"name":"np"},"spec":{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.1.0.1/24"}}],"ports":[{"protocol":"SCTP","port":99999}]}]}}`,
	"yaml-kelvin": "apiVersion: networking.k8s.io/v1\n\u212aind: ConfigMap\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{protocol: SCTP, port: 99999}]\n",
	// "..." ends a YAML document; kubectl reads nothing after it until "---".
	"document-end": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n...\napiVersion: v1\nkind: Namespace\nmetadata: {name: hidden}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
	// Duplicate keys: the last one wins, whole (not merged).
	"json-duplicate-keys": `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","labels":{"x":"1"}},"metadata":{"name":"b"}}`,
	"yaml-duplicate-keys": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n",
	// JSON then YAML: kubectl reads the rest as YAML after a bad first or
	// second JSON value.
	"json-then-yaml":    "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
	"yaml-flow-mapping": "{apiVersion: v1, kind: Namespace, metadata: {name: a}}\n",
	"json-bad-third":    `{"kind":"A","apiVersion":"v1"} {"kind":"B","apiVersion":"v1"} {x}`,
	// Separators, comments, CRLF, BOMs, nulls.
	"separators":     "---\n---\n# only a comment\n---   # c\napiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n--- \n\n",
	"bad-separator":  "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- b: c\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
	"utf8-bom":       "\ufeffapiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
	"utf16-bom":      "\xff\xfea\x00:\x00 \x00b\x00\n\x00",
	"invalid-utf8":   "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {x: \"\xff\"}}\n",
	"null-documents": "null\n---\n~\n---\n[]\n",
	// Lists: typed lists name their items' kind; nested Lists are refused.
	"typed-list":  "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: a}\n- kind: NetworkPolicy\n  metadata: {name: b}\n",
	"nested-list": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: a}\n",
	"items-null":  "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nitems: null\n",
	"not-object":  "- a\n- b\n---\n\"text\"\n---\n5\n",
	"no-kind":     "apiVersion: v1\nmetadata: {name: a}\n",
	"bad-meta":    "apiVersion: v1\nkind: Namespace\nmetadata: {name: 5}\n",
	"yaml-error":  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n   labels: {}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
	"numbers":     "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80.0}, {port: 1e2}, {port: 0x50}]}\n",
	// Anchors, aliases and merge keys within the alias bound.
	"aliases": "apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: &l {app: web}}\nspec:\n  selector: *l\n  ports:\n  - &p {port: 80, protocol: TCP}\n  - {<<: *p, port: 81}\n",
}

// FuzzReadLikeKubectl compares what moat reads from arbitrary bytes with what
// `kubectl apply -f` reads from them, through kubectl's own library code:
// when kubectl reads without error, moat reads the same objects (apiVersion,
// kind, namespace, name and the whole decoded object) in the same order and
// reports no error; when kubectl refuses something, moat reports an error too
// and the objects kubectl would still apply are the first ones moat read.
func FuzzReadLikeKubectl(f *testing.F) {
	for _, in := range differentialSeeds {
		f.Add([]byte(in))
	}
	addFileSeeds(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		path := filepath.Join(dir, "in.yaml")
		if err := os.WriteFile(path, in, 0o600); err != nil {
			t.Fatal(err)
		}
		got, errs := readLikeMoat(t, path)
		if pastAliasBound(errs) {
			return // outside the bounds: kubectl would expand it all
		}
		want, kubectlErr := readLikeKubectl(t, path)
		if kubectlErr == nil {
			if len(errs) > 0 {
				t.Fatalf("kubectl reads %q without error; moat reports %v", in, errs)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("read of %q (-kubectl +moat):\n%s", in, diff)
			}
			return
		}
		if len(errs) == 0 {
			t.Fatalf("kubectl refuses %q (%v); moat reports no error", in, kubectlErr)
		}
		if len(got) < len(want) {
			t.Fatalf("kubectl applies %d objects of %q despite %v; moat reads only %d", len(want), in, kubectlErr, len(got))
		}
		if diff := cmp.Diff(want, got[:len(want)], cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("read of %q, which kubectl refuses in part (%v) (-kubectl +moat):\n%s", in, kubectlErr, diff)
		}
	})
}

// pastAliasBound reports whether moat refused a document for the expanded
// size of its aliases, a bound that kubectl does not have.
func pastAliasBound(errs []*Error) bool {
	return slices.ContainsFunc(errs, func(e *Error) bool { return e.Message == aliasMessage || e.Message == aliasUnreadMessage })
}

// TestReadLikeKubectlCases pins what the issue-12 cases read: the value that
// kubectl applies, never the one a reviewer might see first.
func TestReadLikeKubectlCases(t *testing.T) {
	dir := t.TempDir()
	tests := map[string][]seen{
		"ls-after-comment":          {{Pos: "f:1", Kind: "NetworkAllowlist", Namespace: "p", Name: "a"}},
		"json-list-duplicate-items": {{Pos: "f:1", Kind: "NetworkPolicy", Namespace: "p", Name: "last"}},
		// kubectl sends "Kind" along, and the API server rejects it as an
		// unknown field.
		"json-Kind":           {{Pos: "f:1", Kind: "NetworkPolicy", Namespace: "default", Name: "np", Unknown: []string{"Kind"}}},
		"yaml-kelvin":         {{Pos: "f:1", Kind: "NetworkPolicy", Namespace: "default", Name: "np", Unknown: []string{"\u212aind"}}},
		"document-end":        {{Pos: "f:1", Kind: "Namespace", Name: "a"}, {Pos: "f:9", Kind: "Namespace", Name: "b"}},
		"json-duplicate-keys": {{Pos: "f:1", Kind: "Namespace", Name: "b"}},
		"nested-list":         {{Pos: "f:4", Kind: "List", Error: "items[0]: a List inside a List: kubectl refuses the whole List document; move the inner items up"}},
		"bad-separator": {
			{Pos: "f:1", Kind: "Namespace", Name: "a"},
			{Pos: "f:4", Error: `invalid document separator "b: c": a line that starts with "---" ends a document and may hold only a comment after it`},
			{Pos: "f:5", Kind: "Namespace", Name: "b"},
		},
		"json-bad-third": {{Pos: "f:1", Error: "invalid JSON: invalid character 'x' looking for beginning of object key string"}},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			var c collector
			if err := Read("f", strings.NewReader(differentialSeeds[name]), &c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, c.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// The values are those kubectl applies.
	x, findings, err := Check([]string{writeSeed(t, dir, "ls-after-comment"), writeSeed(t, dir, "ps-after-comment"), writeSeed(t, dir, "json-Kind")}, nil, nil, validation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	al, _ := x.Allowlists("p")
	if len(al) != 1 || len(al[0].Spec.Ingress[0].From) != 2 || al[0].Spec.Ingress[0].From[1].Namespace != "attacker" {
		t.Errorf("allowlist read as %+v, want the peers friend and attacker", al)
	}
	ns, _ := x.Namespace("p")
	if ns == nil || ns.Labels["moat.dev/isolated"] != "false" {
		t.Errorf("namespace read as %+v, want moat.dev/isolated=false", ns)
	}
	var npFields []string
	for _, f := range findings {
		if f.Kind == "NetworkPolicy" {
			npFields = append(npFields, f.Field)
		}
	}
	// metadata.namespace: the tenant rule depends on the namespace that
	// kubectl apply chooses.
	wantFields := []string{"Kind", "metadata.namespace", "spec.ingress[0].from[0].ipBlock.cidr", "spec.ingress[0].ports[0].port", "spec.ingress[0].ports[0].protocol"}
	if diff := cmp.Diff(wantFields, npFields); diff != "" {
		t.Errorf("findings on the NetworkPolicy behind \"Kind\" (-want +got):\n%s\nall: %v", diff, findings)
	}
}

func writeSeed(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(differentialSeeds[name]), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadLikeKubectlSeeds runs every seed through both readers (the fuzz
// target's seed corpus runs too; this names each case).
func TestReadLikeKubectlSeeds(t *testing.T) {
	dir := t.TempDir()
	for name := range differentialSeeds {
		t.Run(name, func(t *testing.T) {
			path := writeSeed(t, dir, name)
			want, kubectlErr := readLikeKubectl(t, path)
			got, errs := readLikeMoat(t, path)
			if (kubectlErr != nil) != (len(errs) > 0) {
				t.Fatalf("kubectl error %v; moat errors %v", kubectlErr, errs)
			}
			if len(got) < len(want) || !cmp.Equal(want, got[:len(want)], cmpopts.EquateEmpty()) {
				t.Fatalf("(-kubectl +moat):\n%s", cmp.Diff(want, got))
			}
			if kubectlErr == nil && len(got) != len(want) {
				t.Fatalf("moat reads %d objects, kubectl %d", len(got), len(want))
			}
		})
	}
}
