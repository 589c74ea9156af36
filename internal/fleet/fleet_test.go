package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
)

func TestResourceListParses(t *testing.T) {
	for _, n := range []int{0, 1, 7, TemplateSize, 100, 1013} {
		b := ResourceList(n)
		rw := &kio.ByteReadWriter{Reader: bytes.NewReader(b)}
		items, err := rw.Read()
		if err != nil {
			t.Fatalf("n=%d: %v\n%s", n, err, b)
		}
		if len(items) != n {
			t.Fatalf("n=%d: parsed %d items", n, len(items))
		}
		if rw.WrappingKind != kio.ResourceListKind || rw.FunctionConfig == nil {
			t.Fatalf("n=%d: kind %q, functionConfig %v", n, rw.WrappingKind, rw.FunctionConfig)
		}
		if k := rw.FunctionConfig.GetKind(); k != "IMDSConfig" {
			t.Fatalf("n=%d: functionConfig kind %q", n, k)
		}
		if !bytes.Equal(b, ResourceList(n)) {
			t.Fatalf("n=%d: not deterministic", n)
		}
	}
}

func TestStreamParsesAndIsUnique(t *testing.T) {
	const n = 2*UnitSize + 5
	items, err := (&kio.ByteReader{Reader: bytes.NewReader(Stream(n)), OmitReaderAnnotations: true}).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != n {
		t.Fatalf("parsed %d items, want %d", len(items), n)
	}
	seen := map[string]bool{}
	kinds := map[string]int{}
	for _, it := range items {
		id := it.GetKind() + "/" + it.GetNamespace() + "/" + it.GetName()
		if seen[id] {
			t.Fatalf("duplicate resource %s", id)
		}
		seen[id] = true
		kinds[it.GetKind()]++
	}
	want := map[string]int{"Cluster": 2, "AWSManagedControlPlane": 2, "AWSManagedMachinePool": 2, "MachinePool": 4,
		"EKSConfig": 4, "AWSMachineTemplate": 2, "MachineDeployment": 2, "AWSMachinePool": 2}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("%s: %d, want %d (all: %v)", k, kinds[k], v, kinds)
		}
	}
	if s := string(Stream(UnitSize)); !strings.Contains(s, "${AWS_REGION}") || !strings.Contains(s, "# ") {
		t.Errorf("a unit should carry placeholders and comments")
	}
}

// Namespaces repeat every 1000 clusters: names must not, or kustomize refuses a fleet
// of 100,000 resources as holding duplicates.
func TestUnitsAcrossNamespaceWrapAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, u := range []int{0, 1000} {
		for _, doc := range unit(u) {
			items, err := kio.FromBytes([]byte(doc))
			if err != nil || len(items) != 1 {
				t.Fatalf("unit %d: %v", u, err)
			}
			id := items[0].GetKind() + "/" + items[0].GetNamespace() + "/" + items[0].GetName()
			if seen[id] {
				t.Fatalf("unit %d repeats %s", u, id)
			}
			seen[id] = true
		}
	}
}

func TestWriteKustomization(t *testing.T) {
	for _, k := range []Kustomization{Plain, Function, Patches} {
		dir := filepath.Join(t.TempDir(), "k")
		if err := WriteKustomization(dir, UnitSize, k, "/bin/capa-imds"); err != nil {
			t.Fatal(err)
		}
		kust, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kio.FromBytes(kust); err != nil {
			t.Fatalf("kustomization.yaml: %v", err)
		}
		if k == Function {
			fn, err := os.ReadFile(filepath.Join(dir, "imds.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := kio.FromBytes(fn)
			if err != nil || len(nodes) != 1 || !strings.Contains(nodes[0].GetAnnotations()["config.kubernetes.io/function"], "/bin/capa-imds") {
				t.Fatalf("imds.yaml: %v\n%s", err, fn)
			}
		}
	}
}
