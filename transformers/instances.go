package transformers

// capa-imds instances: which running EC2 instances still accept IMDSv1, which CAPA object
// owns each, and what will happen to it. Offline: the objects as kubectl prints them, the
// instances as the AWS CLI prints them (awsjson.go).
//
// An instance is tied to its owner the way CAPA finds it:
//   - AWSMachine: spec.instanceID, or the ID at the end of spec.providerID
//     (aws:///<az>/<id>); else, as CAPA's GetRunningInstanceByTags does, the tags
//     Name=<AWSMachine name> and sigs.k8s.io/cluster-api-provider-aws/cluster/<cluster>=owned
//     (MachineName=<namespace>/<machine> narrows the namespace);
//   - AWSMachinePool and AWSManagedMachinePool: spec.providerIDList (and an AWSMachinePool's
//     status.instances), the launch template EC2 tags each instance with
//     (aws:ec2launchtemplate:id against status.launchTemplateID), the tags CAPA's launch
//     template gives pool instances (Name=<launch template name> with
//     sigs.k8s.io/cluster-api-provider-aws/bootstrap-data-secret=<namespace>/<secret>), and
//     for managed pools EKS's eks:cluster-name and eks:nodegroup-name;
//   - an AWSMachine an AWSMachinePool owns mirrors an instance of the pool: the pool owns it.
//
// What CAPA then does: the AWSMachine controller calls ModifyInstanceMetadataOptions on
// every reconcile of an operational instance whose options differ from the spec (a missing
// block is defaulted to optional/1 first), so the spec wins, both ways. A pool instance runs
// the launch template version it was started from until it is replaced.

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Verdict is what will become of an instance's IMDSv1.
type Verdict string

const (
	// VerdictOK: the instance requires tokens (or its metadata service is off), and its
	// owner keeps it so.
	VerdictOK Verdict = "ok"
	// VerdictFixedByCAPA: the AWSMachine says required; CAPA's next reconcile converges
	// the instance.
	VerdictFixedByCAPA Verdict = "fixed-by-capa"
	// VerdictPaused: the AWSMachine says required, but reconciliation is paused.
	VerdictPaused Verdict = "paused"
	// VerdictRoll: the AWSMachine says optional (or has no block): the instance accepts
	// IMDSv1 until the machine is replaced.
	VerdictRoll Verdict = "roll"
	// VerdictRefresh: a pool instance runs its launch template version until an instance
	// refresh (or a new pool) replaces it.
	VerdictRefresh Verdict = "refresh"
	// VerdictTerminated: shutting down or terminated; not counted.
	VerdictTerminated Verdict = "terminated"
	// VerdictIMDSv1: an instance no CAPA object owns that accepts IMDSv1 (listed apart).
	VerdictIMDSv1 Verdict = "imdsv1"
	// VerdictAllowed: the instance accepts IMDSv1 and will go on doing so, as the IMDSConfig
	// given with the objects allows for its owner (a rule with allowOptional: true). Not
	// counted: the exception is the team's, and each is listed with its rule.
	VerdictAllowed Verdict = "allowed"
)

// KeepsIMDSv1 reports a verdict under which an owned instance goes on accepting IMDSv1.
func (v Verdict) KeepsIMDSv1() bool {
	return v == VerdictRoll || v == VerdictRefresh || v == VerdictPaused
}

// verdictRank orders the report: what needs a person first.
var verdictRank = map[Verdict]int{VerdictRoll: 0, VerdictRefresh: 1, VerdictPaused: 2, VerdictFixedByCAPA: 3,
	VerdictAllowed: 4, VerdictIMDSv1: 5, VerdictOK: 6, VerdictTerminated: 7}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

func refOf(o *object) *ObjectRef { return &ObjectRef{Kind: o.kind, Namespace: o.ns(), Name: o.name} }

// LaunchTemplateRef is the launch template version an instance was started from (EC2's
// aws:ec2launchtemplate:* tags), with its options when describe-launch-template-versions
// was given.
type LaunchTemplateRef struct {
	ID         string          `json:"id"`
	Name       string          `json:"name,omitempty"`
	Version    string          `json:"version,omitempty"`
	HTTPTokens HTTPTokensState `json:"httpTokens,omitempty"`
}

// InstanceFinding is the report on one instance.
type InstanceFinding struct {
	InstanceID string             `json:"instanceId"`
	State      InstanceStateName  `json:"state"`
	NameTag    string             `json:"nameTag,omitempty"`
	Current    EC2MetadataOptions `json:"current"`
	// AcceptsIMDSv1: httpTokens optional with the metadata service on.
	AcceptsIMDSv1 bool       `json:"acceptsIMDSv1"`
	Owner         *ObjectRef `json:"owner,omitempty"`
	// MatchedBy is how the owner was found: spec.instanceID, spec.providerID,
	// spec.providerIDList, status.instances, status.launchTemplateID, tags.
	MatchedBy string `json:"matchedBy,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	// Expected is the httpTokens the owner gives the instance, and ExpectedFrom where that comes from.
	Expected       HTTPTokensState    `json:"expectedHttpTokens,omitempty"`
	ExpectedFrom   string             `json:"expectedFrom,omitempty"`
	LaunchTemplate *LaunchTemplateRef `json:"launchTemplate,omitempty"`
	// Rule is the spec.rules entry of the given IMDSConfig that matches the owner, and
	// Wanted the httpTokens that config asks of it; empty without a config.
	Rule    string          `json:"rule,omitempty"`
	Wanted  HTTPTokensState `json:"wantedHttpTokens,omitempty"`
	Verdict Verdict         `json:"verdict"`
	// Roll is the object to roll (MachineDeployment, control plane, MachineSet or Machine).
	Roll   *ObjectRef `json:"roll,omitempty"`
	Action string     `json:"action"`
	Source Location   `json:"source"`

	owner *object
}

// InstancesSummary counts the report.
type InstancesSummary struct {
	Owned      int             `json:"owned"`
	Unowned    int             `json:"unowned"`
	KeepIMDSv1 int             `json:"keepIMDSv1"`
	ByVerdict  map[Verdict]int `json:"byVerdict"`
}

// InstancesReport is the whole report.
type InstancesReport struct {
	Account *AccountDefaults  `json:"account,omitempty"`
	Owned   []InstanceFinding `json:"owned"`
	// Unowned are instances no CAPA object in the input owns, never counted as CAPA's.
	Unowned []InstanceFinding `json:"unowned"`
	// Findings are about the objects: the preflight against the account's defaults.
	Findings Results          `json:"findings"`
	Summary  InstancesSummary `json:"summary"`
}

// ExitCode is 1 when an owned instance will keep accepting IMDSv1 or a finding is an error.
func (r *InstancesReport) ExitCode() int {
	if r.Summary.KeepIMDSv1 > 0 || r.Findings.ExitCode() != 0 {
		return 1
	}
	return 0
}

// InstancesInput is what the report reads.
type InstancesInput struct {
	Objects         []*yaml.RNode
	Instances       []EC2Instance
	LaunchTemplates []LaunchTemplateVersion
	Defaults        *AccountDefaults
}

// Tags and labels the report reads.
const (
	tagClusterPrefix   = "sigs.k8s.io/cluster-api-provider-aws/cluster/"
	tagRole            = "sigs.k8s.io/cluster-api-provider-aws/role"
	tagBootstrapSecret = "sigs.k8s.io/cluster-api-provider-aws/bootstrap-data-secret"
	tagName            = "Name"
	tagMachineName     = "MachineName"
	tagEKSCluster      = "eks:cluster-name"
	tagEKSNodegroup    = "eks:nodegroup-name"
	tagLaunchTemplate  = "aws:ec2launchtemplate:id"
	tagLTVersion       = "aws:ec2launchtemplate:version"

	labelClusterName      = "cluster.x-k8s.io/cluster-name"
	labelDeploymentName   = "cluster.x-k8s.io/deployment-name"
	labelSetName          = "cluster.x-k8s.io/set-name"
	labelControlPlaneName = "cluster.x-k8s.io/control-plane-name"
	annotationPaused      = "cluster.x-k8s.io/paused"

	// CAPA's AWSManagedMachinePool webhook: eks.GenerateEKSName's limit for node group names.
	maxEKSNodegroupNameLength = 64
)

// instanceOwner is an object claiming an instance, and how.
type instanceOwner struct {
	obj *object
	via string
}

type tagKey struct{ cluster, name string }

// instancesRun holds the indexes of one report.
type instancesRun struct {
	*run
	defaults     *AccountDefaults
	byID         map[string]instanceOwner
	byLTID       map[string]*object
	byTag        map[tagKey][]*object // (cluster tag name, Name tag) -> AWSMachines
	poolByTag    map[tagKey][]*object // (cluster tag name, launch template name) -> AWSMachinePools
	byEKS        map[tagKey][]*object // (EKS cluster, node group) -> AWSManagedMachinePools
	ltNames      map[*object]string   // pool -> the launch template name CAPA gives it
	versions     map[string]LaunchTemplateVersion
	machinePools map[*object]*object // pool -> the MachinePool using it
	// configured: an IMDSConfig came with the objects; r.cfg is it.
	configured bool
}

// instancesConfig takes the IMDSConfig given among the objects, if any, as the run's
// config: its rules then say which owners may keep IMDSv1, and the preflight judges it.
// Two are refused: which one the team applies is not for the report to guess.
func instancesConfig(r *run) (bool, Results) {
	var found *object
	for _, o := range r.objects {
		if o.group != ConfigGroup || o.kind != ConfigKind {
			continue
		}
		if found != nil {
			r.errorf(o, "", "a second IMDSConfig (the first is %s): give the one config the objects are rendered with", found)
			return false, r.results
		}
		found = o
	}
	if found == nil {
		return false, nil
	}
	cfg, err := LoadConfig(found.node)
	if err != nil {
		r.errorf(found, "", "%v", err)
		return false, r.results
	}
	cfg.Mode = ModeAudit
	r.cfg = cfg
	return true, nil
}

// Instances builds the report. Input that cannot be read (duplicate keys, an object
// defined twice, an instance listed twice) comes back as error results, and no report.
func Instances(in InstancesInput) (*InstancesReport, Results) {
	base := newRun(DefaultConfig())
	if !base.load(in.Objects) {
		return nil, base.results
	}
	base.results = nil
	configured, errs := instancesConfig(base)
	if len(errs) > 0 {
		return nil, errs
	}
	r := &instancesRun{run: base, defaults: in.Defaults, configured: configured,
		byID: map[string]instanceOwner{}, byLTID: map[string]*object{}, byTag: map[tagKey][]*object{},
		poolByTag: map[tagKey][]*object{}, byEKS: map[tagKey][]*object{}, ltNames: map[*object]string{},
		versions: map[string]LaunchTemplateVersion{}, machinePools: map[*object]*object{}}
	seen := make(map[string]Location, len(in.Instances))
	for _, inst := range in.Instances {
		if first, dup := seen[inst.InstanceID]; dup {
			errs = append(errs, &Result{Severity: Error, File: &File{Path: inst.Source.File},
				Message: fmt.Sprintf("%s:%d: instance %s is listed twice (first at %s:%d): give each account and region's output once",
					inst.Source.File, inst.Source.Line, inst.InstanceID, first.File, first.Line)})
			continue
		}
		seen[inst.InstanceID] = inst.Source
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, v := range in.LaunchTemplates {
		r.versions[fmt.Sprintf("%s/%d", v.LaunchTemplateID, v.VersionNumber)] = v
	}
	r.index()

	rep := &InstancesReport{Account: in.Defaults, Owned: []InstanceFinding{}, Unowned: []InstanceFinding{}}
	for i := range in.Instances {
		f := r.judge(&in.Instances[i])
		if f.Owner != nil {
			rep.Owned = append(rep.Owned, f)
		} else {
			rep.Unowned = append(rep.Unowned, f)
		}
	}
	r.preflight()
	rep.Findings = r.results
	if rep.Findings == nil {
		rep.Findings = Results{}
	}
	sortFindings(rep.Owned)
	sortFindings(rep.Unowned)
	rep.Summary = InstancesSummary{Owned: len(rep.Owned), Unowned: len(rep.Unowned), ByVerdict: map[Verdict]int{}}
	for _, f := range rep.Owned {
		rep.Summary.ByVerdict[f.Verdict]++
		if f.Verdict.KeepsIMDSv1() {
			rep.Summary.KeepIMDSv1++
		}
	}
	return rep, nil
}

func sortFindings(fs []InstanceFinding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if verdictRank[a.Verdict] != verdictRank[b.Verdict] {
			return verdictRank[a.Verdict] < verdictRank[b.Verdict]
		}
		var ao, bo ObjectRef
		if a.Owner != nil {
			ao = *a.Owner
		}
		if b.Owner != nil {
			bo = *b.Owner
		}
		if ao != bo {
			return ao.String() < bo.String()
		}
		return a.InstanceID < b.InstanceID
	})
}

func (r *instancesRun) isKind(o *object, group, kind string) bool {
	return o.group == group && o.kind == kind
}

// index records every way an object can claim an instance.
func (r *instancesRun) index() {
	// MachinePools name the pools they use, and their cluster.
	for _, o := range r.objects {
		if !r.isKind(o, clusterGroup, "MachinePool") {
			continue
		}
		k, ok := refKey(lookup(o.node.YNode(), "spec", "template", "spec", "infrastructureRef"), o.ns())
		if !ok || k.group != infraGroup {
			continue
		}
		if pool := r.run.index[k]; pool != nil {
			r.machinePools[pool] = o
		}
	}
	claim := func(id string, o *object, via string) {
		if id == "" {
			return
		}
		if _, taken := r.byID[id]; !taken {
			r.byID[id] = instanceOwner{o, via}
		}
	}
	// AWSMachines first: an explicit spec.instanceID is the strongest claim.
	for _, o := range r.objects {
		if !r.isKind(o, infraGroup, "AWSMachine") {
			continue
		}
		owner := o
		if pool := ownerOfKind(o.node.YNode(), "AWSMachinePool"); pool != "" {
			if p := r.run.index[objKey{infraGroup, "AWSMachinePool", o.ns(), pool}]; p != nil {
				owner = p
			}
		}
		y := o.node.YNode()
		claim(scalarField(y, "spec", "instanceID"), owner, "spec.instanceID")
		claim(providerInstanceID(scalarField(y, "spec", "providerID")), owner, "spec.providerID")
		if owner == o {
			for _, c := range r.clusterTagNames(o) {
				k := tagKey{c, o.name}
				r.byTag[k] = append(r.byTag[k], o)
			}
		}
	}
	for _, o := range r.objects {
		isPool, isManaged := r.isKind(o, infraGroup, "AWSMachinePool"), r.isKind(o, infraGroup, "AWSManagedMachinePool")
		if !isPool && !isManaged {
			continue
		}
		y := o.node.YNode()
		if ids := lookup(y, "spec", "providerIDList"); ids != nil && ids.Kind == yaml.SequenceNode {
			for _, id := range ids.Content {
				claim(providerInstanceID(id.Value), o, "spec.providerIDList")
			}
		}
		if st := lookup(y, "status", "instances"); st != nil && st.Kind == yaml.SequenceNode {
			for _, it := range st.Content {
				claim(scalarField(it, "instanceID"), o, "status.instances")
			}
		}
		if id := scalarField(y, "status", "launchTemplateID"); id != "" {
			if _, taken := r.byLTID[id]; !taken {
				r.byLTID[id] = o
			}
		}
		cluster := r.clusterOf(o)
		if isPool {
			r.ltNames[o] = o.name
			for _, c := range r.clusterTagNames(o) {
				k := tagKey{c, o.name}
				r.poolByTag[k] = append(r.poolByTag[k], o)
			}
			continue
		}
		cp := r.managedControlPlane(cluster)
		if cp != nil {
			r.ltNames[o] = cp.name + "-" + o.name
		}
		nodegroup := scalarField(y, "spec", "eksNodegroupName")
		if nodegroup == "" {
			nodegroup = generateEKSName(o.name, o.ns(), maxEKSNodegroupNameLength)
		}
		if cp != nil {
			k := tagKey{eksNameOf(cp), nodegroup}
			r.byEKS[k] = append(r.byEKS[k], o)
			if lt := r.ltNames[o]; lt != "" {
				k := tagKey{eksNameOf(cp), lt}
				r.poolByTag[k] = append(r.poolByTag[k], o)
			}
		}
	}
}

// providerInstanceID is the instance ID at the end of a CAPA providerID (aws:///<az>/<id>).
func providerInstanceID(pid string) string {
	if !strings.HasPrefix(pid, "aws://") || strings.HasSuffix(pid, "/") {
		return ""
	}
	id := pid[strings.LastIndex(pid, "/")+1:]
	if !strings.HasPrefix(id, "i-") {
		return ""
	}
	return id
}

// clusterOf is the Cluster the object belongs to: its cluster-name label, or the
// clusterName of the MachinePool using it.
func (r *instancesRun) clusterOf(o *object) *object {
	name := scalarField(o.node.YNode(), "metadata", "labels", labelClusterName)
	if name == "" {
		if mp := r.machinePools[o]; mp != nil {
			name = scalarField(mp.node.YNode(), "spec", "clusterName")
		}
	}
	if name == "" {
		return nil
	}
	return r.run.index[objKey{clusterGroup, "Cluster", o.ns(), name}]
}

func (r *instancesRun) clusterName(o *object) string {
	if c := r.clusterOf(o); c != nil {
		return c.name
	}
	if name := scalarField(o.node.YNode(), "metadata", "labels", labelClusterName); name != "" {
		return name
	}
	if mp := r.machinePools[o]; mp != nil {
		return scalarField(mp.node.YNode(), "spec", "clusterName")
	}
	return ""
}

func (r *instancesRun) managedControlPlane(cluster *object) *object {
	if cluster == nil {
		return nil
	}
	k, ok := refKey(lookup(cluster.node.YNode(), "spec", "controlPlaneRef"), cluster.ns())
	if !ok || k.kind != "AWSManagedControlPlane" {
		return nil
	}
	return r.run.index[objKey{controlPlaneGroup, k.kind, k.namespace, k.name}]
}

func eksNameOf(cp *object) string {
	if n := scalarField(cp.node.YNode(), "spec", "eksClusterName"); n != "" {
		return n
	}
	return generateEKSName(cp.name, cp.ns(), maxEKSClusterNameLength)
}

// clusterTagNames are the names in the cluster tag CAPA puts on the object's instances:
// the Cluster's name, or for an EKS cluster the EKS cluster name.
func (r *instancesRun) clusterTagNames(o *object) []string {
	var names []string
	if n := r.clusterName(o); n != "" {
		names = append(names, n)
	}
	if cp := r.managedControlPlane(r.clusterOf(o)); cp != nil {
		if n := eksNameOf(cp); len(names) == 0 || n != names[0] {
			names = append(names, n)
		}
	}
	return names
}

// owner finds the object that owns the instance, and how.
func (r *instancesRun) owner(inst *EC2Instance) (instanceOwner, string) {
	if o, ok := r.byID[inst.InstanceID]; ok {
		return o, ""
	}
	tags := inst.Tags
	if o := r.byLTID[tags[tagLaunchTemplate]]; o != nil && tags[tagLaunchTemplate] != "" {
		return instanceOwner{o, "status.launchTemplateID"}, ""
	}
	if c, ng := tags[tagEKSCluster], tags[tagEKSNodegroup]; c != "" && ng != "" {
		if o, also := pick(r.byEKS[tagKey{c, ng}], ""); o != nil {
			return instanceOwner{o, "tags"}, also
		}
	}
	var clusters []string
	for k, v := range tags {
		if c, ok := strings.CutPrefix(k, tagClusterPrefix); ok && v == "owned" {
			clusters = append(clusters, c)
		}
	}
	sort.Strings(clusters)
	for _, c := range clusters {
		k := tagKey{c, tags[tagName]}
		if secret, ok := tags[tagBootstrapSecret]; ok {
			ns, _, _ := strings.Cut(secret, "/")
			if o, also := pick(r.poolByTag[k], ns); o != nil {
				return instanceOwner{o, "tags"}, also
			}
			continue
		}
		ns, _, _ := strings.Cut(tags[tagMachineName], "/")
		if o, also := pick(r.byTag[k], ns); o != nil {
			return instanceOwner{o, "tags"}, also
		}
	}
	return instanceOwner{}, ""
}

// pick chooses among objects the tags match: those in namespace ns when it is known; more
// than one left is named in also.
func pick(cands []*object, ns string) (*object, string) {
	if ns != "" {
		var in []*object
		for _, c := range cands {
			if c.ns() == ns {
				in = append(in, c)
			}
		}
		cands = in
	}
	if len(cands) == 0 {
		return nil, ""
	}
	var also []string
	for _, c := range cands[1:] {
		also = append(also, c.String())
	}
	return cands[0], strings.Join(also, ", ")
}

// judge reports on one instance.
func (r *instancesRun) judge(inst *EC2Instance) InstanceFinding {
	f := InstanceFinding{InstanceID: inst.InstanceID, State: inst.State, NameTag: inst.Tags[tagName], Source: inst.Source}
	if inst.MetadataOptions != nil {
		f.Current = *inst.MetadataOptions
	}
	f.AcceptsIMDSv1 = acceptsIMDSv1(f.Current.HTTPTokens, f.Current.HTTPEndpoint)
	if id := inst.Tags[tagLaunchTemplate]; id != "" {
		lt := &LaunchTemplateRef{ID: id, Version: inst.Tags[tagLTVersion]}
		if v, ok := r.versions[id+"/"+lt.Version]; ok {
			lt.Name = v.LaunchTemplateName
			if v.MetadataOptions != nil {
				lt.HTTPTokens = v.MetadataOptions.HTTPTokens
			}
		}
		f.LaunchTemplate = lt
	}
	own, also := r.owner(inst)
	if own.obj == nil {
		r.unowned(inst, &f)
		return f
	}
	o := own.obj
	f.owner, f.Owner, f.MatchedBy, f.Cluster = o, refOf(o), own.via, r.clusterName(o)
	if also != "" {
		f.MatchedBy += " (also matches " + also + ")"
	}
	switch {
	case inst.State.Gone():
		f.Verdict, f.Action = VerdictTerminated, "none: the instance is "+string(inst.State)
	case o.kind == "AWSMachine":
		r.judgeMachine(&f)
	default:
		r.judgePool(&f)
	}
	r.judgeByConfig(&f)
	return f
}

// judgeByConfig names the rule the config gives the owner, and lets through what that
// rule allows: an owner a rule with allowOptional: true matches may keep IMDSv1.
func (r *instancesRun) judgeByConfig(f *InstanceFinding) {
	if !r.configured || f.Verdict == VerdictTerminated {
		return
	}
	p := r.profileOf(f.owner)
	if p.rule != nil {
		f.Rule = p.rule.Name
	}
	if opt, ok := optionIn(p.options, optHTTPTokens); ok {
		f.Wanted = HTTPTokensState(opt.Value)
	}
	if f.Verdict.KeepsIMDSv1() && p.rule != nil && p.rule.AllowOptional && f.Wanted == HTTPTokensStateOptional {
		f.Verdict = VerdictAllowed
		f.Action = fmt.Sprintf("none: rule %q allows IMDSv1 here (allowOptional: true); remove the rule to require IMDSv2, then: %s",
			p.rule.Name, f.Action)
	}
}

func acceptsIMDSv1(tokens HTTPTokensState, endpoint InstanceMetadataState) bool {
	return tokens != HTTPTokensStateRequired && endpoint != InstanceMetadataStateDisabled
}

func (r *instancesRun) unowned(inst *EC2Instance, f *InstanceFinding) {
	f.Verdict = VerdictOK
	if f.AcceptsIMDSv1 {
		f.Verdict = VerdictIMDSv1
	}
	if inst.State.Gone() {
		f.Verdict = VerdictTerminated
	}
	var clusters []string
	for k, v := range inst.Tags {
		if c, ok := strings.CutPrefix(k, tagClusterPrefix); ok && v == "owned" {
			clusters = append(clusters, c)
		}
	}
	sort.Strings(clusters)
	f.Cluster = strings.Join(clusters, ",")
	switch {
	case inst.Tags[tagRole] == "bastion" && len(clusters) > 0:
		f.Action = fmt.Sprintf("the bastion of CAPA cluster %s: CAPA starts it without metadata options (the account's "+
			"defaults apply) and never changes them; require IMDSv2 with aws ec2 modify-instance-metadata-options", f.Cluster)
	case len(clusters) > 0:
		f.Action = fmt.Sprintf("tagged as CAPA cluster %s's, but no object in the input owns it: objects missing from the "+
			"input (another namespace or management cluster), or left behind", f.Cluster)
	case inst.Tags[tagEKSCluster] != "":
		f.Cluster = inst.Tags[tagEKSCluster]
		f.Action = fmt.Sprintf("EKS node group %s of cluster %s, which no AWSManagedMachinePool in the input manages",
			inst.Tags[tagEKSNodegroup], inst.Tags[tagEKSCluster])
	default:
		f.Action = "not a CAPA instance: CAPA will not change it"
	}
}

// machineTokens is what an AWSMachine or AWSMachineTemplate makes CAPA send: a missing
// block, or a block without httpTokens, is optional (CAPA's SetDefaults).
func machineTokens(opts *yaml.Node) (HTTPTokensState, InstanceMetadataState, string) {
	if isNull(opts) {
		return HTTPTokensStateOptional, "", "missing: CAPA sends optional/1"
	}
	endpoint := InstanceMetadataState(scalarField(opts, optHTTPEndpoint))
	if t := scalarField(opts, optHTTPTokens); t != "" {
		return HTTPTokensState(t), endpoint, "spec"
	}
	return HTTPTokensStateOptional, endpoint, "no httpTokens: CAPA defaults it to optional"
}

func (r *instancesRun) judgeMachine(f *InstanceFinding) {
	o := f.owner
	tokens, endpoint, from := machineTokens(lookup(o.node.YNode(), "spec", imdsField))
	f.Expected, f.ExpectedFrom = tokens, from
	specKeepsV1 := acceptsIMDSv1(tokens, endpoint)
	switch {
	case !f.AcceptsIMDSv1 && !specKeepsV1:
		f.Verdict, f.Action = VerdictOK, "none"
		return
	case f.AcceptsIMDSv1 && !specKeepsV1:
		if why := r.paused(o); why != "" {
			f.Verdict = VerdictPaused
			f.Action = fmt.Sprintf("CAPA would converge it to the spec (httpTokens required), but %s: unpause it", why)
			return
		}
		f.Verdict = VerdictFixedByCAPA
		f.Action = "none: CAPA's next reconcile of the AWSMachine sets httpTokens required (ModifyInstanceMetadataOptions)"
		return
	case !f.AcceptsIMDSv1 && r.defaults.Enforced():
		// CAPA would set it back to optional, and EC2 refuses: the instance stays on IMDSv2,
		// and the preflight reports the failing reconcile.
		f.Verdict, f.Action = VerdictOK, "none for the instance (EC2 refuses CAPA's change back to optional); replace the machine so its reconcile stops failing"
		return
	}
	f.Verdict = VerdictRoll
	roll, note := r.rollTarget(o)
	f.Roll = roll
	lead := "the AWSMachine says optional, so the instance accepts IMDSv1 until the machine is replaced"
	if !f.AcceptsIMDSv1 {
		lead = "the instance requires tokens now, but the AWSMachine says optional and CAPA's next reconcile sets it back"
	}
	switch {
	case roll == nil:
		f.Action = lead + "; no owner in the input: replace the AWSMachine"
	case roll.Kind == "Machine":
		f.Action = fmt.Sprintf("%s; it belongs to %s, which nothing rolls: delete the Machine and create it anew", lead, roll)
	default:
		f.Action = fmt.Sprintf("%s: roll %s (clusterctl alpha rollout restart %s/%s -n %s)", lead, roll,
			strings.ToLower(roll.Kind), roll.Name, roll.Namespace)
	}
	if note != "" {
		f.Action += "; " + note
	}
}

// paused says why CAPA does not reconcile the machine now, or "".
func (r *instancesRun) paused(o *object) string {
	if _, ok := o.node.GetAnnotations()[annotationPaused]; ok {
		return "the AWSMachine is annotated " + annotationPaused
	}
	if c := r.clusterOf(o); c != nil {
		if scalarField(c.node.YNode(), "spec", "paused") == "true" {
			return fmt.Sprintf("Cluster %s has spec.paused: true", c.name)
		}
		if _, ok := c.node.GetAnnotations()[annotationPaused]; ok {
			return fmt.Sprintf("Cluster %s is annotated %s", c.name, annotationPaused)
		}
	}
	return ""
}

// rollTarget is what to roll to replace the AWSMachine's machine: from its labels (Cluster
// API copies the Machine's onto it: deployment-name, set-name, control-plane-name), or
// through its owner Machine when that is in the input. note says whether the replacement
// would still accept IMDSv1.
func (r *instancesRun) rollTarget(o *object) (*ObjectRef, string) {
	labelled := func(n *object) *ObjectRef {
		labels := func(key string) string { return scalarField(n.node.YNode(), "metadata", "labels", key) }
		switch {
		case labels(labelDeploymentName) != "":
			return &ObjectRef{Kind: "MachineDeployment", Namespace: n.ns(), Name: labels(labelDeploymentName)}
		case labels(labelControlPlaneName) != "":
			kind := "KubeadmControlPlane"
			if c := r.clusterOf(n); c != nil {
				if k, ok := refKey(lookup(c.node.YNode(), "spec", "controlPlaneRef"), c.ns()); ok {
					kind = k.kind
				}
			}
			return &ObjectRef{Kind: kind, Namespace: n.ns(), Name: labels(labelControlPlaneName)}
		case labels(labelSetName) != "":
			return &ObjectRef{Kind: "MachineSet", Namespace: n.ns(), Name: labels(labelSetName)}
		}
		return nil
	}
	target := labelled(o)
	if target == nil {
		if m := ownerOfGroupKind(o.node.YNode(), clusterGroup, "Machine"); m != "" {
			target = &ObjectRef{Kind: "Machine", Namespace: o.ns(), Name: m}
			if mo := r.run.index[objKey{clusterGroup, "Machine", o.ns(), m}]; mo != nil {
				if t := labelled(mo); t != nil {
					target = t
				}
			}
		}
	}
	if target == nil {
		return nil, ""
	}
	return target, r.templateNote(target)
}

// templateNote checks the AWSMachineTemplate the roll target creates machines from, when
// both are in the input: rolling onto a template that says optional changes nothing.
func (r *instancesRun) templateNote(target *ObjectRef) string {
	group := clusterGroup
	if target.Kind != "MachineDeployment" && target.Kind != "MachineSet" {
		group = controlPlaneGroup
	}
	owner := r.run.index[objKey{group, target.Kind, target.Namespace, target.Name}]
	if owner == nil {
		return "check that its AWSMachineTemplate requires IMDSv2 first, or the new machine accepts IMDSv1 too"
	}
	var tmpl *object
	r.walkTemplateRefs(owner.node.YNode(), owner.ns(), 0, func(k objKey, _ *yaml.Node, _ string) {
		if tmpl == nil {
			tmpl = r.run.index[k]
		}
	})
	if tmpl == nil {
		return "check that its AWSMachineTemplate requires IMDSv2 first, or the new machine accepts IMDSv1 too"
	}
	tokens, endpoint, _ := machineTokens(lookup(tmpl.node.YNode(), "spec", "template", "spec", imdsField))
	if acceptsIMDSv1(tokens, endpoint) {
		return fmt.Sprintf("but its %s says %s too: point it at a template that requires IMDSv2 first (capa-imds with "+
			"spec.templates.renameOnChange), which rolls it", tmpl, tokens)
	}
	return ""
}

// ownerOfGroupKind returns the name of the object's owner of that group and kind, or "".
func ownerOfGroupKind(n *yaml.Node, group, kind string) string {
	owners := lookup(n, "metadata", "ownerReferences")
	if owners == nil || owners.Kind != yaml.SequenceNode {
		return ""
	}
	for _, ref := range owners.Content {
		if g, _ := splitAPIVersion(scalarField(ref, "apiVersion")); g == group && scalarField(ref, "kind") == kind {
			return scalarField(ref, "name")
		}
	}
	return ""
}

// poolTokens is what a pool's launch template asks for, and where that comes from.
func (r *instancesRun) poolTokens(o *object) (HTTPTokensState, InstanceMetadataState, string) {
	lt := lookup(o.node.YNode(), "spec", "awsLaunchTemplate")
	if o.kind == "AWSManagedMachinePool" && isNull(lt) {
		return HTTPTokensStateOptional, "", "no launch template: EKS's own"
	}
	opts := lookup(lt, imdsField)
	if isNull(opts) {
		if t := r.defaults.effectiveTokens(); t != "" {
			return t, "", "missing: the account's defaults"
		}
		return "", "", "missing: the account's defaults (not given: --defaults)"
	}
	endpoint := InstanceMetadataState(scalarField(opts, optHTTPEndpoint))
	if t := scalarField(opts, optHTTPTokens); t != "" {
		return HTTPTokensState(t), endpoint, "spec.awsLaunchTemplate"
	}
	return HTTPTokensStateOptional, endpoint, "no httpTokens: CAPA defaults it to optional"
}

// effectiveTokens is what an instance launched without metadata options gets, or "" when
// the account states no preference (the AMI's and EC2's defaults decide).
func (d *AccountDefaults) effectiveTokens() HTTPTokensState {
	switch {
	case d == nil:
		return ""
	case d.Enforced():
		return HTTPTokensStateRequired
	}
	return d.Options.HTTPTokens
}

func (r *instancesRun) judgePool(f *InstanceFinding) {
	o := f.owner
	tokens, endpoint, from := r.poolTokens(o)
	f.Expected, f.ExpectedFrom = tokens, from
	if f.LaunchTemplate != nil && f.LaunchTemplate.Name == "" {
		f.LaunchTemplate.Name = r.ltNames[o]
	}
	if !f.AcceptsIMDSv1 {
		f.Verdict, f.Action = VerdictOK, "none"
		return
	}
	f.Verdict = VerdictRefresh
	specRequires := tokens != "" && !acceptsIMDSv1(tokens, endpoint)
	version := "its launch template version"
	if f.LaunchTemplate != nil && f.LaunchTemplate.Version != "" {
		version = "launch template version " + f.LaunchTemplate.Version
	}
	switch {
	case o.kind == "AWSManagedMachinePool" && isNull(lookup(o.node.YNode(), "spec", "awsLaunchTemplate")):
		f.Action = fmt.Sprintf("the node group runs EKS's own launch template, which nothing in %s changes: create a new pool "+
			"with a launch template requiring IMDSv2 (capa-imds converts it; amiType and awsLaunchTemplate cannot change in place) "+
			"and delete this one", f.Owner)
	case o.kind == "AWSManagedMachinePool" && specRequires:
		f.Action = fmt.Sprintf("the instance runs %s, from before the pool asked for required: EKS replaces it when the node "+
			"group moves to CAPA's newer launch template version (an update of %s's node group)", version, f.Owner)
	case o.kind == "AWSManagedMachinePool":
		f.Action = fmt.Sprintf("set spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens: required on %s; EKS then "+
			"rolls the node group onto the new launch template version", f.Owner)
	case specRequires:
		f.Action = fmt.Sprintf("the instance runs %s, from before the pool asked for required: an instance refresh of %s "+
			"replaces it (CAPA starts one when it writes a new version unless spec.refreshPreferences.disable is true; or "+
			"aws autoscaling start-instance-refresh)", version, f.Owner)
	default:
		f.Action = fmt.Sprintf("set spec.awsLaunchTemplate.instanceMetadataOptions (httpTokens: required) on %s, then an "+
			"instance refresh replaces its instances", f.Owner)
	}
}

// preflight judges the objects against the account's defaults: under enforcement every
// object and config asking for optional fails (EC2 refuses the launch, and CAPA's
// reconcile of a running machine); launch templates without options get the account's.
func (r *instancesRun) preflight() {
	d := r.defaults
	enforced := "the account enforces IMDSv2 (HttpTokensEnforced: enabled)"
	for _, o := range r.objects {
		y := o.node.YNode()
		switch {
		case o.kind == ConfigKind && o.group == ConfigGroup:
			if !d.Enforced() {
				continue
			}
			cfg := r.cfg // instancesConfig loaded it: the only IMDSConfig of the input
			if opt, _ := cfg.Option(optHTTPTokens); opt.Value == string(HTTPTokensStateOptional) {
				r.errorf(o, "spec.instanceMetadataOptions.httpTokens", "asks for optional, and %s: every object "+
					"this config writes would be refused; set required", enforced)
			}
			for i, rule := range cfg.Rules {
				if opt, _ := optionIn(rule.Options, optHTTPTokens); opt.Value == string(HTTPTokensStateOptional) {
					r.errorf(o, fmt.Sprintf("spec.rules[%d].instanceMetadataOptions.httpTokens", i), "rule %q asks for optional "+
						"(allowOptional: true), and %s: EC2 refuses to launch, and CAPA to reconcile, every machine the rule matches; "+
						"remove the rule", rule.Name, enforced)
				}
			}
		case o.group != infraGroup:
		case o.kind == "AWSMachine" || o.kind == "AWSMachineTemplate":
			if o.kind == "AWSMachine" && ownerOfKind(y, "AWSMachinePool") != "" {
				continue // mirrors a pool instance: the pool decides
			}
			parent := imdsParents[o.kind]
			field := strings.Join(append(append([]string{}, parent...), imdsField), ".")
			tokens, _, from := machineTokens(lookup(y, append(append([]string{}, parent...), imdsField)...))
			if d.Enforced() && tokens == HTTPTokensStateOptional {
				what := "asks for httpTokens optional"
				switch {
				case strings.HasPrefix(from, "missing"):
					what = "has no instanceMetadataOptions, so CAPA sends httpTokens optional"
				case from != "spec":
					what = "sets no httpTokens, so CAPA sends optional"
				}
				consequence := "EC2 refuses to launch its machines"
				if o.kind == "AWSMachine" {
					consequence = "EC2 refuses its launch, and every reconcile of its running instance (ModifyInstanceMetadataOptions " +
						"to optional fails): replace the machine with one that requires IMDSv2"
				}
				r.errorf(o, field, "%s, and %s: %s", what, enforced, consequence)
			}
		case o.kind == "AWSMachinePool" || o.kind == "AWSManagedMachinePool":
			lt := lookup(y, "spec", "awsLaunchTemplate")
			if o.kind == "AWSManagedMachinePool" && isNull(lt) {
				if d.Enforced() {
					r.warnf(o, "spec", "has no launch template: EKS launches its nodes from its own, and %s; a node group "+
						"EKS starts with httpTokens optional fails to launch: use a launch template (capa-imds converts the pool)", enforced)
				}
				continue
			}
			opts := lookup(lt, imdsField)
			field := "spec.awsLaunchTemplate." + imdsField
			if !isNull(opts) {
				tokens := HTTPTokensState(scalarField(opts, optHTTPTokens))
				if tokens == "" {
					tokens = HTTPTokensStateOptional
				}
				if d.Enforced() && tokens == HTTPTokensStateOptional {
					r.errorf(o, field, "asks for httpTokens optional, and %s: EC2 refuses every launch from its launch template", enforced)
				}
				continue
			}
			if d == nil {
				r.infof(o, field, "missing: the launch template names no metadata options, so the account's defaults apply "+
					"(give --defaults with aws ec2 get-instance-metadata-defaults to see them)")
				continue
			}
			r.infof(o, field, "missing: the launch template names no metadata options, so the account's defaults apply: %s", d.describe())
		}
	}
}

// describe renders the defaults a launch without metadata options gets.
func (d *AccountDefaults) describe() string {
	tokens := string(d.effectiveTokens())
	if tokens == "" {
		tokens = "no preference (the AMI's; optional unless the AMI has ImdsSupport v2.0)"
	}
	hop := "no preference (EC2's: 1, or 2 for AMIs with ImdsSupport v2.0)"
	if d.Options.HTTPPutResponseHopLimit != nil {
		hop = fmt.Sprint(*d.Options.HTTPPutResponseHopLimit)
	}
	s := fmt.Sprintf("httpTokens %s, httpPutResponseHopLimit %s", tokens, hop)
	if d.Options.HTTPEndpoint != "" {
		s += ", httpEndpoint " + string(d.Options.HTTPEndpoint)
	}
	if d.HTTPTokensEnforced != "" {
		s += ", HttpTokensEnforced " + string(d.HTTPTokensEnforced)
	}
	if d.ManagedBy == ManagedByDeclarativePolicy {
		s += " (set by an organization's declarative policy)"
	}
	return s
}
