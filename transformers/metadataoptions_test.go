package transformers_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// These tests drive transformers.Process as the CLI does and compare the written YAML,
// because byte-level output (comments, quoting, key order, integer tags) is part of
// what the function promises. Inputs use compact sequence indentation: the reader here
// sets no seqindent annotation, so that is what kyaml's writer emits.

func moRead(t *testing.T, s string) []*yaml.RNode {
	t.Helper()
	items, err := (&kio.ByteReader{Reader: strings.NewReader(s), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatalf("reading test input: %v\n%s", err, s)
	}
	return items
}

func moWrite(t *testing.T, items []*yaml.RNode) string {
	t.Helper()
	var b strings.Builder
	if err := (kio.ByteWriter{Writer: &b}).Write(items); err != nil {
		t.Fatalf("writing output: %v", err)
	}
	return b.String()
}

// moRun processes input text with cfg and returns the output text and results.
func moRun(t *testing.T, cfg *transformers.Config, input string) (string, transformers.Results) {
	t.Helper()
	out, results := transformers.Process(cfg, moRead(t, input))
	// That an edited AWSMachine must be replaced is TestLiveAWSMachines' concern.
	var rs transformers.Results
	for _, r := range results {
		if !strings.HasPrefix(r.Message, liveMachinePrefix) {
			rs = append(rs, r)
		}
	}
	return moWrite(t, out), rs
}

const liveMachinePrefix = "CAPA's webhook rejects any change to an existing AWSMachine's spec"

func TestLiveAWSMachines(t *testing.T) {
	machine := func(name, meta string) string {
		return v1b2 + "kind: AWSMachine\nmetadata:\n  name: " + name + "\n" + meta + "spec:\n  instanceType: t3.large\n"
	}
	owned := "  ownerReferences:\n  - apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n    kind: AWSMachinePool\n    name: pool\n    uid: u\n"
	cases := []struct {
		name    string
		in      string
		audit   bool
		changed bool // the output differs from the input
		results []moResult
		words   [][]string
	}{
		{name: "an edited AWSMachine must be replaced", in: machine("m", ""), changed: true,
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSMachine m", Field: "spec.instanceMetadataOptions"}},
			words:   [][]string{{"rejects any change", "Replace the machine"}}},
		{name: "a compliant AWSMachine is not edited, so nothing to say",
			in: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  ")},
		{name: "a raw clusterctl template creates new machines: no warning", in: machine("${CLUSTER_NAME}-m", ""), changed: true},
		{name: "owned by an AWSMachinePool: reported, not rewritten", in: machine("m", owned),
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSMachine m", Field: "spec.instanceMetadataOptions"}},
			words:   [][]string{{"mirrors a live instance of AWSMachinePool pool", "does not rewrite"}}},
		{name: "owned by an AWSMachinePool, in audit: an error", in: machine("m", owned), audit: true,
			results: []moResult{{Severity: transformers.Error, Resource: "AWSMachine m", Field: "spec.instanceMetadataOptions"}},
			words:   [][]string{{"not compliant (spec.instanceMetadataOptions)", "AWSMachinePool pool"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := transformers.DefaultConfig()
			if tc.audit {
				cfg.Mode = transformers.ModeAudit
			}
			out, results := transformers.Process(cfg, moRead(t, tc.in))
			if got := moWrite(t, out); (got != moWrite(t, moRead(t, tc.in))) != tc.changed {
				t.Errorf("output changed: %v, want %v:\n%s", !tc.changed, tc.changed, got)
			}
			if d := cmp.Diff(tc.results, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s\n%s", d, results)
			}
			moCheckMessages(t, results, tc.words)
		})
	}
}

// moResult is the part of a result these tests assert exactly; messages are checked
// for key phrases separately, so rewording a message does not break every test.
type moResult struct {
	Severity transformers.Severity
	Resource string // "Kind name" or "Kind namespace/name"
	Field    string
	Current  any
	Proposed any
}

func moResults(rs transformers.Results) []moResult {
	var out []moResult
	for _, r := range rs {
		m := moResult{Severity: r.Severity}
		if r.ResourceRef != nil {
			m.Resource = r.ResourceRef.Kind + " " + r.ResourceRef.Name
			if r.ResourceRef.Namespace != "" {
				m.Resource = r.ResourceRef.Kind + " " + r.ResourceRef.Namespace + "/" + r.ResourceRef.Name
			}
		}
		if r.Field != nil {
			m.Field, m.Current, m.Proposed = r.Field.Path, r.Field.CurrentValue, r.Field.ProposedValue
		}
		out = append(out, m)
	}
	return out
}

func moCheckMessages(t *testing.T, rs transformers.Results, want [][]string) {
	t.Helper()
	if len(rs) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(rs), len(want), rs)
	}
	for i, words := range want {
		for _, w := range words {
			if !strings.Contains(rs[i].Message, w) {
				t.Errorf("result %d message lacks %q: %s", i, w, rs[i].Message)
			}
		}
	}
}

// defaultBlock is the block the default config writes, at the given indentation.
func defaultBlock(indent string) string {
	return indent + "instanceMetadataOptions:\n" +
		indent + "  httpTokens: required\n" +
		indent + "  httpPutResponseHopLimit: 2\n" +
		indent + "  httpEndpoint: enabled\n" +
		indent + "  instanceMetadataTags: disabled\n"
}

const v1b2 = "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n"

func TestProcessWritesBlockAtEachKindsPath(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{
			name: "AWSMachine: spec",
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceType: t3.large\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceType: t3.large\n" + defaultBlock("  "),
		},
		{
			name: "AWSMachine without spec: spec created",
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  "),
		},
		{
			name: "AWSMachineTemplate: spec.template.spec",
			in:   v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n      instanceType: t3.large\n",
			want: v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n      instanceType: t3.large\n" + defaultBlock("      "),
		},
		{
			name: "AWSMachineTemplate with template metadata only: template.spec created after it",
			in:   v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    metadata:\n      labels:\n        a: b\n",
			want: v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    metadata:\n      labels:\n        a: b\n    spec:\n" + defaultBlock("      "),
		},
		{
			name: "AWSMachineTemplate without spec: whole path created",
			in:   v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\n",
			want: v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n" + defaultBlock("      "),
		},
		{
			name: "AWSMachinePool: spec.awsLaunchTemplate",
			in:   v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  minSize: 1\n  awsLaunchTemplate:\n    instanceType: t3.large\n  maxSize: 3\n",
			want: v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  minSize: 1\n  awsLaunchTemplate:\n    instanceType: t3.large\n" + defaultBlock("    ") + "  maxSize: 3\n",
		},
		{
			name: "AWSMachinePool without awsLaunchTemplate: created at the end of spec",
			in:   v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  minSize: 1\n",
			want: v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  minSize: 1\n  awsLaunchTemplate:\n" + defaultBlock("    "),
		},
		{
			name: "null parents are replaced, not errors",
			in:   v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n",
			want: v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n" + defaultBlock("      "),
		},
		{
			// A null block is an empty block; its comment stays on the key.
			name: "instanceMetadataOptions: null is filled in place",
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions: # set by the platform team\n  instanceType: t3.large\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" +
				"  instanceMetadataOptions: # set by the platform team\n" +
				"    httpTokens: required\n    httpPutResponseHopLimit: 2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n" +
				"  instanceType: t3.large\n",
		},
		{
			name: "instanceMetadataOptions: ~",
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions: ~\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  "),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, results := moRun(t, transformers.DefaultConfig(), tc.in)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
			// A plain enforcement is silent: results are for what needs a human.
			if len(results) != 0 {
				t.Errorf("unexpected results: %v", results)
			}
		})
	}
}

// Only CAPA's infrastructure kinds are touched; look-alikes in other groups and other
// infrastructure kinds pass through.
func TestProcessLeavesOtherKindsAlone(t *testing.T) {
	in := `apiVersion: example.com/v1
kind: AWSMachine
metadata:
  name: not-capa
spec:
  x: 1
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSCluster
metadata:
  name: c
spec:
  region: ${AWS_REGION}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplateList
metadata:
  name: l
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: mp
spec:
  template:
    spec:
      infrastructureRef:
        kind: AWSMachinePool
        name: p
`
	got, results := moRun(t, transformers.DefaultConfig(), in)
	if d := cmp.Diff(in, got); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if len(results) != 0 {
		t.Errorf("unexpected results: %v", results)
	}
}

func TestProcessMergesIntoExistingBlock(t *testing.T) {
	cases := []struct {
		name    string
		cfg     *transformers.Config
		in      string
		want    string
		results []moResult
		msgs    [][]string
	}{
		{
			// CAPA's ipv6 and dual-stack templates set httpProtocolIpv6 only.
			name: "keeps httpProtocolIpv6 from CAPA's ipv6 template",
			cfg:  transformers.DefaultConfig(),
			in: v1b2 + `kind: AWSMachineTemplate
metadata:
  name: "${CLUSTER_NAME}-control-plane"
spec:
  template:
    spec:
      iamInstanceProfile: "control-plane.cluster-api-provider-aws.sigs.k8s.io"
      instanceMetadataOptions:
        httpProtocolIpv6: enabled
      instanceType: "${AWS_CONTROL_PLANE_MACHINE_TYPE}"
      # Resource-based naming (RBN) allows AAAA record DNS query.
      privateDnsName:
        enableResourceNameDnsAAAARecord: true
`,
			want: v1b2 + `kind: AWSMachineTemplate
metadata:
  name: "${CLUSTER_NAME}-control-plane"
spec:
  template:
    spec:
      iamInstanceProfile: "control-plane.cluster-api-provider-aws.sigs.k8s.io"
      instanceMetadataOptions:
        httpProtocolIpv6: enabled
        httpTokens: required
        httpPutResponseHopLimit: 2
        httpEndpoint: enabled
        instanceMetadataTags: disabled
      instanceType: "${AWS_CONTROL_PLANE_MACHINE_TYPE}"
      # Resource-based naming (RBN) allows AAAA record DNS query.
      privateDnsName:
        enableResourceNameDnsAAAARecord: true
`,
			// A raw clusterctl template (${...} names) describes new clusters, so CAPA's
			// rule against changing a live template does not apply: no warning.
			results: nil,
		},
		{
			// Existing keys are edited in place: their position, comments and quoting stay.
			name: "overwrites weaker values in place",
			cfg:  transformers.DefaultConfig(),
			in: v1b2 + `kind: AWSMachine
metadata:
  name: m
spec:
  instanceMetadataOptions:
    instanceMetadataTags: enabled # tags in IMDS
    httpTokens: "optional" # IMDSv1 allowed
    httpPutResponseHopLimit: 1
`,
			want: v1b2 + `kind: AWSMachine
metadata:
  name: m
spec:
  instanceMetadataOptions:
    instanceMetadataTags: disabled # tags in IMDS
    httpTokens: "required" # IMDSv1 allowed
    httpPutResponseHopLimit: 2
    httpEndpoint: enabled
`,
		},
		{
			name: "a configured httpProtocolIpv6 overrides the resource's",
			cfg: mustConfig(t, configHeader+`spec:
  instanceMetadataOptions:
    httpProtocolIpv6: disabled
`),
			in: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n    httpProtocolIpv6: enabled\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n    httpProtocolIpv6: disabled\n" +
				"    httpTokens: required\n    httpPutResponseHopLimit: 2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n",
		},
		{
			name: "non-default config values are written",
			cfg: mustConfig(t, configHeader+`spec:
  instanceMetadataOptions:
    httpPutResponseHopLimit: 5
    instanceMetadataTags: enabled
`),
			in: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n" +
				"    httpTokens: required\n    httpPutResponseHopLimit: 5\n    httpEndpoint: enabled\n    instanceMetadataTags: enabled\n",
		},
		{
			// disabled switches IMDS off entirely: stricter than anything the config says.
			name: "httpEndpoint disabled is kept, with an info result",
			cfg:  transformers.DefaultConfig(),
			in: v1b2 + `kind: AWSMachinePool
metadata:
  name: p
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpEndpoint: disabled
`,
			want: v1b2 + `kind: AWSMachinePool
metadata:
  name: p
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpEndpoint: disabled
      httpTokens: required
      httpPutResponseHopLimit: 2
      instanceMetadataTags: disabled
`,
			results: []moResult{{Severity: transformers.Info, Resource: "AWSMachinePool p", Field: "spec.awsLaunchTemplate.instanceMetadataOptions.httpEndpoint"}},
			msgs:    [][]string{{"disabled", "kept"}},
		},
		{
			name: "unknown keys in the block stay, with a warning",
			cfg:  transformers.DefaultConfig(),
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n    httpTokenz: required\n",
			want: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n    httpTokenz: required\n" +
				"    httpTokens: required\n    httpPutResponseHopLimit: 2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n",
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSMachine m", Field: "spec.instanceMetadataOptions.httpTokenz"}},
			msgs:    [][]string{{"unknown field", "httpTokens"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, results := moRun(t, tc.cfg, tc.in)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.results, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if tc.msgs != nil {
				moCheckMessages(t, results, tc.msgs)
			}
		})
	}
}

func mustConfig(t *testing.T, s string) *transformers.Config {
	t.Helper()
	cfg, err := loadConfigText(t, s)
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// CAPA types the hop limit as an integer: a string "2" would be rejected by the API
// server, so whatever the input held, the output must carry an untagged, unquoted int.
func TestProcessWritesHopLimitAsInteger(t *testing.T) {
	for _, hop := range []string{`"2"`, `'2'`, `2`, `!!str 2`, `"7"`, `1`, `[2]`, `{value: 2}`} {
		t.Run(hop, func(t *testing.T) {
			in := v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: " + hop + "\n"
			items := moRead(t, in)
			out, results := transformers.Process(transformers.DefaultConfig(), items)
			if results.ExitCode() != 0 {
				t.Fatalf("unexpected error results: %v", results)
			}
			n, err := out[0].Pipe(yaml.Lookup("spec", "instanceMetadataOptions", "httpPutResponseHopLimit"))
			if err != nil || n == nil {
				t.Fatalf("hop limit missing: %v", err)
			}
			if n.YNode().Kind != yaml.ScalarNode || n.YNode().Tag != yaml.NodeTagInt || n.YNode().Value != "2" {
				t.Errorf("hop limit node = kind %v tag %q value %q, want the !!int 2", n.YNode().Kind, n.YNode().Tag, n.YNode().Value)
			}
			text := moWrite(t, out)
			if !strings.Contains(text, "\n    httpPutResponseHopLimit: 2\n") {
				t.Errorf("hop limit is not written as a plain 2:\n%s", text)
			}
			// Read back with a plain YAML decoder, as the API server's client would.
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(text), &obj); err != nil {
				t.Fatal(err)
			}
			got := obj["spec"].(map[string]any)["instanceMetadataOptions"].(map[string]any)["httpPutResponseHopLimit"]
			if got != 2 {
				t.Errorf("decoded hop limit = %#v (%T), want int 2", got, got)
			}
		})
	}
}

// CAPA's docs show `metadataOptions`, which no CAPA version had; the API server drops it.
func TestProcessMigratesMetadataOptions(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    string
		results []moResult
		msgs    [][]string
	}{
		{
			name: "instead of instanceMetadataOptions",
			in: v1b2 + `kind: AWSMachinePool
metadata:
  name: p
spec:
  awsLaunchTemplate:
    metadataOptions:
      httpTokens: required
      httpPutResponseHopLimit: 3
      httpProtocolIpv6: enabled
    instanceType: t3.large
`,
			// Keys the config sets are then enforced; the rest (ipv6) carry over as written.
			want: v1b2 + `kind: AWSMachinePool
metadata:
  name: p
spec:
  awsLaunchTemplate:
    instanceType: t3.large
    instanceMetadataOptions:
      httpTokens: required
      httpPutResponseHopLimit: 2
      httpProtocolIpv6: enabled
      httpEndpoint: enabled
      instanceMetadataTags: disabled
`,
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSMachinePool p", Field: "spec.awsLaunchTemplate.metadataOptions"}},
			msgs:    [][]string{{"metadataOptions", "not a CAPA field", "httpTokens, httpPutResponseHopLimit, httpProtocolIpv6", "spec.awsLaunchTemplate.instanceMetadataOptions", "removed"}},
		},
		{
			// On a conflict the real field wins: httpEndpoint stays disabled, not enabled.
			name: "beside instanceMetadataOptions: the real field wins",
			in: v1b2 + `kind: AWSMachine
metadata:
  name: m
spec:
  instanceMetadataOptions:
    httpEndpoint: disabled
  metadataOptions:
    httpEndpoint: enabled
    httpProtocolIpv6: enabled
`,
			want: v1b2 + `kind: AWSMachine
metadata:
  name: m
spec:
  instanceMetadataOptions:
    httpEndpoint: disabled
    httpProtocolIpv6: enabled
    httpTokens: required
    httpPutResponseHopLimit: 2
    instanceMetadataTags: disabled
`,
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSMachine m", Field: "spec.metadataOptions"},
				{Severity: transformers.Info, Resource: "AWSMachine m", Field: "spec.instanceMetadataOptions.httpEndpoint"},
			},
			msgs: [][]string{{"migrated httpProtocolIpv6 into spec.instanceMetadataOptions"}, {"kept"}},
		},
		{
			name: "AWSMachineTemplate, every key already set",
			in: v1b2 + `kind: AWSMachineTemplate
metadata:
  name: t
spec:
  template:
    spec:
      metadataOptions:
        httpTokens: optional
      instanceMetadataOptions:
        httpTokens: required
`,
			want: v1b2 + `kind: AWSMachineTemplate
metadata:
  name: t
spec:
  template:
    spec:
      instanceMetadataOptions:
        httpTokens: required
        httpPutResponseHopLimit: 2
        httpEndpoint: enabled
        instanceMetadataTags: disabled
`,
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSMachineTemplate t", Field: "spec.template.spec.metadataOptions"},
				{Severity: transformers.Warning, Resource: "AWSMachineTemplate t", Field: "spec.template.spec.instanceMetadataOptions"},
			},
			msgs: [][]string{{"migrated nothing"}, {"webhook rejects changes"}},
		},
		{
			name:    "null metadataOptions is removed too",
			in:      v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n  metadataOptions:\n",
			want:    v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  "),
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSMachine m", Field: "spec.metadataOptions"}},
			msgs:    [][]string{{"removed"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, results := moRun(t, transformers.DefaultConfig(), tc.in)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.results, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			moCheckMessages(t, results, tc.msgs)
		})
	}
}

// v1beta1 has not been served since CAPA v2.4.0 and never had the field: writing it
// would be silently dropped, so each such resource is an error naming it.
func TestProcessRejectsV1beta1Kinds(t *testing.T) {
	for _, kind := range []string{"AWSMachine", "AWSMachineTemplate", "AWSMachinePool"} {
		t.Run(kind, func(t *testing.T) {
			in := "apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\nkind: " + kind + "\nmetadata:\n  name: old\n  namespace: ns\nspec:\n  x: 1\n"
			items := moRead(t, in)
			_, results := transformers.Process(transformers.DefaultConfig(), items)
			if results.ExitCode() == 0 {
				t.Fatalf("no error result for a v1beta1 %s: %v", kind, results)
			}
			want := []moResult{{Severity: transformers.Error, Resource: kind + " ns/old", Field: "apiVersion"}}
			if d := cmp.Diff(want, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			moCheckMessages(t, results, [][]string{{"infrastructure.cluster.x-k8s.io/v1beta1", "move the resource to infrastructure.cluster.x-k8s.io/v1beta2"}})
			// Nothing is written into the resource, even though the caller drops items on error.
			if d := cmp.Diff(in, moWrite(t, items)); d != "" {
				t.Errorf("v1beta1 resource was edited (-want +got):\n%s", d)
			}
		})
	}
}

func TestProcessSkipAnnotation(t *testing.T) {
	skipped := v1b2 + `kind: AWSMachinePool
metadata:
  name: p
  annotations:
    fn.capa-imds.dev/skip: "true"
spec:
  awsLaunchTemplate:
    metadataOptions:
      httpTokens: optional
`
	t.Run("true: untouched, info", func(t *testing.T) {
		got, results := moRun(t, transformers.DefaultConfig(), skipped)
		if d := cmp.Diff(skipped, got); d != "" {
			t.Errorf("skipped resource changed (-want +got):\n%s", d)
		}
		want := []moResult{{Severity: transformers.Info, Resource: "AWSMachinePool p"}}
		if d := cmp.Diff(want, moResults(results)); d != "" {
			t.Errorf("results (-want +got):\n%s", d)
		}
		moCheckMessages(t, results, [][]string{{"skipped", "fn.capa-imds.dev/skip"}})
	})
	t.Run("true on a v1beta1 resource: skipped, not an error", func(t *testing.T) {
		in := strings.Replace(skipped, "v1beta2", "v1beta1", 1)
		got, results := moRun(t, transformers.DefaultConfig(), in)
		if d := cmp.Diff(in, got); d != "" {
			t.Errorf("skipped resource changed (-want +got):\n%s", d)
		}
		if results.ExitCode() != 0 {
			t.Errorf("an opted-out resource raised an error: %v", results)
		}
	})
	t.Run("true in audit mode: no finding", func(t *testing.T) {
		_, results := moRun(t, auditConfig(t), skipped)
		if results.ExitCode() != 0 {
			t.Errorf("an opted-out resource failed the audit: %v", results)
		}
	})
	t.Run("false: processed", func(t *testing.T) {
		in := v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\n  annotations:\n    fn.capa-imds.dev/skip: \"false\"\n"
		got, results := moRun(t, transformers.DefaultConfig(), in)
		if d := cmp.Diff(in+"spec:\n"+defaultBlock("  "), got); d != "" {
			t.Errorf("output (-want +got):\n%s", d)
		}
		if len(results) != 0 {
			t.Errorf("unexpected results: %v", results)
		}
	})
	t.Run("another value: an error naming the allowed values", func(t *testing.T) {
		in := v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\n  annotations:\n    fn.capa-imds.dev/skip: \"yes\"\n"
		_, results := moRun(t, transformers.DefaultConfig(), in)
		want := []moResult{{Severity: transformers.Error, Resource: "AWSMachine m", Field: "metadata.annotations.fn.capa-imds.dev/skip"}}
		if d := cmp.Diff(want, moResults(results)); d != "" {
			t.Errorf("results (-want +got):\n%s", d)
		}
		moCheckMessages(t, results, [][]string{{`"yes"`, `"true", "false"`}})
	})
}

func auditConfig(t *testing.T) *transformers.Config {
	return mustConfig(t, configHeader+"spec:\n  mode: audit\n")
}

func TestProcessAudit(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		results []moResult
	}{
		{
			name: "compliant resources: no findings",
			in: v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  ") +
				"---\n" + v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  awsLaunchTemplate:\n" +
				"    instanceMetadataOptions:\n      httpEndpoint: disabled\n      httpTokens: required\n      httpPutResponseHopLimit: 2\n      instanceMetadataTags: disabled\n",
			results: []moResult{{Severity: transformers.Info, Resource: "AWSMachinePool p", Field: "spec.awsLaunchTemplate.instanceMetadataOptions.httpEndpoint"}},
		},
		{
			// A missing block is one finding, with the whole wanted block as proposedValue.
			name: "missing block",
			in:   v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n      instanceType: t3.large\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSMachineTemplate t", Field: "spec.template.spec.instanceMetadataOptions",
				Proposed: map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": int64(2), "httpEndpoint": "enabled", "instanceMetadataTags": "disabled"}}},
		},
		{
			name: "one finding per non-compliant field",
			in: v1b2 + `kind: AWSMachinePool
metadata:
  name: p
  namespace: ns
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpTokens: optional
      httpPutResponseHopLimit: "2"
      httpEndpoint: enabled
`,
			results: []moResult{
				{Severity: transformers.Error, Resource: "AWSMachinePool ns/p", Field: "spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens", Current: "optional", Proposed: "required"},
				{Severity: transformers.Error, Resource: "AWSMachinePool ns/p", Field: "spec.awsLaunchTemplate.instanceMetadataOptions.httpPutResponseHopLimit", Current: "2", Proposed: int64(2)},
				{Severity: transformers.Error, Resource: "AWSMachinePool ns/p", Field: "spec.awsLaunchTemplate.instanceMetadataOptions.instanceMetadataTags", Proposed: "disabled"},
			},
		},
		{
			name: "metadataOptions is a finding too",
			in:   v1b2 + "kind: AWSMachine\nmetadata:\n  name: m\nspec:\n" + defaultBlock("  ") + "  metadataOptions:\n    httpTokens: required\n",
			// One finding: the warning about what enforce mode did would repeat it in the wrong tense.
			results: []moResult{
				{Severity: transformers.Error, Resource: "AWSMachine m", Field: "spec.metadataOptions", Current: "httpTokens: required"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items := moRead(t, tc.in)
			before := moWrite(t, items)
			out, results := transformers.Process(auditConfig(t), items)
			// Audit changes nothing, neither the returned items nor the caller's nodes.
			if d := cmp.Diff(before, moWrite(t, out)); d != "" {
				t.Errorf("audit changed the output (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, moWrite(t, items)); d != "" {
				t.Errorf("audit changed the input nodes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.results, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			wantExit := 0
			for _, r := range tc.results {
				if r.Severity == transformers.Error {
					wantExit = 1
				}
			}
			if results.ExitCode() != wantExit {
				t.Errorf("exit code %d, want %d", results.ExitCode(), wantExit)
			}
		})
	}
}

// A resource whose shape the function cannot work with is reported, field named, and
// left as it was: the function never overwrites a value it does not understand.
func TestProcessMalformedShapes(t *testing.T) {
	cases := []struct {
		name, in, field string
		words           []string
	}{
		{"spec a list", v1b2 + "kind: AWSMachine\nmetadata:\n  name: x\nspec:\n- a\n", "spec", []string{"must be a mapping", "a list"}},
		{"spec a scalar", v1b2 + "kind: AWSMachine\nmetadata:\n  name: x\nspec: big\n", "spec", []string{"must be a mapping", `"big"`}},
		{"template a scalar", v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: x\nspec:\n  template: 5\n", "spec.template", []string{"must be a mapping", "5"}},
		{"template.spec a list", v1b2 + "kind: AWSMachineTemplate\nmetadata:\n  name: x\nspec:\n  template:\n    spec: []\n", "spec.template.spec", []string{"must be a mapping", "a list"}},
		{"awsLaunchTemplate a string", v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: x\nspec:\n  awsLaunchTemplate: \"x\"\n", "spec.awsLaunchTemplate", []string{"must be a mapping", `"x"`}},
		{"instanceMetadataOptions a list", v1b2 + "kind: AWSMachine\nmetadata:\n  name: x\nspec:\n  instanceMetadataOptions:\n  - httpTokens: required\n", "spec.instanceMetadataOptions", []string{"must be a mapping", "a list"}},
		{"instanceMetadataOptions a string", v1b2 + "kind: AWSMachinePool\nmetadata:\n  name: x\nspec:\n  awsLaunchTemplate:\n    instanceMetadataOptions: required\n", "spec.awsLaunchTemplate.instanceMetadataOptions", []string{"must be a mapping"}},
		{"metadataOptions a string", v1b2 + "kind: AWSMachine\nmetadata:\n  name: x\nspec:\n  metadataOptions: required\n", "spec.metadataOptions", []string{"must be a mapping"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items := moRead(t, tc.in)
			before := moWrite(t, items)
			_, results := transformers.Process(transformers.DefaultConfig(), items)
			kind := strings.TrimPrefix(strings.Split(tc.in, "\n")[1], "kind: ")
			want := []moResult{{Severity: transformers.Error, Resource: kind + " x", Field: tc.field}}
			if d := cmp.Diff(want, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			moCheckMessages(t, results, [][]string{tc.words})
			if d := cmp.Diff(before, moWrite(t, items)); d != "" {
				t.Errorf("a malformed resource was half-edited (-want +got):\n%s", d)
			}
		})
	}
}

// Everything the function does not own survives exactly, as kyaml wrote it on input:
// comments, key order, quoting, flow style, block scalars and clusterctl placeholders,
// including unquoted ones that YAML reads as strings where CAPI expects integers.
func TestProcessKeepsUntouchedResourcesByteForByte(t *testing.T) {
	untouched := `# A clusterctl template fragment.
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: "${CLUSTER_NAME}-md-0" # quoted placeholder
  namespace: ${NAMESPACE}
spec:
  clusterName: "${CLUSTER_NAME}"
  replicas: ${WORKER_MACHINE_COUNT}
  selector:
    matchLabels: {}
  zeta: 1
  alpha: 'single'
  template:
    spec:
      version: ${KUBERNETES_VERSION}
      bootstrap:
        configRef:
          name: "${CLUSTER_NAME}-md-0"
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
          kind: KubeadmConfigTemplate
      infrastructureRef:
        name: "${CLUSTER_NAME}-md-0"
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachineTemplate
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
kind: KubeadmConfigTemplate
metadata:
  name: "${CLUSTER_NAME}-md-0"
spec:
  template:
    spec:
      files:
      - path: /etc/x
        content: |
          line one
            indented ${NOT_A_VAR:=default}
        permissions: "0644"
      joinConfiguration:
        nodeRegistration:
          kubeletExtraArgs:
            cloud-provider: external # comment
          name: '{{ ds.meta_data.local_hostname }}'
      preKubeadmCommands: ["echo on", yes, "no"]
`
	edited := v1b2 + `kind: AWSMachineTemplate
metadata:
  name: "${CLUSTER_NAME}-md-0"
spec:
  template:
    spec:
      iamInstanceProfile: "nodes.cluster-api-provider-aws.sigs.k8s.io" # comment on an edited resource
      instanceType: "${AWS_NODE_MACHINE_TYPE}"
      sshKeyName: "${AWS_SSH_KEY_NAME}"
`
	in := untouched + "---\n" + edited
	got, results := moRun(t, transformers.DefaultConfig(), in)
	want := untouched + "---\n" + edited + defaultBlock("      ")
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if len(results) != 0 {
		t.Errorf("unexpected results: %v", results)
	}
}

// `spec: {}` is common in hand-written manifests. The written YAML may keep the flow
// style, but it must mean the full block.
func TestProcessFlowStyleParent(t *testing.T) {
	in := v1b2 + "kind: AWSMachineTemplate\nmetadata: {name: t}\nspec: {}\n"
	got, _ := moRun(t, transformers.DefaultConfig(), in)
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(got), &obj); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, got)
	}
	want := map[string]any{"template": map[string]any{"spec": map[string]any{"instanceMetadataOptions": map[string]any{
		"httpTokens": "required", "httpPutResponseHopLimit": 2, "httpEndpoint": "enabled", "instanceMetadataTags": "disabled"}}}}
	if d := cmp.Diff(want, obj["spec"]); d != "" {
		t.Errorf("spec (-want +got):\n%s", d)
	}
}

// A mixed stream exercising every path the core function has.
const moMixedStream = `apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: m
  namespace: team-a
spec:
  instanceMetadataOptions:
    httpTokens: optional
    httpPutResponseHopLimit: "2"
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata:
  name: t
spec:
  template:
    spec:
      metadataOptions:
        httpEndpoint: disabled
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: p
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpProtocolIpv6: enabled
      instanceMetadataTags: enabled
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: skipped
  annotations:
    fn.capa-imds.dev/skip: "true"
spec: {}
`

func TestProcessIsDeterministic(t *testing.T) {
	first, firstResults := moRun(t, transformers.DefaultConfig(), moMixedStream)
	for i := 0; i < 20; i++ {
		got, results := moRun(t, transformers.DefaultConfig(), moMixedStream)
		if d := cmp.Diff(first, got); d != "" {
			t.Fatalf("run %d differs from run 0 (-first +got):\n%s", i, d)
		}
		if d := cmp.Diff(marshalResults(t, firstResults), marshalResults(t, results)); d != "" {
			t.Fatalf("run %d results differ (-first +got):\n%s", i, d)
		}
	}
	// The options are written in a fixed order, whatever order the config lists them in.
	reordered := mustConfig(t, configHeader+`spec:
  instanceMetadataOptions:
    instanceMetadataTags: disabled
    httpEndpoint: enabled
    httpPutResponseHopLimit: 2
    httpTokens: required
`)
	got, _ := moRun(t, reordered, moMixedStream)
	if d := cmp.Diff(first, got); d != "" {
		t.Errorf("config key order changed the output (-default +reordered):\n%s", d)
	}
}

func TestProcessIsIdempotent(t *testing.T) {
	first, _ := moRun(t, transformers.DefaultConfig(), moMixedStream)
	second, results := moRun(t, transformers.DefaultConfig(), first)
	if d := cmp.Diff(first, second); d != "" {
		t.Errorf("second run changed the output (-first +second):\n%s", d)
	}
	// The second run finds only what is kept on purpose: the disabled endpoint and the skip.
	want := []moResult{
		{Severity: transformers.Info, Resource: "AWSMachineTemplate t", Field: "spec.template.spec.instanceMetadataOptions.httpEndpoint"},
		{Severity: transformers.Info, Resource: "AWSMachinePool skipped"},
	}
	if d := cmp.Diff(want, moResults(results)); d != "" {
		t.Errorf("second run results (-want +got):\n%s", d)
	}
	// And an audit of the enforced output passes.
	_, auditResults := moRun(t, auditConfig(t), first)
	if auditResults.ExitCode() != 0 {
		t.Errorf("audit of enforced output fails: %v", auditResults)
	}
}

func marshalResults(t *testing.T, rs transformers.Results) string {
	t.Helper()
	b, err := yaml.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
