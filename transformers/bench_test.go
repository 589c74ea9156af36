package transformers

import (
	"bytes"
	"fmt"
	"io"
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
