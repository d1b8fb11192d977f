package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// StopGrace is how long a process has to exit after SIGTERM before Stop
// kills it.
const StopGrace = 10 * time.Second

// Process is a child process (CoreDNS, etcd, kube-apiserver) in a process
// group of its own, with its output in a log file. On Linux the kernel kills
// it when the test process dies.
type Process struct {
	name string
	log  string // path of the file stdout and stderr go to
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the exit status, set before done is closed
	stop sync.Once
}

// StartProcess starts argv in dir (the current folder if empty), appending
// its output to the file log. name is what errors call it.
func StartProcess(name, log, dir string, argv ...string) (*Process, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log is the path of the log file.
func (p *Process) Log() string { return p.log }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended, and with which error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after StopGrace,
// waits for the process to exit and kills what it left in its group. It is
// a no-op on a nil or stopped process.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	p.stop.Do(func() {
		if exited, _ := p.Exited(); !exited {
			signalGroup(p.PID(), false)
			select {
			case <-p.done:
			case <-time.After(StopGrace):
				signalGroup(p.PID(), true)
				<-p.done
			}
		}
		// Reap anything the process left behind in its group.
		signalGroup(p.PID(), true)
	})
}

// Failed wraps err with the name of the process, the path of its log and
// the log's last n lines.
func (p *Process) Failed(err error, n int) error {
	return fmt.Errorf("%s: %w\nlast lines of %s:\n%s", p.name, err, p.log, p.Tail(n))
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	const most = 64 << 10
	f, err := os.Open(p.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		_, _ = f.Seek(-most, io.SeekEnd)
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

// Require skips t when err says that this platform lacks what the test needs
// (it wraps errors.ErrUnsupported), and fails it on any other error.
func Require(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, errors.ErrUnsupported):
		t.Skip(err)
	default:
		t.Fatal(err)
	}
}
