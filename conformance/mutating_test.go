package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capa-imds/capa-imds/transformers"
)

const mutatingNamespace = "capa-imds-mutating"

// TestMutatingPolicy installs the MutatingAdmissionPolicies the function generates for the
// default config, with the validating policy beside them, in the real kube-apiserver with
// CAPA's webhooks, and creates objects that lack the options: each is stored with the
// configured options and the keys it set beyond them, CAPA's defaulting and validating
// webhooks accept it, and the validating policy admits it. A managed pool without a launch
// template, and an AWSMachinePool's mirror AWSMachine, are left alone; an object that
// predates the policies can still be labelled and deleted.
func TestMutatingPolicy(t *testing.T) {
	a := apiServer(t)
	ctx := context.Background()
	if err := a.EnsureNamespace(ctx, mutatingNamespace); err != nil {
		t.Fatal(err)
	}
	old := liveObject("AWSMachine", "predates", map[string]any{"instanceType": "t3.large"})
	old["metadata"].(map[string]any)["namespace"] = mutatingNamespace
	delete(old["metadata"].(map[string]any), "finalizers")
	if _, err := a.Apply(ctx, old, false); err != nil {
		t.Fatal(err)
	}
	var installed []*unstructured.Unstructured
	policy, err := transformers.MutatingPolicy(transformers.DefaultConfig(), transformers.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range policy {
		obj := toMap(t, n)
		if n.GetKind() == "MutatingAdmissionPolicyBinding" {
			obj["spec"].(map[string]any)["matchResources"] = map[string]any{"namespaceSelector": map[string]any{
				"matchLabels": map[string]any{"kubernetes.io/metadata.name": mutatingNamespace}}}
		}
		u, err := a.Apply(ctx, obj, false)
		if err != nil {
			t.Fatalf("installing %s %s: %v", n.GetKind(), n.GetName(), err)
		}
		installed = append(installed, u)
	}
	t.Cleanup(func() {
		for _, u := range installed {
			_ = a.Delete(ctx, u)
		}
	})
	const validating = transformers.PolicyName + "-mutating"
	installPolicy(t, a, validating, mutatingNamespace)

	// httpProtocolIpv6: disabled is the CRD schema's default, which the API server fills in.
	want := map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": int64(2),
		"httpEndpoint": "enabled", "instanceMetadataTags": "disabled", "httpProtocolIpv6": "disabled"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range want {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	obj := func(kind, name string, spec map[string]any) map[string]any {
		o := liveObject(kind, name, spec)
		o["metadata"].(map[string]any)["namespace"] = mutatingNamespace
		delete(o["metadata"].(map[string]any), "finalizers")
		return o
	}
	// The mutating admission reads the kinds' schemas from the API server's OpenAPI, which
	// publishes a CRD's a few seconds after the CRD is established.
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := a.Apply(ctx, obj("AWSMachine", "schema-probe", map[string]any{"instanceType": "t3.large"}), true)
		if err == nil || !strings.Contains(err.Error(), "There can be a delay") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mutating policies never found CAPA's schemas: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, tc := range []struct {
		obj  map[string]any
		path []string
		want map[string]any // nil: not mutated, and denied by the validating policy
	}{
		{obj("AWSMachine", "bare", map[string]any{"instanceType": "t3.large"}),
			[]string{"spec", "instanceMetadataOptions"}, want},
		{obj("AWSMachine", "disabled", map[string]any{"instanceType": "t3.large",
			"instanceMetadataOptions": map[string]any{"httpEndpoint": "disabled"}}),
			[]string{"spec", "instanceMetadataOptions"}, with(map[string]any{"httpEndpoint": "disabled"})},
		{obj("AWSMachineTemplate", "ipv6", map[string]any{"template": map[string]any{"spec": map[string]any{"instanceType": "t3.large",
			"instanceMetadataOptions": map[string]any{"httpTokens": "optional", "httpProtocolIpv6": "enabled"}}}}),
			[]string{"spec", "template", "spec", "instanceMetadataOptions"}, with(map[string]any{"httpProtocolIpv6": "enabled"})},
		{obj("AWSMachinePool", "pool", map[string]any{"minSize": int64(1), "maxSize": int64(3),
			"awsLaunchTemplate": map[string]any{"instanceType": "t3.large"}}),
			[]string{"spec", "awsLaunchTemplate", "instanceMetadataOptions"}, want},
		{obj("AWSManagedMachinePool", "managed", map[string]any{"amiType": "CUSTOM",
			"scaling": map[string]any{"minSize": int64(1), "maxSize": int64(3)}, "awsLaunchTemplate": map[string]any{"instanceType": "t3.large"}}),
			[]string{"spec", "awsLaunchTemplate", "instanceMetadataOptions"}, want},
		{obj("AWSManagedMachinePool", "no-launch-template", map[string]any{"amiType": "AL2_x86_64",
			"scaling": map[string]any{"minSize": int64(1), "maxSize": int64(3)}}),
			[]string{"spec", "awsLaunchTemplate"}, nil},
	} {
		name := tc.obj["kind"].(string) + "/" + tc.obj["metadata"].(map[string]any)["name"].(string)
		u, err := a.Apply(ctx, tc.obj, true)
		if tc.want == nil {
			if v := namedPolicyVerdict(err, validating); v != "denied" {
				t.Errorf("%s: %s by the validating policy, want denied (%v)", name, v, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
			continue
		}
		got, _, _ := unstructured.NestedMap(u.Object, tc.path...)
		if !equalMaps(got, tc.want) {
			t.Errorf("%s: %v is %v, want %v", name, tc.path, got, tc.want)
		}
	}
	mirror := obj("AWSMachine", "pool-i-0123", map[string]any{"instanceType": "t3.large"})
	mirror["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
		"kind": "AWSMachinePool", "name": "pool", "uid": "6f1c1a8e-2b7d-4a53-9c0e-1d2f3a4b5c6d"}}
	u, err := a.Apply(ctx, mirror, true)
	if err != nil {
		t.Errorf("a pool's mirror AWSMachine: %v", err)
	} else if _, found, _ := unstructured.NestedMap(u.Object, "spec", "instanceMetadataOptions"); found {
		t.Errorf("a pool's mirror AWSMachine was mutated: %v", u.Object["spec"])
	}
	pre := &unstructured.Unstructured{Object: old}
	if err := a.Client.Patch(ctx, pre.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`))); err != nil {
		t.Errorf("labelling an AWSMachine that predates the policies: %v", err)
	}
	if err := a.Delete(ctx, pre); err != nil {
		t.Errorf("deleting an AWSMachine that predates the policies: %v", err)
	}
}

func equalMaps(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
