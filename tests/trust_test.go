package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/capa-imds/capa-imds/internal/crdcheck"
	"github.com/capa-imds/capa-imds/internal/modcache"
)

// Every output the repository pins (golden files, example outputs, generated clusterctl
// flavors) must be accepted by the real CRDs and CAPA's offline webhook rules: a golden file
// that the API server would reject would make every test built on it meaningless.
func TestTrustEveryPinnedOutputIsValid(t *testing.T) {
	v, err := crdcheck.Default()
	if err != nil {
		t.Fatalf("loading CRDs: %v", err)
	}
	var files []string
	for _, pattern := range []string{
		"testdata/*/expected.yaml",
		"../transformers/testdata/golden/*/expected.yaml",
		"../examples/*/expected.yaml",
		"../examples/*/*/expected.yaml",
		"../examples/clusterctl/cluster-template-*-imdsv2.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 30 {
		t.Fatalf("found only %d pinned outputs: did a directory move?", len(files))
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue // a case whose run fails pins an empty output
		}
		nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(b), OmitReaderAnnotations: true}).Read()
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, finding := range v.CheckAll(nodes) {
			if reason, ok := trustKnownIncomplete[f+": "+finding.String()]; ok {
				t.Logf("allowed: %s: %s (%s)", f, finding, reason)
				continue
			}
			t.Errorf("%s: %s", f, finding)
		}
		checked++
	}
	t.Logf("checked %d pinned outputs", checked)
}

// trustKnownIncomplete lists findings in pinned outputs that are there on purpose, each with
// the reason. Keep it short: every entry is a golden file the API server would reject.
var trustKnownIncomplete = map[string]string{
	"testdata/awsmachine/expected.yaml: AWSMachine/no-spec: spec.instanceType: Required value": "the input has no spec at all, to test that the function creates the missing parents",
}

var capaMachineKind = regexp.MustCompile(`(?m)^kind: (AWSMachine|AWSMachineTemplate|AWSMachinePool|AWSManagedMachinePool)$`)

// The CI gate on CAPA's real templates, through the built binary: --audit fails every raw
// template that creates EC2 machines, and passes every enforced output.
func TestTrustAuditGateOnCAPATemplates(t *testing.T) {
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatal(err)
	}
	templates, _ := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	if len(templates) < 10 {
		t.Fatalf("only %d CAPA templates found", len(templates))
	}
	cfg := filepath.Join("..", "examples", "standalone", "imds.yaml")
	for _, tmpl := range templates {
		t.Run(filepath.Base(tmpl), func(t *testing.T) {
			raw, err := os.ReadFile(tmpl)
			if err != nil {
				t.Fatal(err)
			}
			if !capaMachineKind.Match(raw) {
				t.Skip("no CAPA machine kinds")
			}
			code, stdout, stderr := trustRun(t, nil, "--audit", cfg, tmpl)
			if code != 1 || stdout != "" {
				t.Errorf("audit of the raw template: exit %d, %d bytes on stdout; want exit 1 and nothing", code, len(stdout))
			}
			if !strings.Contains(stderr, "error: ") || !regexp.MustCompile(`(?m)^capa-imds: \d+ errors?, `).MatchString(stderr) {
				t.Errorf("audit stderr lacks the findings and the summary:\n%s", stderr)
			}

			code, enforced, stderr := trustRun(t, nil, cfg, tmpl)
			if code != 0 {
				t.Fatalf("enforce: exit %d\n%s", code, stderr)
			}
			code, echoed, stderr := trustRun(t, strings.NewReader(enforced), "--audit", cfg, "-")
			if code != 0 {
				t.Errorf("audit of the enforced output: exit %d\n%s", code, stderr)
			}
			if echoed != enforced {
				t.Errorf("a passing audit must echo its input unchanged")
			}
		})
	}
}

func trustRun(t *testing.T, stdin *strings.Reader, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(e2eBinary, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}
