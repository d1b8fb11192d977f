//go:build unix

package testkit

import "syscall"

// Supported returns nil where the kit can run and stop child processes: on
// Unix, each in a process group of its own.
func Supported() error { return nil }

// signalGroup sends SIGTERM, or SIGKILL if kill, to the process group of
// pid.
func signalGroup(pid int, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pid, sig)
}
