//go:build !linux

package testkit

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// errNoProc says that what a test measures of a process is read from Linux's
// /proc.
var errNoProc = fmt.Errorf("the memory and connections of a process are read from /proc, which %s lacks: %w", runtime.GOOS, errors.ErrUnsupported)

// RSS returns the resident set size of process pid in KiB: on Linux only.
func RSS(pid int) (int, error) { return 0, errNoProc }

// PeakRSS returns the peak resident set size of process pid in KiB: on
// Linux only.
func PeakRSS(pid int) (int, error) { return 0, errNoProc }

// TCPConns returns the established TCP connections of process pid to port:
// on Linux only.
func TCPConns(pid, port int) (int, error) { return 0, errNoProc }

// CPUTime returns the CPU time process pid has used: on Linux only.
func CPUTime(pid int) (time.Duration, error) { return 0, errNoProc }
