// Package manifest reads Kubernetes manifests (multi-document YAML, JSON
// streams, List objects, directories, stdin) into typed objects that remember
// the file and line they came from, indexes them so that validation and policy
// lookups can be answered offline, and runs moat's validation and rendering on
// them for `moat validate` and `moat render`.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"moat.dev/moat/api/v1alpha1"
)

// Stdin is the path that stands for standard input, and StdinName the file
// name that positions of objects read from it carry.
const (
	Stdin     = "-"
	StdinName = "<stdin>"
)

// lastAppliedAnnotation holds a full copy of the object written by
// `kubectl apply`; it is dropped on read so that large inputs stay small.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Position is where an object (or a problem) starts: the file and the
// 1-based line of the first line of its document or List item.
type Position struct {
	File string
	Line int
}

// String formats the position as file:line.
func (p Position) String() string {
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Less orders positions by file name, then line.
func (p Position) Less(q Position) bool {
	if p.File != q.File {
		return p.File < q.File
	}
	return p.Line < q.Line
}

// Object is one object of a kind that moat validates or looks up, decoded
// into its typed form.
type Object struct {
	Position
	// Object is a *v1alpha1.NetworkAllowlist, *networkingv1.NetworkPolicy,
	// *corev1.Service or *corev1.Namespace. Objects without a namespace of a
	// namespaced kind are put into "default", as kubectl does.
	Object client.Object
	// Kind is the object's kind (NetworkAllowlist, NetworkPolicy, Service or
	// Namespace).
	Kind string
	// Unknown lists the fields of the input that the kind does not have (a
	// typo such as "ipblock" would otherwise be dropped silently), as field
	// paths, and duplicated fields.
	Unknown []string
}

// Error is a document that could not be read: bad YAML or JSON, a document
// that is not an object, or one without apiVersion or kind.
type Error struct {
	Position
	// Kind, Namespace and Name identify the object when they could be read.
	Kind, Namespace, Name string
	Message               string
}

// Error formats the problem as file:line: message.
func (e *Error) Error() string {
	return e.Position.String() + ": " + e.Message
}

// Handler receives every object and every read problem, in input order.
type Handler interface {
	Object(Object)
	Error(*Error)
}

// supported maps the group/kind of every type moat reads to its version and
// a constructor. Objects of other kinds are skipped without being decoded.
var supported = map[schema.GroupKind]struct {
	version    string
	namespaced bool
	newObject  func() client.Object
}{
	{Group: v1alpha1.GroupVersion.Group, Kind: "NetworkAllowlist"}: {v1alpha1.GroupVersion.Version, true, func() client.Object { return &v1alpha1.NetworkAllowlist{} }},
	{Group: networkingv1.GroupName, Kind: "NetworkPolicy"}:         {"v1", true, func() client.Object { return &networkingv1.NetworkPolicy{} }},
	{Group: corev1.GroupName, Kind: "Service"}:                     {"v1", true, func() client.Object { return &corev1.Service{} }},
	{Group: corev1.GroupName, Kind: "Namespace"}:                   {"v1", false, func() client.Object { return &corev1.Namespace{} }},
	{Group: corev1.GroupName, Kind: "Node"}:                        {"v1", false, func() client.Object { return &corev1.Node{} }},
	{Group: discoveryv1.GroupName, Kind: "EndpointSlice"}:          {"v1", true, func() client.Object { return &discoveryv1.EndpointSlice{} }},
}

// ReadPaths reads every path: a file, a directory (every .yaml, .yml and
// .json file below it, in lexical order, leaving out directories whose name
// starts with a dot such as .git) or Stdin (read from stdin). Objects
// and document problems go to h; the returned error is an I/O problem (a path
// that does not exist or cannot be read) and stops reading.
func ReadPaths(paths []string, stdin io.Reader, h Handler) error {
	stdinRead := false
	for _, p := range paths {
		if p == Stdin {
			if stdinRead {
				return fmt.Errorf("%q given more than once: stdin can be read only once", Stdin)
			}
			stdinRead = true
			if err := Read(StdinName, stdin, h); err != nil {
				return err
			}
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			if err := readFile(p, h); err != nil {
				return err
			}
			continue
		}
		var files []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir():
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir // .git, .github, ...
				}
			case !IsManifestFile(path):
			case d.Type().IsRegular():
				files = append(files, path)
			case d.Type()&fs.ModeSymlink != 0:
				if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() {
					files = append(files, path)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sort.Strings(files)
		for _, f := range files {
			if err := readFile(f, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsManifestFile reports whether a file found in a directory is read: its
// name ends in .yaml, .yml or .json.
func IsManifestFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func readFile(name string, h Handler) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return Read(name, f, h)
}

// Read reads one stream of manifests named name: YAML documents separated by
// "---" lines, or (when the first non-blank character is "{") a stream of JSON
// objects. It decodes one document at a time. The returned error is an I/O
// error; everything wrong with the content goes to h.
func Read(name string, r io.Reader, h Handler) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstNonSpace(br)
	if err != nil {
		return err
	}
	if first == '{' {
		return readJSON(name, br, h)
	}
	return readYAML(name, br, h)
}

// firstNonSpace peeks at the first byte that is not white space.
func firstNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			if err == io.EOF || err == bufio.ErrBufferFull {
				return 0, nil
			}
			return 0, err
		}
		switch c := b[n-1]; c {
		case ' ', '\t', '\r', '\n':
			if n == br.Size() {
				return 0, nil
			}
		default:
			return c, nil
		}
	}
}

// readYAML splits the stream into documents at "---" lines, the way
// kubectl's YAML reader does, and decodes each one.
func readYAML(name string, br *bufio.Reader, h Handler) error {
	var (
		doc      bytes.Buffer
		line     int // current line number
		start    int // first content line of the current document, 0 if none yet
		pastEOF  bool
		readLine []byte
		scratch  yamlScratch
	)
	flush := func() {
		if start != 0 {
			scratch.decode(name, start, doc.Bytes(), h)
		}
		if doc.Cap() > 1<<20 {
			doc = bytes.Buffer{}
		}
		doc.Reset()
		start = 0
	}
	for !pastEOF {
		var err error
		readLine, err = br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect it whole.
			long := append([]byte(nil), readLine...)
			readLine, err = br.ReadSlice('\n')
			readLine = append(long, readLine...)
		}
		if err == io.EOF {
			pastEOF = true
		} else if err != nil {
			return err
		}
		if len(readLine) == 0 {
			break
		}
		line++
		if isSeparator(readLine) {
			flush()
			continue
		}
		if start == 0 {
			if isBlankOrComment(readLine) {
				continue
			}
			start = line
		}
		doc.Write(readLine)
	}
	flush()
	return nil
}

// isSeparator reports whether a line ends a YAML document: "---" at the
// start of the line, optionally followed by white space or a comment. A
// "..." document end marker counts as well.
func isSeparator(line []byte) bool {
	var rest []byte
	switch {
	case bytes.HasPrefix(line, []byte("---")):
		rest = line[3:]
	case bytes.HasPrefix(line, []byte("...")):
		rest = line[3:]
	default:
		return false
	}
	rest = bytes.TrimSpace(rest)
	return len(rest) == 0 || rest[0] == '#'
}

func isBlankOrComment(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) == 0 || t[0] == '#' || t[0] == '%'
}

// yamlLineError matches the line number that go-yaml puts in its errors.
var yamlLineError = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: line (\d+): (.*)$`)

// yamlScratch holds buffers reused from one document to the next.
type yamlScratch struct {
	json  []byte
	lines []fastLine
}

// shrink drops buffers grown by a very large document (a List) so that
// they are not kept for the rest of the input.
func (s *yamlScratch) shrink() {
	if cap(s.json) > 1<<20 {
		s.json = nil
	}
	if cap(s.lines) > 1<<14 {
		s.lines = nil
	}
}

// decode converts one YAML document (whose first line is line start of the
// file) to JSON and decodes it.
func (s *yamlScratch) decode(name string, start int, doc []byte, h Handler) {
	var (
		hd  header
		js  []byte
		ok  bool
		err error
	)
	js, s.lines, ok = fastYAMLToJSON(doc, s.json[:0], &hd, s.lines)
	defer s.shrink()
	if ok {
		s.json = js
		var lines []int
		if hd.itemLines != nil {
			lines = make([]int, len(hd.itemLines))
			for i, n := range hd.itemLines {
				lines[i] = start + n
			}
		}
		itemLine := yamlItemLine(doc, start, lines)
		decodeJSONDocument(Position{File: name, Line: start}, js, &hd, itemLine, h)
		return
	}
	js, err = yaml.YAMLToJSON(doc)
	if err != nil {
		pos := Position{File: name, Line: start}
		msg := err.Error()
		if m := yamlLineError.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			// go-yaml may point one line past the end of the document.
			last := bytes.Count(bytes.TrimRight(doc, "\n"), []byte("\n")) + 1
			pos.Line = start + max(1, min(n, last)) - 1
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
		}
		h.Error(&Error{Position: pos, Message: "invalid YAML: " + msg})
		return
	}
	decodeJSONDocument(Position{File: name, Line: start}, js, nil, yamlItemLine(doc, start, nil), h)
}

// itemLineFunc returns the line of the i-th element of a List document's
// items, which starts at byte offset off of the document's JSON.
type itemLineFunc func(i int, off int64) int

// yamlItemLine places List items of a YAML document: by lines when known,
// else by parsing the document for positions (only when it is a List).
func yamlItemLine(doc []byte, start int, lines []int) itemLineFunc {
	computed := lines != nil
	return func(i int, _ int64) int {
		if !computed {
			lines, computed = yamlItemLines(doc, start), true
		}
		if i < len(lines) {
			return lines[i]
		}
		return start
	}
}

// yamlItemLines returns the first line of each element of the top-level
// "items" sequence of a YAML document, or nil when it cannot tell.
func yamlItemLines(doc []byte, start int) []int {
	var n yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &n); err != nil || n.Kind != yamlv3.DocumentNode || len(n.Content) != 1 {
		return nil
	}
	m := n.Content[0]
	if m.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "items" || m.Content[i+1].Kind != yamlv3.SequenceNode {
			continue
		}
		var lines []int
		for _, item := range m.Content[i+1].Content {
			lines = append(lines, start+item.Line-1)
		}
		return lines
	}
	return nil
}

// readJSON decodes a stream of JSON values.
func readJSON(name string, br *bufio.Reader, h Handler) error {
	lc := &lineCounter{r: br}
	dec := json.NewDecoder(lc)
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				h.Error(&Error{Position: Position{File: name, Line: lc.lineAt(se.Offset)}, Message: "invalid JSON: " + se.Error()})
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				h.Error(&Error{Position: Position{File: name, Line: lc.lineAt(lc.off)}, Message: "invalid JSON: unexpected end of input"})
				return nil
			}
			return err
		}
		begin := dec.InputOffset() - int64(len(raw))
		line := lc.lineAt(begin)
		decodeJSONDocument(Position{File: name, Line: line}, raw, nil, jsonItemLine(raw, line), h)
	}
}

// lineCounter counts lines of the bytes it passes on, remembering the
// offsets of the newlines that have not been asked about yet.
type lineCounter struct {
	r        io.Reader
	off      int64
	newlines []int64
	passed   int // newlines before newlines[0]
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			c.newlines = append(c.newlines, c.off+int64(i))
		}
	}
	c.off += int64(n)
	return n, err
}

// lineAt returns the 1-based line of a byte offset. Offsets must not
// decrease from one call to the next.
func (c *lineCounter) lineAt(off int64) int {
	i := sort.Search(len(c.newlines), func(i int) bool { return c.newlines[i] >= off })
	c.passed += i
	c.newlines = c.newlines[i:]
	return c.passed + 1
}

// jsonItemLine places List items of a JSON document whose first byte is on
// line first, by counting the line feeds before each item. Items must be
// asked for in order.
func jsonItemLine(raw []byte, first int) itemLineFunc {
	line, counted := first, int64(0)
	return func(_ int, off int64) int {
		if off > counted && off <= int64(len(raw)) {
			line += bytes.Count(raw[counted:off], []byte("\n"))
			counted = off
		}
		return line
	}
}

// header is the part of an object read before choosing its type.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`

	// itemLines, filled by the fast YAML path, has the 0-based line (in
	// the document) of each element of a block-style top-level items list.
	itemLines []int
}

// decodeJSONDocument decodes one document (already JSON). hd, when not nil,
// is its header, already read. itemLine places the items of List documents.
func decodeJSONDocument(pos Position, js []byte, hd *header, itemLine itemLineFunc, h Handler) {
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		return // an empty document, e.g. only comments
	}
	if js[0] != '{' {
		h.Error(&Error{Position: pos, Message: "not a Kubernetes object: expected a mapping with apiVersion and kind"})
		return
	}
	if hd == nil || hd.APIVersion == "" || hd.Kind == "" {
		hd = &header{}
		if err := json.Unmarshal(js, hd); err != nil {
			h.Error(&Error{Position: pos, Message: "cannot read apiVersion, kind and metadata: " + jsonMessage(err)})
			return
		}
	}
	decodeObject(pos, *hd, js, itemLine, h)
}

// decodeObject decodes a document or List item into its typed object, or
// reports why it cannot; kinds that moat does not read are skipped.
func decodeObject(pos Position, hd header, js []byte, itemLine itemLineFunc, h Handler) {
	fail := func(msg string) {
		if hd.Metadata.Name == "" {
			// The fast YAML path may have left out a flow-style metadata.
			var full header
			if json.Unmarshal(js, &full) == nil {
				hd.Metadata = full.Metadata
			}
		}
		h.Error(&Error{Position: pos, Kind: hd.Kind, Namespace: hd.Metadata.Namespace, Name: hd.Metadata.Name, Message: msg})
	}
	if hd.Kind == "" || hd.APIVersion == "" {
		fail("apiVersion and kind must be set on every object")
		return
	}
	gv, err := schema.ParseGroupVersion(hd.APIVersion)
	if err != nil {
		fail(fmt.Sprintf("invalid apiVersion %q: %v", hd.APIVersion, err))
		return
	}
	if strings.HasSuffix(hd.Kind, "List") && decodeList(pos, gv, strings.TrimSuffix(hd.Kind, "List"), js, itemLine, h) {
		return
	}
	t, ok := supported[gv.WithKind(hd.Kind).GroupKind()]
	if !ok {
		return // a kind moat neither validates nor looks up
	}
	if gv.Version != t.version {
		fail(fmt.Sprintf("unsupported apiVersion %q for kind %s: use %q", hd.APIVersion, hd.Kind, schema.GroupVersion{Group: gv.Group, Version: t.version}.String()))
		return
	}
	obj := t.newObject()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		fail("cannot decode: " + jsonMessage(err))
		return
	}
	obj.SetManagedFields(nil)
	if a := obj.GetAnnotations(); a != nil {
		if _, ok := a[lastAppliedAnnotation]; ok {
			delete(a, lastAppliedAnnotation)
			if len(a) == 0 {
				a = nil
			}
			obj.SetAnnotations(a)
		}
	}
	if t.namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(metav1NamespaceDefault)
	}
	o := Object{Position: pos, Object: obj, Kind: hd.Kind}
	for _, e := range strict {
		o.Unknown = append(o.Unknown, jsonMessage(e))
	}
	h.Object(o)
}

// metav1NamespaceDefault is where kubectl puts namespaced objects that name
// no namespace (with the default context).
const metav1NamespaceDefault = "default"

// decodeList decodes, one at a time, each element of the top-level items
// array of a List object; elements without apiVersion/kind take them from a
// typed list (NetworkPolicyList items are NetworkPolicies). It returns false
// when js has no items array (it is then not a List).
func decodeList(pos Position, gv schema.GroupVersion, itemKind string, js []byte, itemLine itemLineFunc, h Handler) bool {
	dec := json.NewDecoder(bytes.NewReader(js))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false
		}
		if key != "items" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return false
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return false
		}
		for i := 0; dec.More(); i++ {
			var item json.RawMessage
			if err := dec.Decode(&item); err != nil {
				h.Error(&Error{Position: pos, Message: fmt.Sprintf("items[%d]: %s", i, jsonMessage(err))})
				return true
			}
			p := pos
			p.Line = itemLine(i, dec.InputOffset()-int64(len(item)))
			decodeItem(p, gv, itemKind, i, item, h)
		}
		return true
	}
	return false
}

// decodeItem decodes the i-th element of a List.
func decodeItem(p Position, gv schema.GroupVersion, itemKind string, i int, item []byte, h Handler) {
	if len(item) == 0 || item[0] != '{' {
		h.Error(&Error{Position: p, Message: fmt.Sprintf("items[%d]: not a Kubernetes object: expected a mapping with apiVersion and kind", i)})
		return
	}
	var hd header
	if err := json.Unmarshal(item, &hd); err != nil {
		h.Error(&Error{Position: p, Message: fmt.Sprintf("items[%d]: cannot read apiVersion, kind and metadata: %s", i, jsonMessage(err))})
		return
	}
	if hd.Kind == "" && hd.APIVersion == "" && itemKind != "" {
		hd.Kind, hd.APIVersion = itemKind, gv.String()
	}
	line := p.Line
	decodeObject(p, hd, item, func(int, int64) int { return line }, h)
}

// jsonMessage strips the package prefix from encoding/json errors.
func jsonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}
