package transformers

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// A ClusterClass's patches are applied by Cluster API's topology controller, in the
// management cluster, to the AWSMachineTemplates it clones for every Cluster of the class:
// after any render, so a patch can undo what the function wrote into the templates. Patches
// apply in order, so the function appends one inline patch, last, that writes the
// configured instanceMetadataOptions into every AWSMachineTemplate the class uses: it wins
// over every earlier inline or external (Runtime SDK) patch, and writes nothing it does not
// own where it can (finalPatch says how). Audit reports a class without it, and every earlier
// patch that could set a non-compliant value.

// FinalPatchName names the patch the function owns in a ClusterClass.
const FinalPatchName = "capa-imds-require-imdsv2"

// classTarget is one AWSMachineTemplate a ClusterClass uses, and how patches select it.
type classTarget struct {
	controlPlane bool
	mdClass      string     // machine deployment class name, when not the control plane
	template     objKey     // the AWSMachineTemplate
	ref          *yaml.Node // the reference to it, for messages
	field        string     // where the class holds the reference, for messages
}

// processClusterClasses runs after every template is enforced: whether a template's block
// exists when the final patch applies starts from the template as the function wrote it.
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
	want, states := r.finalPatch(o, patches, targets)
	// Said on every run, in both modes: it is what the patch does in the management cluster,
	// not an edit, and no re-run can make it go away while the input stays as it is.
	for i, st := range states {
		if st.exists == blockExists || len(st.unknown) == 0 {
			continue
		}
		fix := "have an earlier patch make the block with a literal value or an object variable"
		if r.index[targets[i].template] == nil {
			fix = "put the template in the input (the function then writes the block into it), or " + fix
		}
		r.warnf(o, "spec.patches", "the patch %s adds the whole instanceMetadataOptions block of the %s, not one key at a time: "+
			"a JSON patch add of a key fails where the block is missing, and the function cannot know whether it is there. "+
			"Keys beyond the config (such as httpProtocolIpv6) set by %s are dropped when Cluster API applies the patch. "+
			"For a patch that adds only the configured keys, %s", FinalPatchName, describeTarget(targets[i]),
			strings.Join(st.unknown, ", "), fix)
	}
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
	// add takes the first reference present of the two shapes' paths under base.
	add := func(t classTarget, base *yaml.Node, field string, paths ...string) {
		for _, p := range paths {
			ref := lookup(base, strings.Split(p, ".")...)
			if ref == nil || isNull(ref) {
				continue
			}
			if k, ok := refKey(ref, o.ns()); ok && k.kind == "AWSMachineTemplate" && k.group == infraGroup {
				t.template, t.ref, t.field = k, ref, field+"."+p
				out = append(out, t)
			}
			return
		}
	}
	add(classTarget{controlPlane: true}, lookup(y, "spec", "controlPlane", "machineInfrastructure"),
		"spec.controlPlane.machineInfrastructure", "templateRef", "ref")
	mds := lookup(y, "spec", "workers", "machineDeployments")
	if mds != nil && mds.Kind == yaml.SequenceNode {
		for i, md := range mds.Content {
			name := scalarField(md, "class")
			if name == "" {
				continue
			}
			add(classTarget{mdClass: name}, md, fmt.Sprintf("spec.workers.machineDeployments[%d]", i),
				"infrastructure.templateRef", "template.infrastructure.ref")
		}
	}
	return out
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

func describeTarget(t classTarget) string {
	if t.controlPlane {
		return "control plane's AWSMachineTemplate " + t.template.name
	}
	return "machine deployment class " + t.mdClass + "'s AWSMachineTemplate " + t.template.name
}

// finalPatch builds the patch: one definition per distinct list of operations, selecting
// the control plane and machine deployment classes by name.
//
// Why not always one add of the whole block: JSON patch's add of an object replaces what is
// there, so the keys the template and earlier patches set beyond the config
// (httpProtocolIpv6: enabled in an IPv6 class) would be turned off without a word. Why not
// always one add per key: an add under a block that does not exist fails, and the topology
// controller then stops reconciling every Cluster of the class. So where the function knows
// the block exists when the patch applies (blockAtFinalPatch), it writes only the configured
// keys, one operation each, and nothing else is touched; where it cannot know (the template
// is not in the input and no earlier patch makes the block), it adds the whole block, carrying
// every key the template and the earlier patches are known to set, and the caller warns
// naming what it could not know. Audit builds the same patch from the same state, so it
// fails exactly the classes enforce would change.
func (r *run) finalPatch(class *object, patches *yaml.Node, targets []classTarget) (*yaml.Node, []blockState) {
	type group struct {
		ops          *yaml.Node
		controlPlane bool
		names        []string
	}
	var groups []*group
	states := make([]blockState, len(targets))
	// One template can serve several targets: its profile is decided, and reported, once.
	profiles := map[objKey]profile{}
	for i, t := range targets {
		prof, ok := profiles[t.template]
		if !ok {
			prof = r.targetProfile(class, t)
			profiles[t.template] = prof
		}
		st := r.blockAtFinalPatch(class, patches, t, prof.options)
		states[i] = st
		ops := finalOperations(st, prof.options)
		var g *group
		for _, cand := range groups {
			if sameValue(cand.ops, ops) {
				g = cand
			}
		}
		if g == nil {
			g = &group{ops: ops}
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
		selector := mapping("apiVersion", stringNode(templateAPIVersion), "kind", stringNode("AWSMachineTemplate"), "matchResources", match)
		defs.Content = append(defs.Content, mapping("selector", selector, "jsonPatches", g.ops))
	}
	return mapping("name", stringNode(FinalPatchName),
		"description", stringNode("Written by capa-imds: IMDSv2 on every AWSMachineTemplate of the class. Keep it last."),
		"definitions", defs), states
}

// templateAPIVersion is the version the final patch selects: the only one CAPA v2.13 serves,
// and so the only one a selector can match (Cluster API compares apiVersion exactly).
const templateAPIVersion = infraGroup + "/v1beta2"

const blockPath = "/spec/template/spec/" + imdsField

// targetProfile is the profile of the template a target uses: the template's own, as
// metadataoptions.go enforced it, where the input holds it; else what the reference alone
// decides (refProfile).
func (r *run) targetProfile(class *object, t classTarget) profile {
	if tpl := r.index[t.template]; tpl != nil && !tpl.removed {
		return r.profileOf(tpl)
	}
	return r.refProfile(class, t)
}

// refProfile is the profile of a template the input does not hold, by the first matching
// rule, from what its reference tells: kind, namespace and name. Its labels and the
// Clusters it serves are unknown, so, as in profileOf, a rule that needs them before any
// other criterion rules it out is an error, not a guess: the patch would write another
// rule's options into every Cluster's copy, and the admission policy would disagree.
func (r *run) refProfile(class *object, t classTarget) profile {
	k := t.template
	ns := k.namespace
	if scalarField(t.ref, "namespace") == "" && class.namespace == "" {
		ns = r.cfg.Namespace // the class's own default, as profileOf reads an object's
	}
	what := fmt.Sprintf("%s %s/%s", k.kind, ns, k.name)
	if ns == "" {
		what = k.kind + " " + k.name
	}
	for i := range r.cfg.Rules {
		rule := &r.cfg.Rules[i]
		m := rule.Match
		var undecided []string
		switch {
		case len(m.Kinds) > 0 && !slices.Contains(m.Kinds, k.kind):
			continue
		case len(m.Names) > 0 && hasPlaceholder(k.name):
			undecided = append(undecided, "names (the name is a placeholder clusterctl substitutes later)")
		case len(m.Names) > 0 && !globMatch(m.Names, k.name):
			continue
		}
		switch {
		case len(m.Namespaces) > 0 && (ns == "" || hasPlaceholder(ns)):
			undecided = append(undecided, "namespaces (the class sets no namespace, none is configured, or it is a placeholder)")
		case len(m.Namespaces) > 0 && !globMatch(m.Namespaces, ns):
			continue
		}
		if len(m.Labels) > 0 {
			undecided = append(undecided, "labels (unknown: the template is not in the input)")
		}
		if len(m.Clusters) > 0 {
			undecided = append(undecided, "clusters (unknown: the template is not in the input)")
		}
		if len(undecided) > 0 {
			r.errorf(class, t.field, "rule %q matches by %s: cannot tell whether the rule applies to %s, which the %s uses, "+
				"and so which options the patch %s must write into it; put the template in the input, or match it by kinds, namespaces or names",
				rule.Name, strings.Join(undecided, " and "), what, describeTargetShort(t), FinalPatchName)
			return profile{options: r.cfg.Options}
		}
		r.rules.matched[rule.Name] = true
		if rule.AllowOptional {
			r.warnf(class, t.field, "rule %q allows IMDSv1 (httpTokens optional, allowOptional: true) on %s: the instances of every "+
				"Cluster of the class accept IMDSv1 tokens and any process that reaches IMDS can read the node's credentials", rule.Name, what)
		}
		return profile{rule: rule, options: rule.Options}
	}
	return profile{options: r.cfg.Options}
}

func describeTargetShort(t classTarget) string {
	if t.controlPlane {
		return "control plane"
	}
	return "machine deployment class " + t.mdClass
}

func optionIn(opts []Option, key string) (Option, bool) {
	for _, o := range opts {
		if o.Key == key {
			return o, true
		}
	}
	return Option{}, false
}

// finalOperations are the JSON patch operations for one template, given what is known of its
// block when the final patch applies and the options of its profile.
func finalOperations(st blockState, opts []Option) *yaml.Node {
	disabled := scalarField(st.keys, optHTTPEndpoint) == string(InstanceMetadataStateDisabled)
	required := scalarField(st.keys, optHTTPTokens) == string(HTTPTokensStateRequired)
	value := func(opt Option) *yaml.Node {
		switch {
		// A disabled endpoint is stricter than any setting: keep it.
		case opt.Key == optHTTPEndpoint && disabled:
			return stringNode(string(InstanceMetadataStateDisabled))
		// optional (an allowOptional rule's) permits IMDSv1; as on the template itself, it
		// never takes IMDSv2 away from a block known to require it.
		case opt.Key == optHTTPTokens && opt.Value == string(HTTPTokensStateOptional) && required:
			return stringNode(string(HTTPTokensStateRequired))
		case opt.Int:
			return intNode(opt.Value)
		}
		return stringNode(opt.Value)
	}
	ops := &yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq}
	if st.exists == blockExists {
		for _, opt := range opts {
			ops.Content = append(ops.Content, mapping("op", stringNode("add"), "path", stringNode(blockPath+"/"+opt.Key), "value", value(opt)))
		}
		return ops
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	for _, opt := range opts {
		m.Content = append(m.Content, keyNode(opt.Key), value(opt))
	}
	if disabled {
		if _, configured := optionIn(opts, optHTTPEndpoint); !configured {
			m.Content = append(m.Content, keyNode(optHTTPEndpoint), value(Option{Key: optHTTPEndpoint}))
		}
	}
	for i := 0; st.keys != nil && i+1 < len(st.keys.Content); i += 2 {
		k := st.keys.Content[i].Value
		if _, configured := optionIn(opts, k); !configured && k != optHTTPEndpoint {
			m.Content = append(m.Content, keyNode(k), copyScalar(st.keys.Content[i+1]))
		}
	}
	ops.Content = append(ops.Content, mapping("op", stringNode("add"), "path", stringNode(blockPath), "value", m))
	return ops
}

// existence is whether a template's block exists at some point of the patches.
type existence int

const (
	blockUnknown existence = iota
	blockExists
	blockAbsent
)

// blockState is what the function knows of one template's instanceMetadataOptions at the
// point the final patch applies.
type blockState struct {
	exists existence
	// keys are the CAPA keys known to be set there, with their values, in the order set.
	keys *yaml.Node
	// unknown names what can set keys the function cannot see: a template not in the
	// input, a patch writing from a variable or a Go template, an external patch.
	unknown []string
}

func (s blockState) copy() blockState {
	c := blockState{exists: s.exists, keys: &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}}
	if s.keys != nil {
		c.keys.Content = append(c.keys.Content, s.keys.Content...)
	}
	c.unknown = append(c.unknown, s.unknown...)
	return c
}

func (s *blockState) addUnknown(what string) {
	for _, u := range s.unknown {
		if u == what {
			return
		}
	}
	s.unknown = append(s.unknown, what)
}

// replaceBlock sets the whole block from a literal value (nil: no block).
func (s *blockState) replaceBlock(v *yaml.Node) {
	s.keys = &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	s.unknown = nil
	if v == nil || isNull(v) {
		s.exists = blockAbsent
		return
	}
	if v.Kind != yaml.MappingNode {
		s.exists = blockUnknown
		return
	}
	s.exists = blockExists
	for i := 0; i+1 < len(v.Content); i += 2 {
		if k, val := v.Content[i].Value, v.Content[i+1]; capaIMDSKeys[k] && val.Kind == yaml.ScalarNode {
			s.keys.Content = append(s.keys.Content, keyNode(k), copyScalar(val))
		}
	}
}

// unknownBlock sets the whole block from what cannot be read offline.
func (s *blockState) unknownBlock(exists existence, why string) {
	s.keys = &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	s.unknown = nil
	s.exists = exists
	if exists != blockAbsent {
		s.addUnknown(why)
	}
}

// merge is the state after a patch that may or may not apply (enabledIf): before it (a)
// or after it (b).
func merge(a, b blockState, source string) blockState {
	switch {
	case a.exists == blockAbsent && b.exists == blockAbsent:
		return b
	case a.exists == blockAbsent || b.exists == blockAbsent:
		// Where the block is missing, the final patch adds it whole: carrying the keys of
		// the branch that has one keeps them there, and adds them where the patch removed them.
		out := b.copy()
		if b.exists == blockAbsent {
			out = a.copy()
		}
		out.exists = blockUnknown
		return out
	}
	out := a.copy()
	if a.exists != b.exists {
		out.exists = blockUnknown
	}
	for _, u := range b.unknown {
		out.addUnknown(u)
	}
	out.keys = &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	differ := func(k string, va, vb *yaml.Node) {
		if va != nil && vb != nil && va.Value == vb.Value {
			out.keys.Content = append(out.keys.Content, keyNode(k), va)
		} else {
			out.addUnknown(source + " (" + k + ", set only when its enabledIf holds)")
		}
	}
	for i := 0; i+1 < len(a.keys.Content); i += 2 {
		k := a.keys.Content[i].Value
		differ(k, a.keys.Content[i+1], valueOf(b.keys, k))
	}
	for i := 0; i+1 < len(b.keys.Content); i += 2 {
		if k := b.keys.Content[i].Value; valueOf(a.keys, k) == nil {
			differ(k, nil, b.keys.Content[i+1])
		}
	}
	return out
}

// blockAtFinalPatch follows a template's block through the class's earlier patches, in the
// order Cluster API applies them, from the template as the input has it (after the function
// wrote it) or, when the template is not in the input, from nothing known.
func (r *run) blockAtFinalPatch(class *object, patches *yaml.Node, t classTarget, opts []Option) blockState {
	var st blockState
	if tpl := r.index[t.template]; tpl != nil {
		st.replaceBlock(lookup(tpl.node.YNode(), "spec", "template", "spec", imdsField))
	} else {
		st.unknownBlock(blockUnknown, "the template (not in the input)")
	}
	if patches == nil || patches.Kind != yaml.SequenceNode {
		return st
	}
	for i, p := range patches.Content {
		name := scalarField(p, "name")
		if name == FinalPatchName {
			continue
		}
		if name == "" {
			name = fmt.Sprintf("spec.patches[%d]", i)
		}
		if valueOf(p, "external") != nil {
			// An external patch can set any key, and is assumed to keep the block: if it
			// removed it, the per-key operations would fail in the topology controller,
			// which reports it on every Cluster of the class: loud, never a silent loss.
			st.addUnknown("external patch " + name)
			continue
		}
		before := st.copy()
		defs := valueOf(p, "definitions")
		for j := 0; defs != nil && defs.Kind == yaml.SequenceNode && j < len(defs.Content); j++ {
			d := defs.Content[j]
			if !selects(valueOf(d, "selector"), t) {
				continue
			}
			ops := valueOf(d, "jsonPatches")
			for k := 0; ops != nil && ops.Kind == yaml.SequenceNode && k < len(ops.Content); k++ {
				r.followOperation(class, &st, ops.Content[k], "patch "+name, opts)
			}
		}
		if scalarField(p, "enabledIf") != "" {
			st = merge(before, st, "patch "+name)
		}
	}
	return st
}

// selects reports whether a patch selector matches a target, as Cluster API matches it.
func selects(sel *yaml.Node, t classTarget) bool {
	if scalarField(sel, "apiVersion") != templateAPIVersion || scalarField(sel, "kind") != "AWSMachineTemplate" {
		return false
	}
	mr := valueOf(sel, "matchResources")
	if t.controlPlane {
		return scalarField(mr, "controlPlane") == "true"
	}
	names := lookup(mr, "machineDeploymentClass", "names")
	for i := 0; names != nil && names.Kind == yaml.SequenceNode && i < len(names.Content); i++ {
		n := names.Content[i].Value
		switch {
		case n == "*" || n == t.mdClass,
			strings.HasPrefix(n, "*") && strings.HasSuffix(t.mdClass, strings.TrimPrefix(n, "*")),
			strings.HasSuffix(n, "*") && strings.HasPrefix(t.mdClass, strings.TrimSuffix(n, "*")):
			return true
		}
	}
	return false
}

// followOperation applies what one JSON patch operation does to the block's state.
func (r *run) followOperation(class *object, st *blockState, op *yaml.Node, source string, opts []Option) {
	under := []string{"spec", "template", "spec", imdsField}
	// at: -1 elsewhere, 0..3 an ancestor or the block itself (len of the matching prefix - 1
	// when the path is a prefix), 4 a key of the block.
	where := func(path string) (depth int, key string, onChain bool) {
		if !strings.HasPrefix(path, "/") {
			return 0, "", false
		}
		parts := strings.Split(path[1:], "/")
		for i := range parts {
			parts[i] = strings.ReplaceAll(strings.ReplaceAll(parts[i], "~1", "/"), "~0", "~")
		}
		n := 0
		for n < len(parts) && n < len(under) && parts[n] == under[n] {
			n++
		}
		switch {
		case n == len(parts):
			return n, "", true // an ancestor (n < 4) or the block (n == 4)
		case n == len(under) && len(parts) == n+1:
			return n, parts[n], true
		}
		return 0, "", false
	}
	kind := scalarField(op, "op")
	depth, key, on := where(scalarField(op, "path"))
	if kind == "move" {
		// The source goes away, as with remove.
		if fd, fk, fon := where(scalarField(op, "from")); fon {
			r.removeAt(st, fd, fk)
		}
	}
	if !on {
		return
	}
	switch kind {
	case "remove":
		r.removeAt(st, depth, key)
	case "add", "replace":
		v := valueOf(op, "value")
		from := valueOf(op, "valueFrom")
		switch {
		case key != "" && v != nil:
			// An add under the block fails without it: after it, the block exists.
			st.exists = blockExists
			if capaIMDSKeys[key] && v.Kind == yaml.ScalarNode {
				setNode(st.keys, key, copyScalar(v))
			} else {
				removeKey(st.keys, key)
			}
		case key != "":
			st.exists = blockExists
			removeKey(st.keys, key)
			if _, configured := optionIn(opts, key); !configured {
				st.addUnknown(source + " (" + key + " from " + describeValueFrom(from) + ")")
			}
		case v != nil:
			for _, p := range under[depth:] {
				v = lookup(v, p)
			}
			st.replaceBlock(v)
		default:
			exists := blockUnknown
			if depth == len(under) && r.variableIsObject(class, scalarField(from, "variable")) {
				exists = blockExists
			}
			st.unknownBlock(exists, source+" (the block from "+describeValueFrom(from)+")")
		}
	case "copy", "move":
		if key != "" {
			st.exists = blockExists
			removeKey(st.keys, key)
			if _, configured := optionIn(opts, key); !configured {
				st.addUnknown(source + " (" + key + " copied from " + scalarField(op, "from") + ")")
			}
			return
		}
		st.unknownBlock(blockUnknown, source+" (the block copied from "+scalarField(op, "from")+")")
	}
}

func (r *run) removeAt(st *blockState, depth int, key string) {
	if key == "" {
		st.replaceBlock(nil)
		return
	}
	// A remove of a missing key fails: after it, the block exists.
	st.exists = blockExists
	removeKey(st.keys, key)
}

func describeValueFrom(from *yaml.Node) string {
	if v := scalarField(from, "variable"); v != "" {
		return fmt.Sprintf("variable %q", v)
	}
	return "a Go template"
}

// variableIsObject reports whether a class variable (or a dotted property of one) is typed
// as an object: written as the block, it makes the block exist.
func (r *run) variableIsObject(class *object, name string) bool {
	if name == "" {
		return false
	}
	top, rest, _ := strings.Cut(name, ".")
	vars := lookup(class.node.YNode(), "spec", "variables")
	for i := 0; vars != nil && vars.Kind == yaml.SequenceNode && i < len(vars.Content); i++ {
		v := vars.Content[i]
		if scalarField(v, "name") != top {
			continue
		}
		schema := lookup(v, "schema", "openAPIV3Schema")
		if rest != "" {
			for _, part := range strings.Split(rest, ".") {
				schema = lookup(schema, "properties", part)
			}
		}
		return scalarField(schema, "type") == "object" && scalarField(schema, "nullable") != "true"
	}
	return false
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
