package transformers

import (
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

func TestDuplicateKey(t *testing.T) {
	many := "m:\n"
	for i := 0; i < 40; i++ {
		many += "  k" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ": 1\n"
	}
	for _, tc := range []struct {
		name, in, want string
		dup            bool
	}{
		{name: "none", in: "a: 1\nb: {c: 2, d: [x, {e: 1}]}\n"},
		{name: "top level", in: "a: 1\nb: 2\na: 3\n", want: "a", dup: true},
		{name: "nested", in: "spec:\n  imds:\n    httpTokens: required\n    httpTokens: optional\n", want: "spec.imds.httpTokens", dup: true},
		{name: "in a sequence item", in: "spec:\n  items:\n  - a: 1\n  - b: 1\n    b: 2\n", want: "spec.items[1].b", dup: true},
		{name: "same key in sibling maps", in: "a: {x: 1}\nb: {x: 1}\n"},
		{name: "large mapping without duplicates", in: many},
		{name: "large mapping with a duplicate", in: many + "  kaa: 2\n", want: "m.kaa", dup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := yaml.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, dup := duplicateKey(n.YNode())
			if dup != tc.dup || got != tc.want {
				t.Errorf("duplicateKey = %q, %v; want %q, %v", got, dup, tc.want, tc.dup)
			}
		})
	}
}

// plainWord is a fast path in front of kyaml's YAML 1.1 check: wherever it says "plain",
// kyaml must agree that the value needs no quotes.
func FuzzPlainWord(f *testing.F) {
	for _, s := range []string{"required", "enabled", "AmazonLinux2023", "t3.large", "capi-imds-eks-bootstrap", "v1", "Secret",
		"y", "Y", "yes", "No", "ON", "off", "true", "False", "null", "NULL", "e5", "Inf", "NaN", ".inf", "0x10", "1e3", "0755",
		"2001-12-14", "a:b", "a b", "a#b", "~", "<<", "x/y", "_", "a.b.c", "fleet-000/c00000", "=", "a=", "a+b", "y=", "n+",
		"IyEvYmluL2Jhc2ggLXhlCi9ldGMvZWtzL2Jvb3RzdHJhcC5zaCBkZWZhdWx0X2NhcGktaW1kcy1jb250cm9sLXBsYW5l", "YWJj+/==", "e+5", "E=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if plainWord(v) && yaml.IsValueNonString(v) {
			t.Fatalf("plainWord(%q) is true, but a YAML 1.1 reader takes it for a non-string", v)
		}
	})
}

func TestPlainWord(t *testing.T) {
	for v, want := range map[string]bool{
		"required": true, "AmazonLinux": true, "t3.large": true, "fleet-000": true, "a/b_c.d-e": true,
		"": false, "yes": false, "On": false, "NULL": false, "0755": false, "1.33": false, ".inf": false,
		"IyEvYmluL2Jhc2g=": true, "a+b/c=": true,
		"${CLUSTER_NAME}": false, "a b": false, "a:b": false, "+ab": false, "=": false,
	} {
		if got := plainWord(v); got != want {
			t.Errorf("plainWord(%q) = %v, want %v", v, got, want)
		}
	}
}
