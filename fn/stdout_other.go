//go:build !linux

package fn

// stdoutClosed cannot tell a closed stdout from /dev/null outside Linux.
func stdoutClosed() bool { return false }
