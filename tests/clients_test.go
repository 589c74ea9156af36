package tests

// Client tests (issue 13): every documented flow run under the real clients, as a CAPA user
// runs it, and the output read as CAPA would read it. helm v3 and v4 and clusterctl are
// built from the modules pinned in tools/ into bin/clients/ by `make clients`; kustomize is
// the one pinned in go.mod; kpt and podman are used where installed. `make test-clients`
// builds them and runs these tests; plain `go test` skips them (CAPA_IMDS_CLIENTS unset),
// because building the clients takes many minutes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

// clientsBin is the client name built by `make clients`.
func clientsBin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("CAPA_IMDS_CLIENTS")
	if dir == "" {
		t.Skip("CAPA_IMDS_CLIENTS is not set: `make test-clients` builds the real clients into bin/clients/ and runs this test")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: `make clients` builds it", err)
	}
	return p
}

// clientsEnv is a user's shell: capa-imds (and clusterctl-imds, the same binary) first on
// PATH, and HOME, helm's and clusterctl's state in fresh directories, so nothing from this
// machine's configuration or an earlier run takes part.
func clientsEnv(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	bin := filepath.Join(home, "bin")
	for _, name := range []string{"capa-imds", "clusterctl-imds"} {
		integCopyFile(t, integBinary(t), filepath.Join(bin, name), 0o755)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "HOME" || strings.HasPrefix(k, "HELM_") || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "CLUSTERCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		// clusterctl asks GitHub for a newer release on every run; offline that is a delay
		// and a warning, never what these tests are about.
		"CLUSTERCTL_DISABLE_VERSIONCHECK=true",
	)
}

// clientsMustRun runs a command in the repository root, as the docs' commands are written,
// and fails the test on a non-zero exit.
func clientsMustRun(t testing.TB, env []string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	res := integRun(t, integRoot(t), env, stdin, name, args...)
	if res.code != 0 {
		t.Fatalf("%s %s exited %d:\n%s", filepath.Base(name), strings.Join(args, " "), res.code, res.stderr)
	}
	return res.stdout
}

// clientsScript is a bootstrap Secret's script, from data (base64) or stringData.
func clientsScript(t testing.TB, s integObj) string {
	t.Helper()
	if v := s.str("stringData", "value"); v != "" {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(s.str("data", "value"))
	if err != nil {
		t.Errorf("%s: data.value is not base64: %v", s.id(), err)
	}
	return string(b)
}

// clientsEKSName is the EKS cluster name CAPA gives the only AWSManagedControlPlane when it
// is created in ns: its pinned spec.eksClusterName, which must then be what CAPA would have
// derived there (GenerateEKSName: <namespace>_<name>, for names this short).
func clientsEKSName(t testing.TB, objs []integObj, ns string) string {
	t.Helper()
	cps := integByKind(objs, "AWSManagedControlPlane")
	if len(cps) != 1 {
		t.Fatalf("%d AWSManagedControlPlanes, want 1", len(cps))
	}
	derived := ns + "_" + strings.ReplaceAll(cps[0].str("metadata", "name"), ".", "_")
	if pinned := cps[0].str("spec", "eksClusterName"); pinned != "" && pinned != derived {
		t.Errorf("%s: spec.eksClusterName pinned to %q; CAPA would derive %q in namespace %s", cps[0].id(), pinned, derived, ns)
	}
	return derived
}

// clientsCheckEKS reads a rendered EKS cluster with one managed node group as CAPA would in
// namespace ns: IMDSv2 on the launch template, and a node bootstrap that joins the cluster
// CAPA creates. al2 says the pool is Amazon Linux 2 (a bootstrap Secret running
// /etc/eks/bootstrap.sh); otherwise Amazon Linux 2023 (nodeadm, no Secret).
func clientsCheckEKS(t testing.TB, out []byte, ns string, al2 bool) {
	t.Helper()
	if bytes.Contains(out, []byte("config.kubernetes.io")) {
		t.Errorf("output mentions config.kubernetes.io:\n%s", out)
	}
	objs := integParse(t, out)
	integAssertNoOrchestratorAnnotations(t, objs)
	if n := integAssertIMDSv2(t, objs); n != 1 {
		t.Errorf("checked %d CAPA machine resources, want 1 (the AWSManagedMachinePool)", n)
	}
	for _, o := range objs {
		if got := o.str("metadata", "namespace"); got != "" && got != ns {
			t.Errorf("%s: namespace %q, want %s (or none: the client applies it to %s)", o.id(), got, ns, ns)
		}
	}
	eksName := clientsEKSName(t, objs, ns)
	pools := integByKind(objs, "MachinePool")
	if len(pools) != 1 {
		t.Fatalf("%d MachinePools, want 1", len(pools))
	}
	bootstrap := func(path ...string) string {
		return pools[0].str(append([]string{"spec", "template", "spec", "bootstrap"}, path...)...)
	}
	secrets := integByKind(objs, "Secret")
	lookup := integByKind(objs, "AWSManagedMachinePool")[0].str("spec", "awsLaunchTemplate", "ami", "eksLookupType")
	if !al2 {
		if lookup != "AmazonLinux2023" {
			t.Errorf("eksLookupType = %q, want AmazonLinux2023", lookup)
		}
		if len(secrets) != 0 {
			t.Errorf("%d Secrets for an Amazon Linux 2023 pool, want none (its images have no /etc/eks/bootstrap.sh)", len(secrets))
		}
		kind, name := bootstrap("configRef", "kind"), bootstrap("configRef", "name")
		found := false
		for _, c := range integByKind(objs, "NodeadmConfig") {
			found = found || c.str("metadata", "name") == name
		}
		if kind != "NodeadmConfig" || !found {
			t.Errorf("MachinePool bootstrap.configRef = %s %q with NodeadmConfig present %v; want a NodeadmConfig in the output", kind, name, found)
		}
		return
	}
	if lookup != "AmazonLinux" {
		t.Errorf("eksLookupType = %q, want AmazonLinux (the pool's Amazon Linux 2 family)", lookup)
	}
	if len(secrets) != 1 {
		t.Fatalf("%d Secrets, want the one bootstrap Secret", len(secrets))
	}
	s := secrets[0]
	if want := "#!/bin/bash -xe\n/etc/eks/bootstrap.sh " + eksName; clientsScript(t, s) != want {
		t.Errorf("%s: script %q, want %q: the node would not join the EKS cluster CAPA creates in %s", s.id(), clientsScript(t, s), want, ns)
	}
	if got := bootstrap("dataSecretName"); got != s.str("metadata", "name") {
		t.Errorf("MachinePool bootstrap.dataSecretName = %q, want the Secret %q", got, s.str("metadata", "name"))
	}
	if ref := pools[0].get("spec", "template", "spec", "bootstrap", "configRef"); ref != nil {
		t.Errorf("MachinePool bootstrap.configRef = %v still set: Cluster API would overwrite dataSecretName", ref)
	}
	if n := len(integByKind(objs, "EKSConfig")); n != 0 {
		t.Errorf("%d EKSConfigs left; nothing references them", n)
	}
}

// The chart example's two node groups: the default Amazon Linux 2023 one, and Amazon Linux 2
// (Kubernetes 1.32 at most).
var clientsChartVariants = []struct {
	name string
	set  []string
	al2  bool
}{
	{"al2023", nil, false},
	{"al2", []string{"--set", "nodeGroup.amiType=AL2_x86_64", "--set", "kubernetesVersion=v1.32.0"}, true},
}

// clientsHelmTemplate is docs/integrations.md's helm command for release capi-imds in ns.
func clientsHelmTemplate(ns string, set []string, extra ...string) []string {
	args := append([]string{"template", "capi-imds", "examples/helm/capa-eks", "--namespace", ns}, set...)
	args = append(args, "--post-renderer", "capa-imds",
		"--post-renderer-args", "examples/helm/imds.yaml", "--post-renderer-args", "-",
		"--post-renderer-args", "--namespace="+ns)
	for _, e := range extra {
		args = append(args, "--post-renderer-args", e)
	}
	return args
}

// TestClientsHelm3 runs helm 3's --post-renderer with the function binary on PATH.
func TestClientsHelm3(t *testing.T) {
	t.Parallel()
	helm := clientsBin(t, "helm3")
	env := clientsEnv(t)
	for _, v := range clientsChartVariants {
		t.Run(v.name, func(t *testing.T) {
			out := clientsMustRun(t, env, nil, helm, clientsHelmTemplate("team-a", v.set)...)
			clientsCheckEKS(t, out, "team-a", v.al2)
		})
	}
	// Helm 3 shows the post-renderer's stderr when it fails.
	args := clientsHelmTemplate("team-a", nil)
	args[slicesIndex(args, "examples/helm/imds.yaml")] = "examples/helm/missing.yaml"
	res := integRun(t, integRoot(t), env, nil, helm, args...)
	if res.code == 0 || !bytes.Contains(res.stderr, []byte("capa-imds: error: open examples/helm/missing.yaml")) {
		t.Errorf("helm 3 with a missing config: exit %d, stderr %q; want a failure showing capa-imds's message", res.code, res.stderr)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	panic(v + " not in " + strings.Join(s, " "))
}

// TestClientsHelm4Plugin installs helm-plugin/ with helm 4 and post-renders through it.
func TestClientsHelm4Plugin(t *testing.T) {
	t.Parallel()
	helm := clientsBin(t, "helm4")
	env := clientsEnv(t)
	clientsMustRun(t, env, nil, helm, "plugin", "install", "./helm-plugin")
	list := clientsMustRun(t, env, nil, helm, "plugin", "list")
	if !bytes.Contains(list, []byte("capa-imds")) || !bytes.Contains(list, []byte("postrenderer/v1")) {
		t.Errorf("helm plugin list does not show capa-imds as a postrenderer/v1 plugin:\n%s", list)
	}
	for _, v := range clientsChartVariants {
		t.Run(v.name, func(t *testing.T) {
			out := clientsMustRun(t, env, nil, helm, clientsHelmTemplate("team-a", v.set)...)
			clientsCheckEKS(t, out, "team-a", v.al2)
		})
	}

	// Helm 4 drops the plugin's stderr: a failure shows only that the plugin failed. The
	// function's message survives in the --report file.
	report := filepath.Join(t.TempDir(), "capa-imds.log")
	args := clientsHelmTemplate("team-a", nil, "--report="+report)
	args[slicesIndex(args, "examples/helm/imds.yaml")] = "examples/helm/missing.yaml"
	res := integRun(t, integRoot(t), env, nil, helm, args...)
	if res.code == 0 || !bytes.Contains(res.stderr, []byte(`plugin "capa-imds" exited with error`)) {
		t.Errorf("helm 4 with a missing config: exit %d, stderr %q; want the plugin's failure", res.code, res.stderr)
	}
	if bytes.Contains(res.stderr, []byte("missing.yaml")) {
		t.Errorf("helm 4 now shows the plugin's stderr (%q): docs/integrations.md says it does not", res.stderr)
	}
	got, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(got, []byte("capa-imds: error: open examples/helm/missing.yaml")) {
		t.Errorf("--report file: %q, %v; want capa-imds's error message", got, err)
	}
}

// clientsClusterctlGenerate is the offline `clusterctl generate cluster --from` of the docs.
func clientsClusterctlGenerate(t testing.TB, env []string, template, ns string) []byte {
	t.Helper()
	return clientsMustRun(t, append(env, "AWS_REGION=eu-west-1", "AWS_SSH_KEY_NAME=default"), nil,
		clientsBin(t, "clusterctl"), "generate", "cluster", "capi-imds", "--from", template,
		"--kubernetes-version", "v1.31.0", "--worker-machine-count", "2", "--target-namespace", ns)
}

// TestClientsClusterctl runs the clusterctl recipes with the real clusterctl, offline (no
// kubeconfig): `clusterctl imds` finds clusterctl-imds on PATH.
func TestClientsClusterctl(t *testing.T) {
	t.Parallel()
	clusterctl := clientsBin(t, "clusterctl")
	env := clientsEnv(t)
	const ns = "team-a"

	// Generate first, then the plugin on stdin and on a file.
	generated := clientsClusterctlGenerate(t, env, "examples/clusterctl/cluster-template-eks-al2.yaml", ns)
	piped := clientsMustRun(t, env, generated, clusterctl, "imds", "examples/clusterctl/imds.yaml", "-")
	clientsCheckEKS(t, piped, ns, true)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, generated, 0o644); err != nil {
		t.Fatal(err)
	}
	if fromFile := clientsMustRun(t, env, nil, clusterctl, "imds", "examples/clusterctl/imds.yaml", file); !bytes.Equal(fromFile, piped) {
		t.Errorf("clusterctl imds on a file and on stdin differ:\n%s\n---\n%s", fromFile, piped)
	}

	// The flavor made once from the raw template, generated into the namespace.
	flavor := clientsClusterctlGenerate(t, env, "examples/clusterctl/cluster-template-eks-al2-imdsv2.yaml", ns)
	clientsCheckEKS(t, flavor, ns, true)
	a, b := integParse(t, piped), integParse(t, flavor)
	integNormalizeSecrets(a)
	integNormalizeSecrets(b)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("generate|clusterctl imds and the flavor disagree (-plugin +flavor):\n%s", diff)
	}

	// CAPA v2.13's stock EKS flavor is Amazon Linux 2023: the NodeadmConfig stays.
	capaDir, _ := integCAPATemplates(t)
	stock := clientsClusterctlGenerate(t, env, filepath.Join(capaDir, "cluster-template-eks-managedmachinepool.yaml"), ns)
	clientsCheckEKS(t, clientsMustRun(t, env, stock, clusterctl, "imds", "examples/clusterctl/imds.yaml", "-"), ns, false)
}

// TestClientsMakeInstall checks `make install` puts both names on PATH, and that clusterctl
// runs the installed plugin.
func TestClientsMakeInstall(t *testing.T) {
	t.Parallel()
	clusterctl := clientsBin(t, "clusterctl")
	prefix := t.TempDir()
	clientsMustRun(t, os.Environ(), nil, "make", "install", "PREFIX="+prefix)
	env := []string{"PATH=" + filepath.Join(prefix, "bin") + ":/usr/bin:/bin", "HOME=" + t.TempDir(), "CLUSTERCTL_DISABLE_VERSIONCHECK=true"}
	for _, args := range [][]string{{"capa-imds", "--version"}, {clusterctl, "imds", "--version"}} {
		name := args[0]
		if !filepath.IsAbs(name) {
			p, err := exec.LookPath(filepath.Join(prefix, "bin", name))
			if err != nil {
				t.Fatal(err)
			}
			name = p
		}
		if out := clientsMustRun(t, env, nil, name, args[1:]...); !bytes.HasPrefix(out, []byte("capa-imds ")) {
			t.Errorf("%v: %q, want the capa-imds version", args, out)
		}
	}
}

// The image reference the examples, krmfunction.yaml and the docs use.
const clientsImage = "ghcr.io/capa-imds/capa-imds:v0.1.0"

// clientsPodman builds the image with `make image-local` and returns a directory holding
// `docker` and `podman` stand-ins: podman with the flags this kernel needs (crun fails on
// its hybrid cgroups, podman's default ulimits are refused).
func clientsPodman(t *testing.T) string {
	t.Helper()
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (apt-get install -y podman runc; .ci/run does): the container image tests need it")
	}
	if _, err := os.Stat("/usr/sbin/runc"); err != nil {
		t.Skip("runc is not installed at /usr/sbin/runc (apt-get install -y runc): podman's default crun fails on these machines")
	}
	clientsMustRun(t, os.Environ(), nil, "make", "image-local", "IMAGE="+clientsImage)
	shim := "#!/bin/sh\nflags='--runtime /usr/sbin/runc --cgroup-manager cgroupfs'\n" +
		"if [ \"$1\" = run ]; then shift; exec " + podman + " $flags run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \"$@\"; fi\n" +
		"exec " + podman + " $flags \"$@\"\n"
	dir := t.TempDir()
	for _, name := range []string{"docker", "podman"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(shim), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestClientsImage builds the image from the static binary and runs it the three ways it
// is documented: by hand, as kustomize's container function (kustomize runs `docker run
// --network none --user nobody ...`), and as a kpt image function (KPT_FN_RUNTIME=podman).
// Not parallel: `make image-local` rebuilds bin/capa-imds, as `make install` does.
func TestClientsImage(t *testing.T) {
	kustomize := clientsBin(t, "kustomize")
	shims := clientsPodman(t)
	// The later PATH wins: the stand-ins come before the real docker client (no engine here).
	env := append(clientsEnv(t), "PATH="+shims+string(os.PathListSeparator)+os.Getenv("PATH"))

	inspect := clientsMustRun(t, env, nil, filepath.Join(shims, "podman"), "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}}", clientsImage)
	if got := strings.TrimSpace(string(inspect)); got != `65532:65532 ["/capa-imds"]` {
		t.Errorf("image user and entrypoint %s, want the Dockerfile's 65532:65532 [\"/capa-imds\"]", got)
	}
	version := clientsMustRun(t, env, nil, filepath.Join(shims, "docker"), "run", "--rm", "--network", "none", "--user", "nobody", clientsImage, "--version")
	if !bytes.HasPrefix(version, []byte("capa-imds ")) {
		t.Errorf("docker run ... --version: %q", version)
	}

	// kustomize's container path renders what the exec example renders.
	work := integExampleTree(t)
	out := clientsMustRun(t, env, nil, kustomize, "build", "--enable-alpha-plugins", filepath.Join(work, "examples", "kustomize", "container"))
	integCompareFile(t, "examples/kustomize/exec/expected.yaml", out)
	objs := integParse(t, out)
	integAssertIMDSv2(t, objs)
	integAssertSeedBootstrap(t, objs)

	// kpt: the configpath package in its image variant, as its README shows it: the exec
	// entry replaced by the image. The result is the exec render's.
	kpt, err := exec.LookPath("kpt")
	if err != nil {
		t.Skip("kpt is not installed: the kpt image function test needs it")
	}
	dir, _ := integKptPackageCopy(t, "capa-imds-configpath")
	kptfile := filepath.Join(dir, "Kptfile")
	data, err := os.ReadFile(kptfile)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(integRoot(t), "examples", "kpt", "capa-imds-configpath", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "    - image: "+clientsImage+"\n      configPath: fn-config.yaml\n") {
		t.Fatalf("the README's image variant does not name %s", clientsImage)
	}
	variant := strings.Replace(string(data), "    - exec: capa-imds\n", "    - image: "+clientsImage+"\n", 1)
	if variant == string(data) {
		t.Fatalf("%s: no exec entry to replace:\n%s", kptfile, data)
	}
	if err := os.WriteFile(kptfile, []byte(variant), 0o644); err != nil {
		t.Fatal(err)
	}
	integGit(t, dir, "commit", "-q", "-am", "the image variant")
	res := integRun(t, dir, append(env, "KPT_FN_RUNTIME=podman"), nil, kpt, "fn", "render", dir)
	if res.code != 0 || !bytes.Contains(append(res.stdout, res.stderr...), []byte(`[PASS] "`+clientsImage+`"`)) {
		t.Fatalf("KPT_FN_RUNTIME=podman kpt fn render: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	want, err := os.ReadFile(filepath.Join(integRoot(t), "examples", "kpt", "capa-imds-configpath", ".expected", "diff.patch"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(integKptDiff(t, dir))); diff != "" {
		t.Errorf("the image render differs from .expected/diff.patch (-expected +image):\n%s", diff)
	}
}

// clientsEnabled skips where `make test-clients` did not start the test: these tests build
// release binaries for every platform, which plain `go test` should not wait for.
func clientsEnabled(t testing.TB) {
	t.Helper()
	if os.Getenv("CAPA_IMDS_CLIENTS") == "" {
		t.Skip("CAPA_IMDS_CLIENTS is not set: `make test-clients` runs this test")
	}
}

// clientsRelease is `make release VERSION=v0.1.0`, once per test binary, laid out as the
// GitHub release download URL is: <base>/v0.1.0/<asset>.
var clientsRelease struct {
	once sync.Once
	base string
	err  error
}

func clientsReleaseBase(t *testing.T) string {
	t.Helper()
	clientsRelease.once.Do(func() {
		res := integRun(t, integRoot(t), os.Environ(), nil, "make", "release", "VERSION=v0.1.0")
		if res.code != 0 {
			clientsRelease.err = fmt.Errorf("make release VERSION=v0.1.0 exited %d:\n%s", res.code, res.stderr)
			return
		}
		base, err := os.MkdirTemp("", "capa-imds-release-")
		if err == nil {
			err = os.Symlink(filepath.Join(integRoot(t), "dist"), filepath.Join(base, "v0.1.0"))
		}
		clientsRelease.base, clientsRelease.err = base, err
	})
	if clientsRelease.err != nil {
		t.Fatal(clientsRelease.err)
	}
	return clientsRelease.base
}

// TestClientsRelease checks what `make release` puts in dist/: every asset the docs, the
// action and krmfunction.yaml name, with SHA256SUMS and krmfunction.yaml's sha256 right.
func TestClientsRelease(t *testing.T) {
	clientsEnabled(t)
	dist := filepath.Join(clientsReleaseBase(t), "v0.1.0")
	sums := map[string]string{}
	data, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		sum, name, _ := strings.Cut(l, "  ")
		sums[name] = sum
	}
	want := []string{"capa-imds-helm-plugin.tar.gz"}
	for _, p := range strings.Fields(integMakeVar(t, "PLATFORMS")) {
		p = strings.ReplaceAll(p, "/", "_")
		want = append(want, "capa-imds_"+p, "clusterctl-imds_"+p)
	}
	for _, name := range want {
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Errorf("release asset %s: %v", name, err)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); sums[name] != got {
			t.Errorf("SHA256SUMS has %q for %s, the file's sum is %s", sums[name], name, got)
		}
	}
	if len(sums) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d (%v)", len(sums), len(want), want)
	}
	var def struct {
		Spec struct {
			Versions []struct {
				Runtime struct {
					Exec struct {
						Platforms []struct{ OS, Arch, URI, SHA256 string }
					}
				}
			}
		}
	}
	data, err = os.ReadFile(filepath.Join(dist, "krmfunction.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(data, &def); err != nil || len(def.Spec.Versions) != 1 {
		t.Fatalf("dist/krmfunction.yaml: %v", err)
	}
	for _, p := range def.Spec.Versions[0].Runtime.Exec.Platforms {
		asset := "capa-imds_" + p.OS + "_" + p.Arch
		if p.SHA256 == "" || p.SHA256 != sums[asset] || !strings.HasSuffix(p.URI, "/v0.1.0/"+asset) {
			t.Errorf("dist/krmfunction.yaml %s/%s: uri %s sha256 %q, want .../v0.1.0/%s with sha256 %q", p.OS, p.Arch, p.URI, p.SHA256, asset, sums[asset])
		}
	}
	if out := clientsMustRun(t, nil, nil, filepath.Join(dist, "capa-imds_linux_amd64"), "--version"); string(out) != "capa-imds v0.1.0\n" {
		t.Errorf("release binary --version: %q, want the tag", out)
	}
	if res := integRun(t, integRoot(t), os.Environ(), nil, "make", "release", "VERSION=v0.1.0-3-gabcdef"); res.code == 0 ||
		!bytes.Contains(res.stdout, []byte("is not a release tag")) {
		t.Errorf("make release with a non-tag VERSION: exit %d, %s; want a refusal", res.code, res.stdout)
	}
}

// TestClientsInstallWithoutGo runs scripts/install.sh against the release (BASE_URL file://
// standing in for the GitHub release), the manual checksum command of the docs, and checks
// a tampered binary is refused.
func TestClientsInstallWithoutGo(t *testing.T) {
	clientsEnabled(t)
	base := clientsReleaseBase(t)
	bindir := filepath.Join(t.TempDir(), "bin")
	env := append(os.Environ(), "VERSION=v0.1.0", "BINDIR="+bindir, "BASE_URL=file://"+base)
	out := clientsMustRun(t, env, nil, "sh", "scripts/install.sh")
	if string(out) != "capa-imds v0.1.0\n" {
		t.Errorf("install.sh printed %q, want the installed version", out)
	}
	if l, err := os.Readlink(filepath.Join(bindir, "clusterctl-imds")); err != nil || l != "capa-imds" {
		t.Errorf("clusterctl-imds: %q, %v; want a link to capa-imds", l, err)
	}

	// By hand: the asset and SHA256SUMS side by side, then the docs' check.
	manual := t.TempDir()
	for _, f := range []string{"capa-imds_linux_amd64", "SHA256SUMS"} {
		integCopyFile(t, filepath.Join(base, "v0.1.0", f), filepath.Join(manual, f), 0o644)
	}
	if res := integRun(t, manual, os.Environ(), nil, "sha256sum", "--ignore-missing", "-c", "SHA256SUMS"); res.code != 0 ||
		!bytes.Contains(res.stdout, []byte("capa-imds_linux_amd64: OK")) {
		t.Errorf("sha256sum --ignore-missing -c SHA256SUMS: exit %d %s%s", res.code, res.stdout, res.stderr)
	}

	tampered := filepath.Join(t.TempDir(), "v0.1.0")
	integCopyTree(t, filepath.Join(base, "v0.1.0")+"/", tampered)
	f, err := os.OpenFile(filepath.Join(tampered, "capa-imds_linux_amd64"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	env = append(os.Environ(), "VERSION=v0.1.0", "BINDIR="+t.TempDir(), "BASE_URL=file://"+filepath.Dir(tampered))
	if res := integRun(t, integRoot(t), env, nil, "sh", "scripts/install.sh"); res.code == 0 || !bytes.Contains(res.stderr, []byte("checksum mismatch")) {
		t.Errorf("install.sh with a tampered binary: exit %d, stderr %q; want a checksum failure", res.code, res.stderr)
	}
}

// TestClientsHelm4PluginFromRelease installs the plugin the way the docs say for a release:
// the tarball unpacked, then `helm plugin install` on the directory.
func TestClientsHelm4PluginFromRelease(t *testing.T) {
	helm := clientsBin(t, "helm4")
	base := clientsReleaseBase(t)
	env := clientsEnv(t)
	dir := t.TempDir()
	clientsMustRun(t, env, nil, "tar", "-C", dir, "-xzf", filepath.Join(base, "v0.1.0", "capa-imds-helm-plugin.tar.gz"))
	clientsMustRun(t, env, nil, helm, "plugin", "install", filepath.Join(dir, "capa-imds"))
	out := clientsMustRun(t, env, nil, helm, clientsHelmTemplate("team-a", clientsChartVariants[1].set)...)
	clientsCheckEKS(t, out, "team-a", true)
}

// clientsActionStep is one step of action.yml.
type clientsActionStep struct {
	Name string
	If   string `json:"if"`
	Uses string
	Run  string
	Env  map[string]string
	With map[string]string
}

// TestClientsGitHubAction runs the composite action's own shell steps, as the runner would
// (bash, GITHUB_ACTION_PATH, GITHUB_PATH, RUNNER_TEMP, ${{ inputs.* }} substituted), on a
// non-compliant and a compliant render, and checks the SARIF log they leave for the upload.
func TestClientsGitHubAction(t *testing.T) {
	clientsEnabled(t)
	base := clientsReleaseBase(t)
	data, err := os.ReadFile(filepath.Join(integRoot(t), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Inputs map[string]struct{ Default string }
		Runs   struct {
			Using string
			Steps []clientsActionStep
		}
	}
	if err := sigsyaml.Unmarshal(data, &action); err != nil {
		t.Fatal(err)
	}
	if action.Runs.Using != "composite" || len(action.Runs.Steps) != 3 {
		t.Fatalf("action.yml: runs.using %q with %d steps, want a composite action of 3 steps", action.Runs.Using, len(action.Runs.Steps))
	}
	upload := action.Runs.Steps[2]
	if !strings.HasPrefix(upload.Uses, "github/codeql-action/upload-sarif@") || !strings.Contains(upload.If, "!cancelled()") ||
		upload.With["sarif_file"] != "${{ inputs.sarif }}" {
		t.Errorf("upload step %+v: want upload-sarif of inputs.sarif, also when the audit failed", upload)
	}

	for _, tc := range []struct {
		name, files string
		code        int
	}{
		{"non-compliant", "examples/kustomize/base/*.yaml", 1},
		{"compliant", "examples/kustomize/exec/expected.yaml", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			inputs := map[string]string{"config": "examples/kustomize/exec/imds.yaml", "files": tc.files,
				"sarif": filepath.Join(tmp, "capa-imds.sarif")}
			for k, v := range action.Inputs {
				if _, ok := inputs[k]; !ok {
					inputs[k] = v.Default
				}
			}
			ghPath := filepath.Join(tmp, "github_path")
			env := []string{"PATH=/usr/bin:/bin", "HOME=" + tmp, "BASE_URL=file://" + base,
				"GITHUB_ACTION_PATH=" + integRoot(t), "GITHUB_PATH=" + ghPath, "RUNNER_TEMP=" + tmp}
			expr := regexp.MustCompile(`\$\{\{ *(inputs|runner)\.([a-z]+) *\}\}`)
			for i, step := range action.Runs.Steps[:2] {
				stepEnv := append([]string(nil), env...)
				for k, v := range step.Env {
					stepEnv = append(stepEnv, k+"="+expr.ReplaceAllStringFunc(v, func(s string) string {
						m := expr.FindStringSubmatch(s)
						if m[1] == "runner" {
							return tmp
						}
						return inputs[m[2]]
					}))
				}
				// The runner prepends GITHUB_PATH entries to PATH for later steps.
				if p, err := os.ReadFile(ghPath); err == nil {
					stepEnv = append(stepEnv, "PATH="+strings.TrimSpace(string(p))+":/usr/bin:/bin")
				}
				res := integRun(t, integRoot(t), stepEnv, nil, "bash", "-e", "-c", step.Run)
				want := 0
				if i == 1 {
					want = tc.code
				}
				if res.code != want {
					t.Fatalf("step %q exited %d, want %d:\n%s%s", step.Name, res.code, want, res.stdout, res.stderr)
				}
			}
			report, err := os.ReadFile(inputs["sarif"])
			if err != nil {
				t.Fatal(err)
			}
			var log struct {
				Runs []struct {
					Results []struct {
						RuleID    string
						Locations []struct {
							PhysicalLocation struct {
								ArtifactLocation struct{ URI string }
								Region           struct{ StartLine int }
							}
						}
					}
				}
			}
			if err := json.Unmarshal(report, &log); err != nil || len(log.Runs) != 1 {
				t.Fatalf("SARIF log: %v\n%s", err, report)
			}
			results := log.Runs[0].Results
			if tc.code == 0 && len(results) != 0 {
				t.Errorf("compliant render: %d results, want none", len(results))
			}
			if tc.code != 0 {
				found := false
				for _, r := range results {
					l := r.Locations
					if r.RuleID == "imds-missing" && len(l) == 1 && l[0].PhysicalLocation.ArtifactLocation.URI == "examples/kustomize/base/cluster.yaml" &&
						l[0].PhysicalLocation.Region.StartLine > 0 {
						found = true
					}
				}
				if !found {
					t.Errorf("non-compliant render: no imds-missing result on a line of examples/kustomize/base/cluster.yaml:\n%s", report)
				}
			}
		})
	}
}

// TestClientsPreCommit runs the hook of .pre-commit-hooks.yaml with the real pre-commit
// (`pre-commit try-repo`, which reads the hook from this repository) on staged manifests.
func TestClientsPreCommit(t *testing.T) {
	clientsEnabled(t)
	preCommit, err := exec.LookPath("pre-commit")
	if err != nil {
		t.Skip("pre-commit is not installed (apt-get install -y pre-commit; .ci/run does)")
	}
	env := append(clientsEnv(t), "PRE_COMMIT_HOME="+t.TempDir())
	root := integRoot(t)
	for _, tc := range []struct {
		name, manifest string
		code           int
	}{
		{"non-compliant", "examples/kustomize/base/cluster.yaml", 1},
		{"compliant", "examples/kustomize/exec/expected.yaml", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			integGit(t, repo, "init", "-q")
			// The hook's default args name imds.yaml at the repository root.
			integCopyFile(t, filepath.Join(root, "examples", "kustomize", "exec", "imds.yaml"), filepath.Join(repo, "imds.yaml"), 0o644)
			integCopyFile(t, filepath.Join(root, tc.manifest), filepath.Join(repo, "clusters", "cluster.yaml"), 0o644)
			integGit(t, repo, "add", "-A")
			res := integRun(t, repo, env, nil, preCommit, "try-repo", root, "capa-imds-audit", "--files", "clusters/cluster.yaml")
			out := string(res.stdout) + string(res.stderr)
			if res.code != tc.code {
				t.Fatalf("pre-commit try-repo exited %d, want %d:\n%s", res.code, tc.code, out)
			}
			if tc.code != 0 && !strings.Contains(out, "clusters/cluster.yaml: AWSManagedMachinePool") {
				t.Errorf("pre-commit output does not name the finding:\n%s", out)
			}
		})
	}
}

// TestClientsHelmHooks pins how each helm version hands hooks to the post-renderer, with the
// chart's MachinePool made a post-install hook: Helm 3 post-renders hooks apart from the other
// manifests, so the function sees a node group without its MachinePool and refuses it; Helm 4
// post-renders them in one stream, and the bootstrap Secret comes out beside its MachinePool.
func TestClientsHelmHooks(t *testing.T) {
	helm3, helm4 := clientsBin(t, "helm3"), clientsBin(t, "helm4")
	env := clientsEnv(t)
	chart := filepath.Join(t.TempDir(), "capa-eks")
	integCopyTree(t, filepath.Join(integRoot(t), "examples", "helm", "capa-eks"), chart)
	tmpl := filepath.Join(chart, "templates", "cluster.yaml")
	data, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	const pool = "kind: MachinePool\nmetadata:\n  name: {{ .Release.Name }}-pool-0\n"
	if !bytes.Contains(data, []byte(pool)) {
		t.Fatalf("%s: no MachinePool to make a hook", tmpl)
	}
	data = bytes.Replace(data, []byte(pool), []byte(pool+"  annotations:\n    helm.sh/hook: post-install\n"), 1)
	if err := os.WriteFile(tmpl, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := clientsHelmTemplate("team-a", clientsChartVariants[1].set)
	args[slicesIndex(args, "examples/helm/capa-eks")] = chart

	res := integRun(t, integRoot(t), env, nil, helm3, args...)
	if res.code == 0 || !bytes.Contains(res.stderr, []byte("no MachinePool in the input references this pool")) {
		t.Errorf("helm 3 with a hook MachinePool: exit %d, stderr %q; want the function to refuse the node group seen without it", res.code, res.stderr)
	}

	clientsMustRun(t, env, nil, helm4, "plugin", "install", "./helm-plugin")
	out := clientsMustRun(t, env, nil, helm4, args...)
	clientsCheckEKS(t, out, "team-a", true)
}

// TestClientsKubectlKustomize pins docs/integrations.md's warning: kubectl's embedded
// kustomize has no --enable-exec, and with --enable-alpha-plugins alone it skips the exec
// function silently, printing the base unchanged with exit 0.
func TestClientsKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the kubectl kustomize check needs it")
	}
	work := integExampleTree(t)
	exampleDir := filepath.Join(work, "examples", "kustomize", "exec")
	res := integRun(t, work, os.Environ(), nil, kubectl, "kustomize", "--enable-alpha-plugins", exampleDir)
	if res.code != 0 {
		t.Fatalf("kubectl kustomize --enable-alpha-plugins exited %d:\n%s", res.code, res.stderr)
	}
	base := clientsMustRun(t, os.Environ(), nil, integKustomize(t), "build", filepath.Join(work, "examples", "kustomize", "base"))
	if !bytes.Equal(res.stdout, base) {
		t.Errorf("kubectl kustomize ran the function (output differs from the base): update docs/integrations.md\n%s", res.stdout)
	}
	res = integRun(t, work, os.Environ(), nil, kubectl, "kustomize", "--enable-alpha-plugins", "--enable-exec", exampleDir)
	if res.code == 0 || !bytes.Contains(res.stderr, []byte("unknown flag: --enable-exec")) {
		t.Errorf("kubectl kustomize --enable-exec: exit %d, stderr %q; want an unknown flag", res.code, res.stderr)
	}
}
