package transformers_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// TestClusterClassFinalPatchKeepsWhatItDoesNotOwn runs a ClusterClass through the function
// and then applies the class's patches, as Cluster API's topology controller does (in order,
// add under a missing parent fails), to each template as the management cluster would have
// it: the output's, or the live one when the template is not in the input. before is what
// the function's earlier final patch (one add of the whole block, carrying the template's
// keys when the template was in the input) left there, checked by running this test on that
// code (d9e3658) with before in place of after; after is what the patch leaves now.
// conformance/TestClusterClassPatchEngine applies the same shape with Cluster API's own code.
func TestClusterClassFinalPatchKeepsWhatItDoesNotOwn(t *testing.T) {
	const req = `httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled`
	ipv6Patch := func(name, extra string) string {
		return `
- name: ` + name + extra + `
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {controlPlane: true, machineDeploymentClass: {names: ["*"]}}}
    jsonPatches:
    - {op: add, path: /spec/template/spec/instanceMetadataOptions/httpProtocolIpv6, value: enabled}`
	}
	cases := []struct {
		name string
		// inInput: the templates in the input ("cp", "worker") and their block ("" for none).
		inInput map[string]string
		// live: the block of a template that is not in the input, as the management cluster
		// has it (absent: none).
		live      map[string]string
		patches   string // the class's earlier patches
		variables string // the class's variables
		values    map[string]any
		// before and after: the block each target ends with ("cp", "worker"); "error" when
		// the patches fail.
		before, after map[string]string
		// warn: a substring of each warning on spec.patches, in order.
		warn []string
	}{
		{
			name:    "IPv6 template in the input: its key is kept, now by writing only the configured keys",
			inInput: map[string]string{"cp": "", "worker": "{httpProtocolIpv6: enabled}"},
			before:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
			after:   map[string]string{"cp": "{" + req + "}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
		},
		{
			name:    "IPv6 class: httpProtocolIpv6 from an earlier patch survives",
			inInput: map[string]string{"cp": "", "worker": ""},
			patches: ipv6Patch("ipv6", ""),
			before:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:   map[string]string{"cp": "{" + req + ", httpProtocolIpv6: enabled}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
		},
		{
			name:    "templates not in the input: the whole block, and a warning naming each template",
			live:    map[string]string{"cp": "{httpProtocolIpv6: enabled}"},
			before:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:   map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			warn:    []string{"control plane's AWSMachineTemplate cp-tpl, not one key at a time", "machine deployment class default-worker's AWSMachineTemplate worker-tpl, not one key at a time"},
			patches: "",
		},
		{
			name:    "templates not in the input, an earlier patch adds a key: the block exists, so key by key",
			live:    map[string]string{"cp": "{httpProtocolIpv6: enabled, instanceMetadataTags: enabled}", "worker": "{httpTokens: optional}"},
			patches: ipv6Patch("ipv6", ""),
			before:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:   map[string]string{"cp": "{" + req + ", httpProtocolIpv6: enabled}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
		},
		{
			name: "templates not in the input, an earlier patch writes the whole block: its keys are carried, no warning",
			patches: `
- name: imds-block
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {controlPlane: true, machineDeploymentClass: {names: [default-worker]}}}
    jsonPatches:
    - {op: add, path: /spec/template/spec/instanceMetadataOptions, value: {httpProtocolIpv6: enabled, httpTokens: optional}}`,
			before: map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + ", httpProtocolIpv6: enabled}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
		},
		{
			name:    "an earlier patch removes the block: key by key would fail, so the whole block, configured keys only",
			inInput: map[string]string{"cp": "{httpProtocolIpv6: enabled}", "worker": ""},
			patches: `
- name: drop-imds
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {controlPlane: true}}
    jsonPatches:
    - {op: remove, path: /spec/template/spec/instanceMetadataOptions}`,
			before: map[string]string{"cp": "{" + req + ", httpProtocolIpv6: enabled}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
		},
		{
			name:    "an earlier patch writes the block from an object variable: the block exists, key by key",
			inInput: map[string]string{"cp": "", "worker": ""},
			variables: `
- name: imds
  required: true
  schema: {openAPIV3Schema: {type: object, properties: {httpProtocolIpv6: {type: string}}}}`,
			patches: `
- name: imds-from-variable
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {machineDeploymentClass: {names: [default-worker]}}}
    jsonPatches:
    - {op: replace, path: /spec/template/spec/instanceMetadataOptions, valueFrom: {variable: imds}}`,
			values: map[string]any{"imds": map[string]any{"httpProtocolIpv6": "enabled"}},
			before: map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + ", httpProtocolIpv6: enabled}"},
		},
		{
			name:    "an earlier patch writes the spec from a Go template: the whole block, and a warning naming the patch",
			inInput: map[string]string{"cp": "", "worker": ""},
			patches: `
- name: spec-from-template
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {machineDeploymentClass: {names: [default-worker]}}}
    jsonPatches:
    - {op: replace, path: /spec/template/spec, valueFrom: {template: spec}}`,
			values: map[string]any{"spec": map[string]any{"instanceType": "m6i.large", "instanceMetadataOptions": map[string]any{"httpProtocolIpv6": "enabled"}}},
			before: map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			warn: []string{"default-worker's AWSMachineTemplate worker-tpl, not one key at a time: a JSON patch add of a key fails where the block is " +
				"missing, and the function cannot know whether it is there. Keys beyond the config (such as httpProtocolIpv6) set by " +
				"patch spec-from-template (the block from a Go template) are dropped when Cluster API applies the patch. For a patch that " +
				"adds only the configured keys, have an earlier patch make the block"},
		},
		{
			name:    "a disabled endpoint on the template stays disabled",
			inInput: map[string]string{"cp": "{httpEndpoint: disabled}", "worker": ""},
			before:  map[string]string{"cp": "{httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: disabled, instanceMetadataTags: disabled}", "worker": "{" + req + "}"},
			after:   map[string]string{"cp": "{httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: disabled, instanceMetadataTags: disabled}", "worker": "{" + req + "}"},
		},
		{
			name:    "an external patch, templates in the input: what it sets is kept, key by key",
			inInput: map[string]string{"cp": "", "worker": ""},
			patches: `
- name: ipv6-extension
  external: {generatePatchesExtension: generate-patches.ipv6}`,
			before: map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
		},
		{
			name:    "an external patch, a template not in the input: the warning names both",
			inInput: map[string]string{"cp": ""},
			patches: `
- name: ipv6-extension
  external: {generatePatchesExtension: generate-patches.ipv6}`,
			before: map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			warn:   []string{"worker-tpl, not one key at a time: a JSON patch add of a key fails where the block is missing, and the function cannot know whether it is there. Keys beyond the config (such as httpProtocolIpv6) set by the template (not in the input), external patch ipv6-extension are dropped when Cluster API applies the patch. For a patch that adds only the configured keys, put the template in the input"},
		},
		{
			name:    "an enabledIf patch adds a key to a template not in the input: the block may be missing, so the whole block",
			inInput: map[string]string{"cp": ""},
			live:    map[string]string{"worker": "{httpProtocolIpv6: enabled}"},
			patches: ipv6Patch("ipv6", "\n  enabledIf: '{{ .ipv6 }}'"),
			before:  map[string]string{"cp": "{" + req + "}", "worker": "{" + req + "}"},
			after:   map[string]string{"cp": "{" + req + ", httpProtocolIpv6: enabled}", "worker": "{" + req + "}"},
			warn:    []string{"worker-tpl, not one key at a time: a JSON patch add of a key fails where the block is missing, and the function cannot know whether it is there. Keys beyond the config (such as httpProtocolIpv6) set by the template (not in the input), patch ipv6 (httpProtocolIpv6, set only when its enabledIf holds) are dropped"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := ccInput(tc.inInput, tc.patches, tc.variables)
			cfg := transformers.DefaultConfig()
			out, results := moRun(t, cfg, input)
			var warns []string
			for _, r := range results {
				if r.Field != nil && r.Field.Path == "spec.patches" && strings.Contains(r.Message, "not one key at a time") {
					warns = append(warns, r.Message)
				}
			}
			if len(warns) != len(tc.warn) {
				t.Errorf("got %d warnings about the whole block, want %d:\n%s", len(warns), len(tc.warn), strings.Join(warns, "\n"))
			}
			for i := 0; i < len(warns) && i < len(tc.warn); i++ {
				if !strings.Contains(warns[i], tc.warn[i]) {
					t.Errorf("warning %d does not contain %q:\n%s", i, tc.warn[i], warns[i])
				}
			}
			got := ccApplyClass(t, out, tc.live, tc.values)
			want := map[string]string{}
			for k, v := range tc.after {
				want[k] = ccCanonical(t, v)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("blocks after Cluster API applies the patches (-want +got):\n%s\noutput:\n%s", d, out)
			}

			// Idempotent, and audit judges the output as enforce made it: clean, with the same warnings.
			again, _ := moRun(t, cfg, out)
			if d := cmp.Diff(out, again); d != "" {
				t.Errorf("second run changed the output:\n%s", d)
			}
			audit := *cfg
			audit.Mode = transformers.ModeAudit
			_, ar := moRun(t, &audit, out)
			var auditWarns []string
			for _, r := range ar {
				if r.Severity == transformers.Error {
					t.Errorf("audit of the output: %s", r)
				}
				if r.Field != nil && r.Field.Path == "spec.patches" && strings.Contains(r.Message, "not one key at a time") {
					auditWarns = append(auditWarns, r.Message)
				}
			}
			if d := cmp.Diff(warns, auditWarns); d != "" {
				t.Errorf("audit warns otherwise than enforce (-enforce +audit):\n%s", d)
			}
		})
	}
}

// TestClusterClassAuditFailsWholeBlockPatch: a final patch from an earlier version of the
// function, which replaced the whole block where the function knows it exists, is no longer
// compliant: audit fails it and enforce replaces it with one add per key.
func TestClusterClassAuditFailsWholeBlockPatch(t *testing.T) {
	old := `
- name: ipv6
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {controlPlane: true}}
    jsonPatches:
    - {op: add, path: /spec/template/spec/instanceMetadataOptions/httpProtocolIpv6, value: enabled}
- name: capa-imds-require-imdsv2
  definitions:
  - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, matchResources: {controlPlane: true, machineDeploymentClass: {names: [default-worker]}}}
    jsonPatches:
    - op: add
      path: /spec/template/spec/instanceMetadataOptions
      value: {httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled}`
	input := ccInput(map[string]string{"cp": "{httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled}",
		"worker": "{httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled}"}, old, "")
	audit := transformers.DefaultConfig()
	audit.Mode = transformers.ModeAudit
	_, ar := moRun(t, audit, input)
	var errs []string
	for _, r := range ar {
		if r.Severity == transformers.Error {
			errs = append(errs, r.Message)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "the patch capa-imds-require-imdsv2 is different") {
		t.Errorf("audit: want one error, the final patch is different; got:\n%s", strings.Join(errs, "\n"))
	}
	out, _ := moRun(t, transformers.DefaultConfig(), input)
	got := ccApplyClass(t, out, nil, nil)
	req := "httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled"
	want := map[string]string{"cp": ccCanonical(t, "{"+req+", httpProtocolIpv6: enabled}"), "worker": ccCanonical(t, "{"+req+"}")}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("blocks after the patches (-want +got):\n%s", d)
	}
}

// ccInput is a v1beta2 ClusterClass with a control plane (template cp-tpl), a machine
// deployment class default-worker (template worker-tpl) and one more per extra (template
// <extra>-tpl), and the templates named in inInput.
func ccInput(inInput map[string]string, patches, variables string, extra ...string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: cluster.x-k8s.io/v1beta2
kind: ClusterClass
metadata:
  name: c
  namespace: ns
spec:
  controlPlane:
    templateRef: {apiVersion: controlplane.cluster.x-k8s.io/v1beta2, kind: KubeadmControlPlaneTemplate, name: kcp}
    machineInfrastructure:
      templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, name: cp-tpl}
  infrastructure:
    templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterTemplate, name: c}
  workers:
    machineDeployments:
    - class: default-worker
      bootstrap:
        templateRef: {apiVersion: bootstrap.cluster.x-k8s.io/v1beta2, kind: KubeadmConfigTemplate, name: worker}
      infrastructure:
        templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, name: worker-tpl}
`)
	for _, e := range extra {
		fmt.Fprintf(&b, `    - class: %[1]s
      bootstrap:
        templateRef: {apiVersion: bootstrap.cluster.x-k8s.io/v1beta2, kind: KubeadmConfigTemplate, name: worker}
      infrastructure:
        templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, name: %[1]s-tpl}
`, e)
	}
	if variables != "" {
		b.WriteString("  variables:" + ccIndent(variables, "  ") + "\n")
	}
	if patches != "" {
		b.WriteString("  patches:" + ccIndent(patches, "  ") + "\n")
	}
	for _, k := range append([]string{"cp", "worker"}, extra...) {
		block, ok := inInput[k]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "---\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplate\nmetadata:\n  name: %s-tpl\n  namespace: ns\nspec:\n  template:\n    spec:\n      instanceType: m6i.large\n", k)
		if block != "" {
			fmt.Fprintf(&b, "      instanceMetadataOptions: %s\n", block)
		}
	}
	return b.String()
}

func ccIndent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func ccCanonical(t *testing.T, y string) string {
	t.Helper()
	if y == "error" {
		return y
	}
	j, err := sigsyaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("%s: %v", y, err)
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// ccApplyClass applies the output ClusterClass's inline patches, in order, to each target
// template, as Cluster API's inline patch generator and evanphx/json-patch do: a selector
// matches on apiVersion, kind and matchResources (names with "*" globs); add and replace
// write, and fail under a missing parent; replace and remove fail on a missing path.
// External patches are left out (nothing runs them here), and enabledIf is taken to hold.
// It returns each target's block, canonical JSON, or "error".
func ccApplyClass(t *testing.T, out string, live map[string]string, values map[string]any, extra ...string) map[string]string {
	t.Helper()
	docs := map[string]map[string]any{}
	var class map[string]any
	for _, part := range strings.Split(out, "\n---\n") {
		var o map[string]any
		if err := sigsyaml.Unmarshal([]byte(part), &o); err != nil {
			t.Fatalf("output: %v", err)
		}
		switch o["kind"] {
		case "ClusterClass":
			class = o
		case "AWSMachineTemplate":
			docs[strings.TrimSuffix(o["metadata"].(map[string]any)["name"].(string), "-tpl")] = o
		}
	}
	got := map[string]string{}
	for _, target := range append([]string{"cp", "worker"}, extra...) {
		doc := docs[target]
		if doc == nil {
			spec := map[string]any{"instanceType": "m6i.large"}
			if b, ok := live[target]; ok {
				var block map[string]any
				if err := sigsyaml.Unmarshal([]byte(b), &block); err != nil {
					t.Fatal(err)
				}
				spec["instanceMetadataOptions"] = block
			}
			doc = map[string]any{"spec": map[string]any{"template": map[string]any{"spec": spec}}}
		}
		result, err := ccPatch(doc, class, target, values)
		if err != nil {
			t.Logf("%s: %v", target, err)
			got[target] = "error"
			continue
		}
		block := result["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["instanceMetadataOptions"]
		b, _ := json.Marshal(block)
		got[target] = string(b)
	}
	return got
}

func ccPatch(doc, class map[string]any, target string, values map[string]any) (map[string]any, error) {
	raw, _ := json.Marshal(doc)
	var d map[string]any
	_ = json.Unmarshal(raw, &d)
	patches, _ := class["spec"].(map[string]any)["patches"].([]any)
	for _, p := range patches {
		pm := p.(map[string]any)
		defs, _ := pm["definitions"].([]any)
		for _, def := range defs {
			dm := def.(map[string]any)
			sel := dm["selector"].(map[string]any)
			if sel["apiVersion"] != "infrastructure.cluster.x-k8s.io/v1beta2" || sel["kind"] != "AWSMachineTemplate" {
				continue
			}
			mr, _ := sel["matchResources"].(map[string]any)
			match := target == "cp" && mr["controlPlane"] == true
			if target != "cp" {
				class := ccMDClass(target)
				mdc, _ := mr["machineDeploymentClass"].(map[string]any)
				names, _ := mdc["names"].([]any)
				for _, n := range names {
					s := n.(string)
					match = match || s == "*" || s == class ||
						(strings.HasSuffix(s, "*") && strings.HasPrefix(class, strings.TrimSuffix(s, "*")))
				}
			}
			if !match {
				continue
			}
			ops, _ := dm["jsonPatches"].([]any)
			for _, op := range ops {
				om := op.(map[string]any)
				value := om["value"]
				if vf, ok := om["valueFrom"].(map[string]any); ok {
					name, _ := vf["variable"].(string)
					if name == "" {
						name, _ = vf["template"].(string)
					}
					value = values[name]
				}
				if err := ccOp(d, om["op"].(string), om["path"].(string), value); err != nil {
					return nil, fmt.Errorf("patch %v: %w", pm["name"], err)
				}
			}
		}
	}
	return d, nil
}

// ccMDClass is the machine deployment class a target of ccInput stands for: "worker" is
// default-worker (template worker-tpl), any other, extra, target is a class of its own name
// (template <name>-tpl).
func ccMDClass(target string) string {
	if target == "worker" {
		return "default-worker"
	}
	return target
}

func ccOp(doc map[string]any, op, path string, value any) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	parent := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := parent[p].(map[string]any)
		if !ok {
			return fmt.Errorf("%s %s: doc is missing path", op, path)
		}
		parent = next
	}
	key := parts[len(parts)-1]
	_, exists := parent[key]
	switch op {
	case "add":
	case "replace", "remove":
		if !exists {
			return fmt.Errorf("%s %s: missing key", op, path)
		}
	default:
		return fmt.Errorf("%s: not simulated", op)
	}
	if op == "remove" {
		delete(parent, key)
		return nil
	}
	raw, _ := json.Marshal(value)
	var v any
	_ = json.Unmarshal(raw, &v)
	parent[key] = v
	return nil
}

// TestClusterClassFinalPatchRuleProfiles: each template gets its own profile (spec.rules)
// in the final patch, as metadataoptions.go gives it on the template, and templates with
// different profiles get different definitions. before is what the earlier final patch
// (the config's options for every template, whatever rule matched it) left on each; a
// template the input does not hold is matched from its reference, and a rule that needs
// what the reference cannot tell is an error naming the rule and the template.
func TestClusterClassFinalPatchRuleProfiles(t *testing.T) {
	const (
		hop2 = `httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled`
		hop1 = `httpTokens: required, httpPutResponseHopLimit: 1, httpEndpoint: enabled, instanceMetadataTags: disabled`
	)
	cases := []struct {
		name          string
		rules         string
		inInput       map[string]string
		before, after map[string]string
		// definitions: the final patch's, each as its selector's targets ("cp", class names).
		definitions []string
		warn        []string // substrings of the warnings about the whole block, in order
		err         []string // substrings of the one error, on field errField
		errField    string
	}{
		{
			name:        "a rule's hop limit on one machine deployment class's template: a definition of its own",
			rules:       "  - name: gpu\n    match: {kinds: [AWSMachineTemplate], names: [\"gpu-*\"]}\n    instanceMetadataOptions: {httpPutResponseHopLimit: 1}\n",
			inInput:     map[string]string{"cp": "", "worker": "", "gpu": ""},
			before:      map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			after:       map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop1 + "}"},
			definitions: []string{"cp default-worker", "gpu"},
		},
		{
			name:        "the rule matches a template not in the input by its name: decided from the reference",
			rules:       "  - name: gpu\n    match: {kinds: [AWSMachineTemplate], namespaces: [ns], names: [\"gpu-*\"]}\n    instanceMetadataOptions: {httpPutResponseHopLimit: 1}\n",
			inInput:     map[string]string{"cp": "", "worker": ""},
			before:      map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			after:       map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop1 + "}"},
			definitions: []string{"cp default-worker", "gpu"},
			warn:        []string{"machine deployment class gpu's AWSMachineTemplate gpu-tpl, not one key at a time"},
		},
		{
			name:     "a label rule and a template not in the input: an error naming the rule and the template",
			rules:    "  - name: gpu\n    match: {labels: {pool: gpu}}\n    instanceMetadataOptions: {httpPutResponseHopLimit: 1}\n",
			inInput:  map[string]string{"cp": "", "worker": ""},
			before:   map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			err:      []string{`rule "gpu" matches by labels`, "AWSMachineTemplate ns/gpu-tpl", "machine deployment class gpu"},
			errField: "spec.workers.machineDeployments[1].infrastructure.templateRef",
		},
		{
			name:        "a label rule whose names rule the absent template out: decided, no error",
			rules:       "  - name: gpu\n    match: {names: [\"gpu-*\"], labels: {pool: gpu}}\n    instanceMetadataOptions: {httpPutResponseHopLimit: 1}\n",
			inInput:     map[string]string{"cp": "", "gpu": ""},
			before:      map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			after:       map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			definitions: []string{"cp gpu", "default-worker"},
			warn:        []string{"default-worker's AWSMachineTemplate worker-tpl, not one key at a time"},
		},
		{
			name: "an allowOptional rule never takes IMDSv2 away from a template that requires it",
			rules: "  - name: legacy\n    match: {names: [\"gpu-*\"]}\n    allowOptional: true\n" +
				"    instanceMetadataOptions: {httpTokens: optional}\n",
			inInput:     map[string]string{"cp": "", "worker": "", "gpu": "{httpTokens: required}"},
			before:      map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			after:       map[string]string{"cp": "{" + hop2 + "}", "worker": "{" + hop2 + "}", "gpu": "{" + hop2 + "}"},
			definitions: []string{"cp default-worker gpu"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfigText(t, rulesConfig(tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			out, results := moRun(t, cfg, ccInput(tc.inInput, "", "", "gpu"))
			var warns, errs []*transformers.Result
			for _, r := range results {
				switch {
				case r.Severity == transformers.Error:
					errs = append(errs, r)
				case r.Field != nil && r.Field.Path == "spec.patches" && strings.Contains(r.Message, "not one key at a time"):
					warns = append(warns, r)
				}
			}
			if tc.err != nil {
				if len(errs) != 1 {
					t.Fatalf("want one error, got %d:\n%s", len(errs), results)
				}
				for _, s := range tc.err {
					if !strings.Contains(errs[0].Message, s) {
						t.Errorf("error does not contain %q:\n%s", s, errs[0].Message)
					}
				}
				if errs[0].Field == nil || errs[0].Field.Path != tc.errField || errs[0].ResourceRef == nil || errs[0].ResourceRef.Kind != "ClusterClass" {
					t.Errorf("error is not on the ClusterClass's %s: %+v", tc.errField, errs[0])
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("errors:\n%s", results)
			}
			if len(warns) != len(tc.warn) {
				t.Errorf("got %d warnings about the whole block, want %d:\n%s", len(warns), len(tc.warn), results)
			}
			for i := 0; i < len(warns) && i < len(tc.warn); i++ {
				if !strings.Contains(warns[i].Message, tc.warn[i]) {
					t.Errorf("warning %d does not contain %q:\n%s", i, tc.warn[i], warns[i].Message)
				}
			}
			got := ccApplyClass(t, out, nil, nil, "gpu")
			want := map[string]string{}
			for k, v := range tc.after {
				want[k] = ccCanonical(t, v)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("blocks after Cluster API applies the patches (-want +got):\n%s\noutput:\n%s", d, out)
			}
			if d := cmp.Diff(tc.definitions, ccDefinitions(t, out)); d != "" {
				t.Errorf("final patch definitions (-want +got):\n%s", d)
			}
			again, _ := moRun(t, cfg, out)
			if d := cmp.Diff(out, again); d != "" {
				t.Errorf("second run changed the output:\n%s", d)
			}
			audit := *cfg
			audit.Mode = transformers.ModeAudit
			_, ar := moRun(t, &audit, out)
			for _, r := range ar {
				if r.Severity == transformers.Error {
					t.Errorf("audit of the output: %s", r)
				}
			}
		})
	}
}

// ccDefinitions lists the final patch's definitions, each as the targets its selector
// matches: "cp" for the control plane, then the machine deployment class names.
func ccDefinitions(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, part := range strings.Split(out, "\n---\n") {
		var o struct {
			Kind string
			Spec struct {
				Patches []struct {
					Name        string
					Definitions []struct {
						Selector struct {
							MatchResources struct {
								ControlPlane           bool
								MachineDeploymentClass struct{ Names []string }
							}
						}
					}
				}
			}
		}
		if err := sigsyaml.Unmarshal([]byte(part), &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind != "ClusterClass" {
			continue
		}
		for _, p := range o.Spec.Patches {
			if p.Name != transformers.FinalPatchName {
				continue
			}
			for _, d := range p.Definitions {
				var s []string
				if d.Selector.MatchResources.ControlPlane {
					s = append(s, "cp")
				}
				got = append(got, strings.Join(append(s, d.Selector.MatchResources.MachineDeploymentClass.Names...), " "))
			}
		}
	}
	return got
}
