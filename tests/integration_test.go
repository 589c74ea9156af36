package tests

// Integration tests for issue #4: the function run the way platform teams run it, through
// the real kustomize CLI, kustomize's krusty library, an Argo CD Config Management Plugin's
// generate command and clusterctl's template flow. kpt is in kpt_test.go; the Dockerfile and
// krmfunction.yaml in packaging_test.go.
//
// Helpers here are prefixed integ so they cannot collide with the e2e tests in this package.
// Expected outputs live beside the examples; regenerate them with
//
//	CAPA_IMDS_UPDATE_EXAMPLES=1 go test ./tests/ -run 'TestInteg'
//
// and read every changed file before committing it.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

// The seed scenario of issue #3: cluster capi-imds in namespace default, control plane
// capi-imds-control-plane, so the EKS cluster is default_capi-imds-control-plane.
const (
	integSeedScript = "#!/bin/bash -xe\n/etc/eks/bootstrap.sh default_capi-imds-control-plane"
	integSeedBase64 = "IyEvYmluL2Jhc2ggLXhlCi9ldGMvZWtzL2Jvb3RzdHJhcC5zaCBkZWZhdWx0X2NhcGktaW1kcy1jb250cm9sLXBsYW5l"
	integSecretName = "capi-imds-eks-bootstrap"
)

// integUpdate regenerates expected files instead of comparing. An environment variable, not
// a flag, so it cannot clash with flags other test files in this package define.
var integUpdate = os.Getenv("CAPA_IMDS_UPDATE_EXAMPLES") != ""

// integRoot is the repository root; go test runs in the package directory.
func integRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// integTools builds the function (and, on demand, kustomize) once per test binary into a
// temporary directory, independent of bin/ and of other test files' set-up.
var integTools struct {
	dirOnce, binOnce, kustomizeOnce sync.Once
	dir, bin, kustomize             string
	dirErr, binErr, kustomizeErr    error
}

func integToolDir(t testing.TB) string {
	t.Helper()
	integTools.dirOnce.Do(func() {
		integTools.dir, integTools.dirErr = os.MkdirTemp("", "capa-imds-integ-")
	})
	if integTools.dirErr != nil {
		t.Fatal(integTools.dirErr)
	}
	return integTools.dir
}

func integGoBuild(root, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// integBinary is the capa-imds binary built from this tree.
func integBinary(t testing.TB) string {
	t.Helper()
	dir := integToolDir(t)
	integTools.binOnce.Do(func() {
		integTools.bin = filepath.Join(dir, "capa-imds")
		integTools.binErr = integGoBuild(integRoot(t), integTools.bin, "./cmd/capa-imds")
	})
	if integTools.binErr != nil {
		t.Fatal(integTools.binErr)
	}
	return integTools.bin
}

// integKustomize is the kustomize CLI pinned in go.mod: the binary `go tool kustomize` runs
// (`go tool -n` builds it once into the build cache and prints its path), copied next to the
// function. Tests call it first, so the `go tool kustomize` commands they run afterwards find
// it built instead of each compiling kustomize on a cold CI machine.
func integKustomize(t testing.TB) string {
	t.Helper()
	dir := integToolDir(t)
	integTools.kustomizeOnce.Do(func() {
		cmd := exec.Command("go", "tool", "-n", "kustomize")
		cmd.Dir = integRoot(t)
		out, err := cmd.Output()
		if err != nil {
			integTools.kustomizeErr = fmt.Errorf("go tool -n kustomize: %v", err)
			return
		}
		integTools.kustomize = filepath.Join(dir, "kustomize")
		integTools.kustomizeErr = integPlaceExecutable(strings.TrimSpace(string(out)), integTools.kustomize)
	})
	if integTools.kustomizeErr != nil {
		t.Fatal(integTools.kustomizeErr)
	}
	return integTools.kustomize
}

// integCopyTree copies a directory, keeping file modes.
func integCopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func integCopyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	if mode&0o111 != 0 {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := integPlaceExecutable(src, dst); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// integPlaceExecutable puts an executable at dst. Writing a binary and running it while
// parallel tests fork fails with ETXTBSY ("text file busy": a forked child briefly holds
// the write descriptor), so executables are hard-linked; a copy is written to a temporary
// name and renamed only when linking is impossible (another filesystem).
func integPlaceExecutable(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// integExampleTree lays out a temporary copy of the repository's examples with the built
// binary at bin/capa-imds, where `make build` puts it and the exec examples point.
func integExampleTree(t testing.TB) string {
	t.Helper()
	work := t.TempDir()
	integCopyTree(t, filepath.Join(integRoot(t), "examples"), filepath.Join(work, "examples"))
	integCopyFile(t, integBinary(t), filepath.Join(work, "bin", "capa-imds"), 0o755)
	return work
}

type integResult struct {
	stdout, stderr []byte
	code           int
}

// integRun runs a command and returns its output and exit code; only a failure to start
// is fatal.
func integRun(t testing.TB, dir string, env []string, stdin []byte, name string, args ...string) integResult {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := integResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// integGolden compares got with the file at rel (relative to the repository root), or
// rewrites the file when CAPA_IMDS_UPDATE_EXAMPLES is set.
func integGolden(t testing.TB, rel string, got []byte) {
	t.Helper()
	path := filepath.Join(integRoot(t), rel)
	if integUpdate {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	integCompareFile(t, rel, got)
}

// integCompareFile compares got with the file at rel (relative to the repository root).
func integCompareFile(t testing.TB, rel string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(integRoot(t), rel))
	if err != nil {
		t.Fatalf("%v (set CAPA_IMDS_UPDATE_EXAMPLES=1 to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the output (-file +output):\n%s", rel, diff)
	}
}

// integObj is one parsed document.
type integObj map[string]any

func (o integObj) kind() string { s, _ := o["kind"].(string); return s }

func (o integObj) str(path ...string) string { s, _ := o.get(path...).(string); return s }

func (o integObj) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (o integObj) id() string {
	return fmt.Sprintf("%s %s/%s", o.kind(), o.str("metadata", "namespace"), o.str("metadata", "name"))
}

// integParse splits a multi-document stream into objects (through JSON, so the value model
// is that of the API server and of clusterctl).
func integParse(t testing.TB, data []byte) []integObj {
	t.Helper()
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(data), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatalf("parsing output: %v\n%s", err, data)
	}
	objs := make([]integObj, 0, len(nodes))
	for _, n := range nodes {
		j, err := n.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, m)
	}
	return objs
}

func integByKind(objs []integObj, kind string) []integObj {
	var out []integObj
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// integAssertNoOrchestratorAnnotations fails on any config.kubernetes.io or
// internal.config.kubernetes.io annotation: they must not reach what users apply.
func integAssertNoOrchestratorAnnotations(t testing.TB, objs []integObj) {
	t.Helper()
	for _, o := range objs {
		ann, _ := o.get("metadata", "annotations").(map[string]any)
		for k := range ann {
			if strings.HasPrefix(k, "config.kubernetes.io/") || strings.HasPrefix(k, "internal.config.kubernetes.io/") ||
				strings.HasPrefix(k, "config.k8s.io/") {
				t.Errorf("%s: orchestrator annotation %s leaked into the output", o.id(), k)
			}
		}
	}
}

// integIMDSPaths says where each CAPA kind keeps instanceMetadataOptions.
var integIMDSPaths = map[string][]string{
	"AWSMachine":            {"spec", "instanceMetadataOptions"},
	"AWSMachineTemplate":    {"spec", "template", "spec", "instanceMetadataOptions"},
	"AWSMachinePool":        {"spec", "awsLaunchTemplate", "instanceMetadataOptions"},
	"AWSManagedMachinePool": {"spec", "awsLaunchTemplate", "instanceMetadataOptions"},
}

// integAssertIMDSv2 checks every CAPA machine kind requires IMDSv2 with hop limit 2, and
// returns how many it checked.
func integAssertIMDSv2(t testing.TB, objs []integObj) int {
	t.Helper()
	n := 0
	for _, o := range objs {
		path, ok := integIMDSPaths[o.kind()]
		if !ok || !strings.HasPrefix(o.str("apiVersion"), "infrastructure.cluster.x-k8s.io/") {
			continue
		}
		n++
		opts, _ := o.get(path...).(map[string]any)
		if opts["httpTokens"] != "required" || opts["httpPutResponseHopLimit"] != float64(2) {
			t.Errorf("%s: %s = %v, want httpTokens required and httpPutResponseHopLimit 2 (an integer)",
				o.id(), strings.Join(path, "."), opts)
		}
		if o.kind() == "AWSManagedMachinePool" && o.str("spec", "amiType") != "CUSTOM" {
			t.Errorf("%s: spec.amiType = %q, want CUSTOM (CAPA drives a launch template only with a custom AMI type)",
				o.id(), o.str("spec", "amiType"))
		}
	}
	return n
}

// integAssertSeedBootstrap checks the AL2 example's conversion: the MachinePool points at the
// bootstrap Secret instead of the EKSConfig, and the Secret holds the seed script.
func integAssertSeedBootstrap(t testing.TB, objs []integObj) {
	t.Helper()
	secrets := integByKind(objs, "Secret")
	if len(secrets) != 1 {
		t.Fatalf("got %d Secrets, want exactly 1 (%s)", len(secrets), integSecretName)
	}
	s := secrets[0]
	if s.str("metadata", "name") != integSecretName || s.str("metadata", "namespace") != "default" || s.str("type") != "Opaque" {
		t.Errorf("Secret: got %s type %q, want Secret default/%s type Opaque", s.id(), s.str("type"), integSecretName)
	}
	if got := s.str("data", "value"); got != integSeedBase64 {
		dec, _ := base64.StdEncoding.DecodeString(got)
		t.Errorf("Secret data.value = %q (%q), want %q", got, dec, integSeedBase64)
	}
	if labels, _ := s.get("metadata", "labels").(map[string]any); labels["clusterctl.cluster.x-k8s.io/move"] == nil {
		t.Errorf("Secret: missing label clusterctl.cluster.x-k8s.io/move (clusterctl move would leave it behind)")
	}
	for _, mp := range integByKind(objs, "MachinePool") {
		if got := mp.str("spec", "template", "spec", "bootstrap", "dataSecretName"); got != integSecretName {
			t.Errorf("%s: bootstrap.dataSecretName = %q, want %q", mp.id(), got, integSecretName)
		}
		if ref := mp.get("spec", "template", "spec", "bootstrap", "configRef"); ref != nil {
			t.Errorf("%s: bootstrap.configRef = %v is still set (Cluster API would overwrite dataSecretName)", mp.id(), ref)
		}
	}
	if n := len(integByKind(objs, "EKSConfig")); n != 0 {
		t.Errorf("%d EKSConfig left in the output; the converted pool no longer references it", n)
	}
}

// integKustomizeRendered checks a kustomize render of the exec example. Only the CLI test
// (owner) rewrites expected.yaml in update mode; the others always compare with it.
func integKustomizeRendered(t testing.TB, out []byte, owner bool) {
	t.Helper()
	const expected = "examples/kustomize/exec/expected.yaml"
	switch {
	case owner:
		integGolden(t, expected, out)
	case !integUpdate: // in update mode the owner is rewriting the file
		integCompareFile(t, expected, out)
	}
	if bytes.Contains(out, []byte("config.kubernetes.io")) {
		t.Errorf("output mentions config.kubernetes.io:\n%s", out)
	}
	objs := integParse(t, out)
	integAssertNoOrchestratorAnnotations(t, objs)
	if n := integAssertIMDSv2(t, objs); n != 1 {
		t.Errorf("checked %d CAPA machine resources, want 1 (the AWSManagedMachinePool)", n)
	}
	integAssertSeedBootstrap(t, objs)
}

// TestIntegKustomizeExecCLI runs the exec example through the real kustomize CLI pinned in
// go.mod, exactly as documented: `kustomize build --enable-alpha-plugins --enable-exec`.
func TestIntegKustomizeExecCLI(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	integKustomize(t)
	res := integRun(t, integRoot(t), os.Environ(), nil, "go", "tool", "kustomize", "build",
		"--enable-alpha-plugins", "--enable-exec", filepath.Join(work, "examples", "kustomize", "exec"))
	if res.code != 0 {
		t.Fatalf("kustomize build exited %d:\n%s", res.code, res.stderr)
	}
	integKustomizeRendered(t, res.stdout, true)
}

// TestIntegKustomizeExecKrusty runs the same build in-process through kustomize's krusty
// library with exec functions enabled, as a Go program embedding kustomize would.
func TestIntegKustomizeExecKrusty(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	o := krusty.MakeDefaultOptions()
	o.PluginConfig = types.EnabledPluginConfig(types.BploUseStaticallyLinked)
	o.PluginConfig.FnpLoadingOptions.EnableExec = true
	// `kustomize build` orders its output "legacy" by default; krusty's default keeps input order.
	o.Reorder = krusty.ReorderOptionLegacy
	m, err := krusty.MakeKustomizer(o).Run(filesys.MakeFsOnDisk(), filepath.Join(work, "examples", "kustomize", "exec"))
	if err != nil {
		t.Fatalf("krusty: %v", err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	integKustomizeRendered(t, out, false)
}

// TestIntegKustomizeWithoutEnableExec pins the pitfall docs/integrations.md warns about and
// the guard it recommends: without --enable-exec kustomize silently skips the function and
// exits 0 with the manifests unchanged; `capa-imds --audit CONFIG -` on that output fails,
// and passes on a correct render.
func TestIntegKustomizeWithoutEnableExec(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	root := integRoot(t)
	execDir := filepath.Join(work, "examples", "kustomize", "exec")
	integKustomize(t)
	skipped := integRun(t, root, os.Environ(), nil, "go", "tool", "kustomize", "build", "--enable-alpha-plugins", execDir)
	if skipped.code != 0 {
		t.Fatalf("kustomize build without --enable-exec exited %d (the pitfall is that it succeeds):\n%s", skipped.code, skipped.stderr)
	}
	base := integRun(t, root, os.Environ(), nil, integKustomize(t), "build", filepath.Join(work, "examples", "kustomize", "base"))
	if base.code != 0 {
		t.Fatalf("kustomize build base exited %d:\n%s", base.code, base.stderr)
	}
	if !bytes.Equal(skipped.stdout, base.stdout) {
		t.Fatalf("without --enable-exec kustomize changed the manifests; docs/integrations.md says it skips the function silently:\n%s",
			cmp.Diff(string(base.stdout), string(skipped.stdout)))
	}

	config := filepath.Join(execDir, "imds.yaml")
	audit := integRun(t, work, os.Environ(), skipped.stdout, integBinary(t), "--audit", config, "-")
	if audit.code != 1 {
		t.Fatalf("capa-imds --audit on unmodified output exited %d, want 1\nstderr:\n%s", audit.code, audit.stderr)
	}
	if len(audit.stdout) != 0 {
		t.Errorf("audit failure printed manifests on stdout:\n%s", audit.stdout)
	}
	for _, want := range []string{"AWSManagedMachinePool default/capi-imds-pool-0", "httpTokens"} {
		if !bytes.Contains(audit.stderr, []byte(want)) {
			t.Errorf("audit stderr does not mention %q:\n%s", want, audit.stderr)
		}
	}

	// The guard passes on a correct render, so a pipeline can keep it on every build.
	good := integRun(t, root, os.Environ(), nil, integKustomize(t), "build", "--enable-alpha-plugins", "--enable-exec", execDir)
	if good.code != 0 {
		t.Fatalf("kustomize build exited %d:\n%s", good.code, good.stderr)
	}
	pass := integRun(t, work, os.Environ(), good.stdout, integBinary(t), "--audit", config, "-")
	if pass.code != 0 {
		t.Fatalf("capa-imds --audit on a correct render exited %d, want 0\nstderr:\n%s", pass.code, pass.stderr)
	}
	if diff := cmp.Diff(integParse(t, good.stdout), integParse(t, pass.stdout)); diff != "" {
		t.Errorf("audit mode changed the manifests (-in +out):\n%s", diff)
	}
}

// TestIntegKustomizeAuditTransformer pins what docs/integrations.md says about checking in
// kustomize itself: an IMDSConfig with spec.mode audit under transformers: passes compliant
// input through unchanged and fails the build on non-compliant input, while kustomize refuses
// the same config under validators:.
func TestIntegKustomizeAuditTransformer(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	root := integRoot(t)
	config, err := os.ReadFile(filepath.Join(work, "examples", "kustomize", "exec", "imds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	audit := bytes.Replace(config, []byte("mode: enforce"), []byte("mode: audit"), 1)
	if bytes.Equal(audit, config) {
		t.Fatal("examples/kustomize/exec/imds.yaml no longer says mode: enforce")
	}
	rendered, err := os.ReadFile(filepath.Join(root, "examples", "kustomize", "exec", "expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(root, "examples", "kustomize", "base", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	build := func(name, field string, resources []byte) integResult {
		dir := filepath.Join(work, "examples", "kustomize", name) // exec.path resolves from here as from exec/
		for f, data := range map[string][]byte{
			"kustomization.yaml": []byte("resources:\n  - resources.yaml\n" + field + ":\n  - imds.yaml\n"),
			"imds.yaml":          audit,
			"resources.yaml":     resources,
		} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return integRun(t, root, os.Environ(), nil, integKustomize(t), "build", "--enable-alpha-plugins", "--enable-exec", dir)
	}

	ok := build("audit-rendered", "transformers", rendered)
	if ok.code != 0 {
		t.Fatalf("audit transformer over compliant input exited %d:\n%s", ok.code, ok.stderr)
	}
	if !bytes.Equal(ok.stdout, rendered) {
		t.Errorf("audit transformer changed compliant input:\n%s", cmp.Diff(string(rendered), string(ok.stdout)))
	}
	bad := build("audit-base", "transformers", base)
	if bad.code == 0 || !bytes.Contains(bad.stderr, []byte("httpTokens")) {
		t.Errorf("audit transformer over non-compliant input: exit %d, stderr %q; want a failure naming httpTokens", bad.code, bad.stderr)
	}
	if v := build("audit-validator", "validators", rendered); v.code == 0 {
		t.Errorf("kustomize accepted capa-imds under validators: (exit 0); docs/integrations.md says it cannot run KRM functions there:\n%s", v.stdout)
	}
}

// TestIntegKustomizeContainerExample checks the container example, which needs a container
// runtime this machine lacks: it runs the same config, its image is the one krmfunction.yaml
// and the Makefile publish, and kustomize refuses it without --enable-alpha-plugins.
func TestIntegKustomizeContainerExample(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	fn := integFunctionAnnotation(t, filepath.Join(root, "examples", "kustomize", "container", "imds.yaml"))
	image, _ := fn["container"].(map[string]any)["image"].(string)
	if !strings.HasPrefix(image, "ghcr.io/capa-imds/capa-imds:") {
		t.Errorf("container example image = %q, want ghcr.io/capa-imds/capa-imds:<version> (the Makefile's IMAGE)", image)
	}
	if def := integKRMFunctionImage(t); image != def {
		t.Errorf("container example image %q differs from krmfunction.yaml's %q", image, def)
	}
	res := integRun(t, root, os.Environ(), nil, integKustomize(t), "build", filepath.Join(root, "examples", "kustomize", "container"))
	if res.code == 0 || !bytes.Contains(res.stderr, []byte("external plugins disabled")) {
		t.Errorf("kustomize build without --enable-alpha-plugins: exit %d, stderr %q; want a failure naming external plugins", res.code, res.stderr)
	}

	execFn := integFunctionAnnotation(t, filepath.Join(root, "examples", "kustomize", "exec", "imds.yaml"))
	if p, _ := execFn["exec"].(map[string]any)["path"].(string); p != "../../../bin/capa-imds" {
		t.Errorf("exec example path = %q, want ../../../bin/capa-imds (relative to the kustomization: the Makefile's bin/capa-imds)", p)
	}
}

// integFunctionAnnotation parses a config file's config.kubernetes.io/function annotation.
func integFunctionAnnotation(t testing.TB, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs := integParse(t, data)
	if len(objs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(objs))
	}
	raw := objs[0].str("metadata", "annotations", "config.kubernetes.io/function")
	var fn map[string]any
	if err := sigsyaml.Unmarshal([]byte(raw), &fn); err != nil || fn == nil {
		t.Fatalf("%s: config.kubernetes.io/function %q: %v", path, raw, err)
	}
	return fn
}

// TestIntegArgoCDPlugin runs the Config Management Plugin's generate command exactly as
// plugin.yaml writes it, in a temporary copy of the repository, with only what the sidecar
// has: capa-imds and kustomize on $PATH, a fresh HOME and TMPDIR, Argo CD's ARGOCD_APP_*
// variables. The output must be the kustomize example's expected render.
func TestIntegArgoCDPlugin(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	var plugin struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Discover struct {
				FileName string `json:"fileName"`
			} `json:"discover"`
			Generate struct {
				Command []string `json:"command"`
				Args    []string `json:"args"`
			} `json:"generate"`
		} `json:"spec"`
	}
	data, err := os.ReadFile(filepath.Join(root, "examples", "argocd", "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.UnmarshalStrict(data, &plugin); err != nil {
		t.Fatalf("plugin.yaml: %v", err)
	}
	if plugin.APIVersion != "argoproj.io/v1alpha1" || plugin.Kind != "ConfigManagementPlugin" {
		t.Fatalf("plugin.yaml is %s %s, want argoproj.io/v1alpha1 ConfigManagementPlugin", plugin.APIVersion, plugin.Kind)
	}
	gen := append(append([]string(nil), plugin.Spec.Generate.Command...), plugin.Spec.Generate.Args...)
	if len(gen) == 0 {
		t.Fatal("plugin.yaml has no generate command")
	}
	script := strings.Join(gen, " ")
	for _, want := range []string{"set -eu", "--enable-alpha-plugins", "--enable-exec"} {
		if !strings.Contains(script, want) {
			t.Errorf("generate command %q lacks %q", script, want)
		}
	}
	if strings.Contains(script, "|") {
		t.Errorf("generate command %q uses a pipe, which can hide a failure", script)
	}

	// The Application names the plugin and a path that exists and that the plugin discovers.
	var app struct {
		Spec struct {
			Source struct {
				Path   string `json:"path"`
				Plugin struct {
					Name string `json:"name"`
				} `json:"plugin"`
			} `json:"source"`
		} `json:"spec"`
	}
	data, err = os.ReadFile(filepath.Join(root, "examples", "argocd", "application.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(data, &app); err != nil {
		t.Fatal(err)
	}
	if app.Spec.Source.Plugin.Name != plugin.Metadata.Name {
		t.Errorf("application.yaml uses plugin %q, plugin.yaml is %q", app.Spec.Source.Plugin.Name, plugin.Metadata.Name)
	}
	appDir := filepath.FromSlash(app.Spec.Source.Path)
	if matches, _ := filepath.Glob(filepath.Join(root, appDir, plugin.Spec.Discover.FileName)); len(matches) == 0 {
		t.Errorf("plugin discover.fileName %q matches nothing in the Application's path %s", plugin.Spec.Discover.FileName, appDir)
	}
	if fn := integFunctionAnnotation(t, filepath.Join(root, appDir, "imds.yaml")); fn["exec"].(map[string]any)["path"] != "capa-imds" {
		t.Errorf("Argo CD example runs exec path %v, want capa-imds (looked up on $PATH: checkouts lose the executable bit)", fn["exec"])
	}
	integAssertSidecar(t, filepath.Join(root, "examples", "argocd", "sidecar.yaml"))

	// A checkout as the plugin server sees it: the repository without executable bits and
	// without bin/; the tools come from $PATH only.
	repo := filepath.Join(t.TempDir(), "repo")
	integCopyTree(t, filepath.Join(root, "examples"), filepath.Join(repo, "examples"))
	err = filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	integCopyFile(t, integBinary(t), filepath.Join(pathDir, "capa-imds"), 0o755)
	integCopyFile(t, integKustomize(t), filepath.Join(pathDir, "kustomize"), 0o755)
	home, tmp := t.TempDir(), t.TempDir()
	env := []string{
		"PATH=" + pathDir + string(os.PathListSeparator) + "/usr/bin" + string(os.PathListSeparator) + "/bin",
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"ARGOCD_APP_NAME=capi-imds",
		"ARGOCD_APP_NAMESPACE=default",
		"ARGOCD_APP_SOURCE_PATH=" + app.Spec.Source.Path,
		"ARGOCD_APP_SOURCE_REPO_URL=https://github.com/capa-imds/capa-imds.git",
		"ARGOCD_APP_SOURCE_TARGET_REVISION=main",
	}
	res := integRun(t, filepath.Join(repo, appDir), env, nil, gen[0], gen[1:]...)
	if res.code != 0 {
		t.Fatalf("plugin generate exited %d:\n%s", res.code, res.stderr)
	}
	integKustomizeRendered(t, res.stdout, false)

	// Manifests without namespaces (as most charts and bases leave them): the Application's
	// destination namespace reaches the EKS name through the plugin's environment.
	base := filepath.Join(repo, "examples", "kustomize", "base", "cluster.yaml")
	manifests, _ := os.ReadFile(base)
	if err := os.WriteFile(base, bytes.ReplaceAll(manifests, []byte("  namespace: default\n"), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	teamA := append(append([]string(nil), env...), "ARGOCD_APP_NAMESPACE=team-a")
	res = integRun(t, filepath.Join(repo, appDir), teamA, nil, gen[0], gen[1:]...)
	if res.code != 0 {
		t.Fatalf("plugin generate in team-a exited %d:\n%s", res.code, res.stderr)
	}
	const teamAName = "team-a_capi-imds-control-plane" // GenerateEKSName(capi-imds-control-plane, team-a)
	for _, o := range integParse(t, res.stdout) {
		switch o.kind() {
		case "AWSManagedControlPlane":
			if got := o.str("spec", "eksClusterName"); got != teamAName {
				t.Errorf("pinned eksClusterName %q, want %q", got, teamAName)
			}
		case "Secret":
			if got, _ := base64.StdEncoding.DecodeString(o.str("data", "value")); !strings.HasSuffix(string(got), " "+teamAName) {
				t.Errorf("bootstrap script %q does not name %s", got, teamAName)
			}
		}
	}
	if err := os.WriteFile(base, manifests, 0o644); err != nil {
		t.Fatal(err)
	}

	// A failing function fails the generate command, with no output for Argo CD to apply.
	bad := filepath.Join(repo, appDir, "imds.yaml")
	cfg, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, bytes.Replace(cfg, []byte("httpTokens: required"), []byte("httpTokens: sometimes"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	res = integRun(t, filepath.Join(repo, appDir), env, nil, gen[0], gen[1:]...)
	if res.code == 0 || len(bytes.TrimSpace(res.stdout)) != 0 {
		t.Errorf("generate with a bad config: exit %d, %d bytes on stdout; want a failure and no output", res.code, len(res.stdout))
	}
	if !bytes.Contains(res.stderr, []byte("sometimes")) {
		t.Errorf("generate with a bad config: stderr does not name the bad value:\n%s", res.stderr)
	}
}

// integAssertSidecar checks the sidecar patch: the plugin server entrypoint as user 999.
func integAssertSidecar(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs := integParse(t, data)
	if len(objs) != 1 || objs[0].kind() != "Deployment" || objs[0].str("metadata", "name") != "argocd-repo-server" {
		t.Fatalf("%s: want one Deployment argocd-repo-server patch", path)
	}
	containers, _ := objs[0].get("spec", "template", "spec", "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("%s: %d containers, want the plugin sidecar only", path, len(containers))
	}
	c := integObj(containers[0].(map[string]any))
	if cmd, _ := c.get("command").([]any); len(cmd) != 1 || cmd[0] != "/var/run/argocd/argocd-cmp-server" {
		t.Errorf("sidecar command = %v, want [/var/run/argocd/argocd-cmp-server]", c.get("command"))
	}
	if uid := c.get("securityContext", "runAsUser"); uid != float64(999) {
		t.Errorf("sidecar runAsUser = %v, want 999", uid)
	}

	// The sidecar image puts the binary on $PATH, taken from the published image where the
	// Dockerfile puts it, and the plugin config where the plugin server reads it.
	df, err := os.ReadFile(filepath.Join(filepath.Dir(path), "sidecar.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FROM ghcr.io/capa-imds/capa-imds:${CAPA_IMDS_VERSION} AS capa-imds",
		"COPY --from=capa-imds --chmod=0755 /capa-imds /usr/local/bin/capa-imds",
		"COPY plugin.yaml /home/argocd/cmp-server/config/plugin.yaml",
		"USER 999",
	} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("sidecar.Dockerfile lacks %q", want)
		}
	}
	_, tag, _ := strings.Cut(integKRMFunctionImage(t), ":")
	if !bytes.Contains(df, []byte("ARG CAPA_IMDS_VERSION="+tag+"\n")) {
		t.Errorf("sidecar.Dockerfile's CAPA_IMDS_VERSION is not krmfunction.yaml's image tag %s", tag)
	}
}

// --- clusterctl ---------------------------------------------------------------------------

// integEnvsubst does what clusterctl's variable processor (drone/envsubst) does with the
// forms CAPA's templates use: ${VAR}; ${VAR:=default} and ${VAR:-default}, which take the
// default when VAR is unset or empty; and ${VAR:offset:length}.
var integVarRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[=-])([^}]*)|:([0-9]+)(?::([0-9]+))?)?\}`)

func integEnvsubst(t testing.TB, text string, vars map[string]string) string {
	t.Helper()
	var missing []string
	out := integVarRef.ReplaceAllStringFunc(text, func(ref string) string {
		m := integVarRef.FindStringSubmatch(ref)
		v, set := vars[m[1]], vars[m[1]] != ""
		switch {
		case m[2] != "" && !set:
			return m[3]
		case !set:
			missing = append(missing, m[1])
			return ref
		case m[4] != "":
			off, _ := strconv.Atoi(m[4])
			off = min(off, len(v))
			end := len(v)
			if m[5] != "" {
				n, _ := strconv.Atoi(m[5])
				end = min(off+n, len(v))
			}
			return v[off:end]
		}
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("value for variables %v is not set", missing)
	}
	if strings.Contains(out, "${") {
		t.Fatalf("unsupported variable syntax left after substitution:\n%s", out)
	}
	return out
}

// integClusterScoped mirrors clusterctl's IsResourceNamespaced (cmd/clusterctl/internal/util).
var integClusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "PodSecurityPolicy": true,
	"CertificateSigningRequest": true, "ClusterRoleBinding": true, "ClusterRole": true,
	"VolumeAttachment": true, "StorageClass": true, "CSIDriver": true, "CSINode": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"CustomResourceDefinition": true, "PriorityClass": true, "RuntimeClass": true,
}

// integClusterctlGenerate emulates `clusterctl generate cluster --target-namespace ns` on a
// template: substitute the variables, parse into objects, stamp the namespace on namespaced
// objects and print them the way clusterctl does (sigs.k8s.io/yaml: sorted keys, no
// comments), joined as cluster-api's utilyaml.JoinYaml joins them.
func integClusterctlGenerate(t testing.TB, template []byte, ns string, vars map[string]string) []byte {
	t.Helper()
	objs := integParse(t, []byte(integEnvsubst(t, string(template), vars)))
	var docs [][]byte
	for _, o := range objs {
		if !integClusterScoped[o.kind()] {
			md, _ := o["metadata"].(map[string]any)
			if md == nil {
				md = map[string]any{}
				o["metadata"] = md
			}
			md["namespace"] = ns
		}
		b, err := sigsyaml.Marshal(map[string]any(o))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, append([]byte("\n"), b...))
	}
	return bytes.Join(docs, []byte("---"))
}

// integTemplateVars gives every variable a template uses a value (the seed names for the
// ones that matter to the function).
func integTemplateVars(template []byte) map[string]string {
	vars := map[string]string{
		"CLUSTER_NAME":                   "capi-imds",
		"NAMESPACE":                      "default",
		"AWS_REGION":                     "eu-west-1",
		"AWS_SSH_KEY_NAME":               "default",
		"KUBERNETES_VERSION":             "v1.31.0",
		"WORKER_MACHINE_COUNT":           "2",
		"CONTROL_PLANE_MACHINE_COUNT":    "3",
		"AWS_NODE_MACHINE_TYPE":          "t3.large",
		"AWS_CONTROL_PLANE_MACHINE_TYPE": "t3.large",
	}
	for _, m := range integVarRef.FindAllStringSubmatch(string(template), -1) {
		if _, ok := vars[m[1]]; !ok && m[2] == "" {
			vars[m[1]] = strings.ToLower(strings.ReplaceAll(m[1], "_", "-"))
		}
	}
	return vars
}

// integCAPATemplates lists CAPA's cluster templates from the pinned module.
func integCAPATemplates(t testing.TB) (dir string, names []string) {
	t.Helper()
	mod, err := modcache.CAPADir()
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(mod, "templates")
	matches, err := filepath.Glob(filepath.Join(dir, "cluster-template*.yaml"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no cluster templates in %s: %v", dir, err)
	}
	for _, m := range matches {
		names = append(names, filepath.Base(m))
	}
	sort.Strings(names)
	return dir, names
}

// integStandalone runs `capa-imds CONFIG FILE...` and fails the test on a non-zero exit.
func integStandalone(t testing.TB, stdin []byte, config string, files ...string) integResult {
	t.Helper()
	res := integRun(t, integRoot(t), os.Environ(), stdin, integBinary(t), append([]string{config}, files...)...)
	if res.code != 0 {
		t.Fatalf("capa-imds %s %v exited %d:\n%s", config, files, res.code, res.stderr)
	}
	return res
}

// integNormalizeSecrets rewrites a Secret's stringData into data (base64), as the API server
// stores it, so renders that differ only in how the script was written compare equal.
func integNormalizeSecrets(objs []integObj) {
	for _, o := range objs {
		sd, ok := o["stringData"].(map[string]any)
		if o.kind() != "Secret" || !ok {
			continue
		}
		data, _ := o["data"].(map[string]any)
		if data == nil {
			data = map[string]any{}
		}
		for k, v := range sd {
			data[k] = base64.StdEncoding.EncodeToString([]byte(v.(string)))
		}
		o["data"] = data
		delete(o, "stringData")
	}
}

// TestIntegClusterctl runs both clusterctl flows over every CAPA v2.13.0 cluster template
// and the repository's AL2-shaped template:
//
//   - generate, then function: `clusterctl generate cluster capi-imds --target-namespace default
//     | capa-imds imds.yaml -`;
//   - flavor: `capa-imds imds.yaml cluster-template-eks.yaml > cluster-template-eks-imdsv2.yaml`,
//     then clusterctl generates from the flavor.
//
// Both must require IMDSv2 on every machine kind, leak no annotations, and agree once
// generated (a Secret's stringData counted as the data it becomes).
func TestIntegClusterctl(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	config := filepath.Join(root, "examples", "clusterctl", "imds.yaml")
	capaDir, names := integCAPATemplates(t)
	type tmpl struct{ name, path string }
	var templates []tmpl
	for _, n := range names {
		templates = append(templates, tmpl{"capa/" + n, filepath.Join(capaDir, n)})
	}
	templates = append(templates, tmpl{"examples/cluster-template-eks-al2.yaml", filepath.Join(root, "examples", "clusterctl", "cluster-template-eks-al2.yaml")})
	for _, tc := range templates {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			vars := integTemplateVars(raw)

			// Flow 1: clusterctl generate cluster ... | capa-imds imds.yaml -
			generated := integClusterctlGenerate(t, raw, "default", vars)
			direct := integStandalone(t, generated, config, "-")
			directObjs := integParse(t, direct.stdout)
			integAssertNoOrchestratorAnnotations(t, directObjs)
			machines := integAssertIMDSv2(t, directObjs)

			// Flow 2: the function on the raw template makes a flavor; clusterctl generates from it.
			flavor := integStandalone(t, nil, config, tc.path)
			if bytes.Contains(flavor.stdout, []byte("config.kubernetes.io")) {
				t.Errorf("flavor mentions config.kubernetes.io:\n%s", flavor.stdout)
			}
			flavorObjs := integParse(t, integClusterctlGenerate(t, flavor.stdout, "default", vars))
			if n := integAssertIMDSv2(t, flavorObjs); n != machines {
				t.Errorf("flavor flow checked %d machine resources, generate-first flow %d", n, machines)
			}
			integNormalizeSecrets(directObjs)
			integNormalizeSecrets(flavorObjs)
			if diff := cmp.Diff(directObjs, flavorObjs); diff != "" {
				t.Errorf("the two flows disagree (-generate|function +function|generate):\n%s", diff)
			}
		})
	}
}

// TestIntegClusterctlFlavors pins the flavors checked in under examples/clusterctl and what
// they become after `clusterctl generate cluster capi-imds --target-namespace default`.
func TestIntegClusterctlFlavors(t *testing.T) {
	t.Parallel()
	root := integRoot(t)
	config := filepath.Join(root, "examples", "clusterctl", "imds.yaml")
	capaDir, _ := integCAPATemplates(t)

	// CAPA's own EKS managed node group template (Amazon Linux 2023, NodeadmConfig).
	al2023 := filepath.Join(capaDir, "cluster-template-eks-managedmachinepool.yaml")
	out := integStandalone(t, nil, config, al2023).stdout
	integGolden(t, "examples/clusterctl/cluster-template-eks-imdsv2.yaml", out)
	raw, _ := os.ReadFile(al2023)
	objs := integParse(t, integClusterctlGenerate(t, out, "default", integTemplateVars(raw)))
	if n := integAssertIMDSv2(t, objs); n != 1 {
		t.Errorf("checked %d machine resources, want 1", n)
	}
	for _, o := range integByKind(objs, "AWSManagedMachinePool") {
		if got := o.str("spec", "awsLaunchTemplate", "ami", "eksLookupType"); got != "AmazonLinux2023" {
			t.Errorf("%s: eksLookupType = %q, want AmazonLinux2023 (the pool's OS family)", o.id(), got)
		}
	}
	if n := len(integByKind(objs, "NodeadmConfig")); n != 1 {
		t.Errorf("%d NodeadmConfig, want the template's one kept (auto keeps AL2023 bootstrap)", n)
	}
	if n := len(integByKind(objs, "Secret")); n != 0 {
		t.Errorf("%d Secrets, want none for an AL2023 pool", n)
	}

	// The AL2-shaped template: a bootstrap Secret whose script only takes its final form
	// when clusterctl substitutes the placeholders.
	al2 := filepath.Join(root, "examples", "clusterctl", "cluster-template-eks-al2.yaml")
	out = integStandalone(t, nil, config, al2).stdout
	integGolden(t, "examples/clusterctl/cluster-template-eks-al2-imdsv2.yaml", out)
	raw, _ = os.ReadFile(al2)
	objs = integParse(t, integClusterctlGenerate(t, out, "default", integTemplateVars(raw)))
	integAssertIMDSv2(t, objs)
	secrets := integByKind(objs, "Secret")
	if len(secrets) != 1 {
		t.Fatalf("%d Secrets after generate, want 1", len(secrets))
	}
	if got := secrets[0].str("stringData", "value"); got != integSeedScript {
		t.Errorf("Secret stringData.value after substitution = %q, want %q", got, integSeedScript)
	}
	integNormalizeSecrets(objs)
	integAssertSeedBootstrap(t, objs)
}

// integCleanup removes the binaries integBinary and integKustomize built. Nothing calls it
// yet: TestMain (tests/e2e_test.go) may call it after m.Run; until then the directory is left
// in the system temporary directory.
func integCleanup() {
	if integTools.dir != "" {
		os.RemoveAll(integTools.dir)
	}
}
