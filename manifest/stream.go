package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	textunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// This file cuts a stream into documents exactly as `kubectl apply -f` does
// (k8s.io/cli-runtime's FileVisitor and StreamVisitor, which read through
// apimachinery's YAMLOrJSONDecoder), remembering the line of each document.
// The cutting rules are those of apimachinery's YAMLOrJSONDecoder, YAMLReader
// and LineReader, restated here only to count lines; every conversion is made
// by the libraries kubectl calls. FuzzReadLikeKubectl compares the result with
// kubectl's own code.

// sniffSize is how much of a stream kubectl looks at to tell JSON from YAML.
const sniffSize = 4096

// rawDoc is one document of a stream: its JSON (what kubectl's decoder hands
// to the object decoder; for YAML, once toJSON has run) or the reason it
// could not be read, and the line of its first byte (for YAML: of its first
// line that is neither blank nor a comment).
type rawDoc struct {
	line int
	json []byte
	err  string
	// yaml is the YAML source of the document, whose first line is line
	// yamlLine of the input; nil for JSON.
	yaml     []byte
	yamlLine int
}

// kubectlReader returns what kubectl reads from a file or stdin: the bytes
// decoded as UTF-8 (invalid sequences replaced by U+FFFD), or as UTF-16 when
// they start with a UTF-16 byte order mark; a UTF-8 byte order mark is dropped.
func kubectlReader(r io.Reader) io.Reader {
	return transform.NewReader(r, textunicode.BOMOverride(textunicode.UTF8.NewDecoder()))
}

// ioErrReader remembers the first error of r other than io.EOF, so that a
// failed read is told apart from bad content.
type ioErrReader struct {
	r   io.Reader
	err error
}

func (e *ioErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// splitStream reads r (already through kubectlReader) and passes each
// document to fn, in order. The returned error is an I/O error.
func splitStream(r io.Reader, fn func(rawDoc)) error {
	in := &ioErrReader{r: r}
	br := bufio.NewReaderSize(in, 64<<10)
	head, _ := br.Peek(sniffSize)
	if in.err != nil {
		return in.err
	}
	if utilyaml.IsJSONBuffer(head) {
		return splitJSON(br, in, fn)
	}
	return splitYAML(br, 1, in, fn)
}

// splitJSON reads a stream of JSON values. Like kubectl, when the first or
// second value is not valid JSON it reads the rest of the stream (from the
// end of the last good value) as YAML; a later invalid value ends the stream
// with an error.
func splitJSON(br *bufio.Reader, in *ioErrReader, fn func(rawDoc)) error {
	lc := &lineCounter{r: br}
	dec := json.NewDecoder(lc)
	for count := 0; ; count++ {
		var ext runtime.RawExtension
		err := dec.Decode(&ext)
		if in.err != nil {
			return in.err
		}
		if err == io.EOF {
			return nil
		}
		if err == nil {
			raw := bytes.TrimSpace(ext.Raw)
			if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
				fn(rawDoc{line: lc.lineAt(dec.InputOffset() - int64(len(ext.Raw))), json: raw})
			}
			continue
		}
		end := dec.InputOffset()
		line := lc.lineAt(end)
		msg, at := "invalid JSON: "+strings.TrimPrefix(err.Error(), "json: "), end
		var se *json.SyntaxError
		if errors.As(err, &se) {
			at = se.Offset
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			msg, at = "invalid JSON: unexpected end of input", lc.off
		}
		bad := rawDoc{line: lc.lineAt(at), err: msg}
		if count > 1 {
			fn(bad)
			return nil
		}
		// Read the rest as YAML, as kubectl's decoder does; when its first
		// document is not YAML either, kubectl reports the JSON error.
		rest := bufio.NewReaderSize(io.MultiReader(dec.Buffered(), br), 64<<10)
		nl, ok := skipSpaceBeforeYAML(rest)
		if !ok {
			fn(bad)
			return nil
		}
		first := true
		return splitYAML(rest, line+nl, in, func(d rawDoc) {
			if first {
				// Converted here: kubectl's decoder tells the first
				// document's failure apart.
				first = false
				if !d.toJSON() {
					return
				}
				if d.err != "" {
					d = bad
				}
			}
			fn(d)
		})
	}
}

// skipSpaceBeforeYAML consumes what kubectl's decoder skips before reading
// YAML after JSON: white space up to and including the first line feed. It
// looks at four bytes at a time, like kubectl, and fails (kubectl then
// reports the JSON error) when fewer than four are left or a byte sequence is
// not UTF-8. nl is 1 when a line feed was consumed.
func skipSpaceBeforeYAML(br *bufio.Reader) (nl int, ok bool) {
	for {
		buf, err := br.Peek(4)
		if err != nil {
			return 0, false
		}
		r, sz := utf8.DecodeRune(buf)
		if r == utf8.RuneError || sz == 0 {
			return 0, false
		}
		if !unicode.IsSpace(r) {
			return 0, true
		}
		_, _ = br.Discard(sz)
		if r == '\n' {
			return 1, true
		}
	}
}

// splitYAML cuts a YAML stream into documents at "---" lines, whose first line
// is line first of the input, and converts each to JSON with sigs.k8s.io/yaml
// as kubectl does. Unlike kubectl, which stops reading a stream at its first
// bad document, it goes on with the next one.
func splitYAML(br *bufio.Reader, first int, in *ioErrReader, fn func(rawDoc)) error {
	var (
		buf    bytes.Buffer
		text   []byte
		line   = first - 1 // the line last read
		start  int         // the line of buf's first line
		tooBig bool        // buf holds the start of a document past MaxDocumentBytes
	)
	pending := func() bool { return buf.Len() != 0 || tooBig }
	emit := func() {
		if tooBig {
			buf.Reset()
			tooBig = false
			fn(rawDoc{line: start, err: tooBigMessage})
			return
		}
		// Hand the bytes over (no copy: a document may be large) and
		// start the next one with room for as much.
		doc := buf.Bytes()
		buf = bytes.Buffer{}
		buf.Grow(min(len(doc), 64<<10))
		fn(rawDoc{line: start + contentLine(doc), yaml: doc, yamlLine: start})
	}
	for {
		var err error
		text, err = readLine(br, text[:0])
		if in.err != nil {
			return in.err
		}
		line++
		if bytes.HasPrefix(text, []byte("---")) {
			if rest := strings.TrimSpace(string(text[3:])); rest != "" && rest[0] != '#' {
				if pending() {
					emit()
				}
				fn(rawDoc{line: line, err: fmt.Sprintf("invalid document separator %q", rest) + `: a line that starts with "---" ends a document and may hold only a comment after it`})
				continue
			}
			if pending() {
				emit()
				continue
			}
			if err == io.EOF {
				return nil
			}
		}
		if err == io.EOF {
			if pending() {
				emit()
			}
			return nil
		}
		if !pending() {
			start = line
		}
		if buf.Len()+len(text) > maxDocumentBytes {
			// Drop the rest; the document is reported at its end.
			tooBig = true
			text = text[:0]
		}
		buf.Write(text)
	}
}

// toJSON converts a YAML document to JSON as kubectl does (sigs.k8s.io/yaml
// into a RawExtension), once its aliases are known to expand within the
// document limit (checkAliases). It returns false for an empty document (only
// comments, or null), which kubectl skips.
func (d *rawDoc) toJSON() bool {
	if d.err != "" || d.json != nil {
		return true
	}
	if msg := checkAliases(d.yaml); msg != "" {
		d.err = msg
		return true
	}
	var ext runtime.RawExtension
	if err := yaml.Unmarshal(d.yaml, &ext); err != nil {
		d.line, d.err = yamlErrorLine(err, d.yamlLine, d.yaml)
		return true
	}
	raw := bytes.TrimSpace(ext.Raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return false
	}
	d.json = raw
	return true
}

// readLine reads one line the way apimachinery's LineReader does: up to a line
// feed, a "\r\n" counting as one, always ending in "\n", appended to buf.
// err is io.EOF when nothing was left.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	var (
		isPrefix = true
		err      error
		part     []byte
	)
	for isPrefix && err == nil {
		part, isPrefix, err = br.ReadLine()
		buf = append(buf, part...)
	}
	return append(buf, '\n'), err
}

// contentLine returns the 0-based index of the first line of a YAML document
// that is neither blank nor a comment (0 when there is none).
func contentLine(doc []byte) int {
	for n := 0; len(doc) > 0; n++ {
		text, rest, _ := bytes.Cut(doc, []byte("\n"))
		if t := bytes.TrimSpace(text); len(t) > 0 && t[0] != '#' && t[0] != '%' && !bytes.HasPrefix(text, []byte("---")) {
			return n
		}
		doc = rest
	}
	return 0
}

// yamlErrorLine places a YAML error of a document whose first line is start:
// go-yaml's messages begin with "yaml: line N: " (1-based in the document).
func yamlErrorLine(err error, start int, doc []byte) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	line := start + contentLine(doc)
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		n := 0
		if _, scanErr := fmt.Sscanf(num, "%d", &n); found && scanErr == nil && n > 0 {
			last := bytes.Count(bytes.TrimRight(doc, "\n"), []byte("\n")) + 1
			line, msg = start+min(n, last)-1, text
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return line, "invalid YAML: " + msg
}

// lineCounter counts the lines of the bytes it passes on, keeping the
// offsets of the line feeds that have not been asked about yet.
type lineCounter struct {
	r        io.Reader
	off      int64
	newlines []int64
	passed   int // line feeds before newlines[0]
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		c.newlines = append(c.newlines, c.off+int64(i+j))
		i += j + 1
	}
	c.off += int64(n)
	return n, err
}

// lineAt returns the 1-based line of a byte offset. Offsets must not
// decrease from one call to the next.
func (c *lineCounter) lineAt(off int64) int {
	i := 0
	for i < len(c.newlines) && c.newlines[i] < off {
		i++
	}
	c.passed += i
	c.newlines = c.newlines[i:]
	return c.passed + 1
}
