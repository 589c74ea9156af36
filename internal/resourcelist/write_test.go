package resourcelist

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/fleet"
)

// check writes the ResourceList in rl with kio.ByteWriter and with Write, each from
// its own parse (both writers edit what they write), and compares the bytes.
func check(t *testing.T, name string, rl []byte) bool {
	t.Helper()
	read := func() ([]*yaml.RNode, *kio.ByteReadWriter) {
		rw := &kio.ByteReadWriter{Reader: bytes.NewReader(rl), KeepReaderAnnotations: true}
		items, err := rw.Read()
		if err != nil {
			return nil, nil
		}
		return items, rw
	}
	items, rw := read()
	if rw == nil || rw.WrappingKind != kio.ResourceListKind {
		return false
	}
	for _, it := range items {
		if it.YNode().Kind != yaml.MappingNode {
			return false // the function refuses such items before writing anything
		}
	}
	var want bytes.Buffer
	if err := (kio.ByteWriter{Writer: &want, KeepReaderAnnotations: true, FunctionConfig: rw.FunctionConfig, Results: rw.Results,
		WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items); err != nil {
		return false // kyaml cannot write it either; the function reports that error itself
	}
	items, rw = read()
	var got bytes.Buffer
	if err := Write(&got, items, rw.FunctionConfig, rw.Results); err != nil {
		t.Fatalf("%s: kio.ByteWriter wrote it, Write failed: %v", name, err)
	}
	if d := cmp.Diff(want.String(), got.String()); d != "" {
		t.Errorf("%s: Write differs from kio.ByteWriter (-kyaml +Write):\n%s", name, d)
	}
	return true
}

// wrap makes a ResourceList of a plain stream, as an orchestrator sends it.
func wrap(t testing.TB, stream []byte) []byte {
	items, err := (&kio.ByteReader{Reader: bytes.NewReader(stream), PreserveSeqIndent: true}).Read()
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	if err := (kio.ByteWriter{Writer: &b, KeepReaderAnnotations: true,
		WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items); err != nil {
		return nil
	}
	return b.Bytes()
}

const commented = `apiVersion: config.kubernetes.io/v1
kind: ResourceList
# head comment of items
items:
# head comment of the first item
- apiVersion: v1 # line comment
  kind: ConfigMap
  metadata:
    name: a
    annotations: {}
  data:
    # head comment of a key
    k: v
    # foot comment in data

  # foot comment of the first item
# between items
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: b
  data:
    long: "` + "aaaaaaaaaa aaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaa" + `"
    block: |
      line one
        indented
    list:
        - wide
        - sequence
- {apiVersion: v1, kind: Flow, metadata: {name: c}, spec: [1, 2, {a: b}]}
- apiVersion: v1
  kind: Empty
  metadata: {}
# trailing comment of the list
functionConfig: # fc comment
  apiVersion: v1
  kind: ConfigMap
  data: {a: b}
results:
- message: hi
  severity: info
`

func TestWriteMatchesKyaml(t *testing.T) {
	if !check(t, "commented", []byte(commented)) {
		t.Fatal("the commented ResourceList did not parse")
	}
	check(t, "empty", []byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n"))
	check(t, "no items key", []byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig: {kind: X}\n"))
	check(t, "anchor shared across items", []byte("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"+
		"- {apiVersion: v1, kind: A, metadata: {name: a}, data: &d {k: v}}\n- {apiVersion: v1, kind: B, metadata: {name: b}, data: *d}\n"))
	for _, n := range []int{1, fleet.UnitSize, 3*fleet.UnitSize + 7} {
		check(t, "fleet", fleet.ResourceList(n))
	}
	// Every YAML file in the repository, wrapped as an orchestrator would.
	var files []string
	_ = filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 50 {
		t.Fatalf("found only %d YAML files", len(files))
	}
	compared := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("kind: ResourceList")) {
			b = wrap(t, b)
		}
		if b != nil && check(t, f, b) {
			compared++
		}
	}
	if compared < len(files)/2 {
		t.Errorf("compared the writers on only %d of %d YAML files", compared, len(files))
	}
	t.Logf("compared on %d of %d YAML files", compared, len(files))
}

func FuzzWrite(f *testing.F) {
	f.Add([]byte(commented))
	f.Fuzz(func(t *testing.T, rl []byte) {
		if len(rl) > 8<<10 {
			return
		}
		check(t, "fuzz input", rl)
	})
}

// BenchmarkWrite compares kio.ByteWriter with Write on fleets.
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rl := fleet.ResourceList(n)
			read := func() ([]*yaml.RNode, *yaml.RNode) {
				rw := &kio.ByteReadWriter{Reader: bytes.NewReader(rl), KeepReaderAnnotations: true}
				items, err := rw.Read()
				if err != nil {
					b.Fatal(err)
				}
				return items, rw.FunctionConfig
			}
			b.Run("kyaml", func(b *testing.B) {
				items, fc := read()
				b.ReportAllocs()
				for b.Loop() {
					if err := (kio.ByteWriter{Writer: io.Discard, KeepReaderAnnotations: true, FunctionConfig: fc,
						WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("resourcelist", func(b *testing.B) {
				items, fc := read()
				b.ReportAllocs()
				for b.Loop() {
					if err := Write(io.Discard, items, fc, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
