// Package reliability checks that the plugin, built into ./coredns, stays
// correct and alive when things go wrong: the API server goes away or is not
// there at start, or its watch is cut; and that an operator on call sees it:
// TestOnCall runs Prometheus with the shipped alert rules and dashboard on
// the servers. (Objects that churn: TestRandomChanges, test/e2e; hostile
// queries and objects, huge services, the permissions the plugin needs: the
// root package's tests.)
//
// Every test runs the CoreDNS binary on loopback against a local control
// plane of its own (etcd and kube-apiserver, RBAC on), in parallel: they
// mostly wait.
package reliability

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
)

// shared is the CoreDNS binary every test uses.
var shared struct {
	bin string
}

// liveness bounds the waits for what must happen: a plugin retrying, a
// change reaching DNS. The tests assert that it happens, not how soon (make
// bench measures that); the bound only ends a test that would hang.
const liveness = 2 * time.Minute

func TestMain(m *testing.M) {
	flag.Parse()
	// Every test is parallel and mostly waits: allow them all at once
	// unless -parallel says otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "16")
	}
	if err := testkit.Supported(); err != nil {
		fmt.Println("reliability: skipped:", err)
		os.Exit(0)
	}
	bin, err := testkit.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	shared.bin = bin
	os.Exit(m.Run())
}

// ownCluster starts a control plane for the test alone, stopped when it
// ends.
func ownCluster(t testing.TB, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// server is a running CoreDNS with the headless plugin alone.
type server struct {
	*testkit.Server
	addr    string // DNS, 127.0.0.1:port, UDP and TCP
	ready   string // URL of the ready plugin's /ready, if any
	pprof   string // base URL of the pprof plugin, if any
	metrics string // URL of the prometheus plugin's /metrics, if any
}

// serverOptions configures startServer.
type serverOptions struct {
	Kubeconfig     string
	StartupTimeout string // by default 10s
	// Add the ready, pprof and prometheus plugins.
	Ready, Pprof, Metrics bool
	// Background returns at once, not once DNS answers.
	Background bool
}

// startServer starts CoreDNS with o and stops it when the test ends.
func startServer(t testing.TB, o serverOptions) *server {
	t.Helper()
	b := testkit.Block{Headless: true, Kubeconfig: o.Kubeconfig, StartupTimeout: o.StartupTimeout}
	if b.StartupTimeout == "" {
		b.StartupTimeout = "10s"
	}
	ports, err := testkit.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	b.Port = ports[0]
	s := &server{addr: b.Addr()}
	if o.Ready {
		b.Ready = ports[1]
		s.ready = "http://" + testkit.Addr(b.Ready) + "/ready"
	}
	if o.Pprof {
		b.Pprof = ports[2]
		s.pprof = "http://" + testkit.Addr(b.Pprof)
	}
	if o.Metrics {
		b.Metrics = ports[3]
		s.metrics = "http://" + testkit.Addr(b.Metrics) + "/metrics"
	}
	wait := []string{s.addr}
	if o.Background {
		wait = nil
	}
	if s.Server, err = testkit.Start(context.Background(), shared.bin, b.String(), time.Minute, wait...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if exited, err := s.Exited(); exited {
			t.Errorf("coredns exited before the end of the test: %v", err)
		}
		if t.Failed() {
			t.Logf("coredns log:\n%s", s.Tail(200))
		}
		s.Stop()
	})
	return s
}

// alive fails the test if the server has exited.
func (s *server) alive(t testing.TB) {
	t.Helper()
	if exited, err := s.Exited(); exited {
		t.Fatalf("coredns exited: %v\n%s", err, s.Tail(60))
	}
}

// readyStatus returns the HTTP status of /ready, or 0 if it does not answer.
func (s *server) readyStatus() int {
	code, _ := testkit.Get(s.ready)
	return code
}

// requests returns how many of the server's requests to the API server got
// a response of code (testkit.NoResponse: none); it had to start with
// serverOptions.Metrics.
func (s *server) requests(t testing.TB, code string) int {
	t.Helper()
	counts, err := testkit.APIRequests(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	return counts[code]
}

// failedRequests returns how many of the server's requests to the API
// server got no response.
func (s *server) failedRequests(t testing.TB) int { return s.requests(t, testkit.NoResponse) }

// retried returns once n more of the server's requests to the API server
// than from have got no response: the plugin has found the API server gone
// and tried again. It calls check at each turn, which fails the test.
func (s *server) retried(t testing.TB, from, n int, check func()) {
	t.Helper()
	s.Eventually(t, liveness, fmt.Sprintf("%d more requests to the API server without a response", n), func() (bool, string) {
		check()
		got := s.failedRequests(t)
		return got >= from+n, fmt.Sprintf("%d requests without a response, %d before", got, from)
	})
}

// fewestGoroutines returns the lowest of a few goroutine counts of the
// server: goroutines come and go with requests and retries.
func (s *server) fewestGoroutines(t testing.TB) int {
	t.Helper()
	n := s.goroutines(t)
	for range 9 {
		n = min(n, s.goroutines(t))
	}
	return n
}

// goroutines returns the number of goroutines of the server from the pprof
// plugin's goroutine profile.
func (s *server) goroutines(t testing.TB) int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(s.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("goroutine profile: %q: %v", line, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return n
}

// reverse returns the PTR query name of ip.
func reverse(t testing.TB, ip string) string {
	t.Helper()
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// portOf is the port of addr, host:port or a URL that ends with one.
func portOf(t testing.TB, addr string) int {
	t.Helper()
	port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// named is a name and a type to ask.
type named struct {
	name  string
	qtype uint16
}

func (n named) String() string { return n.name + " " + dns.TypeToString[n.qtype] }

const (
	// watches is how many the plugin has with the options of the tests:
	// Services, and EndpointSlices by two selectors.
	watches = 3
	// outageRetries is how many of the plugin's requests to the API server
	// must have failed before it comes back: three for each watch, so that
	// an outage lasts until the plugin has noticed it and retried, however
	// long that takes.
	outageRetries = 3 * watches
)
