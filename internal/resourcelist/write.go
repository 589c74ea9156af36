// Package resourcelist writes a KRM ResourceList with the bytes kyaml's kio.ByteWriter
// writes, at a fraction of its memory.
//
// kio.ByteWriter deep-copies every item and encodes the whole ResourceList as one YAML
// document, and yaml.v3's emitter keeps every event of a document in one slice that it
// never trims (about 270 bytes an event), so writing costs memory proportional to the
// whole output, several times the input's size. Write encodes one item at a time, so
// that cost is bounded by the largest item.
package resourcelist

import (
	"bufio"
	"io"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Write writes items, fnConfig and results (each may be nil) as a ResourceList, byte
// for byte as kio.ByteWriter{KeepReaderAnnotations: true, WrappingKind: ResourceList}
// does. It edits the items as that writer edits its copies (empty metadata.annotations
// and metadata are dropped): the caller must be done with them.
//
// Items, functionConfig and results that hold a YAML alias go through kio.ByteWriter:
// an alias may point at an anchor in another item, which only one document can carry.
func Write(w io.Writer, items []*yaml.RNode, fnConfig, results *yaml.RNode) error {
	if hasAlias(items, fnConfig, results) {
		return kio.ByteWriter{Writer: w, KeepReaderAnnotations: true, FunctionConfig: fnConfig, Results: results,
			WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}.Write(items)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("apiVersion: " + kio.ResourceListAPIVersion + "\nkind: " + kio.ResourceListKind + "\n")
	if len(items) == 0 {
		bw.WriteString("items: []\n")
	} else {
		bw.WriteString("items:\n")
	}
	for _, it := range items {
		if err := yaml.ClearEmptyAnnotations(it); err != nil {
			return err
		}
		// A one-item sequence at the top level is emitted exactly as that item is inside
		// the items sequence at column 0.
		if err := encode(bw, &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{it.YNode()}}); err != nil {
			return err
		}
	}
	rest := &yaml.Node{Kind: yaml.MappingNode}
	if fnConfig != nil {
		rest.Content = append(rest.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "functionConfig"}, fnConfig.YNode())
	}
	if results != nil {
		rest.Content = append(rest.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "results"}, results.YNode())
	}
	if len(rest.Content) > 0 {
		if err := encode(bw, rest); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func encode(w io.Writer, n *yaml.Node) error {
	enc := yaml.NewEncoder(w)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}); err != nil {
		return err
	}
	return enc.Close()
}

func hasAlias(items []*yaml.RNode, more ...*yaml.RNode) bool {
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.AliasNode {
			return true
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	for _, list := range [][]*yaml.RNode{items, more} {
		for _, n := range list {
			if n != nil && walk(n.YNode()) {
				return true
			}
		}
	}
	return false
}
