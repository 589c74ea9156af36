package transformers

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/fleet"
)

// FuzzLoadConfig feeds arbitrary YAML to the config loader. Plain `go test` runs the
// seeds (every config of the golden cases and a few hand-written ones); `make fuzz` runs
// it for FUZZTIME:
//
//	go test -run '^$' -fuzz '^FuzzLoadConfig$' -fuzztime 2m ./transformers/
//
// Invariants: no panic; exactly one of a config and an error; the node is not modified
// (it is echoed back as the ResourceList's functionConfig); an accepted config holds
// only values CAPA accepts; loading is deterministic.
func FuzzLoadConfig(f *testing.F) {
	for _, pattern := range []string{"testdata/golden/*/config.yaml", "../tests/testdata/*/config.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range []string{
		fleet.FunctionConfig,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  httpTokens: required\n  httpPutResponseHopLimit: \"3\"\n  mode: audit\n  bootstrapStrategy: secret\n  secretName: ${CLUSTER_NAME}-boot\n  eksClusterName: ns_cp\n",
		"apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/local-config: 'true'\nspec:\n  mode: enforce\n  instanceMetadataOptions:\n    httpTokens: optional\n    httpPutResponseHopLimit: 64\n    httpEndpoint: disabled\n    instanceMetadataTags: enabled\n    httpProtocolIpv6: enabled\n  managedMachinePools:\n    bootstrap:\n      strategy: keep\n      secretName: s\n      eksClusterName: \"${A:=b}_c\"\n",
		"apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nspec:\n  instanceMetadataOptions: &o {httpTokens: required}\n  x: *o\n",
		"apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nspec:\n  instanceMetadataOptions:\n    httpPutResponseHopLimit: 0x10\n",
		"apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nspec: [1, 2]\n",
		"kind: IMDSConfig\n",
		"[]\n",
		"null\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		node, err := yaml.Parse(string(data))
		if err != nil {
			return
		}
		before := node.MustString()
		cfg, err := LoadConfig(node)
		if after := node.MustString(); after != before {
			t.Fatalf("LoadConfig modified its input:\n--- before\n%s\n--- after\n%s", before, after)
		}
		if (cfg == nil) == (err == nil) {
			t.Fatalf("LoadConfig returned config %v and error %v", cfg, err)
		}
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			if _, err2 := LoadConfig(node); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("not deterministic: %v, then %v", err, err2)
			}
			return
		}
		checkResolvedConfig(t, cfg)
	})
}

func checkResolvedConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.Mode != ModeEnforce && cfg.Mode != ModeAudit {
		t.Fatalf("mode %q", cfg.Mode)
	}
	switch cfg.BootstrapStrategy {
	case BootstrapAuto, BootstrapSecret, BootstrapKeep:
	default:
		t.Fatalf("bootstrap strategy %q", cfg.BootstrapStrategy)
	}
	seen := map[string]bool{}
	for _, o := range cfg.Options {
		if seen[o.Key] {
			t.Fatalf("option %s twice", o.Key)
		}
		seen[o.Key] = true
		if o.Key == optHopLimit {
			n, err := strconv.ParseInt(o.Value, 10, 64)
			if !o.Int || err != nil || n < minHopLimit || n > maxHopLimit || strconv.FormatInt(n, 10) != o.Value {
				t.Fatalf("hop limit %+v", o)
			}
			continue
		}
		allowed, ok := optionEnums[o.Key]
		if !ok || o.Int {
			t.Fatalf("unknown option %+v", o)
		}
		if oneOf(o.Key, o.Value, allowed) != nil {
			t.Fatalf("option %s = %q is not one of %v", o.Key, o.Value, allowed)
		}
	}
	for _, k := range []string{optHTTPTokens, optHopLimit, optHTTPEndpoint, optTags} {
		if !seen[k] {
			t.Fatalf("option %s missing from %+v", k, cfg.Options)
		}
	}
	if cfg.SecretName != "" && !validSecretName(cfg.SecretName) {
		t.Fatalf("secret name %q", cfg.SecretName)
	}
	if cfg.EKSClusterName != "" {
		if err := validateEKSClusterName(cfg.EKSClusterName); err != nil {
			t.Fatalf("EKS cluster name %q accepted: %v", cfg.EKSClusterName, err)
		}
	}
}
