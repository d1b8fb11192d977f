package testkit

import "syscall"

// sysProcAttr puts a child in its own process group and has the kernel kill
// it when the thread that started it, and so the test process, dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
