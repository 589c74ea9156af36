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
