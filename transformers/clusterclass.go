package transformers

import (
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// A ClusterClass's patches are applied by Cluster API's topology controller, in the
// management cluster, to the AWSMachineTemplates it clones for every Cluster of the class:
// after any render, so a patch can undo what the function wrote into the templates. Patches
// apply in order, so the function appends one inline patch, last, that writes the
// configured instanceMetadataOptions into every AWSMachineTemplate the class uses: it wins
// over every earlier inline or external (Runtime SDK) patch. Audit reports a class without
// it, and every earlier patch that could set a non-compliant value.

// FinalPatchName names the patch the function owns in a ClusterClass.
const FinalPatchName = "capa-imds-require-imdsv2"

// classTarget is one AWSMachineTemplate a ClusterClass uses, and how patches select it.
type classTarget struct {
	controlPlane bool
	mdClass      string     // machine deployment class name, when not the control plane
	template     objKey     // the AWSMachineTemplate
	ref          *yaml.Node // the reference to it, for messages
}

// processClusterClasses runs after every template is enforced: the final patch carries
// each template's own keys (httpProtocolIpv6 in CAPA's IPv6 flavors) beside the config's.
func (r *run) processClusterClasses() {
	for _, o := range r.objects {
		if o.group != clusterGroup || o.kind != "ClusterClass" || o.removed {
			continue
		}
		if r.skipped(o) {
			continue
		}
		r.processClusterClass(o)
	}
}

func (r *run) processClusterClass(o *object) {
	targets := classTargets(o)
	if len(targets) == 0 {
		return
	}
	spec, err := ensurePath(o.node.YNode(), "", "spec")
	if err != nil {
		r.fail(o, err)
		return
	}
	patches := valueOf(spec, "patches")
	if patches != nil && !isNull(patches) && patches.Kind != yaml.SequenceNode {
		r.fail(o, &fieldError{path: "spec.patches", msg: "must be a list, found " + describeNode(patches)})
		return
	}
	want := r.finalPatch(targets)
	final, last := -1, false
	if patches != nil && patches.Kind == yaml.SequenceNode {
		for i, p := range patches.Content {
			if scalarField(p, "name") == FinalPatchName {
				final, last = i, i == len(patches.Content)-1
			}
		}
	}
	compliant := final >= 0 && last && sameValue(patches.Content[final], want)
	if !compliant && r.cfg.Mode == ModeAudit {
		r.auditPatches(o, patches, targets)
	}
	if compliant {
		return
	}
	current := "missing"
	switch {
	case final >= 0 && !last:
		current = "not last"
	case final >= 0:
		current = "different"
	}
	if patches == nil || isNull(patches) {
		patches = &yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq}
		setNode(spec, "patches", patches)
	}
	if final >= 0 {
		patches.Content = append(patches.Content[:final], patches.Content[final+1:]...)
	}
	patches.Content = append(patches.Content, want)
	r.record(edit{obj: o, field: "spec.patches", current: current, proposed: FinalPatchName + " (last)",
		finding: fmt.Sprintf("the patch %s is %s: patches apply in order, and without it last an earlier inline or external "+
			"patch can set instanceMetadataOptions on the AWSMachineTemplates the topology controller clones", FinalPatchName, current),
		note: warn("appended the patch %s, last, which writes the configured instanceMetadataOptions into every AWSMachineTemplate "+
			"of the class (%s): changing a ClusterClass makes the topology controller rotate the templates, and so the "+
			"machines, of every Cluster using it", FinalPatchName, describeTargets(targets))})
}

// classTargets lists the AWSMachineTemplates of the control plane and of each machine
// deployment class, in both ClusterClass shapes: v1beta1 (ref, template.infrastructure.ref)
// and v1beta2 (templateRef, infrastructure.templateRef). CAPA v2.13 serves no template for
// machine pool classes, so they have nothing to patch.
func classTargets(o *object) []classTarget {
	y := o.node.YNode()
	var out []classTarget
	add := func(t classTarget, ref *yaml.Node) {
		if k, ok := refKey(ref, o.ns()); ok && k.kind == "AWSMachineTemplate" && k.group == infraGroup {
			t.template, t.ref = k, ref
			out = append(out, t)
		}
	}
	mi := lookup(y, "spec", "controlPlane", "machineInfrastructure")
	add(classTarget{controlPlane: true}, firstOf(valueOf(mi, "templateRef"), valueOf(mi, "ref")))
	mds := lookup(y, "spec", "workers", "machineDeployments")
	if mds != nil && mds.Kind == yaml.SequenceNode {
		for _, md := range mds.Content {
			name := scalarField(md, "class")
			if name == "" {
				continue
			}
			add(classTarget{mdClass: name}, firstOf(lookup(md, "infrastructure", "templateRef"), lookup(md, "template", "infrastructure", "ref")))
		}
	}
	return out
}

func firstOf(nodes ...*yaml.Node) *yaml.Node {
	for _, n := range nodes {
		if n != nil && !isNull(n) {
			return n
		}
	}
	return nil
}

func describeTargets(ts []classTarget) string {
	var parts []string
	for _, t := range ts {
		if t.controlPlane {
			parts = append(parts, "control plane "+t.template.name)
		} else {
			parts = append(parts, "machine deployment class "+t.mdClass+" "+t.template.name)
		}
	}
	return strings.Join(parts, ", ")
}

// finalPatch builds the patch: one definition per distinct value, selecting the control
// plane and machine deployment classes by name, each writing the whole block (add replaces
// an existing one), so no earlier patch's keys survive.
func (r *run) finalPatch(targets []classTarget) *yaml.Node {
	type group struct {
		value        *yaml.Node
		controlPlane bool
		names        []string
	}
	var groups []*group
	for _, t := range targets {
		v := r.optionsFor(t.template)
		var g *group
		for _, cand := range groups {
			if sameValue(cand.value, v) {
				g = cand
			}
		}
		if g == nil {
			g = &group{value: v}
			groups = append(groups, g)
		}
		if t.controlPlane {
			g.controlPlane = true
		} else {
			g.names = append(g.names, t.mdClass)
		}
	}
	defs := &yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq}
	for _, g := range groups {
		match := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
		if g.controlPlane {
			match.Content = append(match.Content, keyNode("controlPlane"), &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagBool, Value: "true"})
		}
		if len(g.names) > 0 {
			names := &yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq}
			for _, n := range g.names {
				names.Content = append(names.Content, stringNode(n))
			}
			match.Content = append(match.Content, keyNode("machineDeploymentClass"),
				&yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{keyNode("names"), names}})
		}
		selector := mapping("apiVersion", stringNode(infraGroup+"/v1beta2"), "kind", stringNode("AWSMachineTemplate"), "matchResources", match)
		jsonPatch := mapping("op", stringNode("add"), "path", stringNode("/spec/template/spec/instanceMetadataOptions"), "value", g.value)
		defs.Content = append(defs.Content, mapping("selector", selector, "jsonPatches",
			&yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq, Content: []*yaml.Node{jsonPatch}}))
	}
	return mapping("name", stringNode(FinalPatchName),
		"description", stringNode("Written by capa-imds: IMDSv2 on every AWSMachineTemplate of the class. Keep it last."),
		"definitions", defs)
}

// optionsFor is the block the patch writes into a template: the configured options, and the
// keys the template (as enforced) has beyond them.
func (r *run) optionsFor(template objKey) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	for _, opt := range r.cfg.Options {
		if opt.Int {
			m.Content = append(m.Content, keyNode(opt.Key), intNode(opt.Value))
		} else {
			m.Content = append(m.Content, keyNode(opt.Key), stringNode(opt.Value))
		}
	}
	if t := r.index[template]; t != nil {
		block := lookup(t.node.YNode(), "spec", "template", "spec", imdsField)
		if block != nil && block.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(block.Content); i += 2 {
				k := block.Content[i].Value
				if _, configured := r.cfg.Option(k); !configured && capaIMDSKeys[k] {
					m.Content = append(m.Content, keyNode(k), copyScalar(block.Content[i+1]))
				}
				// A disabled endpoint found on the template is stricter than any setting: keep it.
				if k == optHTTPEndpoint && block.Content[i+1].Value == string(InstanceMetadataStateDisabled) {
					setScalar(m, optHTTPEndpoint, string(InstanceMetadataStateDisabled), false)
				}
			}
		}
	}
	return m
}

func mapping(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, keyNode(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return m
}

// sameValue compares two nodes as values: order of keys and styles aside.
func sameValue(a, b *yaml.Node) bool {
	ja, errA := yaml.NewRNode(a).MarshalJSON()
	jb, errB := yaml.NewRNode(b).MarshalJSON()
	if errA != nil || errB != nil {
		return false
	}
	return canonicalJSON(ja) == canonicalJSON(jb)
}

// canonicalJSON re-encodes JSON with sorted keys.
func canonicalJSON(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(b)
	}
	return string(out)
}

// auditPatches reports every patch that can set instanceMetadataOptions on the class's
// templates to something the config does not allow: a literal value, a variable (its
// schema default, and the values Clusters of the class give it), a Go template or an
// external patch, which cannot be evaluated offline.
func (r *run) auditPatches(o *object, patches *yaml.Node, targets []classTarget) {
	if patches == nil || patches.Kind != yaml.SequenceNode {
		return
	}
	for i, p := range patches.Content {
		name := scalarField(p, "name")
		if name == FinalPatchName {
			continue
		}
		field := fmt.Sprintf("spec.patches[%d]", i)
		if valueOf(p, "external") != nil {
			r.errorf(o, field, "patch %q is external (Runtime SDK): what it sets cannot be known offline, and it can set "+
				"instanceMetadataOptions on the templates; only the final patch %s, last, makes the class safe", name, FinalPatchName)
			continue
		}
		defs := valueOf(p, "definitions")
		if defs == nil || defs.Kind != yaml.SequenceNode {
			continue
		}
		for j, d := range defs.Content {
			if scalarField(d, "selector", "kind") != "AWSMachineTemplate" {
				continue
			}
			ops := valueOf(d, "jsonPatches")
			if ops == nil || ops.Kind != yaml.SequenceNode {
				continue
			}
			for k, op := range ops.Content {
				if problem := r.patchProblem(o, op); problem != "" {
					r.errorf(o, fmt.Sprintf("%s.definitions[%d].jsonPatches[%d]", field, j, k), "patch %q, definition %d: %s",
						name, j, problem)
				}
			}
		}
	}
}

// patchProblem says how one JSON patch operation can make a template non-compliant, or "".
func (r *run) patchProblem(class *object, op *yaml.Node) string {
	path := scalarField(op, "path")
	// The block sits at /spec/template/spec/instanceMetadataOptions; a patch of any
	// ancestor can replace it, one of a key can set that key.
	under := []string{"spec", "template", "spec", imdsField}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	depth := 0
	for depth < len(parts) && depth < len(under) && parts[depth] == under[depth] {
		depth++
	}
	var key string
	switch {
	case depth == len(parts) && depth <= len(under):
		// An ancestor of the block, or the block itself.
	case depth == len(under) && len(parts) == len(under)+1:
		key = parts[len(under)]
	default:
		return ""
	}
	// The value the operation writes, located at the block.
	locate := func(v *yaml.Node) *yaml.Node {
		if key != "" {
			return v // the option's own value
		}
		for _, p := range under[len(parts):] {
			v = lookup(v, p)
		}
		return v
	}
	switch scalarField(op, "op") {
	case "remove":
		return fmt.Sprintf("removes %s, leaving CAPA's defaults (httpTokens optional, IMDSv1 allowed)", path)
	case "add", "replace":
	default:
		return ""
	}
	if v := valueOf(op, "value"); v != nil {
		if bad := r.nonCompliant(locate(v), key); bad != "" {
			return fmt.Sprintf("writes %s with %s", path, bad)
		}
		return ""
	}
	from := valueOf(op, "valueFrom")
	if tmpl := scalarField(from, "template"); tmpl != "" {
		return fmt.Sprintf("writes %s from a Go template, which cannot be evaluated offline", path)
	}
	variable := scalarField(from, "variable")
	if variable == "" {
		return ""
	}
	for _, v := range r.variableValues(class, variable) {
		if bad := r.nonCompliant(locate(v.value), key); bad != "" {
			return fmt.Sprintf("writes %s from variable %q, whose %s gives %s", path, variable, v.source, bad)
		}
	}
	return ""
}

// nonCompliant says what in a block (or, with key, one option's value) the config does not
// allow, or "".
func (r *run) nonCompliant(v *yaml.Node, key string) string {
	check := func(k string, n *yaml.Node) string {
		opt, ok := r.cfg.Option(k)
		if !ok || n == nil {
			return ""
		}
		if k == optHTTPEndpoint && n.Value == string(InstanceMetadataStateDisabled) {
			return ""
		}
		if n.Kind != yaml.ScalarNode || (n.Value != opt.Value && !(opt.Int && sameInt(n.Value, opt.Value))) {
			return fmt.Sprintf("%s %v (want %s)", k, display(n), opt.Value)
		}
		return ""
	}
	if key != "" {
		return check(key, v)
	}
	if v == nil || isNull(v) {
		return "no instanceMetadataOptions (CAPA's defaults: httpTokens optional, IMDSv1 allowed)"
	}
	if v.Kind != yaml.MappingNode {
		return ""
	}
	for _, opt := range r.cfg.Options {
		n := valueOf(v, opt.Key)
		if n == nil {
			if opt.Key == optHTTPTokens || opt.Key == optHopLimit {
				return fmt.Sprintf("no %s (CAPA's default allows IMDSv1 or breaks it in pods)", opt.Key)
			}
			continue
		}
		if bad := check(opt.Key, n); bad != "" {
			return bad
		}
	}
	return ""
}

type variableValue struct {
	source string
	value  *yaml.Node
}

// variableValues lists the values a ClusterClass variable can take in the input: its
// schema default, and what each Cluster of the class sets (topology variables and per-class
// overrides). A dotted name ("imds.httpTokens") reads into an object variable.
func (r *run) variableValues(class *object, name string) []variableValue {
	top, rest, _ := strings.Cut(name, ".")
	dig := func(v *yaml.Node) *yaml.Node {
		if rest == "" {
			return v
		}
		for _, p := range strings.Split(rest, ".") {
			v = lookup(v, p)
		}
		return v
	}
	var out []variableValue
	vars := lookup(class.node.YNode(), "spec", "variables")
	if vars != nil && vars.Kind == yaml.SequenceNode {
		for _, v := range vars.Content {
			if scalarField(v, "name") != top {
				continue
			}
			schema := lookup(v, "schema", "openAPIV3Schema")
			if d := valueOf(schema, "default"); d != nil {
				out = append(out, variableValue{"schema default", dig(d)})
			} else if rest != "" {
				// A default on the nested property.
				p := schema
				for _, part := range strings.Split(rest, ".") {
					p = lookup(p, "properties", part)
				}
				if d := valueOf(p, "default"); d != nil {
					out = append(out, variableValue{"schema default", d})
				}
			}
		}
	}
	for _, c := range r.objects {
		if c.group != clusterGroup || c.kind != "Cluster" || c.ns() != class.ns() {
			continue
		}
		topo := lookup(c.node.YNode(), "spec", "topology")
		if firstNonEmpty(scalarField(topo, "class"), scalarField(topo, "classRef", "name")) != class.name {
			continue
		}
		collect := func(list *yaml.Node, where string) {
			if list == nil || list.Kind != yaml.SequenceNode {
				return
			}
			for _, v := range list.Content {
				if scalarField(v, "name") == top {
					out = append(out, variableValue{where + " in Cluster " + c.name, dig(valueOf(v, "value"))})
				}
			}
		}
		collect(valueOf(topo, "variables"), "value")
		collect(lookup(topo, "controlPlane", "variables", "overrides"), "control plane override")
		if mds := lookup(topo, "workers", "machineDeployments"); mds != nil && mds.Kind == yaml.SequenceNode {
			for _, md := range mds.Content {
				collect(lookup(md, "variables", "overrides"), "machine deployment "+scalarField(md, "name")+" override")
			}
		}
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
