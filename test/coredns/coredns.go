// Package coredns runs the CoreDNS binary built by this repository's Makefile
// for end-to-end tests: on loopback, with a Corefile of the test's.
package coredns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
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
// coredns` first so that it is up to date.
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
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make coredns: %v\n%s", err, out)
	}
	return bin, nil
}

// FreePort returns a port that is free on 127.0.0.1 for both UDP and TCP.
func FreePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// Server is a running CoreDNS.
type Server struct {
	// Dir holds the Corefile and the log.
	Dir string
	cmd *exec.Cmd
	log string

	mu     sync.Mutex
	exited chan struct{}
	err    error
}

// Start runs bin with corefile in a new folder and returns once each of
// addrs (host:port) answers DNS, or with the log when it does not within
// timeout.
func Start(ctx context.Context, bin, corefile string, timeout time.Duration, addrs ...string) (*Server, error) {
	return start(ctx, []string{bin}, corefile, timeout, addrs)
}

func start(ctx context.Context, argv []string, corefile string, timeout time.Duration, addrs []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "coredns-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, log: filepath.Join(dir, "coredns.log"), exited: make(chan struct{})}
	if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(argv[0], append(argv[1:], "-conf", filepath.Join(dir, "Corefile"))...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		err := s.cmd.Wait()
		logFile.Close()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.exited)
	}()
	if err := s.waitServing(ctx, timeout, addrs); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, s.Output())
	}
	return s, nil
}

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
			case <-s.exited:
				return errors.New("coredns exited")
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
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output returns what the server logged so far.
func (s *Server) Output() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// Exited reports whether the process has ended, and with which error.
func (s *Server) Exited() (bool, error) {
	select {
	case <-s.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return true, s.err
	default:
		return false, nil
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 10s) and removes its
// folder. It is safe to call more than once.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	os.RemoveAll(s.Dir)
}

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

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
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

// Records returns rrs as zone file lines, sorted, without the OPT
// pseudo-record: a form in which two answers compare.
func Records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}
