package crdcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// schema is the subset of apiextensions.k8s.io/v1 JSONSchemaProps that a CRD
// may carry. It is decoded with unknown fields disallowed, so a future CRD
// that starts using a keyword this package does not know fails loading
// instead of being validated silently wrong.
type schema struct {
	Type   string `json:"type"`
	Format string `json:"format"`

	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *boolOrSchema      `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Required             []string           `json:"required"`
	MinProperties        *int64             `json:"minProperties"`
	MaxProperties        *int64             `json:"maxProperties"`

	Enum             []any    `json:"enum"`
	Minimum          *float64 `json:"minimum"`
	Maximum          *float64 `json:"maximum"`
	ExclusiveMinimum bool     `json:"exclusiveMinimum"`
	ExclusiveMaximum bool     `json:"exclusiveMaximum"`
	MultipleOf       *float64 `json:"multipleOf"`
	MinLength        *int64   `json:"minLength"`
	MaxLength        *int64   `json:"maxLength"`
	Pattern          string   `json:"pattern"`
	MinItems         *int64   `json:"minItems"`
	MaxItems         *int64   `json:"maxItems"`
	UniqueItems      bool     `json:"uniqueItems"`
	Nullable         bool     `json:"nullable"`
	Default          any      `json:"default"`

	AllOf []*schema `json:"allOf"`
	AnyOf []*schema `json:"anyOf"`
	OneOf []*schema `json:"oneOf"`
	Not   *schema   `json:"not"`

	PreserveUnknownFields bool     `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString           bool     `json:"x-kubernetes-int-or-string"`
	EmbeddedResource      bool     `json:"x-kubernetes-embedded-resource"`
	ListType              string   `json:"x-kubernetes-list-type"`
	ListMapKeys           []string `json:"x-kubernetes-list-map-keys"`

	// Accepted but not checked: documentation, server-side-apply hints and
	// CEL rules (see the package comment).
	Description  string          `json:"description"`
	Title        string          `json:"title"`
	Example      json.RawMessage `json:"example"`
	ExternalDocs json.RawMessage `json:"externalDocs"`
	MapType      string          `json:"x-kubernetes-map-type"`
	Validations  json.RawMessage `json:"x-kubernetes-validations"`

	pattern *regexp.Regexp
}

// boolOrSchema is additionalProperties, which JSON Schema allows to be a
// boolean or a schema.
type boolOrSchema struct {
	Allows bool
	Schema *schema
}

func (b *boolOrSchema) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch string(data) {
	case "true":
		b.Allows = true
		return nil
	case "false":
		return nil
	}
	b.Allows = true
	return strictDecode(data, &b.Schema)
}

// hasDefault reports whether the API server would fill this field in when
// it is absent (or null and not nullable) before validating.
func (s *schema) hasDefault() bool { return s != nil && s.Default != nil }

// additional returns the schema for object keys not in Properties, and
// whether such keys are allowed at all.
func (s *schema) additional() (*schema, bool) {
	if s.AdditionalProperties == nil {
		return nil, false
	}
	return s.AdditionalProperties.Schema, s.AdditionalProperties.Allows
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	return dec.Decode(v)
}

// prepare compiles patterns and normalizes enum and default values so that
// validation compares like with like. It walks every sub-schema.
func (s *schema) prepare(path string) error {
	if s == nil {
		return nil
	}
	if s.Pattern != "" {
		// The API server compiles patterns with Go's regexp as well, so a
		// pattern it accepts compiles here.
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return fmt.Errorf("%s: pattern %q: %v", path, s.Pattern, err)
		}
		s.pattern = re
	}
	for i := range s.Enum {
		s.Enum[i] = normalize(s.Enum[i])
	}
	s.Default = normalize(s.Default)
	for k, p := range s.Properties {
		if err := p.prepare(join(path, k)); err != nil {
			return err
		}
	}
	if s.AdditionalProperties != nil {
		if err := s.AdditionalProperties.Schema.prepare(path + "[*]"); err != nil {
			return err
		}
	}
	if err := s.Items.prepare(path + "[*]"); err != nil {
		return err
	}
	for _, group := range [][]*schema{s.AllOf, s.AnyOf, s.OneOf} {
		for _, sub := range group {
			if err := sub.prepare(path); err != nil {
				return err
			}
		}
	}
	return s.Not.prepare(path)
}
