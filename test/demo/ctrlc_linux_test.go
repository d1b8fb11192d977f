package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"golang.org/x/sys/unix"
)

// TestMakeDemoCtrlC runs `make demo` on a terminal of its own, as a newcomer
// does, types Ctrl-C once it serves, and checks that make exits with status
// 0 and the demo says it stopped. The terminal sends SIGINT to its
// foreground process group: make, unless the demo has taken the terminal.
func TestMakeDemoCtrlC(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	root, err := testkit.Root()
	testkit.Require(t, err)
	ptm, pts, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()

	cmd := exec.Command("make", "demo")
	cmd.Dir = root
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// A session of its own with the terminal as its controlling terminal,
	// as a login shell has; make leads the foreground process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	screen := &screen{}
	go io.Copy(screen, ptm) // ends with EIO once make and the demo are gone
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.After(8 * time.Minute)
	for !strings.Contains(screen.String(), "Press Ctrl-C") {
		select {
		case err := <-exited:
			t.Fatalf("make demo ended before serving: %v\n%s", err, screen)
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("make demo does not serve after 8 minutes:\n%s", screen)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := ptm.Write([]byte{3}); err != nil { // Ctrl-C, VINTR
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("make demo runs on a minute after Ctrl-C:\n%s", screen)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Errorf("make demo after Ctrl-C: %v, want exit status 0:\n%s", err, screen)
	case err != nil:
		t.Fatal(err)
	}
	// The terminal's output can trail the exit.
	testkit.Eventually(t, 5*time.Second, "the demo's last line", func() (bool, string) {
		return strings.Contains(screen.String(), "\nStopped."), screen.String()
	})
	for _, bad := range []string{"Interrupt", "Error", "demo:"} {
		if strings.Contains(screen.String(), bad) {
			t.Errorf("make demo after Ctrl-C says %q:\n%s", bad, screen)
		}
	}
}

// openPTY opens a pseudo-terminal pair: the master side and the terminal.
func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}

// screen is what the terminal shows, written by one goroutine and read by
// another.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.ReplaceAll(s.buf.String(), "\r\n", "\n")
}
