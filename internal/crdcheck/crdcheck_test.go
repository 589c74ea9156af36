package crdcheck

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

func loadDefault(t *testing.T) *Validator {
	t.Helper()
	v, err := Default()
	if err != nil {
		t.Fatalf("loading CRDs: %v", err)
	}
	return v
}

func parse(t *testing.T, s string) *yaml.RNode {
	t.Helper()
	rn, err := yaml.Parse(s)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, s)
	}
	return rn
}

const managedPool = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: pool-0
  namespace: default
spec:
  eksNodegroupName: pool-0
  awsLaunchTemplate:
`

const machineTemplate = `apiVersion: infrastructure.cluster.x-k8s.io/%s
kind: AWSMachineTemplate
metadata:
  name: md-0
  labels:
    cluster.x-k8s.io/cluster-name: c1
spec:
  template:
    spec:
      instanceType: "${AWS_NODE_MACHINE_TYPE}"
      iamInstanceProfile: nodes.cluster-api-provider-aws.sigs.k8s.io
      sshKeyName: "${AWS_SSH_KEY_NAME}"
      instanceMetadataOptions:
        httpEndpoint: enabled
        httpPutResponseHopLimit: 2
        httpTokens: required
        instanceMetadataTags: disabled
`

func TestValidateRealCRDs(t *testing.T) {
	v := loadDefault(t)
	tests := []struct {
		name string
		obj  string
		want []Finding
	}{
		{
			name: "metadataOptions under awsLaunchTemplate is unknown",
			obj: managedPool + `    name: lt
    metadataOptions:
      httpTokens: required
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.awsLaunchTemplate.metadataOptions", "unknown field"}},
		},
		{
			name: "instanceMetadataOptions under awsLaunchTemplate is valid",
			obj: managedPool + `    instanceMetadataOptions:
      httpTokens: required
      httpPutResponseHopLimit: 2
`,
		},
		{
			name: "httpTokens enum",
			obj: managedPool + `    instanceMetadataOptions:
      httpTokens: bogus
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.awsLaunchTemplate.instanceMetadataOptions.httpTokens",
				`Unsupported value: "bogus": supported values: "optional", "required"`}},
		},
		{
			name: "hop limit maximum",
			obj: managedPool + `    instanceMetadataOptions:
      httpPutResponseHopLimit: 65
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.awsLaunchTemplate.instanceMetadataOptions.httpPutResponseHopLimit",
				"Invalid value: 65: should be less than or equal to 64"}},
		},
		{
			name: "hop limit as a string",
			obj: managedPool + `    instanceMetadataOptions:
      httpPutResponseHopLimit: "2"
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.awsLaunchTemplate.instanceMetadataOptions.httpPutResponseHopLimit",
				`must be of type integer, got string "2"`}},
		},
		{
			name: "hop limit placeholder is not value-checked",
			obj: managedPool + `    instanceMetadataOptions:
      httpPutResponseHopLimit: ${HOP_LIMIT}
`,
		},
		{
			name: "valid AWSMachineTemplate with instanceMetadataOptions",
			obj:  strings.Replace(machineTemplate, "%s", "v1beta2", 1),
		},
		{
			name: "AWSMachineTemplate v1beta1 is not served",
			obj:  strings.Replace(machineTemplate, "%s", "v1beta1", 1),
			want: []Finding{{"AWSMachineTemplate", "md-0", "apiVersion",
				`version "v1beta1" of AWSMachineTemplate.infrastructure.cluster.x-k8s.io is not served`}},
		},
		{
			name: "unknown kind in a loaded group",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMagicPool
metadata: {name: x}
`,
			want: []Finding{{"AWSMagicPool", "x", "kind", `no matches for kind "AWSMagicPool" in version "infrastructure.cluster.x-k8s.io/v1beta2"`}},
		},
		{
			name: "unknown version of a known kind",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1alpha9
kind: AWSMachineTemplate
metadata: {name: x}
`,
			want: []Finding{{"AWSMachineTemplate", "x", "apiVersion", `no matches for kind "AWSMachineTemplate" in version "infrastructure.cluster.x-k8s.io/v1alpha9"`}},
		},
		{
			name: "group without CRDs is skipped",
			obj: `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec: {bogus: true}
`,
		},
		{
			name: "ConfigMap is skipped",
			obj: `apiVersion: v1
kind: ConfigMap
metadata: {name: x}
bogus: true
`,
		},
		{
			name: "required field, minProperties, nested unknown and top-level unknown",
			obj: `apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata: {name: md}
extra: 1
spec:
  selector: {}
  rollout: {}
  template:
    spec:
      bootstrap: {}
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AWSMachineTemplate, name: md, color: red}
`,
			want: []Finding{
				{"MachineDeployment", "md", "extra", "unknown field"},
				{"MachineDeployment", "md", "spec.clusterName", "Required value"},
				{"MachineDeployment", "md", "spec.rollout", "Invalid value: 0: should have at least 1 properties"},
				{"MachineDeployment", "md", "spec.template.spec.clusterName", "Required value"},
				{"MachineDeployment", "md", "spec.template.spec.infrastructureRef.color", "unknown field"},
			},
		},
		{
			name: "metadata is ObjectMeta",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata:
  name: Bad_Name
  labels: {"ok": "v", "a/b/c": "x", "n": "-bad"}
  annotations: {"x": 1}
  colour: blue
spec: {template: {spec: {instanceType: m5.large}}}
`,
			want: []Finding{
				{"AWSMachineTemplate", "Bad_Name", "metadata.annotations[x]", "must be of type string, got integer 1"},
				{"AWSMachineTemplate", "Bad_Name", "metadata.colour", "unknown field"},
				{"AWSMachineTemplate", "Bad_Name", "metadata.labels[a/b/c]", `Invalid value: "a/b/c": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)`},
				{"AWSMachineTemplate", "Bad_Name", "metadata.labels[n]", `Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)`},
				{"AWSMachineTemplate", "Bad_Name", "metadata.name", `Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`},
			},
		},
		{
			name: "missing name",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata: {namespace: default}
spec: {template: {spec: {instanceType: m5.large}}}
`,
			want: []Finding{{"AWSMachineTemplate", "", "metadata.name", "Required value: name or generateName is required"}},
		},
		{
			name: "non-nullable null is dropped, not an error; required null is missing",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata: {name: x}
spec: {template: {spec: {instanceType: null, sshKeyName: null}}}
`,
			want: []Finding{{"AWSMachineTemplate", "x", "spec.template.spec.instanceType", "Required value"}},
		},
		{
			name: "minLength and pattern",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata: {name: x}
spec: {template: {spec: {instanceType: "m"}}}
`,
			want: []Finding{{"AWSMachineTemplate", "x", "spec.template.spec.instanceType", `Invalid value: "m": should be at least 2 chars long`}},
		},
		{
			name: "YAML 1.1 boolean where a string is expected",
			obj: managedPool + `    instanceMetadataOptions:
      httpEndpoint: off
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.awsLaunchTemplate.instanceMetadataOptions.httpEndpoint",
				"must be of type string, got boolean false"}},
		},
		{
			name: "int-or-string",
			obj: `apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata: {name: md}
spec:
  clusterName: c
  selector: {}
  rollout: {strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: "10%", maxUnavailable: true}}}
  template: {spec: {clusterName: c, bootstrap: {dataSecretName: s}, infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AWSMachineTemplate, name: md}}}
`,
			want: []Finding{{"MachineDeployment", "md", "spec.rollout.strategy.rollingUpdate.maxUnavailable", "must be of type integer or string, got boolean true"}},
		},
		{
			name: "list-type map duplicate keys",
			obj: `apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata: {name: md}
spec:
  clusterName: c
  selector: {}
  template:
    spec:
      clusterName: c
      bootstrap: {dataSecretName: s}
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AWSMachineTemplate, name: md}
      taints:
      - {key: a, effect: NoSchedule, value: v1, propagation: Always}
      - {key: a, effect: NoExecute, propagation: Always}
      - {key: a, effect: NoSchedule, value: v2, propagation: Always}
`,
			want: []Finding{{"MachineDeployment", "md", "spec.template.spec.taints[2]", `Duplicate value: {"effect":"NoSchedule","key":"a"}`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := v.Validate(parse(t, tc.obj))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	v := loadDefault(t)
	tests := []struct {
		name string
		obj  string
		want []Finding
	}{
		{
			name: "valid",
			obj: `apiVersion: v1
kind: Secret
metadata: {name: s, namespace: default}
type: Opaque
immutable: true
data: {value: aGVsbG8=, empty: "", sub: "${B64_VALUE}"}
stringData: {plain: "not base64 !"}
`,
		},
		{
			name: "bad base64, bad key, non-string stringData, unknown field",
			obj: `apiVersion: v1
kind: Secret
metadata: {name: s}
data: {value: "hello world", "bad key": aGk=}
stringData: {num: 1}
spec: {}
`,
			want: []Finding{
				{"Secret", "s", "data[bad key]", `Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`},
				{"Secret", "s", "data[value]", `Invalid value: "hello world": not valid standard base64: illegal base64 data at input byte 5`},
				{"Secret", "s", "spec", "unknown field"},
				{"Secret", "s", "stringData[num]", "must be of type string, got integer 1"},
			},
		},
		{
			name: "URL-safe alphabet is not standard base64",
			obj: `apiVersion: v1
kind: Secret
metadata: {name: s}
data: {value: "-_-_"}
`,
			want: []Finding{{"Secret", "s", "data[value]", `Invalid value: "-_-_": not valid standard base64: illegal base64 data at input byte 0`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := v.Validate(parse(t, tc.obj))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateMap(t *testing.T) {
	v := loadDefault(t)
	obj := map[string]any{
		"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
		"kind":       "AWSMachineTemplate",
		"metadata":   map[string]string{"name": "x"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"instanceType":            "m5.large",
			"instanceMetadataOptions": map[string]any{"httpPutResponseHopLimit": 0, "httpTokens": "required"},
		}}},
	}
	want := []Finding{{"AWSMachineTemplate", "x", "spec.template.spec.instanceMetadataOptions.httpPutResponseHopLimit",
		"Invalid value: 0: should be greater than or equal to 1"}}
	if diff := cmp.Diff(want, v.ValidateMap(obj)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestWebhooks(t *testing.T) {
	tests := []struct {
		name string
		obj  string
		want []Finding
	}{
		{
			name: "launch template alone passes",
			obj:  managedPool + "    instanceMetadataOptions: {httpTokens: required}\n",
		},
		{
			name: "no launch template: instanceType and diskSize allowed",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: pool-0}
spec: {instanceType: t3.large, diskSize: 20}
`,
		},
		{
			name: "launch template with instanceType, diskSize, iamInstanceProfile",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: pool-0}
spec:
  instanceType: ${AWS_NODE_MACHINE_TYPE}
  diskSize: 20
  awsLaunchTemplate: {iamInstanceProfile: nodes}
`,
			want: []Finding{
				{"AWSManagedMachinePool", "pool-0", "spec.AWSLaunchTemplate.IamInstanceProfile", `Invalid value: "nodes": IAM instance profile in launch template is prohibited in EKS managed node group`},
				{"AWSManagedMachinePool", "pool-0", "spec.DiskSize", "Invalid value: 20: DiskSize cannot be specified when LaunchTemplate is specified"},
				{"AWSManagedMachinePool", "pool-0", "spec.InstanceType", `Invalid value: "${AWS_NODE_MACHINE_TYPE}": InstanceType cannot be specified when LaunchTemplate is specified`},
			},
		},
		{
			name: "empty launch template still counts as set; null fields do not",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: pool-0}
spec: {awsLaunchTemplate: {}, instanceType: "", diskSize: null}
`,
			want: []Finding{{"AWSManagedMachinePool", "pool-0", "spec.InstanceType", `Invalid value: "": InstanceType cannot be specified when LaunchTemplate is specified`}},
		},
		{
			name: "null launch template is not set",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: pool-0}
spec: {awsLaunchTemplate: null, instanceType: t3.large}
`,
		},
		{
			name: "remoteAccess, scaling, updateConfig",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: pool-0}
spec:
  remoteAccess: {public: true, sourceSecurityGroups: [sg-1]}
  scaling: {minSize: 3, maxSize: 2}
  updateConfig: {maxUnavailable: 1, maxUnavailablePercentage: 10}
`,
			want: []Finding{
				{"AWSManagedMachinePool", "pool-0", "spec.remoteAccess.sourceSecurityGroups", `Invalid value: ["sg-1"]: must be empty if public is set`},
				{"AWSManagedMachinePool", "pool-0", "spec.scaling.maxSize", "Invalid value: 2: must be greater than field spec.scaling.minSize"},
				{"AWSManagedMachinePool", "pool-0", "spec.updateConfig", `Invalid value: {"maxUnavailable":1,"maxUnavailablePercentage":10}: cannot specify both maxUnavailable and maxUnavailablePercentage`},
			},
		},
		{
			name: "other kinds are ignored",
			obj: `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata: {name: p}
spec: {awsLaunchTemplate: {iamInstanceProfile: nodes}, instanceType: x}
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckWebhooks(parse(t, tc.obj))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindingString(t *testing.T) {
	tests := []struct {
		f    Finding
		want string
	}{
		{Finding{"AWSManagedMachinePool", "p", "spec.awsLaunchTemplate.metadataOptions", "unknown field"},
			"AWSManagedMachinePool/p: spec.awsLaunchTemplate.metadataOptions: unknown field"},
		{Finding{"Secret", "s", "", "boom"}, "Secret/s: boom"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// knownTemplateBugs lists findings ("file: finding") in CAPA's own templates
// that are real template bugs, not validator bugs, each with the reason.
// Empty: every document of every v2.13.0 template passes. An entry here
// must be justified; the default assumption is that the validator is wrong.
var knownTemplateBugs = map[string]bool{}

// TestCAPATemplatesPass is the validator's calibration: every document of
// every cluster template CAPA ships must pass unmodified, or the validator
// is stricter than the real API server.
func TestCAPATemplatesPass(t *testing.T) {
	v := loadDefault(t)
	dir, err := modcache.CAPADir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "templates", "cluster-template*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates in %s: %v", dir, err)
	}
	checked, skipped := map[string]int{}, map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := kio.FromBytes(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, n := range nodes {
			gvk := n.GetApiVersion() + ", Kind=" + n.GetKind()
			if !v.Covers(n.GetApiVersion(), n.GetKind()) {
				skipped[gvk]++
				continue
			}
			checked[gvk]++
			for _, fi := range v.CheckAll([]*yaml.RNode{n}) {
				if !knownTemplateBugs[filepath.Base(f)+": "+fi.String()] {
					t.Errorf("%s: %s", filepath.Base(f), fi)
				}
			}
			mutantMustFail(t, v, filepath.Base(f), n)
		}
	}
	t.Logf("checked %d templates: %s", len(files), summary(checked))
	t.Logf("skipped (no CRD loaded for the group): %s", summary(skipped))
	if len(checked) == 0 {
		t.Fatal("no template document was checked")
	}
}

// mutantMustFail guards against a validator that passes templates because
// it checks nothing: the same document with an unknown field at the root
// and in spec must be reported at both places.
func mutantMustFail(t *testing.T, v *Validator, file string, n *yaml.RNode) {
	t.Helper()
	mut := n.Copy()
	want := []string{"zzUnknown"}
	if err := mut.PipeE(yaml.SetField("zzUnknown", yaml.NewScalarRNode("x"))); err != nil {
		t.Fatal(err)
	}
	if spec := mut.Field("spec"); spec != nil && spec.Value.YNode().Kind == yaml.MappingNode {
		if err := spec.Value.PipeE(yaml.SetField("zzUnknown", yaml.NewScalarRNode("x"))); err != nil {
			t.Fatal(err)
		}
		want = []string{"spec.zzUnknown", "zzUnknown"}
	}
	var got []string
	for _, f := range v.Validate(mut) {
		if f.Message == "unknown field" && strings.HasSuffix(f.Path, "zzUnknown") {
			got = append(got, f.Path)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: %s/%s with unknown fields added: (-want +got):\n%s", file, n.GetKind(), n.GetName(), diff)
	}
}

func summary(m map[string]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, k+" ×"+strconv.Itoa(n))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
