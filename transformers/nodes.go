package transformers

import (
	"fmt"
	"strconv"
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

// fieldPath is a field of a resource, dot-separated as results name it
// ("spec.awsLaunchTemplate.ami").
type fieldPath string

func (p fieldPath) child(key string) fieldPath { return fieldPath(join(string(p), key)) }

// fieldError says a value in a resource has a shape the function cannot work with; read it
// with errors.As (run.fail does).
type fieldError struct {
	path fieldPath
	msg  string
}

func (e *fieldError) Error() string { return string(e.path) + ": " + e.msg }

// ensureMap returns the mapping under key, creating it at the end of m when it is
// absent or null. Anything else there is an error: the function never overwrites a
// value it does not understand.
func ensureMap(m *yaml.Node, key string, field fieldPath) (*yaml.Node, error) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		switch {
		case v.Kind == yaml.MappingNode:
			return v, nil
		case isNull(v):
			// The null's line comment belongs on the key's line: left on the new mapping,
			// yaml.v3 would print it after the mapping's last entry.
			if m.Content[i].LineComment == "" {
				m.Content[i].LineComment = v.LineComment
			}
			nm := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
			m.Content[i+1] = nm
			return nm, nil
		default:
			return nil, &fieldError{path: field, msg: fmt.Sprintf("must be a mapping, found %s", describeNode(v))}
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
func ensurePath(root *yaml.Node, prefix fieldPath, path ...string) (*yaml.Node, error) {
	n := root
	field := prefix
	for _, key := range path {
		field = field.child(key)
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
	var field fieldPath
	for _, key := range path {
		field = field.child(key)
		v := valueOf(n, key)
		if isNull(v) {
			return nil, nil
		}
		if v.Kind != yaml.MappingNode {
			return nil, &fieldError{path: field, msg: fmt.Sprintf("must be a mapping, found %s", describeNode(v))}
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
	// kyaml decides that with a YAML 1.1 parser per value, the function's main cost on a
	// fleet; plain words, almost every value it writes, cannot be anything but strings.
	if v == "" || (!plainWord(v) && yaml.IsYaml1_1NonString(n)) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// plainWord reports that every YAML 1.1 reader takes v for a string: it starts with a
// letter, holds only letters, digits and "-_./+=" (names, and base64 such as a Secret's
// data), and is none of YAML 1.1's boolean and null words. (Numbers, timestamps, .inf
// and .nan start with a digit, sign or dot.)
func plainWord(v string) bool {
	if v == "" || !isASCIILetter(v[0]) {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !isASCIILetter(c) && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' && c != '/' && c != '+' && c != '=' {
			return false
		}
	}
	switch strings.ToLower(v) {
	case "y", "yes", "n", "no", "true", "false", "on", "off", "null":
		return false
	}
	return true
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func intNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagInt, Value: v}
}

// setScalar sets key in m to a scalar, reusing an existing scalar node so its comments
// and quoting survive. It reports whether anything changed.
func setScalar(m *yaml.Node, key, value string, isInt bool) bool {
	newNode, tag := stringNode, yaml.NodeTagString
	if isInt {
		newNode, tag = intNode, yaml.NodeTagInt
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == tag && (v.Value == value || (isInt && sameInt(v.Value, value))) {
			return false
		}
		want := newNode(value)
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
	appendPair(m, keyNode(key), newNode(value))
	return true
}

// sameInt compares YAML integers by value: 0x2, +2 and 02 are all 2 to every reader, and
// rewriting one would be a change (and trip CAPA's immutability rules) for nothing.
func sameInt(a, b string) bool {
	x, errA := strconv.ParseInt(strings.TrimPrefix(a, "+"), 0, 64)
	y, errB := strconv.ParseInt(strings.TrimPrefix(b, "+"), 0, 64)
	return errA == nil && errB == nil && x == y
}

// removeKey deletes key from m and returns its value, or nil.
func removeKey(m *yaml.Node, key string) *yaml.Node {
	_, v := removePair(m, key)
	return v
}

// removePair deletes key from m and returns the key node and its value, or nils.
func removePair(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			k, v = m.Content[i], m.Content[i+1]
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return k, v
		}
	}
	return nil, nil
}

// movePair sets key in dst to v, with the comments of the key node it came from: a
// comment travels with what it describes.
func movePair(dst *yaml.Node, from *yaml.Node, key string, v *yaml.Node) {
	k := keyNode(key)
	if from != nil {
		k.HeadComment, k.LineComment, k.FootComment = from.HeadComment, from.LineComment, from.FootComment
	}
	for i := 0; i+1 < len(dst.Content); i += 2 {
		if dst.Content[i].Value == key {
			dst.Content[i], dst.Content[i+1] = k, v
			return
		}
	}
	appendPair(dst, k, v)
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

// maxDepth bounds recursion over resources; Kubernetes objects are nowhere near it.
const maxDepth = 1000

// duplicateKey finds a mapping key that appears twice in n and returns its field path.
// yaml.v3 keeps both pairs in a node tree, so the function would edit the first while
// other readers keep the last or refuse the resource: a resource whose meaning depends
// on the reader must be refused, not edited.
func duplicateKey(n *yaml.Node) (string, bool) {
	var path []string
	var walk func(n *yaml.Node, depth int) bool
	walk = func(n *yaml.Node, depth int) bool {
		if n == nil || depth > maxDepth {
			return false
		}
		switch n.Kind {
		case yaml.MappingNode:
			if k, dup := firstDuplicate(n); dup {
				path = append(path, k)
				return true
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				path = append(path, n.Content[i].Value)
				if walk(n.Content[i+1], depth+1) {
					return true
				}
				path = path[:len(path)-1]
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				path = append(path, fmt.Sprintf("[%d]", i))
				if walk(c, depth+1) {
					return true
				}
				path = path[:len(path)-1]
			}
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if walk(c, depth+1) {
					return true
				}
			}
		}
		return false
	}
	if !walk(n, 0) {
		return "", false
	}
	var b strings.Builder
	for _, p := range path {
		if b.Len() > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String(), true
}

// firstDuplicate reports the first key of m that an earlier key repeats. Kubernetes
// mappings are small: comparing pairs beats allocating a set for each one.
func firstDuplicate(m *yaml.Node) (string, bool) {
	const small = 16
	if len(m.Content) <= 2*small {
		for i := 2; i+1 < len(m.Content); i += 2 {
			for j := 0; j < i; j += 2 {
				if m.Content[i].Value == m.Content[j].Value && m.Content[i].Kind == yaml.ScalarNode && m.Content[j].Kind == yaml.ScalarNode {
					return m.Content[i].Value, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if seen[k.Value] {
			return k.Value, true
		}
		seen[k.Value] = true
	}
	return "", false
}

// duplicateIdentityKey finds a key given twice among those that say which resource a
// document is: apiVersion, kind and metadata at the top, name and namespace in metadata.
func duplicateIdentityKey(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return "", false
	}
	count := func(m *yaml.Node, keys ...string) (string, bool) {
		seen := map[string]bool{}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			for _, want := range keys {
				if k.Value == want {
					if seen[want] {
						return want, true
					}
					seen[want] = true
				}
			}
		}
		return "", false
	}
	if k, dup := count(n, "apiVersion", "kind", "metadata"); dup {
		return k, true
	}
	if md := lookup(n, "metadata"); md != nil && md.Kind == yaml.MappingNode {
		if k, dup := count(md, "name", "namespace"); dup {
			return "metadata." + k, true
		}
	}
	return "", false
}
