package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// sameAsYAMLToJSON checks that when the fast path accepts a document, its JSON
// means exactly what sigs.k8s.io/yaml.YAMLToJSON makes of it.
func sameAsYAMLToJSON(t *testing.T, doc []byte) (accepted bool) {
	t.Helper()
	var hd header
	fast, _, ok := fastYAMLToJSON(doc, nil, &hd, nil)
	if !ok {
		return false
	}
	slow, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatalf("fast path accepted %q, which YAMLToJSON rejects: %v", doc, err)
	}
	var fastValue, slowValue any
	if err := json.Unmarshal(fast, &fastValue); err != nil {
		t.Fatalf("fast path wrote invalid JSON %s for %q: %v", fast, doc, err)
	}
	if err := json.Unmarshal(slow, &slowValue); err != nil {
		t.Fatalf("YAMLToJSON wrote invalid JSON %s: %v", slow, err)
	}
	if !reflect.DeepEqual(fastValue, slowValue) {
		t.Fatalf("for %q the fast path wrote\n%s\nand YAMLToJSON\n%s", doc, fast, slow)
	}
	var slowHeader header
	if json.Unmarshal(slow, &slowHeader) == nil {
		for _, f := range []struct{ fast, slow string }{
			{hd.APIVersion, slowHeader.APIVersion}, {hd.Kind, slowHeader.Kind},
			{hd.Metadata.Name, slowHeader.Metadata.Name}, {hd.Metadata.Namespace, slowHeader.Metadata.Namespace},
		} {
			if f.fast != "" && f.fast != f.slow {
				t.Fatalf("for %q the fast path read header %+v, YAMLToJSON %+v", doc, hd, slowHeader)
			}
		}
	}
	return true
}

func TestFastYAMLToJSON(t *testing.T) {
	accepted := []string{
		"a: b",
		"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    moat.dev/isolated: \"true\"\n",
		"a:\n- 1\n- b\n-\n- - c\n  - d\n- e: f\n  g: h\n",
		"a:\n  - b: 1\n    c: [1, two, 'three', \"four\", -5]\n  -   z: {}\n      w: []\n",
		"- top\n- level\n",
		"a: {b: {c: [1, 2, {d: e}]}, f: g}  # comment\n",
		"a: yes\nb: No\nc: on\nd: OFF\ne: ~\nf: null\ng:\nh: 'it''s'\ni: 10.1.0.0/24\nj: 10.96.0.10\nk: 2001:db8::/64\nl: -1\nm: 0\nurl: http://x:80/y\n",
		"# comment\na: b # trailing\n  # indented comment\nc: d#not-a-comment\n",
		"\"quoted key\": 1\n'single': 2\n",
		"a: ünïcode ✓\n",
	}
	for _, doc := range accepted {
		if !sameAsYAMLToJSON(t, []byte(doc)) {
			t.Errorf("fast path declined %q; want it handled", doc)
		}
	}
	declined := []string{
		"a: &anchor b\nc: *anchor\n",
		"a: !!str 1\n",
		"a: |\n  text\n",
		"a: >\n  text\n",
		"a: \"esc\\\"aped\"\n",
		"a: 1.5\n",
		"a: 0x1F\n",
		"a: 2024-01-01\n",
		"a: .inf\n",
		"a:\tb\n",
		"a: b\r\n",
		"a: multi\n  line\n",
		"a: b\na: c\n",
		"80: x\n",
		"true: x\n",
		"<<: {a: b}\n",
		"? complex\n: key\n",
		"a: [1, 2,\n  3]\n",
		"a: [1, 2,]\n",
		"y: 1\n", // y is the boolean true in YAML 1.1, so the key becomes "true"
		"scalar\n",
		"a: b: c\n",
		"a:\n    b: 1\n  c: 2\n",
		"%YAML 1.1\n---\na: b\n",
		"a: " + strings.Repeat("[", 101) + strings.Repeat("]", 101) + "\n",
		"'" + strings.Repeat("k", 1001) + "': v\n",
	}
	for _, doc := range declined {
		if _, _, ok := fastYAMLToJSON([]byte(doc), nil, &header{}, nil); ok {
			t.Errorf("fast path accepted %q; want it left to YAMLToJSON", doc)
		}
	}
}

func TestFastYAMLToJSONHeader(t *testing.T) {
	doc := "apiVersion: moat.dev/v1alpha1\nkind: NetworkAllowlist\nmetadata:\n  labels:\n    name: not-this\n  name: web\n  namespace: 'demo'\nspec:\n  kind: nor-this\n  name: nor-that\n"
	var hd header
	if _, _, ok := fastYAMLToJSON([]byte(doc), nil, &hd, nil); !ok {
		t.Fatal("declined")
	}
	if hd.APIVersion != "moat.dev/v1alpha1" || hd.Kind != "NetworkAllowlist" || hd.Metadata.Name != "web" || hd.Metadata.Namespace != "demo" || hd.itemLines != nil {
		t.Errorf("header = %+v; want moat.dev/v1alpha1, NetworkAllowlist, web, demo and no items", hd)
	}

	list := "apiVersion: v1\nkind: List\nitems:\n- kind: A\n  nested:\n  - not: an item\n# comment\n-   kind: B\n- [flow]\n"
	hd = header{}
	if _, _, ok := fastYAMLToJSON([]byte(list), nil, &hd, nil); !ok {
		t.Fatal("declined the list")
	}
	if diff := cmp.Diff([]int{3, 7, 8}, hd.itemLines); diff != "" {
		t.Errorf("item lines (-want +got):\n%s", diff)
	}
}

// FuzzFastYAMLToJSON checks the fast path against YAMLToJSON on arbitrary
// documents: whatever it accepts must convert to the same value.
func FuzzFastYAMLToJSON(f *testing.F) {
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
	f.Add([]byte("a: {b: [1, 'x', \"y\"]}\nc:\n- d: e\n  f: -1\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameAsYAMLToJSON(t, doc)
	})
}
