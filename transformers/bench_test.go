package transformers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/fleet"
)

// Benchmarks of the whole processor in-process, on synthetic fleets (internal/fleet):
//
//	go test -run '^$' -bench . -benchmem ./transformers/
//
// BenchmarkPipeline/n=N/fn is what the binary does per ResourceList (parse, LoadConfig,
// Process, marshal results, write); /noop is the same parse and write doing nothing, the
// floor. BenchmarkProcess is Process alone, the function's own marginal cost. Each
// reports ns/resource, which must stay flat as n grows (cost linear in the input).
// make bench times the built binaries end to end and writes BENCHMARKS.md.

var benchSizes = []int{fleet.TemplateSize, 100, 1000, 10000, 100000}

func BenchmarkPipeline(b *testing.B) {
	for _, n := range benchSizes {
		// Generated inside b.Run, so a -bench filter skips the sizes it does not select.
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			in := fleet.ResourceList(n)
			b.Run("fn", func(b *testing.B) { benchPipeline(b, n, in, true) })
			b.Run("noop", func(b *testing.B) { benchPipeline(b, n, in, false) })
		})
	}
}

func benchPipeline(b *testing.B, n int, in []byte, process bool) {
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := pipeline(in, &out, process); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/resource")
}

// pipeline mirrors fn/cli.go's resourceListMode.
func pipeline(in []byte, w io.Writer, process bool) error {
	data, err := io.ReadAll(bytes.NewReader(in))
	if err != nil {
		return err
	}
	rw := &kio.ByteReadWriter{Reader: bytes.NewReader(data), KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err != nil {
		return err
	}
	if !process {
		return (&kio.ByteWriter{Writer: w, KeepReaderAnnotations: true, FunctionConfig: rw.FunctionConfig,
			WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items)
	}
	cfg, err := LoadConfig(rw.FunctionConfig)
	if err != nil {
		return err
	}
	out, results := Process(cfg, items)
	if results.ExitCode() != 0 {
		return fmt.Errorf("error results: %v", results)
	}
	var resultsNode *yaml.RNode
	if len(results) > 0 {
		rb, err := yaml.Marshal(results)
		if err != nil {
			return err
		}
		if resultsNode, err = yaml.Parse(string(rb)); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := (&kio.ByteWriter{Writer: &buf, KeepReaderAnnotations: true, FunctionConfig: rw.FunctionConfig, Results: resultsNode,
		WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(out); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func BenchmarkProcess(b *testing.B) {
	cfg := DefaultConfig()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			in := fleet.Stream(n)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				items, err := (&kio.ByteReader{Reader: bytes.NewReader(in), OmitReaderAnnotations: true}).Read()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, results := Process(cfg, items); results.ExitCode() != 0 {
					b.Fatalf("error results: %v", results)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/resource")
		})
	}
}

// writePerItem is a sketch for fn/cli.go, not used by the function: it writes the same
// bytes as kio.ByteWriter with a ResourceList wrapping (TestPerItemWriterMatchesKyaml),
// but encodes each item with its own encoder. kio.ByteWriter deep-copies every node and
// encodes the whole ResourceList as one YAML document, and yaml.v3's emitter keeps every
// event of a document in one slice (about 270 bytes per event, never trimmed), so the
// write phase costs memory proportional to the whole output; per item it is bounded by
// the largest item. BenchmarkWrite measures the difference.
func writePerItem(w io.Writer, items []*yaml.RNode, fnConfig, results *yaml.RNode) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("apiVersion: " + kio.ResourceListAPIVersion + "\nkind: " + kio.ResourceListKind + "\n")
	if len(items) == 0 {
		bw.WriteString("items: []\n")
	} else {
		bw.WriteString("items:\n")
	}
	encode := func(n *yaml.Node) error {
		enc := yaml.NewEncoder(bw)
		if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}); err != nil {
			return err
		}
		return enc.Close()
	}
	for _, it := range items {
		// What ByteWriter does to its copies with KeepReaderAnnotations; here in place.
		if err := yaml.ClearEmptyAnnotations(it); err != nil {
			return err
		}
		if err := encode(&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{it.YNode()}}); err != nil {
			return err
		}
	}
	rest := &yaml.Node{Kind: yaml.MappingNode}
	if fnConfig != nil {
		rest.Content = append(rest.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "functionConfig"}, fnConfig.YNode())
	}
	if results != nil {
		rest.Content = append(rest.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "results"}, results.YNode())
	}
	if len(rest.Content) > 0 {
		if err := encode(rest); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func processedFleet(t testing.TB, n int) ([]*yaml.RNode, *yaml.RNode, *yaml.RNode) {
	rw := &kio.ByteReadWriter{Reader: bytes.NewReader(fleet.ResourceList(n)), KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(rw.FunctionConfig)
	if err != nil {
		t.Fatal(err)
	}
	out, results := Process(cfg, items)
	rb, err := yaml.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	resultsNode, err := yaml.Parse(string(rb))
	if err != nil {
		t.Fatal(err)
	}
	return out, rw.FunctionConfig, resultsNode
}

func TestPerItemWriterMatchesKyaml(t *testing.T) {
	for _, n := range []int{0, 1, fleet.UnitSize, 3*fleet.UnitSize + 7} {
		items, fc, results := processedFleet(t, n)
		if n == 0 {
			results = nil
		}
		var want, got bytes.Buffer
		if err := (kio.ByteWriter{Writer: &want, KeepReaderAnnotations: true, FunctionConfig: fc, Results: results,
			WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items); err != nil {
			t.Fatal(err)
		}
		if err := writePerItem(&got, items, fc, results); err != nil {
			t.Fatal(err)
		}
		if want.String() != got.String() {
			w, g := strings.Split(want.String(), "\n"), strings.Split(got.String(), "\n")
			for i := 0; i < len(w) && i < len(g); i++ {
				if w[i] != g[i] {
					t.Fatalf("n=%d: line %d differs:\nkyaml:    %q\nper-item: %q", n, i+1, w[i], g[i])
				}
			}
			t.Fatalf("n=%d: %d lines from kyaml, %d per item", n, len(w), len(g))
		}
	}
}

// BenchmarkWrite compares kio.ByteWriter (what the function and the no-op use) with
// writePerItem on the function's output for a fleet.
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			items, fc, results := processedFleet(b, n)
			b.Run("kyaml", func(b *testing.B) {
				b.ReportAllocs()
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := (kio.ByteWriter{Writer: &buf, KeepReaderAnnotations: true, FunctionConfig: fc, Results: results,
						WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("per-item", func(b *testing.B) {
				b.ReportAllocs()
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := writePerItem(&buf, items, fc, results); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
