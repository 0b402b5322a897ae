package manifest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	goruntime "runtime"

	"golang.org/x/sync/semaphore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Limits on what is read; past them a document is an error (kubectl reads
// deeper or bigger documents, but moat refuses to pass them).
const (
	// MaxDocumentBytes bounds one document (a List counts as one): decoding
	// a document the way kubectl does takes up to about 35 times its size
	// in live memory (see docs/benchmarks.md), so this keeps the peak near
	// 250 MiB. It is also how many bytes of documents are decoded at the
	// same time.
	MaxDocumentBytes = 4 << 20
	// MaxNestingDepth is the deepest nesting of mappings and sequences that
	// the YAML and JSON libraries read (go-yaml and sigs.k8s.io/json stop
	// at it); deeper input is an error.
	MaxNestingDepth = 10000
)

// maxDocumentBytes is MaxDocumentBytes, lowered by tests.
var maxDocumentBytes = MaxDocumentBytes

// tooBigMessage reports a document past maxDocumentBytes.
var tooBigMessage = fmt.Sprintf("document of more than %d MiB: moat reads documents of up to %d MiB; split it (a List into several files)", MaxDocumentBytes>>20, MaxDocumentBytes>>20)

// ReadUnstructured reads one stream named name like `kubectl apply -f`: obj
// receives, in order, every object that kubectl would send to the API server
// (the items of List documents one by one), as kubectl decodes it, with its
// position; bad receives every document (or List item) that kubectl would
// refuse. Unlike kubectl, which stops at the first document it cannot read,
// it goes on with the next one where the stream allows (YAML). The returned
// error is an I/O error.
func ReadUnstructured(name string, r io.Reader, obj func(Position, *unstructured.Unstructured), bad func(*Error)) error {
	type event struct {
		pos Position
		obj *unstructured.Unstructured
		err *Error
	}
	return readParallel(r, func(d rawDoc, emit func(event)) {
		readDocument(name, d, func(pos Position, u *unstructured.Unstructured) {
			emit(event{pos: pos, obj: u})
		}, func(e *Error) { emit(event{err: e}) })
	}, func(e event) {
		if e.err != nil {
			bad(e.err)
		} else {
			obj(e.pos, e.obj)
		}
	})
}

// readDocument reads one document of a stream (see ReadUnstructured).
func readDocument(name string, d rawDoc, obj func(Position, *unstructured.Unstructured), bad func(*Error)) {
	if !d.toJSON() {
		return // empty, as kubectl skips it
	}
	pos := Position{File: name, Line: d.line}
	if d.err != "" {
		bad(&Error{Position: pos, Message: d.err})
		return
	}
	if len(d.json) > maxDocumentBytes {
		bad(&Error{Position: pos, Message: tooBigMessage})
		return
	}
	decodeDocument(pos, d, obj, bad)
}

// documentWeight is what a document counts for in readParallel's budget.
func documentWeight(d rawDoc) int64 {
	return min(int64(len(d.yaml)+len(d.json)+1), MaxDocumentBytes)
}

// readParallel cuts r (kubectlReader is applied here) into documents, runs
// work on each, on as many goroutines as the process may use, and passes what
// work emits to deliver in input order, from one goroutine. At most a few
// documents per goroutine are in flight, so memory does not grow with the
// number of documents. The error is an I/O error.
func readParallel[T any](r io.Reader, work func(rawDoc, func(T)), deliver func(T)) error {
	r = kubectlReader(r)
	workers := goruntime.GOMAXPROCS(0)
	if workers < 2 {
		return splitStream(r, func(d rawDoc) { work(d, deliver) })
	}
	type result struct {
		events []T
		weight int64
	}
	type job struct {
		doc rawDoc
		out chan result
	}
	// Bytes of documents in flight: a large document waits for the
	// smaller ones before it, and is decoded alone.
	budget := semaphore.NewWeighted(MaxDocumentBytes)
	jobs := make(chan job, workers)
	order := make(chan chan result, 2*workers)
	for range workers {
		go func() {
			for j := range jobs {
				out := result{weight: documentWeight(j.doc)}
				work(j.doc, func(t T) { out.events = append(out.events, t) })
				j.out <- out
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range order {
			res := <-c
			for _, t := range res.events {
				deliver(t)
			}
			budget.Release(res.weight)
		}
	}()
	err := splitStream(r, func(d rawDoc) {
		_ = budget.Acquire(context.Background(), documentWeight(d)) // cannot fail: no deadline
		c := make(chan result, 1)
		order <- c
		jobs <- job{doc: d, out: c}
	})
	close(jobs)
	close(order)
	<-done
	return err
}

// metadataOnly is what kubectl decodes of every document before accepting
// it (cli-runtime's metadataValidatingDecoder): typed metadata.
type metadataOnly struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
}

// decodeDocument decodes one document's JSON as kubectl does
// (UnstructuredJSONScheme, then typed metadata) and passes on the object, or
// each item of a List.
func decodeDocument(pos Position, d rawDoc, obj func(Position, *unstructured.Unstructured), bad func(*Error)) {
	if d.json[0] != '{' {
		bad(&Error{Position: pos, Message: "not a Kubernetes object: expected a mapping with apiVersion and kind"})
		return
	}
	o, _, err := unstructured.UnstructuredJSONScheme.Decode(d.json, nil, nil)
	var meta metadataOnly
	if err == nil {
		err = utiljson.Unmarshal(d.json, &meta)
	}
	if err != nil {
		// Name the object when its metadata can be read.
		_ = utiljson.Unmarshal(d.json, &meta)
		bad(&Error{Position: pos, Kind: meta.Kind, Namespace: meta.Namespace, Name: meta.Name, Message: "cannot decode: " + decodeMessage(err)})
		return
	}
	obj = withoutEmptyNamespace(obj)
	switch o := o.(type) {
	case *unstructured.Unstructured:
		obj(pos, o)
	case *unstructured.UnstructuredList:
		lines := itemLines(d, len(o.Items))
		at := func(i int) Position {
			p := pos
			if lines != nil {
				p.Line = lines[i]
			}
			return p
		}
		// kubectl refuses the whole List when an item is a List itself.
		for i := range o.Items {
			if o.Items[i].IsList() {
				bad(&Error{Position: at(i), Kind: o.Items[i].GetKind(), Message: fmt.Sprintf(
					"items[%d]: a List inside a List: kubectl refuses the whole List document; move the inner items up", i)})
				return
			}
		}
		for i := range o.Items {
			item := &o.Items[i]
			switch {
			case item.GetKind() == "":
				bad(&Error{Position: at(i), Name: item.GetName(), Message: fmt.Sprintf("items[%d]: kind is not set: kubectl refuses a List item without kind", i)})
			case item.GetAPIVersion() == "":
				bad(&Error{Position: at(i), Kind: item.GetKind(), Name: item.GetName(), Message: fmt.Sprintf("items[%d]: apiVersion is not set: kubectl refuses a List item without apiVersion", i)})
			default:
				it := *item
				obj(at(i), &it)
			}
			o.Items[i] = unstructured.Unstructured{} // the List lets go of it
		}
	}
}

// withoutEmptyNamespace drops a metadata.namespace that is empty (or null)
// before passing an object on, as kubectl does (cli-runtime's
// FilterNamespace); kubectl apply then puts namespaced kinds into the
// default namespace, as decodeObject does.
func withoutEmptyNamespace(obj func(Position, *unstructured.Unstructured)) func(Position, *unstructured.Unstructured) {
	return func(pos Position, u *unstructured.Unstructured) {
		if u.GetNamespace() == "" {
			u.SetNamespace("")
		}
		obj(pos, u)
	}
}

// decodeMessage shortens the errors of the decoders.
func decodeMessage(err error) string {
	if runtime.IsMissingKind(err) {
		return "kind is not set: kubectl refuses a document without kind"
	}
	return trimJSONPrefix(err.Error())
}

func trimJSONPrefix(s string) string {
	if len(s) > 6 && s[:6] == "json: " {
		return s[6:]
	}
	return s
}

// itemLines returns the line of each of the n items of a List document, or
// nil when they cannot be told (the items are then placed at the document).
func itemLines(d rawDoc, n int) []int {
	var lines []int
	if d.yaml != nil {
		lines = yamlItemLines(d.yaml, d.yamlLine)
	} else {
		lines = jsonItemLines(d.json, d.line)
	}
	if len(lines) != n {
		return nil
	}
	return lines
}

// yamlItemLines finds the items of the last top-level "items:" block
// sequence of a YAML document whose first line is line first: the lines that
// start with "-" at the indentation of its first item. It only places items;
// nothing is decoded from it.
func yamlItemLines(doc []byte, first int) []int {
	var (
		lines  []int
		in     bool // inside the items sequence
		indent = -1
	)
	for n := first; len(doc) > 0; n++ {
		text, rest, _ := bytes.Cut(doc, []byte("\n"))
		doc = rest
		t := bytes.TrimLeft(text, " ")
		if len(bytes.TrimSpace(t)) == 0 || t[0] == '#' {
			continue
		}
		ind := len(text) - len(t)
		if ind == 0 && bytes.HasPrefix(t, []byte("items:")) {
			if v := bytes.TrimSpace(t[len("items:"):]); len(v) == 0 || v[0] == '#' {
				lines, in, indent = nil, true, -1
				continue
			}
		}
		if !in {
			continue
		}
		isItem := t[0] == '-' && (len(t) == 1 || t[1] == ' ')
		switch {
		case indent < 0 && isItem:
			indent = ind
			lines = append(lines, n)
		case indent < 0:
			in = false
		case ind == indent && isItem:
			lines = append(lines, n)
		case ind <= indent:
			in = false
		}
	}
	return lines
}

// jsonItemLines finds the first byte of each element of the last top-level
// "items" array of a JSON document whose first byte is on line first. It
// only places items; nothing is decoded from it.
func jsonItemLines(doc []byte, first int) []int {
	var (
		lines     []int
		depth     int
		line      = first
		inItems   bool // inside the top-level items array
		wantValue bool // at depth 2 of items, before a value
		key       []byte
		lastKey   []byte
	)
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch c {
		case '\n':
			line++
		case '"':
			j := i + 1
			for j < len(doc) && doc[j] != '"' {
				if doc[j] == '\\' {
					j++
				} else if doc[j] == '\n' {
					line++
				}
				j++
			}
			if inItems && wantValue && depth == 2 {
				lines, wantValue = append(lines, line), false
			}
			if depth == 1 {
				key = doc[min(i+1, len(doc)):min(j, len(doc))]
			}
			i = j
		case ':':
			if depth == 1 {
				lastKey = key
			}
		case '{', '[':
			if inItems && wantValue && depth == 2 {
				lines, wantValue = append(lines, line), false
			}
			depth++
			if depth == 2 && c == '[' && string(lastKey) == "items" {
				lines, inItems, wantValue = nil, true, true
			}
		case '}', ']':
			depth--
			if depth == 1 {
				inItems = false
			}
		case ',':
			if inItems && depth == 2 {
				wantValue = true
			}
		case ' ', '\t', '\r':
		default:
			if inItems && wantValue && depth == 2 {
				lines, wantValue = append(lines, line), false
			}
		}
	}
	return lines
}
