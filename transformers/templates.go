package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/api/hasher"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// CAPA's AWSMachineTemplate webhook rejects any change to an existing template's spec,
// except adding instanceMetadataOptions where there was none. Changing httpTokens from
// optional to required on a live template fails the GitOps sync.

// RenamedFromAnnotation keeps a renamed template's original name, so a later rename
// starts from it instead of stacking suffixes.
const RenamedFromAnnotation = ConfigGroup + "/renamed-from"

func (r *run) immutableTemplateChanged(o *object) {
	const field = "spec.template.spec.instanceMetadataOptions"
	if !r.cfg.RenameOnChange {
		r.warnf(o, field, "requiring IMDSv2 changes existing instanceMetadataOptions: CAPA's webhook rejects changes to an existing "+
			"AWSMachineTemplate's spec, so applying this over a live template fails. Create a new template and point "+
			"the MachineDeployment or control plane at it, or set spec.templates.renameOnChange: true")
		return
	}
	base := o.annotation(RenamedFromAnnotation)
	if base == "" {
		base = o.name
	}
	spec := o.node.Field("spec")
	if spec == nil {
		return
	}
	j, err := spec.Value.MarshalJSON()
	if err != nil {
		r.errorf(o, "spec", "cannot hash the spec for renameOnChange: %v", err)
		return
	}
	// kustomize's ConfigMap-name hash: stable for the same spec, whatever its key order.
	suffix, err := hasher.SortArrayAndComputeHash([]string{string(j)})
	if err != nil {
		r.errorf(o, "spec", "cannot hash the spec for renameOnChange: %v", err)
		return
	}
	newName := generatedName(base, suffix)
	if newName == o.name {
		return
	}
	if _, err := mapAt(o.node.YNode(), "metadata", "annotations"); err != nil {
		r.fail(o, err)
		return
	}
	if r.renames == nil {
		r.renames = renamePhase{}
	}
	r.renames[o.key()] = rename{from: base, to: newName}
}

// maxNameLength is a DNS-1123 subdomain's, which Kubernetes object names must be.
const maxNameLength = 253

// generatedName is base-suffix, with the base shortened to fit as Cluster API and kustomize
// shorten the names they generate; a name cannot end in '-' or '.'.
func generatedName(base, suffix string) string {
	if room := maxNameLength - len(suffix) - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-.")
	}
	return base + "-" + suffix
}

// renamePhase is the renameOnChange state of one run: AWSMachineTemplate -> its new name.
type renamePhase map[objKey]rename

// rename is a template's new name and the name it started from.
type rename struct{ from, to string }

// renameTemplates applies the renames and rewrites every Cluster API reference to the
// renamed templates, in any shape (apiVersion or apiGroup; MachineDeployment, MachineSet,
// KubeadmControlPlane, ClusterClass), by matching kind, group, name and namespace.
func (r *run) renameTemplates() {
	if len(r.renames) == 0 {
		return
	}
	// A skipped resource is not edited, so a template it references keeps its name.
	for _, o := range r.objects {
		if !isClusterAPIGroup(o.group) || o.annotation(SkipAnnotation) != "true" {
			continue
		}
		r.walkTemplateRefs(o.node.YNode(), o.ns(), 0, func(k objKey, _ *yaml.Node, _ string) {
			if _, renamed := r.renames[k]; renamed {
				delete(r.renames, k)
				r.warnf(r.index[k], "metadata.name", "not renamed (renameOnChange): %s references it and is skipped; "+
					"CAPA's webhook rejects the changed instanceMetadataOptions on a live template", o)
			}
		})
	}
	refs := map[objKey]int{}
	for _, o := range r.objects {
		if !isClusterAPIGroup(o.group) || o.annotation(SkipAnnotation) == "true" {
			continue
		}
		r.walkTemplateRefs(o.node.YNode(), o.ns(), 0, func(k objKey, ref *yaml.Node, path string) {
			if rn, renamed := r.renames[k]; renamed {
				name := valueOf(ref, "name")
				r.record(edit{obj: o, field: join(path, "name"), current: name.Value, proposed: rn.to,
					finding: fmt.Sprintf("names AWSMachineTemplate %s, which renameOnChange renames to %s", name.Value, rn.to)})
				name.Value = rn.to
				refs[k]++
			}
		})
	}
	for _, o := range r.objects {
		rn, ok := r.renames[o.key()]
		if !ok {
			continue
		}
		newName := rn.to
		old := o.key()
		annotations, err := ensurePath(o.node.YNode(), "", "metadata", "annotations")
		if err != nil {
			r.fail(o, err)
			continue
		}
		if setScalar(annotations, RenamedFromAnnotation, rn.from, false) {
			r.record(edit{obj: o, field: "metadata.annotations." + RenamedFromAnnotation, proposed: rn.from})
		}
		if err := o.node.SetName(newName); err != nil {
			r.errorf(o, "metadata.name", "%v", err)
			continue
		}
		r.record(edit{obj: o, field: "metadata.name", current: old.name, proposed: newName})
		r.infof(o, "metadata.name", "renamed from %s to %s (renameOnChange): its instanceMetadataOptions changed and CAPA "+
			"forbids changing an existing template; %d reference(s) updated", old.name, newName, refs[old])
		o.name = newName
		delete(r.index, old)
		r.index[o.key()] = o
	}
}

func isClusterAPIGroup(g string) bool {
	return g == clusterGroup || len(g) > len(clusterGroup) && g[len(g)-len(clusterGroup)-1:] == "."+clusterGroup
}

// walkTemplateRefs calls fn for every reference to an AWSMachineTemplate under n, with the
// reference's field path.
func (r *run) walkTemplateRefs(n *yaml.Node, ns string, depth int, fn func(objKey, *yaml.Node, string)) {
	r.walkRefs(n, ns, "", depth, fn)
}

func (r *run) walkRefs(n *yaml.Node, ns, path string, depth int, fn func(objKey, *yaml.Node, string)) {
	if n == nil || depth > maxDepth {
		return
	}
	if n.Kind == yaml.MappingNode && scalarField(n, "kind") == "AWSMachineTemplate" {
		if k, ok := refKey(n, ns); ok && k.group == infraGroup {
			fn(k, n, path)
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			r.walkRefs(n.Content[i+1], ns, join(path, n.Content[i].Value), depth+1, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			r.walkRefs(c, ns, fmt.Sprintf("%s[%d]", path, i), depth+1, fn)
		}
	}
}
