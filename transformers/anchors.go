package transformers

import (
	"fmt"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// kubectl and the API server accept YAML anchors, aliases and `<<:` merge keys and see the
// expanded document. A resource the function reads must mean to it what it means to the
// API server, and an edit must never reach through an alias into another place (or
// another resource) sharing the anchor. So every resource the function may read is
// expanded in place before anything reads it, within a bound; resources it never reads
// keep their anchors, byte for byte, unless they borrow from another resource.

// aliasBudget bounds how many nodes expanding one resource may create: a "billion laughs"
// document must be refused, not expanded.
const aliasBudget = 10000

// expandAll expands the aliases and merge keys of every item the function reads, and of
// every item that borrows from another one. It returns the items it could not expand,
// with why; the caller reports them.
func expandAll(items []*yaml.RNode) map[*yaml.RNode]error {
	type plan struct{ expand bool }
	plans := make([]plan, len(items))
	for i, it := range items {
		y := it.YNode()
		if !hasAliasOrMerge(y, 0) {
			continue
		}
		// Decisions first, on the untouched trees: expanding one item clears anchors others
		// may still point at.
		plans[i].expand = borrowsFromOutside(y) || readsItem(y)
	}
	failed := map[*yaml.RNode]error{}
	for i, it := range items {
		if !plans[i].expand {
			continue
		}
		if err := deAnchor(it); err != nil {
			failed[it] = err
		}
	}
	return failed
}

// readsItem tells, from the item's expanded identity, whether the function reads it:
// Cluster API and CAPA objects, Secrets (bootstrap data) and lists that may hold them.
func readsItem(y *yaml.Node) bool {
	apiVersion, kind := resolvedScalar(y, "apiVersion"), resolvedScalar(y, "kind")
	group, _ := splitAPIVersion(apiVersion)
	switch {
	case isClusterAPIGroup(group):
		return true
	case group == "" && kind == "Secret":
		return true
	case len(kind) > len("List") && kind[len(kind)-len("List"):] == "List", kind == "List":
		return true
	}
	// An identity only a merge key gives: read the expanded copy.
	return resolvedScalar(y, "kind") == "" || apiVersion == ""
}

// resolvedScalar reads a top-level scalar through an alias or a merge key.
func resolvedScalar(m *yaml.Node, key string) string {
	if m == nil || m.Kind != yaml.MappingNode {
		return ""
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value == "<<" && k.Tag == yaml.MergeTag {
			merged = append(merged, v)
			continue
		}
		if k.Value != key {
			continue
		}
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.ScalarNode {
			return v.Value
		}
		return ""
	}
	for _, v := range merged {
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind == yaml.SequenceNode {
			for _, c := range v.Content {
				if s := resolvedScalar(deref(c), key); s != "" {
					return s
				}
			}
			continue
		}
		if s := resolvedScalar(v, key); s != "" {
			return s
		}
	}
	return ""
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// borrowsFromOutside reports an alias whose anchor lies outside the item: in a
// ResourceList every item is part of one document, and such an alias can neither be
// written back as it is nor edited without changing the other item.
func borrowsFromOutside(y *yaml.Node) bool {
	own := map[*yaml.Node]bool{}
	var collect func(n *yaml.Node, depth int)
	collect = func(n *yaml.Node, depth int) {
		if n == nil || depth > maxDepth || own[n] {
			return
		}
		own[n] = true
		if n.Kind == yaml.AliasNode {
			return
		}
		for _, c := range n.Content {
			collect(c, depth+1)
		}
	}
	collect(y, 0)
	for n := range own {
		if n.Kind == yaml.AliasNode && !own[n.Alias] {
			return true
		}
	}
	return false
}

// deAnchor expands aliases and merge keys in place, refusing what would expand past the
// budget. Alias targets are copied, never changed: another resource may share them.
func deAnchor(n *yaml.RNode) error {
	if !hasAliasOrMerge(n.YNode(), 0) {
		return nil
	}
	budget := aliasBudget
	expanded, err := copyExpanded(n.YNode(), &budget, 0)
	if err != nil {
		return err
	}
	// No aliases are left in the copy: kyaml's DeAnchor now only applies the merge keys,
	// as YAML 1.1 readers (the API server's) do.
	fresh := yaml.NewRNode(expanded)
	if err := fresh.DeAnchor(); err != nil {
		return fmt.Errorf("expanding YAML merge keys: %w", err)
	}
	n.SetYNode(fresh.YNode())
	return nil
}

var errAliasBudget = fmt.Errorf("YAML aliases would expand to more than %d nodes; refusing to expand them", aliasBudget)

// copyExpanded copies n with every alias replaced by a copy of what it names.
func copyExpanded(n *yaml.Node, budget *int, depth int) (*yaml.Node, error) {
	if depth > maxDepth {
		return nil, errAliasBudget
	}
	if *budget--; *budget < 0 {
		return nil, errAliasBudget
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil, fmt.Errorf("YAML alias *%s names no anchor", n.Value)
		}
		c, err := copyExpanded(n.Alias, budget, depth+1)
		if err != nil {
			return nil, err
		}
		// The alias's own comments stay where the alias was.
		if n.LineComment != "" {
			c.LineComment = n.LineComment
		}
		return c, nil
	}
	c := *n
	c.Anchor = ""
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			var err error
			if c.Content[i], err = copyExpanded(ch, budget, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return &c, nil
}

// hasAliasOrMerge reports an alias or a `<<` merge key anywhere under n.
func hasAliasOrMerge(n *yaml.Node, depth int) bool {
	if n == nil || depth > maxDepth {
		return false
	}
	if n.Kind == yaml.AliasNode {
		return true
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Tag == yaml.MergeTag {
				return true
			}
		}
	}
	for _, c := range n.Content {
		if hasAliasOrMerge(c, depth+1) {
			return true
		}
	}
	return false
}
