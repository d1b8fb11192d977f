package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/test/coredns"

	"github.com/miekg/dns"
)

// kubectl runs the kubectl binary against one cluster.
type kubectl struct {
	bin, kubeconfig, cacheDir string
}

// run runs kubectl with args and stdin, and returns its standard output, or
// an error with both outputs. A run is bounded to a minute.
func (k *kubectl) run(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, k.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args[4:], " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// replaceOnce replaces old, which must occur exactly once in the Corefile cf,
// with new; it fails the test when the Corefile no longer has old.
func replaceOnce(t *testing.T, cf, old, new string) string {
	t.Helper()
	if n := strings.Count(cf, old); n != 1 {
		t.Fatalf("rewriting the Corefile: %q occurs %d times, want once, in\n%s", old, n, cf)
	}
	return strings.Replace(cf, old, new, 1)
}

// ttl returns the ttl option of the block of plugin in the Corefile cf, or
// "5", the default of both headless and kubernetes, when it has none.
func ttl(t *testing.T, cf, plugin string) string {
	t.Helper()
	var in, found bool
	value := "5"
	for _, line := range strings.Split(cf, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == plugin && f[len(f)-1] == "{":
			in, found = true, true
		case in && len(f) == 1 && f[0] == "}":
			in = false
		case in && len(f) == 2 && f[0] == "ttl":
			value = f[1]
		}
	}
	if !found {
		t.Fatalf("no %s block in the Corefile:\n%s", plugin, cf)
	}
	return value
}

// freePorts returns n different free ports of 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		p, err := coredns.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// query asks addr one question over network ("udp" or "tcp"), with EDNS0 and
// a 4096 byte buffer as dig does.
func query(network, addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], network, err)
	}
	return r, nil
}

// addresses returns the sorted addresses of the A records of r's answer.
func addresses(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// get returns the status code and body of an HTTP GET of url, or 0 and the
// error.
func get(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 100ms until it holds, and fails the test after
// timeout, or as soon as the server exits, with cond's last description and
// the server's log.
func eventually(t *testing.T, srv *coredns.Server, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if exited, err := srv.Exited(); exited {
			t.Fatalf("coredns exited (%v) while waiting for %s; last: %s\n%s", err, what, state, srv.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last: %s\n%s", timeout, what, state, srv.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
