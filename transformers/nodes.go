package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Helpers over *yaml.Node. The function edits nodes in place, never re-encodes a resource,
// so comments, key order, quoting and placeholders of everything it does not own survive.

// lookup returns the value at path, or nil. It never follows an alias: resources that
// contain aliases are de-anchored (within a bound) before any lookup.
func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		n = valueOf(n, key)
	}
	return n
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalarField returns the scalar at path, or "" when it is absent or not a scalar.
func scalarField(n *yaml.Node, path ...string) string {
	v := lookup(n, path...)
	if v == nil || v.Kind != yaml.ScalarNode || v.Tag == yaml.NodeTagNull {
		return ""
	}
	return v.Value
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == yaml.NodeTagNull)
}

// fieldError says a value in a resource has a shape the function cannot work with.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// ensureMap returns the mapping under key, creating it at the end of m when it is
// absent or null. Anything else there is an error: the function never overwrites a
// value it does not understand.
func ensureMap(m *yaml.Node, key, field string) (*yaml.Node, error) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		switch {
		case v.Kind == yaml.MappingNode:
			return v, nil
		case isNull(v):
			nm := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, LineComment: v.LineComment}
			m.Content[i+1] = nm
			return nm, nil
		default:
			return nil, &fieldError{field: field, msg: fmt.Sprintf("must be a mapping, found %s", describeNode(v))}
		}
	}
	nm := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	appendPair(m, keyNode(key), nm)
	return nm, nil
}

// appendPair adds a key to a mapping. An empty flow mapping (`bootstrap: {}`) that gets
// content becomes a block mapping, as a person would write it.
func appendPair(m, k, v *yaml.Node) {
	if len(m.Content) == 0 && m.Style&yaml.FlowStyle != 0 {
		m.Style &^= yaml.FlowStyle
	}
	m.Content = append(m.Content, k, v)
}

// ensurePath is ensureMap along a path; field names the path for errors.
func ensurePath(root *yaml.Node, prefix string, path ...string) (*yaml.Node, error) {
	n := root
	field := prefix
	for _, key := range path {
		field = join(field, key)
		var err error
		if n, err = ensureMap(n, key, field); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// mapAt checks that every existing step of path is a mapping, without creating anything.
func mapAt(root *yaml.Node, path ...string) (*yaml.Node, error) {
	n := root
	field := ""
	for _, key := range path {
		field = join(field, key)
		v := valueOf(n, key)
		if isNull(v) {
			return nil, nil
		}
		if v.Kind != yaml.MappingNode {
			return nil, &fieldError{field: field, msg: fmt.Sprintf("must be a mapping, found %s", describeNode(v))}
		}
		n = v
	}
	return n, nil
}

func keyNode(key string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagString, Value: key}
}

func stringNode(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagString, Value: v}
	// Strings that YAML 1.1 readers would take for something else must be quoted.
	if yaml.IsYaml1_1NonString(n) || v == "" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func intNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagInt, Value: v}
}

// setScalar sets key in m to a scalar, reusing an existing scalar node so its comments
// and quoting survive. It reports whether anything changed.
func setScalar(m *yaml.Node, key, value string, isInt bool) bool {
	want := stringNode(value)
	if isInt {
		want = intNode(value)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Value == value && v.Tag == want.Tag {
			return false
		}
		if v.Kind != yaml.ScalarNode {
			want.LineComment = v.LineComment
			m.Content[i+1] = want
			return true
		}
		v.Value, v.Tag = value, want.Tag
		if isInt || (v.Style != yaml.DoubleQuotedStyle && v.Style != yaml.SingleQuotedStyle) {
			v.Style = want.Style
		}
		return true
	}
	appendPair(m, keyNode(key), want)
	return true
}

// removeKey deletes key from m and returns its value, or nil.
func removeKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return v
		}
	}
	return nil
}

// setNode sets key in m to v, keeping the key's position when it exists.
func setNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	appendPair(m, keyNode(key), v)
}

// display renders a node's value for results and messages.
func display(n *yaml.Node) any {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		if n.Tag == yaml.NodeTagInt {
			var i int64
			if _, err := fmt.Sscan(n.Value, &i); err == nil {
				return i
			}
		}
		return n.Value
	}
	if n.Kind == yaml.SequenceNode {
		items := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			items = append(items, fmt.Sprint(display(c)))
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	s, err := yaml.NewRNode(n).String()
	if err != nil {
		return describeNode(n)
	}
	return strings.TrimSpace(s)
}

// aliasBudget bounds how many nodes de-anchoring may create: a "billion laughs"
// document must be refused, not expanded.
const aliasBudget = 10000

// deAnchor replaces aliases in a resource the function is about to edit, because
// edits through an alias would change every place that shares the anchor.
func deAnchor(n *yaml.RNode) error {
	if !hasAlias(n.YNode(), 0) {
		return nil
	}
	if size := expandedSize(n.YNode(), aliasBudget+1, 0); size > aliasBudget {
		return fmt.Errorf("YAML aliases would expand to more than %d nodes; refusing to expand them", aliasBudget)
	}
	return n.DeAnchor()
}

func hasAlias(n *yaml.Node, depth int) bool {
	if n == nil || depth > maxDepth {
		return false
	}
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

// expandedSize counts nodes with aliases expanded, stopping once limit is passed.
func expandedSize(n *yaml.Node, limit, depth int) int {
	if n == nil {
		return 0
	}
	if depth > maxDepth {
		return limit
	}
	if n.Kind == yaml.AliasNode {
		return expandedSize(n.Alias, limit, depth+1)
	}
	size := 1
	for _, c := range n.Content {
		size += expandedSize(c, limit-size, depth+1)
		if size >= limit {
			return size
		}
	}
	return size
}

// maxDepth bounds recursion over resources; Kubernetes objects are nowhere near it.
const maxDepth = 1000
