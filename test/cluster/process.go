package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a process has to exit after SIGTERM before it is
// killed.
const stopGrace = 10 * time.Second

// process is a running child: etcd or kube-apiserver.
type process struct {
	name string
	log  string // path of the file stdout and stderr go to
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the exit status, set before done is closed
}

// startProcess starts bin with args in its own process group, appending its
// output to the file log. The child is killed if the test process dies.
func startProcess(name, bin, log string, args []string) (*process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy

	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error if the process is no longer running.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after stopGrace, and
// waits for the process to exit. It is a no-op on a stopped process.
func (p *process) stop() {
	if p == nil || p.exited() != nil {
		return
	}
	pgid := -p.cmd.Process.Pid
	syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Reap anything the process left behind in its group.
	syscall.Kill(pgid, syscall.SIGKILL)
}

// failed wraps err with the tail of the process's log.
func (p *process) failed(err error) error {
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, p.log, tail(p.log, 30))
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	const max = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(-max, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errAddrInUse is returned when a process could not bind a port that was
// free when it was picked.
var errAddrInUse = errors.New("address already in use")

// bindFailed reports whether the log of p says it could not bind a port.
func (p *process) bindFailed() bool {
	return strings.Contains(tail(p.log, 30), "address already in use")
}
