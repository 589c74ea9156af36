package transformers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// configHeader is the typed config's identity; cases append their metadata and spec.
const configHeader = "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\n"

// loadConfigText parses s and loads it as the function config. An empty s stands for
// an absent functionConfig (a nil node), which is what kyaml hands over then.
func loadConfigText(t *testing.T, s string) (*transformers.Config, error) {
	t.Helper()
	if s == "" {
		return transformers.LoadConfig(nil)
	}
	node, err := yaml.Parse(s)
	if err != nil {
		t.Fatalf("test input does not parse: %v\n%s", err, s)
	}
	return transformers.LoadConfig(node)
}

// ignoreSource: the config's name for messages is not what these tests are about.
var ignoreSource = cmpopts.IgnoreFields(transformers.Config{}, "Source")

func str(key, value string) transformers.Option { return transformers.Option{Key: key, Value: value} }

func hop(value string) transformers.Option {
	return transformers.Option{Key: "httpPutResponseHopLimit", Value: value, Int: true}
}

// defaultOptions is what the issue promises for an empty spec, in the order the
// function writes them (fixed, so output does not depend on how the user wrote keys).
func defaultOptions() []transformers.Option {
	return []transformers.Option{str("httpTokens", "required"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}
}

func defaultConfig() *transformers.Config {
	return &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, Options: defaultOptions(), BootstrapStrategy: transformers.BootstrapAuto}
}

func TestLoadConfigEmptySpecMeansDefaults(t *testing.T) {
	cases := map[string]string{
		"no spec":                          configHeader + "metadata:\n  name: x\n",
		"no metadata, no spec":             configHeader,
		"empty spec":                       configHeader + "metadata:\n  name: x\nspec: {}\n",
		"null spec":                        configHeader + "metadata:\n  name: x\nspec:\n",
		"empty instanceMetadataOptions":    configHeader + "spec:\n  instanceMetadataOptions: {}\n",
		"null instanceMetadataOptions":     configHeader + "spec:\n  instanceMetadataOptions: null\n",
		"empty managedMachinePools":        configHeader + "spec:\n  managedMachinePools: {bootstrap: {}}\n",
		"ConfigMap without data":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
		"ConfigMap with empty data":        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\n",
		"ConfigMap with null data":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n",
		"DefaultConfig agrees (see below)": configHeader + "spec: {}\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := loadConfigText(t, in)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if d := cmp.Diff(defaultConfig(), got, ignoreSource); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
	if d := cmp.Diff(defaultConfig(), transformers.DefaultConfig(), ignoreSource); d != "" {
		t.Errorf("DefaultConfig() (-want +got):\n%s", d)
	}
}

// Orchestrators annotate and label the functionConfig (kustomize adds
// config.kubernetes.io/local-config, kpt adds its own): metadata must never be checked
// strictly, or the function fails under exactly the tools it is written for.
func TestLoadConfigAcceptsArbitraryMetadata(t *testing.T) {
	cases := map[string]string{
		"kustomize local-config annotation": configHeader + `metadata:
  name: x
  annotations:
    config.kubernetes.io/local-config: "true"
spec:
  mode: enforce
`,
		"kpt annotations and labels": configHeader + `metadata:
  name: x
  namespace: team-a
  labels:
    app: capa-imds
  annotations:
    internal.config.kubernetes.io/path: fn-config.yaml
    config.kubernetes.io/index: "0"
    anything.example.com/else: "yes"
`,
		"object-meta fields a kubectl round trip adds": configHeader + `metadata:
  name: x
  uid: 0b0c1e6e-0000-0000-0000-000000000000
  resourceVersion: "12"
  generation: 3
  creationTimestamp: "2026-01-01T00:00:00Z"
`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := loadConfigText(t, in)
			if err != nil {
				t.Fatalf("LoadConfig refused metadata it must ignore: %v", err)
			}
			if d := cmp.Diff(defaultConfig(), got, ignoreSource); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadConfigPartialSpecKeepsOtherDefaults(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want *transformers.Config
	}{
		{
			name: "audit mode only",
			in:   configHeader + "spec:\n  mode: audit\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeAudit, Options: defaultOptions(), BootstrapStrategy: transformers.BootstrapAuto},
		},
		{
			name: "hop limit only",
			in:   configHeader + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 3\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "required"), hop("3"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "hop limit lower bound",
			in:   configHeader + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 1\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "required"), hop("1"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "hop limit upper bound",
			in:   configHeader + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 64\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "required"), hop("64"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			// httpProtocolIpv6 has no default: it is written only when configured, last.
			name: "ipv6 and tags, written in another order",
			in: configHeader + `spec:
  instanceMetadataOptions:
    httpProtocolIpv6: enabled
    instanceMetadataTags: enabled
    httpTokens: optional
`,
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "optional"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "enabled"), str("httpProtocolIpv6", "enabled")}},
		},
		{
			name: "httpEndpoint disabled",
			in:   configHeader + "spec:\n  instanceMetadataOptions:\n    httpEndpoint: disabled\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "required"), hop("2"), str("httpEndpoint", "disabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "bootstrap settings only",
			in: configHeader + `spec:
  managedMachinePools:
    bootstrap:
      strategy: secret
      secretName: ${CLUSTER_NAME}-boot
      eksClusterName: default_capi-imds-control-plane
`,
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, Options: defaultOptions(), BootstrapStrategy: transformers.BootstrapSecret,
				SecretName: "${CLUSTER_NAME}-boot", EKSClusterName: "default_capi-imds-control-plane"},
		},
		{
			name: "templates.renameOnChange",
			in:   configHeader + "spec:\n  templates:\n    renameOnChange: true\n",
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, Options: defaultOptions(), BootstrapStrategy: transformers.BootstrapAuto, RenameOnChange: true},
		},
		{
			name: "every field set",
			in: configHeader + `metadata:
  name: require-imdsv2
spec:
  mode: audit
  instanceMetadataOptions:
    httpTokens: required
    httpPutResponseHopLimit: 2
    httpEndpoint: enabled
    instanceMetadataTags: disabled
    httpProtocolIpv6: disabled
  managedMachinePools:
    bootstrap:
      strategy: keep
      secretName: ""
      eksClusterName: ""
      pinEKSClusterName: false
  namespace: team-a
`,
			want: &transformers.Config{Namespace: "team-a", Mode: transformers.ModeAudit, BootstrapStrategy: transformers.BootstrapKeep,
				Options: append(defaultOptions(), str("httpProtocolIpv6", "disabled"))},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfigText(t, tc.in)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if d := cmp.Diff(tc.want, got, ignoreSource); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

// kpt's inline `configMap:` produces a ConfigMap whose values are all strings; they are
// parsed strictly, so "3" is a hop limit.
func TestLoadConfigConfigMap(t *testing.T) {
	cm := func(data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: imds\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\ndata:\n" + data
	}
	cases := []struct {
		name string
		in   string
		want *transformers.Config
	}{
		{
			name: "hop limit as a string",
			in:   cm("  httpPutResponseHopLimit: \"3\"\n"),
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "required"), hop("3"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "mode and tokens",
			in:   cm("  mode: audit\n  httpTokens: optional\n"),
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeAudit, BootstrapStrategy: transformers.BootstrapAuto,
				Options: []transformers.Option{str("httpTokens", "optional"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "every key",
			in: cm(`  mode: enforce
  httpTokens: required
  httpPutResponseHopLimit: "64"
  httpEndpoint: enabled
  instanceMetadataTags: enabled
  httpProtocolIpv6: enabled
  bootstrapStrategy: secret
  secretName: my-bootstrap
  eksClusterName: default_c1-control-plane
  namespace: team-a
  pinEKSClusterName: "false"
`),
			want: &transformers.Config{Namespace: "team-a", Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapSecret,
				SecretName: "my-bootstrap", EKSClusterName: "default_c1-control-plane",
				Options: []transformers.Option{str("httpTokens", "required"), hop("64"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "enabled"), str("httpProtocolIpv6", "enabled")}},
		},
		{
			name: "renameOnChange",
			in:   cm("  renameOnChange: \"true\"\n  secretName: ${CLUSTER_NAME}.boot-0\n"),
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto, RenameOnChange: true,
				SecretName: "${CLUSTER_NAME}.boot-0",
				Options:    []transformers.Option{str("httpTokens", "required"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
		{
			name: "secretName of 253 characters",
			in:   cm("  secretName: " + strings.Repeat("a", 253) + "\n"),
			want: &transformers.Config{PinEKSClusterName: true, Mode: transformers.ModeEnforce, BootstrapStrategy: transformers.BootstrapAuto, SecretName: strings.Repeat("a", 253),
				Options: []transformers.Option{str("httpTokens", "required"), hop("2"), str("httpEndpoint", "enabled"), str("instanceMetadataTags", "disabled")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfigText(t, tc.in)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if d := cmp.Diff(tc.want, got, ignoreSource); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

// Every bad config must fail with an error that names the offending field and says what
// is allowed, so a user can fix it from the message alone.
func TestLoadConfigRejectsBadConfig(t *testing.T) {
	imds := func(body string) string {
		return configHeader + "metadata:\n  name: c\nspec:\n  instanceMetadataOptions:\n" + body
	}
	cm := func(data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n" + data
	}
	const enabledDisabled = "allowed: enabled, disabled"
	cases := []struct {
		name      string
		in        string
		wantField string
		// wantText are substrings of the full error text, which is what users see.
		wantText []string
	}{
		// Unknown fields, at every level.
		{"unknown top-level field", configHeader + "metadata:\n  name: c\ndata:\n  x: y\n",
			"data", []string{`IMDSConfig "c"`, "data: unknown field", "allowed here: apiVersion, kind, metadata, spec"}},
		{"unknown field in spec", configHeader + "metadata:\n  name: c\nspec:\n  httpTokens: required\n",
			"spec.httpTokens", []string{"spec.httpTokens: unknown field", "allowed here: mode, namespace, instanceMetadataOptions, managedMachinePools"}},
		{"misspelt option", imds("    httpToken: required\n"),
			"spec.instanceMetadataOptions.httpToken", []string{"unknown field", "httpTokens, httpPutResponseHopLimit, httpEndpoint, instanceMetadataTags, httpProtocolIpv6"}},
		{"metadataOptions spelling in the config", configHeader + "spec:\n  metadataOptions:\n    httpTokens: required\n",
			"spec.metadataOptions", []string{"unknown field", "instanceMetadataOptions"}},
		{"unknown field under managedMachinePools", configHeader + "spec:\n  managedMachinePools:\n    strategy: secret\n",
			"spec.managedMachinePools.strategy", []string{"unknown field", "allowed here: bootstrap"}},
		{"unknown field under bootstrap", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      clusterName: x\n",
			"spec.managedMachinePools.bootstrap.clusterName", []string{"unknown field", "strategy, secretName, eksClusterName, pinEKSClusterName"}},

		{"unknown field under templates", configHeader + "spec:\n  templates:\n    rename: true\n",
			"spec.templates.rename", []string{"unknown field", "allowed here: renameOnChange"}},

		// Enums.
		{"mode outside enum", configHeader + "spec:\n  mode: warn\n",
			"spec.mode", []string{`"warn" is not allowed`, "allowed: enforce, audit"}},
		{"mode is case-sensitive", configHeader + "spec:\n  mode: Enforce\n",
			"spec.mode", []string{`"Enforce" is not allowed`, "allowed: enforce, audit"}},
		{"httpTokens outside enum", imds("    httpTokens: mandatory\n"),
			"spec.instanceMetadataOptions.httpTokens", []string{`"mandatory" is not allowed`, "allowed: required, optional"}},
		{"httpEndpoint outside enum", imds("    httpEndpoint: \"on\"\n"),
			"spec.instanceMetadataOptions.httpEndpoint", []string{`"on" is not allowed`, enabledDisabled}},
		{"instanceMetadataTags outside enum", imds("    instanceMetadataTags: enable\n"),
			"spec.instanceMetadataOptions.instanceMetadataTags", []string{`"enable" is not allowed`, enabledDisabled}},
		{"httpProtocolIpv6 outside enum", imds("    httpProtocolIpv6: both\n"),
			"spec.instanceMetadataOptions.httpProtocolIpv6", []string{`"both" is not allowed`, enabledDisabled}},
		{"bootstrap strategy outside enum", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      strategy: always\n",
			"spec.managedMachinePools.bootstrap.strategy", []string{`"always" is not allowed`, "allowed: auto, secret, keep"}},

		// An empty string would silently mean the default.
		{"mode empty", configHeader + "spec:\n  mode: \"\"\n",
			"spec.mode", []string{`"" is not allowed`, "allowed: enforce, audit"}},
		{"httpTokens empty", imds("    httpTokens: ''\n"),
			"spec.instanceMetadataOptions.httpTokens", []string{`"" is not allowed`, "allowed: required, optional"}},
		{"strategy empty", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      strategy: \"\"\n",
			"spec.managedMachinePools.bootstrap.strategy", []string{`"" is not allowed`, "allowed: auto, secret, keep"}},
		{"ConfigMap mode empty", cm("  mode: \"\"\n"), "data.mode", []string{`"" is not allowed`, "allowed: enforce, audit"}},
		{"ConfigMap httpTokens empty", cm("  httpTokens: \"\"\n"), "data.httpTokens", []string{`"" is not allowed`, "allowed: required, optional"}},

		// Duplicate keys: which value wins would depend on the decoder.
		{"ConfigMap duplicate key", cm("  httpTokens: required\n  httpTokens: optional\n"),
			"data.httpTokens", []string{`ConfigMap "m"`, "data.httpTokens: duplicate key"}},
		{"IMDSConfig duplicate key", imds("    httpTokens: required\n    httpTokens: optional\n"),
			"spec.instanceMetadataOptions.httpTokens", []string{`IMDSConfig "c"`, "duplicate key"}},

		// Secret names: a lowercase RFC 1123 subdomain.
		{"hop limit 010: 8 to YAML 1.1 readers, 10 to people", configHeader + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 010\n",
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"not written in plain decimal", "write it as 8"}},
		{"hop limit 0x2", configHeader + "spec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 0x2\n",
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"not written in plain decimal", "write it as 2"}},
		{"ConfigMap hop limit 010", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  httpPutResponseHopLimit: \"010\"\n",
			"data.httpPutResponseHopLimit", []string{`"010" is not an integer`}},
		{"namespace not a DNS label", configHeader + "spec:\n  namespace: Team_A\n",
			"spec.namespace", []string{`"Team_A" is not a namespace name`}},
		{"namespace of 64 characters", configHeader + "spec:\n  namespace: " + strings.Repeat("a", 64) + "\n",
			"spec.namespace", []string{"at most 63 characters"}},
		{"pinEKSClusterName a string", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      pinEKSClusterName: \"no\"\n",
			"spec.managedMachinePools.bootstrap.pinEKSClusterName", []string{"must be true or false"}},
		{"secretName ends with a dash", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: bad-\n",
			"spec.managedMachinePools.bootstrap.secretName", []string{`"bad-" is not a valid Secret name`}},
		{"secretName with an empty label", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: a..b\n",
			"spec.managedMachinePools.bootstrap.secretName", []string{`"a..b" is not a valid Secret name`}},
		{"secretName label starts with a dash", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: a.-b\n",
			"spec.managedMachinePools.bootstrap.secretName", []string{"not a valid Secret name"}},
		{"secretName of 254 characters", configHeader + "spec:\n  managedMachinePools:\n    bootstrap:\n      secretName: " + strings.Repeat("a", 254) + "\n",
			"spec.managedMachinePools.bootstrap.secretName", []string{"not a valid Secret name", "at most 253 characters"}},

		// Hop limit: an integer in 1..64, nothing else.
		{"hop limit is a word", imds("    httpPutResponseHopLimit: two\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"must be an integer in 1..64", `the string "two"`}},
		{"hop limit is a quoted number", imds("    httpPutResponseHopLimit: \"2\"\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"must be an integer in 1..64", `the string "2"`}},
		{"hop limit 0", imds("    httpPutResponseHopLimit: 0\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"0 is out of range", "an integer in 1..64"}},
		{"hop limit 65", imds("    httpPutResponseHopLimit: 65\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"65 is out of range", "an integer in 1..64"}},
		{"hop limit negative", imds("    httpPutResponseHopLimit: -1\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"-1 is out of range", "an integer in 1..64"}},
		{"hop limit fractional", imds("    httpPutResponseHopLimit: 2.5\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"must be an integer in 1..64", "the number 2.5"}},
		{"hop limit a list", imds("    httpPutResponseHopLimit: [2]\n"),
			"spec.instanceMetadataOptions.httpPutResponseHopLimit", []string{"must be an integer in 1..64", "a list"}},

		// Types: kyaml would coerce these silently.
		{"httpTokens an integer", imds("    httpTokens: 5\n"),
			"spec.instanceMetadataOptions.httpTokens", []string{"must be a string", "the integer 5", "required, optional"}},
		{"httpEndpoint a boolean", imds("    httpEndpoint: true\n"),
			"spec.instanceMetadataOptions.httpEndpoint", []string{"must be a string", "the boolean true", "enabled, disabled"}},
		{"mode a list", configHeader + "spec:\n  mode: [audit]\n",
			"spec.mode", []string{"must be a string", "a list", "enforce, audit"}},
		{"renameOnChange a string", configHeader + "spec:\n  templates:\n    renameOnChange: \"yes\"\n",
			"spec.templates.renameOnChange", []string{"must be true or false", `the string "yes"`}},
		{"spec a list", configHeader + "spec:\n- mode: audit\n",
			"spec", []string{"spec: must be a mapping"}},
		{"spec a scalar", configHeader + "spec: audit\n",
			"spec", []string{"spec: must be a mapping"}},
		{"instanceMetadataOptions a scalar", configHeader + "spec:\n  instanceMetadataOptions: required\n",
			"spec.instanceMetadataOptions", []string{"must be a mapping"}},
		{"metadata a scalar", configHeader + "metadata: x\n",
			"metadata", []string{"metadata: must be a mapping"}},

		// Identity.
		{"wrong apiVersion", "apiVersion: fn.capa-imds.dev/v1\nkind: IMDSConfig\nmetadata:\n  name: c\n",
			"apiVersion", []string{`IMDSConfig "c"`, `"fn.capa-imds.dev/v1" is not supported`, "allowed: fn.capa-imds.dev/v1alpha1"}},
		{"wrong group", "apiVersion: capa-imds.dev/v1alpha1\nkind: IMDSConfig\n",
			"apiVersion", []string{`"capa-imds.dev/v1alpha1" is not supported`, "allowed: fn.capa-imds.dev/v1alpha1"}},
		{"wrong kind", "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: ImdsConfig\n",
			"kind", []string{`"ImdsConfig" is not supported`, "allowed: fn.capa-imds.dev/v1alpha1 IMDSConfig, or v1 ConfigMap"}},
		{"a ConfigMap of the wrong apiVersion", "apiVersion: v2\nkind: ConfigMap\n",
			"kind", []string{`v2 "ConfigMap" is not supported`, "or v1 ConfigMap"}},
		{"no kind at all", "apiVersion: fn.capa-imds.dev/v1alpha1\nspec: {}\n",
			"kind", []string{"is not supported", "IMDSConfig"}},
		{"a list, not a mapping", "- apiVersion: fn.capa-imds.dev/v1alpha1\n  kind: IMDSConfig\n",
			"", []string{"functionConfig: must be a mapping", "IMDSConfig", "ConfigMap"}},

		// The ConfigMap form.
		{"ConfigMap hop limit a word", cm("  httpPutResponseHopLimit: three\n"),
			"data.httpPutResponseHopLimit", []string{`ConfigMap "m"`, `"three" is not an integer in 1..64`}},
		{"ConfigMap hop limit 0", cm("  httpPutResponseHopLimit: \"0\"\n"),
			"data.httpPutResponseHopLimit", []string{"0 is out of range", "an integer in 1..64"}},
		{"ConfigMap hop limit 65", cm("  httpPutResponseHopLimit: \"65\"\n"),
			"data.httpPutResponseHopLimit", []string{"65 is out of range", "an integer in 1..64"}},
		{"ConfigMap hop limit with a sign", cm("  httpPutResponseHopLimit: \"+3\"\n"),
			"data.httpPutResponseHopLimit", []string{`"+3" is not an integer in 1..64`}},
		{"ConfigMap hop limit with spaces", cm("  httpPutResponseHopLimit: \" 3\"\n"),
			"data.httpPutResponseHopLimit", []string{`" 3" is not an integer in 1..64`}},
		{"ConfigMap unknown key", cm("  hopLimit: \"2\"\n"),
			"data.hopLimit", []string{"unknown key", "allowed: mode, namespace, httpTokens, httpPutResponseHopLimit, httpEndpoint, instanceMetadataTags, httpProtocolIpv6, bootstrapStrategy, secretName, eksClusterName, pinEKSClusterName"}},
		{"ConfigMap mode outside enum", cm("  mode: audited\n"),
			"data.mode", []string{`"audited" is not allowed`, "allowed: enforce, audit"}},
		{"ConfigMap httpTokens outside enum", cm("  httpTokens: Required\n"),
			"data.httpTokens", []string{`"Required" is not allowed`, "allowed: required, optional"}},
		{"ConfigMap strategy outside enum", cm("  bootstrapStrategy: none\n"),
			"data.bootstrapStrategy", []string{`"none" is not allowed`, "allowed: auto, secret, keep"}},
		{"ConfigMap renameOnChange not a boolean", cm("  renameOnChange: \"yes\"\n"),
			"data.renameOnChange", []string{`"yes" is not allowed`, "allowed: true, false"}},
		{"ConfigMap value a mapping", cm("  httpTokens:\n    value: required\n"),
			"data.httpTokens", []string{"must be a string"}},
		{"ConfigMap data a list", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n- mode\n",
			"data", []string{"data: must be a mapping"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfigText(t, tc.in)
			if err == nil {
				t.Fatalf("LoadConfig accepted a bad config; got %+v", cfg)
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

// A missing config must not silently mean "defaults": a typo in a kustomization would
// then hide the fact that the user's settings were never read. The error says how to
// supply one.
func TestLoadConfigMissingSaysHowToSupplyOne(t *testing.T) {
	for name, in := range map[string]string{
		"absent":        "",
		"empty mapping": "{}\n",
		"null":          "null\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfigText(t, in)
			if err == nil {
				t.Fatal("LoadConfig accepted a missing config")
			}
			for _, w := range []string{"functionConfig", "missing", "IMDSConfig", "fn.capa-imds.dev/v1alpha1", "capa-imds CONFIG", "--help"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error text lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// --help prints this reference; it must document every field a user can set, under the
// exact public names, so the reference cannot drift from the loader.
func TestConfigReferenceNamesEveryField(t *testing.T) {
	ref := transformers.ConfigReference()
	for _, w := range []string{
		"apiVersion: fn.capa-imds.dev/v1alpha1", "kind: IMDSConfig",
		"mode: enforce", "audit",
		"httpTokens: required", "optional",
		"httpPutResponseHopLimit: 2", "1..64",
		"httpEndpoint: enabled", "instanceMetadataTags: disabled", "httpProtocolIpv6",
		"managedMachinePools:", "bootstrap:", "strategy: auto", "secret | keep", "secretName:", "eksClusterName:",
		"ConfigMap", "bootstrapStrategy",
	} {
		if !strings.Contains(ref, w) {
			t.Errorf("ConfigReference() lacks %q", w)
		}
	}
	// The reference is itself a valid config: copying it from --help must work.
	if _, err := loadConfigText(t, ref[:strings.Index(ref, "\nA v1 ConfigMap")]); err != nil {
		t.Errorf("the reference shown by --help does not load: %v", err)
	}
}
