package transformers

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// With amiType CUSTOM, EKS no longer bootstraps the node: the launch template's user data
// must join it to the cluster, and that script must name the cluster exactly as CAPA did.

const (
	// GeneratedAnnotation marks Secrets this function wrote, so a re-run updates them
	// and a Secret the user wrote is never overwritten.
	GeneratedAnnotation = ConfigGroup + "/generated-by"
	generatedBy         = "capa-imds"
	// clusterctl move carries a Secret without an owner only with this label.
	moveLabel = "clusterctl.cluster.x-k8s.io/move"

	bootstrapScriptPrefix = "#!/bin/bash -xe\n/etc/eks/bootstrap.sh "
)

// bootstrapScript is the node's user data. No trailing newline: the bytes are part of
// the launch template, and a changed byte rolls every node.
func bootstrapScript(eksClusterName string) string {
	return bootstrapScriptPrefix + eksClusterName
}

// generatedSecret is a Secret this run wants, keyed by namespace and name.
type generatedSecret struct {
	obj     *object
	script  string
	cluster string // the MachinePool's spec.clusterName, for the error on a shared name
	// skipped: the Secret in the input is annotated to be left alone; its content is the
	// user's, whatever the script would be.
	skipped bool
}

// ensureSecret creates or updates the bootstrap Secret for the MachinePool.
// It returns the Secret's name, or "" after reporting why there is none.
func (r *run) ensureSecret(machinePool *object, eksName string, st bootstrapState) string {
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	name := r.cfg.SecretName
	switch {
	case st.ours && (name == "" || name == st.secret.name):
		// The MachinePool already uses ours: a new name would orphan it.
		name = st.secret.name
	case name == "":
		if clusterName == "" {
			r.errorf(machinePool, "spec.clusterName", "missing: the bootstrap Secret is named after it; set it, or set secretName")
			return ""
		}
		base := clusterName
		// kustomize may have renamed the Cluster: its current name is the one it keeps.
		if cluster, _, _ := r.controlPlaneOf(machinePool); cluster != nil {
			base = cluster.name
		}
		name = base + "-eks-bootstrap"
		if !validSecretName(name) {
			r.errorf(machinePool, "spec.clusterName", "%q is not usable in a Secret name: the bootstrap Secret would be %q, "+
				"which is not a lowercase RFC 1123 subdomain of at most 253 characters; fix the cluster name, or set secretName", base, name)
			return ""
		}
	}
	if st.ours && name != st.secret.name {
		r.pools.detached[st.secret] = machinePool
	}
	script := bootstrapScript(eksName)
	key := objKey{"", "Secret", machinePool.ns(), name}
	if prev, ok := r.pools.secrets[key]; ok {
		if prev.script != script && !prev.skipped {
			r.errorf(machinePool, "", "bootstrap Secret %s is shared with Cluster %q but their scripts differ (EKS clusters %q and %q): "+
				"a fixed secretName cannot serve two clusters in one namespace", name, prev.cluster,
				strings.TrimPrefix(prev.script, bootstrapScriptPrefix), eksName)
			return ""
		}
		return name
	}
	existing, _, _ := r.resolve(key, machinePool)
	if existing != nil && r.skipped(existing) {
		r.pools.secrets[key] = &generatedSecret{obj: existing, script: script, cluster: clusterName, skipped: true}
		return name
	}
	switch {
	case existing != nil && existing.annotation(GeneratedAnnotation) != generatedBy:
		r.errorf(existing, "", "a Secret named %s is already in the input and was not written by capa-imds: it is not overwritten. "+
			"Remove it, or set secretName to another name", name)
		return ""
	case existing != nil:
		// Only the script is the function's: labels, annotations and other keys a user or an
		// orchestrator added stay as they are, and so does the form the script is in (data,
		// or stringData in a clusterctl template, which clusterctl substituted).
		if current := currentScript(existing.node); current != any(script) {
			field := "data.value"
			if lookup(existing.node.YNode(), "stringData", "value") != nil {
				field = "stringData.value"
			}
			r.record(edit{obj: existing, field: field, current: current, proposed: script})
			if err := setSecretScript(existing.node.YNode(), script); err != nil {
				r.fail(existing, err)
				return ""
			}
		}
		r.pools.secrets[key] = &generatedSecret{obj: existing, script: script, cluster: clusterName}
	default:
		fresh := newBootstrapSecret(name, machinePool.namespace, script)
		o := newObject(fresh, machinePool.defNS)
		r.placeNear(machinePool, fresh)
		r.added[machinePool] = append(r.added[machinePool], o)
		r.index[key] = o
		r.pools.secrets[key] = &generatedSecret{obj: o, script: script, cluster: clusterName}
		r.record(edit{obj: machinePool, field: "spec.template.spec.bootstrap.dataSecretName", proposed: name,
			finding: fmt.Sprintf("missing bootstrap Secret %s with the bootstrap.sh call for EKS cluster %s", name, eksName)})
	}
	return name
}

// setSecretScript writes the script into a Secret this function wrote earlier, in the
// form it has: stringData where it has it (or where the script holds placeholders, which
// base64 would freeze), data otherwise.
func setSecretScript(secret *yaml.Node, script string) error {
	useStringData := lookup(secret, "stringData", "value") != nil || hasPlaceholder(script)
	if useStringData {
		sd, err := ensureMap(secret, "stringData", "stringData")
		if err != nil {
			return err
		}
		v := stringNode(script)
		if strings.Contains(script, "\n") {
			v.Style = yaml.LiteralStyle
		}
		setNode(sd, "value", v)
		if data := valueOf(secret, "data"); data != nil && data.Kind == yaml.MappingNode {
			removeKey(data, "value")
		}
		return nil
	}
	data, err := ensureMap(secret, "data", "data")
	if err != nil {
		return err
	}
	setNode(data, "value", stringNode(base64.StdEncoding.EncodeToString([]byte(script))))
	return nil
}

// currentScript is what a Secret from an earlier run holds: stringData wins over data, as
// the API server merges them.
func currentScript(n *yaml.RNode) any {
	if v := lookup(n.YNode(), "stringData", "value"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	b, err := base64.StdEncoding.DecodeString(scalarField(n.YNode(), "data", "value"))
	if err != nil {
		return nil
	}
	return string(b)
}

// newBootstrapSecret builds the Secret as a fresh node, never as a copy of an input item,
// so no annotation of the input leaks into it.
func newBootstrapSecret(name, namespace, script string) *yaml.RNode {
	meta := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	meta.Content = append(meta.Content, keyNode("name"), stringNode(name))
	if namespace != "" {
		meta.Content = append(meta.Content, keyNode("namespace"), stringNode(namespace))
	}
	meta.Content = append(meta.Content,
		keyNode("labels"), &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{keyNode(moveLabel), stringNode("")}},
		keyNode("annotations"), &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{keyNode(GeneratedAnnotation), stringNode(generatedBy)}},
	)
	// Base64 in data would freeze clusterctl placeholders: a template gets stringData,
	// which clusterctl substitutes and the API server encodes.
	dataKey, value := "data", base64.StdEncoding.EncodeToString([]byte(script))
	if hasPlaceholder(script) || hasPlaceholder(name) || hasPlaceholder(namespace) {
		dataKey, value = "stringData", script
	}
	valueNode := stringNode(value)
	if strings.Contains(value, "\n") {
		valueNode.Style = yaml.LiteralStyle
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{
		keyNode("apiVersion"), stringNode("v1"),
		keyNode("kind"), stringNode("Secret"),
		keyNode("metadata"), meta,
		keyNode("type"), stringNode("Opaque"),
		keyNode(dataKey), {Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{keyNode("value"), valueNode}},
	}}
	return yaml.NewRNode(root)
}

// placeNear gives a new resource its MachinePool's file, with the next free index in
// that file, so kpt writes it beside the MachinePool; elsewhere it carries no annotation.
func (r *run) placeNear(machinePool *object, n *yaml.RNode) {
	f := machinePool.file()
	if f == nil || machinePool.list != nil {
		return // inside a List the new resource goes into the List, which has the path
	}
	if r.nextIndex == nil {
		r.nextIndex = map[string]int{}
		for _, o := range r.objects {
			if of := o.file(); of != nil && of.Index+1 > r.nextIndex[of.Path] {
				r.nextIndex[of.Path] = of.Index + 1
			}
		}
	}
	idx := strconv.Itoa(r.nextIndex[f.Path])
	r.nextIndex[f.Path]++
	// kpt sends both families and reconciles them; a fixed order keeps the bytes stable.
	for _, kv := range [][2]string{
		{kioutil.PathAnnotation, f.Path}, {kioutil.IndexAnnotation, idx},
		{kioutil.LegacyPathAnnotation, f.Path}, {kioutil.LegacyIndexAnnotation, idx},
	} {
		_ = n.PipeE(yaml.SetAnnotation(kv[0], kv[1]))
	}
}
