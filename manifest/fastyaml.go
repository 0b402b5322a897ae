package manifest

import (
	"bytes"
	"strconv"
)

// This file converts the common subset of YAML that rendered manifests use
// (block mappings and sequences, plain scalars that are unambiguously
// strings or decimal integers, simple quoted strings, empty and one-line
// flow collections of such scalars) straight to JSON, for the fast path of
// Read (fastObject). It is no YAML parser: whatever it is not sure to read
// exactly as go-yaml v2 and sigs.k8s.io/yaml do (tabs, non-ASCII bytes,
// anchors, tags, block scalars, multi-line scalars, floats, YAML 1.1
// booleans other than true and false, octal or hex numbers, timestamps,
// duplicate keys, ...) makes it give up, and the document goes through
// kubectl's decoder as before. FuzzFastPath compares the two paths.

// fastMaxDepth and fastMaxKeys bound the nesting and the keys of one mapping
// that the fast path takes; past them it gives up.
const (
	fastMaxDepth = 32
	fastMaxKeys  = 64
)

// fastLine is one line of a document that holds something.
type fastLine struct {
	indent int
	text   []byte // without indentation, comment and trailing spaces
}

// fastDoc is what fastJSON read of a document's top level.
type fastDoc struct {
	json             []byte
	apiVersion, kind string
	hasItems         bool
}

// fastJSON converts a YAML document of the subset to JSON; ok is false when
// the document is outside the subset (or its top level is not a mapping).
func fastJSON(doc []byte) (_ fastDoc, ok bool) {
	lines, ok := fastLines(doc)
	if !ok || len(lines) == 0 || isSeqItem(lines[0].text) || lines[0].indent != 0 {
		return fastDoc{}, false
	}
	p := fastParser{lines: lines, out: make([]byte, 0, len(doc)+len(doc)/4), top: &fastDoc{}}
	if !p.mapping(0, 0) || p.i != len(lines) {
		return fastDoc{}, false
	}
	p.top.json = p.out
	return *p.top, true
}

// fastLines splits a document into its lines that hold something; ok is
// false on a byte outside printable ASCII, a document marker or a directive.
func fastLines(doc []byte) ([]fastLine, bool) {
	lines := make([]fastLine, 0, bytes.Count(doc, []byte("\n"))+1)
	for len(doc) > 0 {
		text, rest, _ := bytes.Cut(doc, []byte("\n"))
		doc = rest
		for _, c := range text {
			if c < 0x20 || c > 0x7e {
				return nil, false
			}
		}
		t := bytes.TrimLeft(text, " ")
		indent := len(text) - len(t)
		if i := commentStart(t); i >= 0 {
			t = t[:i]
		}
		t = bytes.TrimRight(t, " ")
		if len(t) == 0 {
			continue
		}
		if indent == 0 && (bytes.HasPrefix(t, []byte("---")) || bytes.HasPrefix(t, []byte("...")) || t[0] == '%') {
			return nil, false
		}
		lines = append(lines, fastLine{indent: indent, text: t})
	}
	return lines, true
}

// commentStart returns where a comment starts in a line without its
// indentation: a '#' at its start or after a space (quoted strings of the
// subset hold no '#'), or -1.
func commentStart(t []byte) int {
	for i, c := range t {
		if c == '#' && (i == 0 || t[i-1] == ' ') {
			return i
		}
	}
	return -1
}

func isSeqItem(t []byte) bool {
	return t[0] == '-' && (len(t) == 1 || t[1] == ' ')
}

type fastParser struct {
	lines []fastLine
	i     int // the next line to read
	out   []byte
	top   *fastDoc
}

// value reads the block value of a key or item whose line is at indentation
// parent, starting at the next line: a mapping or sequence indented deeper
// (for a mapping's key, a sequence may also sit at the key's indentation:
// sameLevelSeq), or null.
func (p *fastParser) value(parent int, sameLevelSeq bool, depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	if p.i == len(p.lines) {
		p.out = append(p.out, "null"...)
		return true
	}
	l := p.lines[p.i]
	switch {
	case l.indent > parent && isSeqItem(l.text):
		return p.sequence(l.indent, depth)
	case l.indent > parent:
		return p.mapping(l.indent, depth)
	case l.indent == parent && sameLevelSeq && isSeqItem(l.text):
		return p.sequence(l.indent, depth)
	}
	p.out = append(p.out, "null"...)
	return true
}

// mapping reads a block mapping whose keys are at indentation indent, from
// the current line (whose text may have been shortened to what follows a
// sequence item's "- ").
func (p *fastParser) mapping(indent, depth int) bool {
	p.out = append(p.out, '{')
	var keys [][]byte
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && !isSeqItem(p.lines[p.i].text) {
		key, rest, ok := splitKey(p.lines[p.i].text)
		if !ok || len(keys) == fastMaxKeys {
			return false
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return false // duplicate key: go-yaml keeps the last
			}
		}
		keys = append(keys, key)
		if len(keys) > 1 {
			p.out = append(p.out, ',')
		}
		p.out = strconv.AppendQuote(p.out, string(key))
		p.out = append(p.out, ':')
		p.i++
		start := len(p.out)
		if len(rest) == 0 {
			if !p.value(indent, true, depth+1) {
				return false
			}
		} else if !p.inline(rest, indent) {
			return false
		}
		if depth == 0 {
			p.noteTop(string(key), p.out[start:])
		}
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return false // a deeper line after a value: not in the subset
	}
	p.out = append(p.out, '}')
	return true
}

// noteTop records the top-level fields that Read looks at before decoding.
func (p *fastParser) noteTop(key string, value []byte) {
	switch key {
	case "items":
		p.top.hasItems = true
	case "apiVersion", "kind":
		s, err := strconv.Unquote(string(value))
		if err != nil {
			s = "\x00" // not a string: left to the full decoder
		}
		if key == "kind" {
			p.top.kind = s
		} else {
			p.top.apiVersion = s
		}
	}
}

// sequence reads a block sequence whose "- " are at indentation indent.
func (p *fastParser) sequence(indent, depth int) bool {
	p.out = append(p.out, '[')
	for n := 0; p.i < len(p.lines) && p.lines[p.i].indent == indent && isSeqItem(p.lines[p.i].text); n++ {
		if n > 0 {
			p.out = append(p.out, ',')
		}
		l := p.lines[p.i]
		rest := bytes.TrimLeft(l.text[1:], " ")
		switch {
		case len(rest) == 0:
			p.i++
			if !p.value(indent, false, depth+1) {
				return false
			}
		case rest[0] == '-':
			return false // a sequence in a sequence on one line
		default:
			if _, _, isKey := splitKey(rest); isKey {
				// The item is a mapping whose first key follows "- ".
				p.lines[p.i] = fastLine{indent: indent + len(l.text) - len(rest), text: rest}
				if depth+1 > fastMaxDepth || !p.mapping(p.lines[p.i].indent, depth+1) {
					return false
				}
				continue
			}
			p.i++
			if !p.inline(rest, indent) {
				return false
			}
		}
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return false
	}
	p.out = append(p.out, ']')
	return true
}

// inline writes a value written on the line of its key or item, whose line
// is at indentation indent: a scalar or a one-line flow collection. A deeper
// line after it would continue a plain scalar: not in the subset.
func (p *fastParser) inline(v []byte, indent int) bool {
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return false
	}
	switch v[0] {
	case '[':
		return p.flowSequence(v)
	case '{':
		if string(v) != "{}" {
			return false
		}
		p.out = append(p.out, "{}"...)
		return true
	}
	out, ok := appendScalar(p.out, v)
	p.out = out
	return ok
}

// flowSequence writes "[]" or "[a, b, ...]" of scalars.
func (p *fastParser) flowSequence(v []byte) bool {
	if v[len(v)-1] != ']' {
		return false
	}
	inner := bytes.TrimSpace(v[1 : len(v)-1])
	p.out = append(p.out, '[')
	if len(inner) > 0 {
		for i, item := range bytes.Split(inner, []byte(",")) {
			item = bytes.TrimSpace(item)
			if len(item) == 0 || item[0] == '[' || item[0] == '{' {
				return false
			}
			if i > 0 {
				p.out = append(p.out, ',')
			}
			var ok bool
			if p.out, ok = appendScalar(p.out, item); !ok {
				return false
			}
		}
	}
	p.out = append(p.out, ']')
	return true
}

// splitKey splits "key: value" or "key:" at the key's colon; ok is false
// when the line is not a key of the subset (a plain scalar that reads as a
// string).
func splitKey(t []byte) (key, rest []byte, ok bool) {
	i := bytes.IndexByte(t, ':')
	if i <= 0 || (i+1 < len(t) && t[i+1] != ' ') {
		return nil, nil, false
	}
	key = t[:i]
	if !plainChars(key) || plainKind(key) != plainString {
		return nil, nil, false
	}
	return key, bytes.TrimLeft(t[i+1:], " "), true
}

// appendScalar writes a scalar of the subset as JSON.
func appendScalar(out, v []byte) ([]byte, bool) {
	switch v[0] {
	case '"', '\'':
		if len(v) < 2 || v[len(v)-1] != v[0] {
			return out, false
		}
		s := v[1 : len(v)-1]
		for _, c := range s {
			if c == '"' || c == '\'' || c == '\\' || c == '#' {
				return out, false
			}
		}
		out = append(out, '"')
		out = append(out, s...)
		return append(out, '"'), true
	}
	if !plainChars(v) {
		return out, false
	}
	switch plainKind(v) {
	case plainString:
		out = append(out, '"')
		out = append(out, v...)
		return append(out, '"'), true
	case plainInt, plainBool:
		return append(out, v...), true
	}
	return out, false
}

// plainChars reports whether a plain scalar uses only letters, digits and
// "-._/".
func plainChars(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '/':
		default:
			return false
		}
	}
	return len(v) > 0
}

type plainScalarKind int

const (
	plainOther plainScalarKind = iota // anything the subset leaves to go-yaml
	plainString
	plainInt
	plainBool
)

// plainKind tells how go-yaml v2 resolves a plain scalar of plainChars, as
// far as the subset goes: true and false, decimal integers of up to 18
// digits without a leading zero, and strings that no rule of YAML 1.1 could
// read as anything else (starting with a letter and not one of its
// booleans or nulls, or made of digits, dots and slashes that are no number).
func plainKind(v []byte) plainScalarKind {
	switch string(v) {
	case "true", "false":
		return plainBool
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "True", "TRUE", "False", "FALSE",
		"on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL":
		return plainOther
	}
	c := v[0]
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
		return plainString
	}
	if c < '0' || c > '9' {
		return plainOther // '-', '.', '_', '/': numbers, .inf, .nan, ...
	}
	digits, dots, slashes := 0, 0, 0
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		case c == '/':
			slashes++
		default:
			return plainOther // 0x.., 0o.., 0b.., 1e3, 1_000, timestamps
		}
	}
	switch {
	case digits == len(v):
		if len(v) > 18 || (len(v) > 1 && v[0] == '0') {
			return plainOther
		}
		return plainInt
	case slashes > 0 || dots > 1:
		return plainString // 10.0.0.0/8, 10.0.0.1: no number, no timestamp
	}
	return plainOther
}
