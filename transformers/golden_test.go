package transformers

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Golden cases, one directory each, in the layout of the kpt functions catalog:
//
//	config.yaml    the IMDSConfig (or ConfigMap)
//	input.yaml     the manifests; or capa-template.txt naming a template of CAPA v2.13.0
//	expected.yaml  the output stream (absent when the run must fail)
//	results.txt    every result, one per line
//
// Every case is also run a second time on its own output, which must change nothing.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg := loadGoldenConfig(t, dir)
			input := goldenInput(t, dir)

			out, results := Process(cfg, parseStream(t, input))
			gotResults := renderResults(results)
			compareGolden(t, filepath.Join(dir, "results.txt"), gotResults)
			if results.ExitCode() != 0 {
				if _, err := os.Stat(filepath.Join(dir, "expected.yaml")); err == nil && !*update {
					t.Errorf("the run failed, but expected.yaml exists: a failing case has no output")
				}
				return
			}
			got := writeStream(t, out)
			compareGolden(t, filepath.Join(dir, "expected.yaml"), got)

			again, results2 := Process(cfg, parseStream(t, got))
			if diff := cmp.Diff(got, writeStream(t, again)); diff != "" {
				t.Errorf("second run changed the output (-first +second):\n%s", diff)
			}
			for _, r := range results2 {
				if r.Severity == Error {
					t.Errorf("second run reported an error: %s", r)
				}
			}
			if cfg.Mode == ModeEnforce {
				audit := *cfg
				audit.Mode = ModeAudit
				// audit-fails.txt says why audit must fail an output that enforce could not make
				// certain (a bastion host, ROSA nodes, a pool-owned AWSMachine).
				why, err := os.ReadFile(filepath.Join(dir, "audit-fails.txt"))
				_, ar := Process(&audit, parseStream(t, got))
				switch {
				case err == nil && (ar.ExitCode() == 0 || !strings.Contains(renderResults(ar), strings.TrimSpace(string(why)))):
					t.Errorf("audit of the output must fail with %q:\n%s", strings.TrimSpace(string(why)), renderResults(ar))
				case err != nil && ar.ExitCode() != 0:
					t.Errorf("audit of the output is not clean:\n%s", renderResults(ar))
				}
			}
		})
	}
}

// TestCAPATemplatesValidUnderEveryStrategy runs every template of CAPA v2.13.0 through the
// function under each bootstrap strategy: audit fails the raw template and passes the output,
// and a second run must change nothing. That the outputs pass the real CRDs, webhooks and API
// server is checked in conformance/ (its own module), on the same runs.
func TestCAPATemplatesValidUnderEveryStrategy(t *testing.T) {
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatalf("CAPA module: %v", err)
	}
	templates, err := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	if err != nil || len(templates) < 10 {
		t.Fatalf("CAPA templates: %v (%d found)", err, len(templates))
	}
	for _, strategy := range []BootstrapStrategy{BootstrapAuto, BootstrapSecret, BootstrapKeep} {
		for _, path := range templates {
			t.Run(string(strategy)+"/"+filepath.Base(path), func(t *testing.T) {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				cfg := DefaultConfig()
				cfg.BootstrapStrategy = strategy
				out, results := Process(cfg, parseStream(t, string(b)))
				// CAPA v2.13's EKS managed pool flavors are Amazon Linux 2023: a bootstrap.sh
				// Secret cannot join their nodes, and strategy secret must refuse, not comply.
				al2023Pool := regexp.MustCompile(`(?m)^  amiType: "?AL2023_`).Match(b)
				if strategy == BootstrapSecret && al2023Pool {
					if !strings.Contains(results.String(), "a bootstrap Secret runs /etc/eks/bootstrap.sh, but its AMI type or lookup type is Amazon Linux 2023") {
						t.Errorf("strategy secret on an Amazon Linux 2023 pool did not fail as it must:\n%s", renderResults(results))
					}
					return
				}
				if results.ExitCode() != 0 {
					t.Fatalf("the function failed:\n%s", renderResults(results))
				}
				got := writeStream(t, out)

				audit := *cfg
				audit.Mode = ModeAudit
				_, before := Process(&audit, parseStream(t, string(b)))
				hasMachines := regexp.MustCompile(`(?m)^kind: (AWSMachine|AWSMachineTemplate|AWSMachinePool|AWSManagedMachinePool)$`).Match(b)
				if hasMachines && before.ExitCode() == 0 {
					t.Errorf("audit passed the raw template, which has CAPA machines without instanceMetadataOptions")
				}
				// ROSA's nodes get their metadata options outside CAPA: audit can never pass them.
				rosa := regexp.MustCompile(`(?m)^kind: (ROSAMachinePool|ROSAControlPlane)$`).Match(b)
				_, after := Process(&audit, parseStream(t, got))
				switch {
				case rosa && (after.ExitCode() == 0 || !strings.Contains(after.String(), "has no metadata options field")):
					t.Errorf("audit passed ROSA nodes, whose metadata options CAPA cannot set:\n%s", renderResults(after))
				case !rosa && after.ExitCode() != 0:
					t.Errorf("audit of the enforced output is not clean:\n%s", renderResults(after))
				}

				again, _ := Process(cfg, parseStream(t, got))
				if diff := cmp.Diff(got, writeStream(t, again)); diff != "" {
					t.Errorf("second run changed the output (-first +second):\n%s", diff)
				}
			})
		}
	}
}

func loadGoldenConfig(t *testing.T, dir string) *Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := yaml.Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(node)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func goldenInput(t *testing.T, dir string) string {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "input.yaml")); err == nil {
		return string(b)
	}
	name, err := os.ReadFile(filepath.Join(dir, "capa-template.txt"))
	if err != nil {
		t.Fatalf("neither input.yaml nor capa-template.txt: %v", err)
	}
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatalf("CAPA module: %v", err)
	}
	// A bare name is one of CAPA's templates/; a path is relative to the module (test/e2e/data/...).
	rel := strings.TrimSpace(string(name))
	if !strings.Contains(rel, "/") {
		rel = filepath.Join("templates", rel)
	}
	b, err := os.ReadFile(filepath.Join(capa, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseStream reads manifests as the standalone CLI does.
func parseStream(t *testing.T, s string) []*yaml.RNode {
	t.Helper()
	nodes, err := (&kio.ByteReader{
		Reader:            strings.NewReader(s),
		PreserveSeqIndent: true,
		DisableUnwrapping: true,
		SetAnnotations:    map[string]string{kioutil.PathAnnotation: "input.yaml"},
	}).Read()
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return nodes
}

func writeStream(t *testing.T, nodes []*yaml.RNode) string {
	t.Helper()
	var b bytes.Buffer
	w := kio.ByteWriter{Writer: &b, ClearAnnotations: []string{kioutil.PathAnnotation, kioutil.LegacyPathAnnotation}}
	if err := w.Write(nodes); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// renderResults prints results as kyaml's framework does (Result.String).
func renderResults(results Results) string {
	var b strings.Builder
	for _, r := range results {
		fr := framework.Result{Message: r.Message, Severity: framework.Severity(r.Severity), ResourceRef: r.ResourceRef, Tags: r.Tags}
		if r.Field != nil {
			fr.Field = &framework.Field{Path: r.Field.Path, CurrentValue: r.Field.CurrentValue, ProposedValue: r.Field.ProposedValue}
		}
		if r.File != nil {
			fr.File = &framework.File{Path: r.File.Path, Index: r.File.Index}
		}
		b.WriteString(fr.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./transformers -run TestGolden -update, then read the file)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
