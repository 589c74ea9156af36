package tests

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Where the function runs relative to kustomize's namespace, namePrefix and nameSuffix
// decides whether the nodes of an EKS managed node group join: kustomize renames before
// transformers run and fixes references only at the end of the build, and only those a
// nameReference configuration names. Each layout is built with the real kustomize pinned
// in go.mod.

// layersBootstrap reads what decides whether the nodes join: the EKS name the bootstrap
// script names, the name pinned into the control plane, and the Secret the MachinePool
// points at.
func layersBootstrap(t *testing.T, out []byte) (script, pinned, dataSecretName, secretName string) {
	t.Helper()
	objs := integParse(t, out)
	for _, s := range integByKind(objs, "Secret") {
		b, err := base64.StdEncoding.DecodeString(s.str("data", "value"))
		if err != nil {
			t.Fatalf("Secret %s: %v", s.id(), err)
		}
		script, secretName = strings.TrimPrefix(string(b), "#!/bin/bash -xe\n/etc/eks/bootstrap.sh "), s.str("metadata", "name")
	}
	for _, cp := range integByKind(objs, "AWSManagedControlPlane") {
		pinned = cp.str("spec", "eksClusterName")
	}
	for _, mp := range integByKind(objs, "MachinePool") {
		dataSecretName = mp.str("spec", "template", "spec", "bootstrap", "dataSecretName")
	}
	return script, pinned, dataSecretName, secretName
}

func layersBuild(t *testing.T, dir string) []byte {
	t.Helper()
	res := integRun(t, integRoot(t), os.Environ(), nil, integKustomize(t), "build", "--enable-alpha-plugins", "--enable-exec", dir)
	if res.code != 0 {
		t.Fatalf("kustomize build %s exited %d:\n%s", dir, res.code, res.stderr)
	}
	return res.stdout
}

func layersAudit(t *testing.T, rendered []byte) integResult {
	t.Helper()
	return integRun(t, integRoot(t), os.Environ(), rendered, integBinary(t), "--audit",
		filepath.Join(integRoot(t), "examples", "kustomize", "exec", "imds.yaml"), "-")
}

// The documented layout: the function beside namespace and namePrefix, with the
// nameReference configuration. Everything agrees with what CAPA derives in team-a, and
// the function's audit passes the build.
func TestIntegKustomizeOverlayLayout(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	out := layersBuild(t, filepath.Join(work, "examples", "kustomize", "overlay"))
	integGolden(t, "examples/kustomize/overlay/expected.yaml", out)
	script, pinned, dataSecretName, secretName := layersBootstrap(t, out)
	const want = "team-a_prod-capi-imds-control-plane" // GenerateEKSName(prod-capi-imds-control-plane, team-a)
	if script != want || pinned != want {
		t.Errorf("script names %q, control plane pinned %q; want both %q", script, pinned, want)
	}
	if dataSecretName != secretName || secretName == "" {
		t.Errorf("MachinePool dataSecretName %q, Secret %q: they must match", dataSecretName, secretName)
	}
	for _, mp := range integByKind(integParse(t, out), "MachinePool") {
		if got := mp.str("spec", "template", "spec", "infrastructureRef", "name"); got != "prod-capi-imds-pool-0" {
			t.Errorf("MachinePool's infrastructureRef %q, want the renamed pool", got)
		}
	}
	if res := layersAudit(t, out); res.code != 0 {
		t.Errorf("audit of the documented layout failed:\n%s", res.stderr)
	}
}

// The function beside namespace and namePrefix, but no nameReference configuration: the
// function still finds the pool's MachinePool through kustomize's previous names, and the
// script and the pinned name agree; kustomize leaves the references stale, and audit of
// the build says so instead of passing a cluster whose pool has no MachinePool.
func TestIntegKustomizeRenamedWithoutNameReference(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	dir := filepath.Join(work, "examples", "kustomize", "overlay")
	k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k = []byte(strings.Replace(string(k), "configurations:\n  - capi-namereference.yaml\n", "", 1))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), k, 0o644); err != nil {
		t.Fatal(err)
	}
	out := layersBuild(t, dir)
	script, pinned, dataSecretName, secretName := layersBootstrap(t, out)
	if script != "team-a_prod-capi-imds-control-plane" || pinned != script {
		t.Errorf("script names %q, pinned %q; want both team-a_prod-capi-imds-control-plane", script, pinned)
	}
	if dataSecretName == "" || dataSecretName != secretName {
		t.Errorf("the renamed pool's MachinePool got no Secret: dataSecretName %q, Secret %q", dataSecretName, secretName)
	}
	res := layersAudit(t, out)
	if res.code == 0 || !strings.Contains(string(res.stderr), "no MachinePool in the input references this pool") {
		t.Errorf("audit passed a build whose MachinePool points at a pool that no longer exists (exit %d):\n%s", res.code, res.stderr)
	}
}

// The function in a base, namespace and namePrefix in an overlay above it: the base's
// Secret and pool are renamed after the function ran, and the MachinePool is left pointing
// at the old names. Audit of the build fails it.
func TestIntegKustomizeFunctionInBase(t *testing.T) {
	t.Parallel()
	work := integExampleTree(t)
	dir := filepath.Join(work, "examples", "kustomize", "over-a-base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := "namespace: team-a\nnamePrefix: prod-\nresources:\n  - ../exec\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out := layersBuild(t, dir)
	script, pinned, dataSecretName, secretName := layersBootstrap(t, out)
	// The pin keeps script and cluster name together even here: EKS creates the cluster
	// under the base's name.
	if script != "default_capi-imds-control-plane" || pinned != script {
		t.Errorf("script names %q, pinned %q; want both the base's default_capi-imds-control-plane", script, pinned)
	}
	if dataSecretName == secretName {
		t.Fatalf("dataSecretName %q matches the Secret: kustomize changed, the test no longer shows the layering problem", dataSecretName)
	}
	res := layersAudit(t, out)
	if res.code == 0 || !strings.Contains(string(res.stderr), "no MachinePool in the input references this pool") {
		t.Errorf("audit passed a build whose MachinePool names a pool and a Secret that were renamed away (exit %d):\n%s", res.code, res.stderr)
	}
}

// A kustomization above two overlays of one base: two namePrefixes in one namespace, or
// one namePrefix in two namespaces, with the function in each overlay or once above them.
// Above the overlays the function sees two copies of every object, each still naming the
// base's names (kustomize fixes references at the end of the whole build): each copy's
// references mean the copy renamed the same way, so each pool finds its own MachinePool
// and control plane, and the audit of the build passes.
func TestIntegKustomizeTwoOverlaysOfOneBase(t *testing.T) {
	t.Parallel()
	type overlay struct{ dir, namespace, prefix string }
	cases := []struct {
		name     string
		overlays []overlay
		fnOnTop  bool // the function in the kustomization above the overlays, not in each
	}{
		{"two prefixes, function in each overlay", []overlay{{"two-a", "team-a", "a-"}, {"two-b", "team-a", "b-"}}, false},
		{"two prefixes, function above", []overlay{{"two-a", "team-a", "a-"}, {"two-b", "team-a", "b-"}}, true},
		{"two namespaces, function in each overlay", []overlay{{"two-a", "team-a", "prod-"}, {"two-b", "team-b", "prod-"}}, false},
		{"two namespaces, function above", []overlay{{"two-a", "team-a", "prod-"}, {"two-b", "team-b", "prod-"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			work := integExampleTree(t)
			kdir := filepath.Join(work, "examples", "kustomize")
			write := func(dir, name, text string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Join(kdir, dir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(kdir, dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			imds, err := os.ReadFile(filepath.Join(kdir, "overlay", "imds.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			nameRef, err := os.ReadFile(filepath.Join(kdir, "overlay", "capi-namereference.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			top := "resources:\n"
			for _, o := range c.overlays {
				k := "namespace: " + o.namespace + "\nnamePrefix: " + o.prefix + "\nresources:\n  - ../base\nconfigurations:\n  - capi-namereference.yaml\n"
				if !c.fnOnTop {
					k += "transformers:\n  - imds.yaml\n"
					write(o.dir, "imds.yaml", string(imds))
				}
				write(o.dir, "kustomization.yaml", k)
				write(o.dir, "capi-namereference.yaml", string(nameRef))
				top += "  - ../" + o.dir + "\n"
			}
			if c.fnOnTop {
				top += "transformers:\n  - imds.yaml\n"
				write("two", "imds.yaml", string(imds))
			}
			write("two", "kustomization.yaml", top)
			out := layersBuild(t, filepath.Join(kdir, "two"))

			objs := integParse(t, out)
			find := func(kind, ns, name string) integObj {
				for _, o := range integByKind(objs, kind) {
					if o.str("metadata", "namespace") == ns && o.str("metadata", "name") == name {
						return o
					}
				}
				return nil
			}
			for _, o := range c.overlays {
				pool := o.prefix + "capi-imds-pool-0"
				var mp integObj
				for _, m := range integByKind(objs, "MachinePool") {
					if m.str("metadata", "namespace") == o.namespace && m.str("spec", "template", "spec", "infrastructureRef", "name") == pool {
						mp = m
					}
				}
				if mp == nil {
					t.Errorf("no MachinePool in %s references the pool %s", o.namespace, pool)
					continue
				}
				cluster := find("Cluster", o.namespace, mp.str("spec", "clusterName"))
				if cluster == nil || cluster.str("metadata", "name") != o.prefix+"capi-imds" {
					t.Errorf("MachinePool %s: clusterName %q, want %scapi-imds", mp.id(), mp.str("spec", "clusterName"), o.prefix)
					continue
				}
				cpName := cluster.str("spec", "controlPlaneRef", "name")
				cp := find("AWSManagedControlPlane", o.namespace, cpName)
				if cp == nil || cpName != o.prefix+"capi-imds-control-plane" {
					t.Errorf("Cluster %s: controlPlaneRef %q, want its own %scapi-imds-control-plane", cluster.id(), cpName, o.prefix)
					continue
				}
				want := o.namespace + "_" + cpName // GenerateEKSName(name, namespace)
				if got := cp.str("spec", "eksClusterName"); got != want {
					t.Errorf("%s pinned %q, want %q", cp.id(), got, want)
				}
				secret := find("Secret", o.namespace, mp.str("spec", "template", "spec", "bootstrap", "dataSecretName"))
				if secret == nil {
					t.Errorf("MachinePool %s: dataSecretName %q names no Secret in %s", mp.id(),
						mp.str("spec", "template", "spec", "bootstrap", "dataSecretName"), o.namespace)
					continue
				}
				b, err := base64.StdEncoding.DecodeString(secret.str("data", "value"))
				if err != nil {
					t.Fatal(err)
				}
				if script := strings.TrimPrefix(string(b), "#!/bin/bash -xe\n/etc/eks/bootstrap.sh "); script != want {
					t.Errorf("%s's bootstrap names %q, want its own cluster %q", secret.id(), script, want)
				}
			}
			if res := layersAudit(t, out); res.code != 0 {
				t.Errorf("audit of the build failed:\n%s", res.stderr)
			}
		})
	}
}
