package transformers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
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

func (r *run) bootstrap(machinePool *object, mp *managedPool) {
	mpNode := machinePool.node.YNode()
	if _, err := mapAt(mpNode, "spec", "template", "spec", "bootstrap"); err != nil {
		r.errorf(machinePool, fieldOf(err), "%s", msgOf(err))
		return
	}
	boot := lookup(mpNode, "spec", "template", "spec", "bootstrap")
	configRef := valueOf(boot, "configRef")
	dataSecretName := scalarField(boot, "dataSecretName")
	refK, hasRef := refKey(configRef, machinePool.ns())
	const bootField = "spec.template.spec.bootstrap"

	strategy := r.cfg.BootstrapStrategy
	if dataSecretName != "" {
		if s := r.index[objKey{"", "Secret", machinePool.ns(), dataSecretName}]; s != nil && s.annotation(GeneratedAnnotation) == generatedBy {
			strategy = BootstrapSecret // ours from an earlier run: update it
		}
	}
	if strategy == BootstrapAuto {
		strategy = r.autoStrategy(machinePool, configRef, hasRef, refK, dataSecretName)
	}
	looksAL2023, why := r.looksAL2023(machinePool, mp, hasRef, refK)
	if strategy == BootstrapKeep {
		return // checkBootstrapOverwrites flags a configRef beside a dataSecretName
	}

	if looksAL2023 {
		r.warnf(machinePool, bootField, "the pool's image likely has no /etc/eks/bootstrap.sh (%s; only Amazon Linux 2 images have it), "+
			"so nodes started with the bootstrap Secret would not join: use strategy keep with the image's own bootstrap "+
			"(a NodeadmConfig for Amazon Linux 2023), or an AL2 image", why)
	}
	eksName, ok := r.eksClusterName(machinePool)
	if !ok {
		return
	}
	secretName := r.ensureSecret(machinePool, eksName)
	if secretName == "" {
		return
	}

	b, err := ensurePath(mpNode, "", "spec", "template", "spec", "bootstrap")
	if err != nil {
		r.errorf(machinePool, fieldOf(err), "%s", msgOf(err))
		return
	}
	if configRef != nil {
		removeKey(b, "configRef")
		r.changed(machinePool, bootField+".configRef", configRef, nil,
			"configRef is set: Cluster API would overwrite dataSecretName from it")
		if hasRef {
			r.detachedConfigs[refK] = machinePool
		}
	}
	if setScalar(b, "dataSecretName", secretName, false) {
		r.changed(machinePool, bootField+".dataSecretName", nilIfEmpty(dataSecretName), secretName, "")
	}
}

// autoStrategy uses the Secret only where nothing is lost: no bootstrap at all, or an
// EKSConfig with an empty spec (the default bootstrap.sh call is exactly what it renders).
func (r *run) autoStrategy(machinePool *object, configRef *yaml.Node, hasRef bool, refK objKey, dataSecretName string) BootstrapStrategy {
	const bootField = "spec.template.spec.bootstrap"
	switch {
	case configRef == nil && dataSecretName == "":
		return BootstrapSecret
	case configRef == nil:
		r.infof(machinePool, bootField+".dataSecretName", "bootstrap kept: dataSecretName names the user's own Secret %q", dataSecretName)
		return BootstrapKeep
	case !hasRef:
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: configRef has no kind and name")
		return BootstrapKeep
	}
	cfgObj := r.index[refK]
	switch {
	case refK.kind == "NodeadmConfig":
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: a NodeadmConfig bootstraps Amazon Linux 2023, "+
			"whose images have no /etc/eks/bootstrap.sh")
		return BootstrapKeep
	case refK.kind != "EKSConfig" || refK.group != bootstrapGroup:
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: configRef is a %s, not an EKSConfig", refK.kind)
		return BootstrapKeep
	case cfgObj == nil:
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: EKSConfig %s is not in the input, so it cannot be "+
			"checked for settings a static script would lose; set strategy secret to replace it anyway", refK.name)
		return BootstrapKeep
	}
	if settings := nonEmptyKeys(lookup(cfgObj.node.YNode(), "spec")); len(settings) > 0 {
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: EKSConfig %s sets %s, which a static bootstrap script "+
			"would lose; set strategy secret to replace it anyway", refK.name, strings.Join(settings, ", "))
		return BootstrapKeep
	}
	return BootstrapSecret
}

func nonEmptyKeys(m *yaml.Node) []string {
	var keys []string
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		v := m.Content[i+1]
		if isNull(v) || (v.Kind != yaml.ScalarNode && len(v.Content) == 0) {
			continue
		}
		keys = append(keys, m.Content[i].Value)
	}
	return keys
}

var minorVersion = regexp.MustCompile(`^v?1\.(\d+)(\.|$)`)

// looksAL2023 tells whether nodes would boot an image without bootstrap.sh: Amazon Linux
// 2023 (EKS ships no AL2 images from Kubernetes 1.33 on), Bottlerocket or Windows.
func (r *run) looksAL2023(machinePool *object, mp *managedPool, hasRef bool, refK objKey) (bool, string) {
	if mp.al2023 {
		return true, "its AMI type or lookup type is AL2023"
	}
	if strings.HasPrefix(mp.amiType, "BOTTLEROCKET") || strings.HasPrefix(mp.amiType, "WINDOWS") {
		return true, "its AMI type was " + mp.amiType
	}
	if hasRef && refK.kind == "NodeadmConfig" {
		return true, "its bootstrap config is a NodeadmConfig"
	}
	v := scalarField(machinePool.node.YNode(), "spec", "template", "spec", "version")
	if m := minorVersion.FindStringSubmatch(v); m != nil {
		if minor, _ := strconv.Atoi(m[1]); minor >= 33 {
			return true, "Kubernetes " + v + " has no AL2 images"
		}
	}
	return false, ""
}

// eksClusterName is the name CAPA gives the EKS cluster, as it will be after the
// AWSManagedControlPlane webhook defaulted it.
func (r *run) eksClusterName(machinePool *object) (string, bool) {
	if r.cfg.EKSClusterName != "" {
		return r.cfg.EKSClusterName, true
	}
	fix := "set spec.managedMachinePools.bootstrap.eksClusterName in the IMDSConfig"
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	if clusterName == "" {
		r.errorf(machinePool, "spec.clusterName", "missing: the EKS cluster name cannot be derived; %s", fix)
		return "", false
	}
	cp, problem := r.controlPlaneOf(machinePool)
	if cp == nil {
		r.errorf(machinePool, "spec.clusterName", "%s, so the EKS cluster name cannot be derived; %s", problem, fix)
		return "", false
	}
	if name := scalarField(cp.node.YNode(), "spec", "eksClusterName"); name != "" {
		if err := validateEKSClusterName(name); err != nil {
			r.errorf(cp, "spec.eksClusterName", "%v", err)
			return "", false
		}
		return name, true
	}
	ns := cp.namespace
	template := hasPlaceholder(cp.name) || hasPlaceholder(clusterName) || hasPlaceholder(machinePool.name)
	if ns == "" {
		if template {
			ns = namespacePlaceholder // clusterctl substitutes it with the target namespace
		} else {
			ns = defaultNamespace
			r.infof(cp, "metadata.namespace", "no namespace: taken to be %q for the EKS cluster name; "+
				"`kubectl apply -n` would change the namespace, and the name with it", defaultNamespace)
		}
	}
	name, templated := deriveEKSClusterName(cp.name, ns)
	if err := validateEKSClusterName(name); err != nil {
		r.errorf(cp, "metadata.name", "derived EKS cluster name is unusable: %v; %s", err, fix)
		return "", false
	}
	if templated {
		r.warnf(cp, "metadata.name", "the EKS cluster name %s holds placeholders: CAPA hashes names of 100 characters or more and "+
			"replaces dots in the control plane name, which cannot be applied before clusterctl substitutes them; "+
			"keep the substituted name short and free of dots, or set eksClusterName", name)
	}
	return name, true
}

// controlPlaneOf follows the MachinePool's clusterName to the Cluster and its
// AWSManagedControlPlane. When one is missing it says which.
func (r *run) controlPlaneOf(machinePool *object) (*object, string) {
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	if clusterName == "" {
		return nil, "spec.clusterName is missing"
	}
	cluster := r.index[objKey{clusterGroup, "Cluster", machinePool.ns(), clusterName}]
	if cluster == nil {
		return nil, fmt.Sprintf("Cluster %q is not in the input", clusterName)
	}
	cpKey, ok := refKey(lookup(cluster.node.YNode(), "spec", "controlPlaneRef"), cluster.ns())
	if !ok || cpKey.kind != "AWSManagedControlPlane" {
		return nil, fmt.Sprintf("Cluster %q has no AWSManagedControlPlane controlPlaneRef", clusterName)
	}
	cp := r.index[cpKey]
	if cp == nil {
		return nil, fmt.Sprintf("AWSManagedControlPlane %q (the control plane of Cluster %q) is not in the input", cpKey.name, clusterName)
	}
	return cp, ""
}

// ensureSecret creates or updates the bootstrap Secret for the MachinePool.
// It returns the Secret's name, or "" after reporting why there is none.
func (r *run) ensureSecret(machinePool *object, eksName string) string {
	clusterName := scalarField(machinePool.node.YNode(), "spec", "clusterName")
	name := r.cfg.SecretName
	if name == "" {
		if clusterName == "" {
			r.errorf(machinePool, "spec.clusterName", "missing: the bootstrap Secret is named after it; set it, or set secretName")
			return ""
		}
		name = clusterName + "-eks-bootstrap"
		if !validSecretName(name) {
			r.errorf(machinePool, "spec.clusterName", "%q is not usable in a Secret name: the bootstrap Secret would be %q, "+
				"which is not a lowercase RFC 1123 subdomain of at most 253 characters; fix the cluster name, or set secretName", clusterName, name)
			return ""
		}
	}
	script := bootstrapScript(eksName)
	key := objKey{"", "Secret", machinePool.ns(), name}
	if prev, ok := r.secrets[key]; ok {
		if prev.script != script && !prev.skipped {
			r.errorf(machinePool, "", "bootstrap Secret %s is shared with Cluster %q but their scripts differ (EKS clusters %q and %q): "+
				"a fixed secretName cannot serve two clusters in one namespace", name, prev.cluster,
				strings.TrimPrefix(prev.script, bootstrapScriptPrefix), eksName)
			return ""
		}
		return name
	}
	existing := r.index[key]
	if existing != nil && r.skipped(existing) {
		r.secrets[key] = &generatedSecret{obj: existing, script: script, cluster: clusterName, skipped: true}
		return name
	}
	fresh := newBootstrapSecret(name, machinePool.namespace, script)
	switch {
	case existing != nil && existing.annotation(GeneratedAnnotation) != generatedBy:
		r.errorf(existing, "", "a Secret named %s is already in the input and was not written by capa-imds: it is not overwritten. "+
			"Remove it, or set secretName to another name", name)
		return ""
	case existing != nil:
		// Left byte for byte as the orchestrator formatted it unless its content differs;
		// then rebuilt from scratch, keeping where the orchestrator placed it.
		if !sameIgnoringOrchestrator(existing.node, fresh) {
			r.changed(existing, "data.value", currentScript(existing.node), script, "")
			copyOrchestratorAnnotations(existing.node, fresh)
			existing.node.SetYNode(fresh.YNode())
		}
		r.secrets[key] = &generatedSecret{obj: existing, script: script, cluster: clusterName}
	default:
		o := newObject(fresh)
		r.placeNear(machinePool, fresh)
		r.added[machinePool] = append(r.added[machinePool], o)
		r.index[key] = o
		r.secrets[key] = &generatedSecret{obj: o, script: script, cluster: clusterName}
		r.changed(machinePool, "spec.template.spec.bootstrap.dataSecretName", nil, name,
			fmt.Sprintf("missing bootstrap Secret %s with the bootstrap.sh call for EKS cluster %s", name, eksName))
	}
	return name
}

// sameIgnoringOrchestrator compares two resources by value: kustomize sorts keys and adds
// its own id annotation, and kpt orders its annotations its own way.
func sameIgnoringOrchestrator(a, b *yaml.RNode) bool {
	decode := func(n *yaml.RNode) any {
		c := n.Copy()
		for k := range c.GetAnnotations() {
			if isOrchestratorAnnotation(k) {
				_ = c.PipeE(yaml.ClearAnnotation(k))
			}
		}
		j, err := c.MarshalJSON()
		if err != nil {
			return nil
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			return nil
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// currentScript is what a Secret from an earlier run holds, for the audit finding.
func currentScript(n *yaml.RNode) any {
	if v := scalarField(n.YNode(), "stringData", "value"); v != "" {
		return v
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

// orchestratorPrefixes mark annotations that kpt and kustomize use to track resources.
var orchestratorPrefixes = []string{"internal.config.kubernetes.io/", "config.kubernetes.io/", "config.k8s.io/", "kustomize.config.k8s.io/"}

func isOrchestratorAnnotation(k string) bool {
	for _, p := range orchestratorPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func copyOrchestratorAnnotations(from, to *yaml.RNode) {
	a := from.GetAnnotations()
	keys := make([]string, 0, len(a))
	for k := range a {
		if isOrchestratorAnnotation(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		_ = to.PipeE(yaml.SetAnnotation(k, a[k]))
	}
}

// placeNear gives a new resource its MachinePool's file, with the next free index in
// that file, so kpt writes it beside the MachinePool; elsewhere it carries no annotation.
func (r *run) placeNear(machinePool *object, n *yaml.RNode) {
	f := machinePool.file()
	if f == nil {
		return
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
