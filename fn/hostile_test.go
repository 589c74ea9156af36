package fn

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/fleet"
)

// Hostile inputs: each must end in a clear error (exit code and a message naming the
// problem, nothing but an item-less ResourceList or nothing on stdout) or a clean pass
// (exit 0, the non-target resources exactly as they came in). Cases that need tens of
// megabytes are skipped with -short and under -race.

type hostileMode int

const (
	rlMode    hostileMode = 1 << iota // stdin is a ResourceList
	saMode                            // capa-imds CONFIG - (standalone, stdin is a stream)
	bothModes = rlMode | saMode
)

type hostileCase struct {
	name  string
	modes hostileMode
	// stream is the input as a plain YAML stream; for rlMode it is wrapped into a
	// ResourceList with fleet.FunctionConfig. raw, when set, is stdin as is (one mode).
	stream func() string
	raw    func() []byte
	big    bool // skipped with -short

	code       int
	stderr     []string // substrings of stderr
	passThru   bool     // exit 0 and output items equal to the input items
	stdoutHas  []string // substrings of stdout (exit 0 cases)
	stdoutNot  []string // must not appear in stdout
	maxAllocMB uint64   // bound on bytes allocated by the run, when set
	maxStderr  int      // bound on the length of stderr, when set
}

func hostileCases() []hostileCase {
	return []hostileCase{
		// --- Empty and non-YAML input ---
		{name: "empty/rl", modes: rlMode, raw: func() []byte { return nil },
			code: exitError, stderr: []string{"not a ResourceList"}},
		// Empty output for empty input would pass a failed render for success.
		{name: "empty/standalone", modes: saMode, stream: func() string { return "" },
			code: exitError, stderr: []string{"the input holds no resources", "--output FILE"}},
		{name: "only-separator/rl", modes: rlMode, raw: func() []byte { return []byte("---\n") },
			code: exitError, stderr: []string{"not a ResourceList"}},
		{name: "only-separators/standalone", modes: saMode, stream: func() string { return "---\n---\n---\n" },
			code: exitError, stderr: []string{"the input holds no resources"}},
		{name: "binary-bytes/rl", modes: rlMode, raw: func() []byte { return []byte("\x00\x01\x02\xff\xfe{[:\x7f\n\t- ]}") },
			code: exitError, stderr: []string{"capa-imds: error:"}},
		{name: "binary-bytes/standalone", modes: saMode, stream: func() string { return "\x00\x01\x02\xff\xfe{[:\x7f\n\t- ]}" },
			code: exitError, stderr: []string{"stdin"}},
		{name: "unclosed-flow/rl", modes: rlMode, raw: func() []byte {
			return []byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [{kind: AWSMachine\n")
		}, code: exitError, stderr: []string{"reading the ResourceList"}},
		{name: "scalar-document/rl", modes: rlMode, raw: func() []byte { return []byte("just a string\n") },
			code: exitError, stderr: []string{"reading the ResourceList", "expected MappingNode"}},
		{name: "list-document/standalone", modes: saMode, stream: func() string { return "- a\n- b\n" },
			code: exitError, stderr: []string{"capa-imds: error:"}},
		// Found by FuzzWrite: kyaml hands on the key and value of an items mapping as two
		// items, and its own writer panics on them.
		{name: "items-is-a-mapping/rl", modes: rlMode, raw: func() []byte {
			return []byte("kind: ResourceList\nfunctionConfig: {apiVersion: fn.capa-imds.dev/v1alpha1, kind: IMDSConfig}\nitems:\n 0:\n -")
		}, code: exitError, stderr: []string{"items: item 0 is not a resource", "found the integer 0"}},
		{name: "scalar-item/rl", modes: rlMode, raw: func() []byte {
			return []byte("kind: ResourceList\nfunctionConfig: {apiVersion: fn.capa-imds.dev/v1alpha1, kind: IMDSConfig}\nitems: [a, {kind: X}]\n")
		}, code: exitError, stderr: []string{"items: item 0 is not a resource"}},
		{name: "resourcelist-as-a-file/standalone", modes: saMode, stream: func() string {
			return string(hostileResourceList(machineDoc))
		}, code: exitError, stderr: []string{"stdin: holds a ResourceList", "no arguments"}},

		// --- Size ---
		{name: "50MB-scalar/rl", modes: rlMode, big: true, raw: func() []byte { return bytes.Repeat([]byte("a"), 50<<20) },
			code: exitError, stderr: []string{"reading the ResourceList", "expected MappingNode"}, maxStderr: 4096},
		{name: "50MB-value-in-ConfigMap", modes: bothModes, big: true, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + strings.Repeat("a", 50<<20) + "\n"
		}, passThru: true},
		{name: "deep-nesting-10000-flow", modes: bothModes, stream: func() string {
			return "apiVersion: example.com/v1\nkind: Deep\nmetadata:\n  name: deep\nspec: " +
				strings.Repeat("{a: ", 10000) + "1" + strings.Repeat("}", 10000) + "\n"
		}, passThru: true},
		{name: "deep-nesting-9000-flow-in-target", modes: rlMode, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: deep\nspec:\n  deep: " +
				strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "\n"
		}, code: exitOK, stdoutHas: []string{"httpTokens: required"}},
		{name: "deep-nesting-10000-block", modes: rlMode, big: true, stream: func() string {
			var b strings.Builder
			b.WriteString("apiVersion: example.com/v1\nkind: Deep\nmetadata:\n  name: deep\nspec:\n")
			for i := 1; i <= 10000; i++ {
				b.WriteString(strings.Repeat(" ", i))
				b.WriteString("a:\n")
			}
			return b.String()
		}, code: exitError, stderr: []string{"exceeded max depth"}},

		// --- Anchors and aliases ---
		{name: "small-alias-in-target-is-de-anchored", modes: bothModes, stream: func() string {
			return `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata:
  name: t
spec:
  template:
    spec:
      instanceType: t3.large
      additionalTags: &tags
        team: a
      rootVolume:
        size: 20
  extra: *tags
`
		}, code: exitOK, stdoutHas: []string{"httpTokens: required", "extra:\n"}, stdoutNot: []string{"*tags", "&tags"}},
		{name: "alias-as-instanceMetadataOptions", modes: rlMode, stream: func() string {
			return `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: shared
  annotations: &opts
    note: x
spec:
  instanceMetadataOptions: *opts
`
		}, code: exitOK, stdoutHas: []string{"httpTokens: required"}, stdoutNot: []string{"*opts"}},
		{name: "billion-laughs-in-target", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplate\nmetadata:\n  name: lol\nspec:\n  template:\n    spec:\n      instanceType: t3.large\n" +
				indentLines(billionLaughs(), "  ")
		}, code: exitError, stderr: []string{"aliases would expand to more than"}, maxAllocMB: 64},
		{name: "billion-laughs-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: example.com/v1\nkind: Lol\nmetadata:\n  name: lol\n" + billionLaughs()
		}, passThru: true, maxAllocMB: 64},
		{name: "alias-to-anchor-in-other-document", modes: saMode, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: &d {k: v}\n---\n" +
				"apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\nspec: *d\n"
		}, code: exitError, stderr: []string{"unknown anchor"}},

		// --- Duplicate keys ---
		{name: "duplicate-spec-key-in-target", modes: bothModes, stream: func() string {
			return `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: dup
spec:
  instanceType: t3.large
spec:
  instanceType: t3.small
`
		}, code: exitError, stderr: []string{"AWSMachine dup spec: duplicate key"}},
		{name: "duplicate-key-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata:\n  a: \"1\"\n  a: \"2\"\n"
		}, passThru: true},
		// Which resource a document is must not depend on the reader: the function would
		// pass a ConfigMap that a last-key-wins reader applies as an AWSMachine.
		{name: "duplicate-kind-configmap-then-awsmachine", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: ConfigMap\nkind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceType: t3.large\n"
		}, code: exitError, stderr: []string{"ConfigMap m kind: duplicate key kind"}},
		{name: "duplicate-apiVersion-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: v1\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceType: t3.large\n"
		}, code: exitError, stderr: []string{"AWSMachine m apiVersion: duplicate key apiVersion"}},
		{name: "duplicate-metadata-name-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\ndata:\n  k: v\n"
		}, code: exitError, stderr: []string{"ConfigMap a metadata.name: duplicate key metadata.name"}},
		{name: "duplicate-metadata-namespace-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: x\n  namespace: y\n"
		}, code: exitError, stderr: []string{"metadata.namespace: duplicate key metadata.namespace"}},
		{name: "duplicate-metadata-in-other-resource", modes: bothModes, stream: func() string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nmetadata:\n  name: b\n"
		}, code: exitError, stderr: []string{"duplicate key metadata"}},
		{name: "duplicate-httpTokens-key", modes: rlMode, stream: func() string {
			return `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: dup
spec:
  instanceMetadataOptions:
    httpTokens: required
    httpTokens: optional
`
		}, code: exitError, stderr: []string{"AWSMachine dup spec.instanceMetadataOptions.httpTokens: duplicate key"}},

		// --- Wrong shapes in target kinds ---
		{name: "spec-is-a-list", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\nspec:\n- a\n- b\n"
		}, code: exitError, stderr: []string{"AWSMachine m", "spec", "must be a mapping, found a list"}},
		{name: "spec-is-a-scalar", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachineTemplate\nmetadata:\n  name: t\nspec: hello\n"
		}, code: exitError, stderr: []string{"AWSMachineTemplate t", "spec", "must be a mapping"}},
		{name: "managed-pool-spec-is-a-list", modes: rlMode, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSManagedMachinePool\nmetadata:\n  name: p\nspec: [1]\n"
		}, code: exitError, stderr: []string{"AWSManagedMachinePool p", "must be a mapping"}},
		{name: "instanceMetadataOptions-null", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions: null\n"
		}, code: exitOK, stdoutHas: []string{"httpTokens: required", "httpPutResponseHopLimit: 2"}},
		{name: "instanceMetadataOptions-list", modes: rlMode, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: m\nspec:\n  instanceMetadataOptions: [httpTokens]\n"
		}, code: exitError, stderr: []string{"spec.instanceMetadataOptions", "must be a mapping"}},
		{name: "awsLaunchTemplate-scalar-AWSMachinePool", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachinePool\nmetadata:\n  name: p\nspec:\n  awsLaunchTemplate: \"x\"\n"
		}, code: exitError, stderr: []string{"AWSMachinePool p", "spec.awsLaunchTemplate", "must be a mapping"}},
		{name: "awsLaunchTemplate-scalar-AWSManagedMachinePool", modes: bothModes, stream: func() string {
			return managedCluster("c1", "c1-control-plane", "team-a", "c1") + "---\n" + machinePool("c1-pool-0", "team-a", "c1", "c1-pool-0") +
				"---\napiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSManagedMachinePool\nmetadata:\n  name: c1-pool-0\n  namespace: team-a\nspec:\n  amiType: AL2_x86_64\n  awsLaunchTemplate: \"x\"\n"
		}, code: exitError, stderr: []string{"AWSManagedMachinePool team-a/c1-pool-0", "spec.awsLaunchTemplate", "must be a mapping"}},

		// --- Managed pools and references ---
		{name: "machinepool-refs-missing-pool", modes: bothModes, stream: func() string {
			return managedCluster("c1", "c1-control-plane", "team-a", "c1") + "---\n" + machinePool("c1-pool-0", "team-a", "c1", "not-in-input")
		}, passThru: true},
		{name: "two-machinepools-share-a-pool", modes: bothModes, stream: func() string {
			return managedCluster("c1", "c1-control-plane", "team-a", "c1") + "---\n" +
				machinePool("c1-pool-a", "team-a", "c1", "c1-pool-0") + "---\n" + machinePool("c1-pool-b", "team-a", "c1", "c1-pool-0") + "---\n" +
				managedPool("c1-pool-0", "team-a")
		}, code: exitError, stderr: []string{"AWSManagedMachinePool team-a/c1-pool-0", "referenced by 2 MachinePools", "c1-pool-a", "c1-pool-b"}},
		{name: "shell-metacharacters-in-control-plane-name", modes: bothModes, stream: func() string {
			return managedCluster("c1", "cp;reboot", "team-a", "c1") + "---\n" + machinePool("c1-pool-0", "team-a", "c1", "c1-pool-0") + "---\n" +
				managedPool("c1-pool-0", "team-a")
		}, code: exitError, stderr: []string{"contains ';'"}},
		{name: "shell-metacharacters-in-cluster-name", modes: bothModes, stream: func() string {
			c := "c1$(reboot)"
			return managedCluster(c, "c1-control-plane", "team-a", c) + "---\n" + machinePool("c1-pool-0", "team-a", c, "c1-pool-0") + "---\n" +
				managedPool("c1-pool-0", "team-a")
		}, code: exitError, stderr: []string{"MachinePool team-a/c1-pool-0 spec.clusterName", `"c1$(reboot)" is not usable in a Secret name`},
			stdoutNot: []string{"name: c1$(reboot)-eks-bootstrap"}},
		{name: "unicode-names-plain-kinds", modes: bothModes, stream: func() string {
			return "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSMachine\nmetadata:\n  name: nœud-α\n  namespace: équipe\nspec:\n  instanceType: t3.large\n" +
				"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 设置\ndata:\n  greeting: \"こんにちは 🌍\"\n"
		}, code: exitOK, stdoutHas: []string{"nœud-α", "こんにちは", "httpTokens: required"}},
		{name: "unicode-cluster-name-managed-pool", modes: bothModes, stream: func() string {
			return managedCluster("clüster", "clüster-cp", "team-a", "clüster") + "---\n" + machinePool("p0", "team-a", "clüster", "p0") + "---\n" +
				managedPool("p0", "team-a")
		}, code: exitError, stderr: []string{"clüster"}},

		// --- Encodings ---
		{name: "crlf-line-endings/rl", modes: rlMode, raw: func() []byte {
			return []byte(strings.ReplaceAll(string(hostileResourceList(machineDoc)), "\n", "\r\n"))
		}, code: exitOK, stdoutHas: []string{"httpTokens: required"}, stdoutNot: []string{"\r"}},
		{name: "crlf-line-endings/standalone", modes: saMode, stream: func() string {
			return strings.ReplaceAll(machineDoc+"---\n"+machineDoc2, "\n", "\r\n")
		}, code: exitOK, stdoutHas: []string{"name: m\n", "name: m2\n", "httpTokens: required"}, stdoutNot: []string{"\r"}},
		{name: "utf8-bom/rl", modes: rlMode, raw: func() []byte {
			return append([]byte("\uFEFF"), hostileResourceList(machineDoc)...)
		}, code: exitOK, stdoutHas: []string{"httpTokens: required"}},
		{name: "utf8-bom/standalone", modes: saMode, stream: func() string { return "\uFEFF" + machineDoc },
			code: exitOK, stdoutHas: []string{"httpTokens: required"}},
	}
}

const machineDoc = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: m
spec:
  instanceType: t3.large # comment
`

const machineDoc2 = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: m2
spec: {}
`

// billionLaughs is nine levels of nine aliases: 9^9 leaves if anyone expands it.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("lol:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [", i, i)
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func indentLines(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

func managedCluster(cluster, controlPlane, ns, _ string) string {
	return fmt.Sprintf(`apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: %[1]q
  namespace: %[3]s
spec:
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: %[2]q
  infrastructureRef:
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    kind: AWSManagedControlPlane
    name: %[2]q
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
metadata:
  name: %[2]q
  namespace: %[3]s
spec:
  region: eu-west-1
  version: v1.31.0
`, cluster, controlPlane, ns)
}

func machinePool(name, ns, cluster, pool string) string {
	return fmt.Sprintf(`apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  clusterName: %[3]q
  replicas: 2
  template:
    spec:
      clusterName: %[3]q
      bootstrap:
        dataSecretName: ""
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSManagedMachinePool
        name: %[4]s
      version: v1.31.0
`, name, ns, cluster, pool)
}

func managedPool(name, ns string) string {
	return fmt.Sprintf(`apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata:
  name: %s
  namespace: %s
spec:
  amiType: AL2_x86_64
  instanceType: t3.large
`, name, ns)
}

// hostileResourceList wraps a YAML stream into a ResourceList with the fleet's config.
func hostileResourceList(stream string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n")
	b.WriteString(indentLines(fleet.FunctionConfig, "  "))
	docs := splitStream(stream)
	if len(docs) == 0 {
		b.WriteString("items: []\n")
		return []byte(b.String())
	}
	b.WriteString("items:\n")
	for _, d := range docs {
		lines := strings.SplitAfter(d, "\n")
		for i, l := range lines {
			switch {
			case l == "":
			case i == 0:
				b.WriteString("- " + l)
			default:
				b.WriteString("  " + l)
			}
		}
		if !strings.HasSuffix(d, "\n") {
			b.WriteString("\n")
		}
	}
	return []byte(b.String())
}

func splitStream(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---\n") {
		d = strings.TrimPrefix(d, "\n")
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// runWithTimeout calls run and fails the test if it does not return in time.
func runWithTimeout(t testing.TB, d time.Duration, args []string, stdin []byte) (code int, stdout, stderr string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		c := run(args, bytes.NewReader(stdin), &out, &errOut)
		done <- result{c, out.String(), errOut.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(d):
		t.Fatalf("capa-imds did not return within %v (input of %d bytes)", d, len(stdin))
		return 0, "", ""
	}
}

func TestHostileInputs(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "imds.yaml")
	if err := os.WriteFile(cfgPath, []byte(fleet.FunctionConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range hostileCases() {
		for _, mode := range []hostileMode{rlMode, saMode} {
			if tc.modes&mode == 0 {
				continue
			}
			name := tc.name
			if tc.modes == bothModes {
				name += map[hostileMode]string{rlMode: "/rl", saMode: "/standalone"}[mode]
			}
			t.Run(name, func(t *testing.T) {
				if tc.big && (testing.Short() || raceEnabled()) {
					t.Skip("big input; skipped with -short and under the race detector (minutes there)")
				}
				var stdin []byte
				var args []string
				switch {
				case tc.raw != nil:
					stdin = tc.raw()
				case mode == rlMode:
					stdin = hostileResourceList(tc.stream())
				default:
					stdin = []byte(tc.stream())
				}
				if mode == saMode {
					args = []string{cfgPath, "-"}
				}
				var before runtime.MemStats
				if tc.maxAllocMB > 0 {
					runtime.GC()
					runtime.ReadMemStats(&before)
				}
				code, stdout, stderr := runWithTimeout(t, 2*time.Minute, args, stdin)
				if tc.maxAllocMB > 0 {
					var after runtime.MemStats
					runtime.ReadMemStats(&after)
					if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > tc.maxAllocMB {
						t.Errorf("allocated %d MiB, want at most %d MiB", mb, tc.maxAllocMB)
					}
				}
				t.Logf("exit %d; stderr:\n%s", code, truncate(stderr, 2000))
				checkHostile(t, tc, mode, code, stdin, stdout, stderr)
			})
		}
	}
}

func checkHostile(t testing.TB, tc hostileCase, mode hostileMode, code int, stdin []byte, stdout, stderr string) {
	t.Helper()
	want := tc.code
	if tc.passThru {
		want = exitOK
	}
	if code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s", code, want, truncate(stdout, 2000))
	}
	checkProtocol(t, mode, code, stdout, stderr)
	for _, s := range tc.stderr {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}
	for _, s := range tc.stdoutHas {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, truncate(stdout, 4000))
		}
	}
	for _, s := range tc.stdoutNot {
		if strings.Contains(stdout, s) {
			t.Errorf("stdout has %q:\n%s", s, truncate(stdout, 4000))
		}
	}
	if tc.maxStderr > 0 && len(stderr) > tc.maxStderr {
		t.Errorf("stderr is %d bytes, want at most %d", len(stderr), tc.maxStderr)
	}
	if tc.passThru {
		checkPassThrough(t, mode, stdin, stdout)
	}
}

// checkProtocol asserts the output contract: an error leaves nothing on stdout but an
// item-less ResourceList (ResourceList mode) or nothing (standalone), and says why on
// stderr; success leaves a well-formed ResourceList or stream.
func checkProtocol(t testing.TB, mode hostileMode, code int, stdout, stderr string) {
	t.Helper()
	if code != exitOK {
		if strings.TrimSpace(stderr) == "" {
			t.Errorf("exit %d with nothing on stderr", code)
		}
		if mode == saMode || stdout == "" {
			if stdout != "" {
				t.Errorf("exit %d with output on stdout:\n%s", code, truncate(stdout, 2000))
			}
			return
		}
		rw := &kio.ByteReadWriter{Reader: strings.NewReader(stdout)}
		items, err := rw.Read()
		if err != nil || rw.WrappingKind != kio.ResourceListKind || len(items) != 0 {
			t.Errorf("exit %d: stdout must be empty or a ResourceList with no items; got %d items, kind %q, err %v",
				code, len(items), rw.WrappingKind, err)
		}
		return
	}
	if mode == rlMode {
		rw := &kio.ByteReadWriter{Reader: strings.NewReader(stdout)}
		if _, err := rw.Read(); err != nil || rw.WrappingKind != kio.ResourceListKind {
			t.Errorf("exit 0 but stdout is not a ResourceList (kind %q, err %v):\n%s", rw.WrappingKind, err, truncate(stdout, 2000))
		}
		return
	}
	if _, err := (&kio.ByteReader{Reader: strings.NewReader(stdout), OmitReaderAnnotations: true}).Read(); err != nil {
		t.Errorf("exit 0 but stdout is not a YAML stream: %v", err)
	}
}

// checkPassThrough compares the items that went in with the items that came out, both
// rendered by kyaml, so formatting the function does not own is compared exactly.
func checkPassThrough(t testing.TB, mode hostileMode, stdin []byte, stdout string) {
	t.Helper()
	var in, out []*yaml.RNode
	var err error
	if mode == rlMode {
		if in, err = (&kio.ByteReadWriter{Reader: bytes.NewReader(stdin)}).Read(); err != nil {
			t.Fatalf("reading the input: %v", err)
		}
		if out, err = (&kio.ByteReadWriter{Reader: strings.NewReader(stdout)}).Read(); err != nil {
			t.Fatalf("reading the output: %v", err)
		}
	} else {
		if in, err = (&kio.ByteReader{Reader: bytes.NewReader(stdin), OmitReaderAnnotations: true}).Read(); err != nil {
			t.Fatalf("reading the input: %v", err)
		}
		if out, err = (&kio.ByteReader{Reader: strings.NewReader(stdout), OmitReaderAnnotations: true}).Read(); err != nil {
			t.Fatalf("reading the output: %v", err)
		}
	}
	if len(in) != len(out) {
		t.Fatalf("%d items in, %d out", len(in), len(out))
	}
	for i := range in {
		a, b := in[i].MustString(), out[i].MustString()
		if a != b {
			t.Errorf("item %d changed:\n--- in\n%s\n--- out\n%s", i, truncate(a, 2000), truncate(b, 2000))
		}
	}
}

// TestInputLimit exercises maxInputBytes through its test hook, in both modes: input one
// byte over the limit is refused with a message naming the limit; input at the limit is read.
func TestInputLimit(t *testing.T) {
	saved := maxInputBytes
	t.Cleanup(func() { maxInputBytes = saved })

	rl := hostileResourceList(machineDoc)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "imds.yaml")
	if err := os.WriteFile(cfgPath, []byte(fleet.FunctionConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	inPath := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(inPath, []byte(machineDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgLen := int64(len(fleet.FunctionConfig))
	for _, tc := range []struct {
		name  string
		limit int64
		args  []string
		stdin []byte
		code  int
	}{
		{"rl/over", int64(len(rl)) - 1, nil, rl, exitError},
		{"rl/at", int64(len(rl)), nil, rl, exitOK},
		{"standalone-stdin/over", cfgLen + int64(len(machineDoc)) - 1, []string{cfgPath, "-"}, []byte(machineDoc), exitError},
		{"standalone-stdin/at", cfgLen + int64(len(machineDoc)), []string{cfgPath, "-"}, []byte(machineDoc), exitOK},
		{"standalone-file/over", cfgLen + int64(len(machineDoc)) - 1, []string{cfgPath, inPath}, nil, exitError},
		{"standalone-config/over", cfgLen - 1, []string{cfgPath, inPath}, nil, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxInputBytes = tc.limit
			code, stdout, stderr := runWithTimeout(t, time.Minute, tc.args, tc.stdin)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if code != exitOK {
				if stdout != "" {
					t.Errorf("stdout not empty:\n%s", stdout)
				}
				if !strings.Contains(stderr, "larger than capa-imds's limit") {
					t.Errorf("stderr does not name the limit:\n%s", stderr)
				}
			}
		})
	}
}

// raceEnabled reports whether the test binary was built with -race, where the big cases
// take minutes instead of seconds.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes more)", len(s)-n)
}
