package transformers

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The expected names below were computed with CAPA v2.13.0's own code, not
// with this package: a throwaway module requiring
// sigs.k8s.io/cluster-api-provider-aws/v2 v2.13.0 printed
// eks.GenerateEKSName(name, namespace, 100) and
// hash.Base36TruncatedHash(s, length) for each input (`go run .` in
// /tmp/capavectors). Lengths in the comments are len(namespace+"_"+name) in
// bytes, which is what CAPA compares against 100.
var eksNameVectors = []struct {
	name, namespace, want string
}{
	{name: "capi-imds-control-plane", namespace: "default", want: "default_capi-imds-control-plane"},                               // 31
	{name: "cp", namespace: "ns", want: "ns_cp"},                                                                                   // 5
	{name: "", namespace: "", want: "_"},                                                                                           // 1
	{name: "a.b.c", namespace: "default", want: "default_a_b_c"},                                                                   // 13
	{name: "cp.v1.example.com", namespace: "team-a", want: "team-a_cp_v1_example_com"},                                             // 24
	{name: "...", namespace: "default", want: "default____"},                                                                       // 11
	{name: strings.Repeat("a", 91), namespace: "default", want: "default_" + strings.Repeat("a", 91)},                              // 99
	{name: strings.Repeat("a", 92), namespace: "default", want: "capa_eijrb5xsdb07r6v1ejhfmglvetk"},                                // 100
	{name: strings.Repeat("a", 93), namespace: "default", want: "capa_dgfncxivhstsxq7vxhv4v5js1mw"},                                // 101
	{name: strings.Repeat("a.", 45) + "a", namespace: "default", want: "default_" + strings.Repeat("a_", 45) + "a"},                // 99
	{name: strings.Repeat("a.", 46), namespace: "default", want: "capa_1e13w24yexcyqvguw7s0b4e0wcf"},                               // 100
	{name: strings.Repeat("x", 253), namespace: strings.Repeat("n", 63), want: "capa_zcmu6psw33lmvvmnu7ah5kl6pdy"},                 // 317
	{name: strings.Repeat("very-long-control-plane-name.", 8), namespace: "kube-system", want: "capa_zy35ryzgxrng3f7gulzzl3lugos"}, // 244
	{name: "контроль", namespace: "default", want: "default_контроль"},                                                             // 24 bytes, 16 runes
	{name: strings.Repeat("é", 45), namespace: "default", want: "default_" + strings.Repeat("é", 45)},                              // 98 bytes, 53 runes
	{name: strings.Repeat("é", 46), namespace: "default", want: "capa_wom3i8up7u9iy0tryjwn4ic7deu"},                                // 100 bytes, 54 runes
}

func TestGenerateEKSName(t *testing.T) {
	for _, tc := range eksNameVectors {
		got := generateEKSName(tc.name, tc.namespace, maxEKSClusterNameLength)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("generateEKSName(%q, %q) mismatch (-want +got):\n%s", tc.name, tc.namespace, diff)
		}
	}
}

func TestBase36TruncatedHash(t *testing.T) {
	// Computed with CAPA's hash.Base36TruncatedHash, see eksNameVectors.
	tests := []struct {
		s      string
		length int
		want   string
	}{
		{s: "", length: 1, want: "a"},
		{s: "", length: 27, want: "0n3vegz2b1ifbpkr06ywo0jw7ev"},
		{s: "", length: 64, want: "cy2vu1h3ii1p1au61bzs9gzpuqanvvcpumgdvmgbjtsw36w30mwjk03dx34q2baq"},
		{s: "abc", length: 1, want: "z"},
		{s: "abc", length: 27, want: "mq6rrdo7kg00f5tj8x8q2clm96t"},
		{s: "abc", length: 64, want: "6klr8s5dy372fiuh4xbkwig33i7333ithrhl6rd9eax6xfo5ovuo3p2i5zqlw09z"},
		{s: "default_capi-imds-control-plane", length: 1, want: "2"},
		{s: "default_capi-imds-control-plane", length: 27, want: "b1ox1b1lynt6jox3y6tjcvmra50"},
		{s: "default_capi-imds-control-plane", length: 64, want: "ovwc5boqrsyr8cdbwgsrjj1fox4hysqaaay0cokf3olffawxp7r4il3uw5pfe4nq"},
	}
	for _, tc := range tests {
		got := base36TruncatedHash(tc.s, tc.length)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("base36TruncatedHash(%q, %d) mismatch (-want +got):\n%s", tc.s, tc.length, diff)
		}
	}
}

func TestBase36TruncatedHashInvalidLength(t *testing.T) {
	// CAPA returns an error for these; we never call it with them.
	for _, length := range []int{-1, 0, 65} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("base36TruncatedHash(_, %d) did not panic", length)
				}
			}()
			base36TruncatedHash("x", length)
		}()
	}
}

func TestDeriveEKSClusterName(t *testing.T) {
	type result struct {
		Name      string
		Templated bool
	}
	tests := []struct {
		desc, controlPlaneName, namespace string
		want                              result
	}{
		{
			desc:             "seed",
			controlPlaneName: "capi-imds-control-plane", namespace: "default",
			want: result{Name: "default_capi-imds-control-plane"},
		},
		{
			desc:             "dots are escaped",
			controlPlaneName: "a.b.c", namespace: "default",
			want: result{Name: "default_a_b_c"},
		},
		{
			desc:             "long name is hashed",
			controlPlaneName: strings.Repeat("a", 92), namespace: "default",
			want: result{Name: "capa_eijrb5xsdb07r6v1ejhfmglvetk"},
		},
		{
			desc:             "clusterctl template",
			controlPlaneName: "${CLUSTER_NAME}-control-plane", namespace: "${NAMESPACE}",
			want: result{Name: "${NAMESPACE}_${CLUSTER_NAME}-control-plane", Templated: true},
		},
		{
			desc:             "placeholder only in namespace",
			controlPlaneName: "cp.v1", namespace: "${NAMESPACE}",
			want: result{Name: "${NAMESPACE}_cp_v1", Templated: true},
		},
		{
			desc:             "placeholder only in name",
			controlPlaneName: "${CLUSTER_NAME}.cp", namespace: "default",
			want: result{Name: "default_${CLUSTER_NAME}_cp", Templated: true},
		},
		{
			desc:             "dot in placeholder default is kept",
			controlPlaneName: "${X:=a.b}.c", namespace: "${NAMESPACE}",
			want: result{Name: "${NAMESPACE}_${X:=a.b}_c", Templated: true},
		},
		{
			desc:             "nested placeholder default",
			controlPlaneName: "p.${A:=${B:=x.y}.z}.q", namespace: "ns",
			want: result{Name: "ns_p_${A:=${B:=x.y}.z}_q", Templated: true},
		},
		{
			desc:             "long templated name is not hashed",
			controlPlaneName: "${CLUSTER_NAME}" + strings.Repeat("a", 200), namespace: "ns",
			want: result{Name: "ns_${CLUSTER_NAME}" + strings.Repeat("a", 200), Templated: true},
		},
		{
			desc:             "unterminated placeholder is left for validation",
			controlPlaneName: "a.b${X.y", namespace: "ns",
			want: result{Name: "ns_a_b${X.y", Templated: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got result
			got.Name, got.Templated = deriveEKSClusterName(tc.controlPlaneName, tc.namespace)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("deriveEKSClusterName(%q, %q) mismatch (-want +got):\n%s", tc.controlPlaneName, tc.namespace, diff)
			}
		})
	}
}

func TestValidateEKSClusterName(t *testing.T) {
	tests := []struct {
		desc, name string
		// wantErr is a substring of the expected error; empty means valid.
		wantErr string
	}{
		{desc: "seed", name: "default_capi-imds-control-plane"},
		{desc: "hashed", name: "capa_eijrb5xsdb07r6v1ejhfmglvetk"},
		{desc: "single digit", name: "0"},
		{desc: "mixed case", name: "My-Cluster_01"},
		{desc: "100 characters", name: strings.Repeat("a", 100)},
		{desc: "101 characters", name: strings.Repeat("a", 101), wantErr: "is 101 characters long, EKS allows at most 100"},
		{desc: "empty", name: "", wantErr: "must not be empty"},
		{desc: "leading underscore", name: "_default", wantErr: `must start with a letter or digit, not '_'`},
		{desc: "leading dash", name: "-default", wantErr: `must start with a letter or digit, not '-'`},
		{desc: "only underscore", name: "_", wantErr: `must start with a letter or digit, not '_'`},
		{desc: "dollar", name: "a$b", wantErr: `"a$b" contains '$'`},
		{desc: "semicolon", name: "a;reboot", wantErr: `contains ';'`},
		{desc: "backtick", name: "a`id`", wantErr: "contains '`'"},
		{desc: "space", name: "a b", wantErr: `contains ' '`},
		{desc: "newline", name: "a\nb", wantErr: `contains '\n'`},
		{desc: "double quote", name: `a"b`, wantErr: `contains '"'`},
		{desc: "single quote", name: "a'b", wantErr: `contains '\''`},
		{desc: "dot", name: "a.b", wantErr: `contains '.'`},
		{desc: "subshell", name: "a$(id)", wantErr: `contains '$'`},
		{desc: "unicode", name: "default_контроль", wantErr: `contains 'к'`},
		{desc: "leading unicode", name: "éa", wantErr: `must start with a letter or digit, not 'é'`},
		{desc: "invalid utf-8", name: "a\xffb", wantErr: `contains '�'`},
		{desc: "closing brace without placeholder", name: "a}", wantErr: `contains '}'`},
		{desc: "templated", name: "${NAMESPACE}_${CLUSTER_NAME}-control-plane"},
		{desc: "templated starting with literal", name: "eks-${CLUSTER_NAME}"},
		{desc: "templated with dotted default", name: "${NAMESPACE}_${X:=a.b}_c"},
		// A nested placeholder could hide anything in its default: refused.
		{desc: "templated nested", name: "ns_p_${A:=${B:=x.y}.z}_q", wantErr: `placeholder "${A:=${B:=x.y}.z}" is not allowed`},
		{desc: "templated shell in default", name: "${X:=a;reboot}", wantErr: `placeholder "${X:=a;reboot}" is not allowed`},
		{desc: "templated command substitution", name: "${X:-$(id)}", wantErr: `is not allowed`},
		{desc: "templated bad variable name", name: "${1X}", wantErr: `is not allowed`},
		{desc: "templated dash default", name: "${X:-a.b}"},
		{desc: "templated is not length checked", name: "${NAMESPACE}_" + strings.Repeat("a", 200)},
		{desc: "templated leading underscore", name: "_${CLUSTER_NAME}", wantErr: `must start with a letter or digit, not '_'`},
		{desc: "templated leading underscore after placeholder is fine", name: "${NAMESPACE}_x"},
		{desc: "templated dot outside", name: "${NAMESPACE}_a.b", wantErr: `contains '.'`},
		{desc: "templated semicolon outside", name: "${CLUSTER_NAME};reboot", wantErr: `contains ';'`},
		{desc: "templated bare dollar outside", name: "${NAMESPACE}_$USER", wantErr: `contains '$'`},
		{desc: "templated space between", name: "${A} ${B}", wantErr: `contains ' '`},
		{desc: "templated stray brace", name: "${A}}", wantErr: `contains '}'`},
		{desc: "unterminated", name: "ns_${CLUSTER_NAME", wantErr: `unterminated placeholder "${CLUSTER_NAME"`},
		{desc: "unterminated nested", name: "${A:=${B}", wantErr: `unterminated placeholder "${A:=${B}"`},
		{desc: "unterminated after valid", name: "${A}_${", wantErr: `unterminated placeholder "${"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := validateEKSClusterName(tc.name)
			var got string
			if err != nil {
				got = err.Error()
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("validateEKSClusterName(%q) = %v, want nil", tc.name, err)
				}
				return
			}
			if !strings.Contains(got, tc.wantErr) {
				t.Errorf("validateEKSClusterName(%q) = %q, want error containing %q", tc.name, got, tc.wantErr)
			}
		})
	}
}

func TestHasPlaceholder(t *testing.T) {
	tests := map[string]bool{
		"":                false,
		"default":         false,
		"$NAMESPACE":      false,
		"{x}":             false,
		"${NAMESPACE}":    true,
		"a-${X}":          true,
		"unterminated ${": true,
	}
	for s, want := range tests {
		if got := hasPlaceholder(s); got != want {
			t.Errorf("hasPlaceholder(%q) = %v, want %v", s, got, want)
		}
	}
}

var (
	eksNameRE       = regexp.MustCompile(`^[0-9A-Za-z][A-Za-z0-9_-]*$`)
	hashedEKSNameRE = regexp.MustCompile(`^capa_[0-9a-z]{27}$`)
	dnsishNameRE    = regexp.MustCompile(`^[a-z0-9.-]*$`)
	// A Kubernetes namespace is a DNS label, so it starts with [a-z0-9]; a
	// leading '-' or an empty namespace would make CAPA's name invalid.
	dnsishNamespaceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

func FuzzEKSName(f *testing.F) {
	for _, v := range eksNameVectors {
		f.Add(v.name, v.namespace)
	}
	f.Add("${CLUSTER_NAME}-control-plane", "${NAMESPACE}")
	f.Add("${X:=a.b}.c", "ns")
	f.Add("a${", "ns")
	f.Fuzz(func(t *testing.T, name, namespace string) {
		got := generateEKSName(name, namespace, maxEKSClusterNameLength)
		if again := generateEKSName(name, namespace, maxEKSClusterNameLength); again != got {
			t.Fatalf("generateEKSName(%q, %q) not deterministic: %q then %q", name, namespace, got, again)
		}
		unhashed := namespace + "_" + strings.ReplaceAll(name, ".", "_")
		if len(unhashed) < maxEKSClusterNameLength {
			if got != unhashed {
				t.Fatalf("generateEKSName(%q, %q) = %q, want unhashed %q", name, namespace, got, unhashed)
			}
		} else if !hashedEKSNameRE.MatchString(got) {
			t.Fatalf("generateEKSName(%q, %q) = %q, want capa_ + 27 base36 characters", name, namespace, got)
		}
		if dnsishNameRE.MatchString(name) && dnsishNamespaceRE.MatchString(namespace) {
			if err := validateEKSClusterName(got); err != nil {
				t.Fatalf("generateEKSName(%q, %q) = %q fails validation: %v", name, namespace, got, err)
			}
		}

		derived, templated := deriveEKSClusterName(name, namespace)
		if templated != (hasPlaceholder(name) || hasPlaceholder(namespace)) {
			t.Fatalf("deriveEKSClusterName(%q, %q) templated = %v", name, namespace, templated)
		}
		if !templated && derived != got {
			t.Fatalf("deriveEKSClusterName(%q, %q) = %q, want %q", name, namespace, derived, got)
		}

		// Whatever validation accepts without placeholders must be safe to
		// put in a shell script, and accepted input must stay accepted.
		for _, s := range []string{name, namespace, got, derived} {
			if validateEKSClusterName(s) == nil && !hasPlaceholder(s) {
				if !eksNameRE.MatchString(s) || len(s) > maxEKSClusterNameLength {
					t.Fatalf("validateEKSClusterName accepted %q", s)
				}
			}
		}
	})
}

// eksCluster is a Cluster, its AWSManagedControlPlane, one AL2 managed pool and its
// MachinePool; ns "" writes no namespace, cpSpec is appended to the control plane's spec.
func eksCluster(name, ns, cpSpec string) string {
	meta := func(n string) string {
		if ns == "" {
			return "metadata:\n  name: " + n + "\n"
		}
		return "metadata:\n  name: " + n + "\n  namespace: " + ns + "\n"
	}
	return "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\n" + meta(name) + `spec:
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: ` + name + `-cp
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
` + meta(name+"-cp") + `spec:
  region: eu-west-1
  version: v1.31.0
` + cpSpec + `---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
` + meta(name+"-mp") + `spec:
  clusterName: ` + name + `
  template:
    spec:
      clusterName: ` + name + `
      bootstrap: {}
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
        name: ` + name + `-pool
      version: v1.31.0
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
` + meta(name+"-pool") + `spec:
  amiType: AL2_x86_64
  instanceType: t3.large
`
}

// A pinned EKS name is never shared by two control planes: CAPA v2.13 adopts an existing
// EKS cluster of the name it computes (its ownership check, aws.String(tag) == nil, is never
// true), so two control planes of one name in one account and region share one cluster.
// Each case runs in both modes; wantErr is where the error must be ("" for none), and
// wantPin the eksClusterName enforce writes into the first control plane.
func TestEKSNameNeverShared(t *testing.T) {
	second := "---\n" + eksCluster("c2", "ns", "")
	cases := []struct {
		name, config, namespace, in string
		wantErr                     string // "Kind name field" of the error
		words                       []string
		wantPin                     string
	}{
		{
			// Before: both control planes pinned to prod, exit 0.
			name: "eksClusterName in the config for two Clusters: refused", config: "eksClusterName: prod",
			in:      eksCluster("c1", "ns", "") + second,
			wantErr: "AWSManagedControlPlane c2-cp spec.eksClusterName",
			words:   []string{`eksClusterName "prod"`, "Cluster ns/c1", "Cluster ns/c2", "adopts", "once per Cluster"},
		},
		{
			name: "eksClusterName in the config for one Cluster: pinned", config: "eksClusterName: prod",
			in: eksCluster("c1", "ns", ""), wantPin: "prod",
		},
		{
			// Before: c1 pinned to prod; c2's control plane (elsewhere) joined by the same name.
			name:    "eksClusterName in the config for two Clusters, one control plane not in the input: refused",
			config:  "eksClusterName: prod",
			in:      eksCluster("c1", "ns", "") + "---\n" + strings.SplitN(eksCluster("c2", "ns", ""), "---\n", 3)[2],
			wantErr: "MachinePool c2-mp spec.clusterName",
			words:   []string{`eksClusterName "prod"`, "Cluster ns/c2"},
		},
		{
			// Before: a warning, and default_c1-cp pinned: the chart in two namespaces shares one EKS cluster.
			name: "no namespace anywhere: refused", in: eksCluster("c1", "", ""),
			wantErr: "AWSManagedControlPlane c1-cp metadata.namespace",
			words: []string{"no namespace", "two namespaces", "spec.namespace in the IMDSConfig", "--namespace NS",
				"CAPA_IMDS_NAMESPACE", "ARGOCD_APP_NAMESPACE", "metadata.namespace", "spec.eksClusterName"},
		},
		{
			// Before: a warning in enforce (the script named default_c1-cp, unpinned), an error in audit.
			name: "no namespace, pinning off: refused", config: "pinEKSClusterName: false", in: eksCluster("c1", "", ""),
			wantErr: "AWSManagedControlPlane c1-cp metadata.namespace",
			words:   []string{"no namespace", "as if in \"default\"", "never join", "--namespace NS"},
		},
		{
			// Before: accepted when the override happened to equal default_c1-cp.
			name: "no namespace, pinning off, eksClusterName in the config: refused", config: "pinEKSClusterName: false\n      eksClusterName: default_c1-cp",
			in:      eksCluster("c1", "", ""),
			wantErr: "AWSManagedControlPlane c1-cp metadata.namespace",
			words:   []string{"no namespace", "default_c1-cp may not be the name CAPA derives"},
		},
		{
			name: "no namespace, but eksClusterName in the config: pinned to it", config: "eksClusterName: prod",
			in: eksCluster("c1", "", ""), wantPin: "prod",
		},
		{
			name: "no namespace, but one configured: derived there", namespace: "team-a",
			in: eksCluster("c1", "", ""), wantPin: "team-a_c1-cp",
		},
		{
			name: "no namespace, but the control plane names its EKS cluster: kept", in: eksCluster("c1", "", "  eksClusterName: mine\n"),
			wantPin: "mine",
		},
		{
			// Before: exit 0; CAPA would give c2's control plane c1's EKS cluster.
			name:    "two control planes name one EKS cluster: refused",
			in:      eksCluster("c1", "ns", "  eksClusterName: shared\n") + "---\n" + eksCluster("c2", "ns", "  eksClusterName: shared\n"),
			wantErr: "AWSManagedControlPlane c2-cp spec.eksClusterName",
			words:   []string{`EKS cluster "shared"`, "ns/c1-cp", "adopts", "its own spec.eksClusterName"},
		},
		{
			// Before: exit 0 after a kustomize base set the name both overlays inherit.
			name: "one name in one namespace through two prefixes: refused",
			in: eksCluster("a-c1", "ns", "  eksClusterName: ${CLUSTER_NAME}\n") + "---\n" +
				eksCluster("b-c1", "ns", "  eksClusterName: ${CLUSTER_NAME}\n"),
			wantErr: "AWSManagedControlPlane b-c1-cp spec.eksClusterName",
			words:   []string{`"${CLUSTER_NAME}"`},
		},
		{
			name: "one name in two regions: two EKS clusters, accepted",
			in: eksCluster("c1", "ns", "  eksClusterName: shared\n") + "---\n" +
				strings.Replace(eksCluster("c2", "ns", "  eksClusterName: shared\n"), "eu-west-1", "us-east-1", 1),
		},
		{
			name: "two derived names: accepted", in: eksCluster("c1", "ns", "") + second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []Mode{ModeEnforce, ModeAudit} {
				spec := "spec:\n  mode: " + string(mode) + "\n"
				if tc.namespace != "" {
					spec += "  namespace: " + tc.namespace + "\n"
				}
				if tc.config != "" {
					spec += "  managedMachinePools:\n    bootstrap:\n      " + tc.config + "\n"
				}
				node, err := yaml.Parse("apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nmetadata:\n  name: t\n" + spec)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := LoadConfig(node)
				if err != nil {
					t.Fatal(err)
				}
				out, results := Process(cfg, parseStream(t, tc.in))
				var found *Result
				for _, r := range results {
					if r.Severity == Error && r.ResourceRef != nil && r.Field != nil &&
						r.ResourceRef.Kind+" "+r.ResourceRef.Name+" "+r.Field.Path == tc.wantErr {
						found = r
					}
				}
				switch {
				case tc.wantErr == "" && mode == ModeEnforce && results.ExitCode() != 0:
					t.Fatalf("%s: the run failed:\n%s", mode, renderResults(results))
				case tc.wantErr != "" && found == nil:
					t.Fatalf("%s: no error on %s:\n%s", mode, tc.wantErr, renderResults(results))
				case found != nil:
					for _, w := range tc.words {
						if !strings.Contains(found.Message, w) {
							t.Errorf("%s: the error lacks %q: %s", mode, w, found.Message)
						}
					}
				}
				if tc.wantPin != "" && mode == ModeEnforce {
					var pinned string
					for _, n := range out {
						if n.GetKind() == "AWSManagedControlPlane" && n.GetName() == "c1-cp" {
							pinned, _ = n.GetString("spec.eksClusterName")
						}
					}
					if pinned != tc.wantPin {
						t.Errorf("eksClusterName %q, want %q", pinned, tc.wantPin)
					}
				}
			}
		})
	}
}

// Two pools of one control plane with no namespace: one error, not one per pool.
func TestUnknownNamespaceReportedOnce(t *testing.T) {
	in := eksCluster("c1", "", "")
	mp := in[strings.Index(in, "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachinePool"):]
	in += "---\n" + strings.NewReplacer("c1-mp", "c1-mp2", "c1-pool", "c1-pool2").Replace(mp)
	_, results := Process(DefaultConfig(), parseStream(t, in))
	n := 0
	for _, r := range results {
		if r.Severity == Error && strings.Contains(r.Message, "no namespace, and none configured") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d unknown-namespace errors, want 1:\n%s", n, renderResults(results))
	}
}
