package crdcheck

import (
	"encoding/base64"
	"regexp"
	"strings"
)

const (
	dns1123LabelFmt = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	qualifiedFmt    = `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
)

var (
	dns1123LabelRE     = regexp.MustCompile("^" + dns1123LabelFmt + "$")
	dns1123SubdomainRE = regexp.MustCompile("^" + dns1123LabelFmt + `(\.` + dns1123LabelFmt + ")*$")
	dns1035LabelRE     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	qualifiedNameRE    = regexp.MustCompile("^" + qualifiedFmt + "$")
	labelValueRE       = regexp.MustCompile("^(" + qualifiedFmt + ")?$")
	configKeyRE        = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// typeMeta checks apiVersion, kind and metadata of a resource: the root
// object, whose apiVersion and kind the caller has already resolved, or an
// x-kubernetes-embedded-resource, where both are required.
func (w *walker) typeMeta(path string, m map[string]any, s *schema, root bool) {
	if !root {
		for _, f := range []string{"apiVersion", "kind"} {
			v, ok := m[f]
			str, isStr := v.(string)
			switch {
			case !ok || (isStr && str == ""):
				w.add(join(path, f), "Required value")
			case !isStr:
				w.add(join(path, f), "must be of type string, got %s %s", jsonType(v), show(v))
			case hasPlaceholder(str):
			case f == "apiVersion":
				if _, _, ok := splitAPIVersion(str); !ok {
					w.add(join(path, f), "Invalid value: %s: must be group/version or version", show(str))
				}
			case f == "kind":
				if !dns1035LabelRE.MatchString(strings.ToLower(str)) {
					w.add(join(path, f), "Invalid value: %s: may have mixed case, but should otherwise be a DNS-1035 label", show(str))
				}
			}
			if isStr {
				w.value(join(path, f), str, s.Properties[f], false)
			}
		}
	}
	md, ok := m["metadata"]
	if !ok {
		if root {
			w.add("metadata.name", "Required value: name or generateName is required")
		}
		return
	}
	w.objectMeta(join(path, "metadata"), md, s.Properties["metadata"], root)
}

// objectMeta checks metadata as the server decodes it into ObjectMeta:
// strictly (an unknown field is an error), with the syntax rules of
// apimachinery's ValidateObjectMeta for the fields a manifest sets. A CRD
// schema may only restrict name and generateName, and those are applied too.
func (w *walker) objectMeta(path string, x any, s *schema, root bool) {
	if x == nil {
		if root {
			w.add(join(path, "name"), "Required value: name or generateName is required")
		}
		return
	}
	m, ok := x.(map[string]any)
	if !ok {
		w.add(path, "must be of type object, got %s %s", jsonType(x), show(x))
		return
	}
	for _, k := range sortedKeys(m) {
		v := m[k]
		p := join(path, k)
		if v == nil {
			continue // decodes to the zero value
		}
		switch k {
		case "name", "generateName":
			str, ok := w.metaString(p, v)
			if !ok || hasPlaceholder(str) {
				continue
			}
			name := str
			if k == "generateName" {
				name = strings.TrimSuffix(str, "-")
			}
			if k == "name" || name != "" {
				w.dnsSubdomain(p, str, name)
			}
			if s != nil {
				w.value(p, str, s.Properties[k], false)
			}
		case "namespace":
			if str, ok := w.metaString(p, v); ok && !hasPlaceholder(str) && str != "" &&
				(len(str) > 63 || !dns1123LabelRE.MatchString(str)) {
				w.add(p, "Invalid value: %s: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character", show(str))
			}
		case "uid", "resourceVersion", "selfLink", "creationTimestamp", "deletionTimestamp":
			w.metaString(p, v)
		case "generation", "deletionGracePeriodSeconds":
			if !isInteger(v) {
				w.add(p, "must be of type integer, got %s %s", jsonType(v), show(v))
			}
		case "labels":
			w.stringMap(p, v, func(kp, key, val string) {
				w.qualifiedName(kp, key)
				if !hasPlaceholder(val) && (len(val) > 63 || !labelValueRE.MatchString(val)) {
					w.add(kp, "Invalid value: %s: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)", show(val))
				}
			})
		case "annotations":
			total := 0
			w.stringMap(p, v, func(kp, key, val string) {
				w.qualifiedName(kp, strings.ToLower(key))
				total += len(key) + len(val)
			})
			if total > 256*1024 {
				w.add(p, "Too long: must have at most 262144 bytes")
			}
		case "finalizers":
			w.stringList(p, v)
		case "ownerReferences":
			w.ownerReferences(p, v)
		case "managedFields":
			if _, ok := v.([]any); !ok {
				w.add(p, "must be of type array, got %s %s", jsonType(v), show(v))
			}
		default:
			w.add(p, "unknown field")
		}
	}
	if root {
		name, _ := m["name"].(string)
		gen, _ := m["generateName"].(string)
		if name == "" && gen == "" {
			w.add(join(path, "name"), "Required value: name or generateName is required")
		}
	}
}

func (w *walker) metaString(p string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		w.add(p, "must be of type string, got %s %s", jsonType(v), show(v))
	}
	return s, ok
}

func (w *walker) dnsSubdomain(p, value, name string) {
	if len(name) > 253 || !dns1123SubdomainRE.MatchString(name) {
		w.add(p, "Invalid value: %s: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", show(value))
	}
}

// qualifiedName checks a label or annotation key: an optional DNS subdomain
// prefix and a slash, then a name of at most 63 characters.
func (w *walker) qualifiedName(p, k string) {
	if hasPlaceholder(k) {
		return
	}
	name := k
	if prefix, n, ok := strings.Cut(k, "/"); ok {
		name = n
		if prefix == "" || len(prefix) > 253 || !dns1123SubdomainRE.MatchString(prefix) {
			w.add(p, "Invalid value: %s: prefix part must be a lowercase RFC 1123 subdomain", show(k))
			return
		}
	}
	if name == "" || len(name) > 63 || !qualifiedNameRE.MatchString(name) {
		w.add(p, "Invalid value: %s: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)", show(k))
	}
}

// stringMap checks a map[string]string field and calls each for every entry.
func (w *walker) stringMap(p string, v any, each func(kp, k, val string)) {
	m, ok := v.(map[string]any)
	if !ok {
		w.add(p, "must be of type object, got %s %s", jsonType(v), show(v))
		return
	}
	for _, k := range sortedKeys(m) {
		kp := key(p, k)
		val, ok := m[k].(string)
		if !ok && m[k] != nil {
			w.add(kp, "must be of type string, got %s %s", jsonType(m[k]), show(m[k]))
			continue
		}
		each(kp, k, val)
	}
}

func (w *walker) stringList(p string, v any) {
	l, ok := v.([]any)
	if !ok {
		w.add(p, "must be of type array, got %s %s", jsonType(v), show(v))
		return
	}
	for i, e := range l {
		if _, ok := e.(string); !ok && e != nil {
			w.add(index(p, i), "must be of type string, got %s %s", jsonType(e), show(e))
		}
	}
}

func (w *walker) ownerReferences(p string, v any) {
	l, ok := v.([]any)
	if !ok {
		w.add(p, "must be of type array, got %s %s", jsonType(v), show(v))
		return
	}
	for i, e := range l {
		ip := index(p, i)
		m, ok := e.(map[string]any)
		if !ok {
			w.add(ip, "must be of type object, got %s %s", jsonType(e), show(e))
			continue
		}
		for _, k := range sortedKeys(m) {
			switch k {
			case "apiVersion", "kind", "name", "uid":
				if m[k] != nil {
					w.metaString(join(ip, k), m[k])
				}
			case "controller", "blockOwnerDeletion":
				if _, ok := m[k].(bool); !ok && m[k] != nil {
					w.add(join(ip, k), "must be of type boolean, got %s %s", jsonType(m[k]), show(m[k]))
				}
			default:
				w.add(join(ip, k), "unknown field")
			}
		}
		for _, k := range []string{"apiVersion", "kind", "name", "uid"} {
			if s, _ := m[k].(string); s == "" {
				w.add(join(ip, k), "Required value")
			}
		}
	}
}

// secret checks a core v1 Secret, which has no CRD: the fields of the Go
// type, decoded strictly, plus the API server's key syntax rule.
func (w *walker) secret(m map[string]any) {
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "apiVersion", "kind":
		case "metadata":
			w.objectMeta("metadata", v, nil, true)
		case "type":
			if v != nil {
				w.metaString(k, v)
			}
		case "immutable":
			if _, ok := v.(bool); !ok && v != nil {
				w.add(k, "must be of type boolean, got %s %s", jsonType(v), show(v))
			}
		case "data", "stringData":
			if v == nil || hasPlaceholder(v) {
				continue
			}
			w.stringMap(k, v, func(kp, key, val string) {
				w.secretKey(kp, key)
				if k == "data" && !hasPlaceholder(val) {
					// encoding/json decodes []byte with the standard
					// alphabet, padding required.
					if _, err := base64.StdEncoding.DecodeString(val); err != nil {
						w.add(kp, "Invalid value: %s: not valid standard base64: %v", show(val), err)
					}
				}
			})
		default:
			w.add(k, "unknown field")
		}
	}
	if _, ok := m["metadata"]; !ok {
		w.add("metadata.name", "Required value: name or generateName is required")
	}
}

func (w *walker) secretKey(p, k string) {
	if hasPlaceholder(k) {
		return
	}
	if len(k) > 253 || !configKeyRE.MatchString(k) || k == "." || k == ".." || strings.HasPrefix(k, "..") {
		w.add(p, "Invalid value: %s: a valid config key must consist of alphanumeric characters, '-', '_' or '.'", show(k))
	}
}
