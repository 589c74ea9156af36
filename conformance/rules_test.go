package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// Two namespaces: one a rule matches by namespace, one it does not.
const (
	rulesNamespace       = "capa-imds-rules"
	rulesLegacyNamespace = "capa-imds-rules-legacy"
	rulesPolicySuffix    = "-rules-test"
)

const rulesConfig = `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata:
  name: rules
spec:
  rules:
  - name: pod-identity
    match:
      kinds: [AWSMachinePool, AWSManagedMachinePool]
      labels: {capa-imds.dev/profile: pod-identity}
    instanceMetadataOptions:
      httpPutResponseHopLimit: 1
  - name: control-planes
    match:
      kinds: [AWSMachineTemplate]
      names: ["*-control-plane"]
    instanceMetadataOptions:
      httpPutResponseHopLimit: 3
  - name: legacy
    match:
      namespaces: [` + rulesLegacyNamespace + `]
    allowOptional: true
    instanceMetadataOptions:
      httpTokens: optional
`

// TestRulesPolicies installs the validating policies the function generates for a config
// with rules (one per rule, and the default one for what no rule matches) into the real
// kube-apiserver with CAPA's webhooks: each object is held to the options of the first rule
// that matches it, exactly as audit holds it, and a rule matched by label, name or namespace
// is told apart by the API server's own CEL. Then the mutating policies join them: objects
// created without options are stored with their rule's options, and the validating policies
// admit them.
func TestRulesPolicies(t *testing.T) {
	a := apiServer(t)
	ctx := context.Background()
	cfg, err := transformers.LoadConfig(kyaml.MustParse(rulesConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{rulesNamespace, rulesLegacyNamespace} {
		if err := a.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	validating, err := transformers.Policy(cfg, transformers.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uninstall := installRulesPolicies(t, a, validating)

	pool := func(name string, labels map[string]any, opts map[string]any) map[string]any {
		o := rulesObject("AWSMachinePool", rulesNamespace, name, map[string]any{"minSize": int64(1), "maxSize": int64(3),
			"awsLaunchTemplate": withOptions(map[string]any{"instanceType": "t3.large"}, opts)})
		if labels != nil {
			o["metadata"].(map[string]any)["labels"] = labels
		}
		return o
	}
	template := func(name string, opts map[string]any) map[string]any {
		return rulesObject("AWSMachineTemplate", rulesNamespace, name,
			map[string]any{"template": map[string]any{"spec": withOptions(map[string]any{"instanceType": "t3.large"}, opts)}})
	}
	machine := func(ns, name string, opts map[string]any) map[string]any {
		return rulesObject("AWSMachine", ns, name, withOptions(map[string]any{"instanceType": "t3.large"}, opts))
	}
	podIdentity := map[string]any{"capa-imds.dev/profile": "pod-identity"}
	// Every option explicit: audit asks for each on the manifest, where the API server would
	// fill in the CRD's defaults.
	opts := func(tokens string, n int64) map[string]any {
		return map[string]any{"httpTokens": tokens, "httpPutResponseHopLimit": n, "httpEndpoint": "enabled", "instanceMetadataTags": "disabled"}
	}
	hop := func(n int64) map[string]any { return opts("required", n) }
	// The API server loads each policy apart: wait until each denies.
	for rule, probe := range map[string]map[string]any{
		"default":        pool("probe", nil, hop(1)),
		"pod-identity":   pool("probe", podIdentity, hop(2)),
		"control-planes": template("probe-control-plane", hop(2)),
		"legacy":         machine(rulesLegacyNamespace, "probe", hop(1)),
	} {
		waitForDenial(t, a, probe, rulesPolicyName(rule))
	}

	cases := []struct {
		obj    map[string]any
		denyBy string // the policy that denies it, "" when admitted
	}{
		{pool("pod-identity-hop-1", podIdentity, hop(1)), ""},
		{pool("pod-identity-hop-2", podIdentity, hop(2)), "pod-identity"},
		{pool("other-profile-hop-1", map[string]any{"capa-imds.dev/profile": "general"}, hop(1)), "default"},
		{pool("general-hop-2", nil, hop(2)), ""},
		{template("prod-control-plane", hop(3)), ""},
		{template("prod-control-plane-2", hop(3)), "default"}, // the glob is anchored
		{template("prod-control-plane-hop-3", hop(3)), "default"},
		{template("prod-control-plane", hop(2)), "control-planes"},
		{template("prod-md-0", hop(2)), ""},
		{machine(rulesLegacyNamespace, "legacy-optional", opts("optional", 2)), ""},
		{machine(rulesLegacyNamespace, "legacy-required", hop(2)), ""},
		{machine(rulesLegacyNamespace, "legacy-hop-1", hop(1)), "legacy"},
		{machine(rulesNamespace, "optional", opts("optional", 2)), "default"},
	}
	denied := 0
	for _, tc := range cases {
		name := describeRulesObject(tc.obj)
		_, err := a.Apply(ctx, tc.obj, true)
		got := ""
		for _, p := range []string{"pod-identity", "control-planes", "legacy", "default"} {
			if namedPolicyVerdict(err, rulesPolicyName(p)) == "denied" {
				got = p
			}
		}
		if got == "" && err != nil {
			t.Errorf("%s: refused by something else: %v", name, err)
			continue
		}
		if got != tc.denyBy {
			t.Errorf("%s: denied by %q, want %q (%v)", name, got, tc.denyBy, err)
		}
		// Audit, given the same config, holds the object to the same rule.
		if finding := rulesAuditFinding(t, cfg, tc.obj); (finding != "") != (tc.denyBy != "") {
			t.Errorf("%s: audit finding %q, but the policy says %q", name, finding, tc.denyBy)
		} else if tc.denyBy != "" && tc.denyBy != "default" && !strings.Contains(finding, fmt.Sprintf("(rule %q)", tc.denyBy)) {
			t.Errorf("%s: audit finding %q does not name rule %s", name, finding, tc.denyBy)
		}
		if got != "" {
			denied++
		}
	}
	t.Logf("%d objects judged by rule, %d denied, each as audit judges it", len(cases), denied)

	// The mutating policies, with the validating ones still in place.
	mutating, err := transformers.MutatingPolicy(cfg, transformers.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	installRulesPolicies(t, a, mutating)
	bare := func(n int64, extra map[string]any) map[string]any {
		m := map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": n, "httpEndpoint": "enabled",
			"instanceMetadataTags": "disabled", "httpProtocolIpv6": "disabled"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	launchTemplate := []string{"spec", "awsLaunchTemplate", "instanceMetadataOptions"}
	templateOptions := []string{"spec", "template", "spec", "instanceMetadataOptions"}
	machineOptions := []string{"spec", "instanceMetadataOptions"}
	mutated := []struct {
		obj  map[string]any
		path []string
		want map[string]any
	}{
		{pool("bare-pod-identity", podIdentity, nil), launchTemplate, bare(1, nil)},
		{pool("bare-general", nil, nil), launchTemplate, bare(2, nil)},
		{template("bare-control-plane", nil), templateOptions, bare(3, nil)},
		{template("bare-md-0", nil), templateOptions, bare(2, nil)},
		// The legacy rule allows optional; it does not take required away where the object
		// asks for it, and writes optional where it says nothing.
		{machine(rulesLegacyNamespace, "bare-legacy", nil), machineOptions, bare(2, map[string]any{"httpTokens": "optional"})},
		{machine(rulesLegacyNamespace, "required-legacy", map[string]any{"httpTokens": "required"}), machineOptions, bare(2, nil)},
		{machine(rulesNamespace, "bare", nil), machineOptions, bare(2, nil)},
	}
	waitForMutation(t, a, machine(rulesNamespace, "schema-probe", nil))
	for _, tc := range mutated {
		name := describeRulesObject(tc.obj)
		u, err := a.Apply(ctx, tc.obj, true)
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
			continue
		}
		got, _, _ := unstructured.NestedMap(u.Object, tc.path...)
		if !equalMaps(got, tc.want) {
			t.Errorf("%s: %v is %v, want %v", name, tc.path, got, tc.want)
		}
	}
	uninstall()
}

func rulesPolicyName(rule string) string {
	if rule == "default" {
		return transformers.PolicyName + rulesPolicySuffix
	}
	return transformers.PolicyName + "-" + rule + rulesPolicySuffix
}

func rulesObject(kind, namespace, name string, spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": namespace}, "spec": spec}
}

func withOptions(spec, opts map[string]any) map[string]any {
	if opts != nil {
		spec["instanceMetadataOptions"] = opts
	}
	return spec
}

func describeRulesObject(obj map[string]any) string {
	md := obj["metadata"].(map[string]any)
	return fmt.Sprintf("%s %s/%s", obj["kind"], md["namespace"], md["name"])
}

// installRulesPolicies installs policies and bindings under names of this test, bound to
// its two namespaces only, and returns what removes them (also run at cleanup).
func installRulesPolicies(t *testing.T, a *APIServer, nodes []*kyaml.RNode) func() {
	t.Helper()
	ctx := context.Background()
	var installed []*unstructured.Unstructured
	for _, n := range nodes {
		obj := toMap(t, n)
		obj["metadata"].(map[string]any)["name"] = n.GetName() + rulesPolicySuffix
		if strings.HasSuffix(n.GetKind(), "Binding") {
			spec := obj["spec"].(map[string]any)
			spec["policyName"] = spec["policyName"].(string) + rulesPolicySuffix
			spec["matchResources"] = map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{
				"key": "kubernetes.io/metadata.name", "operator": "In", "values": []any{rulesNamespace, rulesLegacyNamespace}}}}}
		}
		u, err := a.Apply(ctx, obj, false)
		if err != nil {
			t.Fatalf("installing %s %s: %v", n.GetKind(), n.GetName(), err)
		}
		installed = append(installed, u)
	}
	done := false
	uninstall := func() {
		if done {
			return
		}
		done = true
		for _, u := range installed {
			_ = a.Delete(ctx, u)
		}
	}
	t.Cleanup(uninstall)
	return uninstall
}

func waitForDenial(t *testing.T, a *APIServer, obj map[string]any, policy string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := a.Apply(context.Background(), obj, true)
		if namedPolicyVerdict(err, policy) == "denied" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %s never took effect: %v", policy, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitForMutation waits until the mutating policies write the options: they read the kinds'
// schemas from the API server's OpenAPI, and every policy is loaded apart.
func waitForMutation(t *testing.T, a *APIServer, obj map[string]any) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		u, err := a.Apply(context.Background(), obj, true)
		if err == nil {
			if _, found, _ := unstructured.NestedMap(u.Object, "spec", "instanceMetadataOptions"); found {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mutating policies never took effect: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rulesAuditFinding is audit's instance metadata finding on obj alone, under cfg.
func rulesAuditFinding(t *testing.T, cfg *transformers.Config, obj map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	n, err := kyaml.Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.PipeE(kyaml.SetAnnotation(kioutil.PathAnnotation, "input.yaml")); err != nil {
		t.Fatal(err)
	}
	audit := *cfg
	audit.Mode = transformers.ModeAudit
	_, results := transformers.Process(&audit, []*kyaml.RNode{n})
	var out []string
	for _, f := range results {
		if f.Severity == transformers.Error && f.Field != nil && strings.Contains(f.Field.Path, "instanceMetadataOptions") {
			out = append(out, f.Field.Path+": "+f.Message)
		}
	}
	return strings.Join(out, "; ")
}
