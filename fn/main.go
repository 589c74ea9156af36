// Command capa-imds is a KRM function that requires IMDSv2 on every EC2 instance
// Cluster API Provider AWS manifests create. See `capa-imds --help`.
package main

import "os"

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	checkStdout = stdoutClosed
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
