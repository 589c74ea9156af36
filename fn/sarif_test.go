package fn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"github.com/capa-imds/capa-imds/transformers"
)

// The SARIF 2.1.0 schema as go-sarif ships it (a Go string constant in schema.go): the
// OASIS schema (errata 01), read from the pinned module rather than copied into this repository.
const (
	sarifSchemaModule  = "github.com/owenrumney/go-sarif/v3"
	sarifSchemaVersion = "v3.3.1"
)

func sarifTestSchema(t *testing.T) *gojsonschema.Schema {
	t.Helper()
	dir, err := modcache.Dir(sarifSchemaModule, sarifSchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "pkg", "report", "v210", "sarif", "schema.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)const schema = `(.*?)`").FindSubmatch(src)
	if m == nil || !bytes.Contains(m[1], []byte(`"title": "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"`)) {
		t.Fatalf("no SARIF 2.1.0 schema literal in %s's schema.go", sarifSchemaModule)
	}
	schema, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

const sarifTestConfig = `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata:
  name: require-imdsv2
`

// Line numbers matter: the findings must land on them.
const sarifTestInput = `# line 1
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: missing-block
spec:
  instanceType: t3.large
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: weak
  namespace: team-a
spec:
  awsLaunchTemplate:
    instanceMetadataOptions:
      httpTokens: optional
      httpPutResponseHopLimit: 2
      httpEndpoint: enabled
      instanceMetadataTags: disabled
`

type sarifTestLog struct {
	Runs []struct {
		Tool struct {
			Driver struct {
				Name  string
				Rules []struct{ ID string }
			}
		}
		Invocations []struct {
			ExecutionSuccessful        bool
			ExitCode                   int
			ToolExecutionNotifications []struct{ Message struct{ Text string } }
		}
		Results []struct {
			RuleID    string
			RuleIndex int
			Level     string
			Message   struct{ Text string }
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct{ URI string }
					Region           struct{ StartLine int }
				}
				LogicalLocations []struct{ FullyQualifiedName string }
			}
		}
	}
}

// sarifTestRun runs the command in a directory holding imds.yaml and the files, and returns
// the exit code, stdout, stderr and the report.
func sarifTestRun(t *testing.T, files map[string]string, args ...string) (int, string, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	files["imds.yaml"] = sarifTestConfig
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil { // the paths in the report are the ones given
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	report, _ := os.ReadFile(filepath.Join(dir, "out.sarif"))
	return code, stdout.String(), stderr.String(), report
}

func sarifTestValidate(t *testing.T, schema *gojsonschema.Schema, report []byte) sarifTestLog {
	t.Helper()
	res, err := schema.Validate(gojsonschema.NewBytesLoader(report))
	if err != nil {
		t.Fatalf("validating: %v\n%s", err, report)
	}
	for _, e := range res.Errors() {
		t.Errorf("SARIF schema: %s", e)
	}
	var log sarifTestLog
	if err := json.Unmarshal(report, &log); err != nil || len(log.Runs) != 1 || len(log.Runs[0].Invocations) != 1 {
		t.Fatalf("want one run with one invocation (%v):\n%s", err, report)
	}
	return log
}

// TestSARIFAuditFindings: each finding of an audit becomes a result with its rule, on the
// line of its field in the file given (the nearest existing parent for a missing block),
// and the log passes the SARIF 2.1.0 schema.
func TestSARIFAuditFindings(t *testing.T) {
	schema := sarifTestSchema(t)
	code, stdout, stderr, report := sarifTestRun(t, map[string]string{"rendered.yaml": sarifTestInput},
		"--audit", "--format", "sarif", "--report", "out.sarif", "imds.yaml", "rendered.yaml")
	if code != exitError {
		t.Errorf("exit %d, want %d (findings)", code, exitError)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing (a failed audit prints nothing)", stdout)
	}
	if !strings.Contains(stderr, "httpTokens") {
		t.Errorf("stderr %q: the findings still go to stderr", stderr)
	}
	log := sarifTestValidate(t, schema, report)
	run := log.Runs[0]
	if inv := run.Invocations[0]; !inv.ExecutionSuccessful || inv.ExitCode != 1 {
		t.Errorf("invocation %+v, want a successful execution with exit code 1", inv)
	}
	type got struct {
		rule, level, uri string
		line             int
		fqn              string
	}
	var gots []got
	for _, r := range run.Results {
		if r.RuleIndex < 0 || r.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s: ruleIndex %d does not point at its rule", r.RuleID, r.RuleIndex)
		}
		if len(r.Locations) != 1 || len(r.Locations[0].LogicalLocations) != 1 {
			t.Fatalf("result %s: want one location with one logical location: %+v", r.RuleID, r.Locations)
		}
		l := r.Locations[0]
		gots = append(gots, got{r.RuleID, r.Level, l.PhysicalLocation.ArtifactLocation.URI, l.PhysicalLocation.Region.StartLine,
			l.LogicalLocations[0].FullyQualifiedName})
	}
	want := []got{
		{"imds-missing", "error", "rendered.yaml", 6, "AWSMachine missing-block spec.instanceMetadataOptions"},
		{"imds-httpTokens", "error", "rendered.yaml", 17, "AWSMachinePool team-a/weak spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens"},
	}
	if len(gots) != len(want) {
		t.Fatalf("results %+v, want %+v", gots, want)
	}
	for i := range want {
		if gots[i] != want[i] {
			t.Errorf("result %d: %+v, want %+v", i, gots[i], want[i])
		}
	}
	lines := strings.Split(sarifTestInput, "\n")
	if l := lines[17-1]; !strings.Contains(l, "httpTokens: optional") {
		t.Errorf("line 17 is %q, not the finding's field", l)
	}
}

// TestSARIFPassAndFailure: a compliant input gives an empty, valid log; a run that cannot
// read its input is an unsuccessful execution whose notification says why.
func TestSARIFPassAndFailure(t *testing.T) {
	schema := sarifTestSchema(t)
	compliant := strings.Replace(strings.Replace(sarifTestInput, "httpTokens: optional", "httpTokens: required", 1),
		"  instanceType: t3.large\n", "  instanceType: t3.large\n  instanceMetadataOptions: {httpTokens: required, httpPutResponseHopLimit: 2, httpEndpoint: enabled, instanceMetadataTags: disabled}\n", 1)
	code, stdout, _, report := sarifTestRun(t, map[string]string{"rendered.yaml": compliant},
		"--audit", "--format", "sarif", "--report", "out.sarif", "imds.yaml", "rendered.yaml")
	if code != exitOK || stdout == "" {
		t.Errorf("compliant input: exit %d, stdout %d bytes; want 0 and the manifests echoed", code, len(stdout))
	}
	log := sarifTestValidate(t, schema, report)
	if r := log.Runs[0]; len(r.Results) != 0 || !r.Invocations[0].ExecutionSuccessful || r.Invocations[0].ExitCode != 0 {
		t.Errorf("compliant input: %+v, want no results and a successful run", r)
	}

	code, _, _, report = sarifTestRun(t, map[string]string{},
		"--audit", "--format", "sarif", "--report", "out.sarif", "imds.yaml", "missing.yaml")
	if code != exitError {
		t.Errorf("missing input: exit %d, want 1", code)
	}
	log = sarifTestValidate(t, schema, report)
	inv := log.Runs[0].Invocations[0]
	if inv.ExecutionSuccessful || len(inv.ToolExecutionNotifications) != 1 ||
		!strings.Contains(inv.ToolExecutionNotifications[0].Message.Text, "missing.yaml") {
		t.Errorf("missing input: invocation %+v, want an unsuccessful run naming missing.yaml", inv)
	}
}

// TestReportText: the text report is what stderr got, written whatever the outcome (helm 4
// shows nothing else); bad flag combinations are usage errors.
func TestReportText(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		args  []string
		code  int
	}{
		{"enforce", map[string]string{"in.yaml": sarifTestInput}, []string{"imds.yaml", "in.yaml"}, exitOK},
		{"missing config", map[string]string{}, []string{"nope.yaml", "-"}, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr, report := sarifTestRun(t, tc.files, append([]string{"--report", "out.sarif"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if string(report) != stderr || (code != exitOK && !strings.Contains(stderr, "nope.yaml")) {
				t.Errorf("report %q, want exactly stderr %q", report, stderr)
			}
		})
	}
	for _, args := range [][]string{
		{"--format", "sarif", "imds.yaml", "in.yaml"},
		{"--format", "xml", "--report", "out.sarif", "imds.yaml", "in.yaml"},
	} {
		code, _, stderr, report := sarifTestRun(t, map[string]string{"in.yaml": sarifTestInput}, args...)
		if code != exitUsage || report != nil {
			t.Errorf("%v: exit %d, report %q, stderr %q; want usage error %d and no report", args, code, report, stderr, exitUsage)
		}
	}
}

// TestSARIFRules: every rule a result can get is declared, and the field decides the rule.
func TestSARIFRules(t *testing.T) {
	declared := map[string]bool{}
	for _, r := range sarifRules {
		if declared[r.id] {
			t.Errorf("rule %s declared twice", r.id)
		}
		declared[r.id] = true
	}
	for field, want := range map[string]string{
		"spec.instanceMetadataOptions":                                       "imds-missing",
		"spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens":          "imds-httpTokens",
		"spec.template.spec.instanceMetadataOptions.httpPutResponseHopLimit": "imds-httpPutResponseHopLimit",
		"spec.awsLaunchTemplate.metadataOptions":                             "imds-misplaced-field",
		"spec.template.spec.version":                                         "machinepool-version",
	} {
		kind := "AWSMachine"
		if strings.Contains(field, "version") {
			kind = "MachinePool"
		}
		r := sarifTestResult(kind, field)
		if got := sarifRule(r); got != want || !declared[got] {
			t.Errorf("%s %s: rule %q (declared %v), want %q", kind, field, got, declared[got], want)
		}
	}
	if got := sarifRule(sarifTestResult("", "")); got != "config" {
		t.Errorf("a result about no resource: rule %q, want config", got)
	}
}

func sarifTestResult(kind, field string) *transformers.Result {
	r := &transformers.Result{Severity: transformers.Error, Message: "m"}
	if kind != "" {
		r.ResourceRef = &yaml.ResourceIdentifier{TypeMeta: yaml.TypeMeta{Kind: kind}, NameMeta: yaml.NameMeta{Name: "n"}}
	}
	if field != "" {
		r.Field = &transformers.Field{Path: field}
	}
	return r
}

// sarifTestLocations runs the command with stdin in a directory holding imds.yaml and the
// files, and returns each result's rule, URI and line (every result must have a
// physicalLocation: code scanning refuses a log in which one has none) and the files after the run.
func sarifTestLocations(t *testing.T, stdin string, files map[string]string, args ...string) (int, []string, map[string]string) {
	t.Helper()
	schema := sarifTestSchema(t)
	dir := t.TempDir()
	files["imds.yaml"] = sarifTestConfig
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	report, err := os.ReadFile(filepath.Join(dir, "out.sarif"))
	if err != nil {
		t.Fatalf("no report (exit %d): %v\n%s", code, err, stderr.String())
	}
	log := sarifTestValidate(t, schema, report)
	var got []string
	for _, r := range log.Runs[0].Results {
		if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %s %q has no physicalLocation:\n%s", r.RuleID, r.Message.Text, report)
			continue
		}
		p := r.Locations[0].PhysicalLocation
		got = append(got, fmt.Sprintf("%s %s:%d", r.RuleID, p.ArtifactLocation.URI, p.Region.StartLine))
	}
	after := map[string]string{}
	for name := range files {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		after[name] = string(b)
	}
	return code, got, after
}

// TestSARIFStdin: findings on manifests read from stdin, in standalone mode and as a
// ResourceList without paths (kustomize), are placed in "stdin" on the line of their field.
func TestSARIFStdin(t *testing.T) {
	want := []string{"imds-missing stdin:6", "imds-httpTokens stdin:17"}
	code, got, _ := sarifTestLocations(t, sarifTestInput, map[string]string{},
		"--audit", "--format", "sarif", "--report", "out.sarif", "imds.yaml", "-")
	if code != exitError || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("standalone stdin: exit %d, results %q; want 1 and %q", code, got, want)
	}

	// The same manifests as a ResourceList: each item indented by two under items:.
	var rl strings.Builder
	rl.WriteString("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n") // lines 1-3
	for _, doc := range strings.Split(strings.TrimPrefix(sarifTestInput, "# line 1\n"), "---\n") {
		for i, line := range strings.Split(strings.TrimRight(doc, "\n"), "\n") {
			if i == 0 {
				rl.WriteString("- " + line + "\n")
			} else {
				rl.WriteString("  " + line + "\n")
			}
		}
	}
	rl.WriteString("functionConfig:\n" + indentLines(strings.Replace(sarifTestConfig, "name: require-imdsv2\n",
		"name: require-imdsv2\nspec:\n  mode: audit\n", 1), "  "))
	lines := strings.Split(rl.String(), "\n")
	line := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) {
				return i + 1
			}
		}
		t.Fatalf("no %q in the ResourceList", sub)
		return 0
	}
	// The missing block is reported on the first AWSMachine's spec; httpTokens on its line.
	want = []string{fmt.Sprintf("imds-missing stdin:%d", line("  spec:")), fmt.Sprintf("imds-httpTokens stdin:%d", line("httpTokens: optional"))}
	code, got, _ = sarifTestLocations(t, rl.String(), map[string]string{}, "--format", "sarif", "--report", "out.sarif")
	if code != exitError || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ResourceList on stdin: exit %d, results %q; want 1 and %q", code, got, want)
	}
}

// TestSARIFOutputOverInput: with --output over its own input, the results point at the
// lines of the input as it was read, not at the rewritten file.
func TestSARIFOutputOverInput(t *testing.T) {
	in := sarifTestInput + "---\n" + `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: skipped
  annotations:
    fn.capa-imds.dev/skip: "true"
spec:
  instanceType: t3.large
`
	skippedLine := strings.Count(in[:strings.Index(in, "name: skipped")], "\n") // the line before: apiVersion
	code, got, after := sarifTestLocations(t, "", map[string]string{"in.yaml": in},
		"--format", "sarif", "--report", "out.sarif", "--output", "in.yaml", "imds.yaml", "in.yaml")
	if code != exitOK || after["in.yaml"] == in {
		t.Fatalf("exit %d, in.yaml rewritten: %v; want 0 and a rewritten file", code, after["in.yaml"] != in)
	}
	want := []string{"imds-missing in.yaml:6", fmt.Sprintf("other in.yaml:%d", skippedLine-2)}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("results %q, want %q (the lines of the input as read)", got, want)
	}
}
