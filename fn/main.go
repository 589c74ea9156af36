// Package fn is the capa-imds command: the KRM function protocol, the standalone CLI and
// the policy subcommand, over the logic in package transformers. cmd/capa-imds is its
// main.
package fn

import "io"

// version is what --version prints; Main sets it from the binary's stamp.
var version = "dev"

// Main runs the command and returns the process's exit code.
func Main(v string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	version = v
	checkStdout = stdoutClosed
	return run(args, stdin, stdout, stderr)
}
