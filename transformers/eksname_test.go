package transformers

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
