package transformers

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// EKS managed node groups get IMDSv2 only through a launch template, and CAPA drives a
// managed pool's launch template only with amiType CUSTOM: it always puts an image in the
// template, and EKS refuses an amiType other than CUSTOM beside one.

const defaultAMIType = "AL2_x86_64" // CAPA's kubebuilder default for spec.amiType

// amiFamily is what CAPA's AMI lookup needs to find the image the pool had.
type amiFamily struct {
	lookupType string // awsLaunchTemplate.ami.eksLookupType; "" when CAPA cannot look it up
	arm        bool
	al2023     bool
}

var amiFamilies = map[string]amiFamily{
	"AL2_x86_64":             {lookupType: "AmazonLinux"},
	"AL2_x86_64_GPU":         {lookupType: "AmazonLinuxGPU"},
	"AL2_ARM_64":             {lookupType: "AmazonLinux", arm: true},
	"AL2023_x86_64_STANDARD": {lookupType: "AmazonLinux2023", al2023: true},
	"AL2023_ARM_64_STANDARD": {lookupType: "AmazonLinux2023", arm: true, al2023: true},
	"AL2023_x86_64_NVIDIA":   {lookupType: "AmazonLinux2023GPU", al2023: true},
	// CAPA's lookup has no image for these.
	"AL2023_ARM_64_NVIDIA": {arm: true, al2023: true},
	"AL2023_x86_64_NEURON": {al2023: true},
}

// managedPool is an AWSManagedMachinePool after conversion.
type managedPool struct {
	obj       *object
	lookup    bool // CAPA looks the image up, which needs the MachinePool's version
	converted bool
	al2023    bool
	amiType   string // as the pool had it, CAPA's default filled in
}

// convertManagedPool turns the pool into a launch-template pool with amiType CUSTOM.
// It returns nil, with an error result, when the pool cannot be converted.
func (r *run) convertManagedPool(o *object) *managedPool {
	root := o.node.YNode()
	if _, err := mapAt(root, "spec", "awsLaunchTemplate", "ami"); err != nil {
		r.errorf(o, fieldOf(err), "%s", msgOf(err))
		return nil
	}
	spec, err := ensurePath(root, "", "spec")
	if err != nil {
		r.errorf(o, fieldOf(err), "%s", msgOf(err))
		return nil
	}
	amiType := scalarField(spec, "amiType")
	hadLT := !isNull(valueOf(spec, "awsLaunchTemplate"))
	amiID := scalarField(spec, "awsLaunchTemplate", "ami", "id")
	lookup := scalarField(spec, "awsLaunchTemplate", "ami", "eksLookupType")

	mp := &managedPool{obj: o, lookup: amiID == ""}
	if amiType != "CUSTOM" {
		written := amiType
		if amiType == "" {
			amiType = defaultAMIType
		}
		fam, known := amiFamilies[amiType]
		switch {
		case amiID != "" || lookup != "":
			// The user chose the image; nothing to derive.
		case !known || fam.lookupType == "":
			r.errorf(o, "spec.amiType", "%s cannot be converted to a launch template: CAPA's AMI lookup (ami.eksLookupType) has no %s image, "+
				"and IMDSv2 on a managed node group needs a launch template with amiType CUSTOM. Set spec.awsLaunchTemplate.ami.id "+
				"to the image to use, or skip the pool with the annotation %s: \"true\"", amiType, amiType, SkipAnnotation)
			return nil
		}
		mp.al2023 = fam.al2023
		mp.amiType = amiType
		if amiID == "" && lookup == "" {
			lt, _ := ensurePath(spec, "spec", "awsLaunchTemplate", "ami")
			setScalar(lt, "eksLookupType", fam.lookupType, false)
			r.changed(o, "spec.awsLaunchTemplate.ami.eksLookupType", nil, fam.lookupType,
				fmt.Sprintf("no launch template: the pool (amiType %s) cannot require IMDSv2", amiType))
		}
		if fam.arm && scalarField(spec, "instanceType") == "" && scalarField(spec, "awsLaunchTemplate", "instanceType") == "" {
			r.warnf(o, "spec.awsLaunchTemplate.instanceType", "amiType %s is ARM, but the pool has no instanceType: CAPA takes the "+
				"image architecture from the launch template's instanceType and looks up an x86_64 image without one; set it", amiType)
		}
		setScalar(spec, "amiType", "CUSTOM", false)
		r.changed(o, "spec.amiType", nilIfEmpty(written), "CUSTOM", "")
		mp.converted = true
	}
	if lookup == "AmazonLinux2023" || lookup == "AmazonLinux2023GPU" {
		mp.al2023 = true
	}

	lt, err := ensureMap(spec, "awsLaunchTemplate", "spec.awsLaunchTemplate")
	if err != nil {
		r.errorf(o, fieldOf(err), "%s", msgOf(err))
		return nil
	}
	if !hadLT {
		mp.converted = true
	}
	r.moveScalar(o, spec, "instanceType", lt, "instanceType", "spec.awsLaunchTemplate.instanceType")
	if v := valueOf(spec, "diskSize"); v != nil {
		rv, err := ensureMap(lt, "rootVolume", "spec.awsLaunchTemplate.rootVolume")
		if err != nil {
			r.errorf(o, fieldOf(err), "%s", msgOf(err))
			return nil
		}
		r.moveScalar(o, spec, "diskSize", rv, "size", "spec.awsLaunchTemplate.rootVolume.size")
	}
	if ra := valueOf(spec, "remoteAccess"); ra != nil {
		r.moveRemoteAccess(o, spec, ra, lt)
	}
	if v := removeKey(spec, "amiVersion"); v != nil {
		r.changed(o, "spec.amiVersion", v, nil, "")
		r.editf(Warning, o, "spec.amiVersion", "removed amiVersion %v: EKS rejects a release version with a custom AMI; "+
			"CAPA's lookup picks the image for the Kubernetes version", display(v))
	}
	if valueOf(lt, "iamInstanceProfile") != nil {
		r.errorf(o, "spec.awsLaunchTemplate.iamInstanceProfile", "CAPA's webhook forbids iamInstanceProfile in a managed pool's "+
			"launch template (EKS uses the node group role, spec.roleName): remove it")
	}
	if _, err := r.applyMetadataOptions(o, []string{"spec", "awsLaunchTemplate"}); err != nil {
		r.errorf(o, fieldOf(err), "%s", msgOf(err))
		return nil
	}
	if mp.converted {
		r.editf(Warning, o, "spec.amiType", "converted to a launch template with amiType CUSTOM: amiType and the presence of awsLaunchTemplate "+
			"are immutable, so this applies to new pools; replace an existing pool under a new name")
	}
	return mp
}

// moveScalar moves spec.<from> into dst.<to>, because CAPA's webhook forbids the field
// beside a launch template. A value already at the destination wins.
func (r *run) moveScalar(o *object, src *yaml.Node, from string, dst *yaml.Node, to, toField string) {
	v := removeKey(src, from)
	if v == nil {
		return
	}
	fromField := "spec." + from
	if existing := valueOf(dst, to); existing != nil {
		if existing.Value != v.Value {
			r.editf(Warning, o, fromField, "removed %s %v: CAPA forbids it beside a launch template, and %s is already %v", from, display(v), toField, display(existing))
		}
		r.changed(o, fromField, v, nil, "")
		return
	}
	setNode(dst, to, v)
	r.changed(o, fromField, v, nil, fmt.Sprintf("CAPA's webhook forbids %s beside a launch template: move it to %s", fromField, toField))
}

// moveRemoteAccess keeps the SSH key, which the launch template can carry; EKS rejects
// remoteAccess with a launch template, so the rest is dropped with a warning.
func (r *run) moveRemoteAccess(o *object, spec, ra, lt *yaml.Node) {
	removeKey(spec, "remoteAccess")
	r.changed(o, "spec.remoteAccess", ra, nil, "EKS rejects remoteAccess with a launch template")
	if ra.Kind != yaml.MappingNode {
		return
	}
	var dropped []string
	for i := 0; i+1 < len(ra.Content); i += 2 {
		k, v := ra.Content[i].Value, ra.Content[i+1]
		switch {
		case k == "sshKeyName" && !isNull(v):
			if existing := valueOf(lt, "sshKeyName"); existing != nil && existing.Value != v.Value {
				dropped = append(dropped, fmt.Sprintf("sshKeyName %v (the launch template has %v)", display(v), display(existing)))
			} else if existing == nil {
				setNode(lt, "sshKeyName", v)
			}
		case isNull(v) || (k == "public" && v.Value == "false") || (v.Kind != yaml.ScalarNode && len(v.Content) == 0):
			// Nothing is lost.
		default:
			dropped = append(dropped, fmt.Sprintf("%s %v", k, display(v)))
		}
	}
	if len(dropped) > 0 {
		r.editf(Warning, o, "spec.remoteAccess", "removed remoteAccess (EKS rejects it with a launch template); dropped: %s. "+
			"Allow SSH through the launch template's additionalSecurityGroups instead", strings.Join(dropped, "; "))
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// processManagedPools converts every managed pool, then gives the MachinePools that
// own converted pools their bootstrap data.
func (r *run) processManagedPools() {
	if len(r.managedPools) == 0 {
		return
	}
	owners := r.machinePoolsByInfraRef()
	for _, o := range r.managedPools {
		mp := r.convertManagedPool(o)
		if mp == nil {
			continue
		}
		machinePools := owners[o.key()]
		switch len(machinePools) {
		case 0:
			if r.cfg.BootstrapStrategy == BootstrapSecret {
				r.warnf(o, "", "no MachinePool in the input references this pool: its bootstrap Secret could not be set")
			}
			continue
		case 1:
		default:
			var names []string
			for _, m := range machinePools {
				names = append(names, m.String())
			}
			r.errorf(o, "", "referenced by %d MachinePools (%s): each AWSManagedMachinePool belongs to one MachinePool",
				len(machinePools), strings.Join(names, ", "))
			continue
		}
		// A skipped MachinePool keeps its bootstrap and version: the pool's conversion
		// alone is still right (CAPA puts an EKSConfig's user data in the launch template).
		if r.skipped(machinePools[0]) {
			continue
		}
		if mp.lookup {
			r.ensureVersion(machinePools[0])
		}
		r.bootstrap(machinePools[0], mp)
	}
	r.removeOrphanedBootstrapConfigs()
}

// machinePoolsByInfraRef indexes MachinePools by the infrastructure object they use, once,
// so matching stays linear in the number of resources.
func (r *run) machinePoolsByInfraRef() map[objKey][]*object {
	m := map[objKey][]*object{}
	for _, o := range r.objects {
		if o.group != clusterGroup || o.kind != "MachinePool" {
			continue
		}
		// The function may edit it: lookups and edits must not go through aliases.
		if err := deAnchor(o.node); err != nil {
			r.errorf(o, "", "%v", err)
			continue
		}
		ref := lookup(o.node.YNode(), "spec", "template", "spec", "infrastructureRef")
		if ref == nil {
			continue
		}
		k, ok := refKey(ref, o.ns())
		if !ok || k.kind != "AWSManagedMachinePool" || k.group != infraGroup {
			continue
		}
		m[k] = append(m[k], o)
	}
	return m
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

// removeOrphanedBootstrapConfigs drops bootstrap configs whose MachinePool now uses the
// Secret, once nothing else references them: applied alone they would be dead objects.
func (r *run) removeOrphanedBootstrapConfigs() {
	if len(r.detachedConfigs) == 0 {
		return
	}
	referenced := map[objKey]bool{}
	for _, o := range r.objects {
		// Only Cluster API objects (MachinePool, Machine, MachineSet...) reference bootstrap configs.
		if !isClusterAPIGroup(o.group) || o.removed {
			continue
		}
		for _, path := range [][]string{{"spec", "template", "spec", "bootstrap", "configRef"}, {"spec", "bootstrap", "configRef"}} {
			if k, ok := refKey(lookup(o.node.YNode(), path...), o.ns()); ok {
				referenced[k] = true
			}
		}
	}
	keys := make([]objKey, 0, len(r.detachedConfigs))
	for k := range r.detachedConfigs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	for _, k := range keys {
		cfgObj := r.index[k]
		if cfgObj == nil || cfgObj.removed || referenced[k] || r.skipped(cfgObj) {
			continue
		}
		cfgObj.removed = true
		r.changed(cfgObj, "", "present", nil, "would be removed: its MachinePool now takes bootstrap data from the Secret")
		r.editf(Info, cfgObj, "", "removed: %s now takes its bootstrap data from a Secret and nothing else references this %s",
			r.detachedConfigs[k].String(), cfgObj.kind)
	}
}

// ensureVersion gives the MachinePool a Kubernetes version when it has none: CAPA's AMI
// lookup for the launch template fails without one ("Either AWSMachinePool's
// spec.awslaunchtemplate.ami.id or MachinePool's spec.template.spec.version must be defined").
func (r *run) ensureVersion(machinePool *object) {
	const field = "spec.template.spec.version"
	if scalarField(machinePool.node.YNode(), "spec", "template", "spec", "version") != "" {
		return
	}
	cp, _ := r.controlPlaneOf(machinePool)
	version := ""
	if cp != nil {
		version = scalarField(cp.node.YNode(), "spec", "version")
	}
	if version == "" {
		r.warnf(machinePool, field, "missing: CAPA's AMI lookup for the launch template needs it and fails without it; "+
			"set it, or set spec.awsLaunchTemplate.ami.id on the AWSManagedMachinePool")
		return
	}
	tmpl, err := ensurePath(machinePool.node.YNode(), "", "spec", "template", "spec")
	if err != nil {
		r.errorf(machinePool, fieldOf(err), "%s", msgOf(err))
		return
	}
	setNode(tmpl, "version", copyScalar(lookup(cp.node.YNode(), "spec", "version")))
	r.changed(machinePool, field, nil, version, "missing: CAPA's AMI lookup for the launch template needs it")
	r.editf(Warning, machinePool, field, "set to the control plane's version %s: CAPA's AMI lookup for the launch template needs it. "+
		"Upgrade the pool by changing it here as well as on the control plane", version)
}

func copyScalar(n *yaml.Node) *yaml.Node {
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	return &c
}
