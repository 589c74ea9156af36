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
	for _, tc := range []struct {
		name string
		cfg  *Config
		opts PolicyOptions
	}{
		{"default", DefaultConfig(), PolicyOptions{}},
		{"dry-run-allow-skip-ipv6", ipv6, PolicyOptions{ValidationActions: []string{"Warn", "Audit"}, AllowSkip: true}},
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
		})
	}
	if _, err := Policy(DefaultConfig(), PolicyOptions{ValidationActions: []string{"Block"}}); err == nil ||
		!strings.Contains(err.Error(), `"Block" is not allowed`) {
		t.Errorf("a bad validation action: %v", err)
	}
}

// Every configured option has one validation per kind, and the managed pool check is there.
func TestPolicyCoversEveryKindAndOption(t *testing.T) {
	nodes, err := Policy(DefaultConfig(), PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := nodes[0].Pipe(yaml.Lookup("spec", "validations"))
	if err != nil || v == nil {
		t.Fatalf("no validations: %v", err)
	}
	exprs := map[string]bool{}
	for _, e := range v.YNode().Content {
		exprs[scalarField(e, "expression")] = true
	}
	for _, k := range policyKinds {
		for _, opt := range DefaultConfig().Options {
			found := false
			for e := range exprs {
				if strings.HasPrefix(e, "object.kind != '"+k.kind+"' ||") && strings.Contains(e, "instanceMetadataOptions."+opt.Key+" :") {
					found = true
				}
			}
			if !found {
				t.Errorf("no validation of %s %s", k.kind, opt.Key)
			}
		}
	}
	if len(exprs) != len(policyKinds)*len(DefaultConfig().Options)+1 {
		t.Errorf("%d validations, want %d", len(exprs), len(policyKinds)*len(DefaultConfig().Options)+1)
	}
}
