package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	"moat.dev/moat/test/corpus"
)

// readBothPaths reads in with and without the fast path.
func readBothPaths(t *testing.T, in []byte) (fast, full *objectCollector) {
	t.Helper()
	defer func() { useFastPath = true }()
	for _, on := range []bool{true, false} {
		useFastPath = on
		c := &objectCollector{}
		if err := Read("f", bytes.NewReader(in), c); err != nil {
			t.Fatal(err)
		}
		if on {
			fast = c
		} else {
			full = c
		}
	}
	return fast, full
}

// objectCollector keeps everything Read hands over, objects whole.
type objectCollector struct {
	objects []Object
	errors  []*Error
}

func (c *objectCollector) Object(o Object) { c.objects = append(c.objects, o) }
func (c *objectCollector) Error(e *Error)  { c.errors = append(c.errors, e) }

// fastPathSeeds are documents inside the subset, next to ones just outside
// it (which the full path must read).
var fastPathSeeds = []string{
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    moat.dev/isolated: \"true\"\n    team: blue # c\n",
	"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n  - port: 81\n  selector: {}\n",
	"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np\n  namespace: p\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n" +
		"  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except: [10.1.0.0/16]\n    ports:\n    - protocol: TCP\n      port: 80\n      endPort: 90\n  egress: []\n",
	"apiVersion: moat.dev/v1alpha1\nkind: NetworkAllowlist\nmetadata:\n  name: al\nspec:\n  egress:\n  -   to:\n      - service:\n          name: web\n        namespace: x\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name:\n  labels:\n    a: 'x y'\n    b: \"1\"\n    c:\n",
	// Just outside: YAML 1.1 booleans, octal, hex, floats, continued
	// scalars, duplicate keys, unknown fields, '#' in quotes, timestamps,
	// items, an empty name.
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: on\n",
	"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 010\n  - port: 0x50\n  - port: 80.0\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n    b\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  nmae: a\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: 'a#b'\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: 2001-01-01\n",
	"kind: Namespace\napiVersion: v1\nitems: []\nmetadata: {name: a}\n",
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: {a: b}\n  finalizers:\n  - x\n  -\n  - y\n",
}

// FuzzFastPath compares Read with and without the fast path: the same
// objects (typed, whole), positions, unknown fields and errors, in the same
// order. FuzzReadLikeKubectl compares the full path with kubectl.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastPathSeeds {
		f.Add([]byte(s))
	}
	for _, d := range corpus.Documents(corpus.Options{NetworkPolicies: 10}) {
		f.Add(d)
	}
	for _, d := range corpus.TenantCross(1) {
		f.Add(d)
	}
	for _, d := range corpus.ServicePortCross(1) {
		f.Add(d)
	}
	for _, s := range differentialSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, full := readBothPaths(t, in)
		if len(fast.objects) != len(full.objects) || len(fast.errors) != len(full.errors) {
			t.Fatalf("%q: fast path %d objects, %d errors; full path %d objects, %d errors", in, len(fast.objects), len(fast.errors), len(full.objects), len(full.errors))
		}
		for i := range fast.errors {
			if *fast.errors[i] != *full.errors[i] {
				t.Fatalf("%q: error %d: fast path %v, full path %v", in, i, fast.errors[i], full.errors[i])
			}
		}
		for i, o := range fast.objects {
			w := full.objects[i]
			if o.Position != w.Position || o.Kind != w.Kind || fmt.Sprint(o.Unknown) != fmt.Sprint(w.Unknown) || !equality.Semantic.DeepEqual(o.Object, w.Object) {
				got, _ := json.Marshal(o.Object)
				want, _ := json.Marshal(w.Object)
				t.Fatalf("%q: object %d: fast path %s %s %v %s, full path %s %s %v %s", in, i, o.Position, o.Kind, o.Unknown, got, w.Position, w.Kind, w.Unknown, want)
			}
		}
	})
}

// TestFastPathTakesTheCorpus: the documents of the benchmark corpus and of
// the N × N shapes are inside the subset (so the fast path is what the
// figures of docs/benchmarks.md measure), and the seeds outside it are not.
func TestFastPathTakesTheCorpus(t *testing.T) {
	docs := corpus.Documents(corpus.Options{NetworkPolicies: 100})
	docs = append(docs, corpus.TenantCross(3)...)
	docs = append(docs, corpus.ServicePortCross(3)...)
	for _, s := range fastPathSeeds[:5] {
		docs = append(docs, []byte(s))
	}
	for _, d := range docs {
		if _, ok := fastObject("f", rawDoc{yaml: d, line: 1}); !ok {
			t.Errorf("outside the fast path:\n%s", d)
		}
	}
	for _, s := range fastPathSeeds[5:] {
		for _, d := range strings.Split(s, "---\n") {
			if o, ok := fastObject("f", rawDoc{yaml: []byte(d), line: 1}); ok {
				t.Errorf("taken by the fast path as %+v:\n%s", o.Object, d)
			}
		}
	}
}
