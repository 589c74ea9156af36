package tests

// Client tests (issue 13): every documented flow run under the real clients, as a CAPA user
// runs it, and the output read as CAPA would read it. helm v3 and v4 and clusterctl are
// built from the modules pinned in tools/ into bin/clients/ by `make clients`; kustomize is
// the one pinned in go.mod; kpt and podman are used where installed. `make test-clients`
// builds them and runs these tests; plain `go test` skips them (CAPA_IMDS_CLIENTS unset),
// because building the clients takes many minutes.

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

	// kpt: the configpath package with its image entry alone, as its README says to keep
	// the entry for the runtime you use. The result is the exec render's.
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
	before, rest, ok := strings.Cut(string(data), "    # Exec runtime")
	_, after, ok2 := strings.Cut(rest, "    # Container runtime")
	if !ok || !ok2 {
		t.Fatalf("%s: no exec entry followed by an image entry:\n%s", kptfile, data)
	}
	if err := os.WriteFile(kptfile, []byte(before+"    # Container runtime"+after), 0o644); err != nil {
		t.Fatal(err)
	}
	integGit(t, dir, "commit", "-q", "-am", "image entry only")
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
