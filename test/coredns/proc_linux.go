package coredns

import "syscall"

// sysProcAttr makes the server die with the test and gives it its own
// process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
