package fn

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// An EKS cluster as a helm chart renders it: no namespaces, helm -n supplies one.
const helmStyleEKS = `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: c1
spec:
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: c1-control-plane
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
metadata:
  name: c1-control-plane
spec:
  region: eu-west-1
  version: v1.31.0
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: c1-pool-0
spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      bootstrap:
        dataSecretName: ""
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
        name: c1-pool-0
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: c1-pool-0
spec:
  amiType: AL2_x86_64
`

// scriptAndPin reads the bootstrap script and the pinned EKS name from an output stream.
func scriptAndPin(t *testing.T, out string) (script, pinned string) {
	t.Helper()
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(out), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out)
	}
	for _, n := range nodes {
		switch n.GetKind() {
		case "Secret":
			v, _ := n.Pipe(yaml.Lookup("data", "value"))
			if v == nil {
				t.Fatalf("Secret without data.value:\n%s", n.MustString())
			}
			b, err := base64.StdEncoding.DecodeString(v.YNode().Value)
			if err != nil {
				t.Fatal(err)
			}
			script = string(b)
		case "AWSManagedControlPlane":
			if v, _ := n.Pipe(yaml.Lookup("spec", "eksClusterName")); v != nil {
				pinned = v.YNode().Value
			}
		}
	}
	return script, pinned
}

// The target namespace reaches the name every way; without it the run fails, naming them:
// a name pinned as if in "default" would give every namespace the manifests land in one
// EKS cluster, which CAPA adopts.
func TestStandaloneNamespace(t *testing.T) {
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": helmStyleEKS,
		"ns-config.yaml": cliConfig + "spec:\n  namespace: team-b\n"})
	cases := []struct {
		name       string
		args       []string
		wantName   string
		wantStderr []string
		noStderr   []string
	}{
		{"--namespace", []string{"--namespace", "team-a", p["config.yaml"], p["in.yaml"]}, "team-a_c1-control-plane",
			[]string{"added 1 (1 Secret)"}, []string{"no namespace"}},
		{"--namespace=", []string{"--namespace=team-a", p["config.yaml"], p["in.yaml"]}, "team-a_c1-control-plane", nil, []string{"no namespace"}},
		{"spec.namespace", []string{p["ns-config.yaml"], p["in.yaml"]}, "team-b_c1-control-plane", nil, []string{"no namespace"}},
		{"the flag wins over the config", []string{"--namespace", "team-a", p["ns-config.yaml"], p["in.yaml"]}, "team-a_c1-control-plane", nil, nil},
		{"CAPA_IMDS_NAMESPACE", []string{p["config.yaml"], p["in.yaml"]}, "team-c_c1-control-plane", nil, []string{"no namespace"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "CAPA_IMDS_NAMESPACE" {
				t.Setenv(namespaceEnv, "team-c")
			}
			got := runCLI(t, "", tc.args...)
			if got.code != 0 {
				t.Fatalf("exit %d:\n%s", got.code, got.stderr)
			}
			script, pinned := scriptAndPin(t, got.stdout)
			if want := "#!/bin/bash -xe\n/etc/eks/bootstrap.sh " + tc.wantName; script != want {
				t.Errorf("script %q, want %q", script, want)
			}
			if pinned != tc.wantName {
				t.Errorf("pinned eksClusterName %q, want %q: the script and CAPA's name must agree", pinned, tc.wantName)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
			for _, w := range tc.noStderr {
				if strings.Contains(got.stderr, w) {
					t.Errorf("stderr has %q:\n%s", w, got.stderr)
				}
			}
		})
	}
	t.Run("none: an error naming every way to give one, and no output", func(t *testing.T) {
		got := runCLI(t, "", p["config.yaml"], p["in.yaml"])
		if got.code != 1 || got.stdout != "" {
			t.Fatalf("exit %d, stdout %q, want 1 and none:\n%s", got.code, got.stdout, got.stderr)
		}
		for _, w := range []string{"error: ", "AWSManagedControlPlane c1-control-plane metadata.namespace: no namespace, and none configured",
			"spec.namespace in the IMDSConfig", "--namespace NS", "CAPA_IMDS_NAMESPACE", "ARGOCD_APP_NAMESPACE", "metadata.namespace",
			"spec.eksClusterName"} {
			if !strings.Contains(got.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
			}
		}
	})
	t.Run("a bad namespace is a usage error", func(t *testing.T) {
		got := runCLI(t, "", "--namespace", "Team_A", p["config.yaml"], p["in.yaml"])
		if got.code != exitUsage || got.stdout != "" || !strings.Contains(got.stderr, "not a namespace name") {
			t.Errorf("exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
		}
	})
}

// Argo CD's plugin and kustomize exec functions run the ResourceList mode: the flag works
// there too, and warnings reach stderr, the only thing those tools show.
func TestResourceListNamespaceAndWarnings(t *testing.T) {
	var items strings.Builder
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(helmStyleEKS), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := (&kio.ByteWriter{Writer: &buf, WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion,
		FunctionConfig: yaml.MustParse(cliConfig)}).Write(nodes); err != nil {
		t.Fatal(err)
	}
	items.WriteString(buf.String())

	got := runCLI(t, items.String())
	if got.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", got.code, got.stderr)
	}
	if !strings.Contains(got.stderr, "error: AWSManagedControlPlane c1-control-plane metadata.namespace: no namespace, and none configured") {
		t.Errorf("the unknown-namespace error is not on stderr:\n%s", got.stderr)
	}
	if strings.Contains(got.stdout, "kind: Secret") {
		t.Errorf("a failed run emitted items:\n%s", got.stdout)
	}
	got = runCLI(t, items.String(), "--namespace", "team-a")
	if got.code != 0 {
		t.Fatalf("exit %d:\n%s", got.code, got.stderr)
	}
	if strings.Contains(got.stderr, "no namespace") || !strings.Contains(got.stdout, "eksClusterName: team-a_c1-control-plane") {
		t.Errorf("--namespace did not reach the derivation; stderr:\n%s\nstdout:\n%s", got.stderr, got.stdout)
	}
	if got := runCLI(t, items.String(), "--output", "x.yaml"); got.code != exitUsage {
		t.Errorf("--output in ResourceList mode: exit %d, want %d", got.code, exitUsage)
	}
}

func TestStandaloneOutputFile(t *testing.T) {
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": helmStyleEKS,
		"bad.yaml": helmStyleEKS + "---\napiVersion: infrastructure.cluster.x-k8s.io/v1beta1\nkind: AWSMachine\nmetadata:\n  name: old\n"})
	t.Run("in place: the file is the input and the output", func(t *testing.T) {
		if err := os.Chmod(p["in.yaml"], 0o600); err != nil {
			t.Fatal(err)
		}
		got := runCLI(t, "", "--namespace", "team-a", "--output", p["in.yaml"], p["config.yaml"], p["in.yaml"])
		if got.code != 0 || got.stdout != "" {
			t.Fatalf("exit %d, stdout %q:\n%s", got.code, got.stdout, got.stderr)
		}
		b, err := os.ReadFile(p["in.yaml"])
		if err != nil {
			t.Fatal(err)
		}
		if script, _ := scriptAndPin(t, string(b)); !strings.HasSuffix(script, "team-a_c1-control-plane") {
			t.Errorf("the file was not rewritten:\n%s", b)
		}
		if fi, _ := os.Stat(p["in.yaml"]); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want the file's own 0600", fi.Mode().Perm())
		}
		entries, _ := os.ReadDir(filepath.Dir(p["in.yaml"]))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".capa-imds-") {
				t.Errorf("temporary file left behind: %s", e.Name())
			}
		}
	})
	t.Run("on failure the file is left as it was", func(t *testing.T) {
		before, _ := os.ReadFile(p["bad.yaml"])
		got := runCLI(t, "", "--output", p["bad.yaml"], p["config.yaml"], p["bad.yaml"])
		if got.code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", got.code, got.stderr)
		}
		after, _ := os.ReadFile(p["bad.yaml"])
		if string(after) != string(before) {
			t.Errorf("the file changed on failure")
		}
	})
}

func TestPolicyCommand(t *testing.T) {
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "bad.yaml": cliConfig + "spec:\n  mode: sometimes\n"})
	got := runCLI(t, "", "policy", p["config.yaml"])
	if got.code != 0 || got.stderr != "" {
		t.Fatalf("exit %d:\n%s", got.code, got.stderr)
	}
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(got.stdout), OmitReaderAnnotations: true}).Read()
	if err != nil || len(nodes) != 2 || nodes[0].GetKind() != "ValidatingAdmissionPolicy" || nodes[1].GetKind() != "ValidatingAdmissionPolicyBinding" {
		t.Fatalf("want the policy and its binding, got %d documents (%v):\n%s", len(nodes), err, got.stdout)
	}
	if !strings.Contains(got.stdout, "validationActions: [Deny]") || strings.Contains(got.stdout, "fn.capa-imds.dev/skip") {
		t.Errorf("default: Deny, and no skip:\n%s", got.stdout)
	}
	got = runCLI(t, "", "policy", "--actions", "Warn,Audit", "--allow-skip", p["config.yaml"])
	if got.code != 0 || !strings.Contains(got.stdout, "validationActions: [Warn, Audit]") || !strings.Contains(got.stdout, "fn.capa-imds.dev/skip") {
		t.Errorf("dry run with skip: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	got = runCLI(t, "", "policy", "--mutate", p["config.yaml"])
	if got.code != 0 || strings.Count(got.stdout, "kind: MutatingAdmissionPolicy\n") != 4 ||
		strings.Count(got.stdout, "kind: MutatingAdmissionPolicyBinding\n") != 4 || strings.Contains(got.stdout, "ValidatingAdmissionPolicy") ||
		!strings.Contains(got.stdout, "operations: [CREATE]\n") || strings.Contains(got.stdout, "UPDATE") {
		t.Errorf("--mutate: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	if got := runCLI(t, "", "policy", "--help"); got.code != 0 || !strings.Contains(got.stdout, "ValidatingAdmissionPolicy") ||
		!strings.Contains(got.stdout, "--allow-skip") {
		t.Errorf("policy --help: exit %d\n%s", got.code, got.stdout)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy"}, exitUsage, "policy takes one CONFIG"},
		{[]string{"policy", "--actions", "Block", p["config.yaml"]}, exitUsage, `"Block" is not allowed`},
		{[]string{"policy", "--actions", "Deny,Warn", p["config.yaml"]}, exitUsage, "Deny and Warn cannot be combined"},
		{[]string{"policy", "--mutate", "--actions", "Deny", p["config.yaml"]}, exitUsage, "--mutate takes none"},
		{[]string{"policy", p["bad.yaml"]}, exitError, `"sometimes" is not allowed`},
	} {
		got := runCLI(t, "", tc.args...)
		if got.code != tc.code || got.stdout != "" || !strings.Contains(got.stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, got.code, got.stdout, got.stderr)
		}
	}
}
