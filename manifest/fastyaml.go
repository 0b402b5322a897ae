package manifest

import (
	"bytes"
	"math"
	"unicode/utf8"
)

// fastYAMLToJSON converts a YAML document written in the plain block style of
// Kubernetes manifests (block mappings and sequences, one-line plain, quoted
// and flow scalars, comments) to JSON, appending to out. Its result decodes
// exactly like that of sigs.k8s.io/yaml.YAMLToJSON, which kubectl uses (YAML
// 1.1 resolution: yes/no/on/off are booleans), at a fraction of the cost.
//
// It returns ok=false as soon as the document uses anything else (anchors,
// tags, block scalars, multi-line scalars, escapes, floats, timestamps, tabs,
// invalid YAML...); the caller then converts the document with YAMLToJSON,
// which also produces the error message for invalid YAML.
//
// On success hd holds the apiVersion, kind, metadata.name and
// metadata.namespace of the document when they are strings. lines is scratch
// space that is returned for reuse.
func fastYAMLToJSON(doc, out []byte, hd *header, lines []fastLine) ([]byte, []fastLine, bool) {
	if !plainText(doc) {
		return out, lines, false
	}
	if len(doc) > math.MaxInt32 {
		return out, lines, false
	}
	if n := bytes.Count(doc, []byte("\n")) + 1; cap(lines) < n {
		lines = make([]fastLine, 0, n)
	}
	if cap(out) < len(doc) {
		out = make([]byte, 0, len(doc)+len(doc)/4)
	}
	c := fastConverter{doc: doc, out: out, lines: lines[:0], header: hd}
	for num, off := 0, 0; off < len(doc); num++ {
		end := len(doc)
		if i := bytes.IndexByte(doc[off:], '\n'); i >= 0 {
			end = off + i
		}
		start := off
		for start < end && doc[start] == ' ' {
			start++
		}
		last := end
		for last > start && doc[last-1] == ' ' {
			last--
		}
		if start < last && doc[start] != '#' {
			c.lines = append(c.lines, fastLine{indent: int32(start - off), start: int32(start), end: int32(last), num: int32(num)})
		}
		off = end + 1
	}
	if len(c.lines) == 0 || !c.block() || c.i != len(c.lines) {
		return out, c.lines, false
	}
	return c.out, c.lines, true
}

// plainText reports whether doc holds only printable characters, line feeds
// and spaces: no tabs, carriage returns or characters that YAML forbids.
func plainText(doc []byte) bool {
	for i := 0; i < len(doc); {
		b := doc[i]
		if b < utf8.RuneSelf {
			if (b < 0x20 && b != '\n') || b == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(doc[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return false
		case r < 0xa0 && r != 0x85, r >= 0xd800 && r <= 0xdfff, r == 0xfeff, r == 0xfffe, r == 0xffff:
			return false
		}
		i += n
	}
	return true
}

// fastLine is a line with content: its indentation, where its text (without
// the indentation and trailing spaces) is in the document, and its 0-based
// line number there.
type fastLine struct {
	indent, start, end, num int32
}

type fastConverter struct {
	doc   []byte
	lines []fastLine
	i     int
	out   []byte

	// header receives the identifying fields; depth is the nesting of
	// mappings and inMetadata tells that the top-level metadata is open.
	header     *header
	depth      int
	inMetadata bool
	// inItems tells that the value of the top-level items key is being
	// converted; header.itemLines receives the line of each element.
	inItems bool
	// nesting counts the blocks being converted.
	nesting int
}

// maxNesting bounds how deep collections nest (go-yaml has its own, higher
// limit; Kubernetes objects nest far less).
const maxNesting = 100

// capture stores a string written at out[start:] into the header field that
// the key names, when the key is one of apiVersion, kind, metadata.name and
// metadata.namespace.
func (c *fastConverter) capture(key []byte, start int) {
	if c.header == nil {
		return
	}
	var target *string
	switch {
	case c.depth == 1 && string(key) == "apiVersion":
		target = &c.header.APIVersion
	case c.depth == 1 && string(key) == "kind":
		target = &c.header.Kind
	case c.depth == 2 && c.inMetadata && string(key) == "name":
		target = &c.header.Metadata.Name
	case c.depth == 2 && c.inMetadata && string(key) == "namespace":
		target = &c.header.Metadata.Namespace
	default:
		return
	}
	v := c.out[start:]
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 {
		*target = string(v[1 : len(v)-1])
	}
}

// text returns the content of line i.
func (c *fastConverter) text(i int) []byte {
	return c.doc[c.lines[i].start:c.lines[i].end]
}

// indent returns the indentation of line i.
func (c *fastConverter) indent(i int) int {
	return int(c.lines[i].indent)
}

// block converts the block mapping or sequence that starts at the current line.
func (c *fastConverter) block() bool {
	if c.nesting++; c.nesting > maxNesting {
		return false
	}
	defer func() { c.nesting-- }()
	text := c.text(c.i)
	if isSequenceItem(text) {
		return c.sequence(c.indent(c.i))
	}
	if _, _, ok := splitMappingKey(text); ok {
		return c.mapping(c.indent(c.i))
	}
	return false
}

func isSequenceItem(text []byte) bool {
	return text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// nested converts the value of a key or item whose line holds nothing after
// the indicator: a block on the following, deeper lines (or, for a mapping
// value, a sequence at the same indentation), else null.
func (c *fastConverter) nested(indent int, allowSameIndentSequence bool) bool {
	if c.i < len(c.lines) {
		next := c.indent(c.i)
		if next > indent || (allowSameIndentSequence && next == indent && isSequenceItem(c.text(c.i))) {
			return c.block()
		}
	}
	c.out = append(c.out, "null"...)
	return true
}

func (c *fastConverter) sequence(indent int) bool {
	items := c.inItems && c.depth == 1
	c.inItems = false
	c.out = append(c.out, '[')
	for first := true; c.i < len(c.lines) && c.indent(c.i) == indent && isSequenceItem(c.text(c.i)); first = false {
		if !first {
			c.out = append(c.out, ',')
		}
		if items && c.header != nil {
			c.header.itemLines = append(c.header.itemLines, int(c.lines[c.i].num))
		}
		rest := c.text(c.i)[1:]
		content := bytes.TrimLeft(rest, " ")
		if len(content) == 0 || content[0] == '#' {
			c.i++
			if !c.nested(indent, false) {
				return false
			}
		} else {
			// The item's content starts a node at its own column: a compact
			// mapping or sequence continues on the following lines there.
			col := indent + 1 + len(rest) - len(content)
			l := &c.lines[c.i]
			l.indent, l.start = int32(col), l.end-int32(len(content))
			if isSequenceItem(content) || isMappingLine(content) {
				if !c.block() {
					return false
				}
			} else {
				if !c.inline(content) {
					return false
				}
				c.i++
			}
		}
		if c.i < len(c.lines) && c.indent(c.i) > indent {
			return false
		}
	}
	c.out = append(c.out, ']')
	return true
}

func isMappingLine(text []byte) bool {
	_, _, ok := splitMappingKey(text)
	return ok
}

func (c *fastConverter) mapping(indent int) bool {
	c.depth++
	defer func() { c.depth-- }()
	c.out = append(c.out, '{')
	var keys [][2]int // where each key's JSON string is in c.out
	for first := true; c.i < len(c.lines) && c.indent(c.i) == indent; first = false {
		text := c.text(c.i)
		if isSequenceItem(text) {
			return false
		}
		key, value, ok := splitMappingKey(text)
		if !ok {
			return false
		}
		if !first {
			c.out = append(c.out, ',')
		}
		start := len(c.out)
		if !c.key(key) {
			return false
		}
		for _, k := range keys {
			if bytes.Equal(c.out[k[0]:k[1]], c.out[start:]) {
				return false // a duplicate key: go-yaml keeps the last value
			}
		}
		keys = append(keys, [2]int{start, len(c.out)})
		c.out = append(c.out, ':')
		if len(value) == 0 || value[0] == '#' {
			c.i++
			inMetadata, inItems := c.inMetadata, c.inItems
			if c.depth == 1 {
				c.inMetadata, c.inItems = string(key) == "metadata", string(key) == "items"
			}
			ok := c.nested(indent, true)
			c.inMetadata, c.inItems = inMetadata, inItems
			if !ok {
				return false
			}
		} else {
			valueStart := len(c.out)
			if !c.inline(value) {
				return false
			}
			c.capture(key, valueStart)
			c.i++
		}
		if c.i < len(c.lines) && c.indent(c.i) > indent {
			return false
		}
	}
	c.out = append(c.out, '}')
	return true
}

// splitMappingKey splits "key: value" (value may be empty or a comment) into
// the raw key and the value with leading spaces removed.
func splitMappingKey(text []byte) (key, value []byte, ok bool) {
	var end int
	switch text[0] {
	case '"', '\'':
		n, ok := quotedLength(text)
		if !ok {
			return nil, nil, false
		}
		end = n
	default:
		if isIndicator(text[0]) {
			return nil, nil, false
		}
		end = -1
		for i := 0; i < len(text); i++ {
			switch text[i] {
			case ':':
				if i+1 == len(text) || text[i+1] == ' ' {
					end = i
				}
			case '#':
				if text[i-1] == ' ' {
					return nil, nil, false
				}
			}
			if end >= 0 {
				break
			}
		}
		if end <= 0 {
			return nil, nil, false
		}
	}
	if end >= len(text) || text[end] != ':' || (end+1 < len(text) && text[end+1] != ' ') || end > maxKeyLength {
		return nil, nil, false
	}
	return bytes.TrimRight(text[:end], " "), bytes.TrimLeft(text[end+1:], " "), true
}

// maxKeyLength keeps keys well below the 1024 characters that YAML allows
// for an implicit key.
const maxKeyLength = 1000

// isIndicator reports whether a plain scalar cannot start with b (or this
// converter does not handle scalars that do).
func isIndicator(b byte) bool {
	switch b {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '.':
		return true
	}
	return false
}

// isNegativeNumber reports whether text starts with '-' and a digit, which
// makes the '-' part of a plain scalar rather than an indicator.
func isNegativeNumber(text []byte) bool {
	return len(text) > 1 && text[0] == '-' && text[1] >= '0' && text[1] <= '9'
}

// key writes a mapping key, which must resolve to a string.
func (c *fastConverter) key(key []byte) bool {
	if key[0] == '"' || key[0] == '\'' {
		s, ok := unquote(key)
		if !ok {
			return false
		}
		c.out = appendJSONString(c.out, s)
		return true
	}
	if resolvePlain(key) != plainString {
		return false
	}
	c.out = appendJSONString(c.out, key)
	return true
}

// inline converts a value written on one line: quoted, flow or plain, with
// an optional trailing comment.
func (c *fastConverter) inline(text []byte) bool {
	switch text[0] {
	case '"', '\'':
		n, ok := quotedLength(text)
		if !ok || !onlyComment(text[n:]) {
			return false
		}
		s, ok := unquote(text[:n])
		if !ok {
			return false
		}
		c.out = appendJSONString(c.out, s)
		return true
	case '[', '{':
		f := flowParser{text: text}
		var ok bool
		if c.out, ok = f.value(c.out); !ok {
			return false
		}
		return onlyComment(text[f.pos:])
	}
	if isIndicator(text[0]) && !isNegativeNumber(text) {
		return false
	}
	plain := text
	for i := 1; i < len(text); i++ {
		if text[i] == '#' && text[i-1] == ' ' {
			plain = bytes.TrimRight(text[:i], " ")
			break
		}
		if text[i] == ':' && (i+1 == len(text) || text[i+1] == ' ') {
			return false // "mapping values are not allowed in this context"
		}
	}
	return c.plain(plain)
}

// onlyComment reports whether what follows a value on its line is nothing or
// a comment.
func onlyComment(rest []byte) bool {
	t := bytes.TrimLeft(rest, " ")
	return len(t) == 0 || (t[0] == '#' && len(t) < len(rest))
}

// plain writes a plain scalar as yaml.v2 resolves it.
func (c *fastConverter) plain(s []byte) bool {
	switch resolvePlain(s) {
	case plainString:
		c.out = appendJSONString(c.out, s)
	case plainInt:
		c.out = append(c.out, s...)
	case plainTrue:
		c.out = append(c.out, "true"...)
	case plainFalse:
		c.out = append(c.out, "false"...)
	case plainNull:
		c.out = append(c.out, "null"...)
	default:
		return false
	}
	return true
}

type plainKind int

const (
	plainUnsupported plainKind = iota
	plainString
	plainInt
	plainTrue
	plainFalse
	plainNull
)

// resolvePlain mirrors the resolution of plain scalars of go-yaml v2 (YAML
// 1.1), which sigs.k8s.io/yaml uses, for the values it can decide cheaply.
func resolvePlain(s []byte) plainKind {
	switch string(s) {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return plainTrue
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return plainFalse
	case "", "~", "null", "Null", "NULL":
		return plainNull
	case "<<":
		return plainUnsupported
	}
	switch first := s[0]; {
	case first == '.':
		return plainUnsupported
	case first != '+' && first != '-' && (first < '0' || first > '9'):
		return plainString
	}
	// A number, a timestamp or a string. Decimal integers are kept as
	// written (up to 18 digits, so that they fit an int64).
	if isDecimal(s) {
		return plainInt
	}
	if len(s) >= 5 && s[4] == '-' && isDigits(s[:4]) {
		return plainUnsupported // maybe a timestamp
	}
	dots := 0
	for _, b := range s {
		switch {
		case b == '.':
			dots++
		case b >= '0' && b <= '9', b >= 'a' && b <= 'f', b >= 'A' && b <= 'F',
			b == 'x', b == 'X', b == 'o', b == 'O', b == '_', b == '+', b == '-':
		default:
			return plainString // e.g. a CIDR: no int or float has a '/'
		}
	}
	if dots >= 2 {
		return plainString // e.g. an IP address: no int or float has two dots
	}
	return plainUnsupported
}

func isDecimal(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
		if len(s) == 1 && s[0] == '0' {
			return false
		}
	}
	if len(s) == 0 || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	return isDigits(s)
}

func isDigits(s []byte) bool {
	for _, b := range s {
		if b < '0' || b > '9' {
			return false
		}
	}
	return len(s) > 0
}

// quotedLength returns the length of the quoted scalar at the start of text,
// including both quotes. Double-quoted scalars with escapes are not handled.
func quotedLength(text []byte) (int, bool) {
	q := text[0]
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			if q == '"' {
				return 0, false
			}
		case q:
			if q == '\'' && i+1 < len(text) && text[i+1] == '\'' {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return 0, false
}

// unquote returns the content of a quoted scalar found by quotedLength.
func unquote(quoted []byte) ([]byte, bool) {
	inner := quoted[1 : len(quoted)-1]
	if quoted[0] == '\'' {
		return bytes.ReplaceAll(inner, []byte("''"), []byte("'")), true
	}
	return inner, true
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, b := range s {
		switch {
		case b == '"' || b == '\\':
			out = append(out, '\\', b)
		case b < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		default:
			out = append(out, b)
		}
	}
	return append(out, '"')
}

// flowParser converts a one-line flow collection ({a: 1, b: [x, y]}).
type flowParser struct {
	text  []byte
	pos   int
	depth int
}

func (f *flowParser) skipSpaces() {
	for f.pos < len(f.text) && f.text[f.pos] == ' ' {
		f.pos++
	}
}

func (f *flowParser) value(out []byte) ([]byte, bool) {
	f.skipSpaces()
	if f.pos >= len(f.text) {
		return out, false
	}
	switch f.text[f.pos] {
	case '{':
		return f.collection(out, '}', true)
	case '[':
		return f.collection(out, ']', false)
	case '"', '\'':
		n, ok := quotedLength(f.text[f.pos:])
		if !ok {
			return out, false
		}
		s, _ := unquote(f.text[f.pos : f.pos+n])
		f.pos += n
		return appendJSONString(out, s), true
	}
	s, ok := f.plain(false)
	if !ok {
		return out, false
	}
	c := fastConverter{out: out}
	if !c.plain(s) {
		return out, false
	}
	return c.out, true
}

// plain reads a plain scalar inside a flow collection.
func (f *flowParser) plain(isKey bool) ([]byte, bool) {
	start := f.pos
	if isIndicator(f.text[start]) && !isNegativeNumber(f.text[start:]) {
		return nil, false
	}
	for f.pos < len(f.text) {
		switch b := f.text[f.pos]; b {
		case ',', ']', '}':
			return bytes.TrimRight(f.text[start:f.pos], " "), f.pos > start
		case ':':
			if f.pos+1 < len(f.text) && f.text[f.pos+1] != ' ' && f.text[f.pos+1] != ',' {
				break
			}
			if !isKey {
				return nil, false
			}
			return bytes.TrimRight(f.text[start:f.pos], " "), f.pos > start
		case '#', '[', '{', '"', '\'':
			return nil, false
		}
		f.pos++
	}
	return nil, false
}

func (f *flowParser) collection(out []byte, closer byte, isMap bool) ([]byte, bool) {
	if f.depth++; f.depth > maxNesting {
		return out, false
	}
	defer func() { f.depth-- }()
	out = append(out, f.text[f.pos])
	f.pos++
	f.skipSpaces()
	if f.pos < len(f.text) && f.text[f.pos] == closer {
		f.pos++
		return append(out, closer), true
	}
	for {
		var ok bool
		if isMap {
			f.skipSpaces()
			if f.pos >= len(f.text) {
				return out, false
			}
			var key []byte
			keyStart := f.pos
			if q := f.text[f.pos]; q == '"' || q == '\'' {
				n, qok := quotedLength(f.text[f.pos:])
				if !qok {
					return out, false
				}
				key, _ = unquote(f.text[f.pos : f.pos+n])
				f.pos += n
			} else {
				if key, ok = f.plain(true); !ok || resolvePlain(key) != plainString {
					return out, false
				}
			}
			if f.pos-keyStart > maxKeyLength {
				return out, false
			}
			out = appendJSONString(out, key)
			f.skipSpaces()
			if f.pos+1 >= len(f.text) || f.text[f.pos] != ':' || f.text[f.pos+1] != ' ' {
				return out, false
			}
			f.pos++
			out = append(out, ':')
		}
		if out, ok = f.value(out); !ok {
			return out, false
		}
		f.skipSpaces()
		if f.pos >= len(f.text) {
			return out, false
		}
		switch f.text[f.pos] {
		case ',':
			f.pos++
			f.skipSpaces()
			if f.pos < len(f.text) && f.text[f.pos] == closer {
				return out, false // a trailing comma: leave it to go-yaml
			}
			out = append(out, ',')
		case closer:
			f.pos++
			return append(out, closer), true
		default:
			return out, false
		}
	}
}
