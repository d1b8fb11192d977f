package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RSS returns the resident set size of process pid in KiB, from /proc.
func RSS(pid int) (int, error) { return statusKB(pid, "VmRSS:") }

// PeakRSS returns the peak resident set size of process pid in KiB (VmHWM),
// since it started or since it was reset through /proc/pid/clear_refs.
func PeakRSS(pid int) (int, error) { return statusKB(pid, "VmHWM:") }

// statusKB returns the field of /proc/pid/status, in KiB.
func statusKB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// TCPConns returns the established TCP connections of process pid to port
// (of any address), from its file descriptors and /proc/pid/net/tcp{,6}.
func TCPConns(pid, port int) (int, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	remote := fmt.Sprintf(":%04X", port)
	n := 0
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if len(f) < 10 || !strings.HasSuffix(f[2], remote) || f[3] != "01" {
				continue
			}
			if inodes[f[9]] {
				n++
			}
		}
	}
	return n, nil
}

// clockTicks is the unit of the CPU times of /proc/PID/stat, USER_HZ, which
// is 100 on every Linux architecture that Go runs on.
const clockTicks = 100

// CPUTime returns the CPU time process pid has used, user and system
// (utime + stime), from /proc/pid/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command, the second field, is in parentheses and may hold
	// spaces: the fields are counted after its closing one.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state, the third field; utime and stime are the 14th
	// and 15th.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
