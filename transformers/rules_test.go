package transformers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

func rulesConfig(rules string) string {
	return configHeader + "metadata:\n  name: c\nspec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 2\n  rules:\n" + rules
}

// A rule's options are merged over spec.instanceMetadataOptions, defaults included; the
// ConfigMap form holds the same list as a YAML string and resolves to the same rules.
func TestLoadConfigRules(t *testing.T) {
	const rules = `  - name: pod-identity
    match:
      kinds: [AWSManagedMachinePool, AWSMachinePool]
      labels: {capa-imds.dev/profile: pod-identity}
    instanceMetadataOptions:
      httpPutResponseHopLimit: 1
  - name: legacy
    match:
      namespaces: ["legacy-*"]
      names: ["app-?"]
      clusters: [old]
    allowOptional: true
    instanceMetadataOptions:
      httpTokens: optional
      httpProtocolIpv6: enabled
`
	want := []transformers.ConfigRule{
		{Name: "pod-identity",
			Match: transformers.RuleMatch{Kinds: []string{"AWSManagedMachinePool", "AWSMachinePool"},
				Labels: map[string]string{"capa-imds.dev/profile": "pod-identity"}},
			Options: []transformers.Option{str("httpTokens", "required"), hop("1"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		{Name: "legacy", AllowOptional: true,
			Match:   transformers.RuleMatch{Namespaces: []string{"legacy-*"}, Names: []string{"app-?"}, Clusters: []string{"old"}},
			Options: []transformers.Option{str("httpTokens", "optional"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled"), str("httpProtocolIpv6", "enabled")}},
	}
	cfg, err := loadConfigText(t, rulesConfig(rules))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cfg.Rules); diff != "" {
		t.Errorf("IMDSConfig rules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(defaultOptions(), cfg.Options); diff != "" {
		t.Errorf("rules changed the default options (-want +got):\n%s", diff)
	}

	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  rules: |\n" + indent(rules, "    ")
	cfg, err = loadConfigText(t, cm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cfg.Rules); diff != "" {
		t.Errorf("ConfigMap rules (-want +got):\n%s", diff)
	}
}

func indent(s, by string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "")
}

// Bad rules are errors that name the rule and the field.
func TestLoadConfigRejectsBadRules(t *testing.T) {
	rule := func(match, opts string) string {
		return "  - name: r1\n    match:\n" + match + "    instanceMetadataOptions:\n" + opts
	}
	const hop1 = "      httpPutResponseHopLimit: 1\n"
	cases := []struct {
		name, in, wantField string
		wantText            []string
	}{
		{"unknown kind", rulesConfig(rule("      kinds: [AWSCluster]\n", hop1)),
			"spec.rules[0].match.kinds[0]", []string{`"AWSCluster" is not allowed`, "AWSMachine, AWSMachineTemplate, AWSMachinePool, AWSManagedMachinePool"}},
		{"empty match", rulesConfig("  - name: r1\n    match: {}\n    instanceMetadataOptions:\n" + hop1),
			"spec.rules[0].match", []string{"empty", "match kinds, namespaces, names, labels or clusters"}},
		{"no match", rulesConfig("  - name: r1\n    instanceMetadataOptions:\n" + hop1),
			"spec.rules[0].match", []string{"empty"}},
		{"optional without allowOptional", rulesConfig(rule("      names: [a]\n", "      httpTokens: optional\n")),
			"spec.rules[0].instanceMetadataOptions.httpTokens", []string{"IMDSv1", "allowOptional: true"}},
		{"allowOptional without optional", rulesConfig("  - name: r1\n    allowOptional: true\n    match:\n      names: [a]\n    instanceMetadataOptions:\n" + hop1),
			"spec.rules[0].allowOptional", []string{"does not ask for httpTokens optional"}},
		{"option CAPA's enum refuses", rulesConfig(rule("      names: [a]\n", "      httpTokens: mandatory\n")),
			"spec.rules[0].instanceMetadataOptions.httpTokens", []string{`"mandatory" is not allowed`, "allowed: required, optional"}},
		{"hop limit out of range", rulesConfig(rule("      names: [a]\n", "      httpPutResponseHopLimit: 65\n")),
			"spec.rules[0].instanceMetadataOptions.httpPutResponseHopLimit", []string{"65 is out of range", "1..64"}},
		{"no options", rulesConfig("  - name: r1\n    match:\n      names: [a]\n"),
			"spec.rules[0].instanceMetadataOptions", []string{"sets no option"}},
		{"two rules with one name", rulesConfig(rule("      names: [a]\n", hop1) + rule("      names: [b]\n", hop1)),
			"spec.rules[1].name", []string{`"r1" is already the name of spec.rules[0]`}},
		{"no name", rulesConfig("  - match:\n      names: [a]\n    instanceMetadataOptions:\n" + hop1),
			"spec.rules[0].name", []string{"missing"}},
		{"name not a label", rulesConfig("  - name: Pod_Identity\n    match:\n      names: [a]\n    instanceMetadataOptions:\n" + hop1),
			"spec.rules[0].name", []string{`"Pod_Identity" is not allowed`}},
		{"unknown match field", rulesConfig(rule("      selector: {a: b}\n", hop1)),
			"spec.rules[0].match.selector", []string{"unknown field", "kinds, namespaces, names, labels, clusters"}},
		{"name glob with a character class", rulesConfig(rule("      names: [\"pool-[ab]\"]\n", hop1)),
			"spec.rules[0].match.names[0]", []string{`"pool-[ab]" is not allowed`, "wildcards * and ?"}},
		{"label value not a string", rulesConfig(rule("      labels: {spot: true}\n", hop1)),
			"spec.rules[0].match.labels.spot", []string{`rule "r1": `, "must be a string", "quote it"}},
		{"bad label key", rulesConfig(rule("      labels: {\"-bad\": x}\n", hop1)),
			"spec.rules[0].match.labels.-bad", []string{"is not a label key"}},
		{"kinds not a list", rulesConfig(rule("      kinds: AWSMachine\n", hop1)),
			"spec.rules[0].match.kinds", []string{"must be a list"}},
		{"rules not a list", configHeader + "spec:\n  rules: {name: x}\n",
			"spec.rules", []string{"must be a list"}},
		{"ConfigMap rule error names data.rules", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  rules: |\n" +
			indent(rule("      kinds: [AWSCluster]\n", hop1), "    "),
			"data.rules[0].match.kinds[0]", []string{`ConfigMap "m"`, `"AWSCluster" is not allowed`}},
		{"ConfigMap validation error names data.rules", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  rules: |\n" +
			indent(rule("      names: [a]\n", "      httpTokens: optional\n"), "    "),
			"data.rules[0].instanceMetadataOptions.httpTokens", []string{"allowOptional: true"}},
		{"ConfigMap rules not YAML", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  rules: \"- [\"\n",
			"data.rules", []string{"is not YAML"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfigText(t, tc.in)
			if err == nil {
				t.Fatalf("LoadConfig accepted a bad rule; got %+v", cfg.Rules)
			}
			var ce *transformers.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *transformers.ConfigError: %v", err, err)
			}
			if ce.Field != tc.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", ce.Field, tc.wantField, err)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error text lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// Which rule each resource gets, and the errors where the input cannot tell. Before
// rules, every resource got spec.instanceMetadataOptions.
func TestRulesChooseOptions(t *testing.T) {
	tmpl := func(name, ns, labels string) string {
		meta := "  name: " + name + "\n"
		if ns != "" {
			meta += "  namespace: " + ns + "\n"
		}
		if labels != "" {
			meta += "  labels:\n" + labels
		}
		return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplate\nmetadata:\n" + meta +
			"spec:\n  template:\n    spec:\n      instanceType: m7i.large\n"
	}
	md := func(name, ns, cluster, template string) string {
		return "apiVersion: cluster.x-k8s.io/v1beta2\nkind: MachineDeployment\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
			"\nspec:\n  clusterName: " + cluster + "\n  template:\n    spec:\n      clusterName: " + cluster +
			"\n      infrastructureRef:\n        apiGroup: infrastructure.cluster.x-k8s.io\n        kind: AWSMachineTemplate\n        name: " + template + "\n"
	}
	const hop1 = "    instanceMetadataOptions:\n      httpPutResponseHopLimit: 1\n"
	cases := []struct {
		name, rules, input string
		want               map[string]string // template name -> hop limit written
		wantTokens         map[string]string // template name -> httpTokens, when the case is about them
		wantErr            string
	}{
		{name: "no rule matches: defaults",
			rules: "  - name: r1\n    match:\n      names: [other]\n" + hop1,
			input: tmpl("a", "ns", ""), want: map[string]string{"a": "2"}},
		{name: "by name glob",
			rules: "  - name: r1\n    match:\n      names: [\"a-*\"]\n" + hop1,
			input: tmpl("a-1", "ns", "") + "---\n" + tmpl("b-1", "ns", ""), want: map[string]string{"a-1": "1", "b-1": "2"}},
		{name: "first matching rule wins",
			rules: "  - name: first\n    match:\n      names: [\"a\"]\n" + hop1 +
				"  - name: second\n    match:\n      kinds: [AWSMachineTemplate]\n    instanceMetadataOptions:\n      httpPutResponseHopLimit: 3\n",
			input: tmpl("a", "ns", "") + "---\n" + tmpl("b", "ns", ""), want: map[string]string{"a": "1", "b": "3"}},
		{name: "labels: every key must match",
			rules: "  - name: r1\n    match:\n      labels: {p: x, q: y}\n" + hop1,
			input: tmpl("a", "ns", "    p: x\n    q: y\n") + "---\n" + tmpl("b", "ns", "    p: x\n"),
			want:  map[string]string{"a": "1", "b": "2"}},
		{name: "kinds exclude",
			rules: "  - name: r1\n    match:\n      kinds: [AWSMachinePool]\n" + hop1,
			input: tmpl("a", "ns", ""), want: map[string]string{"a": "2"}},
		{name: "namespace glob",
			rules: "  - name: r1\n    match:\n      namespaces: [\"team-*\"]\n" + hop1,
			input: tmpl("a", "team-a", "") + "---\n" + tmpl("b", "ops", ""), want: map[string]string{"a": "1", "b": "2"}},
		{name: "cluster through a MachineDeployment",
			rules: "  - name: r1\n    match:\n      clusters: [prod]\n" + hop1,
			input: tmpl("a", "ns", "") + "---\n" + md("md-a", "ns", "prod", "a") + "---\n" + tmpl("b", "ns", "") + "---\n" + md("md-b", "ns", "dev", "b"),
			want:  map[string]string{"a": "1", "b": "2"}},
		{name: "cluster from the cluster-name label",
			rules: "  - name: r1\n    match:\n      clusters: [prod]\n" + hop1,
			input: tmpl("a", "ns", "    cluster.x-k8s.io/cluster-name: prod\n"), want: map[string]string{"a": "1"}},
		{name: "allowOptional never takes required away",
			rules: "  - name: legacy\n    allowOptional: true\n    match:\n      names: [\"*\"]\n    instanceMetadataOptions:\n      httpTokens: optional\n",
			input: strings.Replace(tmpl("a", "ns", ""), "      instanceType: m7i.large\n", "      instanceType: m7i.large\n      instanceMetadataOptions:\n        httpTokens: required\n", 1) +
				"---\n" + tmpl("b", "ns", ""),
			want: map[string]string{"a": "2", "b": "2"}, wantTokens: map[string]string{"a": "required", "b": "optional"}},
		{name: "namespace unknown is an error, not a guess",
			rules:   "  - name: r1\n    match:\n      namespaces: [\"team-*\"]\n" + hop1,
			input:   tmpl("a", "", ""),
			wantErr: `AWSMachineTemplate a metadata.namespace: rule "r1" matches by namespaces, but the resource sets no namespace and none is configured`},
		{name: "an earlier rule that decides spares the question",
			rules: "  - name: r0\n    match:\n      names: [a]\n" + hop1 +
				"  - name: r1\n    match:\n      namespaces: [\"team-*\"]\n    instanceMetadataOptions:\n      httpPutResponseHopLimit: 3\n",
			input: tmpl("a", "", ""), want: map[string]string{"a": "1"}},
		{name: "cluster unknown is an error",
			rules:   "  - name: r1\n    match:\n      clusters: [prod]\n" + hop1,
			input:   tmpl("a", "ns", ""),
			wantErr: `rule "r1" matches by clusters, but no Cluster in the input uses it`},
		{name: "one template, two clusters, one rule",
			rules:   "  - name: r1\n    match:\n      clusters: [prod]\n" + hop1,
			input:   tmpl("a", "ns", "") + "---\n" + md("md-a", "ns", "prod", "a") + "---\n" + md("md-b", "ns", "dev", "a"),
			wantErr: `serves Clusters prod, which rule "r1" matches, and dev, which it does not`},
		{name: "placeholder name is an error",
			rules:   "  - name: r1\n    match:\n      names: [\"prod-*\"]\n" + hop1,
			input:   tmpl("${CLUSTER_NAME}-md-0", "", ""),
			wantErr: `rule "r1" matches by names, but the name ${CLUSTER_NAME}-md-0 is a placeholder`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfigText(t, configHeader+"spec:\n  rules:\n"+tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			items, err := kio.FromBytes([]byte(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			out, results := transformers.Process(cfg, items)
			if tc.wantErr != "" {
				if results.ExitCode() == 0 || !strings.Contains(results.String(), tc.wantErr) {
					t.Fatalf("want an error with %q, got:\n%s", tc.wantErr, results)
				}
				return
			}
			if results.ExitCode() != 0 {
				t.Fatalf("unexpected errors:\n%s", results)
			}
			got, tokens := map[string]string{}, map[string]string{}
			for _, o := range out {
				if o.GetKind() == "AWSMachineTemplate" {
					v, _ := o.Pipe(yaml.Lookup("spec", "template", "spec", "instanceMetadataOptions", "httpPutResponseHopLimit"))
					got[o.GetName()] = strings.TrimSpace(v.MustString())
					v, _ = o.Pipe(yaml.Lookup("spec", "template", "spec", "instanceMetadataOptions", "httpTokens"))
					tokens[o.GetName()] = strings.TrimSpace(v.MustString())
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("hop limits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTokens, tokens); tc.wantTokens != nil && diff != "" {
				t.Errorf("httpTokens (-want +got):\n%s", diff)
			}
		})
	}
}
