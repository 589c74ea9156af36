package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// With amiType CUSTOM, EKS no longer bootstraps the node: the MachinePool's bootstrap is
// all that joins it to the cluster. Amazon Linux 2 images join with /etc/eks/bootstrap.sh
// (a Secret this function writes); Amazon Linux 2023 images have no bootstrap.sh and join
// with nodeadm, which CAPA drives from a NodeadmConfig. A node group that does not join is
// worse than one on IMDSv1, so every path either yields a bootstrap that joins, or fails.

const bootField = "spec.template.spec.bootstrap"

// bootstrapKind is what the MachinePool ends up with.
type bootstrapKind int

const (
	bootKeep    bootstrapKind = iota // as found
	bootSecret                       // the bootstrap.sh Secret
	bootNodeadm                      // a NodeadmConfig
	bootRefused                      // kept, and already reported as one that cannot join
)

// bootstrapState is what a MachinePool's bootstrap holds now.
type bootstrapState struct {
	configRef      *yaml.Node
	ref            objKey
	hasRef         bool
	config         *object // the referenced config, when in the input
	dataSecretName string
	secret         *object // the Secret dataSecretName names, when in the input
	ours           bool    // that Secret was written by this function
}

func (r *run) bootstrapOf(machinePool *object) bootstrapState {
	boot := lookup(machinePool.node.YNode(), "spec", "template", "spec", "bootstrap")
	st := bootstrapState{configRef: valueOf(boot, "configRef"), dataSecretName: scalarField(boot, "dataSecretName")}
	st.ref, st.hasRef = refKey(st.configRef, machinePool.ns())
	if st.hasRef {
		st.config, _, _ = r.resolve(st.ref, machinePool)
	}
	if st.dataSecretName != "" {
		st.secret, _, _ = r.resolve(objKey{"", "Secret", machinePool.ns(), st.dataSecretName}, machinePool)
		st.ours = st.secret != nil && st.secret.annotation(GeneratedAnnotation) == generatedBy
	}
	return st
}

// needsNodeadm tells whether the pool's nodes boot an image without bootstrap.sh that
// nodeadm joins, and why.
func needsNodeadm(mp *managedPool, st bootstrapState) (bool, string) {
	switch mp.family {
	case familyAL2023:
		return true, "its AMI type or lookup type is Amazon Linux 2023"
	case familyAL2:
		return false, ""
	case familyOther:
		return false, ""
	}
	// A custom image: only the bootstrap it already has, or the Kubernetes version, tells.
	if st.hasRef && st.ref.kind == "NodeadmConfig" {
		return true, "its bootstrap config is a NodeadmConfig"
	}
	if al2023Version(mp.version) {
		return true, "Kubernetes " + mp.version + " has no Amazon Linux 2 images"
	}
	return false, ""
}

func (r *run) bootstrap(machinePool *object, mp *managedPool) {
	mpNode := machinePool.node.YNode()
	if _, err := mapAt(mpNode, "spec", "template", "spec", "bootstrap"); err != nil {
		r.fail(machinePool, err)
		return
	}
	st := r.bootstrapOf(machinePool)
	if mp.family == familyOther {
		r.otherImageBootstrap(machinePool, mp, st)
		return
	}
	nodeadm, why := needsNodeadm(mp, st)
	strategy := r.cfg.BootstrapStrategy
	if st.ours {
		strategy = BootstrapSecret // ours from an earlier run: keep it current
		if nodeadm && r.cfg.BootstrapStrategy == BootstrapAuto {
			strategy = BootstrapAuto // or move it to nodeadm, which is what joins these nodes
		}
	}

	var kind bootstrapKind
	switch strategy {
	case BootstrapKeep:
		r.checkKeptBootstrap(machinePool, mp, st)
		return
	case BootstrapSecret:
		kind = bootSecret
		if nodeadm {
			if mp.family == familyCustom {
				r.warnf(machinePool, bootField, "the pool's custom image (spec.awsLaunchTemplate.ami.id) may have no /etc/eks/bootstrap.sh (%s): "+
					"only Amazon Linux 2 images have it; make sure this image does, or use strategy auto for a NodeadmConfig", why)
			} else {
				r.errorf(machinePool, bootField, "a bootstrap Secret runs /etc/eks/bootstrap.sh, but %s, whose images have no "+
					"bootstrap.sh: the nodes would never join. Use strategy auto (a NodeadmConfig), or keep with your own NodeadmConfig", why)
				return
			}
		}
	default:
		kind = r.autoStrategy(machinePool, st, nodeadm)
	}
	switch kind {
	case bootSecret:
		r.useSecret(machinePool, st)
	case bootNodeadm:
		r.useNodeadm(machinePool, st, why)
	case bootRefused:
	default:
		r.checkKeptBootstrap(machinePool, mp, st)
	}
}

// autoStrategy replaces a bootstrap only where nothing is lost: none at all, our own
// Secret, or an EKSConfig with an empty spec (the plain bootstrap.sh call is exactly what
// it renders). Amazon Linux 2023 nodes get a NodeadmConfig, as in CAPA's own e2e shape
// for a CUSTOM pool; Amazon Linux 2 nodes get the Secret.
func (r *run) autoStrategy(machinePool *object, st bootstrapState, nodeadm bool) bootstrapKind {
	replacement := bootSecret
	if nodeadm {
		replacement = bootNodeadm
	}
	switch {
	case st.ours:
		return replacement
	case st.configRef == nil && st.dataSecretName == "":
		return replacement
	case st.configRef == nil:
		r.infof(machinePool, bootField+".dataSecretName", "bootstrap kept: dataSecretName names the user's own Secret %q", st.dataSecretName)
		return bootKeep
	case !st.hasRef:
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: configRef has no kind and name")
		return bootKeep
	case st.ref.kind == "NodeadmConfig":
		if nodeadm {
			r.infof(machinePool, bootField+".configRef", "bootstrap kept: a NodeadmConfig bootstraps Amazon Linux 2023")
		}
		return bootKeep // on any other image checkKeptBootstrap refuses it
	case st.ref.kind != "EKSConfig" || st.ref.group != bootstrapGroup:
		// Neither of the bootstraps EKS nodes join with: only the user knows this one does.
		r.warnf(machinePool, bootField+".configRef", "bootstrap kept: configRef is a %s, neither an EKSConfig nor a NodeadmConfig; "+
			"with amiType CUSTOM it alone joins the nodes to the EKS cluster, so make sure it does", st.ref.kind)
		return bootKeep
	case st.config == nil:
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: EKSConfig %s is not in the input, so it cannot be "+
			"checked for settings a replacement would lose; set strategy secret to replace it anyway", st.ref.name)
		return bootKeep
	}
	if settings := nonEmptyKeys(lookup(st.config.node.YNode(), "spec")); len(settings) > 0 {
		if nodeadm {
			r.errorf(machinePool, bootField+".configRef", "EKSConfig %s renders a /etc/eks/bootstrap.sh call, which Amazon Linux 2023 "+
				"images lack, so the nodes would never join; it sets %s, which a replacement would lose: move them to a NodeadmConfig "+
				"and point configRef at it", st.ref.name, strings.Join(settings, ", "))
			return bootRefused
		}
		r.infof(machinePool, bootField+".configRef", "bootstrap kept: EKSConfig %s sets %s, which a static bootstrap script "+
			"would lose; set strategy secret to replace it anyway", st.ref.name, strings.Join(settings, ", "))
		return bootKeep
	}
	return replacement
}

// checkKeptBootstrap makes sure a bootstrap the function leaves alone exists: a MachinePool
// whose config or Secret is nowhere starts nodes that never join. Audit cannot vouch for
// what it cannot see; enforce says so.
func (r *run) checkKeptBootstrap(machinePool *object, mp *managedPool, st bootstrapState) {
	report := r.warnf
	if r.cfg.Mode == ModeAudit {
		report = r.errorf
	}
	// A kept bootstrap must also fit the image the pool now boots: bootstrap.sh exists only
	// on Amazon Linux 2, nodeadm only on Amazon Linux 2023. A mismatch never joins.
	nodeadm, why := needsNodeadm(mp, st)
	runsBootstrapSH := (st.hasRef && st.ref.kind == "EKSConfig") ||
		(st.configRef == nil && st.secret != nil && strings.Contains(fmt.Sprint(currentScript(st.secret.node)), "/etc/eks/bootstrap.sh"))
	switch {
	case nodeadm && runsBootstrapSH && mp.family != familyCustom:
		r.errorf(machinePool, bootField, "the bootstrap runs /etc/eks/bootstrap.sh (%s), but %s, whose images have none: the nodes "+
			"would never join. Use a NodeadmConfig (strategy auto makes one where nothing would be lost)", describeBootstrap(st), why)
		return
	case mp.family == familyAL2 && st.hasRef && st.ref.kind == "NodeadmConfig":
		// The mirror of bootstrap.sh on Amazon Linux 2023: an error in both modes.
		r.errorf(machinePool, bootField+".configRef", "the bootstrap is NodeadmConfig %s, but the pool boots Amazon Linux 2 (%s), "+
			"whose images have no nodeadm: the nodes would never join. Move the pool to Amazon Linux 2023 (amiType "+
			"AL2023_x86_64_STANDARD, or spec.awsLaunchTemplate.ami.eksLookupType AmazonLinux2023), or join it with "+
			"/etc/eks/bootstrap.sh (strategy secret replaces the NodeadmConfig with the function's bootstrap Secret)", st.ref.name,
			mp.describeImage())
		return
	case mp.family == familyOther && (runsBootstrapSH || (st.hasRef && st.ref.kind == "NodeadmConfig")):
		joins := "runs /etc/eks/bootstrap.sh"
		if st.hasRef && st.ref.kind == "NodeadmConfig" {
			joins = "is nodeadm's"
		}
		r.errorf(machinePool, bootField, "the bootstrap (%s) %s, but the pool's image (amiType was %s) is neither Amazon Linux 2 nor "+
			"Amazon Linux 2023 and has neither bootstrap.sh nor nodeadm: the nodes would never join. %s",
			describeBootstrap(st), joins, mp.amiType, otherImageFix)
		return
	}
	switch {
	case st.configRef == nil && st.dataSecretName == "":
		// Certain, not a guess: with amiType CUSTOM only the MachinePool's bootstrap joins a node.
		r.errorf(machinePool, bootField, "no bootstrap (neither configRef nor dataSecretName): the pool's nodes, amiType CUSTOM, would "+
			"never join. Give the MachinePool a bootstrap (strategy auto writes one where the MachinePool is not skipped)")
	case st.hasRef && st.config == nil:
		report(machinePool, bootField+".configRef", "%s %q is not in the input, so nothing shows the nodes will join; "+
			"render it together with the MachinePool", st.ref.kind, st.ref.name)
	case st.configRef == nil && st.secret == nil:
		report(machinePool, bootField+".dataSecretName", "Secret %q is not in the input, so nothing shows the nodes will join; "+
			"render it together with the MachinePool", st.dataSecretName)
	}
}

// otherImageFix says what joins a Bottlerocket or Windows node: user data of its own, which
// neither the function nor CAPA v2.13 (no bootstrap provider for either) writes.
const otherImageFix = "Give the MachinePool the image's own user data (Bottlerocket: its TOML settings; Windows: a script " +
	"calling the EKS bootstrap PowerShell script) in a Secret of yours (key value) named by " + bootField + ".dataSecretName, " +
	"with strategy auto or keep, which keep it; or skip the pool with " + SkipAnnotation + ": \"true\""

// otherImageBootstrap handles a Bottlerocket or Windows pool with its own image
// (ami.id): the function never writes a bootstrap.sh Secret or a NodeadmConfig for it,
// since neither joins such a node; a bootstrap of the user's own is kept.
func (r *run) otherImageBootstrap(machinePool *object, mp *managedPool, st bootstrapState) {
	switch {
	case r.cfg.BootstrapStrategy == BootstrapSecret:
		r.errorf(machinePool, bootField, "strategy secret writes a Secret that runs /etc/eks/bootstrap.sh, but the pool's image "+
			"(amiType was %s) is not Amazon Linux 2 and has no bootstrap.sh: the nodes would never join. %s", mp.amiType, otherImageFix)
	case r.cfg.BootstrapStrategy == BootstrapAuto && st.configRef == nil && st.dataSecretName == "":
		r.errorf(machinePool, bootField, "no bootstrap, and the function writes none for the pool's image (amiType was %s): it joins "+
			"with neither /etc/eks/bootstrap.sh nor nodeadm, and with amiType CUSTOM EKS no longer bootstraps it, so the nodes "+
			"would never join. %s", mp.amiType, otherImageFix)
	default:
		if r.cfg.BootstrapStrategy == BootstrapAuto && st.configRef == nil && !st.ours {
			r.infof(machinePool, bootField+".dataSecretName", "bootstrap kept: dataSecretName names the user's own Secret %q", st.dataSecretName)
		}
		r.checkKeptBootstrap(machinePool, mp, st)
	}
}

func describeBootstrap(st bootstrapState) string {
	if st.hasRef {
		return st.ref.kind + " " + st.ref.name
	}
	return "Secret " + st.dataSecretName
}

// useSecret points the MachinePool at the bootstrap.sh Secret and drops its configRef
// (Cluster API overwrites dataSecretName whenever a configRef is set).
func (r *run) useSecret(machinePool *object, st bootstrapState) {
	eks, ok := r.eksClusterName(machinePool)
	if !ok {
		return
	}
	secretName := r.ensureSecret(machinePool, eks.name, st)
	if secretName == "" {
		return
	}
	r.settle(eks)
	b, err := ensurePath(machinePool.node.YNode(), "", "spec", "template", "spec", "bootstrap")
	if err != nil {
		r.fail(machinePool, err)
		return
	}
	r.dropConfigRef(machinePool, b, st, "configRef is set: Cluster API would overwrite dataSecretName from it")
	if setScalar(b, "dataSecretName", secretName, false) {
		r.record(edit{obj: machinePool, field: bootField + ".dataSecretName", current: nilIfEmpty(st.dataSecretName), proposed: secretName})
	}
}

func (r *run) dropConfigRef(machinePool *object, b *yaml.Node, st bootstrapState, why string) {
	if st.configRef == nil {
		return
	}
	removeKey(b, "configRef")
	r.record(edit{obj: machinePool, field: bootField + ".configRef", current: st.configRef, finding: why})
	if st.config != nil {
		r.pools.detached[st.config] = machinePool
	}
}

// useNodeadm gives the MachinePool a NodeadmConfig: the group/version CAPA serves, an
// empty spec, the MachinePool's name and namespace. That is CAPA's own tested shape for a
// CUSTOM Amazon Linux 2023 pool; nodeadm learns the cluster from CAPA, not from a name
// the function derives.
func (r *run) useNodeadm(machinePool *object, st bootstrapState, why string) {
	b, err := ensurePath(machinePool.node.YNode(), "", "spec", "template", "spec", "bootstrap")
	if err != nil {
		r.fail(machinePool, err)
		return
	}
	key := objKey{bootstrapGroup, "NodeadmConfig", machinePool.ns(), machinePool.name}
	existing, _, _ := r.resolve(key, machinePool)
	name := machinePool.name
	if existing != nil {
		name = existing.name
		if r.skipped(existing) {
			r.infof(machinePool, bootField+".configRef", "NodeadmConfig %s is skipped: referenced as it is", name)
		}
	}
	r.dropConfigRef(machinePool, b, st, "replaced by a NodeadmConfig: "+why)
	if st.dataSecretName != "" {
		removeKey(b, "dataSecretName")
		r.record(edit{obj: machinePool, field: bootField + ".dataSecretName", current: st.dataSecretName,
			finding: "a bootstrap.sh Secret cannot join these nodes (" + why + "): replaced by a NodeadmConfig"})
		if st.ours {
			r.pools.detached[st.secret] = machinePool
		}
	}
	ref := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	// v1beta1 MachinePools reference by apiVersion, v1beta2 ones by apiGroup.
	if machinePool.version == "v1beta1" {
		ref.Content = append(ref.Content, keyNode("apiVersion"), stringNode(bootstrapGroup+"/v1beta2"))
	} else {
		ref.Content = append(ref.Content, keyNode("apiGroup"), stringNode(bootstrapGroup))
	}
	ref.Content = append(ref.Content, keyNode("kind"), stringNode("NodeadmConfig"), keyNode("name"), stringNode(name))
	setNode(b, "configRef", ref)
	e := edit{obj: machinePool, field: bootField + ".configRef", proposed: "NodeadmConfig " + name,
		finding: "no bootstrap that joins the nodes (" + why + "): CAPA's shape for a CUSTOM Amazon Linux 2023 pool is a NodeadmConfig"}
	if existing != nil {
		r.record(e)
		return
	}
	e.note = inform("added NodeadmConfig %s (spec: {}): %s, so nodeadm joins the nodes", name, why)
	r.record(e)
	fresh := newNodeadmConfig(name, machinePool.namespace)
	o := newObject(fresh, machinePool.defNS)
	r.placeNear(machinePool, fresh)
	r.added[machinePool] = append(r.added[machinePool], o)
	r.index[key] = o
}

func newNodeadmConfig(name, namespace string) *yaml.RNode {
	meta := &yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap}
	meta.Content = append(meta.Content, keyNode("name"), stringNode(name))
	if namespace != "" {
		meta.Content = append(meta.Content, keyNode("namespace"), stringNode(namespace))
	}
	return yaml.NewRNode(&yaml.Node{Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Content: []*yaml.Node{
		keyNode("apiVersion"), stringNode(bootstrapGroup + "/v1beta2"),
		keyNode("kind"), stringNode("NodeadmConfig"),
		keyNode("metadata"), meta,
		keyNode("spec"), {Kind: yaml.MappingNode, Tag: yaml.NodeTagMap, Style: yaml.FlowStyle},
	}})
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

// checkBootstrapOverwrites flags MachinePools that set both a bootstrap configRef and a
// dataSecretName: Cluster API overwrites the Secret name from the config.
func (r *run) checkBootstrapOverwrites() {
	for _, o := range r.objects {
		if o.group != clusterGroup || o.kind != "MachinePool" {
			continue
		}
		boot := lookup(o.node.YNode(), "spec", "template", "spec", "bootstrap")
		if isNull(valueOf(boot, "configRef")) || scalarField(boot, "dataSecretName") == "" || o.annotation(SkipAnnotation) == "true" {
			continue
		}
		msg := fmt.Sprintf("both configRef and dataSecretName are set: Cluster API overwrites dataSecretName %q from the "+
			"bootstrap config", scalarField(boot, "dataSecretName"))
		if r.cfg.Mode == ModeAudit {
			r.errorf(o, "spec.template.spec.bootstrap.dataSecretName", "%s", msg)
		} else {
			r.warnf(o, "spec.template.spec.bootstrap.dataSecretName", "%s", msg)
		}
	}
}
