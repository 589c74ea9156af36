package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Cluster API objects find each other by name: a MachinePool names its AWSManagedMachinePool,
// its Cluster and its bootstrap config; a Cluster names its control plane. kustomize applies
// namePrefix, nameSuffix and namespace before `transformers:` run but fixes references only
// at the end of the build (and only those its nameReference configuration covers), so the
// function sees `prod-pool` while the MachinePool still says `pool`. kustomize leaves the
// names a resource had in annotations; references are resolved through them too, so a
// renamed pool still finds its MachinePool and the EKS name comes from the control plane's
// current name and namespace, the ones CAPA will see.

var (
	previousNamesAnnotations      = []string{"internal.config.kubernetes.io/previousNames", "config.kubernetes.io/previousNames"}
	previousKindsAnnotations      = []string{"internal.config.kubernetes.io/previousKinds", "config.kubernetes.io/previousKinds"}
	previousNamespacesAnnotations = []string{"internal.config.kubernetes.io/previousNamespaces", "config.kubernetes.io/previousNamespaces"}
	prefixesAnnotations           = []string{"internal.config.kubernetes.io/prefixes", "config.kubernetes.io/prefixes"}
	suffixesAnnotations           = []string{"internal.config.kubernetes.io/suffixes", "config.kubernetes.io/suffixes"}
)

func firstAnnotation(o *object, keys []string) string {
	for _, k := range keys {
		if v := o.annotation(k); v != "" {
			return v
		}
	}
	return ""
}

// previousKeys lists the identities kustomize says the object had before it was renamed.
// kustomize writes "default" for a resource that had no namespace.
func (o *object) previousKeys() []objKey {
	names := firstAnnotation(o, previousNamesAnnotations)
	if names == "" {
		return nil
	}
	kinds := strings.Split(firstAnnotation(o, previousKindsAnnotations), ",")
	namespaces := strings.Split(firstAnnotation(o, previousNamespacesAnnotations), ",")
	var keys []objKey
	for i, name := range strings.Split(names, ",") {
		k := objKey{group: o.group, kind: o.kind, namespace: o.ns(), name: name}
		if i < len(kinds) && kinds[i] != "" {
			k.kind = kinds[i]
		}
		if i < len(namespaces) && namespaces[i] != "" {
			k.namespace = namespaces[i]
		}
		keys = append(keys, k)
	}
	return keys
}

// refIndex finds objects through the names kustomize renamed them from.
type refIndex struct {
	previous map[objKey][]*object // group, kind, previous name (no namespace) -> objects
	said     map[saidKey]bool     // infos already given, for lookups made more than once
}

// saidKey is one reference of one object: the same lookup made again says nothing new.
type saidKey struct {
	referrer *object
	field    string
}

// buildPreviousIndex indexes renamed objects by group, kind and each previous name.
func (r *run) buildPreviousIndex() {
	r.refs.previous = map[objKey][]*object{}
	for _, o := range r.objects {
		seen := map[objKey]bool{}
		for _, k := range o.previousKeys() {
			nk := objKey{group: k.group, kind: k.kind, name: k.name}
			if k.name == o.name || seen[nk] {
				continue
			}
			seen[nk] = true
			r.refs.previous[nk] = append(r.refs.previous[nk], o)
		}
	}
}

// resolve finds the object a reference from referrer names: by its current identity, or
// else through the names kustomize renamed it from. ambiguous is set when more than one
// renamed object once had that name.
func (r *run) resolve(k objKey, referrer *object) (o *object, viaPrevious, ambiguous bool) {
	if o := r.index[k]; o != nil && !o.removed {
		return o, false, false
	}
	if r.refs.previous == nil {
		r.buildPreviousIndex()
	}
	var found []*object
	for _, c := range r.refs.previous[objKey{group: k.group, kind: k.kind, name: k.name}] {
		if c.removed {
			continue
		}
		if c.ns() == k.namespace || r.hadNamespace(c, k, referrer) {
			found = append(found, c)
		}
	}
	if len(found) > 1 {
		found = renamedLike(found, referrer, k)
	}
	switch len(found) {
	case 0:
		return nil, false, false
	case 1:
		return found[0], true, false
	}
	return nil, false, true
}

// renamedLike narrows the candidates of a stale reference to those renamed the way the
// referrer was. Two overlays of one base (two namePrefixes, or two namespaces) under one
// kustomization each hold a copy of every object under the same previous name; the
// referrer's reference is still the base's, and means the copy renamed by the same
// overlays: the same prefixes and suffixes, in the namespace the reference points at.
// Each narrowing applies only when it leaves some candidate.
func renamedLike(found []*object, referrer *object, k objKey) []*object {
	narrow := func(keep func(c *object) bool) {
		var kept []*object
		for _, c := range found {
			if keep(c) {
				kept = append(kept, c)
			}
		}
		if len(kept) > 0 {
			found = kept
		}
	}
	prefixes, suffixes := firstAnnotation(referrer, prefixesAnnotations), firstAnnotation(referrer, suffixesAnnotations)
	narrow(func(c *object) bool {
		return firstAnnotation(c, prefixesAnnotations) == prefixes && firstAnnotation(c, suffixesAnnotations) == suffixes
	})
	if len(found) > 1 {
		narrow(func(c *object) bool { return c.ns() == k.namespace })
	}
	return found
}

// hadNamespace: the candidate had the reference's name in the namespace the reference
// points at, or both moved together (kustomize's namespace: moves everything).
func (r *run) hadNamespace(c *object, k objKey, referrer *object) bool {
	referrerNS := map[string]bool{referrer.ns(): true}
	if referrer.namespace == "" {
		referrerNS[defaultNamespace] = true
	}
	for _, p := range referrer.previousKeys() {
		referrerNS[p.namespace] = true
	}
	for _, p := range c.previousKeys() {
		if p.name == k.name && p.kind == k.kind && (p.namespace == k.namespace || referrerNS[p.namespace]) {
			return true
		}
	}
	return false
}

// refKey reads a Cluster API object reference in either shape: v1beta1 (apiVersion,
// optional namespace) or v1beta2 (apiGroup, always the referrer's namespace).
func refKey(ref *yaml.Node, ns string) (objKey, bool) {
	if ref == nil || ref.Kind != yaml.MappingNode {
		return objKey{}, false
	}
	group := scalarField(ref, "apiGroup")
	if group == "" {
		group, _ = splitAPIVersion(scalarField(ref, "apiVersion"))
	}
	if refNS := scalarField(ref, "namespace"); refNS != "" {
		ns = refNS
	}
	k := objKey{group: group, kind: scalarField(ref, "kind"), namespace: ns, name: scalarField(ref, "name")}
	return k, k.kind != "" && k.name != ""
}

// resolveRef resolves a reference and reports, as an info, one that only kustomize's
// previous names could resolve: kustomize rewrites it at the end of the build only when a
// nameReference configuration covers the field.
func (r *run) resolveRef(referrer *object, field string, k objKey) *object {
	o, viaPrevious, ambiguous := r.resolve(k, referrer)
	if ambiguous {
		r.errorf(referrer, field, "%s %q could be any of several renamed resources (kustomize previous names): "+
			"give them distinct original names", k.kind, k.name)
		return nil
	}
	if said := (saidKey{referrer, field}); viaPrevious && !r.refs.said[said] {
		r.refs.said[said] = true
		r.infof(referrer, field, "names %s %q, which kustomize renamed to %q: kustomize rewrites this reference at the end of "+
			"the build only with a nameReference configuration for Cluster API kinds (see docs/integrations.md)", k.kind, k.name, o.name)
	}
	return o
}

// machinePoolsByInfraRef indexes MachinePools by the AWSManagedMachinePool they use, once,
// so matching stays linear in the number of resources.
func (r *run) machinePoolsByInfraRef() map[*object][]*object {
	m := map[*object][]*object{}
	for _, o := range r.objects {
		if o.group != clusterGroup || o.kind != "MachinePool" || o.removed {
			continue
		}
		// The function may edit it: lookups and edits must not go through aliases.
		if err := deAnchor(o.node); err != nil {
			r.errorf(o, "", "%v", err)
			continue
		}
		const field = "spec.template.spec.infrastructureRef"
		// A MachinePool whose template is not a mapping names no pool the function can
		// see, and the API server would refuse it anyway.
		if _, err := mapAt(o.node.YNode(), "spec", "template", "spec", "infrastructureRef"); err != nil {
			r.fail(o, err)
			continue
		}
		k, ok := refKey(lookup(o.node.YNode(), "spec", "template", "spec", "infrastructureRef"), o.ns())
		if !ok || k.kind != "AWSManagedMachinePool" || k.group != infraGroup {
			continue
		}
		if pool := r.resolveRef(o, field, k); pool != nil {
			m[pool] = append(m[pool], o)
		}
	}
	return m
}

// controlPlaneOf follows the MachinePool's clusterName to the Cluster and its
// AWSManagedControlPlane. When one is missing it says which.
func (r *run) controlPlaneOf(machinePool *object) (cluster, cp *object, problem string) {
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	if clusterName == "" {
		return nil, nil, "spec.clusterName is missing"
	}
	cluster = r.resolveRef(machinePool, "spec.clusterName", objKey{clusterGroup, "Cluster", machinePool.ns(), clusterName})
	if cluster == nil {
		return nil, nil, fmt.Sprintf("Cluster %q is not in the input", clusterName)
	}
	cpKey, ok := refKey(lookup(cluster.node.YNode(), "spec", "controlPlaneRef"), cluster.ns())
	if !ok || cpKey.kind != "AWSManagedControlPlane" {
		return cluster, nil, fmt.Sprintf("Cluster %q has no AWSManagedControlPlane controlPlaneRef", clusterName)
	}
	cp = r.resolveRef(cluster, "spec.controlPlaneRef", cpKey)
	if cp == nil {
		return cluster, nil, fmt.Sprintf("AWSManagedControlPlane %q (the control plane of Cluster %q) is not in the input", cpKey.name, clusterName)
	}
	return cluster, cp, ""
}

// controlPlaneQuietly is controlPlaneOf without its reports, for a check that only needs
// the control plane when there is one: nil when there is none, or it is ambiguous.
func (r *run) controlPlaneQuietly(machinePool *object) *object {
	if machinePool == nil {
		return nil
	}
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	if clusterName == "" {
		return nil
	}
	cluster, _, ambiguous := r.resolve(objKey{clusterGroup, "Cluster", machinePool.ns(), clusterName}, machinePool)
	if cluster == nil || ambiguous {
		return nil
	}
	cpKey, ok := refKey(lookup(cluster.node.YNode(), "spec", "controlPlaneRef"), cluster.ns())
	if !ok || cpKey.kind != "AWSManagedControlPlane" {
		return nil
	}
	cp, _, ambiguous := r.resolve(cpKey, cluster)
	if ambiguous {
		return nil
	}
	return cp
}
