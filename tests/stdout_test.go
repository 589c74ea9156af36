package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// With stdout closed, Go's runtime puts /dev/null in its place: the output would vanish
// with exit 0. The function fails instead; a chosen `> /dev/null` still passes.
func TestStdoutClosed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the check reads /proc: Linux only")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to close stdout with")
	}
	t.Parallel()
	root := integRoot(t)
	bin := integBinary(t)
	cfg := filepath.Join(root, "examples", "standalone", "imds.yaml")
	in := filepath.Join(root, "examples", "standalone", "cluster.yaml")
	for _, tc := range []struct {
		name, redirect string
		code           int
	}{
		{"closed", ">&-", 1},
		{"/dev/null by choice", "> /dev/null", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := integRun(t, root, os.Environ(), nil, sh, "-c", `exec "$0" "$1" "$2" `+tc.redirect, bin, cfg, in)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", res.code, tc.code, res.stderr)
			}
			if tc.code != 0 && !strings.Contains(string(res.stderr), "stdout is closed") {
				t.Errorf("stderr does not say why:\n%s", res.stderr)
			}
		})
	}
	// --output needs no stdout.
	out := filepath.Join(t.TempDir(), "out.yaml")
	if res := integRun(t, root, os.Environ(), nil, sh, "-c", `exec "$0" --output "$1" "$2" "$3" >&-`, bin, out, cfg, in); res.code != 0 {
		t.Errorf("--output with stdout closed: exit %d:\n%s", res.code, res.stderr)
	}
}
