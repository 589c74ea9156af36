package crdcheck

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

type walker struct {
	kind, name string
	out        []Finding
}

func newWalker(m map[string]any) *walker {
	w := &walker{}
	w.kind, _ = m["kind"].(string)
	if md, ok := m["metadata"].(map[string]any); ok {
		w.name, _ = md["name"].(string)
	}
	return w
}

func (w *walker) add(path, format string, args ...any) {
	w.out = append(w.out, Finding{Kind: w.kind, Name: w.name, Path: path, Message: fmt.Sprintf(format, args...)})
}

// toMap converts an RNode the way kubectl and clusterctl do before sending
// it: serialize, convert YAML to JSON with sigs.k8s.io/yaml (YAML 1.1, so an
// unquoted yes is a boolean), decode numbers as int64 or float64.
func toMap(rn *yaml.RNode) (map[string]any, []Finding) {
	w := &walker{}
	if rn == nil {
		w.add("", "nil object")
		return nil, w.out
	}
	w.kind, w.name = rn.GetKind(), rn.GetName()
	text, err := rn.String()
	if err != nil {
		w.add("", "cannot serialize: %v", err)
		return nil, w.out
	}
	js, err := sigsyaml.YAMLToJSONStrict([]byte(text))
	if err != nil {
		// Duplicate keys: the server's strict field validation rejects them.
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		w.add("", "invalid YAML: %s", strings.Join(strings.Fields(msg), " "))
		if js, err = sigsyaml.YAMLToJSON([]byte(text)); err != nil {
			return nil, w.out
		}
	}
	return decodeObject(js, w)
}

func mapToMap(obj map[string]any) (map[string]any, []Finding) {
	w := &walker{}
	js, err := json.Marshal(obj)
	if err != nil {
		w.add("", "cannot encode as JSON: %v", err)
		return nil, w.out
	}
	return decodeObject(js, w)
}

func decodeObject(js []byte, w *walker) (map[string]any, []Finding) {
	v, err := decodeJSON(js)
	if err != nil {
		w.add("", "cannot decode: %v", err)
		return nil, w.out
	}
	m, ok := v.(map[string]any)
	if !ok {
		w.add("", "must be an object, got %s", jsonType(v))
		return nil, w.out
	}
	return m, w.out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// value validates x against s. structural is false inside allOf, anyOf,
// oneOf and not: there a schema only constrains values, and fields it does
// not mention are not unknown (structural schemas must declare every field
// in the outer properties, which is what the server prunes against).
func (w *walker) value(path string, x any, s *schema, structural bool) {
	if s == nil {
		return
	}
	if x == nil {
		if !s.Nullable {
			if want := s.typeName(); want != "" {
				w.add(path, "must be of type %s, got null", want)
			}
		}
		return
	}
	if hasPlaceholder(x) {
		return
	}
	if !w.checkType(path, x, s) {
		return
	}
	w.checkFormat(path, x, s)
	if len(s.Enum) > 0 && !containsJSON(s.Enum, x) {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			vals[i] = show(e)
		}
		w.add(path, "Unsupported value: %s: supported values: %s", show(x), strings.Join(vals, ", "))
	}
	switch x := x.(type) {
	case int64, float64:
		w.number(path, x, s)
	case string:
		w.str(path, x, s)
	case []any:
		w.array(path, x, s, structural)
	case map[string]any:
		w.object(path, x, s, structural, false)
	}
	w.junctions(path, x, s)
}

func containsJSON(list []any, x any) bool {
	for _, e := range list {
		if equalJSON(e, x) {
			return true
		}
	}
	return false
}

func (s *schema) typeName() string {
	if s.IntOrString {
		return "integer or string"
	}
	return s.Type
}

func (w *walker) checkType(path string, x any, s *schema) bool {
	ok := true
	switch {
	case s.IntOrString:
		_, isStr := x.(string)
		ok = isStr || isInteger(x)
	case s.Type == "string":
		_, ok = x.(string)
	case s.Type == "integer":
		ok = isInteger(x)
	case s.Type == "number":
		_, ok = asFloat(x)
	case s.Type == "boolean":
		_, ok = x.(bool)
	case s.Type == "object":
		_, ok = x.(map[string]any)
	case s.Type == "array":
		_, ok = x.([]any)
	}
	if !ok {
		w.add(path, "must be of type %s, got %s %s", s.typeName(), jsonType(x), show(x))
	}
	return ok
}

func (w *walker) checkFormat(path string, x any, s *schema) {
	if s.Format == "" {
		return
	}
	switch x := x.(type) {
	case string:
		// The server ignores a format on a non-string type for strings.
		if s.Type != "" && s.Type != "string" {
			return
		}
		if ok, known := validFormat(s.Format, x); known && !ok {
			w.add(path, "Invalid value: %s: must be of format %s", show(x), s.Format)
		}
	case int64:
		if s.Type == "integer" && s.Format == "int32" && (x < math.MinInt32 || x > math.MaxInt32) {
			w.add(path, "Invalid value: %d: does not fit in int32", x)
		}
	}
}

func (w *walker) number(path string, x any, s *schema) {
	f, _ := asFloat(x)
	if s.Maximum != nil {
		if s.ExclusiveMaximum && f >= *s.Maximum {
			w.add(path, "Invalid value: %s: should be less than %v", show(x), *s.Maximum)
		} else if f > *s.Maximum {
			w.add(path, "Invalid value: %s: should be less than or equal to %v", show(x), *s.Maximum)
		}
	}
	if s.Minimum != nil {
		if s.ExclusiveMinimum && f <= *s.Minimum {
			w.add(path, "Invalid value: %s: should be greater than %v", show(x), *s.Minimum)
		} else if f < *s.Minimum {
			w.add(path, "Invalid value: %s: should be greater than or equal to %v", show(x), *s.Minimum)
		}
	}
	if s.MultipleOf != nil && *s.MultipleOf != 0 {
		if q := f / *s.MultipleOf; q != math.Trunc(q) {
			w.add(path, "Invalid value: %s: should be a multiple of %v", show(x), *s.MultipleOf)
		}
	}
}

func (w *walker) str(path, x string, s *schema) {
	n := int64(utf8.RuneCountInString(x))
	if s.MinLength != nil && n < *s.MinLength {
		w.add(path, "Invalid value: %s: should be at least %d chars long", show(x), *s.MinLength)
	}
	if s.MaxLength != nil && n > *s.MaxLength {
		w.add(path, "Too long: may not be more than %d chars", *s.MaxLength)
	}
	if s.pattern != nil && !s.pattern.MatchString(x) {
		w.add(path, "Invalid value: %s: should match '%s'", show(x), s.Pattern)
	}
}

func (w *walker) array(path string, x []any, s *schema, structural bool) {
	n := int64(len(x))
	if s.MinItems != nil && n < *s.MinItems {
		w.add(path, "Invalid value: %d: should have at least %d items", n, *s.MinItems)
	}
	if s.MaxItems != nil && n > *s.MaxItems {
		w.add(path, "Too many: %d: must have at most %d items", n, *s.MaxItems)
	}
	switch {
	case s.ListType == "map":
		w.listMap(path, x, s)
	case s.ListType == "set" || s.UniqueItems:
		for _, i := range duplicates(x) {
			w.add(index(path, i), "Duplicate value: %s", show(x[i]))
		}
	}
	for i, e := range x {
		w.value(index(path, i), e, s.Items, structural)
	}
}

// duplicates returns the index of the second occurrence of each repeated
// value, as the server reports them.
func duplicates(x []any) []int {
	var dups []int
	seen := map[string]int{}
	for i, e := range x {
		b, _ := json.Marshal(e)
		seen[string(b)]++
		if seen[string(b)] == 2 {
			dups = append(dups, i)
		}
	}
	return dups
}

func (w *walker) listMap(path string, x []any, s *schema) {
	keys := make([]any, len(x))
	for i, e := range x {
		if e == nil {
			keys[i] = map[string]any{}
			continue
		}
		m, ok := e.(map[string]any)
		if !ok {
			w.add(index(path, i), "Invalid value: %s: must be an object for an array of list-type map", show(e))
			return
		}
		k := map[string]any{}
		for _, f := range s.ListMapKeys {
			if v, ok := m[f]; ok {
				k[f] = v
			}
		}
		keys[i] = k
	}
	for _, i := range duplicates(keys) {
		w.add(index(path, i), "Duplicate value: %s", show(keys[i]))
	}
}

var metaFields = map[string]bool{"apiVersion": true, "kind": true, "metadata": true}

// object checks an object's fields. root marks the resource itself, which
// the server treats like an embedded resource: apiVersion, kind and
// metadata are not pruned against the schema but checked as TypeMeta and
// ObjectMeta.
func (w *walker) object(path string, m map[string]any, s *schema, structural, root bool) {
	embedded := structural && (root || s.EmbeddedResource)
	if embedded {
		w.typeMeta(path, m, s, root)
	}
	count := int64(0)
	absent := map[string]bool{}
	for _, k := range sortedKeys(m) {
		v := m[k]
		if embedded && metaFields[k] {
			count++
			continue
		}
		child := join(path, k)
		ps, known := s.Properties[k]
		if !known {
			if ps, known = s.additional(); known {
				child = key(path, k)
			}
		}
		if !known {
			if structural && !s.PreserveUnknownFields {
				w.add(child, "unknown field")
			}
			continue
		}
		if v == nil && ps != nil && !ps.Nullable {
			// The server drops a non-nullable null, then defaults it if it can.
			if ps.hasDefault() {
				count++
			} else {
				absent[k] = true
			}
			continue
		}
		count++
		w.value(child, v, ps, structural)
	}
	for _, r := range s.Required {
		if _, ok := m[r]; ok && !absent[r] {
			continue
		}
		if !s.Properties[r].hasDefault() {
			w.add(join(path, r), "Required value")
		}
	}
	for k, ps := range s.Properties {
		if _, ok := m[k]; (!ok || absent[k]) && ps.hasDefault() {
			count++
		}
	}
	if s.MinProperties != nil && count < *s.MinProperties {
		w.add(path, "Invalid value: %d: should have at least %d properties", count, *s.MinProperties)
	}
	if s.MaxProperties != nil && count > *s.MaxProperties {
		w.add(path, "Too many: %d: must have at most %d properties", count, *s.MaxProperties)
	}
}

func (w *walker) junctions(path string, x any, s *schema) {
	for _, sub := range s.AllOf {
		w.value(path, x, sub, false)
	}
	if len(s.AnyOf) > 0 {
		var first []Finding
		matched := false
		for i, sub := range s.AnyOf {
			fs := w.try(path, x, sub)
			if len(fs) == 0 {
				matched = true
				break
			}
			if i == 0 {
				first = fs
			}
		}
		if !matched {
			w.add(path, "must validate at least one schema (anyOf)")
			w.out = append(w.out, first...)
		}
	}
	if len(s.OneOf) > 0 {
		n := 0
		for _, sub := range s.OneOf {
			if len(w.try(path, x, sub)) == 0 {
				n++
			}
		}
		if n != 1 {
			w.add(path, "must validate one and only one schema (oneOf), matched %d", n)
		}
	}
	if s.Not != nil && len(w.try(path, x, s.Not)) == 0 {
		w.add(path, "must not validate the schema (not)")
	}
}

func (w *walker) try(path string, x any, s *schema) []Finding {
	sub := &walker{kind: w.kind, name: w.name}
	sub.value(path, x, s, false)
	return sub.out
}
