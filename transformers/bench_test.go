package transformers

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/capa-imds/capa-imds/internal/fleet"
	"github.com/capa-imds/capa-imds/internal/resourcelist"
)

// Benchmarks of the whole processor in-process, on synthetic fleets (internal/fleet):
//
//	go test -run '^$' -bench . -benchmem ./transformers/
//
// BenchmarkPipeline/n=N/fn is what the binary does per ResourceList (parse, LoadConfig,
// Process, marshal results, write); /noop is kyaml's parse and kio.ByteWriter doing
// nothing else, the floor; /noop-same-writer is the same parse and the function's own
// writer (internal/resourcelist), the floor of the function's own work. BenchmarkProcess
// is Process alone. Each reports ns/resource, which must stay flat as n grows (cost
// linear in the input). make bench times the built binaries end to end and writes
// BENCHMARKS.md.

var benchSizes = []int{fleet.TemplateSize, 100, 1000, 10000, 100000}

func BenchmarkPipeline(b *testing.B) {
	for _, n := range benchSizes {
		// Generated inside b.Run, so a -bench filter skips the sizes it does not select.
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			in := fleet.ResourceList(n)
			b.Run("fn", func(b *testing.B) { benchPipeline(b, n, in, pipelineFn) })
			b.Run("noop", func(b *testing.B) { benchPipeline(b, n, in, pipelineNoop) })
			b.Run("noop-same-writer", func(b *testing.B) { benchPipeline(b, n, in, pipelineNoopSameWriter) })
		})
	}
}

type pipelineKind int

const (
	pipelineFn pipelineKind = iota
	pipelineNoop
	pipelineNoopSameWriter
)

func benchPipeline(b *testing.B, n int, in []byte, kind pipelineKind) {
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := pipeline(in, &out, kind); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/resource")
}

// pipeline mirrors fn/cli.go's resourceListMode.
func pipeline(in []byte, w io.Writer, kind pipelineKind) error {
	data, err := io.ReadAll(bytes.NewReader(in))
	if err != nil {
		return err
	}
	rw := &kio.ByteReadWriter{Reader: bytes.NewReader(data), KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err != nil {
		return err
	}
	switch kind {
	case pipelineNoop:
		return (&kio.ByteWriter{Writer: w, KeepReaderAnnotations: true, FunctionConfig: rw.FunctionConfig,
			WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}).Write(items)
	case pipelineNoopSameWriter:
		return resourcelist.Write(w, items, rw.FunctionConfig, nil)
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
	if err := resourcelist.Write(&buf, out, rw.FunctionConfig, resultsNode); err != nil {
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
