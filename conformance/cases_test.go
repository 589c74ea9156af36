package conformance

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"github.com/capa-imds/capa-imds/transformers"
)

// root is the main module's directory: this module lives in its conformance/ folder.
const root = ".."

// output is one stream the repository pins, or one the function produced in this run.
type output struct {
	name string
	text string // as the user would hand it to clusterctl or kubectl
}

// pinnedOutputs reads every output the repository pins, at test time: the lead changes
// them as the function's behaviour changes.
func pinnedOutputs(t *testing.T) []output {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		"tests/testdata/*/expected.yaml",
		"transformers/testdata/golden/*/expected.yaml",
		"examples/*/expected.yaml",
		"examples/*/*/expected.yaml",
		"examples/clusterctl/cluster-template-*-imdsv2.yaml",
	} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 30 {
		t.Fatalf("found only %d pinned outputs: did a directory move?", len(files))
	}
	var out []output
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		out = append(out, output{rel, string(b)})
	}
	return append(out, kptRendered(t)...)
}

// kptRendered is each kpt example package as `kpt fn render` leaves it: the package with
// its pinned .expected/diff.patch applied (what the kpt test compares the render with).
func kptRendered(t *testing.T) []output {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Log("git not found: the kpt examples' rendered packages are not checked")
		return nil
	}
	pkgs, _ := filepath.Glob(filepath.Join(root, "examples/kpt/*/.expected/diff.patch"))
	var out []output
	for _, patch := range pkgs {
		pkg := filepath.Dir(filepath.Dir(patch))
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(pkg)); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(patch)
		cmd := exec.Command(git, "apply", "--unsafe-paths", abs)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: git apply: %v\n%s", patch, err, b)
		}
		var stream []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				if d != nil && d.IsDir() && d.Name() == ".expected" {
					return filepath.SkipDir
				}
				return err
			}
			if !strings.HasSuffix(p, ".yaml") || d.Name() == "Kptfile" {
				return nil
			}
			b, err := os.ReadFile(p)
			stream = append(stream, string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, pkg)
		out = append(out, output{rel + " (rendered)", strings.Join(stream, "\n---\n")})
	}
	if len(out) == 0 {
		t.Fatal("no kpt example packages found")
	}
	return out
}

// run is the function applied to one raw input: what an update from the raw manifests to
// the output looks like, with the results the function reported.
type run struct {
	name      string
	raw, out  string
	results   transformers.Results
	namespace string // the configured target namespace, where unnamespaced objects go
}

// runs executes the function on every raw input the repository has: each golden case,
// each end-to-end case with an input, the clusterctl and standalone examples, and every CAPA v2.13.0
// template under each bootstrap strategy.
var runsOnce = sync.OnceValues(func() ([]run, error) { return collectRuns() })

func runs(t *testing.T) []run {
	t.Helper()
	rs, err := runsOnce()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func collectRuns() ([]run, error) {
	var rs []run
	add := func(name string, cfg *transformers.Config, raw string) error {
		nodes, err := (&kio.ByteReader{Reader: strings.NewReader(raw), PreserveSeqIndent: true, DisableUnwrapping: true,
			SetAnnotations: map[string]string{kioutil.PathAnnotation: "input.yaml"}}).Read()
		if err != nil {
			return nil // the malformed-input cases: nothing reaches a cluster
		}
		out, results := transformers.Process(cfg, nodes)
		if results.ExitCode() != 0 {
			return nil // a failing run has no output to apply
		}
		var b bytes.Buffer
		w := kio.ByteWriter{Writer: &b, ClearAnnotations: []string{kioutil.PathAnnotation, kioutil.LegacyPathAnnotation,
			kioutil.IndexAnnotation, kioutil.LegacyIndexAnnotation, kioutil.SeqIndentAnnotation}}
		if err := w.Write(out); err != nil {
			return err
		}
		rs = append(rs, run{name, raw, b.String(), results, cfg.Namespace})
		return nil
	}
	loadCfg := func(file string) (*transformers.Config, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		n, err := kyaml.Parse(string(b))
		if err != nil {
			return nil, err
		}
		return transformers.LoadConfig(n)
	}
	capa, err := modcache.CAPADir()
	if err != nil {
		return nil, err
	}

	golden, _ := filepath.Glob(filepath.Join(root, "transformers/testdata/golden/*"))
	e2e, _ := filepath.Glob(filepath.Join(root, "tests/testdata/*"))
	for _, dir := range append(golden, e2e...) {
		raw, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
		if os.IsNotExist(err) {
			name, err2 := os.ReadFile(filepath.Join(dir, "capa-template.txt"))
			if err2 != nil {
				continue
			}
			// As the golden test reads it: a bare name is one of CAPA's templates/, a path is
			// relative to the module (test/e2e/data/...).
			rel := strings.TrimSpace(string(name))
			if !strings.Contains(rel, "/") {
				rel = filepath.Join("templates", rel)
			}
			raw, err = os.ReadFile(filepath.Join(capa, rel))
		}
		if err != nil {
			return nil, err
		}
		cfg, err := loadCfg(filepath.Join(dir, "config.yaml"))
		if err != nil {
			continue // the bad-config cases
		}
		rel, _ := filepath.Rel(root, dir)
		if err := add(rel, cfg, string(raw)); err != nil {
			return nil, err
		}
	}

	for _, ex := range []struct{ config, input string }{
		{"examples/clusterctl/imds.yaml", "examples/clusterctl/cluster-template-eks-al2.yaml"},
		{"examples/standalone/imds.yaml", "examples/standalone/cluster.yaml"},
	} {
		cfg, err := loadCfg(filepath.Join(root, ex.config))
		if err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(filepath.Join(root, ex.input))
		if err != nil {
			return nil, err
		}
		if err := add(ex.input, cfg, string(raw)); err != nil {
			return nil, err
		}
	}

	templates, err := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(templates)
	for _, strategy := range []transformers.BootstrapStrategy{transformers.BootstrapAuto, transformers.BootstrapSecret, transformers.BootstrapKeep} {
		for _, tmpl := range templates {
			raw, err := os.ReadFile(tmpl)
			if err != nil {
				return nil, err
			}
			cfg := transformers.DefaultConfig()
			cfg.BootstrapStrategy = strategy
			if err := add("capa/"+string(strategy)+"/"+filepath.Base(tmpl), cfg, string(raw)); err != nil {
				return nil, err
			}
		}
	}
	return rs, nil
}

// objects substitutes clusterctl variables and decodes a stream the way kubectl does
// (YAML to JSON), expanding v1 Lists into their items.
func objects(t *testing.T, name, text string) []map[string]any {
	t.Helper()
	text, err := Substitute(text)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return decodeAll(t, name, text)
}

// decodeAll decodes a stream whose clusterctl variables are already substituted, expanding
// lists (v1 List, and typed lists such as AWSMachineTemplateList) into their items.
func decodeAll(t *testing.T, name, text string) []map[string]any {
	t.Helper()
	docs, err := SplitYAMLBytes([]byte(text))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []map[string]any
	for _, d := range docs {
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m == nil {
			continue
		}
		if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "List") {
			if items, ok := m["items"].([]any); ok {
				for _, it := range items {
					if im, ok := it.(map[string]any); ok {
						out = append(out, im)
					}
				}
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// id names an object as results and error messages do.
func id(m map[string]any) (apiVersion, kind, namespace, name string) {
	apiVersion, _ = m["apiVersion"].(string)
	kind, _ = m["kind"].(string)
	md, _ := m["metadata"].(map[string]any)
	namespace, _ = md["namespace"].(string)
	name, _ = md["name"].(string)
	return
}

func key(namespace string, m map[string]any) string {
	av, k, ns, n := id(m)
	group, _, _ := strings.Cut(av, "/")
	if !strings.Contains(av, "/") {
		group = ""
	}
	if ns == "" {
		ns = namespace
	}
	return group + "/" + k + "/" + ns + "/" + n
}

// knownInvalid lists objects in pinned outputs that are invalid on purpose, each with the
// reason. Keep it short: every entry is a pinned output the API server would refuse.
var knownInvalid = map[string]string{
	"tests/testdata/awsmachine/expected.yaml: AWSMachine/no-spec": "the input has no spec at all, to test that the function creates the missing parents",
	"tests/testdata/awsmachine (output): AWSMachine/no-spec":      "the same case, run here",
}

// warningFor returns the function's warning about obj, if any: an update the webhooks
// refuse must be one the function told the user about.
func warningFor(results transformers.Results, namespace string, obj map[string]any) *transformers.Result {
	_, kind, ns, name := id(obj)
	if ns == "" {
		ns = namespace
	}
	for _, r := range results {
		if r.Severity != transformers.Warning || r.ResourceRef == nil {
			continue
		}
		if r.ResourceRef.Kind == kind && r.ResourceRef.Name == name && (r.ResourceRef.Namespace == ns || r.ResourceRef.Namespace == "" || ns == "" && r.ResourceRef.Namespace == "default") {
			return r
		}
	}
	return nil
}

// renamedFrom is the annotation the function leaves on a template it renamed.
const renamedFrom = "fn.capa-imds.dev/renamed-from"

func renamed(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	s, _ := ann[renamedFrom].(string)
	return s
}

// forEachUpdate calls f for each object of the output that updates one of the raw input
// (same group, kind, namespace and name); a template the function renamed is a create.
func forEachUpdate(t *testing.T, r run, f func(old, obj map[string]any)) {
	t.Helper()
	raw := map[string]map[string]any{}
	for _, obj := range objects(t, r.name, r.raw) {
		raw[key(r.namespace, obj)] = obj
	}
	for _, obj := range objects(t, r.name, r.out) {
		if from := renamed(obj); from != "" {
			if _, ok := raw[key(r.namespace, obj)]; ok {
				_, kind, _, name := id(obj)
				t.Errorf("%s: %s/%s was renamed from %s, but the input already has that name", r.name, kind, name, from)
			}
			continue
		}
		if old, ok := raw[key(r.namespace, obj)]; ok {
			f(old, obj)
		}
	}
}

// checkRefusal accepts a refused update only with a reason, and says which.
func checkRefusal(t *testing.T, r run, old, obj map[string]any, refusal string, seen map[string]bool) {
	t.Helper()
	_, kind, _, name := id(obj)
	what := r.name + ": " + kind + "/" + name
	if w := warningFor(r.results, r.namespace, obj); w != nil {
		t.Logf("%s: update refused, as the function warned (%q): %s", what, w.Message, refusal)
		return
	}
	if clusterctlTemplate.MatchString(r.raw) {
		// README: raw clusterctl templates (names with ${...}) describe new clusters and
		// get no warning. The names here are after substitution, so look at the input.
		t.Logf("%s: update refused, but the input is a raw clusterctl template (a new cluster, never an update): %s", what, refusal)
		return
	}
	if reason, ok := unwarnedRefusals[what]; ok {
		seen[what] = true
		t.Logf("%s: KNOWN GAP, update refused without a warning (%s): %s", what, reason, refusal)
		return
	}
	t.Errorf("%s: update refused without a warning or a rename from the function: %s", what, refusal)
}

var clusterctlTemplate = regexp.MustCompile(`(?m)^\s*name: .*\$\{`)

// unwarnedRefusals are updates from a pinned input to its output that the real webhooks
// refuse while the function says nothing. Each is a gap in the function's warnings,
// reported on issue 12; delete the entry when the function warns.
var unwarnedRefusals = map[string]string{}

func checkStaleRefusals(t *testing.T, seen map[string]bool) {
	t.Helper()
	for what := range unwarnedRefusals {
		if !seen[what] {
			// A log, not a failure: the function and this list change in separate commits
			// of a shared tree, and the entry going stale is the good news.
			t.Logf("STALE: unwarnedRefusals lists %s, which is no longer refused without a warning: delete the entry", what)
		}
	}
}
