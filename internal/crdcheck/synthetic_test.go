package crdcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// widgetCRD exercises the keywords the real CRDs do not use (or use too
// little to test through them).
const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata:
            type: object
            properties:
              name: {type: string, maxLength: 10}
          spec:
            type: object
            required: [size, mode]
            properties:
              size: {type: number, exclusiveMinimum: true, minimum: 0, exclusiveMaximum: true, maximum: 10, multipleOf: 0.5}
              count: {type: integer, format: int32}
              mode: {type: string, default: fast}
              ratio: {type: integer, nullable: true}
              level: {type: integer, default: 3}
              tags:
                type: array
                uniqueItems: true
                maxItems: 3
                items: {type: string}
              set:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              labels:
                type: object
                maxProperties: 2
                additionalProperties: {type: string, pattern: "^[a-z]+$"}
              closed:
                type: object
                additionalProperties: false
              open:
                type: object
                additionalProperties: true
              blob: {x-kubernetes-preserve-unknown-fields: true}
              partly:
                type: object
                x-kubernetes-preserve-unknown-fields: true
                properties:
                  known: {type: boolean}
              child:
                type: object
                x-kubernetes-embedded-resource: true
                x-kubernetes-preserve-unknown-fields: true
              either:
                type: string
                oneOf:
                - pattern: "^a"
                - pattern: "b$"
              notX:
                type: string
                not: {enum: ["x"]}
              any:
                type: string
                anyOf:
                - enum: ["one"]
                - maxLength: 1
              when: {type: string, format: date-time}
              data: {type: string, format: byte}
              cidr: {type: string, format: cidr}
              wait: {type: string, format: duration}
              ios: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
  - name: v0
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object}
`

func widgetValidator(t *testing.T) *Validator {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "widgets.yaml"), []byte(widgetCRD), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSyntheticKeywords(t *testing.T) {
	v := widgetValidator(t)
	head := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
	tests := []struct {
		name string
		spec string
		want []string // Finding.String() without the "Widget/w: " prefix
	}{
		{"minimal: mode defaulted, int is a number", "spec: {size: 2}", nil},
		{"exclusive bounds", "spec: {size: 0}", []string{"spec.size: Invalid value: 0: should be greater than 0"}},
		{"exclusive maximum", "spec: {size: 10}", []string{"spec.size: Invalid value: 10: should be less than 10"}},
		{"multipleOf", "spec: {size: 1.25}", []string{"spec.size: Invalid value: 1.25: should be a multiple of 0.5"}},
		{"int32 range", "spec: {size: 1, count: 3000000000}", []string{"spec.count: Invalid value: 3000000000: does not fit in int32"}},
		{"integral float is an integer", "spec: {size: 1, count: 2.0}", nil},
		{"fractional float is not", "spec: {size: 1, count: 2.5}", []string{"spec.count: must be of type integer, got number 2.5"}},
		{"required without default", "spec: {mode: slow}", []string{"spec.size: Required value"}},
		{"nullable null kept, defaulted null fine", "spec: {size: 1, ratio: null, level: null, mode: null}", nil},
		{"non-nullable null in a list is an error", "spec: {size: 1, tags: [a, null]}", []string{"spec.tags[1]: must be of type string, got null"}},
		{"uniqueItems and maxItems", "spec: {size: 1, tags: [a, b, a, c]}", []string{
			"spec.tags: Too many: 4: must have at most 3 items",
			`spec.tags[2]: Duplicate value: "a"`,
		}},
		{"list-type set", "spec: {size: 1, set: [a, a]}", []string{`spec.set[1]: Duplicate value: "a"`}},
		{"additionalProperties schema and maxProperties", "spec: {size: 1, labels: {a: x, b: Q, c: z}}", []string{
			"spec.labels: Too many: 3: must have at most 2 properties",
			`spec.labels[b]: Invalid value: "Q": should match '^[a-z]+$'`,
		}},
		{"additionalProperties false and true", "spec: {size: 1, closed: {a: 1}, open: {b: {c: 1}}}", []string{"spec.closed.a: unknown field"}},
		{"preserve unknown fields", "spec: {size: 1, blob: {x: [1, {y: 2}]}, partly: {known: 1, other: 2}}", []string{
			"spec.partly.known: must be of type boolean, got integer 1",
		}},
		{"embedded resource", "spec: {size: 1, child: {kind: 7, metadata: {name: x, bogus: 1}, extra: 1}}", []string{
			"spec.child.apiVersion: Required value",
			"spec.child.kind: must be of type string, got integer 7",
			"spec.child.metadata.bogus: unknown field",
		}},
		{"oneOf", "spec: {size: 1, either: ab}", []string{"spec.either: must validate one and only one schema (oneOf), matched 2"}},
		{"oneOf ok", "spec: {size: 1, either: ax}", nil},
		{"not", "spec: {size: 1, notX: x}", []string{"spec.notX: must not validate the schema (not)"}},
		{"anyOf", "spec: {size: 1, any: two}", []string{
			`spec.any: Unsupported value: "two": supported values: "one"`,
			"spec.any: must validate at least one schema (anyOf)",
		}},
		{"anyOf ok", "spec: {size: 1, any: t}", nil},
		{"formats ok", `spec: {size: 1, when: "2024-01-02T03:04:05Z", data: aGk=, cidr: 010.0.0.0/8, wait: 3 days, ios: 5}`, nil},
		{"formats bad", `spec: {size: 1, when: "2024-01-02", data: "hi", cidr: 10.0.0.0, wait: soon, ios: 1.5}`, []string{
			`spec.cidr: Invalid value: "10.0.0.0": must be of format cidr`,
			`spec.data: Invalid value: "hi": must be of format byte`,
			"spec.ios: must be of type integer or string, got number 1.5",
			`spec.wait: Invalid value: "soon": must be of format duration`,
			`spec.when: Invalid value: "2024-01-02": must be of format date-time`,
		}},
		{"metadata.name schema applies", "spec: {size: 1}\n", nil},
		{"placeholders skip value checks", `spec: {size: "${SIZE}", count: "${N}", tags: ["${T}", "${T}"], when: "${W}"}`, []string{
			`spec.tags[1]: Duplicate value: "${T}"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range v.Validate(parse(t, head+tc.spec)) {
				got = append(got, strings.TrimPrefix(f.String(), "Widget/w: "))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyntheticMetadataAndVersions(t *testing.T) {
	v := widgetValidator(t)
	tests := []struct {
		name, obj string
		want      []string
	}{
		{"name longer than the CRD allows", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: abcdefghijk}\nspec: {size: 1}\n",
			[]string{"Widget/abcdefghijk: metadata.name: Too long: may not be more than 10 chars"}},
		{"generateName instead of name", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {generateName: w-}\nspec: {size: 1}\n", nil},
		{"not served", "apiVersion: example.com/v0\nkind: Widget\nmetadata: {name: w}\n",
			[]string{`Widget/w: apiVersion: version "v0" of Widget.example.com is not served`}},
		{"no apiVersion", "kind: Widget\nmetadata: {name: w}\n", []string{"Widget/w: apiVersion: Required value"}},
		{"bad apiVersion", "apiVersion: a/b/c\nkind: Widget\nmetadata: {name: w}\n",
			[]string{`Widget/w: apiVersion: Invalid value: "a/b/c": must be group/version or version`}},
		{"duplicate keys", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1, size: 2}\n",
			[]string{`Widget/w: invalid YAML: yaml: unmarshal errors: line 4: key "size" already set in map`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range v.Validate(parse(t, tc.obj)) {
				got = append(got, f.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown keyword", map[string]string{"a.yaml": strings.Replace(widgetCRD, "uniqueItems: true", "uniqueItems: true\n                contains: {type: string}", 1)}, `unknown field "contains"`},
		{"duplicate kind", map[string]string{"a.yaml": widgetCRD, "b.yaml": widgetCRD}, "defined in both"},
		{"bad pattern", map[string]string{"a.yaml": strings.Replace(widgetCRD, `"^[a-z]+$"`, `"(("`, 1)}, "pattern"},
		{"no CRDs", map[string]string{"a.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, "no CRDs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
