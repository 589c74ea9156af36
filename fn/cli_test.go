package fn

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/resourcelist"
	"github.com/capa-imds/capa-imds/transformers"
)

// The CLI is tested in-process through run, the same function main calls, so exit codes,
// stdout and stderr are asserted exactly as a shell or an orchestrator sees them.

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return cliResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// writeFiles writes name → content into a temporary directory and returns the paths.
func writeFiles(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

func stderrLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

const (
	cliConfig = `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata:
  name: require-imdsv2
`
	cliAuditConfig = cliConfig + "spec:\n  mode: audit\n"

	cliMachine = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: m
spec:
  instanceType: t3.large
`
	cliBlock = `  instanceMetadataOptions:
    httpTokens: required
    httpPutResponseHopLimit: 2
    httpEndpoint: enabled
    instanceMetadataTags: disabled
`
	cliCompliantMachine = cliMachine + cliBlock
	cliV1beta1Machine   = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AWSMachine
metadata:
  name: old
spec: {}
`
)

// ---- ResourceList mode ----

func TestResourceListRoundTrip(t *testing.T) {
	// kpt sends path/index annotations; they must come back as they were sent, so kpt can
	// write each item back to its file. (A template's machine: a live one also gets the
	// warning that it must be replaced, TestLiveAWSMachines' concern.)
	in := `apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
  kind: AWSMachine
  metadata:
    name: ${CLUSTER_NAME}-m
    annotations:
      internal.config.kubernetes.io/path: machines.yaml
      internal.config.kubernetes.io/index: '0'
      config.kubernetes.io/path: machines.yaml
      config.kubernetes.io/index: '0'
  spec:
    instanceType: t3.large # keep this comment
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: other
  data:
    replicas: ${WORKER_MACHINE_COUNT}
functionConfig:
  apiVersion: fn.capa-imds.dev/v1alpha1
  kind: IMDSConfig
  metadata:
    name: require-imdsv2
    annotations:
      config.kubernetes.io/local-config: "true"
  spec:
    mode: enforce
`
	want := `apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
  kind: AWSMachine
  metadata:
    name: ${CLUSTER_NAME}-m
    annotations:
      internal.config.kubernetes.io/path: machines.yaml
      internal.config.kubernetes.io/index: '0'
      config.kubernetes.io/path: machines.yaml
      config.kubernetes.io/index: '0'
  spec:
    instanceType: t3.large # keep this comment
    instanceMetadataOptions:
      httpTokens: required
      httpPutResponseHopLimit: 2
      httpEndpoint: enabled
      instanceMetadataTags: disabled
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: other
  data:
    replicas: ${WORKER_MACHINE_COUNT}
functionConfig:
  apiVersion: fn.capa-imds.dev/v1alpha1
  kind: IMDSConfig
  metadata:
    name: require-imdsv2
    annotations:
      config.kubernetes.io/local-config: "true"
  spec:
    mode: enforce
`
	got := runCLI(t, in)
	if got.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
	}
	if d := cmp.Diff(want, got.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	if got.stderr != "" {
		t.Errorf("stderr not empty:\n%s", got.stderr)
	}
}

// framework.Execute copies the input's results into the output when a run adds none;
// an orchestrator would then show a previous run's findings as this run's.
func TestResourceListDoesNotEchoInputResults(t *testing.T) {
	rl := func(item string) string {
		return "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n" + indentItem(item) +
			"functionConfig:\n" + indentBlock(cliConfig) +
			"results:\n- message: stale finding from an earlier function\n  severity: error\n"
	}
	t.Run("run adds no results", func(t *testing.T) {
		got := runCLI(t, rl(cliCompliantMachine))
		if got.code != 0 {
			t.Fatalf("exit %d (a stale error result must not fail the run), stderr:\n%s", got.code, got.stderr)
		}
		if strings.Contains(got.stdout, "results:") || strings.Contains(got.stdout, "stale") {
			t.Errorf("input results echoed:\n%s", got.stdout)
		}
	})
	t.Run("run adds its own results", func(t *testing.T) {
		item := strings.Replace(cliCompliantMachine, "    httpEndpoint: enabled\n", "    httpEndpoint: disabled\n", 1)
		got := runCLI(t, rl(item))
		if got.code != 0 {
			t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
		}
		if strings.Contains(got.stdout, "stale") {
			t.Errorf("input results echoed:\n%s", got.stdout)
		}
		if !strings.Contains(got.stdout, "severity: info") {
			t.Errorf("this run's info result missing:\n%s", got.stdout)
		}
	})
}

func indentItem(doc string) string {
	lines := stderrLines(doc)
	for i := range lines {
		if i == 0 {
			lines[i] = "- " + lines[i]
		} else if lines[i] != "" {
			lines[i] = "  " + lines[i]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func indentBlock(doc string) string {
	lines := stderrLines(doc)
	for i := range lines {
		if lines[i] != "" {
			lines[i] = "  " + lines[i]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// parsedResourceList is what an orchestrator reads back.
type parsedResourceList struct {
	Kind           string           `yaml:"kind"`
	Items          []map[string]any `yaml:"items"`
	FunctionConfig map[string]any   `yaml:"functionConfig"`
	Results        []struct {
		Message  string `yaml:"message"`
		Severity string `yaml:"severity"`
	} `yaml:"results"`
}

func TestResourceListErrorsGiveNoItems(t *testing.T) {
	cases := []struct {
		name       string
		items      []string
		fnConfig   string
		wantErrors []string // substrings, one per error result, in order
	}{
		{
			name:       "a v1beta1 CAPA kind beside a good one",
			items:      []string{cliMachine, cliV1beta1Machine},
			fnConfig:   cliConfig,
			wantErrors: []string{"move the resource to infrastructure.cluster.x-k8s.io/v1beta2"},
		},
		{
			name:       "audit mode with a finding",
			items:      []string{cliMachine, strings.Replace(cliCompliantMachine, "name: m", "name: m2", 1)},
			fnConfig:   cliAuditConfig,
			wantErrors: []string{"missing"},
		},
		{
			name:       "a bad config",
			items:      []string{cliMachine},
			fnConfig:   cliConfig + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 65\n",
			wantErrors: []string{"spec.instanceMetadataOptions.httpPutResponseHopLimit: 65 is out of range"},
		},
		{
			name:       "no functionConfig",
			items:      []string{cliMachine},
			wantErrors: []string{"functionConfig: missing"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
			for _, it := range tc.items {
				in += indentItem(it)
			}
			if tc.fnConfig != "" {
				in += "functionConfig:\n" + indentBlock(tc.fnConfig)
			}
			got := runCLI(t, in)
			if got.code != 1 {
				t.Errorf("exit %d, want 1", got.code)
			}
			if !strings.Contains(got.stdout, "\nitems: []\n") {
				t.Errorf("stdout lacks `items: []`:\n%s", got.stdout)
			}
			var rl parsedResourceList
			if err := yaml.Unmarshal([]byte(got.stdout), &rl); err != nil {
				t.Fatalf("stdout is not YAML: %v\n%s", err, got.stdout)
			}
			if rl.Kind != "ResourceList" || len(rl.Items) != 0 {
				t.Errorf("kind %q with %d items, want a ResourceList with none", rl.Kind, len(rl.Items))
			}
			if tc.fnConfig != "" && rl.FunctionConfig["kind"] != "IMDSConfig" {
				t.Errorf("functionConfig not kept: %v", rl.FunctionConfig)
			}
			var errs []string
			for _, r := range rl.Results {
				if r.Severity == "error" {
					errs = append(errs, r.Message)
				}
			}
			if len(errs) != len(tc.wantErrors) {
				t.Errorf("error results %q, want %d", errs, len(tc.wantErrors))
			}
			for i, w := range tc.wantErrors {
				if i < len(errs) && !strings.Contains(errs[i], w) {
					t.Errorf("error result %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
			// kustomize shows only stderr: one line per error, then a summary.
			lines := stderrLines(got.stderr)
			var errLines []string
			for _, l := range lines {
				if strings.HasPrefix(l, "error:") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != len(errs) {
				t.Errorf("%d error lines on stderr for %d error results:\n%s", len(errLines), len(errs), got.stderr)
			}
			if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "capa-imds: ") || !strings.Contains(lines[len(lines)-1], plural(len(errs), "error")) {
				t.Errorf("stderr does not end with a summary counting %d errors:\n%s", len(errs), got.stderr)
			}
		})
	}
}

// The exact stderr of an audit: the missing block of one resource is one finding, a
// compliant resource none.
func TestResourceListAuditCountsFindings(t *testing.T) {
	in := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n" + indentItem(cliMachine) +
		indentItem(strings.Replace(cliCompliantMachine, "name: m", "name: m2", 1)) + "functionConfig:\n" + indentBlock(cliAuditConfig)
	got := runCLI(t, in)
	want := []string{
		"error: AWSMachine m spec.instanceMetadataOptions: missing: CAPA sends httpTokens optional and hop limit 1, so the instance accepts IMDSv1",
		"capa-imds: 1 error, 0 warnings, 0 info",
	}
	if d := cmp.Diff(want, stderrLines(got.stderr)); d != "" {
		t.Errorf("stderr (-want +got):\n%s", d)
	}
	if got.code != 1 {
		t.Errorf("exit %d, want 1", got.code)
	}
}

// Results carry the file the orchestrator read the resource from, so kpt can point at it.
func TestResourceListResultsNameTheFile(t *testing.T) {
	item := strings.Replace(cliV1beta1Machine, "  name: old\n", "  name: old\n  annotations:\n    internal.config.kubernetes.io/path: clusters/c1.yaml\n    internal.config.kubernetes.io/index: '3'\n", 1)
	in := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n" + indentItem(item) + "functionConfig:\n" + indentBlock(cliConfig)
	got := runCLI(t, in)
	var rl struct {
		Results []struct {
			File struct {
				Path  string `yaml:"path"`
				Index int    `yaml:"index"`
			} `yaml:"file"`
		} `yaml:"results"`
	}
	if err := yaml.Unmarshal([]byte(got.stdout), &rl); err != nil {
		t.Fatalf("stdout is not YAML: %v\n%s", err, got.stdout)
	}
	if len(rl.Results) != 1 || rl.Results[0].File.Path != "clusters/c1.yaml" || rl.Results[0].File.Index != 3 {
		t.Errorf("results %+v, want one naming clusters/c1.yaml index 3", rl.Results)
	}
	if !strings.HasPrefix(got.stderr, "error: clusters/c1.yaml: AWSMachine old apiVersion: ") {
		t.Errorf("stderr does not name the file:\n%s", got.stderr)
	}
}

func TestResourceListModeRejectsOtherInput(t *testing.T) {
	for name, in := range map[string]string{
		"a plain manifest": cliMachine,
		"a List":           "apiVersion: v1\nkind: List\nitems: []\n",
		"nothing":          "",
	} {
		t.Run(name, func(t *testing.T) {
			got := runCLI(t, in)
			if got.code != 1 {
				t.Errorf("exit %d, want 1", got.code)
			}
			if got.stdout != "" {
				t.Errorf("stdout not empty:\n%s", got.stdout)
			}
			for _, w := range []string{"not a ResourceList", "capa-imds CONFIG FILE"} {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
		})
	}
	t.Run("malformed YAML", func(t *testing.T) {
		got := runCLI(t, "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [\n")
		if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, "ResourceList on stdin") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, empty, a message about stdin", got.code, got.stdout, got.stderr)
		}
	})
}

// ---- standalone mode ----

func TestStandaloneReadsFilesInOrderWithSeparators(t *testing.T) {
	// file1's last document has no trailing newline; kyaml's own standalone mode would
	// glue it to file2's first document.
	p := writeFiles(t, map[string]string{
		"config.yaml": cliConfig,
		"a.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\ndata:\n  k: v",
		"b.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b1\n",
	})
	stdin := "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s1\n"
	want := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a1\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\ndata:\n  k: v\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s1\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b1\n"
	got := runCLI(t, stdin, p["config.yaml"], p["a.yaml"], "-", p["b.yaml"])
	if got.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
	}
	if d := cmp.Diff(want, got.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}

	// Stdin first and last: it is read where it is named, not before the files.
	got = runCLI(t, stdin, p["config.yaml"], p["b.yaml"], "-")
	want = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s1\n"
	if d := cmp.Diff(want, got.stdout); d != "" {
		t.Errorf("stdout with - last (-want +got):\n%s", d)
	}
}

func TestStandaloneEnforcesAndStripsOrchestratorAnnotations(t *testing.T) {
	in := `apiVersion: v1
kind: ConfigMap
metadata:
  name: local
  annotations:
    config.kubernetes.io/local-config: "true"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
---
` + cliMachine
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": in})
	got := runCLI(t, "", p["config.yaml"], p["in.yaml"])
	if got.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
	}
	// The user's own local-config annotation stays; nothing the reader added leaks out.
	want := strings.TrimSuffix(in, cliMachine) + cliCompliantMachine
	if d := cmp.Diff(want, got.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	for _, leak := range []string{"config.kubernetes.io/path", "config.kubernetes.io/index", "config.kubernetes.io/id", "internal.config.kubernetes.io/", "seqindent"} {
		if strings.Contains(got.stdout, leak) {
			t.Errorf("stdout contains %q:\n%s", leak, got.stdout)
		}
	}
	// What the run did, last: the machine changed, and must be replaced to take it.
	lines := stderrLines(got.stderr)
	if len(lines) != 2 || !strings.Contains(lines[0], "AWSMachine m spec.instanceMetadataOptions: CAPA's webhook rejects any change") ||
		lines[1] != "capa-imds: changed 1 (1 AWSMachine), added 0, removed 0; 0 errors, 1 warning, 0 info" {
		t.Errorf("stderr:\n%s", got.stderr)
	}
}

// kpt and Argo CD users diff the output against their files: sequence indentation is
// kept per document, wide or compact as the file had it.
func TestStandaloneKeepsSequenceIndentation(t *testing.T) {
	wide := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wide\n  finalizers:\n    - a\n    - b\n"
	compact := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: compact\n  finalizers:\n  - a\n  - b\n"
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": wide + "---\n" + compact})
	got := runCLI(t, "", p["config.yaml"], p["in.yaml"])
	if d := cmp.Diff(wide+"---\n"+compact, got.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
}

func TestStandaloneWarningsGoToStderrOneLineEach(t *testing.T) {
	in := `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: p
  namespace: ns
spec:
  awsLaunchTemplate:
    metadataOptions:
      httpTokens: required
    instanceMetadataOptions:
      httpEndpoint: disabled
      bogus: x
`
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": in})
	got := runCLI(t, "", p["config.yaml"], p["in.yaml"])
	if got.code != 0 {
		t.Fatalf("exit %d, warnings must not fail the run; stderr:\n%s", got.code, got.stderr)
	}
	lines := stderrLines(got.stderr)
	want := []string{
		"warning: " + p["in.yaml"] + ": AWSMachinePool ns/p spec.awsLaunchTemplate.metadataOptions:",
		"warning: " + p["in.yaml"] + ": AWSMachinePool ns/p spec.awsLaunchTemplate.instanceMetadataOptions.bogus:",
		"capa-imds: changed 1 (1 AWSMachinePool), added 0, removed 0; 0 errors, 2 warnings, 1 info",
	}
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(want), got.stderr)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("stderr line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	// A plain stream has no place for results: none may end up on stdout.
	if strings.Contains(got.stdout, "results:") || strings.Contains(got.stdout, "warning") {
		t.Errorf("results leaked into stdout:\n%s", got.stdout)
	}
	if !strings.Contains(got.stdout, "      httpEndpoint: disabled\n") || strings.Contains(got.stdout, "metadataOptions:\n      httpTokens") {
		t.Errorf("stdout is not the enforced manifest:\n%s", got.stdout)
	}
}

func TestStandaloneErrorsPrintNothingOnStdout(t *testing.T) {
	p := writeFiles(t, map[string]string{
		"config.yaml":     cliConfig,
		"bad-config.yaml": cliConfig + "spec:\n  instanceMetadataOptions:\n    httpTokens: 5\n",
		"two-docs.yaml":   cliConfig + "---\n" + cliConfig,
		"empty.yaml":      "",
		"in.yaml":         cliMachine + "---\n" + cliV1beta1Machine,
		"good.yaml":       cliMachine,
		"malformed.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
		"tabs.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n",
	})
	cases := []struct {
		name   string
		stdin  string
		args   []string
		stderr []string // substrings
	}{
		{"an error result", "", []string{p["config.yaml"], p["in.yaml"]},
			[]string{"error: " + p["in.yaml"] + ": AWSMachine old apiVersion:", "v1beta2", "capa-imds: 1 error, 1 warning, 0 info"}},
		{"a bad config", "", []string{p["bad-config.yaml"], p["good.yaml"]},
			[]string{"spec.instanceMetadataOptions.httpTokens", "must be a string"}},
		{"a config with two documents", "", []string{p["two-docs.yaml"], p["good.yaml"]},
			[]string{p["two-docs.yaml"], "2 documents"}},
		{"an empty config", "", []string{p["empty.yaml"], p["good.yaml"]},
			[]string{p["empty.yaml"], "empty", "IMDSConfig"}},
		{"malformed YAML input", "", []string{p["config.yaml"], p["good.yaml"], p["malformed.yaml"]},
			[]string{p["malformed.yaml"] + ":"}},
		{"tab-indented YAML input", "", []string{p["config.yaml"], p["tabs.yaml"]},
			[]string{p["tabs.yaml"] + ":"}},
		{"malformed YAML on stdin", "a: [\n", []string{p["config.yaml"], "-"},
			[]string{"stdin:"}},
		{"malformed config", "", []string{p["malformed.yaml"], p["good.yaml"]},
			[]string{p["malformed.yaml"]}},
		{"a missing input file", "", []string{p["config.yaml"], p["good.yaml"], filepath.Join(filepath.Dir(p["good.yaml"]), "nope.yaml")},
			[]string{"nope.yaml", "no such file"}},
		{"a missing config file", "", []string{filepath.Join(filepath.Dir(p["good.yaml"]), "nope.yaml"), p["good.yaml"]},
			[]string{"nope.yaml", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := runCLI(t, tc.stdin, tc.args...)
			if got.code != 1 {
				t.Errorf("exit %d, want 1", got.code)
			}
			if got.stdout != "" {
				t.Errorf("stdout not empty on error:\n%s", got.stdout)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
			for i, l := range stderrLines(got.stderr) {
				if l == "" {
					t.Errorf("stderr line %d is empty:\n%s", i, got.stderr)
				}
			}
		})
	}
}

func TestStandaloneAudit(t *testing.T) {
	compliant := "# a comment that must survive\n" + cliCompliantMachine + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  n: \"1\"\n"
	p := writeFiles(t, map[string]string{
		"config.yaml":       cliConfig,
		"audit-config.yaml": cliAuditConfig,
		"compliant.yaml":    compliant,
		"noncompliant.yaml": cliMachine,
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"--audit flag", []string{"--audit", p["config.yaml"]}},
		{"spec.mode: audit", []string{p["audit-config.yaml"]}},
	} {
		t.Run(tc.name+", compliant: exit 0, input echoed unchanged", func(t *testing.T) {
			got := runCLI(t, "", append(tc.args, p["compliant.yaml"])...)
			if got.code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", got.code, got.stderr)
			}
			if d := cmp.Diff(compliant, got.stdout); d != "" {
				t.Errorf("stdout (-want +got):\n%s", d)
			}
		})
		t.Run(tc.name+", non-compliant: exit 1, findings on stderr, nothing on stdout", func(t *testing.T) {
			got := runCLI(t, "", append(tc.args, p["noncompliant.yaml"])...)
			if got.code != 1 {
				t.Errorf("exit %d, want 1", got.code)
			}
			if got.stdout != "" {
				t.Errorf("stdout not empty:\n%s", got.stdout)
			}
			want := []string{
				"error: " + p["noncompliant.yaml"] + ": AWSMachine m spec.instanceMetadataOptions: missing: CAPA sends httpTokens optional and hop limit 1, so the instance accepts IMDSv1",
				"capa-imds: 1 error, 0 warnings, 0 info",
			}
			if d := cmp.Diff(want, stderrLines(got.stderr)); d != "" {
				t.Errorf("stderr (-want +got):\n%s", d)
			}
		})
		// `kustomize build . | capa-imds --audit imds.yaml -` sees no input when kustomize
		// fails: the gate must not pass it.
		for _, empty := range []string{"", "---\n", "# nothing\n"} {
			t.Run(tc.name+fmt.Sprintf(", empty input %q: exit 1", empty), func(t *testing.T) {
				got := runCLI(t, empty, append(tc.args, "-")...)
				if got.code != 1 || got.stdout != "" {
					t.Errorf("exit %d, stdout %q; want exit 1 and no output", got.code, got.stdout)
				}
				if !strings.Contains(got.stderr, "the input holds no resources") || !strings.Contains(got.stderr, "pipefail") {
					t.Errorf("stderr does not say why:\n%s", got.stderr)
				}
			})
		}
	}
	t.Run("enforce mode refuses empty input too", func(t *testing.T) {
		if got := runCLI(t, "", p["config.yaml"], "-"); got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, "the input holds no resources") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, and why", got.code, got.stdout, got.stderr)
		}
	})
	t.Run("a ResourceList in audit mode with no items fails", func(t *testing.T) {
		rl := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig:\n" + indent(cliAuditConfig)
		if got := runCLI(t, rl); got.code != 1 || !strings.Contains(got.stderr, "the input holds no resources") {
			t.Errorf("exit %d, stderr:\n%s", got.code, got.stderr)
		}
	})
}

func TestHelpAndVersion(t *testing.T) {
	for _, flag := range []string{"--help", "-h"} {
		t.Run(flag, func(t *testing.T) {
			got := runCLI(t, "", flag)
			if got.code != 0 {
				t.Errorf("exit %d, want 0", got.code)
			}
			for _, w := range []string{
				"capa-imds [--audit] CONFIG FILE...", "--audit", "--version",
				"apiVersion: fn.capa-imds.dev/v1alpha1", "kind: IMDSConfig",
				"httpTokens: required", "httpPutResponseHopLimit: 2", "1..64", "httpEndpoint: enabled",
				"instanceMetadataTags: disabled", "httpProtocolIpv6", "strategy: auto", "ConfigMap",
				"capa-imds policy", "--namespace NS", "--output FILE", "namespace:", "pinEKSClusterName: true",
			} {
				if !strings.Contains(got.stdout, w) {
					t.Errorf("help lacks %q", w)
				}
			}
			if got.stderr != "" {
				t.Errorf("stderr not empty: %s", got.stderr)
			}
		})
	}
	t.Run("--version", func(t *testing.T) {
		got := runCLI(t, "", "--version")
		if got.code != 0 || got.stdout != "capa-imds "+version+"\n" {
			t.Errorf("exit %d, stdout %q; want 0 and %q", got.code, got.stdout, "capa-imds "+version+"\n")
		}
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": cliMachine})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus", p["config.yaml"], p["in.yaml"]}, "unknown flag: --bogus"},
		{"--audit without a CONFIG", []string{"--audit"}, "--audit needs a CONFIG"},
		{"CONFIG from stdin", []string{"-", p["in.yaml"]}, "CONFIG must be a file"},
		{"no FILE", []string{p["config.yaml"]}, "no input"},
		{"stdin twice", []string{p["config.yaml"], "-", "-"}, "more than once"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := runCLI(t, "", tc.args...)
			if got.code != 2 {
				t.Errorf("exit %d, want 2", got.code)
			}
			if got.stdout != "" {
				t.Errorf("stdout not empty:\n%s", got.stdout)
			}
			if !strings.Contains(got.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, got.stderr)
			}
		})
	}
}

// resultsToNode must write what yaml.Marshal then yaml.Parse wrote: the results every
// golden case reports, and values of every type and style a result can carry.
func TestResultsToNodeMatchesMarshalAndParse(t *testing.T) {
	var all transformers.Results
	dirs, _ := filepath.Glob("../transformers/testdata/golden/*")
	for _, d := range dirs {
		cfgText, err1 := os.ReadFile(filepath.Join(d, "config.yaml"))
		in, err2 := os.ReadFile(filepath.Join(d, "input.yaml"))
		if err1 != nil || err2 != nil {
			continue
		}
		cfgNode, err := yaml.Parse(string(cfgText))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := transformers.LoadConfig(cfgNode)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		items, err := (&kio.ByteReader{Reader: bytes.NewReader(in), OmitReaderAnnotations: true}).Read()
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		_, results := transformers.Process(cfg, items)
		all = append(all, results...)
	}
	if len(all) < 50 {
		t.Fatalf("only %d results from the golden cases", len(all))
	}
	all = append(all, &transformers.Result{Message: "two\nlines: and # a colon", Severity: transformers.Warning,
		Field: &transformers.Field{Path: "a", CurrentValue: map[string]any{"httpTokens": "optional", "n": int64(1)}, ProposedValue: "yes"}},
		&transformers.Result{Message: "'quoted' \"both\" ${VAR} 007", Severity: transformers.Error, File: &transformers.File{Path: "x.yaml", Index: 3},
			Field: &transformers.Field{Path: "b", CurrentValue: int64(2), ProposedValue: []string{"a", "b"}}})

	write := func(results *yaml.RNode) string {
		var b bytes.Buffer
		if err := resourcelist.Write(&b, nil, nil, results); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	text, err := yaml.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := yaml.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := resultsToNode(all)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(write(parsed), write(direct)); d != "" {
		t.Errorf("results differ (-marshal and parse +resultsToNode):\n%s", d)
	}
}
