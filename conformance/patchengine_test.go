package conformance

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	runtimehooksv1 "sigs.k8s.io/cluster-api/api/runtime/hooks/v1alpha1"
	"sigs.k8s.io/cluster-api/core/reconcilers/topology/cluster/patches/inline"

	"github.com/capa-imds/capa-imds/transformers"
)

// TestClusterClassPatchEngine runs the function on an IPv6 ClusterClass, whose earlier patch
// sets httpProtocolIpv6: enabled, and applies the output's patches with Cluster API's own
// inline patch generator and the JSON patch library its topology controller applies them
// with (evanphx/json-patch/v5, as patches.applyPatchToRequest does), to the templates as the
// management cluster has them. The IPv6 key must survive, IMDSv2 must be required, and the
// patched templates must pass CAPA's schema and webhooks. It also shows what the final
// patch must avoid: the earlier whole-block patch turns IPv6 off, and one add per key fails
// on a template without the block (which is why a template not in the input gets the whole
// block, with a warning).
func TestClusterClassPatchEngine(t *testing.T) {
	const class = `apiVersion: cluster.x-k8s.io/v1beta2
kind: ClusterClass
metadata:
  name: ipv6
  namespace: ns
spec:
  controlPlane:
    templateRef: {apiVersion: controlplane.cluster.x-k8s.io/v1beta2, kind: KubeadmControlPlaneTemplate, name: kcp}
    machineInfrastructure:
      templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, name: cp}
  infrastructure:
    templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterTemplate, name: ipv6}
  workers:
    machineDeployments:
    - class: default-worker
      bootstrap:
        templateRef: {apiVersion: bootstrap.cluster.x-k8s.io/v1beta2, kind: KubeadmConfigTemplate, name: worker}
      infrastructure:
        templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachineTemplate, name: worker}
  patches:
  - name: ipv6
    definitions:
    - selector:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachineTemplate
        matchResources: {controlPlane: true, machineDeploymentClass: {names: [default-worker]}}
      jsonPatches:
      - {op: add, path: /spec/template/spec/instanceMetadataOptions/httpProtocolIpv6, value: enabled}
`
	template := func(name, block string) string {
		s := "---\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplate\nmetadata:\n  name: " + name +
			"\n  namespace: ns\nspec:\n  template:\n    spec:\n      instanceType: m6i.large\n"
		if block != "" {
			s += "      instanceMetadataOptions: " + block + "\n"
		}
		return s
	}
	p := newInProcess(t)
	ctx := context.Background()

	t.Run("templates in the input: httpProtocolIpv6 from the earlier patch survives", func(t *testing.T) {
		out, warnings := runFunction(t, class+template("cp", "")+template("worker", "{httpTokens: optional}"))
		if len(warnings) != 0 {
			t.Errorf("warnings: %s", strings.Join(warnings, "\n"))
		}
		cc, templates := splitOutput(t, out)
		for _, name := range []string{"cp", "worker"} {
			got := applyClassPatches(t, cc, name, templates[name])
			block := imdsBlock(got)
			want := map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": float64(2), "httpEndpoint": "enabled",
				"instanceMetadataTags": "disabled", "httpProtocolIpv6": "enabled"}
			if !jsonEqual(block, want) {
				t.Errorf("%s after the patches: %v, want %v", name, block, want)
			}
			if _, findings, ok := p.Create(ctx, "ns", got); !ok || len(findings) != 0 {
				t.Errorf("%s after the patches is refused: %v (checked %v)", name, findings, ok)
			}
		}
	})

	t.Run("a rule's hop limit on the worker template: its own definition, IPv6 kept on both", func(t *testing.T) {
		cfg, err := transformers.LoadConfig(kyaml.MustParse(`apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata: {name: c}
spec:
  rules:
  - name: pod-identity
    match: {kinds: [AWSMachineTemplate], names: [worker]}
    instanceMetadataOptions: {httpPutResponseHopLimit: 1}
`))
		if err != nil {
			t.Fatal(err)
		}
		out, warnings := runFunctionWith(t, cfg, class+template("cp", "")+template("worker", ""))
		if len(warnings) != 0 {
			t.Errorf("warnings: %s", strings.Join(warnings, "\n"))
		}
		cc, templates := splitOutput(t, out)
		if n := len(cc.Spec.Patches[len(cc.Spec.Patches)-1].Definitions); n != 2 {
			t.Errorf("the final patch has %d definitions, want one per profile (2)", n)
		}
		for name, hop := range map[string]float64{"cp": 2, "worker": 1} {
			got := applyClassPatches(t, cc, name, templates[name])
			block := imdsBlock(got)
			want := map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": hop, "httpEndpoint": "enabled",
				"instanceMetadataTags": "disabled", "httpProtocolIpv6": "enabled"}
			if !jsonEqual(block, want) {
				t.Errorf("%s after the patches: %v, want %v", name, block, want)
			}
			if _, findings, ok := p.Create(ctx, "ns", got); !ok || len(findings) != 0 {
				t.Errorf("%s after the patches is refused: %v (checked %v)", name, findings, ok)
			}
		}
	})

	t.Run("the previous whole-block final patch turned IPv6 off", func(t *testing.T) {
		out, _ := runFunction(t, class+template("cp", "")+template("worker", ""))
		cc, templates := splitOutput(t, out)
		last := &cc.Spec.Patches[len(cc.Spec.Patches)-1]
		for i := range last.Definitions {
			last.Definitions[i].JSONPatches = []clusterv1.JSONPatch{{Op: "add", Path: "/spec/template/spec/instanceMetadataOptions",
				Value: &apiextensionsv1.JSON{Raw: []byte(`{"httpTokens":"required","httpPutResponseHopLimit":2,"httpEndpoint":"enabled","instanceMetadataTags":"disabled"}`)}}}
		}
		block := imdsBlock(applyClassPatches(t, cc, "cp", templates["cp"]))
		if _, ok := block["httpProtocolIpv6"]; ok {
			t.Errorf("the old patch kept httpProtocolIpv6: %v; this test no longer shows what it fixed", block)
		}
	})

	t.Run("templates not in the input: the whole block applies where the block is missing, one add per key would fail", func(t *testing.T) {
		noIPv6 := strings.Replace(class, "  patches:", "  patchesRemoved:", 1)
		noIPv6 = noIPv6[:strings.Index(noIPv6, "  patchesRemoved:")]
		out, warnings := runFunction(t, noIPv6)
		if len(warnings) != 2 {
			t.Errorf("want a warning per template not in the input, got:\n%s", strings.Join(warnings, "\n"))
		}
		cc, _ := splitOutput(t, out)
		live := objectOf(t, template("cp", ""))
		got := applyClassPatches(t, cc, "cp", live)
		if block := imdsBlock(got); block["httpTokens"] != "required" {
			t.Errorf("cp after the patches: %v", block)
		}
		last := &cc.Spec.Patches[len(cc.Spec.Patches)-1]
		var perKey []clusterv1.JSONPatch
		for _, k := range []string{"httpTokens", "httpPutResponseHopLimit"} {
			perKey = append(perKey, clusterv1.JSONPatch{Op: "add", Path: "/spec/template/spec/instanceMetadataOptions/" + k,
				Value: &apiextensionsv1.JSON{Raw: []byte(`"x"`)}})
		}
		last.Definitions[0].JSONPatches = perKey
		if err := tryClassPatches(cc, "cp", live); err == nil || !strings.Contains(err.Error(), "missing path") {
			t.Errorf("one add per key on a template without the block: want Cluster API's failure, got %v", err)
		}
	})
}

func runFunction(t *testing.T, input string) (string, []string) {
	t.Helper()
	return runFunctionWith(t, transformers.DefaultConfig(), input)
}

func runFunctionWith(t *testing.T, cfg *transformers.Config, input string) (string, []string) {
	t.Helper()
	items, err := (&kio.ByteReader{Reader: strings.NewReader(input), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatal(err)
	}
	out, results := transformers.Process(cfg, items)
	if results.ExitCode() != 0 {
		t.Fatalf("the function failed: %s", results)
	}
	var warnings []string
	for _, r := range results {
		if r.Severity == transformers.Warning && strings.Contains(r.Message, "not one key at a time") {
			warnings = append(warnings, r.Message)
		}
	}
	var b strings.Builder
	if err := (kio.ByteWriter{Writer: &b}).Write(out); err != nil {
		t.Fatal(err)
	}
	return b.String(), warnings
}

func objectOf(t *testing.T, doc string) map[string]any {
	t.Helper()
	var o map[string]any
	if err := sigsyaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func splitOutput(t *testing.T, out string) (*clusterv1.ClusterClass, map[string]map[string]any) {
	t.Helper()
	var cc *clusterv1.ClusterClass
	templates := map[string]map[string]any{}
	for _, doc := range strings.Split(out, "\n---\n") {
		o := objectOf(t, doc)
		switch o["kind"] {
		case "ClusterClass":
			cc = &clusterv1.ClusterClass{}
			if err := sigsyaml.UnmarshalStrict([]byte(doc), cc); err != nil {
				t.Fatalf("the output ClusterClass does not decode strictly as Cluster API's v1beta2 type: %v", err)
			}
		case "AWSMachineTemplate":
			templates[o["metadata"].(map[string]any)["name"].(string)] = o
		}
	}
	if cc == nil {
		t.Fatal("no ClusterClass in the output")
	}
	return cc, templates
}

func applyClassPatches(t *testing.T, cc *clusterv1.ClusterClass, target string, tpl map[string]any) map[string]any {
	t.Helper()
	out, err := classPatches(cc, target, tpl)
	if err != nil {
		t.Fatalf("Cluster API cannot apply the class's patches to %s: %v", target, err)
	}
	return out
}

func tryClassPatches(cc *clusterv1.ClusterClass, target string, tpl map[string]any) error {
	_, err := classPatches(cc, target, tpl)
	return err
}

// classPatches applies the class's inline patches to one template, as the topology
// controller does: "cp" is the control plane's machine template, anything else the
// template of machine deployment class default-worker.
func classPatches(cc *clusterv1.ClusterClass, target string, tpl map[string]any) (map[string]any, error) {
	raw, err := json.Marshal(tpl)
	if err != nil {
		return nil, err
	}
	item := runtimehooksv1.GeneratePatchesRequestItem{UID: types.UID("1")}
	if target == "cp" {
		item.HolderReference = runtimehooksv1.HolderReference{APIVersion: "controlplane.cluster.x-k8s.io/v1beta2",
			Kind: "KubeadmControlPlane", Namespace: "ns", Name: "c", FieldPath: "spec.machineTemplate.spec.infrastructureRef"}
	} else {
		item.HolderReference = runtimehooksv1.HolderReference{APIVersion: "cluster.x-k8s.io/v1beta2",
			Kind: "MachineDeployment", Namespace: "ns", Name: "c-md", FieldPath: "spec.template.spec.infrastructureRef"}
		item.Variables = []runtimehooksv1.Variable{{Name: "builtin",
			Value: apiextensionsv1.JSON{Raw: []byte(`{"machineDeployment":{"class":"default-worker"}}`)}}}
	}
	setObject := func(b []byte) error {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return err
		}
		item.Object = runtime.RawExtension{Raw: b, Object: u}
		return nil
	}
	if err := setObject(raw); err != nil {
		return nil, err
	}
	req := &runtimehooksv1.GeneratePatchesRequest{Items: []runtimehooksv1.GeneratePatchesRequestItem{item}}
	for i := range cc.Spec.Patches {
		patch := &cc.Spec.Patches[i]
		if patch.External != nil {
			continue
		}
		resp, err := inline.NewGenerator(patch).Generate(context.Background(), nil, req)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Items {
			p, err := jsonpatch.DecodePatch(r.Patch)
			if err != nil {
				return nil, err
			}
			patched, err := p.Apply(req.Items[0].Object.Raw)
			if err != nil {
				return nil, err
			}
			if err := setObject(patched); err != nil {
				return nil, err
			}
			req.Items[0] = item
		}
	}
	var out map[string]any
	err = json.Unmarshal(req.Items[0].Object.Raw, &out)
	return out, err
}

func imdsBlock(o map[string]any) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tpl, _ := spec["template"].(map[string]any)
	ts, _ := tpl["spec"].(map[string]any)
	b, _ := ts["instanceMetadataOptions"].(map[string]any)
	return b
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
