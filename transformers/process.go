// Package transformers holds the logic of capa-imds: it requires IMDSv2 on every EC2
// instance that Cluster API Provider AWS (CAPA) manifests create.
package transformers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

const (
	infraGroup        = "infrastructure.cluster.x-k8s.io"
	clusterGroup      = "cluster.x-k8s.io"
	controlPlaneGroup = "controlplane.cluster.x-k8s.io"
	bootstrapGroup    = "bootstrap.cluster.x-k8s.io"

	defaultNamespace = "default"
	// clusterctl substitutes this after the function has run on a raw template.
	namespacePlaceholder = "${NAMESPACE}"
)

// object is one input resource with the identity the function matches on.
type object struct {
	node                     *yaml.RNode
	apiVersion, group, kind  string
	version, name, namespace string // namespace as written; see ns()
	// defNS is where the object lands when it sets no namespace: the configured target
	// namespace, or "default" (kubectl apply without -n).
	defNS   string
	removed bool
	// list is the items sequence of the v1 List holding the object (kubectl get -o yaml
	// output), or nil for a top-level resource.
	list *yaml.Node
	// listFile is where the List holding the object came from: its items carry no path.
	listFile *File
}

func newObject(n *yaml.RNode, defNS string) *object {
	y := n.YNode()
	o := &object{
		node:       n,
		defNS:      defNS,
		apiVersion: scalarField(y, "apiVersion"),
		kind:       scalarField(y, "kind"),
		name:       scalarField(y, "metadata", "name"),
		namespace:  scalarField(y, "metadata", "namespace"),
	}
	o.group, o.version = splitAPIVersion(o.apiVersion)
	return o
}

func splitAPIVersion(apiVersion string) (group, version string) {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[:i], apiVersion[i+1:]
	}
	return "", apiVersion
}

// ns is the namespace the object lands in.
func (o *object) ns() string {
	if o.namespace == "" {
		return o.defNS
	}
	return o.namespace
}

func (o *object) String() string {
	if o.namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.kind, o.namespace, o.name)
	}
	return fmt.Sprintf("%s %s", o.kind, o.name)
}

func (o *object) ref() *yaml.ResourceIdentifier {
	return &yaml.ResourceIdentifier{
		TypeMeta: yaml.TypeMeta{APIVersion: o.apiVersion, Kind: o.kind},
		NameMeta: yaml.NameMeta{Name: o.name, Namespace: o.namespace},
	}
}

// file reports where the orchestrator read the resource from, when it says.
func (o *object) file() *File {
	a := o.node.GetAnnotations()
	path := a[kioutil.PathAnnotation]
	if path == "" {
		path = a[kioutil.LegacyPathAnnotation]
	}
	if path == "" {
		return o.listFile
	}
	idx := a[kioutil.IndexAnnotation]
	if idx == "" {
		idx = a[kioutil.LegacyIndexAnnotation]
	}
	i, _ := strconv.Atoi(idx)
	return &File{Path: path, Index: i}
}

func (o *object) annotation(key string) string {
	return scalarField(o.node.YNode(), "metadata", "annotations", key)
}

// objKey identifies an object as references do: group, kind, namespace, name.
type objKey struct{ group, kind, namespace, name string }

func (o *object) key() objKey { return objKey{o.group, o.kind, o.ns(), o.name} }

func (k objKey) less(o objKey) bool {
	if k.group != o.group {
		return k.group < o.group
	}
	if k.kind != o.kind {
		return k.kind < o.kind
	}
	if k.namespace != o.namespace {
		return k.namespace < o.namespace
	}
	return k.name < o.name
}

// run is the state of one invocation.
type run struct {
	cfg     *Config
	objects []*object
	index   map[objKey]*object
	results Results
	// edits are what enforce mode did; audit mode reports each as an error (record.go).
	edits []edit
	// added holds new objects, each inserted after the object it belongs to.
	added map[*object][]*object

	pools     poolPhase      // managed node groups and their bootstrap (managedpools.go, bootstrap*.go, eksname.go)
	renames   renamePhase    // renameOnChange (templates.go)
	refs      refIndex       // kustomize's previous names (references.go)
	rules     rulePhase      // spec.rules (rules.go)
	nextIndex map[string]int // next free kpt index per file, for added resources
}

func (r *run) result(sev Severity, o *object, field, msg string) *Result {
	res := &Result{Severity: sev, Message: CutMessage(msg)}
	if o != nil {
		res.ResourceRef = o.ref()
		res.File = o.file()
	}
	if field != "" {
		res.Field = &Field{Path: field}
	}
	r.results = append(r.results, res)
	return res
}

func (r *run) errorf(o *object, field, format string, args ...any) {
	r.result(Error, o, field, fmt.Sprintf(format, args...))
}

func (r *run) warnf(o *object, field, format string, args ...any) {
	r.result(Warning, o, field, fmt.Sprintf(format, args...))
}

func (r *run) infof(o *object, field, format string, args ...any) {
	r.result(Info, o, field, fmt.Sprintf(format, args...))
}

// CheckResources refuses input that is not a list of resources; where names the input.
// kyaml hands on whatever a ResourceList's items hold (the keys and values of a mapping,
// bare scalars), and code that takes every item for a resource can then only fail deep
// inside, or not at all. A ResourceList among plain manifests is refused too: it belongs
// on stdin, in KRM function mode.
func CheckResources(items []*yaml.RNode, where string) error {
	for i, it := range items {
		y := it.YNode()
		if y.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: item %d is not a resource (a mapping with apiVersion, kind and metadata): found %s",
				where, i, describeNode(y))
		}
		apiVersion, kind := resolvedScalar(y, "apiVersion"), resolvedScalar(y, "kind")
		if apiVersion == "" || kind == "" {
			return fmt.Errorf("%s: item %d is not a resource: it has no apiVersion or no kind", where, i)
		}
		if kind == "ResourceList" && (strings.HasPrefix(apiVersion, "config.kubernetes.io/") || strings.HasPrefix(apiVersion, "config.k8s.io/")) {
			return fmt.Errorf("%s: holds a ResourceList: give it to capa-imds on stdin with no arguments (KRM function mode), "+
				"not as a FILE; standalone mode takes plain manifests", where)
		}
	}
	return nil
}

// Process runs the function over items. It returns the output items and the results;
// when any result is an error the caller must emit no items. In audit mode the items
// come back unchanged.
func Process(cfg *Config, items []*yaml.RNode) ([]*yaml.RNode, Results) {
	out, results, _ := ProcessReport(cfg, items)
	return out, results
}

// ProcessReport is Process that also says what enforce mode changed.
func ProcessReport(cfg *Config, items []*yaml.RNode) ([]*yaml.RNode, Results, Summary) {
	_, out, results, summary := process(cfg, items)
	return out, results, summary
}

// process is ProcessReport that also hands back the run, for tests of its records.
func process(cfg *Config, items []*yaml.RNode) (*run, []*yaml.RNode, Results, Summary) {
	if cfg.Mode == ModeAudit && len(items) == 0 {
		// A gate that passes nothing would pass a failed render: `kustomize build | capa-imds
		// --audit` sees empty input when kustomize fails and the shell has no pipefail.
		return nil, items, Results{{Severity: Error, Message: "audit: the input holds no resources, so there is nothing to vouch for; " +
			"check that the step producing it succeeded (in a shell pipe, set -o pipefail)"}}, Summary{}
	}
	work := items
	if cfg.Mode == ModeAudit {
		work = make([]*yaml.RNode, len(items))
		for i, it := range items {
			work[i] = it.Copy()
		}
	}
	r := &run{
		cfg:   cfg,
		index: make(map[objKey]*object, len(work)),
		added: map[*object][]*object{},
		pools: poolPhase{
			secrets:  map[objKey]*generatedSecret{},
			detached: map[*object]*object{},
			pinned:   map[*object]string{},
		},
		refs:  refIndex{said: map[saidKey]bool{}},
		rules: rulePhase{matched: map[string]bool{}},
	}
	defNS := cfg.Namespace
	if defNS == "" {
		defNS = defaultNamespace
	}
	// Before anything reads a resource: aliases and merge keys mean what the API server
	// makes of them.
	failed := expandAll(work)
	for _, n := range work {
		if err := failed[n]; err != nil {
			r.errorf(newObject(n, defNS), "", "%v", err)
		}
	}
	for _, n := range work {
		r.addWithListItems(newObject(n, defNS), nil, 0)
	}

	// Every reader must agree on what a resource is and what it is called, whatever its
	// kind: the function decides by the first apiVersion and kind, a reader that keeps the
	// last may see an AWSMachine where the function saw a ConfigMap.
	for _, o := range r.objects {
		if field, dup := duplicateIdentityKey(o.node.YNode()); dup {
			r.errorf(o, field, "duplicate key %s: readers disagree on which resource this is (one keeps the first value, "+
				"another the last, strict ones refuse it); remove one", field)
			continue
		}
		// A resource the function reads must mean the same to every reader.
		if !isClusterAPIGroup(o.group) && !(o.group == "" && o.kind == "Secret") && listItems(o.node) == nil {
			continue
		}
		if field, dup := duplicateKey(o.node.YNode()); dup {
			r.errorf(o, field, "duplicate key: readers disagree on which value counts (the function would edit the first, "+
				"a reader that keeps the last would drop the edit, strict ones refuse the resource); remove one")
		}
	}
	r.checkDuplicates()
	if r.results.ExitCode() != 0 {
		return r, items, r.results, Summary{}
	}

	for _, o := range r.objects {
		r.processObject(o)
	}
	r.renameTemplates()
	r.processClusterClasses()
	r.processManagedPools()
	r.checkSharedEKSNames()
	r.checkBootstrapOverwrites()
	r.unmatchedRules()

	if cfg.Mode == ModeAudit {
		for _, c := range r.edits {
			msg := c.finding
			if msg == "" {
				msg = fmt.Sprintf("is %s, want %s", describeValue(c.current), describeValue(c.proposed))
			}
			res := r.result(Error, c.obj, c.field, msg)
			// Named as the input names it, whatever a later edit (renameOnChange) did.
			res.ResourceRef, res.File = c.ref, c.file
			if res.Field != nil {
				res.Field.CurrentValue, res.Field.ProposedValue = cutValue(c.current), cutValue(c.proposed)
			}
		}
		return r, items, r.results, Summary{}
	}
	return r, r.output(), r.results, r.summary()
}

func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "unset"
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(v)
}

func (r *run) addObject(o *object) {
	r.objects = append(r.objects, o)
	if _, dup := r.index[o.key()]; !dup {
		r.index[o.key()] = o
	}
}

// addWithListItems adds the object and, for a list, the resources inside it: kubectl
// applies the items of a v1 List and of typed lists (AWSMachineTemplateList), nested or
// not, so they are processed in place rather than passed over.
func (r *run) addWithListItems(o *object, list *yaml.Node, depth int) {
	o.list = list
	r.addObject(o)
	items := listItems(o.node)
	if items == nil || depth > maxDepth {
		return
	}
	for _, it := range items.Content {
		if it.Kind == yaml.MappingNode {
			item := newObject(yaml.NewRNode(it), o.defNS)
			item.listFile = o.file()
			r.addWithListItems(item, items, depth+1)
		}
	}
}

// listItems returns the items of a list kind (v1 List, or a typed list such as
// AWSMachineTemplateList), or nil.
func listItems(n *yaml.RNode) *yaml.Node {
	y := n.YNode()
	kind := scalarField(y, "kind")
	if !strings.HasSuffix(kind, "List") || kind == "ResourceList" || scalarField(y, "apiVersion") == "" {
		return nil
	}
	if items := lookup(y, "items"); items != nil && items.Kind == yaml.SequenceNode {
		return items
	}
	return nil
}

// checkDuplicates refuses two definitions of one object (the later would silently win
// when applied) and two Clusters on one control plane (their controllers would fight over
// it, and the bootstrap names one EKS cluster for both).
func (r *run) checkDuplicates() {
	seen := map[objKey]*object{}
	for _, o := range r.objects {
		if o.name == "" || listItems(o.node) != nil {
			continue
		}
		if first, dup := seen[o.key()]; dup {
			r.errorf(o, "metadata.name", "%s is defined twice in the input (first in %s): applied, the later would silently "+
				"replace the earlier; keep one", o, describeFile(first))
			continue
		}
		seen[o.key()] = o
	}
	owners := map[objKey]*object{}
	for _, o := range r.objects {
		if o.group != clusterGroup || o.kind != "Cluster" {
			continue
		}
		k, ok := refKey(lookup(o.node.YNode(), "spec", "controlPlaneRef"), o.ns())
		if !ok {
			continue
		}
		// Judged on what the reference resolves to: above two overlays of one base, both
		// Clusters still name the base's control plane, each meaning its own copy.
		if cp, _, _ := r.resolve(k, o); cp != nil {
			k = cp.key()
		}
		if first, dup := owners[k]; dup {
			r.errorf(o, "spec.controlPlaneRef", "%s %q is already the control plane of %s: each Cluster needs its own", k.kind, k.name, first)
			continue
		}
		owners[k] = o
	}
}

func describeFile(o *object) string {
	if f := o.file(); f != nil {
		return fmt.Sprintf("%s, document %d", f.Path, f.Index)
	}
	return "the input"
}

func (r *run) output() []*yaml.RNode {
	out := make([]*yaml.RNode, 0, len(r.objects))
	lists := map[*yaml.Node][]*yaml.Node{}
	for _, o := range r.objects {
		if o.list != nil {
			if _, seen := lists[o.list]; !seen {
				lists[o.list] = []*yaml.Node{}
			}
			if !o.removed {
				lists[o.list] = append(lists[o.list], o.node.YNode())
			}
			for _, a := range r.added[o] {
				lists[o.list] = append(lists[o.list], a.node.YNode())
			}
			continue
		}
		if !o.removed {
			out = append(out, o.node)
		}
		for _, a := range r.added[o] {
			out = append(out, a.node)
		}
	}
	for items, content := range lists {
		items.Content = content
	}
	return out
}

// imdsParents says where each CAPA kind keeps instanceMetadataOptions.
var imdsParents = map[string][]string{
	"AWSMachine":            {"spec"},
	"AWSMachineTemplate":    {"spec", "template", "spec"},
	"AWSMachinePool":        {"spec", "awsLaunchTemplate"},
	"AWSManagedMachinePool": {"spec", "awsLaunchTemplate"},
}

// skipped reports whether the user opted the object out.
func (r *run) skipped(o *object) bool {
	v := o.annotation(SkipAnnotation)
	if v == "" {
		return false
	}
	if v != "true" && v != "false" {
		r.errorf(o, "metadata.annotations."+SkipAnnotation, "%q is not allowed; allowed: \"true\", \"false\"", v)
		return true
	}
	if v == "true" {
		r.infof(o, "", "skipped: annotated %s: \"true\"", SkipAnnotation)
	}
	return v == "true"
}

func (r *run) processObject(o *object) {
	if r.outsideCAPA(o) {
		return
	}
	if o.group != infraGroup {
		return
	}
	parent, ok := imdsParents[o.kind]
	if !ok {
		return
	}
	if r.skipped(o) {
		return
	}
	if o.version != "v1beta2" {
		r.errorf(o, "apiVersion", "%s is not served by CAPA (v1beta1 since v2.4.0) and has no instanceMetadataOptions: "+
			"the API server would drop the field; move the resource to %s/v1beta2", o.apiVersion, infraGroup)
		return
	}
	if err := deAnchor(o.node); err != nil {
		r.errorf(o, "", "%v", err)
		return
	}
	if o.kind == "AWSManagedMachinePool" {
		// Converted, IMDS options included, by processManagedPools: it needs the
		// MachinePools and the control plane.
		r.pools.list = append(r.pools.list, o)
		return
	}
	if o.kind == "AWSMachine" && r.poolOwnedMachine(o, parent) {
		return
	}
	before := len(r.edits)
	changedExisting, err := r.applyMetadataOptions(o, parent)
	if err != nil {
		r.fail(o, err)
		return
	}
	// A raw clusterctl template (names with ${...}) describes new clusters: nothing live yet.
	switch {
	case hasPlaceholder(o.name):
	case changedExisting && o.kind == "AWSMachineTemplate":
		r.immutableTemplateChanged(o)
	case len(r.edits) > before && o.kind == "AWSMachine":
		r.liveMachineChanged(o)
	}
}

// fail reports err on the object: at the field a *fieldError names, or on the whole object.
func (r *run) fail(o *object, err error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		r.errorf(o, string(fe.path), "%s", fe.msg)
		return
	}
	r.errorf(o, "", "%v", err)
}
