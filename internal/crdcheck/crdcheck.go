// Package crdcheck validates Kubernetes objects offline the way an API server
// with the Cluster API and CAPA CRDs installed would on create with strict
// field validation, so tests can prove that what this project emits is
// accepted, not merely well-formed YAML.
//
// Covered, following k8s.io/apiextensions-apiserver's order (prune unknown
// fields, drop non-nullable nulls, default, validate):
//   - unknown fields, reported with their full path, honouring
//     x-kubernetes-preserve-unknown-fields, additionalProperties and
//     x-kubernetes-embedded-resource;
//   - type (a YAML int is a valid number, an integral float a valid
//     integer), x-kubernetes-int-or-string, nullable, enum, minimum/maximum
//     (exclusive too), multipleOf, minLength/maxLength, pattern, format
//     (int32, date-time, byte, cidr, duration), minItems/maxItems,
//     uniqueItems, x-kubernetes-list-type set/map uniqueness,
//     minProperties/maxProperties, required (a missing field with a default
//     is fine), allOf/anyOf/oneOf/not;
//   - metadata as ObjectMeta: known fields, their types, name/generateName
//     (one is required at the root), DNS name syntax, label and annotation
//     syntax;
//   - apiVersion/kind: a version that is not served, or a kind or version
//     unknown to a group whose CRDs are loaded;
//   - v1 Secret (built in, so no CRD): top-level fields, base64 data,
//     string stringData, key syntax.
//
// Not covered: x-kubernetes-validations (CEL rules; evaluating them needs
// the CEL runtime and Kubernetes' CEL libraries, far more than a test
// helper should pull in), admission webhooks other than those in
// CheckWebhooks, and conversion between versions. Objects of groups with no
// loaded CRD (apps/v1, v1 ConfigMap, ...) are skipped.
//
// clusterctl templates hold placeholders such as replicas:
// ${WORKER_MACHINE_COUNT}, which YAML reads as a string where an integer is
// expected. Any string containing "${" is therefore exempt from value checks
// (type, format, enum, length, pattern, range); it still counts as present
// for required and as a key for unknown-field checks.
package crdcheck

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// Finding is one reason the API server (or a webhook) would reject an object.
type Finding struct {
	Kind    string // the object's kind
	Name    string // the object's metadata.name
	Path    string // field path such as spec.awsLaunchTemplate.metadataOptions; empty for the whole object
	Message string
}

func (f Finding) String() string {
	if f.Path == "" {
		return fmt.Sprintf("%s/%s: %s", f.Kind, f.Name, f.Message)
	}
	return fmt.Sprintf("%s/%s: %s: %s", f.Kind, f.Name, f.Path, f.Message)
}

type groupKind struct{ group, kind string }

type crdVersion struct {
	served bool
	schema *schema
	source string // file it came from, for load errors
}

// Validator holds the schemas of a set of CRDs. It is read-only after New and
// safe for concurrent use.
type Validator struct {
	kinds  map[groupKind]map[string]*crdVersion // group/kind -> version -> schema
	groups map[string]bool
}

// New loads every CustomResourceDefinition in the *.yaml files directly in
// dirs. Non-CRD documents are ignored; a GroupVersionKind defined twice, or
// a schema using a keyword this package does not know, is an error.
func New(dirs ...string) (*Validator, error) {
	v := &Validator{kinds: map[groupKind]map[string]*crdVersion{}, groups: map[string]bool{}}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("crdcheck: no *.yaml files in %s", dir)
		}
		sort.Strings(files)
		for _, f := range files {
			if err := v.loadFile(f); err != nil {
				return nil, err
			}
		}
	}
	if len(v.kinds) == 0 {
		return nil, errors.New("crdcheck: no CRDs found")
	}
	return v, nil
}

// DefaultDirs returns the CRD directories of the pinned CAPA and Cluster API
// releases (see package modcache), downloading the modules if needed.
func DefaultDirs() ([]string, error) {
	capa, err := modcache.CAPADir()
	if err != nil {
		return nil, err
	}
	capi, err := modcache.CAPIDir()
	if err != nil {
		return nil, err
	}
	dirs := []string{filepath.Join(capa, "config", "crd", "bases")}
	// Cluster API moved its core CRDs from config/ to core/config/; take
	// whichever this release has so a version bump does not silently drop them.
	var core bool
	for _, d := range []string{"config/crd/bases", "core/config/crd/bases"} {
		if isDir(filepath.Join(capi, d)) {
			dirs = append(dirs, filepath.Join(capi, d))
			core = true
		}
	}
	if !core {
		return nil, fmt.Errorf("crdcheck: no core CRD directory in %s", capi)
	}
	for _, d := range []string{"bootstrap/kubeadm/config/crd/bases", "controlplane/kubeadm/config/crd/bases"} {
		p := filepath.Join(capi, d)
		if !isDir(p) {
			return nil, fmt.Errorf("crdcheck: %s missing", p)
		}
		dirs = append(dirs, p)
	}
	return dirs, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

var defaultValidator = sync.OnceValues(func() (*Validator, error) {
	dirs, err := DefaultDirs()
	if err != nil {
		return nil, err
	}
	return New(dirs...)
})

// Default returns a Validator for the CRDs of the pinned CAPA and Cluster API
// releases. It is built once per process.
func Default() (*Validator, error) { return defaultValidator() }

type crdDoc struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema *struct {
				OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func (v *Validator) loadFile(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// Split documents with yaml.v3, but convert each with sigs.k8s.io/yaml as
	// kubectl does when it installs a CRD, so enum values and defaults read
	// the way the server received them.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("crdcheck: %s: %v", file, err)
		}
		text, err := yaml.NewRNode(&node).String()
		if err != nil {
			return fmt.Errorf("crdcheck: %s: %v", file, err)
		}
		js, err := sigsyaml.YAMLToJSON([]byte(text))
		if err != nil {
			return fmt.Errorf("crdcheck: %s: %v", file, err)
		}
		var doc crdDoc
		if err := json.Unmarshal(js, &doc); err != nil {
			return fmt.Errorf("crdcheck: %s: %v", file, err)
		}
		if doc.Kind != "CustomResourceDefinition" {
			continue
		}
		if err := v.addCRD(file, &doc); err != nil {
			return err
		}
	}
}

func (v *Validator) addCRD(file string, doc *crdDoc) error {
	gk := groupKind{doc.Spec.Group, doc.Spec.Names.Kind}
	if gk.group == "" || gk.kind == "" {
		return fmt.Errorf("crdcheck: %s: CRD without group or kind", file)
	}
	versions := v.kinds[gk]
	if versions == nil {
		versions = map[string]*crdVersion{}
		v.kinds[gk] = versions
	}
	for _, ver := range doc.Spec.Versions {
		if prev, ok := versions[ver.Name]; ok {
			return fmt.Errorf("crdcheck: %s/%s, Kind=%s defined in both %s and %s", gk.group, ver.Name, gk.kind, prev.source, file)
		}
		cv := &crdVersion{served: ver.Served, source: file}
		if ver.Schema == nil || len(ver.Schema.OpenAPIV3Schema) == 0 {
			return fmt.Errorf("crdcheck: %s: %s/%s has no openAPIV3Schema", file, gk.kind, ver.Name)
		}
		if err := strictDecode(ver.Schema.OpenAPIV3Schema, &cv.schema); err != nil {
			return fmt.Errorf("crdcheck: %s: %s/%s schema: %v", file, gk.kind, ver.Name, err)
		}
		if err := cv.schema.prepare(gk.kind + "/" + ver.Name); err != nil {
			return fmt.Errorf("crdcheck: %s: %v", file, err)
		}
		versions[ver.Name] = cv
	}
	v.groups[gk.group] = true
	return nil
}

// Covers reports whether objects of this apiVersion and kind are checked:
// v1 Secrets and every kind of a group that has CRDs loaded (an unknown kind
// of such a group is itself a finding).
func (v *Validator) Covers(apiVersion, kind string) bool {
	if apiVersion == "v1" && kind == "Secret" {
		return true
	}
	group, _, _ := splitAPIVersion(apiVersion)
	return v.groups[group]
}

// Kinds lists the loaded group/version kinds, served or not, sorted.
func (v *Validator) Kinds() []string {
	var out []string
	for gk, versions := range v.kinds {
		for ver, cv := range versions {
			s := gk.group + "/" + ver + ", Kind=" + gk.kind
			if !cv.served {
				s += " (not served)"
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func splitAPIVersion(apiVersion string) (group, version string, ok bool) {
	switch strings.Count(apiVersion, "/") {
	case 0:
		return "", apiVersion, apiVersion != ""
	case 1:
		group, version, _ = strings.Cut(apiVersion, "/")
		return group, version, group != "" && version != ""
	}
	return "", "", false
}

// Validate checks one object and returns its findings sorted by path and
// message. It returns nil for objects that are not covered (see Covers).
func (v *Validator) Validate(obj *yaml.RNode) []Finding {
	m, findings := toMap(obj)
	if m == nil {
		return findings
	}
	return sortFindings(append(findings, v.validate(m)...))
}

// ValidateMap is Validate for an object already decoded into Go values
// (as from JSON or YAML); it is normalized through JSON first.
func (v *Validator) ValidateMap(obj map[string]any) []Finding {
	m, findings := mapToMap(obj)
	if m == nil {
		return findings
	}
	return sortFindings(append(findings, v.validate(m)...))
}

// CheckAll runs Validate and CheckWebhooks on every object and returns all
// findings, sorted.
func (v *Validator) CheckAll(objs []*yaml.RNode) []Finding {
	var out []Finding
	for _, o := range objs {
		m, findings := toMap(o)
		out = append(out, findings...)
		if m != nil {
			out = append(out, v.validate(m)...)
			out = append(out, checkWebhooks(m)...)
		}
	}
	return sortFindings(out)
}

func (v *Validator) validate(m map[string]any) []Finding {
	w := newWalker(m)
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	if apiVersion == "" || kind == "" {
		// Nothing can be created without both, whatever its group.
		if apiVersion == "" {
			w.add("apiVersion", "Required value")
		}
		if kind == "" {
			w.add("kind", "Required value")
		}
		return w.out
	}
	group, version, ok := splitAPIVersion(apiVersion)
	if !ok {
		w.add("apiVersion", "Invalid value: %s: must be group/version or version", show(apiVersion))
		return w.out
	}
	if group == "" && version == "v1" && kind == "Secret" {
		w.secret(m)
		return w.out
	}
	if !v.groups[group] {
		return nil
	}
	versions, ok := v.kinds[groupKind{group, kind}]
	if !ok {
		w.add("kind", "no matches for kind %q in version %q", kind, apiVersion)
		return w.out
	}
	cv, ok := versions[version]
	if !ok {
		w.add("apiVersion", "no matches for kind %q in version %q", kind, apiVersion)
		return w.out
	}
	if !cv.served {
		w.add("apiVersion", "version %q of %s.%s is not served", version, kind, group)
		return w.out
	}
	w.object("", m, cv.schema, true, true)
	return w.out
}

func sortFindings(f []Finding) []Finding {
	slices.SortStableFunc(f, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return f
}
