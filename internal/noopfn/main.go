// Command noopfn is the benchmark floor for capa-imds: a KRM function built with the
// same kyaml version that reads a ResourceList from stdin and writes it back to stdout
// doing nothing else. `make bench` compares capa-imds against it. Not shipped.
//
// By default it writes with kio.ByteWriter, as a kyaml function does. With
// -writer=resourcelist it writes with capa-imds's own writer (internal/resourcelist),
// the same bytes at a fraction of the memory: the floor of the function's own work.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/capa-imds/capa-imds/internal/resourcelist"
)

func main() {
	writer := flag.String("writer", "kyaml", "kyaml (kio.ByteWriter) or resourcelist (capa-imds's writer)")
	flag.Parse()
	if *writer != "kyaml" && *writer != "resourcelist" {
		fmt.Fprintf(os.Stderr, "noopfn: -writer %q: want kyaml or resourcelist\n", *writer)
		os.Exit(2)
	}
	// Buffered like any sensible function: yaml.v3's encoder flushes every 128 bytes, and
	// unbuffered writes would make the floor slower than it needs to be.
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	rw := &kio.ByteReadWriter{Reader: os.Stdin, Writer: out, KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err == nil {
		if *writer == "resourcelist" {
			err = resourcelist.Write(out, items, rw.FunctionConfig, nil)
		} else {
			err = rw.Write(items)
		}
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "noopfn:", err)
		os.Exit(1)
	}
}
