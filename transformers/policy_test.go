package transformers

import (
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The admission policy is pinned as golden files, read by eye when they change; the real
// API server judges it in conformance/ (TestPolicyAgreesWithAudit).
func TestPolicyGolden(t *testing.T) {
	ipv6 := DefaultConfig()
	ipv6.Options = append(ipv6.Options, Option{Key: optIPv6, Value: "enabled"})
	rules, err := LoadConfig(yaml.MustParse(policyRulesConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		opts PolicyOptions
	}{
		{"default", DefaultConfig(), PolicyOptions{}},
		{"dry-run-allow-skip-ipv6", ipv6, PolicyOptions{ValidationActions: []string{"Warn", "Audit"}, AllowSkip: true}},
		{"rules", rules, PolicyOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, err := Policy(tc.cfg, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", "policy", tc.name+".yaml"), writeStream(t, nodes))
			if again, _ := Policy(tc.cfg, tc.opts); writeStream(t, again) != writeStream(t, nodes) {
				t.Error("the policy is not deterministic")
			}
			mutating, err := MutatingPolicy(tc.cfg, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", "policy", "mutating-"+tc.name+".yaml"), writeStream(t, mutating))
			if again, _ := MutatingPolicy(tc.cfg, tc.opts); writeStream(t, again) != writeStream(t, mutating) {
				t.Error("the mutating policy is not deterministic")
			}
		})
	}
}

// policyRulesConfig has a rule of each criterion an admission request can see.
const policyRulesConfig = `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata:
  name: profiles
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
      namespaces: ["team-*"]
      names: ["*-control-plane"]
    instanceMetadataOptions:
      httpPutResponseHopLimit: 3
  - name: legacy
    match:
      namespaces: [legacy]
    allowOptional: true
    instanceMetadataOptions:
      httpTokens: optional
`

// A rule matching by clusters cannot become a policy: the request does not tell.
func TestPolicyRefusesClusterRules(t *testing.T) {
	cfg, err := LoadConfig(yaml.MustParse(configHeaderInternal + "metadata:\n  name: c\nspec:\n  rules:\n  - name: prod\n    match:\n" +
		"      clusters: [prod]\n    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, gen := range map[string]func() error{
		"validating": func() error { _, err := Policy(cfg, PolicyOptions{}); return err },
		"mutating":   func() error { _, err := MutatingPolicy(cfg, PolicyOptions{}); return err },
	} {
		err := gen()
		if err == nil || !strings.Contains(err.Error(), `IMDSConfig "c": spec.rules[0].match.clusters: rule "prod" matches by clusters`) {
			t.Errorf("%s: want the clusters rule refused, got %v", name, err)
		}
	}
}

const configHeaderInternal = "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\n"

// --actions takes only what the API server takes in a binding.
func TestPolicyActions(t *testing.T) {
	for _, tc := range []struct {
		actions []string
		want    string // "" for accepted
	}{
		{nil, ""},
		{[]string{"Deny"}, ""},
		{[]string{"Deny", "Audit"}, ""},
		{[]string{"Warn", "Audit"}, ""},
		{[]string{"Warn"}, ""},
		{[]string{"Block"}, `"Block" is not allowed; allowed: Deny, Warn, Audit`},
		{[]string{"deny"}, `"deny" is not allowed`},
		{[]string{"Deny", "Warn"}, "Deny and Warn cannot be combined"},
		{[]string{"Warn", "Audit", "Deny"}, "Deny and Warn cannot be combined"},
		{[]string{"Audit", "Audit"}, `"Audit" is named twice`},
	} {
		_, err := Policy(DefaultConfig(), PolicyOptions{ValidationActions: tc.actions})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: refused: %v", tc.actions, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got %v, want an error containing %q", tc.actions, err, tc.want)
		}
	}
}

// Every configured option has one validation, each judged only where an UPDATE makes the
// object worse, and the managed pool check is there; the block is read for every kind.
func TestPolicyCoversEveryKindAndOption(t *testing.T) {
	nodes, err := Policy(DefaultConfig(), PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := nodes[0].Pipe(yaml.Lookup("spec", "validations"))
	if err != nil || v == nil {
		t.Fatalf("no validations: %v", err)
	}
	var exprs []string
	for _, e := range v.YNode().Content {
		exprs = append(exprs, scalarField(e, "expression"))
	}
	for _, opt := range DefaultConfig().Options {
		found := 0
		for _, e := range exprs {
			if strings.HasPrefix(e, "!variables.judged || ") && strings.Contains(e, "variables.options.?"+opt.Key+".orValue(") {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%d validations of %s, want 1", found, opt.Key)
		}
	}
	if len(exprs) != len(DefaultConfig().Options)+1 {
		t.Errorf("%d validations, want %d", len(exprs), len(DefaultConfig().Options)+1)
	}
	vars := map[string]string{}
	vs, _ := nodes[0].Pipe(yaml.Lookup("spec", "variables"))
	for _, e := range vs.YNode().Content {
		vars[scalarField(e, "name")] = scalarField(e, "expression")
	}
	for _, k := range policyKinds {
		path := strings.Join(append(append([]string(nil), k.path...), imdsField), ".?")
		for _, root := range []string{"object", "oldObject"} {
			if !strings.Contains(vars["options"]+vars["oldOptions"], root+".?"+path+".orValue({})") {
				t.Errorf("%s: the block of %s is not read at %s", k.kind, root, path)
			}
		}
	}
	for _, name := range []string{"judged", "oldCompliant", "launchTemplate", "field"} {
		if vars[name] == "" {
			t.Errorf("no variable %s", name)
		}
	}
	conds, _ := nodes[0].Pipe(yaml.Lookup("spec", "matchConditions"))
	if conds == nil || !strings.Contains(conds.MustString(), "deletionTimestamp") {
		t.Error("objects being deleted are matched")
	}
}
