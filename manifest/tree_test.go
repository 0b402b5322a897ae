package manifest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/resource"
)

// sourced is an object read and the file it came from.
type sourced struct {
	File string
	Read read
}

// tree is a directory tree and the arguments of `kubectl apply`, built from
// fuzz bytes: files with the extensions kubectl reads and some it does not,
// in nested and dot-directories, symbolic links to files, to directories,
// to themselves and to nothing, the same Namespace defined in several files,
// and -f arguments naming files, directories, glob patterns and missing
// paths, with or without -R.
type tree struct {
	root string
	src  Source
	// desc describes the tree and the arguments for failure messages.
	desc []string
}

var (
	treeDirs  = []string{"", "a", "a-b", ".ci", "a/.h", "a/sub", "a-b/x"}
	treeNames = []string{"x", "y", ".dot", "a", "z-1"}
	treeExts  = []string{".yaml", ".yml", ".json", ".YAML", ".txt", ""}
	treeArgs  = []string{"", "a", "a-b", ".ci", "a/sub", "*.yaml", "a*", "a/*", "*/*.y*ml", "missing", "[", "a/x.yaml", "x.yaml"}
)

// maxTreeOps bounds the entries of a generated tree.
const maxTreeOps = 16

// buildTree makes the tree that in describes below root.
func buildTree(t *testing.T, root string, in []byte) tree {
	t.Helper()
	tr := tree{root: root}
	var files []string
	for i := 0; i+2 < len(in) && i/3 < maxTreeOps; i += 3 {
		op, a, b := in[i], int(in[i+1]), int(in[i+2])
		dir := treeDirs[a%len(treeDirs)]
		name := filepath.Join(dir, treeNames[b%len(treeNames)]+treeExts[(b/8)%len(treeExts)])
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			continue // a file or link is in the way
		}
		if _, err := os.Lstat(p); err == nil {
			continue // taken
		}
		var err error
		switch op % 5 {
		case 0, 1: // a file: a Namespace, one of three names, so that some repeat
			doc := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: ns%d, labels: {op: %q}}\n", b%3, fmt.Sprint(i))
			if op%2 == 1 {
				doc = fmt.Sprintf(`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns%d", "labels": {"op": "%d"}}}`, b%3, i)
			}
			err = os.WriteFile(p, []byte(doc), 0o644)
			files = append(files, name)
			tr.desc = append(tr.desc, "file "+name)
		case 2: // a link to a file made before, or to nothing
			target := "nothing"
			if len(files) > 0 {
				target = filepath.Join(root, files[a%len(files)])
			}
			err = os.Symlink(target, p)
			tr.desc = append(tr.desc, "link "+name+" -> "+target)
		case 3: // a link to a directory
			target := filepath.Join(root, treeDirs[b%len(treeDirs)])
			err = os.Symlink(target, p)
			tr.desc = append(tr.desc, "link "+name+" -> "+target)
		case 4: // a link to itself
			err = os.Symlink(filepath.Base(p), p)
			tr.desc = append(tr.desc, "loop "+name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tr.argsFrom(in)
	return tr
}

// argsFrom picks up to three -f arguments and -R from the last bytes of in.
func (tr *tree) argsFrom(in []byte) {
	if len(in) == 0 {
		in = []byte{0}
	}
	last := int(in[len(in)-1])
	tr.src.Recursive = last&1 == 1
	for k := range 1 + (last>>1)%3 {
		arg := treeArgs[int(in[(len(in)-1-k+len(in))%len(in)]>>2)%len(treeArgs)]
		tr.src.Filenames = append(tr.src.Filenames, filepath.Join(tr.root, arg))
	}
	tr.desc = append(tr.desc, fmt.Sprintf("args %q -R=%v", tr.src.Filenames, tr.src.Recursive))
}

// applyLikeKubectl is what `kubectl apply [-R] -f ARG...` reads, through
// cli-runtime's resource builder (FileVisitor, StreamVisitor, unstructured
// decoding, List flattening), without a cluster.
func applyLikeKubectl(t *testing.T, src Source) (_ []sourced, err error) {
	t.Helper()
	defer func() {
		// kubectl would crash on such input: it applies nothing.
		if p := recover(); p != nil {
			err = fmt.Errorf("kubectl's reader panics: %v", p)
		}
	}()
	infos, err := resource.NewLocalBuilder().
		Unstructured().
		ContinueOnError().
		FilenameParam(false, &resource.FilenameOptions{Filenames: src.Filenames, Recursive: src.Recursive}).
		Flatten().
		Do().
		Infos()
	var out []sourced
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("kubectl read a %T", info.Object)
		}
		out = append(out, sourced{File: info.Source, Read: readOf(u)})
	}
	return out, err
}

// applyLikeMoat is what moat validate reads for src.
func applyLikeMoat(src Source) (out []sourced, err error) {
	err = src.Walk(nil, func(name string, r io.Reader) error {
		return ReadUnstructured(name, r, func(_ Position, u *unstructured.Unstructured) {
			out = append(out, sourced{File: name, Read: readOf(u)})
		}, func(e *Error) { err = e })
	})
	return out, err
}

// FuzzApplyLikeKubectl compares what moat reads for a directory tree and
// -f/-R arguments with what `kubectl apply` reads for them, through
// kubectl's own library code: the same objects from the same files in the
// same order when kubectl reads without error (the last definition of a
// duplicate is the same); an error from moat too when kubectl fails, and
// then what moat read is the start of what kubectl reads (kubectl goes on
// past an unreadable file and fails at the end; moat stops there).
func FuzzApplyLikeKubectl(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 0, 0, 1, 0, 0, 2, 0, 3, 5},                     // files in a/ and a-b/, -R on the root
		{0, 0, 1, 0, 3, 2, 4, 0, 0, 1 << 2, 0},                // a dot-directory; -f a
		{0, 0, 0, 2, 0, 1, 3, 0, 9, 4, 0, 1, 5 << 2, 1},       // links; a glob
		{1, 1, 16, 0, 2, 24, 0, 3, 32, 0, 4, 40, 7<<2 | 1},    // extensions kubectl skips
		{0, 0, 0, 0, 0, 1, 0, 1, 2, 0, 4, 3, 10 << 2, 2 << 1}, // duplicates; a missing path
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := buildTree(t, t.TempDir(), in)
		want, kubectlErr := applyLikeKubectl(t, tr.src)
		got, moatErr := applyLikeMoat(tr.src)
		desc := strings.Join(tr.desc, "; ")
		if kubectlErr == nil {
			if moatErr != nil {
				t.Fatalf("%s: kubectl reads without error; moat fails: %v", desc, moatErr)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s (-kubectl +moat):\n%s", desc, diff)
			}
			return
		}
		if moatErr == nil {
			t.Fatalf("%s: kubectl fails (%v); moat reads without error", desc, kubectlErr)
		}
		if len(got) > len(want) || !cmp.Equal(want[:len(got)], got, cmpopts.EquateEmpty()) {
			t.Fatalf("%s: kubectl fails (%v), moat fails (%v), and what moat read is not the start of what kubectl read (-kubectl +moat):\n%s", desc, kubectlErr, moatErr, cmp.Diff(want, got))
		}
	})
}
