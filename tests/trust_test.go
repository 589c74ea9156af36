package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

// That every output the repository pins is accepted by the real CRDs, webhooks and API
// server is checked in conformance/ (its own module: TestInProcessCreate, TestAPIServerCreate).

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
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}
