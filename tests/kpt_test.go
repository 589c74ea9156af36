package tests

// kpt: the packages under examples/kpt, rendered the way `kpt fn render` renders them.
//
// CI machines have no kpt, so TestIntegKptRender reproduces kpt's side of the protocol: it
// reads the package as kpt 1.0.0-beta.56 does and sends each pipeline function a ResourceList
// shaped exactly like kpt's (items with internal.config.kubernetes.io/path, /index, /seqindent,
// /package-path, /id, the legacy config.kubernetes.io/path and /index, config.k8s.io/id; the
// functionConfig from configPath, or an inline configMap as ConfigMap "function-input"), then
// writes the items back to their files as kpt does. TestIntegKptRealCLI runs the real kpt
// where it is installed and checks it agrees byte for byte, input included.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// Annotations kpt adds besides kyaml's path/index/seqindent ones.
const (
	integKptPackagePath = "internal.config.kubernetes.io/package-path"
	integKptMigrationID = "internal.config.kubernetes.io/annotations-migration-resource-id"
	integKptInternalID  = "internal.config.kubernetes.io/id"
	integKptLegacyID    = "config.k8s.io/id"
)

var integKptPackages = []string{"capa-imds-configpath", "capa-imds-configmap"}

// integKptFn is one pipeline entry of a Kptfile.
type integKptFn struct {
	Image      string            `json:"image,omitempty"`
	Exec       string            `json:"exec,omitempty"`
	ConfigPath string            `json:"configPath,omitempty"`
	ConfigMap  map[string]string `json:"configMap,omitempty"`
	// configMap is the entry's configMap node, to hand over with its key order and quoting.
	configMap *yaml.RNode
	validator bool
}

func (f integKptFn) name() string {
	if f.Exec != "" {
		return f.Exec
	}
	return f.Image
}

// integKptPipeline reads a package's Kptfile pipeline: mutators, then validators.
func integKptPipeline(t testing.TB, pkg string) []integKptFn {
	t.Helper()
	kf, err := yaml.ReadFile(filepath.Join(pkg, "Kptfile"))
	if err != nil {
		t.Fatal(err)
	}
	var fns []integKptFn
	for _, stage := range []string{"mutators", "validators"} {
		seq, err := kf.Pipe(yaml.Lookup("pipeline", stage))
		if err != nil {
			t.Fatalf("%s: Kptfile pipeline.%s: %v", pkg, stage, err)
		}
		if seq == nil {
			continue
		}
		els, _ := seq.Elements()
		for _, el := range els {
			j, _ := el.MarshalJSON()
			var fn integKptFn
			dec := json.NewDecoder(bytes.NewReader(j))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&fn); err != nil {
				t.Fatalf("%s: %s entry %s: %v", pkg, stage, j, err)
			}
			if f := el.Field("configMap"); f != nil {
				fn.configMap = f.Value
			}
			fn.validator = stage == "validators"
			fns = append(fns, fn)
		}
	}
	if len(fns) == 0 || fns[0].validator {
		t.Fatalf("%s: Kptfile has no pipeline.mutators", pkg)
	}
	return fns
}

// integKptIgnored reads .krmignore: the examples list top-level names only (.expected).
func integKptIgnored(pkg string) map[string]bool {
	ignored := map[string]bool{}
	data, _ := os.ReadFile(filepath.Join(pkg, ".krmignore"))
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.Trim(l, "/")] = true
		}
	}
	return ignored
}

// integKptRead reads a package as kpt does: the Kptfile and every .yaml/.yml file (minus
// .krmignore entries) in path order; kyaml's reader adds path, index and seqindent
// annotations, then kpt numbers the resources.
func integKptRead(t testing.TB, pkg string) []*yaml.RNode {
	t.Helper()
	ignored := integKptIgnored(pkg)
	var files []string
	err := filepath.WalkDir(pkg, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pkg, p)
		if ignored[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && (rel == "Kptfile" || strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml")) {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var items []*yaml.RNode
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(pkg, f))
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := (&kio.ByteReader{
			Reader:            bytes.NewReader(data),
			PreserveSeqIndent: true,
			SetAnnotations: map[string]string{
				kioutil.PathAnnotation:       f,
				kioutil.LegacyPathAnnotation: f,
				integKptPackagePath:          pkg,
			},
		}).Read()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		items = append(items, nodes...)
	}
	for i, n := range items {
		for _, kv := range [][2]string{
			{integKptMigrationID, strconv.Itoa(i)},
			{integKptInternalID, strconv.Itoa(i + 1)},
			{integKptLegacyID, strconv.Itoa(i + 1)},
		} {
			if err := n.PipeE(yaml.SetAnnotation(kv[0], kv[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	return items
}

// integKptFunctionConfig is what kpt passes as functionConfig for a pipeline entry.
func integKptFunctionConfig(t testing.TB, items []*yaml.RNode, fn integKptFn) *yaml.RNode {
	t.Helper()
	switch {
	case fn.ConfigPath != "":
		// kpt 1.0.0-beta.56 sends the package's own copy of the resource, annotations and all
		// (TestIntegKptRealCLI checks it byte for byte against the real kpt); kpt's main branch
		// parses the file afresh (fnruntime.newFnConfig). The function reads either.
		for _, it := range items {
			if it.GetAnnotations()[kioutil.PathAnnotation] == fn.ConfigPath {
				return it.Copy()
			}
		}
		t.Fatalf("configPath %s: no such resource in the package", fn.ConfigPath)
	case fn.configMap != nil:
		// kpt passes the entries in Go map order (random); the Kptfile's order is one of them.
		cm, err := yaml.Parse("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: function-input\n")
		if err != nil {
			t.Fatal(err)
		}
		data := fn.configMap.Copy()
		data.YNode().Style = yaml.FlowStyle
		if err := cm.PipeE(yaml.SetField("data", data)); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	return nil
}

// integKptResourceList serializes a ResourceList as kpt does (kyaml's writer).
func integKptResourceList(t testing.TB, items []*yaml.RNode, fnConfig *yaml.RNode) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := kio.ByteWriter{
		Writer:                &buf,
		KeepReaderAnnotations: true,
		FunctionConfig:        fnConfig,
		WrappingKind:          kio.ResourceListKind,
		WrappingAPIVersion:    kio.ResourceListAPIVersion,
	}
	if err := w.Write(items); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// integKptStep is one function run of a render.
type integKptStep struct {
	fn      integKptFn
	input   []byte
	in, out []*yaml.RNode
	results *yaml.RNode
}

// integKptRender renders a package in place as `kpt fn render --allow-exec` would, running the
// built binary for every pipeline entry (for an image entry it stands in for the container,
// which runs the same binary): mutators in turn, then validators, whose output kpt discards.
// It returns the steps for inspection.
func integKptRender(t testing.TB, pkg string) []integKptStep {
	t.Helper()
	items := integKptRead(t, pkg)
	var steps []integKptStep
	for _, fn := range integKptPipeline(t, pkg) {
		if fn.Exec != "" && fn.Exec != "capa-imds" {
			t.Fatalf("%s: exec %q: the examples run capa-imds from $PATH", pkg, fn.Exec)
		}
		if fn.Image != "" && fn.Image != integKRMFunctionImage(t) {
			t.Fatalf("%s: image %q differs from krmfunction.yaml's %q", pkg, fn.Image, integKRMFunctionImage(t))
		}
		input := integKptResourceList(t, items, integKptFunctionConfig(t, items, fn))
		res := integRun(t, pkg, os.Environ(), input, integBinary(t))
		if res.code != 0 {
			t.Fatalf("%s: %s exited %d\nstderr:\n%s\nstdout:\n%s", pkg, fn.name(), res.code, res.stderr, res.stdout)
		}
		r := &kio.ByteReader{Reader: bytes.NewReader(res.stdout), OmitReaderAnnotations: true}
		out, err := r.Read()
		if err != nil {
			t.Fatalf("%s: reading the function's ResourceList: %v\n%s", pkg, err, res.stdout)
		}
		if r.WrappingKind != kio.ResourceListKind {
			t.Fatalf("%s: function output is a %q, not a ResourceList", pkg, r.WrappingKind)
		}
		steps = append(steps, integKptStep{fn: fn, input: input, in: items, out: out, results: r.Results})
		if !fn.validator {
			items = out
		}
	}
	w := kio.LocalPackageWriter{
		PackagePath:      pkg,
		ClearAnnotations: []string{integKptPackagePath, integKptMigrationID, integKptInternalID, integKptLegacyID},
	}
	if err := w.Write(items); err != nil {
		t.Fatalf("%s: writing the package: %v", pkg, err)
	}
	return steps
}

// integKptAudit runs the function in audit mode over a package, as a kpt validator with
// configMap {mode: audit} would.
func integKptAudit(t testing.TB, pkg string) integResult {
	t.Helper()
	items := integKptRead(t, pkg)
	cfg, err := yaml.Parse("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: function-input\ndata: {mode: audit}\n")
	if err != nil {
		t.Fatal(err)
	}
	input := integKptResourceList(t, items, cfg)
	res := integRun(t, pkg, os.Environ(), input, integBinary(t))
	if res.code == 0 {
		out, err := (&kio.ByteReader{Reader: bytes.NewReader(res.stdout), OmitReaderAnnotations: true}).Read()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := integKptText(t, out), integKptText(t, items); got != want {
			t.Errorf("audit mode changed the items:\n%s", cmp.Diff(want, got))
		}
	}
	return res
}

func integKptText(t testing.TB, items []*yaml.RNode) string {
	t.Helper()
	var b strings.Builder
	for _, it := range items {
		s, err := it.String()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "---\n")
	}
	return b.String()
}

// integKptResultList is kpt's --results-dir results.yaml for a render.
func integKptResultList(t testing.TB, steps []integKptStep) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: kpt.dev/v1\nkind: FunctionResultList\nmetadata:\n  name: fnresults\nexitCode: 0\nitems:\n")
	for _, s := range steps {
		if s.fn.Exec != "" {
			b.WriteString("  - exec: " + s.fn.Exec + "\n")
		} else {
			b.WriteString("  - image: " + s.fn.Image + "\n")
		}
		b.WriteString("    exitCode: 0\n")
		if s.results != nil && len(s.results.YNode().Content) > 0 {
			r, err := yaml.String(s.results.YNode(), yaml.Trim)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("    results:\n")
			for _, l := range strings.Split(r, "\n") {
				b.WriteString("      " + l + "\n")
			}
		}
	}
	return []byte(b.String())
}

// integJSONEqual compares two YAML documents by value.
func integJSONEqual(t testing.TB, what string, want, got []byte) {
	t.Helper()
	var w, g any
	if err := sigsyaml.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s (expected): %v", what, err)
	}
	if err := sigsyaml.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s (got): %v", what, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s differs (-expected +got):\n%s", what, diff)
	}
}

// kptWithoutStderr drops the function's stderr that kpt records beside its results. The
// function prints its warnings there for kustomize and Argo CD, which show nothing else;
// the results carry the same findings, so each recorded stderr must name them as warnings.
func kptWithoutStderr(t testing.TB, results []byte) []byte {
	t.Helper()
	var list map[string]any
	if err := sigsyaml.Unmarshal(results, &list); err != nil {
		t.Fatalf("kpt's results: %v", err)
	}
	items, _ := list["items"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		stderr, ok := m["stderr"].(string)
		if !ok {
			continue
		}
		if !strings.Contains(stderr, "warning: ") {
			t.Errorf("kpt recorded a stderr without the warnings: %q", stderr)
		}
		delete(m, "stderr")
	}
	out, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// integGit runs git with no user or system configuration.
func integGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=integ", "GIT_AUTHOR_EMAIL=integ@example.invalid",
		"GIT_COMMITTER_NAME=integ", "GIT_COMMITTER_EMAIL=integ@example.invalid")
	res := integRun(t, dir, env, nil, "git", args...)
	if res.code != 0 {
		t.Fatalf("git %v: exit %d\n%s", args, res.code, res.stderr)
	}
	return string(res.stdout)
}

// integKptPackageCopy copies an example package into a fresh git repository, committed, so
// `git diff` shows what a render changed (as kpt's catalog test runner does).
func integKptPackageCopy(t testing.TB, name string) (string, bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	integCopyTree(t, filepath.Join(integRoot(t), "examples", "kpt", name), dir)
	if _, err := exec.LookPath("git"); err != nil {
		return dir, false
	}
	integGit(t, dir, "init", "-q")
	integGit(t, dir, "add", "-A")
	integGit(t, dir, "commit", "-q", "-m", "package")
	return dir, true
}

func integKptDiff(t testing.TB, dir string) []byte {
	t.Helper()
	integGit(t, dir, "add", "-A") // new files show up in the diff too
	return []byte(integGit(t, dir, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames"))
}

// integReadTree reads every file of a directory (for before/after comparisons).
func integReadTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// integKptCheckStep checks one function run against what kpt requires of it.
func integKptCheckStep(t testing.TB, s integKptStep) {
	t.Helper()
	if s.fn.validator && integKptText(t, s.out) != integKptText(t, s.in) {
		t.Errorf("validator %s changed the items", s.fn.name())
	}
	byID := map[string]*yaml.RNode{}
	for _, n := range s.in {
		byID[n.GetAnnotations()[integKptInternalID]] = n
	}
	type slot struct{ path, index string }
	taken := map[slot]string{}
	pathOf := map[string]string{} // kind/namespace/name -> path, for the MachinePool lookup
	for _, n := range s.out {
		a := n.GetAnnotations()
		id := integKptID(n)
		sl := slot{a[kioutil.PathAnnotation], a[kioutil.IndexAnnotation]}
		if sl.path == "" || sl.index == "" {
			t.Errorf("%s: no %s/%s annotation: kpt would write it to a file of its own choosing", id, kioutil.PathAnnotation, kioutil.IndexAnnotation)
		}
		if prev, dup := taken[sl]; dup {
			t.Errorf("%s and %s share path %s index %s: kpt rejects duplicate path+index", prev, id, sl.path, sl.index)
		}
		taken[sl] = id
		if strings.HasPrefix(sl.path, "../") || filepath.IsAbs(sl.path) {
			t.Errorf("%s: path %q is outside the package", id, sl.path)
		}
		pathOf[n.GetKind()+"/"+n.GetNamespace()+"/"+n.GetName()] = sl.path
		for _, legacy := range [][2]string{{kioutil.LegacyPathAnnotation, kioutil.PathAnnotation}, {kioutil.LegacyIndexAnnotation, kioutil.IndexAnnotation}} {
			if v, ok := a[legacy[0]]; ok && v != a[legacy[1]] {
				t.Errorf("%s: %s=%q disagrees with %s=%q (kpt rejects that)", id, legacy[0], v, legacy[1], a[legacy[1]])
			}
		}
		in, existed := byID[a[integKptInternalID]]
		if existed && a[integKptInternalID] != "" {
			for k, v := range in.GetAnnotations() {
				if a[k] != v {
					t.Errorf("%s: annotation %s = %q, want %q as kpt sent it", id, k, a[k], v)
				}
			}
		}
	}
	for _, n := range s.out {
		if n.GetAnnotations()[integKptInternalID] != "" {
			continue
		}
		// A resource the function created: the bootstrap Secret, filed with its MachinePool.
		id := integKptID(n)
		if n.GetKind() != "Secret" {
			t.Errorf("%s: unexpected new resource", id)
			continue
		}
		mp := pathOf["MachinePool/"+n.GetNamespace()+"/capi-imds-pool-0"]
		if got := n.GetAnnotations()[kioutil.PathAnnotation]; got != mp {
			t.Errorf("%s: path %q, want the MachinePool's %q", id, got, mp)
		}
	}
}

func integKptID(n *yaml.RNode) string {
	id := n.GetKind() + " " + n.GetName()
	if ns := n.GetNamespace(); ns != "" {
		id = n.GetKind() + " " + ns + "/" + n.GetName()
	}
	return id
}

// TestIntegKptRender renders each example package as `kpt fn render --allow-exec` does and
// checks the .expected files of the catalog layout, the protocol obligations, that comments
// and wide sequence indentation survive, and that a second render changes nothing.
func TestIntegKptRender(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	for _, name := range integKptPackages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, hasGit := integKptPackageCopy(t, name)
			before := integReadTree(t, dir)
			if res := integKptAudit(t, dir); res.code != 1 || !bytes.Contains(res.stderr, []byte("httpTokens")) {
				t.Errorf("audit of the package before rendering: exit %d, want 1 naming httpTokens:\n%s", res.code, res.stderr)
			}
			steps := integKptRender(t, dir)
			for _, s := range steps {
				integKptCheckStep(t, s)
			}
			rel := filepath.Join("examples", "kpt", name, ".expected")
			results := integKptResultList(t, steps)
			if integUpdate {
				integGolden(t, filepath.Join(rel, "results.yaml"), results)
			} else {
				want, err := os.ReadFile(filepath.Join(root, rel, "results.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				integJSONEqual(t, rel+"/results.yaml", want, results)
			}
			if hasGit {
				integGolden(t, filepath.Join(rel, "diff.patch"), integKptDiff(t, dir))
			} else {
				t.Log("git not found: .expected/diff.patch not compared")
			}

			after := integReadTree(t, dir)
			integKptCheckFiles(t, before, after)
			// What kpt writes back is what gets applied: conformance/ checks each package with
			// .expected/diff.patch applied against the real CRDs, webhooks and API server.
			if rendered := integKptRead(t, dir); len(rendered) < 5 {
				t.Fatalf("the rendered package has %d resources", len(rendered))
			}
			if res := integKptAudit(t, dir); res.code != 0 {
				t.Errorf("audit of the rendered package (as a kpt validator would run it): exit %d, want 0:\n%s", res.code, res.stderr)
			}

			// kpt's catalog runner renders twice: the second render is a no-op.
			again := integKptRender(t, dir)
			if diff := cmp.Diff(after, integReadTree(t, dir)); diff != "" {
				t.Errorf("second render changed the package:\n%s", diff)
			}
			for _, s := range again {
				integKptCheckStep(t, s)
				if len(s.out) != len(s.in) {
					t.Errorf("second render: %s returned %d items for %d", s.fn.name(), len(s.out), len(s.in))
				}
			}
		})
	}
}

// integKptCheckFiles checks what a render did to the files: comments and wide sequence
// indentation survive, the Secret is filed beside its MachinePool.
func integKptCheckFiles(t testing.TB, before, after map[string]string) {
	t.Helper()
	for f, old := range before {
		if !strings.HasSuffix(f, ".yaml") || strings.HasPrefix(f, ".expected") {
			continue
		}
		now, ok := after[f]
		if !ok {
			t.Errorf("%s was deleted", f)
			continue
		}
		for _, l := range integKptKeptLines(old) {
			if !strings.Contains(now, l) && !integInRemovedDoc(old, l) {
				t.Errorf("%s: line %q was lost or re-indented by the render:\n%s", f, l, now)
			}
		}
	}
	secrets := 0
	for f, now := range after {
		if n := strings.Count(now, "\nkind: Secret\n"); n > 0 {
			secrets += n
			if !strings.Contains(now, "kind: MachinePool\n") {
				t.Errorf("%s: the bootstrap Secret is not in the MachinePool's file", f)
			}
		}
	}
	if secrets != 1 {
		t.Errorf("%d bootstrap Secrets in the rendered package, want 1", secrets)
	}
}

// integKptKeptLines returns the lines a render must keep as they are: comments, and the
// first item of each wide-indented sequence (a "- " indented deeper than its parent key).
func integKptKeptLines(file string) []string {
	var kept []string
	lines := strings.Split(file, "\n")
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "#"):
			kept = append(kept, l)
		case strings.HasPrefix(trimmed, "- ") && i > 0 && strings.HasSuffix(lines[i-1], ":") && indent(l) > indent(lines[i-1]):
			kept = append(kept, l)
		}
	}
	return kept
}

// integInRemovedDoc reports whether line belongs to the EKSConfig document, which the
// function removes once the MachinePool no longer references it.
func integInRemovedDoc(file, line string) bool {
	for _, doc := range strings.Split(file, "\n---\n") {
		if strings.Contains(doc, line) && strings.Contains(doc, "kind: EKSConfig\n") {
			return true
		}
	}
	return false
}

// TestIntegKptRealCLI runs the real `kpt fn render --allow-exec` where kpt is installed
// (CI machines may not have it). A stand-in `docker` on $PATH runs the same binary for the
// image entry, as the container would; a wrapper records what kpt sends the function. It
// checks kpt accepts the output, the on-disk result equals .expected/diff.patch, the results
// match .expected/results.yaml, a second render is a no-op, and that kpt's ResourceList is
// byte for byte the one TestIntegKptRender builds.
func TestIntegKptRealCLI(t *testing.T) {
	kpt, err := exec.LookPath("kpt")
	if err != nil {
		t.Skip("kpt is not installed")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	t.Parallel()
	root := integRoot(t)
	for _, name := range integKptPackages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, _ := integKptPackageCopy(t, name)
			bin := t.TempDir()
			capture := t.TempDir()
			integCopyFile(t, integBinary(t), filepath.Join(bin, "capa-imds.real"), 0o755)
			wrapper := "#!/bin/sh\nset -eu\nn=$(ls \"" + capture + "\" | wc -l)\ntee \"" + capture + "/$n.yaml\" | exec \"" +
				filepath.Join(bin, "capa-imds.real") + "\" \"$@\"\n"
			docker := "#!/bin/sh\ncase \"$1\" in\n  version) echo 27.0.0 ;;\n  run) exec \"" + filepath.Join(bin, "capa-imds") +
				"\" ;;\n  *) exit 0 ;;\nesac\n"
			for f, body := range map[string]string{"capa-imds": wrapper, "docker": docker} {
				if err := os.WriteFile(filepath.Join(bin, f), []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			env := []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
			original := integKptRead(t, dir)
			firstFn := integKptPipeline(t, dir)[0]
			wantInput := integKptResourceList(t, original, integKptFunctionConfig(t, original, firstFn))

			results := t.TempDir()
			res := integRun(t, dir, env, nil, kpt, "fn", "render", dir, "--allow-exec", "--results-dir", results)
			if res.code != 0 {
				t.Fatalf("kpt fn render exited %d:\n%s%s", res.code, res.stdout, res.stderr)
			}
			got, err := os.ReadFile(filepath.Join(capture, "0.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			// Byte for byte, except that kpt builds an inline configMap's data from a Go map,
			// so its key order varies from run to run: the functionConfig compares by value.
			gotItems, gotFn, _ := strings.Cut(string(got), "\nfunctionConfig:\n")
			wantItems, wantFn, _ := strings.Cut(string(wantInput), "\nfunctionConfig:\n")
			if diff := cmp.Diff(gotItems, wantItems); diff != "" {
				t.Errorf("the simulated ResourceList's items differ from kpt's (-kpt +simulated):\n%s", diff)
			}
			integJSONEqual(t, "functionConfig (kpt vs simulated)", []byte(gotFn), []byte(wantFn))
			rel := filepath.Join("examples", "kpt", name, ".expected")
			want, err := os.ReadFile(filepath.Join(root, rel, "diff.patch"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(integKptDiff(t, dir))); diff != "" {
				t.Errorf("kpt's render differs from %s/diff.patch (-expected +kpt):\n%s", rel, diff)
			}
			// As kpt's catalog runner does: a second render of the rendered package is a no-op.
			if res := integRun(t, dir, env, nil, kpt, "fn", "render", dir, "--allow-exec", "--results-dir", t.TempDir()); res.code != 0 {
				t.Fatalf("second kpt fn render exited %d:\n%s%s", res.code, res.stdout, res.stderr)
			}
			if diff := cmp.Diff(string(want), string(integKptDiff(t, dir))); diff != "" {
				t.Errorf("a second kpt render changed the package (-first +second):\n%s", diff)
			}
			kptResults, err := os.ReadFile(filepath.Join(results, "results.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			wantResults, err := os.ReadFile(filepath.Join(root, rel, "results.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			integJSONEqual(t, rel+"/results.yaml vs kpt's", wantResults, kptWithoutStderr(t, kptResults))

			after := integReadTree(t, dir)
			res = integRun(t, dir, env, nil, kpt, "fn", "render", dir, "--allow-exec")
			if res.code != 0 {
				t.Fatalf("second kpt fn render exited %d:\n%s%s", res.code, res.stdout, res.stderr)
			}
			if diff := cmp.Diff(after, integReadTree(t, dir)); diff != "" {
				t.Errorf("second kpt render changed the package:\n%s", diff)
			}
		})
	}
}
