// Package fleet generates deterministic synthetic fleets of Cluster API Provider AWS
// manifests for benchmarks, fuzz seeds and the kustomize comparison. It is test and
// benchmark tooling and is not shipped.
//
// A fleet of n resources is n/UnitSize clusters, each a unit of UnitSize resources, and
// then n%UnitSize unrelated resources, so every size has whole clusters and no dangling
// references. A unit is, per cluster (namespace fleet-NNN):
//
//	Cluster, AWSManagedCluster, AWSManagedControlPlane,
//	MachinePool -> AWSManagedMachinePool (+ EKSConfig with an empty spec),
//	MachineDeployment -> AWSMachineTemplate (+ EKSConfigTemplate),
//	MachinePool -> AWSMachinePool (+ EKSConfig),
//	4 Deployments and 4 ConfigMaps with long data (unrelated to CAPA).
//
// Resources carry head and line comments and clusterctl ${VAR} placeholders, as real
// templates do. The same n always yields the same bytes.
package fleet

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// UnitSize is the number of resources per cluster.
const UnitSize = 20

// CAPAPerUnit is how many of a unit's resources are Cluster API or CAPA objects.
const CAPAPerUnit = 12

// Sizes are the fleet sizes the benchmarks report, in resources.
var Sizes = []int{100, 1000, 10000, 100000}

// TemplateSize is the "common case": one cluster template's worth of resources.
const TemplateSize = UnitSize

// FunctionConfig is the IMDSConfig the generated ResourceLists carry.
const FunctionConfig = `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata:
  name: require-imdsv2
spec:
  instanceMetadataOptions:
    httpTokens: required
    httpPutResponseHopLimit: 2
`

// Generate calls emit for each of the n resources in order, with the resource's YAML
// text (no document separator; it ends in a newline and may start with comment lines).
func Generate(n int, emit func(doc string) error) error {
	units := n / UnitSize
	for u := 0; u < units; u++ {
		for _, doc := range unit(u) {
			if err := emit(doc); err != nil {
				return err
			}
		}
	}
	for i := 0; i < n%UnitSize; i++ {
		var doc string
		if i%2 == 0 {
			doc = configMap(units, 100+i)
		} else {
			doc = deployment(units, 100+i)
		}
		if err := emit(doc); err != nil {
			return err
		}
	}
	return nil
}

// Docs returns the n resources as a slice.
func Docs(n int) []string {
	docs := make([]string, 0, n)
	_ = Generate(n, func(d string) error { docs = append(docs, d); return nil })
	return docs
}

// WriteStream writes n resources as a multi-document YAML stream.
func WriteStream(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	first := true
	err := Generate(n, func(doc string) error {
		if !first {
			if _, err := bw.WriteString("---\n"); err != nil {
				return err
			}
		}
		first = false
		_, err := bw.WriteString(doc)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// WriteResourceList writes n resources as a ResourceList whose functionConfig is
// FunctionConfig (or fnConfig, when not empty).
func WriteResourceList(w io.Writer, n int, fnConfig string) error {
	if fnConfig == "" {
		fnConfig = FunctionConfig
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n")
	writeIndented(bw, fnConfig, "  ", "  ")
	if n == 0 {
		bw.WriteString("items: []\n")
		return bw.Flush()
	}
	bw.WriteString("items:\n")
	err := Generate(n, func(doc string) error {
		writeItem(bw, doc)
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// ResourceList returns WriteResourceList's output as bytes.
func ResourceList(n int) []byte {
	var b strings.Builder
	_ = WriteResourceList(&b, n, "")
	return []byte(b.String())
}

// Stream returns WriteStream's output as bytes.
func Stream(n int) []byte {
	var b strings.Builder
	_ = WriteStream(&b, n)
	return []byte(b.String())
}

// writeItem writes doc as a sequence item at column 0: leading comment lines stay
// comments before the dash, the first content line gets "- ", the rest "  ".
func writeItem(w *bufio.Writer, doc string) {
	lines := strings.SplitAfter(doc, "\n")
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		w.WriteString(lines[i])
	}
	writeIndented(w, strings.Join(lines[i:], ""), "- ", "  ")
}

func writeIndented(w *bufio.Writer, text, first, rest string) {
	for i, l := range strings.SplitAfter(text, "\n") {
		if l == "" {
			continue
		}
		if i == 0 {
			w.WriteString(first)
		} else if l != "\n" {
			w.WriteString(rest)
		}
		w.WriteString(l)
	}
}

// Kustomization variants for the kustomize comparison.
type Kustomization int

const (
	// Plain builds the fleet with nothing else: kustomize's own floor.
	Plain Kustomization = iota
	// Function runs capa-imds as an exec KRM transformer.
	Function
	// Patches does the IMDS edits with builtin patches, as users write them by hand.
	Patches
)

// WriteKustomization writes a kustomization directory holding the fleet of n resources.
// For Function, fnPath is the path of the capa-imds binary (absolute, or relative to dir).
func WriteKustomization(dir string, n int, k Kustomization, fnPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "fleet.yaml"))
	if err != nil {
		return err
	}
	if err := WriteStream(f, n); err != nil {
		_ = f.Close() // the write's error is the one to report
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- fleet.yaml\n"
	switch k {
	case Function:
		kust += "transformers:\n- imds.yaml\n"
		fn := strings.Replace(FunctionConfig, "  name: require-imdsv2\n",
			"  name: require-imdsv2\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: "+fnPath+"\n", 1)
		if err := os.WriteFile(filepath.Join(dir, "imds.yaml"), []byte(fn), 0o644); err != nil {
			return err
		}
	case Patches:
		kust += PatchesKustomization
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644)
}

// PatchesKustomization is the hand-written equivalent of the function's IMDS edits:
// one builtin patch per CAPA kind that has instanceMetadataOptions. It does not convert
// AWSManagedMachinePools to a launch template (the function does), so for managed pools
// it only sets the field where a launch template would carry it.
const PatchesKustomization = `patches:
- target:
    group: infrastructure.cluster.x-k8s.io
    kind: AWSMachineTemplate
  patch: |-
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    kind: AWSMachineTemplate
    metadata:
      name: any
    spec:
      template:
        spec:
          instanceMetadataOptions:
            httpTokens: required
            httpPutResponseHopLimit: 2
            httpEndpoint: enabled
            instanceMetadataTags: disabled
- target:
    group: infrastructure.cluster.x-k8s.io
    kind: AWSMachinePool
  patch: |-
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    kind: AWSMachinePool
    metadata:
      name: any
    spec:
      awsLaunchTemplate:
        instanceMetadataOptions:
          httpTokens: required
          httpPutResponseHopLimit: 2
          httpEndpoint: enabled
          instanceMetadataTags: disabled
- target:
    group: infrastructure.cluster.x-k8s.io
    kind: AWSManagedMachinePool
  patch: |-
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    kind: AWSManagedMachinePool
    metadata:
      name: any
    spec:
      awsLaunchTemplate:
        instanceMetadataOptions:
          httpTokens: required
          httpPutResponseHopLimit: 2
          httpEndpoint: enabled
          instanceMetadataTags: disabled
`

// unit returns the UnitSize resources of cluster u.
func unit(u int) []string {
	ns := fmt.Sprintf("fleet-%03d", u%1000)
	c := fmt.Sprintf("c%05d", u)
	r := strings.NewReplacer("NS", ns, "CLUSTER", c, "IDX", fmt.Sprint(u))
	docs := make([]string, 0, UnitSize)
	for _, t := range capaTemplates {
		docs = append(docs, r.Replace(t))
	}
	for i := 0; i < (UnitSize-CAPAPerUnit)/2; i++ {
		docs = append(docs, deployment(u, i), configMap(u, i))
	}
	return docs
}

// capaTemplates are one cluster's CAPA objects. NS, CLUSTER and IDX are replaced; the
// ${...} placeholders are clusterctl's and stay.
var capaTemplates = []string{
	`# Cluster CLUSTER: EKS with a managed node group, a MachineDeployment and a self-managed pool.
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: CLUSTER
  namespace: NS
  labels:
    fleet.example.com/index: "IDX"
    fleet.example.com/tier: production # used by ClusterResourceSets
spec:
  clusterNetwork:
    pods:
      cidrBlocks: ["192.168.0.0/16"]
  infrastructureRef:
    kind: AWSManagedCluster
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    name: CLUSTER
  controlPlaneRef:
    kind: AWSManagedControlPlane
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    name: CLUSTER-control-plane
`,
	`kind: AWSManagedCluster
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
metadata:
  name: CLUSTER
  namespace: NS
spec: {}
`,
	`kind: AWSManagedControlPlane
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
metadata:
  name: CLUSTER-control-plane
  namespace: NS
spec:
  region: "${AWS_REGION}"
  sshKeyName: "${AWS_SSH_KEY_NAME}"
  version: "v1.32.0" # bumped by Renovate
  addons:
  - name: vpc-cni
    version: v1.19.2-eksbuild.1
    conflictResolution: overwrite
`,
	`# Managed node group: EKS-managed, converted to a launch template by capa-imds.
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: CLUSTER-pool-0
  namespace: NS
spec:
  clusterName: CLUSTER
  replicas: 3
  template:
    spec:
      clusterName: CLUSTER
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
          kind: EKSConfig
          name: CLUSTER-pool-0
      infrastructureRef:
        name: CLUSTER-pool-0
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
      version: v1.32.0
`,
	`apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: CLUSTER-pool-0
  namespace: NS
spec:
  amiType: AL2_x86_64 # AMI family of the node group
  scaling:
    minSize: 1
    maxSize: 10
  labels:
    workload: general
`,
	`apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: EKSConfig
metadata:
  name: CLUSTER-pool-0
  namespace: NS
spec: {}
`,
	`apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: CLUSTER-md-0
  namespace: NS
spec:
  clusterName: CLUSTER
  replicas: 2
  selector:
    matchLabels: {}
  template:
    spec:
      clusterName: CLUSTER
      version: v1.32.0
      bootstrap:
        configRef:
          name: CLUSTER-md-0
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
          kind: EKSConfigTemplate
      infrastructureRef:
        name: CLUSTER-md-0
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachineTemplate
`,
	`apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata:
  name: CLUSTER-md-0
  namespace: NS
spec:
  template:
    spec:
      iamInstanceProfile: "nodes.cluster-api-provider-aws.sigs.k8s.io"
      instanceType: "${AWS_NODE_MACHINE_TYPE:=t3.large}"
      sshKeyName: "${AWS_SSH_KEY_NAME}"
      # The function adds instanceMetadataOptions here.
`,
	`apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: EKSConfigTemplate
metadata:
  name: CLUSTER-md-0
  namespace: NS
spec:
  template: {}
`,
	`apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: CLUSTER-mp-0
  namespace: NS
spec:
  clusterName: CLUSTER
  replicas: 2
  template:
    spec:
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
          kind: EKSConfig
          name: CLUSTER-mp-0
      clusterName: CLUSTER
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachinePool
        name: CLUSTER-mp-0
      version: v1.32.0
`,
	`apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata:
  name: CLUSTER-mp-0
  namespace: NS
spec:
  minSize: 1
  maxSize: 10
  awsLaunchTemplate:
    ami:
      eksLookupType: AmazonLinux2023
    iamInstanceProfile: nodes.cluster-api-provider-aws.sigs.k8s.io
    instanceType: "${AWS_NODE_MACHINE_TYPE:=m5.large}"
    sshKeyName: "${AWS_SSH_KEY_NAME}"
    instanceMetadataOptions:
      httpTokens: optional # legacy agents still use IMDSv1
`,
	`apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: EKSConfig
metadata:
  name: CLUSTER-mp-0
  namespace: NS
spec: {}
`,
}

func deployment(u, i int) string {
	return fmt.Sprintf(`# Workload %[3]d of cluster c%05[1]d's platform team.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: c%05[1]d-app-%[3]d
  namespace: %[2]s
  labels:
    app.kubernetes.io/name: app-%[3]d
    app.kubernetes.io/part-of: platform
spec:
  replicas: 2 # HPA takes over
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%[3]d
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%[3]d
    spec:
      containers:
      - name: app
        image: "${REGISTRY:=ghcr.io/example}/app:v1.%[3]d.0"
        args: ["--listen=:8080", "--log-level=info"]
        ports:
        - containerPort: 8080
        env:
        - name: CLUSTER
          value: c%05[1]d
        - name: REGION
          value: "${AWS_REGION}"
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {memory: 256Mi}
`, u, fmt.Sprintf("fleet-%03d", u%1000), i)
}

func configMap(u, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: ConfigMap
metadata:
  name: c%05[1]d-settings-%[3]d
  namespace: %[2]s
  annotations:
    fleet.example.com/owner: "team-%[3]d" # paged on change
data:
  cluster: c%05[1]d
  region: "${AWS_REGION}"
  settings.conf: |
`, u, fmt.Sprintf("fleet-%03d", u%1000), i)
	for l := 0; l < 32; l++ {
		fmt.Fprintf(&b, "    setting.%02d.key = value-%05d-%02d-%02d: lorem ipsum dolor sit amet\n", l, u, i, l)
	}
	return b.String()
}
