// Package tests runs the built capa-imds binary end to end: golden cases in standalone
// and ResourceList mode, idempotency, and CAPA's real cluster templates.
package tests

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"github.com/capa-imds/capa-imds/transformers"
)

var e2eUpdate = flag.Bool("update", false, "rewrite the golden files under testdata/ from the binary's output (read every one by eye afterwards)")

// e2eBinary is the function built once by TestMain, as users build it.
var e2eBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "capa-imds-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e2eBinary = filepath.Join(dir, "capa-imds")
	build := exec.Command("go", "build", "-o", e2eBinary, "../cmd/capa-imds")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building capa-imds:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	integCleanup() // the integration tests' binaries (integration_test.go)
	os.Exit(code)
}

type e2eRun struct {
	code           int
	stdout, stderr string
}

// e2eRunBinary runs the function in dir with args and stdin.
func e2eRunBinary(t *testing.T, dir string, stdin []byte, args ...string) e2eRun {
	t.Helper()
	cmd := exec.Command(e2eBinary, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", e2eBinary, err)
	}
	return e2eRun{code: code, stdout: out.String(), stderr: errOut.String()}
}

// ---- golden cases ----

// A golden case is a directory under testdata/ holding config.yaml and input.yaml, and
// the standalone run's expected.yaml (stdout), expected.stderr and expected.exitcode.
// Paths in stderr are relative: the binary runs in the case directory.
type e2eGoldenCase struct {
	name, dir string
}

func e2eGoldenCases(t *testing.T) []e2eGoldenCase {
	t.Helper()
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var cases []e2eGoldenCase
	for _, e := range entries {
		if e.IsDir() {
			cases = append(cases, e2eGoldenCase{name: e.Name(), dir: filepath.Join("testdata", e.Name())})
		}
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases under testdata/")
	}
	return cases
}

func e2eReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// e2eGolden compares got with the golden file, or rewrites it under -update.
func e2eGolden(t *testing.T, path, got string) {
	t.Helper()
	if *e2eUpdate {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if d := cmp.Diff(e2eReadFile(t, path), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

func e2eWantExitCode(t *testing.T, c e2eGoldenCase) int {
	t.Helper()
	code, err := strconv.Atoi(strings.TrimSpace(e2eReadFile(t, filepath.Join(c.dir, "expected.exitcode"))))
	if err != nil {
		t.Fatalf("%s/expected.exitcode: %v", c.dir, err)
	}
	return code
}

func TestGoldenStandalone(t *testing.T) {
	for _, c := range e2eGoldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got := e2eRunBinary(t, c.dir, nil, "config.yaml", "input.yaml")
			e2eGolden(t, filepath.Join(c.dir, "expected.yaml"), got.stdout)
			e2eGolden(t, filepath.Join(c.dir, "expected.stderr"), got.stderr)
			e2eGolden(t, filepath.Join(c.dir, "expected.exitcode"), strconv.Itoa(got.code)+"\n")
			// The contract, whatever the golden files say: on error, nothing on stdout.
			if got.code != 0 && got.stdout != "" {
				t.Errorf("exit %d with output on stdout", got.code)
			}
		})
	}
}

// Piping `clusterctl generate cluster` into `capa-imds config.yaml -` must give exactly
// what reading the file gives.
func TestGoldenStandaloneFromStdin(t *testing.T) {
	for _, c := range e2eGoldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if *e2eUpdate {
				t.Skip("golden files are being rewritten")
			}
			got := e2eRunBinary(t, c.dir, []byte(e2eReadFile(t, filepath.Join(c.dir, "input.yaml"))), "config.yaml", "-")
			if code := e2eWantExitCode(t, c); got.code != code {
				t.Errorf("exit %d, want %d; stderr:\n%s", got.code, code, got.stderr)
			}
			if d := cmp.Diff(e2eReadFile(t, filepath.Join(c.dir, "expected.yaml")), got.stdout); d != "" {
				t.Errorf("stdout (-file +stdin):\n%s", d)
			}
			// stderr differs only in the name of the input.
			want := strings.ReplaceAll(e2eReadFile(t, filepath.Join(c.dir, "expected.stderr")), "input.yaml", "stdin")
			if d := cmp.Diff(want, got.stderr); d != "" {
				t.Errorf("stderr (-file +stdin):\n%s", d)
			}
		})
	}
}

// e2eReadItems parses a plain stream into resources; false when it is not valid YAML.
func e2eReadItems(t *testing.T, text string, annotate map[string]string) ([]*yaml.RNode, bool) {
	t.Helper()
	r := &kio.ByteReader{Reader: strings.NewReader(text), OmitReaderAnnotations: annotate == nil, SetAnnotations: annotate}
	items, err := r.Read()
	return items, err == nil
}

// e2eResourceList builds what kpt would send: the items with their path annotation, and
// the config as functionConfig.
func e2eResourceList(t *testing.T, c e2eGoldenCase) ([]byte, bool) {
	t.Helper()
	items, ok := e2eReadItems(t, e2eReadFile(t, filepath.Join(c.dir, "input.yaml")), map[string]string{kioutil.PathAnnotation: "input.yaml"})
	if !ok {
		return nil, false
	}
	cfg, ok := e2eReadItems(t, e2eReadFile(t, filepath.Join(c.dir, "config.yaml")), nil)
	if !ok || len(cfg) != 1 {
		return nil, false
	}
	var b bytes.Buffer
	w := kio.ByteWriter{Writer: &b, KeepReaderAnnotations: true, FunctionConfig: cfg[0],
		WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}
	if err := w.Write(items); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), true
}

// e2ePlainObjects decodes resources for a semantic comparison, without the annotations
// readers and orchestrators add.
func e2ePlainObjects(t *testing.T, items []*yaml.RNode) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, it := range items {
		var m map[string]any
		s, err := it.String()
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		if md, ok := m["metadata"].(map[string]any); ok {
			if a, ok := md["annotations"].(map[string]any); ok {
				for k := range a {
					if strings.HasPrefix(k, "internal.config.kubernetes.io/") || k == kioutil.LegacyPathAnnotation ||
						k == kioutil.LegacyIndexAnnotation || k == kioutil.LegacyIdAnnotation {
						delete(a, k)
					}
				}
				if len(a) == 0 {
					delete(md, "annotations")
				}
			}
			if len(md) == 0 {
				delete(m, "metadata")
			}
		}
		out = append(out, m)
	}
	return out
}

// e2eErrorMessages collects the error messages of a run's stderr, without the prefixes
// that differ between the modes ("capa-imds: error: " for a failure before any result).
func e2eErrorMessages(stderr string) []string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		for _, p := range []string{"capa-imds: error: ", "error: "} {
			if m, ok := strings.CutPrefix(l, p); ok {
				msgs = append(msgs, m)
				break
			}
		}
	}
	return msgs
}

// The same cases as a KRM function: same items (compared semantically: a ResourceList
// re-indents them), same exit code, same errors, and no items on error.
func TestGoldenResourceList(t *testing.T) {
	for _, c := range e2eGoldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if *e2eUpdate {
				t.Skip("golden files are being rewritten")
			}
			rl, ok := e2eResourceList(t, c)
			if !ok {
				t.Skip("input or config is not valid YAML: there is no ResourceList to build")
			}
			got := e2eRunBinary(t, c.dir, rl)
			code := e2eWantExitCode(t, c)
			if got.code != code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", got.code, code, got.stderr)
			}
			out := &kio.ByteReader{Reader: strings.NewReader(got.stdout), OmitReaderAnnotations: true}
			items, err := out.Read()
			if err != nil {
				t.Fatalf("stdout is not a ResourceList: %v\n%s", err, got.stdout)
			}
			if out.WrappingKind != kio.ResourceListKind {
				t.Fatalf("stdout is a %q, want a ResourceList:\n%s", out.WrappingKind, got.stdout)
			}
			if code != 0 {
				if len(items) != 0 || !strings.Contains(got.stdout, "\nitems: []\n") {
					t.Errorf("items on error:\n%s", got.stdout)
				}
			} else {
				want, ok := e2eReadItems(t, e2eReadFile(t, filepath.Join(c.dir, "expected.yaml")), nil)
				if !ok {
					t.Fatal("expected.yaml does not parse")
				}
				if d := cmp.Diff(e2ePlainObjects(t, want), e2ePlainObjects(t, items)); d != "" {
					t.Errorf("items (-standalone +ResourceList):\n%s", d)
				}
			}
			// Results carry the file, so the error lines match standalone mode's exactly.
			wantErrs := e2eErrorMessages(e2eReadFile(t, filepath.Join(c.dir, "expected.stderr")))
			if d := cmp.Diff(wantErrs, e2eErrorMessages(got.stderr)); d != "" {
				t.Errorf("errors (-standalone +ResourceList):\n%s", d)
			}
		})
	}
}

// Running the function on its own output changes nothing. A failing case has no output:
// running it again must fail the same way, with the same messages.
func TestGoldenIdempotent(t *testing.T) {
	for _, c := range e2eGoldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if *e2eUpdate {
				t.Skip("golden files are being rewritten")
			}
			expected := e2eReadFile(t, filepath.Join(c.dir, "expected.yaml"))
			if e2eWantExitCode(t, c) != 0 {
				again := e2eRunBinary(t, c.dir, nil, "config.yaml", "input.yaml")
				if again.code != e2eWantExitCode(t, c) || again.stdout != "" || again.stderr != e2eReadFile(t, filepath.Join(c.dir, "expected.stderr")) {
					t.Errorf("a second run differs: exit %d, stdout %q, stderr:\n%s", again.code, again.stdout, again.stderr)
				}
				return
			}
			second := e2eRunBinary(t, c.dir, []byte(expected), "config.yaml", "-")
			if second.code != 0 {
				t.Fatalf("second run: exit %d; stderr:\n%s", second.code, second.stderr)
			}
			if d := cmp.Diff(expected, second.stdout); d != "" {
				t.Errorf("second run changed the output (-first +second):\n%s", d)
			}
			// The output is compliant: an audit of it passes and echoes it.
			audit := e2eRunBinary(t, c.dir, []byte(expected), "--audit", "config.yaml", "-")
			if audit.code != 0 || audit.stdout != expected {
				t.Errorf("audit of the output: exit %d; stderr:\n%s", audit.code, audit.stderr)
			}
			// And in ResourceList mode: the output ResourceList fed back is a fixed point.
			rl, ok := e2eResourceList(t, c)
			if !ok {
				return
			}
			// Results may differ (a migration warns once); the items may not.
			first := e2eRunBinary(t, c.dir, rl)
			again := e2eRunBinary(t, c.dir, []byte(first.stdout))
			if again.code != 0 {
				t.Fatalf("second ResourceList run: exit %d; stderr:\n%s", again.code, again.stderr)
			}
			if d := cmp.Diff(e2eItemsText(t, first.stdout), e2eItemsText(t, again.stdout)); d != "" {
				t.Errorf("second ResourceList run changed the items (-first +second):\n%s", d)
			}
		})
	}
}

// e2eItemsText is the items of a ResourceList, written as a plain stream with every
// annotation kept, so a change anywhere in them shows.
func e2eItemsText(t *testing.T, rl string) string {
	t.Helper()
	items, err := (&kio.ByteReader{Reader: strings.NewReader(rl), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatalf("not a ResourceList: %v\n%s", err, rl)
	}
	var b bytes.Buffer
	if err := (kio.ByteWriter{Writer: &b, KeepReaderAnnotations: true}).Write(items); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ---- CAPA's real templates ----

// e2eImdsPaths is where each kind checked here keeps instanceMetadataOptions.
var e2eImdsPaths = map[string][]string{
	"AWSMachineTemplate": {"spec", "template", "spec"},
	"AWSMachinePool":     {"spec", "awsLaunchTemplate"},
}

// e2eManagedPoolKinds are what the managed node group conversion (another issue, tested
// elsewhere) may change, add or remove in an EKS managed-pool template.
var e2eManagedPoolKinds = map[string]bool{
	"AWSManagedMachinePool": true, "MachinePool": true, "Secret": true,
	"EKSConfig": true, "EKSConfigTemplate": true, "NodeadmConfig": true, "NodeadmConfigTemplate": true,
}

// e2eBlockLine is a line the function may add to a real template: a block key or one of
// the default options.
var e2eBlockLine = regexp.MustCompile(`^\s*(instanceMetadataOptions:|httpTokens: required|httpPutResponseHopLimit: 2|httpEndpoint: enabled|instanceMetadataTags: disabled)$`)

func TestCAPATemplates(t *testing.T) {
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatalf("CAPA %s templates: %v", modcache.CAPAVersion, err)
	}
	files, err := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte("apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nmetadata:\n  name: require-imdsv2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		in := e2eReadFile(t, f)
		if !strings.Contains(in, "kind: AWSMachineTemplate\n") && !strings.Contains(in, "kind: AWSMachinePool\n") {
			continue
		}
		checked++
		t.Run(filepath.Base(f), func(t *testing.T) {
			got := e2eRunBinary(t, cfgDir, nil, "config.yaml", f)
			if got.code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", got.code, got.stderr)
			}
			managed := strings.Contains(in, "kind: AWSManagedMachinePool\n")
			inItems, ok := e2eReadItems(t, in, nil)
			if !ok {
				t.Fatal("template does not parse")
			}
			outItems, ok := e2eReadItems(t, got.stdout, nil)
			if !ok {
				t.Fatalf("output does not parse:\n%s", got.stdout)
			}
			inObjs, outObjs := e2eKeyedObjects(t, inItems, managed), e2eKeyedObjects(t, outItems, managed)

			blocks := 0
			for key, out := range outObjs {
				path, ok := e2eImdsPaths[key.kind]
				if !ok {
					continue
				}
				blocks++
				// The option values, read from the nodes so the integer tag is checked too.
				node := outItems[out.index]
				hop, err := node.Pipe(yaml.Lookup(append(path, "instanceMetadataOptions", "httpPutResponseHopLimit")...))
				if err != nil || hop == nil || hop.YNode().Tag != yaml.NodeTagInt || hop.YNode().Value != "2" {
					t.Errorf("%s: httpPutResponseHopLimit is not the integer 2: %v", key, hop)
				}
				tokens, err := node.Pipe(yaml.Lookup(append(path, "instanceMetadataOptions", "httpTokens")...))
				if err != nil || tokens == nil || tokens.YNode().Value != "required" {
					t.Errorf("%s: httpTokens is not required: %v", key, tokens)
				}
				// Keys the template set and the config does not (httpProtocolIpv6) survive.
				if in, ok := inObjs[key]; ok {
					inBlock, _ := e2eDig(in.obj, append(path, "instanceMetadataOptions")...).(map[string]any)
					outBlock, _ := e2eDig(out.obj, append(path, "instanceMetadataOptions")...).(map[string]any)
					for k, v := range inBlock {
						if k == "httpProtocolIpv6" && outBlock[k] != v {
							t.Errorf("%s: %s changed from %v to %v", key, k, v, outBlock[k])
						}
					}
				}
			}
			if blocks == 0 {
				t.Fatal("no AWSMachineTemplate or AWSMachinePool in the output")
			}

			// Nothing else changes: the same objects, equal once the blocks are removed, and
			// a ClusterClass's own final patch, which writes the same blocks at admission time.
			for _, objs := range []map[e2eObjectKey]e2eKeyedObject{inObjs, outObjs} {
				for key, o := range objs {
					if path, ok := e2eImdsPaths[key.kind]; ok {
						if parent, ok := e2eDig(o.obj, path...).(map[string]any); ok {
							delete(parent, "instanceMetadataOptions")
						}
					}
					if key.kind == "ClusterClass" {
						spec, _ := o.obj["spec"].(map[string]any)
						patches, _ := spec["patches"].([]any)
						var kept []any
						for _, p := range patches {
							if pm, _ := p.(map[string]any); pm["name"] != transformers.FinalPatchName {
								kept = append(kept, p)
							}
						}
						if len(kept) == 0 {
							delete(spec, "patches")
						} else {
							spec["patches"] = kept
						}
					}
				}
			}
			if d := cmp.Diff(e2ePlainMap(inObjs), e2ePlainMap(outObjs)); d != "" {
				t.Errorf("output differs beyond instanceMetadataOptions (-template +output):\n%s", d)
			}

			// And textually: every line of the template is still there, in order, and
			// every added line belongs to a block. This catches lost comments and changed
			// quoting, which a semantic comparison cannot see.
			if !managed {
				e2eCheckOnlyBlockLinesAdded(t, in, got.stdout)
			}
		})
	}
	if checked < 10 {
		t.Errorf("checked %d templates; CAPA %s has more than 10 with AWSMachineTemplate or AWSMachinePool", checked, modcache.CAPAVersion)
	}
}

type e2eObjectKey struct{ kind, namespace, name string }

func (k e2eObjectKey) String() string { return k.kind + " " + k.namespace + "/" + k.name }

type e2eKeyedObject struct {
	index int
	obj   map[string]any
}

// e2eKeyedObjects decodes items by identity; in a managed-pool template the kinds that
// conversion owns are left out.
func e2eKeyedObjects(t *testing.T, items []*yaml.RNode, managed bool) map[e2eObjectKey]e2eKeyedObject {
	t.Helper()
	objs := e2ePlainObjects(t, items)
	out := map[e2eObjectKey]e2eKeyedObject{}
	for i, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		key := e2eObjectKey{kind: fmt.Sprint(o["kind"]), namespace: fmt.Sprint(md["namespace"]), name: fmt.Sprint(md["name"])}
		if managed && e2eManagedPoolKinds[key.kind] {
			continue
		}
		if _, dup := out[key]; dup {
			t.Fatalf("duplicate %s", key)
		}
		out[key] = e2eKeyedObject{index: i, obj: o}
	}
	return out
}

func e2ePlainMap(objs map[e2eObjectKey]e2eKeyedObject) map[string]map[string]any {
	m := map[string]map[string]any{}
	for k, o := range objs {
		m[k.String()] = o.obj
	}
	return m
}

func e2eDig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// e2eCheckOnlyBlockLinesAdded checks that out is in with block lines inserted. Document
// separators and blank lines are ignored: kyaml drops a leading `---` and blank lines at
// the end of a document (the whitespace normalisation the README documents).
func e2eCheckOnlyBlockLinesAdded(t *testing.T, in, out string) {
	t.Helper()
	var inLines []string
	for _, l := range strings.Split(in, "\n") {
		if l != "---" && strings.TrimSpace(l) != "" {
			inLines = append(inLines, l)
		}
	}
	var added []string
	i := 0
	// The ClusterClass final patch is added whole: its lines are indented under the
	// "- name: capa-imds-require-imdsv2" item (or a "patches:" key added for it).
	patchIndent := -1
	for _, l := range strings.Split(out, "\n") {
		if l == "---" || strings.TrimSpace(l) == "" {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " -"))
		if patchIndent >= 0 && indent > patchIndent {
			added = append(added, strings.TrimSpace(l))
			continue
		}
		patchIndent = -1
		if i < len(inLines) && l == inLines[i] {
			i++
			continue
		}
		if strings.TrimSpace(l) == "patches:" || strings.TrimSpace(l) == "- name: "+transformers.FinalPatchName {
			patchIndent = indent - 1 // the item's own keys stand at its indent
			if strings.TrimSpace(l) == "patches:" {
				patchIndent = len(l) - len(strings.TrimLeft(l, " ")) - 1
			}
			added = append(added, strings.TrimSpace(l))
			continue
		}
		if !e2eBlockLine.MatchString(l) {
			t.Errorf("output line %q is neither a template line (next expected %q) nor a block line", l, inLines[min(i, len(inLines)-1)])
			return
		}
		added = append(added, strings.TrimSpace(l))
	}
	if i != len(inLines) {
		t.Errorf("template lines missing from the output, from %q on", inLines[i])
	}
	if len(added) == 0 {
		t.Error("nothing added")
	}
}
