package fn

import (
	"os"
	"strconv"
	"strings"
)

// stdoutClosed reports that the process started with stdout closed (`capa-imds ... >&-`):
// Go's runtime then opens /dev/null read-write in its place, so every write succeeds and
// the output is lost with exit 0. A shell's `> /dev/null` opens it write-only, which is a
// choice, not an accident, and passes.
func stdoutClosed() bool {
	target, err := os.Readlink("/proc/self/fd/1")
	if err != nil || target != os.DevNull {
		return false
	}
	info, err := os.ReadFile("/proc/self/fdinfo/1")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&0o3 == 0o2 // O_RDWR, as the runtime opens it
		}
	}
	return false
}
