//go:build !unix

package testkit

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// Supported says why the kit cannot run child processes here: it stops a
// server and whatever it started by signalling its process group, which
// only Unix has.
func Supported() error {
	return fmt.Errorf("the end-to-end tests run etcd, kube-apiserver and CoreDNS in process groups of their own, which %s lacks; run them on Linux (or another Unix): %w",
		runtime.GOOS, errors.ErrUnsupported)
}

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, bool) {}
