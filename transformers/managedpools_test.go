package transformers_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/transformers"
)

// Table tests of the managed node group conversion and the bootstrap strategies, one
// concern at a time, on a minimal EKS cluster. The golden cases cover whole templates.

const mpCluster = `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: c1
  namespace: ns
spec:
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: c1-cp
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
metadata:
  name: c1-cp
  namespace: ns
spec:
  version: v1.31.0
`

// nsMeta is the metadata block of a resource in namespace ns; annotations, when set, is
// its indented annotations block.
func nsMeta(name, annotations string) string {
	meta := "metadata:\n  name: " + name + "\n  namespace: ns\n"
	if annotations != "" {
		meta += "  annotations:\n" + annotations
	}
	return meta
}

// mpMachinePool is the pool's MachinePool; boot is its bootstrap block, indented under
// "bootstrap:", and annotations, when set, its metadata.annotations block.
func mpMachinePool(boot, annotations string) string {
	return "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachinePool\n" + nsMeta("mp", annotations) + `spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      bootstrap:
` + boot + `      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
        name: pool
      version: v1.31.0
`
}

func mpPool(spec string) string {
	return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSManagedMachinePool\nmetadata:\n  name: pool\n  namespace: ns\nspec:\n" + spec
}

func mpStream(docs ...string) string { return strings.Join(docs, "---\n") }

// mpFind returns the output item of that kind and name, or nil.
func mpFind(items []*yaml.RNode, kind, name string) *yaml.RNode {
	for _, it := range items {
		if it.GetKind() == kind && it.GetName() == name {
			return it
		}
	}
	return nil
}

func mpField(t *testing.T, n *yaml.RNode, path ...string) string {
	t.Helper()
	if n == nil {
		return "<no resource>"
	}
	v, err := n.Pipe(yaml.Lookup(path...))
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return "<unset>"
	}
	return strings.TrimSuffix(v.MustString(), "\n")
}

func mpConfig(t *testing.T, spec string) *transformers.Config {
	t.Helper()
	return mustConfig(t, configHeader+"spec:\n"+spec)
}

func TestConvertManagedPool(t *testing.T) {
	keep := "  managedMachinePools:\n    bootstrap:\n      strategy: keep\n"
	cases := []struct {
		name    string
		spec    string
		cpSpec  string // lines appended to the control plane's spec
		want    string // the pool's spec after the run
		results []moResult
		words   [][]string // key phrases of each result's message
	}{
		{
			name: "AL2 default amiType, instance type and disk size move into the launch template",
			spec: "  instanceType: t3.large\n  diskSize: 50\n  scaling:\n    minSize: 1\n",
			// New fields go at the end of the mapping, as everywhere in kyaml.
			want: `scaling:
  minSize: 1
awsLaunchTemplate:
  ami:
    eksLookupType: AmazonLinux
  instanceType: t3.large
  rootVolume:
    size: 50
` + defaultBlock("  ") + "amiType: CUSTOM\n",
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"amiType CUSTOM", "immutable", "replace an existing pool"}},
		},
		{
			name:    "GPU AL2",
			spec:    "  amiType: AL2_x86_64_GPU\n",
			want:    "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    eksLookupType: AmazonLinuxGPU\n" + defaultBlock("  "),
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"amiType CUSTOM"}},
		},
		{
			name:    "AL2023 NVIDIA",
			spec:    "  amiType: AL2023_x86_64_NVIDIA\n",
			want:    "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    eksLookupType: AmazonLinux2023GPU\n" + defaultBlock("  "),
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"amiType CUSTOM"}},
		},
		{
			name: "ARM without an instance type warns",
			spec: "  amiType: AL2023_ARM_64_STANDARD\n",
			want: "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    eksLookupType: AmazonLinux2023\n" + defaultBlock("  "),
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.awsLaunchTemplate.instanceType"},
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"},
			},
			words: [][]string{{"is ARM", "x86_64"}, {"amiType CUSTOM"}},
		},
		{
			name:    "an ami.id is kept and no lookup type is added",
			spec:    "  amiType: BOTTLEROCKET_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			want:    "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    id: ami-0123456789abcdef0\n" + defaultBlock("  "),
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"amiType CUSTOM"}},
		},
		{
			name:    "Bottlerocket without ami.id cannot be converted",
			spec:    "  amiType: BOTTLEROCKET_x86_64\n",
			want:    "amiType: BOTTLEROCKET_x86_64",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"no BOTTLEROCKET_x86_64 image", "ami.id", transformers.SkipAnnotation}},
		},
		{
			name: "an existing launch template name and instance type win",
			spec: "  instanceType: t3.small\n  awsLaunchTemplate:\n    name: my-lt\n    instanceType: t3.large\n",
			want: "awsLaunchTemplate:\n  name: my-lt\n  instanceType: t3.large\n  ami:\n    eksLookupType: AmazonLinux\n" + defaultBlock("  ") + "amiType: CUSTOM\n",
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.instanceType"},
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"},
			},
			words: [][]string{{"removed instanceType t3.small", "already t3.large"}, {"amiType CUSTOM"}},
		},
		{
			name: "remoteAccess: the SSH key moves, the rest is reported; amiVersion goes",
			spec: "  amiVersion: 1.31.0-20250101\n  remoteAccess:\n    sshKeyName: ops\n    sourceSecurityGroups: [sg-1]\n    public: true\n",
			want: "awsLaunchTemplate:\n  ami:\n    eksLookupType: AmazonLinux\n  sshKeyName: ops\n" + defaultBlock("  ") + "amiType: CUSTOM\n",
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.remoteAccess"},
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiVersion"},
				{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"},
			},
			words: [][]string{{"sourceSecurityGroups [sg-1]", "public true"}, {"removed amiVersion 1.31.0-20250101"}, {"amiType CUSTOM"}},
		},
		{
			name:    "remoteAccess with nothing but the key and empty lists loses nothing",
			spec:    "  remoteAccess:\n    sshKeyName: ops\n    sourceSecurityGroups: []\n    public: false\n",
			want:    "awsLaunchTemplate:\n  ami:\n    eksLookupType: AmazonLinux\n  sshKeyName: ops\n" + defaultBlock("  ") + "amiType: CUSTOM\n",
			results: []moResult{{Severity: transformers.Warning, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"amiType CUSTOM"}},
		},
		{
			// Before: converted to Amazon Linux (the lookup type won), nodes that are not Bottlerocket.
			name:    "Bottlerocket with an eksLookupType and no ami.id cannot be converted",
			spec:    "  amiType: BOTTLEROCKET_x86_64\n  awsLaunchTemplate:\n    ami:\n      eksLookupType: AmazonLinux\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.amiType"}},
			words:   [][]string{{"no BOTTLEROCKET_x86_64 image", "ami.id", transformers.SkipAnnotation}},
		},
		{
			// Before: eksLookupType AmazonLinux written, which CAPA ignores beside imageLookupFormat; exit 0.
			name:    "imageLookupFormat on the launch template: CAPA skips the EKS lookup, refused",
			spec:    "  awsLaunchTemplate:\n    imageLookupFormat: my-eks-{{.K8sVersion}}-*\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.awsLaunchTemplate.imageLookupFormat"}},
			words:   [][]string{{"by name", "eksLookupType", "is ignored", "remove spec.awsLaunchTemplate.imageLookupFormat", "ami.id"}},
		},
		{
			name:    "imageLookupOrg on the launch template: refused",
			spec:    "  amiType: AL2023_x86_64_STANDARD\n  awsLaunchTemplate:\n    imageLookupOrg: \"123456789012\"\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.awsLaunchTemplate.imageLookupOrg"}},
			words:   [][]string{{"eksLookupType", "remove spec.awsLaunchTemplate.imageLookupOrg"}},
		},
		{
			name:    "imageLookupBaseOS on the launch template: refused",
			spec:    "  amiType: CUSTOM\n  awsLaunchTemplate:\n    ami:\n      eksLookupType: AmazonLinux2023\n    imageLookupBaseOS: ubuntu-24.04\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.awsLaunchTemplate.imageLookupBaseOS"}},
			words:   [][]string{{"eksLookupType", "remove spec.awsLaunchTemplate.imageLookupBaseOS"}},
		},
		{
			// The control plane's fields reach every pool without its own (CAPA's EC2 scope).
			name:    "imageLookupBaseOS on the control plane: refused, named there",
			spec:    "  instanceType: t3.large\n",
			cpSpec:  "  imageLookupBaseOS: ubuntu-24.04\n",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedControlPlane ns/c1-cp", Field: "spec.imageLookupBaseOS"}},
			words:   [][]string{{"AWSManagedMachinePool ns/pool", "the control plane", "eksLookupType", "remove spec.imageLookupBaseOS"}},
		},
		{
			name:    "imageLookupFormat beside an ami.id: nothing is looked up, no finding",
			spec:    "  amiType: CUSTOM\n  awsLaunchTemplate:\n    ami:\n      id: ami-1\n    imageLookupFormat: x-*\n",
			cpSpec:  "  imageLookupOrg: \"123456789012\"\n",
			want:    "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    id: ami-1\n  imageLookupFormat: x-*\n" + defaultBlock("  "),
			results: nil,
			words:   [][]string{},
		},
		{
			name:    "iamInstanceProfile in the launch template is refused",
			spec:    "  amiType: CUSTOM\n  awsLaunchTemplate:\n    ami:\n      id: ami-1\n    iamInstanceProfile: nodes\n",
			want:    "amiType: CUSTOM\nawsLaunchTemplate:\n  ami:\n    id: ami-1\n  iamInstanceProfile: nodes",
			results: []moResult{{Severity: transformers.Error, Resource: "AWSManagedMachinePool ns/pool", Field: "spec.awsLaunchTemplate.iamInstanceProfile"}},
			words:   [][]string{{"forbids iamInstanceProfile"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := mpStream(mpCluster+tc.cpSpec, mpMachinePool("        dataSecretName: user-data\n", ""), mpPool(tc.spec))
			out, results := transformers.Process(mpConfig(t, keep), moRead(t, in))
			if len(out) == 0 {
				out = moRead(t, in) // error: compare with what came in
			}
			got := mpField(t, mpFind(out, "AWSManagedMachinePool", "pool"), "spec")
			if results.ExitCode() == 0 {
				if d := cmp.Diff(strings.TrimSuffix(tc.want, "\n"), got); d != "" {
					t.Errorf("spec (-want +got):\n%s", d)
				}
			}
			// Every result but the bootstrap info ("kept: dataSecretName names the user's Secret").
			var rs transformers.Results
			for _, r := range results {
				if r.ResourceRef == nil || r.ResourceRef.Kind != "MachinePool" {
					rs = append(rs, r)
				}
			}
			if d := cmp.Diff(tc.results, moResults(rs)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			moCheckMessages(t, rs, tc.words)
			_, audit := transformers.Process(mpConfig(t, "  mode: audit\n"+keep), moRead(t, in))
			checkErrorsInAudit(t, tc.results, audit)
		})
	}
}

// checkErrorsInAudit asserts that every error enforce reported, audit reports too, on the
// same resource and field: a bootstrap that cannot join fails both modes.
func checkErrorsInAudit(t *testing.T, enforce []moResult, audit transformers.Results) {
	t.Helper()
	got := moResults(audit)
	for _, want := range enforce {
		if want.Severity != transformers.Error {
			continue
		}
		found := false
		for _, g := range got {
			found = found || (g.Severity == transformers.Error && g.Resource == want.Resource && g.Field == want.Field)
		}
		if !found {
			t.Errorf("audit lacks the error on %s %s:\n%s", want.Resource, want.Field, audit)
		}
	}
}

func TestBootstrapStrategies(t *testing.T) {
	const (
		eksConfigRef = "        configRef:\n          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n          kind: EKSConfig\n          name: mp\n"
		nodeadmRef   = "        configRef:\n          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n          kind: NodeadmConfig\n          name: mp\n"
		noBootstrap  = "        dataSecretName: \"\"\n"
		ours         = "c1-eks-bootstrap"
		script       = "#!/bin/bash -xe\n/etc/eks/bootstrap.sh ns_c1-cp"
		skip         = "    " + transformers.SkipAnnotation + ": \"true\"\n"
	)
	eksConfig := func(spec, annotations string) string {
		return "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: EKSConfig\n" + nsMeta("mp", annotations) + "spec:" + spec
	}
	nodeadm := "apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: NodeadmConfig\nmetadata:\n  name: mp\n  namespace: ns\nspec: {}\n"
	secret := func(annotations string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + ours + "\n  namespace: ns\n  annotations:\n" + annotations +
			"type: Opaque\nstringData:\n  value: my own script\n"
	}
	const mpRes, cfgRes, secRes = "MachinePool ns/mp", "EKSConfig ns/mp", "Secret ns/" + ours
	useSecret := "dataSecretName: " + ours
	// Setting an existing dataSecretName keeps its quoting.
	useSecretQuoted := `dataSecretName: "` + ours + `"`
	keptEKS := "configRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: EKSConfig\n  name: mp"
	keptNodeadm := "configRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp"
	cases := []struct {
		name, strategy string
		pool           string // the AWSManagedMachinePool's spec; an AL2 pool with an instance type when ""
		docs           []string
		wantBootstrap  string // the MachinePool's spec.template.spec.bootstrap
		wantScript     string // the Secret's script; "" for no Secret
		wantConfig     bool   // the bootstrap config is still in the output
		results        []moResult
		words          [][]string
	}{
		{
			name: "auto, no bootstrap: a Secret", strategy: "auto",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: useSecretQuoted, wantScript: script,
		},
		{
			name: "auto, an empty EKSConfig: a Secret, and the config goes", strategy: "auto",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig(" {}\n", "")},
			wantBootstrap: useSecret, wantScript: script,
			results: []moResult{{Severity: transformers.Info, Resource: cfgRes}},
			words:   [][]string{{"removed", "no longer uses this EKSConfig", "nothing else references it"}},
		},
		{
			name: "auto, an EKSConfig with settings: kept, naming them", strategy: "auto",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig("\n  preBootstrapCommands: [echo hi]\n  kubeletExtraArgs:\n    max-pods: \"58\"\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
			results: []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:   [][]string{{"bootstrap kept", "preBootstrapCommands, kubeletExtraArgs", "strategy secret"}},
		},
		{
			name: "auto, a NodeadmConfig: kept (Amazon Linux 2023)", strategy: "auto",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: keptNodeadm, wantConfig: true,
			results: []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:   [][]string{{"NodeadmConfig", "Amazon Linux 2023"}},
		},
		{
			name: "auto, the user's own Secret: kept", strategy: "auto",
			docs:          []string{mpMachinePool("        dataSecretName: mine\n", "")},
			wantBootstrap: "dataSecretName: mine",
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.dataSecretName"},
				{Severity: transformers.Warning, Resource: mpRes, Field: "spec.template.spec.bootstrap.dataSecretName"},
			},
			words: [][]string{{"user's own Secret", "mine"}, {`Secret "mine" is not in the input`}},
		},
		{
			name: "auto, the user's own Secret in the input: kept, nothing to say but that", strategy: "auto",
			docs: []string{mpMachinePool("        dataSecretName: mine\n", ""),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\n  namespace: ns\nstringData:\n  value: x\n"},
			wantBootstrap: "dataSecretName: mine",
			results:       []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.dataSecretName"}},
			words:         [][]string{{"user's own Secret", "mine"}},
		},
		{
			name: "auto, an EKSConfig not in the input: kept, with a warning", strategy: "auto",
			docs:          []string{mpMachinePool(eksConfigRef, "")},
			wantBootstrap: keptEKS,
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
				{Severity: transformers.Warning, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
			},
			words: [][]string{{"not in the input"}, {`EKSConfig "mp" is not in the input`}},
		},
		{
			name: "auto, a skipped MachinePool with no bootstrap: its converted pool's nodes would not join", strategy: "auto",
			docs:          []string{mpMachinePool(noBootstrap, skip)},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")),
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes},
				// Before: a warning, exit 0.
				{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"},
			},
			words: [][]string{{"skipped"}, {"no bootstrap", "never join"}},
		},
		{
			name: "keep, an EKSConfig on a pool that now boots Amazon Linux 2023 (Kubernetes 1.33): refused", strategy: "keep",
			pool:          "  instanceType: t3.large\n",
			docs:          []string{strings.Replace(mpMachinePool(eksConfigRef, ""), "v1.31.0", "v1.33.0", 1), eksConfig(" {}\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"/etc/eks/bootstrap.sh", "EKSConfig mp", "Amazon Linux 2023", "never join"}},
		},
		{
			name: "auto, the user's bootstrap.sh Secret on a pool that now boots Amazon Linux 2023: refused", strategy: "auto",
			docs: []string{strings.Replace(mpMachinePool("        dataSecretName: mine\n", ""), "v1.31.0", "v1.33.0", 1),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\n  namespace: ns\nstringData:\n  value: |\n    #!/bin/bash\n    /etc/eks/bootstrap.sh ns_c1-cp\n"},
			wantBootstrap: "dataSecretName: mine",
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.dataSecretName"},
				{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"},
			},
			words: [][]string{{"user's own Secret"}, {"/etc/eks/bootstrap.sh", "Secret mine", "never join"}},
		},
		{
			name: "auto, a bootstrap config of another kind: kept, with a warning to check it joins", strategy: "auto",
			docs:          []string{mpMachinePool("        configRef:\n          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n          kind: KubeadmConfig\n          name: mp\n", "")},
			wantBootstrap: "configRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: KubeadmConfig\n  name: mp",
			results: []moResult{
				{Severity: transformers.Warning, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
				{Severity: transformers.Warning, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
			},
			words: [][]string{{"KubeadmConfig", "neither an EKSConfig nor a NodeadmConfig"}, {`KubeadmConfig "mp" is not in the input`}},
		},
		{
			name: "auto, an AL2023 pool with no bootstrap: a new NodeadmConfig", strategy: "auto",
			pool: "  amiType: AL2023_x86_64_STANDARD\n",
			docs: []string{mpMachinePool(noBootstrap, "")},
			// The empty dataSecretName is the user's, and harmless: Cluster API reads it as unset.
			wantBootstrap: "dataSecretName: \"\"\nconfigRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp",
			wantConfig:    true,
			results:       []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:         [][]string{{"added NodeadmConfig mp", "Amazon Linux 2023"}},
		},
		{
			name: "auto, an AL2023 pool with an empty EKSConfig: a NodeadmConfig replaces it", strategy: "auto",
			pool:          "  amiType: AL2023_ARM_64_STANDARD\n  instanceType: m7g.large\n",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig(" {}\n", "")},
			wantBootstrap: "configRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp",
			wantConfig:    true,
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
				{Severity: transformers.Info, Resource: cfgRes},
			},
			words: [][]string{{"added NodeadmConfig mp"}, {"removed", "no longer uses this EKSConfig"}},
		},
		{
			name: "auto, an AL2023 pool with an EKSConfig with settings: refused", strategy: "auto",
			pool:          "  amiType: AL2023_x86_64_STANDARD\n",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig("\n  kubeletExtraArgs:\n    max-pods: \"58\"\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:   [][]string{{"Amazon Linux 2023", "kubeletExtraArgs", "NodeadmConfig"}},
		},
		{
			name: "auto, an AL2023 pool on the function's old Secret: moved to a NodeadmConfig, the Secret goes", strategy: "auto",
			pool: "  amiType: AL2023_x86_64_STANDARD\n",
			docs: []string{mpMachinePool("        dataSecretName: "+ours+"\n", ""),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + ours + "\n  namespace: ns\n  annotations:\n    " + transformers.GeneratedAnnotation +
					": capa-imds\ntype: Opaque\nstringData:\n  value: an old script\n"},
			wantBootstrap: "configRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp",
			wantConfig:    true,
			results: []moResult{
				{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"},
				{Severity: transformers.Info, Resource: secRes},
			},
			words: [][]string{{"added NodeadmConfig mp"}, {"removed", "no longer uses this Secret"}},
		},
		{
			name: "secret, an AL2023 pool: refused", strategy: "secret",
			pool:          "  amiType: AL2023_x86_64_STANDARD\n",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")),
			results:       []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:         [][]string{{"bootstrap.sh", "Amazon Linux 2023", "never join", "strategy auto"}},
		},
		{
			name: "secret, a custom image at Kubernetes 1.33: a Secret, with a warning", strategy: "secret",
			pool:          "  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{strings.Replace(mpMachinePool(noBootstrap, ""), "v1.31.0", "v1.33.1", 1)},
			wantBootstrap: useSecretQuoted, wantScript: script,
			results: []moResult{{Severity: transformers.Warning, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"custom image", "Kubernetes v1.33.1", "bootstrap.sh"}},
		},
		{
			name: "auto, a custom image at Kubernetes 1.33 with no bootstrap: a NodeadmConfig", strategy: "auto",
			pool:          "  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{strings.Replace(mpMachinePool(noBootstrap, ""), "v1.31.0", "v1.33.1", 1)},
			wantBootstrap: "dataSecretName: \"\"\nconfigRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp",
			wantConfig:    true,
			results:       []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:         [][]string{{"added NodeadmConfig mp", "Kubernetes v1.33.1"}},
		},
		{
			name: "secret, an EKSConfig with settings: replaced", strategy: "secret",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig("\n  preBootstrapCommands: [echo hi]\n", "")},
			wantBootstrap: useSecret, wantScript: script,
			results: []moResult{{Severity: transformers.Info, Resource: cfgRes}},
			words:   [][]string{{"removed"}},
		},
		{
			name: "secret, a NodeadmConfig: refused (Amazon Linux 2023 has no bootstrap.sh)", strategy: "secret",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: keptNodeadm, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"bootstrap.sh", "Amazon Linux 2023", "never join"}},
		},
		{
			// Before: a bootstrap.sh Secret (the ami.id made it a custom image, and 1.31 has AL2 images).
			name: "auto, an AL2023 amiType with ami.id and no bootstrap: a NodeadmConfig", strategy: "auto",
			pool:          "  amiType: AL2023_x86_64_STANDARD\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: "dataSecretName: \"\"\nconfigRef:\n  apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n  kind: NodeadmConfig\n  name: mp",
			wantConfig:    true,
			results:       []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:         [][]string{{"added NodeadmConfig mp", "Amazon Linux 2023"}},
		},
		{
			// Before: a bootstrap.sh Secret, with a warning that the custom image may lack it; exit 0.
			name: "secret, an AL2023 amiType with ami.id: refused", strategy: "secret",
			pool:          "  amiType: AL2023_ARM_64_STANDARD\n  awsLaunchTemplate:\n    instanceType: m7g.large\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")),
			results:       []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:         [][]string{{"bootstrap.sh", "Amazon Linux 2023", "never join", "strategy auto"}},
		},
		{
			// Before: a bootstrap.sh Secret, with a warning; exit 0.
			name: "auto, Bottlerocket with ami.id and no bootstrap: refused, no Secret", strategy: "auto",
			pool:          "  amiType: BOTTLEROCKET_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")),
			results:       []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:         [][]string{{"writes none", "BOTTLEROCKET_x86_64", "never join", "TOML", "dataSecretName"}},
		},
		{
			// Before: a bootstrap.sh Secret, with a warning; exit 0.
			name: "secret, Windows with ami.id: refused, no Secret", strategy: "secret",
			pool:          "  amiType: WINDOWS_CORE_2022_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool("        dataSecretName: mine\n", "")},
			wantBootstrap: "dataSecretName: mine",
			results:       []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:         [][]string{{"strategy secret", "WINDOWS_CORE_2022_x86_64", "no bootstrap.sh", "PowerShell"}},
		},
		{
			// Before: the empty EKSConfig was replaced by a bootstrap.sh Secret, with a warning; exit 0.
			name: "auto, Windows with ami.id on an empty EKSConfig: refused (it renders bootstrap.sh)", strategy: "auto",
			pool:          "  amiType: WINDOWS_FULL_2019_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig(" {}\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"EKSConfig mp", "runs /etc/eks/bootstrap.sh", "WINDOWS_FULL_2019_x86_64", "never join"}},
		},
		{
			// Before: the Secret an earlier run wrote was kept current; exit 0.
			name: "keep, Bottlerocket with ami.id on the function's old Secret: refused", strategy: "keep",
			pool: "  amiType: BOTTLEROCKET_ARM_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs: []string{mpMachinePool("        dataSecretName: "+ours+"\n", ""),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + ours + "\n  namespace: ns\n  annotations:\n    " + transformers.GeneratedAnnotation +
					": capa-imds\ntype: Opaque\nstringData:\n  value: \"" + strings.ReplaceAll(script, "\n", "\\n") + "\"\n"},
			wantBootstrap: useSecret, wantScript: script,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"Secret " + ours, "runs /etc/eks/bootstrap.sh", "BOTTLEROCKET_ARM_64"}},
		},
		{
			// Before: left as found; exit 0.
			name: "keep, Bottlerocket with ami.id on a NodeadmConfig: refused", strategy: "keep",
			pool:          "  amiType: BOTTLEROCKET_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: keptNodeadm, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:   [][]string{{"NodeadmConfig mp", "nodeadm's", "never join"}},
		},
		{
			name: "auto, Bottlerocket with ami.id and the user's own Secret: kept", strategy: "auto",
			pool: "  amiType: BOTTLEROCKET_x86_64\n  awsLaunchTemplate:\n    ami:\n      id: ami-0123456789abcdef0\n",
			docs: []string{mpMachinePool("        dataSecretName: mine\n", ""),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\n  namespace: ns\nstringData:\n  value: |\n    [settings.kubernetes]\n    cluster-name = \"ns_c1-cp\"\n"},
			wantBootstrap: "dataSecretName: mine",
			results:       []moResult{{Severity: transformers.Info, Resource: mpRes, Field: "spec.template.spec.bootstrap.dataSecretName"}},
			words:         [][]string{{"user's own Secret", "mine"}},
		},
		{
			// Before: an info ("a NodeadmConfig bootstraps Amazon Linux 2023") and a warning; exit 0.
			name: "auto, an AL2 pool on a NodeadmConfig: refused", strategy: "auto",
			pool:          "  amiType: AL2_x86_64\n  instanceType: t3.large\n",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: keptNodeadm, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:   [][]string{{"NodeadmConfig mp", "amiType AL2_x86_64, eksLookupType AmazonLinux", "no nodeadm", "AL2023_x86_64_STANDARD", "strategy secret"}},
		},
		{
			// Before: a warning; exit 0.
			name: "keep, an AmazonLinux lookup on a NodeadmConfig: refused", strategy: "keep",
			pool:          "  amiType: CUSTOM\n  awsLaunchTemplate:\n    ami:\n      eksLookupType: AmazonLinuxGPU\n",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: keptNodeadm, wantConfig: true,
			results: []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap.configRef"}},
			words:   [][]string{{"NodeadmConfig mp", "eksLookupType AmazonLinuxGPU", "never join"}},
		},
		{
			name: "secret, an AL2 pool on a NodeadmConfig: the Secret replaces it", strategy: "secret",
			pool:          "  amiType: AL2_x86_64\n  instanceType: t3.large\n",
			docs:          []string{mpMachinePool(nodeadmRef, ""), nodeadm},
			wantBootstrap: useSecret, wantScript: script,
			results: []moResult{{Severity: transformers.Info, Resource: "NodeadmConfig ns/mp"}},
			words:   [][]string{{"removed", "no longer uses this NodeadmConfig"}},
		},
		{
			name: "keep, an empty EKSConfig: left as found", strategy: "keep",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig(" {}\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
		},
		{
			// Before: a warning in enforce, exit 0.
			name: "keep, no bootstrap at all: refused", strategy: "keep",
			docs:          []string{mpMachinePool(noBootstrap, "")},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")),
			results:       []moResult{{Severity: transformers.Error, Resource: mpRes, Field: "spec.template.spec.bootstrap"}},
			words:         [][]string{{"no bootstrap", "never join"}},
		},
		{
			name: "keep, but the MachinePool uses the function's Secret: updated", strategy: "keep",
			docs: []string{mpMachinePool("        dataSecretName: "+ours+"\n", ""),
				"apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + ours + "\n  namespace: ns\n  annotations:\n    " + transformers.GeneratedAnnotation +
					": capa-imds\ntype: Opaque\nstringData:\n  value: an old script\n"},
			wantBootstrap: useSecret, wantScript: script,
		},
		{
			name: "secret, a skipped MachinePool: left as found", strategy: "secret",
			docs:          []string{mpMachinePool(eksConfigRef, skip), eksConfig(" {}\n", "")},
			wantBootstrap: keptEKS, wantConfig: true,
			results: []moResult{{Severity: transformers.Info, Resource: mpRes}},
			words:   [][]string{{"skipped"}},
		},
		{
			name: "secret, a skipped EKSConfig: the MachinePool uses the Secret, the config stays", strategy: "secret",
			docs:          []string{mpMachinePool(eksConfigRef, ""), eksConfig(" {}\n", skip)},
			wantBootstrap: useSecret, wantScript: script, wantConfig: true,
			results: []moResult{{Severity: transformers.Info, Resource: cfgRes}},
			words:   [][]string{{"skipped"}},
		},
		{
			name: "secret, a skipped Secret of that name: the user's, used as it is", strategy: "secret",
			docs:          []string{mpMachinePool(noBootstrap, ""), secret(skip)},
			wantBootstrap: useSecretQuoted, wantScript: "my own script",
			results: []moResult{{Severity: transformers.Info, Resource: secRes}},
			words:   [][]string{{"skipped"}},
		},
		{
			name: "secret, a foreign Secret of that name: refused", strategy: "secret",
			docs:          []string{mpMachinePool(noBootstrap, ""), secret("    team: me\n")},
			wantBootstrap: strings.TrimSpace(strings.TrimPrefix(noBootstrap, "      ")), wantScript: "my own script",
			results: []moResult{{Severity: transformers.Error, Resource: secRes}},
			words:   [][]string{{"not written by capa-imds", "not overwritten"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := tc.pool
			if pool == "" {
				pool = "  instanceType: t3.large\n"
			}
			docs := append([]string{mpCluster, mpPool(pool)}, tc.docs...)
			in := mpStream(docs...)
			cfg := mpConfig(t, "  managedMachinePools:\n    bootstrap:\n      strategy: "+tc.strategy+"\n")
			out, results := transformers.Process(cfg, moRead(t, in))
			if results.ExitCode() != 0 {
				out = moRead(t, in)
			}
			mp := mpFind(out, "MachinePool", "mp")
			if d := cmp.Diff(tc.wantBootstrap, mpField(t, mp, "spec", "template", "spec", "bootstrap")); d != "" {
				t.Errorf("bootstrap (-want +got):\n%s", d)
			}
			gotScript := ""
			if s := mpFind(out, "Secret", ours); s != nil {
				gotScript = "<unset>"
				if v, err := s.Pipe(yaml.Lookup("stringData", "value")); err == nil && v != nil {
					gotScript = v.YNode().Value
				}
				if gotScript == "<unset>" {
					gotScript = decodeBase64(t, mpField(t, s, "data", "value"))
				}
			}
			if gotScript != tc.wantScript {
				t.Errorf("Secret script %q, want %q", gotScript, tc.wantScript)
			}
			hasConfig := mpFind(out, "EKSConfig", "mp") != nil || mpFind(out, "NodeadmConfig", "mp") != nil
			if hasConfig != tc.wantConfig {
				t.Errorf("bootstrap config in the output: %v, want %v", hasConfig, tc.wantConfig)
			}
			// The pool's own conversion warning is TestConvertManagedPool's concern, the
			// pinned EKS name TestPinEKSClusterName's.
			var rs transformers.Results
			for _, r := range results {
				if r.ResourceRef == nil || (r.ResourceRef.Kind != "AWSManagedMachinePool" && r.ResourceRef.Kind != "AWSManagedControlPlane") {
					rs = append(rs, r)
				}
			}
			if d := cmp.Diff(tc.results, moResults(rs)); d != "" {
				t.Errorf("results (-want +got):\n%s\n%s", d, rs)
			}
			moCheckMessages(t, rs, tc.words)
			audit := mpConfig(t, "  mode: audit\n  managedMachinePools:\n    bootstrap:\n      strategy: "+tc.strategy+"\n")
			_, auditResults := transformers.Process(audit, moRead(t, in))
			checkErrorsInAudit(t, tc.results, auditResults)
		})
	}
}

func decodeBase64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("data.value %q: %v", s, err)
	}
	return string(b)
}

// What nothing in the input can make certain is said, not passed over in silence.
func TestManagedPoolUncertainties(t *testing.T) {
	template := strings.NewReplacer("name: c1-cp", "name: ${CLUSTER_NAME}-cp", "v1.31.0", "${KUBERNETES_VERSION}").Replace(mpCluster)
	pool := "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSManagedMachinePool\nmetadata:\n  name: pool\n  namespace: ns\nspec: {}\n"
	mp := strings.Replace(mpMachinePool("        dataSecretName: \"\"\n", ""), "      version: v1.31.0\n", "", 1)
	cases := []struct {
		name, strategy, in string
		want               []string
	}{
		{"an unknown Kubernetes version: Amazon Linux 2 is chosen, with a warning", "auto", mpStream(template, mp, pool),
			[]string{"set to AmazonLinux, CAPA's default: the Kubernetes version", "AL2023_x86_64_STANDARD"}},
		{"keep, and no MachinePool: a warning", "keep", mpStream(mpCluster, pool),
			[]string{"no MachinePool in the input references this pool", "make sure its MachinePool's bootstrap does"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mpConfig(t, "  managedMachinePools:\n    bootstrap:\n      strategy: "+tc.strategy+"\n")
			_, results := transformers.Process(cfg, moRead(t, tc.in))
			for _, w := range tc.want {
				found := false
				for _, r := range results {
					if r.Severity == transformers.Warning && strings.Contains(r.Message, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no warning saying %q:\n%s", w, results)
				}
			}
		})
	}
}
