// Command capa-imds is a KRM function that requires IMDSv2 on every EC2 instance
// Cluster API Provider AWS manifests create. See `capa-imds --help`; the function lives in
// package fn. This path's last element names the binary `go install` builds.
package main

import (
	"os"

	"github.com/capa-imds/capa-imds/fn"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(fn.Main(version, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
