package transformers

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
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

// imageFamily is what a pool's nodes boot, which decides how they can join.
type imageFamily int

const (
	familyAL2    imageFamily = iota // AL2_* or an AmazonLinux lookup: /etc/eks/bootstrap.sh
	familyAL2023                    // AL2023_* or an AmazonLinux2023 lookup: nodeadm
	familyCustom                    // ami.id with amiType CUSTOM, AL2_* or unset: only the user knows
	familyOther                     // Bottlerocket, Windows: neither
)

// poolPhase is the state of the managed node group phase of one run.
type poolPhase struct {
	list     []*object                   // AWSManagedMachinePools, converted once every object is read
	secrets  map[objKey]*generatedSecret // bootstrap Secrets wanted, by namespace and name
	detached map[*object]*object         // bootstrap config or Secret -> the MachinePool that left it
	pinned   map[*object]string          // control plane -> the EKS name pinned into it
	// overrideCluster is the Cluster the IMDSConfig's eksClusterName names, once claimed.
	overrideCluster objKey
	overrideClaimed bool
	unknownNS       map[*object]bool // control planes already reported for an unknown namespace
}

// managedPool is an AWSManagedMachinePool after conversion.
type managedPool struct {
	obj        *object
	lookup     bool // CAPA looks the image up, which needs the MachinePool's version
	converted  bool
	family     imageFamily
	amiType    string // as the pool had it, CAPA's default filled in
	lookupType string // the eksLookupType CAPA uses, when it looks the image up
	version    string // the Kubernetes version its nodes run, when known
}

// al2023Version reports whether EKS has no Amazon Linux 2 image for the version: it
// stopped publishing them on 2025-11-26 and has none for Kubernetes 1.33 or later.
func al2023Version(v string) bool {
	m := minorVersion.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	minor, _ := strconv.Atoi(m[1])
	return minor >= 33
}

var minorVersion = regexp.MustCompile(`^v?1\.(\d+)(\.|$)`)

// lookupFamilies are CAPA's ami.eksLookupType values.
var lookupFamilies = map[string]imageFamily{
	"AmazonLinux":        familyAL2,
	"AmazonLinuxGPU":     familyAL2,
	"AmazonLinux2023":    familyAL2023,
	"AmazonLinux2023GPU": familyAL2023,
}

// imageLookupFields are the AWSManagedMachinePool launch template's and the
// AWSManagedControlPlane's fields that make CAPA look the image up by name
// (defaultAMIIDLookup) instead of through EKS's lookup, so eksLookupType is ignored
// (DiscoverLaunchTemplateAMI, pkg/cloud/services/ec2/launchtemplate.go, v2.13.0).
var imageLookupFields = []string{"imageLookupFormat", "imageLookupOrg", "imageLookupBaseOS"}

// checkImageLookup reports the fields that make CAPA skip its EKS image lookup for the
// pool: the image the function chose (eksLookupType) would not be the one the nodes boot,
// and the bootstrap it writes for that image may not join them. It reports whether any is set.
func (r *run) checkImageLookup(pool, cp *object) bool {
	root := pool.node.YNode()
	if scalarField(root, "spec", "awsLaunchTemplate", "ami", "id") != "" {
		return false // an explicit image: CAPA looks nothing up
	}
	found := false
	report := func(o *object, field, where string) {
		found = true
		r.errorf(o, field, "is set: CAPA then looks up the image of %s by name (%s) instead of with EKS's lookup, so the "+
			"eksLookupType the function relies on is ignored, and the nodes would boot an image whose bootstrap nobody "+
			"chose: remove %s so CAPA's EKS lookup applies, or set spec.awsLaunchTemplate.ami.id on the pool to the image "+
			"(then its amiType, or the Kubernetes version, decides the bootstrap), or skip the pool with %s: \"true\"",
			pool, where, field, SkipAnnotation)
	}
	for _, f := range imageLookupFields {
		if scalarField(root, "spec", "awsLaunchTemplate", f) != "" {
			report(pool, "spec.awsLaunchTemplate."+f, "the pool's launch template")
		}
	}
	if cp != nil {
		for _, f := range imageLookupFields {
			if scalarField(cp.node.YNode(), "spec", f) != "" {
				report(cp, "spec."+f, "the control plane "+cp.String()+", which every pool without its own inherits")
			}
		}
	}
	return found
}

// convertManagedPool turns the pool into a launch-template pool with amiType CUSTOM and an
// explicit image lookup. bootKind is the kind of the MachinePool's bootstrap config ("" for
// none), version the Kubernetes version its nodes run. It returns nil, with an error
// result, when the pool cannot be converted.
func (r *run) convertManagedPool(o *object, bootKind, version string) *managedPool {
	root := o.node.YNode()
	if _, err := mapAt(root, "spec", "awsLaunchTemplate", "ami"); err != nil {
		r.fail(o, err)
		return nil
	}
	spec, err := ensurePath(root, "", "spec")
	if err != nil {
		r.fail(o, err)
		return nil
	}
	amiType := scalarField(spec, "amiType")
	hadLT := !isNull(valueOf(spec, "awsLaunchTemplate"))
	amiID := scalarField(spec, "awsLaunchTemplate", "ami", "id")
	lookup := scalarField(spec, "awsLaunchTemplate", "ami", "eksLookupType")
	raw := hasPlaceholder(o.name)

	mp := &managedPool{obj: o, lookup: amiID == "", version: version, amiType: amiType}
	if amiType == "" {
		mp.amiType = defaultAMIType
	}
	written := lookup
	var lookupNote *note
	// Bottlerocket and Windows join with user data of their own, which neither the function
	// nor CAPA writes, and CAPA's lookup has none of their images.
	otherOS := strings.HasPrefix(mp.amiType, "BOTTLEROCKET") || strings.HasPrefix(mp.amiType, "WINDOWS")
	switch {
	case otherOS && amiID == "":
		r.errorf(o, "spec.amiType", "%s cannot be converted to a launch template: CAPA's AMI lookup (ami.eksLookupType) has no %s image, "+
			"and IMDSv2 on a managed node group needs a launch template with amiType CUSTOM. Set spec.awsLaunchTemplate.ami.id "+
			"to the image to use, or skip the pool with the annotation %s: \"true\"",
			mp.amiType, mp.amiType, SkipAnnotation)
		return nil
	case otherOS:
		mp.family = familyOther
	case amiID != "" && strings.HasPrefix(mp.amiType, "AL2023_"):
		// The user's image, but the user said what it is: Amazon Linux 2023, joined by nodeadm.
		mp.family = familyAL2023
	case amiID != "":
		mp.family = familyCustom
	case lookup != "":
		fam, ok := lookupFamilies[lookup]
		if !ok {
			r.errorf(o, "spec.awsLaunchTemplate.ami.eksLookupType", "%q is not one of CAPA's lookup types; allowed: AmazonLinux, AmazonLinuxGPU, "+
				"AmazonLinux2023, AmazonLinux2023GPU", lookup)
			return nil
		}
		mp.family = fam
	case amiType == "CUSTOM" || amiType == "":
		// CAPA's lookup without a type, and its default amiType, are Amazon Linux 2. A pool
		// that said neither and whose nodes cannot boot that (a nodeadm bootstrap, or a
		// Kubernetes version with no AL2 image) gets AL2023; one that said AL2_* is refused below.
		lookup, mp.family = "AmazonLinux", familyAL2
		if bootKind != "NodeadmConfig" && (version == "" || hasPlaceholder(version)) {
			lookupNote = warn("set to AmazonLinux, CAPA's default: the Kubernetes version (%q) is not known yet, and EKS has no "+
				"Amazon Linux 2 image for 1.33 or later; for those set amiType AL2023_x86_64_STANDARD (with a NodeadmConfig)", version)
		}
		if bootKind == "NodeadmConfig" || al2023Version(version) {
			lookup, mp.family = "AmazonLinux2023", familyAL2023
			why := "EKS does not publish for Kubernetes " + version
			if bootKind == "NodeadmConfig" {
				why = "cannot run a NodeadmConfig"
			}
			lookupNote = warn("set to AmazonLinux2023: without it CAPA looks up an Amazon Linux 2 image, which %s", why)
		}
	default:
		fam, known := amiFamilies[mp.amiType]
		if !known || fam.lookupType == "" {
			r.errorf(o, "spec.amiType", "%s cannot be converted to a launch template: CAPA's AMI lookup (ami.eksLookupType) has no %s image, "+
				"and IMDSv2 on a managed node group needs a launch template with amiType CUSTOM. Set spec.awsLaunchTemplate.ami.id "+
				"to the image to use, or skip the pool with the annotation %s: \"true\"", mp.amiType, mp.amiType, SkipAnnotation)
			return nil
		}
		lookup, mp.family = fam.lookupType, familyAL2
		if fam.al2023 {
			mp.family = familyAL2023
		}
		if fam.arm && scalarField(spec, "instanceType") == "" && scalarField(spec, "awsLaunchTemplate", "instanceType") == "" {
			r.warnf(o, "spec.awsLaunchTemplate.instanceType", "amiType %s is ARM, but the pool has no instanceType: CAPA takes the "+
				"image architecture from the launch template's instanceType and looks up an x86_64 image without one; set it", mp.amiType)
		}
	}
	if mp.family == familyAL2 && al2023Version(version) {
		r.errorf(o, "spec.amiType", "an Amazon Linux 2 pool (amiType %s, lookup %s) at Kubernetes %s: EKS publishes no AL2 images for "+
			"Kubernetes 1.33 or later (and none at all since 2025-11-26), so the pool cannot start. Move it to Amazon Linux 2023: "+
			"amiType AL2023_x86_64_STANDARD (or eksLookupType AmazonLinux2023) with a NodeadmConfig bootstrap", mp.amiType, lookup, version)
		return nil
	}
	if amiID == "" && written == "" {
		// Always explicit: CAPA's default lookup is Amazon Linux 2, which is over.
		ami, err := ensurePath(spec, "spec", "awsLaunchTemplate", "ami")
		if err != nil {
			r.fail(o, err)
			return nil
		}
		setScalar(ami, "eksLookupType", lookup, false)
		r.record(edit{obj: o, field: "spec.awsLaunchTemplate.ami.eksLookupType", proposed: lookup, note: lookupNote,
			finding: fmt.Sprintf("unset: CAPA would look up an Amazon Linux 2 image; the pool (amiType %s) needs %s", mp.amiType, lookup)})
	}
	if amiID == "" {
		mp.lookupType = lookup
	}
	if amiType != "CUSTOM" {
		setScalar(spec, "amiType", "CUSTOM", false)
		r.record(edit{obj: o, field: "spec.amiType", current: nilIfEmpty(amiType), proposed: "CUSTOM"})
		mp.converted = true
	}

	lt, err := ensureMap(spec, "awsLaunchTemplate", "spec.awsLaunchTemplate")
	if err != nil {
		r.fail(o, err)
		return nil
	}
	if !hadLT {
		mp.converted = true
	}
	r.moveScalar(o, spec, "instanceType", lt, "instanceType", "spec.awsLaunchTemplate.instanceType")
	if v := valueOf(spec, "diskSize"); v != nil {
		rv, err := ensureMap(lt, "rootVolume", "spec.awsLaunchTemplate.rootVolume")
		if err != nil {
			r.fail(o, err)
			return nil
		}
		r.moveScalar(o, spec, "diskSize", rv, "size", "spec.awsLaunchTemplate.rootVolume.size")
	}
	if ra := valueOf(spec, "remoteAccess"); ra != nil {
		r.moveRemoteAccess(o, spec, ra, lt)
	}
	if v := removeKey(spec, "amiVersion"); v != nil {
		r.record(edit{obj: o, field: "spec.amiVersion", current: v,
			note: warn("removed amiVersion %v: EKS rejects a release version with a custom AMI; "+
				"CAPA's lookup picks the image for the Kubernetes version", display(v))})
	}
	if valueOf(lt, "iamInstanceProfile") != nil {
		r.errorf(o, "spec.awsLaunchTemplate.iamInstanceProfile", "CAPA's webhook forbids iamInstanceProfile in a managed pool's "+
			"launch template (EKS uses the node group role, spec.roleName): remove it")
	}
	if _, err := r.applyMetadataOptionsWhy(o, []string{"spec", "awsLaunchTemplate"}, missingOptions(o.kind, hadLT)); err != nil {
		r.fail(o, err)
		return nil
	}
	// A raw clusterctl template (names with ${...}) describes new pools: nothing live to replace.
	if mp.converted && !raw {
		r.noteEnforce(Warning, o, "spec.amiType", "converted to a launch template with amiType CUSTOM: amiType and the presence of awsLaunchTemplate "+
			"are immutable, so this applies to new pools; replace an existing pool under a new name")
	}
	return mp
}

// moveScalar moves spec.<from> into dst.<to>, because CAPA's webhook forbids the field
// beside a launch template. A value already at the destination wins.
func (r *run) moveScalar(o *object, src *yaml.Node, from string, dst *yaml.Node, to, toField string) {
	k, v := removePair(src, from)
	if v == nil {
		return
	}
	fromField := "spec." + from
	if existing := valueOf(dst, to); existing != nil {
		e := edit{obj: o, field: fromField, current: v}
		if existing.Value != v.Value {
			e.note = warn("removed %s %v: CAPA forbids it beside a launch template, and %s is already %v", from, display(v), toField, display(existing))
		}
		r.record(e)
		return
	}
	movePair(dst, k, to, v)
	r.record(edit{obj: o, field: fromField, current: v,
		finding: fmt.Sprintf("CAPA's webhook forbids %s beside a launch template: move it to %s", fromField, toField)})
}

// moveRemoteAccess keeps the SSH key, which the launch template can carry; EKS rejects
// remoteAccess with a launch template, so the rest is dropped with a warning.
func (r *run) moveRemoteAccess(o *object, spec, ra, lt *yaml.Node) {
	removeKey(spec, "remoteAccess")
	e := edit{obj: o, field: "spec.remoteAccess", current: ra, finding: "EKS rejects remoteAccess with a launch template"}
	defer func() { r.record(e) }()
	if ra.Kind != yaml.MappingNode {
		if !isNull(ra) {
			e.note = warn("removed remoteAccess (EKS rejects it with a launch template); it was %s, "+
				"not a mapping, so nothing in it could move to the launch template", describeNode(ra))
		}
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
				movePair(lt, ra.Content[i], "sshKeyName", v)
			}
		case isNull(v) || (k == "public" && v.Value == "false") || (v.Kind != yaml.ScalarNode && len(v.Content) == 0):
			// Nothing is lost.
		default:
			dropped = append(dropped, fmt.Sprintf("%s %v", k, display(v)))
		}
	}
	if len(dropped) > 0 {
		e.note = warn("removed remoteAccess (EKS rejects it with a launch template); dropped: %s. "+
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
// own converted pools their bootstrap.
func (r *run) processManagedPools() {
	if len(r.pools.list) == 0 {
		return
	}
	owners := r.machinePoolsByInfraRef()
	for _, o := range r.pools.list {
		var machinePool *object
		switch machinePools := owners[o]; len(machinePools) {
		case 0:
		case 1:
			machinePool = machinePools[0]
		default:
			var names []string
			for _, m := range machinePools {
				names = append(names, m.String())
			}
			r.errorf(o, "", "referenced by %d MachinePools (%s): each AWSManagedMachinePool belongs to one MachinePool",
				len(machinePools), strings.Join(names, ", "))
			continue
		}
		bootKind, version := "", ""
		if machinePool != nil {
			if k, ok := refKey(lookup(machinePool.node.YNode(), "spec", "template", "spec", "bootstrap", "configRef"), machinePool.ns()); ok {
				bootKind = k.kind
			}
			version = r.machinePoolVersion(machinePool)
		}
		if r.checkImageLookup(o, r.controlPlaneQuietly(machinePool)) {
			continue
		}
		mp := r.convertManagedPool(o, bootKind, version)
		if mp == nil {
			continue
		}
		if machinePool == nil {
			if r.cfg.BootstrapStrategy == BootstrapKeep {
				r.noteEnforce(Warning, o, "", "no MachinePool in the input references this pool: with amiType CUSTOM nothing "+
					"the function can see joins its nodes; make sure its MachinePool's bootstrap does")
			} else {
				r.errorf(o, "", "no MachinePool in the input references this pool: with amiType CUSTOM nothing but the MachinePool's "+
					"bootstrap joins its nodes to the cluster, so they would never join. Run the function on the pool together with "+
					"its MachinePool (in kustomize, in the kustomization that holds both; helm 3 post-renders hooks apart from the rest, "+
					"so keep both out of hooks), or skip the pool with %s: \"true\"", SkipAnnotation)
			}
			continue
		}
		// A skipped MachinePool keeps its bootstrap and version, which must still exist and
		// fit the image the converted pool boots.
		if r.skipped(machinePool) {
			r.checkKeptBootstrap(machinePool, mp, r.bootstrapOf(machinePool))
			continue
		}
		if mp.lookup {
			r.ensureVersion(machinePool)
		}
		r.bootstrap(machinePool, mp)
	}
	r.removeOrphanedBootstrapConfigs()
}

// machinePoolVersion is the Kubernetes version the pool's nodes run: the MachinePool's, or
// the control plane's, which ensureVersion copies there.
func (r *run) machinePoolVersion(machinePool *object) string {
	if v := scalarField(machinePool.node.YNode(), "spec", "template", "spec", "version"); v != "" {
		return v
	}
	if _, cp, _ := r.controlPlaneOf(machinePool); cp != nil {
		return scalarField(cp.node.YNode(), "spec", "version")
	}
	return ""
}

// removeOrphanedBootstrapConfigs drops bootstrap configs whose MachinePool now uses
// another bootstrap, once nothing else references them: applied alone they would be
// dead objects.
func (r *run) removeOrphanedBootstrapConfigs() {
	if len(r.pools.detached) == 0 {
		return
	}
	referenced := map[*object]bool{}
	for _, o := range r.objects {
		// Only Cluster API objects (MachinePool, Machine, MachineSet...) reference bootstrap configs.
		if !isClusterAPIGroup(o.group) || o.removed {
			continue
		}
		for _, boot := range []*yaml.Node{lookup(o.node.YNode(), "spec", "template", "spec", "bootstrap"), lookup(o.node.YNode(), "spec", "bootstrap")} {
			if k, ok := refKey(valueOf(boot, "configRef"), o.ns()); ok {
				if target, _, _ := r.resolve(k, o); target != nil {
					referenced[target] = true
				}
			}
			if name := scalarField(boot, "dataSecretName"); name != "" {
				if target, _, _ := r.resolve(objKey{"", "Secret", o.ns(), name}, o); target != nil {
					referenced[target] = true
				}
			}
		}
	}
	configs := make([]*object, 0, len(r.pools.detached))
	for c := range r.pools.detached {
		configs = append(configs, c)
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].key().less(configs[j].key()) })
	for _, cfgObj := range configs {
		if cfgObj.removed || referenced[cfgObj] || r.skipped(cfgObj) {
			continue
		}
		cfgObj.removed = true
		r.record(edit{obj: cfgObj, current: "present", finding: "would be removed: its MachinePool now takes its bootstrap from elsewhere",
			note: inform("removed: %s no longer uses this %s and nothing else references it", r.pools.detached[cfgObj].String(), cfgObj.kind)})
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
	_, cp, _ := r.controlPlaneOf(machinePool)
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
		r.fail(machinePool, err)
		return
	}
	setNode(tmpl, "version", copyScalar(lookup(cp.node.YNode(), "spec", "version")))
	r.record(edit{obj: machinePool, field: field, proposed: version, finding: "missing: CAPA's AMI lookup for the launch template needs it",
		note: warn("set to the control plane's version %s: CAPA's AMI lookup for the launch template needs it. "+
			"Upgrade the pool by changing it here as well as on the control plane", version)})
}

func copyScalar(n *yaml.Node) *yaml.Node {
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	return &c
}

// describeImage says what decided the pool's image: its amiType, and the lookup type.
func (mp *managedPool) describeImage() string {
	if mp.lookupType == "" {
		return "amiType " + mp.amiType
	}
	return "amiType " + mp.amiType + ", eksLookupType " + mp.lookupType
}
