package manifest

import (
	"bytes"
	"fmt"

	yamlv3 "go.yaml.in/yaml/v3"
)

// aliasMessage reports a YAML document whose aliases expand past
// maxDocumentBytes. go-yaml's own limit counts nodes, not bytes: one long
// scalar aliased a few thousand times passes it and expands a few kilobytes
// into gigabytes of JSON.
var aliasMessage = fmt.Sprintf("YAML aliases (*name) expand this document to more than %d MiB, the document limit: "+
	"write the repeated values out, or split the document (kubectl would build all of it in memory)", MaxDocumentBytes>>20)

// aliasUnreadMessage reports a YAML document with aliases whose expanded size
// cannot be told (fail closed).
const aliasUnreadMessage = "YAML aliases (*name) in a document that moat cannot measure before expanding them: write the repeated values out"

// checkAliases returns "" when the YAML document doc either has no aliases
// or expands them to at most maxDocumentBytes, else the message to report.
// It parses the document without expanding anything (go-yaml v3's node
// tree), so its cost is linear in len(doc); documents without a '*' are not
// parsed at all.
func checkAliases(doc []byte) string {
	if bytes.IndexByte(doc, '*') < 0 {
		return "" // no alias
	}
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &root); err != nil {
		// kubectl's go-yaml v2 may still read it (v2 and v3 parse
		// slightly different languages): only when the text cannot be an
		// alias bomb is it left to v2.
		if bytes.IndexByte(doc, '&') < 0 {
			return ""
		}
		return aliasUnreadMessage
	}
	s := expandedSizer{memo: map[*yamlv3.Node]int64{}, limit: int64(maxDocumentBytes)}
	if s.size(&root) > s.limit {
		return aliasMessage
	}
	return ""
}

// expandedSizer measures the size of a node once its aliases are expanded:
// the bytes of its scalars plus two per node (JSON's punctuation), which
// bounds the JSON that go-yaml and sigs.k8s.io/yaml would build from below.
// Each anchored node is measured once (memo), so the cost is linear in the
// number of nodes; sizes saturate just past limit.
type expandedSizer struct {
	memo  map[*yamlv3.Node]int64
	limit int64
}

// inProgress marks an anchored node being measured: an alias to it from
// inside it is a cycle, which go-yaml refuses on its own.
const inProgress = -1

func (s *expandedSizer) size(n *yamlv3.Node) int64 {
	if n == nil {
		return 0
	}
	if n.Kind == yamlv3.AliasNode {
		return s.size(n.Alias)
	}
	if n.Anchor != "" {
		switch got, ok := s.memo[n]; {
		case ok && got == inProgress:
			return 0
		case ok:
			return got
		}
		s.memo[n] = inProgress
	}
	total := int64(len(n.Value)) + 2
	for _, c := range n.Content {
		total += s.size(c)
		if total > s.limit {
			total = s.limit + 1
			break
		}
	}
	if n.Anchor != "" {
		s.memo[n] = total
	}
	return total
}
