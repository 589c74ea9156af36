package fn

import (
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
)

// YAML that a Kubernetes client accepts must mean to the function what it means to the
// API server, or be refused: aliases and merge keys, envelopes, what the function
// generates or moves, comments, numbers and limits. Each case states the promise it
// holds; each failed on the tree before the fix.

const (
	semAWSMachineHead = "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\n"
	semCompliant      = "    httpTokens: required\n    httpPutResponseHopLimit: 2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n"
)

// semEKS is a managed node group whose pieces the cases vary.
func semEKS(cp, mpBoot, pool, extra string) string {
	return `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: c1
  namespace: ns
spec:
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: cp
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
metadata:
  name: cp
  namespace: ns
` + cp + `---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: mp
  namespace: ns
spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      version: v1.31.0
      bootstrap:
` + mpBoot + `      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
        name: pool
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: pool
  namespace: ns
` + pool + extra
}

// semRL wraps a stream into a ResourceList, as one YAML document (anchors may cross items).
func semRL(t *testing.T, items string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n")
	for _, doc := range strings.Split(items, "---\n") {
		for i, line := range strings.Split(strings.TrimRight(doc, "\n"), "\n") {
			if i == 0 {
				b.WriteString("- " + line + "\n")
			} else {
				b.WriteString("  " + line + "\n")
			}
		}
	}
	b.WriteString("functionConfig:\n" + indent(cliConfig))
	return b.String()
}

func TestYAMLSemantics(t *testing.T) {
	mpBootNone := "        dataSecretName: \"\"\n"
	cases := []struct {
		name       string
		rl         bool   // run as a ResourceList on stdin (one YAML document)
		in         string // the manifests
		args       []string
		audit      bool
		code       int
		stdoutHas  []string
		stdoutLack []string
		stderrHas  []string
	}{
		// 1. Aliases and merge keys.
		{name: "kind through an alias is recognised: audit fails", audit: true, code: 1,
			in:        "metadata:\n  name: m\n  labels:\n    k: &k AWSMachine\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: *k\nspec:\n  instanceType: t3.large\n",
			stderrHas: []string{"AWSMachine m spec.instanceMetadataOptions: missing"}},
		{name: "kind through an alias is recognised: enforce writes the options",
			in:        "metadata:\n  name: m\n  labels:\n    k: &k AWSMachine\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: *k\nspec:\n  instanceType: t3.large\n",
			stdoutHas: []string{"kind: AWSMachine\n", "instanceMetadataOptions:\n" + semCompliant}},
		{name: "a control plane's eksClusterName through an alias names the cluster",
			in:        semEKS("  annotations:\n    name: &n prod-eks\nspec:\n  version: v1.31.0\n  eksClusterName: *n\n", mpBootNone, "spec:\n  amiType: AL2_x86_64\n", ""),
			stdoutHas: []string{"value: IyEvYmluL2Jhc2ggLXhlCi9ldGMvZWtzL2Jvb3RzdHJhcC5zaCBwcm9kLWVrcw=="}}, // ... bootstrap.sh prod-eks
		{name: "the skip annotation through an alias is honoured",
			in:         "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\n  labels:\n    s: &t \"true\"\n  annotations:\n    fn.capa-imds.dev/skip: *t\nspec:\n  instanceType: t3.large\n",
			stdoutLack: []string{"instanceMetadataOptions"}},
		{name: "an EKSConfig whose settings come through an alias is kept, not deleted", rl: true,
			in: semEKS("spec:\n  version: v1.31.0\n", "        configRef:\n          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2\n          kind: EKSConfig\n          name: mp\n",
				"spec:\n  amiType: AL2_x86_64\n",
				"---\napiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: EKSConfig\nmetadata:\n  name: other\n  namespace: ns\nspec: &settings\n  kubeletExtraArgs:\n    max-pods: \"58\"\n"+
					"---\napiVersion: bootstrap.cluster.x-k8s.io/v1beta2\nkind: EKSConfig\nmetadata:\n  name: mp\n  namespace: ns\nspec: *settings\n"),
			stdoutHas:  []string{"kind: EKSConfig\n  metadata:\n    name: mp\n    namespace: ns\n  spec:\n    kubeletExtraArgs:"},
			stdoutLack: []string{"dataSecretName: c1-eks-bootstrap"}},
		{name: "a merge key inside an AWSMachine keeps the merged httpProtocolIpv6",
			in:        semAWSMachineHead + "metadata:\n  name: m\nspec:\n  <<: {instanceMetadataOptions: {httpProtocolIpv6: enabled}}\n  instanceType: t3.large\n",
			stdoutHas: []string{"httpProtocolIpv6: enabled", "httpTokens: required"}, stdoutLack: []string{"<<"}},
		{name: "a merge key inside an AWSManagedMachinePool spec: instanceType and diskSize move", args: []string{"--namespace", "ns"},
			in:         semEKS("spec:\n  version: v1.31.0\n", mpBootNone, "spec:\n  <<: {instanceType: t3.large, diskSize: 50}\n  amiType: AL2_x86_64\n", ""),
			stdoutHas:  []string{"awsLaunchTemplate:\n    ami:\n      eksLookupType: AmazonLinux\n    instanceType: t3.large\n    rootVolume:\n      size: 50\n"},
			stdoutLack: []string{"<<", "\n  instanceType:", "\n  diskSize:"}},
		{name: "a merge key inside an AWSManagedMachinePool spec: audit fails it", audit: true, code: 1,
			in:        semEKS("spec:\n  version: v1.31.0\n  eksClusterName: ns_cp\n", mpBootNone, "spec:\n  <<: {instanceType: t3.large}\n  amiType: CUSTOM\n  awsLaunchTemplate:\n    ami:\n      eksLookupType: AmazonLinux\n    instanceMetadataOptions:\n"+strings.ReplaceAll(semCompliant, "    ", "      "), ""),
			stderrHas: []string{"spec.instanceType: CAPA's webhook forbids spec.instanceType beside a launch template"}},
		{name: "an anchor in one item aliased from another: each item is edited on its own", rl: true,
			in: semAWSMachineHead + "metadata:\n  name: a\nspec: &shared\n  instanceType: t3.large\n---\n" + semAWSMachineHead + "metadata:\n  name: b\nspec: *shared\n" +
				"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations: &ann\n    team: a\ndata:\n  x: y\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  annotations: *ann\n",
			stdoutHas:  []string{"name: b\n  spec:\n    instanceType: t3.large\n    instanceMetadataOptions:", "name: d\n    annotations:\n      team: a"},
			stdoutLack: []string{"*shared", "*ann"}},

		// 2. Envelopes.
		{name: "a document after a ... end marker without --- is refused", code: 1,
			in:        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n...\n" + semAWSMachineHead + "metadata: {name: m}\n",
			stderrHas: []string{`follows the end marker "..."`}},
		{name: "a ... end marker followed by --- is fine",
			in:        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n...\n---\n" + semAWSMachineHead + "metadata: {name: m}\n",
			stdoutHas: []string{"name: a", "instanceMetadataOptions"}},
		{name: "a v1 List with two items: keys is refused", code: 1,
			in:        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(semAWSMachineHead), "\n", "\n  ") + "\n  metadata: {name: m}\n",
			stderrHas: []string{"items: appears twice"}},
		{name: "a List inside a List is processed",
			in:        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n    kind: AWSMachine\n    metadata: {name: m}\n    spec: {instanceType: t3.large}\n",
			stdoutHas: []string{"httpTokens: required"}},
		{name: "a typed list (AWSMachineTemplateList, as kubectl applies it) is processed",
			in:        "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplateList\nitems:\n- apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n  kind: AWSMachineTemplate\n  metadata: {name: t}\n  spec: {template: {spec: {instanceType: t3.large}}}\n",
			stdoutHas: []string{"httpTokens: required"}},
		{name: "a legacy config.k8s.io ResourceList given as a FILE is refused", code: 1,
			in:        "apiVersion: config.k8s.io/v1alpha1\nkind: ResourceList\nitems: []\n",
			stderrHas: []string{"holds a ResourceList"}},
		{name: "an item with no apiVersion and kind is refused", code: 1,
			in:        "metadata:\n  name: x\nspec: {}\n",
			stderrHas: []string{"is not a resource: it has no apiVersion or no kind"}},
		{name: "the same resource twice is refused", code: 1,
			in:        semAWSMachineHead + "metadata: {name: m}\n---\n" + semAWSMachineHead + "metadata: {name: m}\n",
			stderrHas: []string{"is defined twice in the input"}},
		{name: "two Clusters on one control plane are refused", code: 1,
			in: semEKS("spec:\n  version: v1.31.0\n", mpBootNone, "spec:\n  amiType: AL2_x86_64\n",
				"---\napiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata:\n  name: c2\n  namespace: ns\nspec:\n  controlPlaneRef:\n    apiVersion: controlplane.cluster.x-k8s.io/v1beta2\n    kind: AWSManagedControlPlane\n    name: cp\n"),
			stderrHas: []string{`AWSManagedControlPlane "cp" is already the control plane of Cluster ns/c1`}},

		// 3. What the function generates or moves.
		{name: "remoteAccess that is not a mapping is removed with a warning", args: []string{"--namespace", "ns"},
			in:        semEKS("spec:\n  version: v1.31.0\n", mpBootNone, "spec:\n  amiType: AL2_x86_64\n  remoteAccess: [oops]\n", ""),
			stderrHas: []string{"removed remoteAccess", "a list, not a mapping"}, stdoutLack: []string{"remoteAccess"}},
		{name: "a MachinePool whose template is not a mapping is reported", code: 1,
			in: strings.Replace(semEKS("spec:\n  version: v1.31.0\n", mpBootNone, "spec:\n  amiType: AL2_x86_64\n", ""),
				"  template:\n    spec:\n      clusterName: c1\n      version: v1.31.0\n      bootstrap:\n        dataSecretName: \"\"\n      infrastructureRef:\n        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\n        kind: AWSManagedMachinePool\n        name: pool\n",
				"  template: [pool]\n", 1),
			stderrHas: []string{"MachinePool ns/mp spec.template: must be a mapping"}},

		// 4. Comments.
		{name: "a line comment on a null block stays on its line",
			in:        semAWSMachineHead + "metadata: {name: m}\nspec:\n  instanceMetadataOptions: null # set by policy\n  instanceType: t3.large\n",
			stdoutHas: []string{"instanceMetadataOptions: # set by policy\n", "instanceType: t3.large\n"}},
		{name: "head comments travel with moved fields", args: []string{"--namespace", "ns"},
			in:        semEKS("spec:\n  version: v1.31.0\n", mpBootNone, "spec:\n  amiType: AL2_x86_64\n  # the node size\n  instanceType: t3.large\n  # GiB\n  diskSize: 50\n  remoteAccess:\n    # the team key\n    sshKeyName: k\n", ""),
			stdoutHas: []string{"    # the node size\n    instanceType: t3.large\n", "      # GiB\n      size: 50\n", "    # the team key\n    sshKeyName: k\n"}},

		// 5. Numbers and limits.
		{name: "a hop limit written 0x2 is 2: audit passes", audit: true,
			in: semAWSMachineHead + "metadata: {name: m}\nspec:\n  instanceMetadataOptions:\n    httpTokens: required\n    httpPutResponseHopLimit: 0x2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n"},
		{name: "a hop limit written +2 or 02 is 2: enforce leaves it",
			in:        semAWSMachineHead + "metadata: {name: m}\nspec:\n  instanceMetadataOptions:\n    httpTokens: required\n    httpPutResponseHopLimit: +2\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n---\n" + semAWSMachineHead + "metadata: {name: n}\nspec:\n  instanceMetadataOptions:\n    httpTokens: required\n    httpPutResponseHopLimit: 02\n    httpEndpoint: enabled\n    instanceMetadataTags: disabled\n",
			stdoutHas: []string{"httpPutResponseHopLimit: +2", "httpPutResponseHopLimit: 02"}, stderrHas: []string{"changed 0,"}},
		{name: "an alias bomb is refused, naming the file", code: 1,
			in: semAWSMachineHead + "metadata:\n  name: m\nspec:\n  a: &a [x,x,x,x,x,x,x,x,x,x]\n  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" +
				"  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n  d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
			stderrHas: []string{"in.yaml: AWSMachine m: YAML aliases would expand to more than 10000 nodes"}},
		{name: "a ResourceList result quoting a huge value is cut", rl: true, code: 1, audit: true,
			in:         semAWSMachineHead + "metadata: {name: m}\nspec:\n  instanceMetadataOptions:\n    httpTokens: \"" + strings.Repeat("x", 100000) + "\"\n",
			stdoutLack: []string{strings.Repeat("x", 2000)}, stdoutHas: []string{"bytes more)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got cliResult
			switch {
			case tc.rl:
				rl := semRL(t, tc.in)
				if tc.audit {
					rl = strings.Replace(rl, "functionConfig:\n"+indent(cliConfig), "functionConfig:\n"+indent(cliAuditConfig), 1)
				}
				got = runCLI(t, rl)
			default:
				p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": tc.in})
				args := append([]string(nil), tc.args...)
				if tc.audit {
					args = append(args, "--audit")
				}
				got = runCLI(t, "", append(args, p["config.yaml"], p["in.yaml"])...)
			}
			if got.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s\nstdout:\n%s", got.code, tc.code, got.stderr, got.stdout)
			}
			if tc.code == 0 && !tc.audit && !tc.rl {
				if _, err := (&kio.ByteReader{Reader: strings.NewReader(got.stdout)}).Read(); err != nil {
					t.Errorf("the output is not YAML: %v", err)
				}
			}
			for _, w := range tc.stdoutHas {
				if !strings.Contains(got.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, got.stdout)
				}
			}
			for _, w := range tc.stdoutLack {
				if strings.Contains(got.stdout, w) {
					t.Errorf("stdout has %q:\n%s", w, got.stdout)
				}
			}
			for _, w := range tc.stderrHas {
				if !strings.Contains(got.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got.stderr)
				}
			}
		})
	}
}

// Nodes, not bytes, are what the reader holds in memory: dense flow sequences far under the
// byte cap are refused by the node bound, with the input named.
func TestNodeBound(t *testing.T) {
	old := maxTokens
	maxTokens = 1000
	t.Cleanup(func() { maxTokens = old })
	dense := semAWSMachineHead + "metadata: {name: m}\nspec:\n  x: [" + strings.Repeat("1,", 2000) + "1]\n"
	p := writeFiles(t, map[string]string{"config.yaml": cliConfig, "in.yaml": dense})
	got := runCLI(t, "", p["config.yaml"], p["in.yaml"])
	if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, p["in.yaml"]+": input has more than 1000 YAML nodes") {
		t.Errorf("exit %d, stdout %d bytes, stderr:\n%s", got.code, len(got.stdout), got.stderr)
	}
	got = runCLI(t, semRL(t, dense))
	if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, "stdin: input has more than 1000 YAML nodes") {
		t.Errorf("ResourceList: exit %d, stdout %d bytes, stderr:\n%s", got.code, len(got.stdout), got.stderr)
	}
}
