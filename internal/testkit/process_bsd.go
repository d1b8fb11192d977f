//go:build unix && !linux

package testkit

import "syscall"

// sysProcAttr puts a child in its own process group. Without Linux's
// Pdeathsig, a child outlives a test process that is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
