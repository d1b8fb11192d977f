package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Root returns the repository's root folder.
func Root() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		if root := filepath.Join(filepath.Dir(file), "..", ".."); isFile(filepath.Join(root, "go.mod")) {
			return filepath.Abs(root)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if isFile(filepath.Join(dir, "plugin.cfg")) {
			return dir, nil
		}
	}
	return "", errors.New("repository root not found")
}

var buildOnce sync.Mutex

// Binary returns the path of the repository's ./coredns, running `make
// coredns` first so that it is up to date; with HEADLESS_SKIP_BUILD set, an
// existing ./coredns is taken as it is. What the build says while it runs
// (what it builds, that it is still at it) goes to stderr.
func Binary() (string, error) {
	buildOnce.Lock()
	defer buildOnce.Unlock()
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "coredns")
	if os.Getenv("HEADLESS_SKIP_BUILD") != "" && isFile(bin) {
		return bin, nil
	}
	cmd := exec.Command("make", "-s", "coredns")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stderr, &out), &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make coredns: %v\n%s", err, out.Bytes())
	}
	return bin, nil
}

// Server is a running CoreDNS.
type Server struct {
	// Dir holds the Corefile and the log; Stop removes it.
	Dir  string
	proc *Process
}

// Start runs bin with corefile in a new folder and returns once each of
// addrs (host:port) answers DNS. When one does not within timeout, or the
// server exits, it stops the server and returns an error with the Corefile
// and the server's whole log.
func Start(ctx context.Context, bin, corefile string, timeout time.Duration, addrs ...string) (*Server, error) {
	return start(ctx, []string{bin}, corefile, timeout, addrs)
}

// StartPinned is Start with the server pinned to one CPU by taskset(1), so
// that a load generator on another CPU does not compete with it.
func StartPinned(ctx context.Context, cpu int, bin, corefile string, timeout time.Duration, addrs ...string) (*Server, error) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("taskset (util-linux) is needed to pin the server: %w", err)
	}
	return start(ctx, []string{taskset, "-c", fmt.Sprint(cpu), bin}, corefile, timeout, addrs)
}

func start(ctx context.Context, argv []string, corefile string, timeout time.Duration, addrs []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "coredns-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := StartProcess("coredns", filepath.Join(dir, "coredns.log"), dir, append(argv, "-conf", conf)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{Dir: dir, proc: p}
	if err := s.waitServing(ctx, timeout, addrs); err != nil {
		// Stopped first, the server has written all it will; the folder
		// goes only once the log is read.
		p.Stop()
		out := s.Output()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n--- Corefile:\n%s--- log of coredns:\n%s", err, corefile, out)
	}
	return s, nil
}

// waitServing returns once each of addrs answers a DNS query.
func (s *Server) waitServing(ctx context.Context, timeout time.Duration, addrs []string) error {
	deadline := time.Now().Add(timeout)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for _, addr := range addrs {
		for {
			m := new(dns.Msg).SetQuestion("ping.invalid.", dns.TypeA)
			if _, _, err := c.ExchangeContext(ctx, m, addr); err == nil {
				break
			}
			select {
			case <-s.proc.Done():
				_, err := s.proc.Exited()
				return fmt.Errorf("coredns exited: %v", err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("coredns does not answer on %s after %s", addr, timeout)
			}
		}
	}
	return nil
}

// PID is the process id of the server.
func (s *Server) PID() int { return s.proc.PID() }

// Done is closed once the process has exited.
func (s *Server) Done() <-chan struct{} { return s.proc.Done() }

// Exited reports whether the process has ended, and with which error.
func (s *Server) Exited() (bool, error) { return s.proc.Exited() }

// Stop ends the server (see Process.Stop) and removes its folder. It is safe
// to call more than once.
func (s *Server) Stop() {
	s.proc.Stop()
	os.RemoveAll(s.Dir)
}

// Output returns what the server logged so far.
func (s *Server) Output() string {
	b, _ := os.ReadFile(s.proc.Log())
	return string(b)
}

// Tail returns the last n lines the server logged.
func (s *Server) Tail(n int) string { return s.proc.Tail(n) }

// Lines returns the logged lines that contain substr.
func (s *Server) Lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(s.Output(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// Eventually is the package's Eventually that also fails as soon as the
// server exits, and shows the server's log when it fails.
func (s *Server) Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	eventually(t, timeout, what, func() (bool, string) {
		if exited, err := s.Exited(); exited {
			t.Fatalf("coredns exited (%v) while waiting for %s\n%s", err, what, s.Output())
		}
		return cond()
	}, func() string { return "\n" + s.Output() })
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
