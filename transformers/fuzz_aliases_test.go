package transformers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
)

// FuzzAliases rewrites CAPA's real templates with anchors, aliases and merge keys that
// leave their meaning unchanged, and checks that enforce and audit treat the rewritten
// document exactly as the fully expanded one: same output values, same findings.
//
//	go test -run '^$' -fuzz '^FuzzAliases$' -fuzztime 2m ./transformers/
//
// recipe picks which repeated scalars become aliases of their first occurrence and which
// mapping entries move under a `<<:` merge key.
func FuzzAliases(f *testing.F) {
	templates := capaTemplates(f)
	for i := range templates {
		f.Add(uint16(i), uint64(0x9e3779b97f4a7c15)*uint64(i+1))
		f.Add(uint16(i), ^uint64(0))
	}
	f.Fuzz(func(t *testing.T, which uint16, recipe uint64) {
		doc := templates[int(which)%len(templates)]
		aliased := withAliases(t, doc, recipe)
		expanded := expandedCopy(t, aliased)
		for _, mode := range []Mode{ModeEnforce, ModeAudit} {
			cfg := DefaultConfig()
			cfg.Mode = mode
			outA, resA := Process(cfg, aliased())
			outE, resE := Process(cfg, expanded())
			if a, e := resultLines(resA), resultLines(resE); a != e {
				t.Fatalf("%s: findings differ with aliases (-aliased +expanded):\n%s\n---\n%s", mode, a, e)
			}
			if a, e := values(t, outA), values(t, outE); !reflect.DeepEqual(a, e) {
				t.Fatalf("%s: output values differ with aliases:\n%s\n---\n%s", mode, dump(outA), dump(outE))
			}
		}
	})
}

func capaTemplates(f *testing.F) []string {
	capa, err := modcache.CAPADir()
	if err != nil {
		f.Skipf("CAPA module: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	var out []string
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			out = append(out, string(b))
		}
	}
	if len(out) == 0 {
		f.Skip("no CAPA templates")
	}
	return out
}

// withAliases returns a parser for doc rewritten by recipe; each call parses afresh, so
// the two runs share no nodes.
func withAliases(t *testing.T, doc string, recipe uint64) func() []*yaml.RNode {
	nodes := parseDoc(t, doc)
	bit := 0
	take := func() bool { b := recipe>>(bit%64)&1 == 1; bit++; return b }
	for ri, n := range nodes {
		first := map[string]*yaml.Node{}
		var walk func(m *yaml.Node)
		walk = func(m *yaml.Node) {
			for i := 0; i < len(m.Content); i++ {
				c := m.Content[i]
				isValue := m.Kind == yaml.SequenceNode || (m.Kind == yaml.MappingNode && i%2 == 1)
				if c.Kind == yaml.ScalarNode && isValue && c.Value != "" {
					key := c.Tag + "\x00" + c.Value
					if a, ok := first[key]; !ok {
						first[key] = c
					} else if take() {
						if a.Anchor == "" {
							a.Anchor = fmt.Sprintf("r%dn%d", ri, len(first))
						}
						m.Content[i] = &yaml.Node{Kind: yaml.AliasNode, Alias: a, Value: a.Anchor}
						continue
					}
				}
				if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
					walk(c)
				}
			}
			// Move this mapping's last scalar entry under a merge key (kept keys win).
			if m.Kind == yaml.MappingNode && len(m.Content) >= 4 && take() {
				k, v := m.Content[len(m.Content)-2], m.Content[len(m.Content)-1]
				if v.Kind == yaml.ScalarNode && k.Value != "apiVersion" && k.Value != "kind" {
					m.Content = append(m.Content[:len(m.Content)-2],
						&yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.MergeTag, Value: "<<"},
						&yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Style: yaml.FlowStyle, Content: []*yaml.Node{k, v}})
				}
			}
		}
		walk(n.YNode())
	}
	text := writeStream(t, nodes)
	return func() []*yaml.RNode { return parseStream(t, text) }
}

// expandedCopy is the same document with every alias and merge key expanded, as the API
// server reads it.
func expandedCopy(t *testing.T, parse func() []*yaml.RNode) func() []*yaml.RNode {
	nodes := parse()
	for _, n := range nodes {
		if err := n.DeAnchor(); err != nil {
			t.Fatalf("DeAnchor: %v", err)
		}
	}
	text := writeStream(t, nodes)
	return func() []*yaml.RNode { return parseStream(t, text) }
}

func parseDoc(t *testing.T, s string) []*yaml.RNode {
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(s), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	return nodes
}

func values(t *testing.T, nodes []*yaml.RNode) []any {
	var out []any
	for _, n := range nodes {
		c := n.Copy()
		if err := c.DeAnchor(); err != nil {
			t.Fatalf("output: %v", err)
		}
		j, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func resultLines(rs Results) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s\n", r)
	}
	return b.String()
}

func dump(nodes []*yaml.RNode) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.MustString())
		b.WriteString("---\n")
	}
	return b.String()
}
