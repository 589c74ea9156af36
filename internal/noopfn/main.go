// Command noopfn is the benchmark floor for capa-imds: a KRM function built with the
// same kyaml version that reads a ResourceList from stdin and writes it back to stdout
// doing nothing else. `make bench` compares capa-imds against it. Not shipped.
package main

import (
	"bufio"
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/kyaml/kio"
)

func main() {
	// Buffered like any sensible function: yaml.v3's encoder flushes every 128 bytes, and
	// unbuffered writes would make the floor slower than it needs to be.
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	rw := &kio.ByteReadWriter{Reader: os.Stdin, Writer: out, KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err == nil {
		err = rw.Write(items)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "noopfn:", err)
		os.Exit(1)
	}
}
