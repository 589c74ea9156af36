package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capa-imds/capa-imds/transformers"
)

// livePolicyNamespace holds the objects of TestPolicySafeOnLiveCluster; its policy has a
// name of its own, bound to this namespace only.
const (
	livePolicyNamespace = "capa-imds-live"
	livePolicyName      = transformers.PolicyName + "-live"
	holdFinalizer       = "conformance.capa-imds.dev/hold"
)

// TestPolicySafeOnLiveCluster installs the policy on an API server that already holds
// non-compliant objects, as a management cluster does on the day the policy arrives, and
// makes the writes CAPA's and Cluster API's controllers make on them: labels, annotations,
// owner references, status, a delete and the finalizer removal that ends it. Every one must
// pass; a policy that denied them would hang deletions and the very rollout that replaces
// the machines. What makes an object worse must still be denied: a compliant pool made
// non-compliant, a non-compliant pool's options changed but not fixed, a new non-compliant
// object.
func TestPolicySafeOnLiveCluster(t *testing.T) {
	a := apiServer(t)
	ctx := context.Background()
	if err := a.EnsureNamespace(ctx, livePolicyNamespace); err != nil {
		t.Fatal(err)
	}
	required := map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": int64(2),
		"httpEndpoint": "enabled", "instanceMetadataTags": "disabled"}
	optional := map[string]any{"httpTokens": "optional", "httpPutResponseHopLimit": int64(1)}
	// Objects from before the policy: every kind non-compliant, one pool compliant.
	before := []map[string]any{
		liveObject("AWSMachine", "old-machine", map[string]any{"instanceType": "t3.large"}),
		liveObject("AWSMachineTemplate", "old-template", map[string]any{"template": map[string]any{"spec": map[string]any{
			"instanceType": "t3.large", "instanceMetadataOptions": optional}}}),
		liveObject("AWSMachinePool", "old-pool", map[string]any{"minSize": int64(1), "maxSize": int64(3),
			"awsLaunchTemplate": map[string]any{"instanceType": "t3.large", "instanceMetadataOptions": optional}}),
		liveObject("AWSManagedMachinePool", "old-managed", map[string]any{"amiType": "AL2_x86_64",
			"scaling": map[string]any{"minSize": int64(1), "maxSize": int64(3)}}),
		liveObject("AWSMachinePool", "good-pool", map[string]any{"minSize": int64(1), "maxSize": int64(3),
			"awsLaunchTemplate": map[string]any{"instanceType": "t3.large", "instanceMetadataOptions": required}}),
	}
	for _, obj := range before {
		if _, err := a.Apply(ctx, obj, false); err != nil {
			t.Fatalf("creating %s before the policy: %v", obj["metadata"].(map[string]any)["name"], err)
		}
	}
	t.Cleanup(func() {
		for _, obj := range before {
			u := &unstructured.Unstructured{Object: obj}
			_ = a.Client.Patch(ctx, u.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
			_ = a.Delete(ctx, u)
		}
	})
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: livePolicyNamespace}}
	if err := a.Client.Create(ctx, owner); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := a.Client.Get(ctx, client.ObjectKeyFromObject(owner), owner); err != nil {
		t.Fatal(err)
	}
	installPolicy(t, a, livePolicyName, livePolicyNamespace)

	merge := func(kind, name string, patch any, status bool) error {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("infrastructure.cluster.x-k8s.io/v1beta2")
		u.SetKind(kind)
		u.SetNamespace(livePolicyNamespace)
		u.SetName(name)
		b, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		if status {
			return a.Client.Status().Patch(ctx, u, client.RawPatch(types.MergePatchType, b))
		}
		return a.Client.Patch(ctx, u, client.RawPatch(types.MergePatchType, b))
	}
	meta := func(m map[string]any) map[string]any { return map[string]any{"metadata": m} }

	// What controllers do to the old objects: each must pass.
	for _, obj := range before {
		kind := obj["kind"].(string)
		name := obj["metadata"].(map[string]any)["name"].(string)
		for _, w := range []struct {
			what   string
			patch  any
			status bool
		}{
			{"label", meta(map[string]any{"labels": map[string]any{"cluster.x-k8s.io/cluster-name": "c1"}}), false},
			{"annotate", meta(map[string]any{"annotations": map[string]any{"cluster.x-k8s.io/paused": "true"}}), false},
			{"set owner references", meta(map[string]any{"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap", "name": owner.Name, "uid": string(owner.UID)}}}), false},
			{"update status", map[string]any{"status": map[string]any{"ready": false}}, true},
		} {
			if err := merge(kind, name, w.patch, w.status); err != nil {
				t.Errorf("%s %s: %s: %v", kind, name, w.what, err)
			}
		}
	}
	// A non-compliant pool's other fields still change (scaling is not instance metadata).
	if err := merge("AWSMachinePool", "old-pool", map[string]any{"spec": map[string]any{"maxSize": 5}}, false); err != nil {
		t.Errorf("scaling a non-compliant pool: %v", err)
	}

	// What makes an object worse: each must be denied by the policy.
	for _, w := range []struct {
		what        string
		kind, name  string
		patch       any
		wantDenied  bool
		wantMessage string
	}{
		{"a compliant pool made non-compliant", "AWSMachinePool", "good-pool",
			map[string]any{"spec": map[string]any{"awsLaunchTemplate": map[string]any{"instanceMetadataOptions": map[string]any{"httpTokens": "optional"}}}},
			true, "AWSMachinePool good-pool: spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens is optional, want required"},
		{"a non-compliant pool's options changed, still non-compliant", "AWSMachinePool", "old-pool",
			map[string]any{"spec": map[string]any{"awsLaunchTemplate": map[string]any{"instanceMetadataOptions": map[string]any{"httpPutResponseHopLimit": 3}}}},
			true, "httpTokens is optional, want required"},
		{"a non-compliant pool fixed", "AWSMachinePool", "old-pool",
			map[string]any{"spec": map[string]any{"awsLaunchTemplate": map[string]any{"instanceMetadataOptions": required}}},
			false, ""},
	} {
		err := merge(w.kind, w.name, w.patch, false)
		switch verdict := namedPolicyVerdict(err, livePolicyName); {
		case w.wantDenied && verdict != "denied":
			t.Errorf("%s: %s, want denied (%v)", w.what, verdict, err)
		case w.wantDenied && !strings.Contains(err.Error(), w.wantMessage):
			t.Errorf("%s: denied with %v, want a message containing %q", w.what, err, w.wantMessage)
		case !w.wantDenied && err != nil:
			t.Errorf("%s: %v", w.what, err)
		}
	}
	for _, obj := range []map[string]any{
		liveObject("AWSMachine", "new-machine", map[string]any{"instanceType": "t3.large"}),
		liveObject("AWSManagedMachinePool", "new-managed", map[string]any{"amiType": "AL2_x86_64",
			"scaling": map[string]any{"minSize": int64(1), "maxSize": int64(3)}}),
	} {
		_, err := a.Apply(ctx, obj, true)
		if v := namedPolicyVerdict(err, livePolicyName); v != "denied" {
			t.Errorf("creating a non-compliant %s: %s, want denied (%v)", obj["kind"], v, err)
		}
	}
	// An AWSMachine an AWSMachinePool creates mirrors an instance that already runs: denying
	// it changes no instance and fails the pool's reconcile.
	mirror := liveObject("AWSMachine", "old-pool-i-0123", map[string]any{"instanceType": "t3.large"})
	mirror["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
		"kind": "AWSMachinePool", "name": "old-pool", "uid": "6f1c1a8e-2b7d-4a53-9c0e-1d2f3a4b5c6d"}}
	if _, err := a.Apply(ctx, mirror, true); err != nil {
		t.Errorf("an AWSMachinePool's mirror AWSMachine: %v", err)
	}

	// Deletion: the API server sets deletionTimestamp, the controller updates the object
	// while it cleans up, then removes its finalizer; each write must pass and the object go.
	for _, obj := range before {
		kind := obj["kind"].(string)
		name := obj["metadata"].(map[string]any)["name"].(string)
		u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
		if err := a.Client.Delete(ctx, u); err != nil {
			t.Errorf("deleting %s %s: %v", kind, name, err)
			continue
		}
		if err := merge(kind, name, meta(map[string]any{"labels": map[string]any{"deleting": "yes"}}), false); err != nil {
			t.Errorf("%s %s: labelling while deleting: %v", kind, name, err)
		}
		if err := merge(kind, name, meta(map[string]any{"finalizers": nil}), false); err != nil {
			t.Errorf("%s %s: removing the finalizer: %v", kind, name, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := a.Client.Get(ctx, client.ObjectKeyFromObject(u), u.DeepCopy())
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s %s: still there after its finalizer was removed (%v)", kind, name, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func liveObject(kind, name string, spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": livePolicyNamespace, "finalizers": []any{holdFinalizer}},
		"spec":     spec}
}

// installPolicy installs the default config's policy under name, bound to namespace only,
// and waits until it denies.
func installPolicy(t *testing.T, a *APIServer, name, namespace string) {
	t.Helper()
	ctx := context.Background()
	nodes, err := transformers.Policy(transformers.DefaultConfig(), transformers.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var installed []*unstructured.Unstructured
	for _, n := range nodes {
		obj := toMap(t, n)
		obj["metadata"].(map[string]any)["name"] = name
		if n.GetKind() == "ValidatingAdmissionPolicyBinding" {
			spec := obj["spec"].(map[string]any)
			spec["policyName"] = name
			spec["matchResources"] = map[string]any{"namespaceSelector": map[string]any{
				"matchLabels": map[string]any{"kubernetes.io/metadata.name": namespace}}}
		}
		u, err := a.Apply(ctx, obj, false)
		if err != nil {
			t.Fatalf("installing %s: %v", n.GetKind(), err)
		}
		installed = append(installed, u)
	}
	t.Cleanup(func() {
		for _, u := range installed {
			_ = a.Delete(ctx, u)
		}
	})
	// A managed pool without a launch template: no mutating policy can make it compliant.
	probe := liveObject("AWSManagedMachinePool", "probe", map[string]any{"amiType": "AL2_x86_64",
		"scaling": map[string]any{"minSize": int64(1), "maxSize": int64(3)}})
	probe["metadata"].(map[string]any)["namespace"] = namespace
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := a.Apply(ctx, probe, true)
		if namedPolicyVerdict(err, name) == "denied" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy never took effect: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// namedPolicyVerdict is policyVerdict for the policy called name.
func namedPolicyVerdict(err error, name string) string {
	switch {
	case err == nil:
		return "admitted"
	case strings.Contains(err.Error(), fmt.Sprintf("ValidatingAdmissionPolicy '%s'", name)):
		return "denied"
	case strings.Contains(err.Error(), "admission webhook"):
		return "admitted"
	}
	return "unjudged"
}
