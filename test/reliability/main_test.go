// Package reliability checks that the plugin, built into ./coredns, stays
// correct and alive when things go wrong: the API server goes away or is not
// there at start, its watch is cut, objects churn under query load, queries
// and objects are hostile, services are huge, and the plugin runs with the
// least privilege it needs.
//
// Every test runs the CoreDNS binary on loopback against a local control
// plane (etcd and kube-apiserver, RBAC on). The tests run in parallel: those
// that stop or cut off the API server, which mostly wait, have a control plane
// of their own; the others share one, use namespaces of their own, and take
// turns (see exclusive), so that the load of one does not starve another.
package reliability

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/headlessdns/headless/test/cluster"
	"github.com/headlessdns/headless/test/coredns"

	"github.com/miekg/dns"
)

// shared is the control plane and the CoreDNS binary every test uses.
var shared struct {
	cluster *cluster.Cluster
	bin     string
}

// heavy is held by the tests that load the machine: one at a time.
var heavy sync.Mutex

// exclusive makes the test wait for the other heavy tests of the package.
func exclusive(t testing.TB) {
	heavy.Lock()
	t.Cleanup(heavy.Unlock)
}

func TestMain(m *testing.M) {
	flag.Parse()
	// Every test is parallel, and those waiting on heavy hold a slot: allow
	// them all at once unless -parallel says otherwise. The heavy ones take
	// turns, the others mostly wait.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "16")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	bin, err := coredns.Binary()
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	c, err := cluster.Start(ctx, cluster.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	shared.cluster, shared.bin = c, bin
	code := m.Run()
	c.Stop()
	os.Exit(code)
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
	*coredns.Server
	addr  string // DNS, 127.0.0.1:port, UDP and TCP
	ready string // URL of the ready plugin's /ready, if any
	pprof string // base URL of the pprof plugin, if any
}

// serverOptions configures startServer.
type serverOptions struct {
	Kubeconfig     string // by default the admin kubeconfig
	StartupTimeout string // by default 10s
	Namespaces     string // the namespaces option, if set
	PodNames       bool   // endpoint_pod_names
	Ready, Pprof   bool   // add the ready and pprof plugins
	// Wait is how long Start waits for DNS to answer, by default 1 minute.
	Wait time.Duration

	Port, ReadyPort, PprofPort int
}

const corefileTemplate = `.:{{.Port}} {
    bind 127.0.0.1
{{- if .Ready}}
    ready 127.0.0.1:{{.ReadyPort}}
{{- end}}
{{- if .Pprof}}
    pprof 127.0.0.1:{{.PprofPort}}
{{- end}}
    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig {{.Kubeconfig}}
        startup_timeout {{.StartupTimeout}}
{{- if .Namespaces}}
        namespaces {{.Namespaces}}
{{- end}}
{{- if .PodNames}}
        endpoint_pod_names
{{- end}}
    }
}
`

// startServer starts CoreDNS with o and stops it when the test ends.
func startServer(t testing.TB, o serverOptions) *server {
	t.Helper()
	if o.Kubeconfig == "" {
		o.Kubeconfig = shared.cluster.Kubeconfig
	}
	if o.StartupTimeout == "" {
		o.StartupTimeout = "10s"
	}
	if o.Wait == 0 {
		o.Wait = time.Minute
	}
	for _, p := range []*int{&o.Port, &o.ReadyPort, &o.PprofPort} {
		port, err := coredns.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		*p = port
	}
	var cf strings.Builder
	if err := template.Must(template.New("corefile").Parse(corefileTemplate)).Execute(&cf, o); err != nil {
		t.Fatal(err)
	}
	s := &server{addr: fmt.Sprintf("127.0.0.1:%d", o.Port)}
	if o.Ready {
		s.ready = fmt.Sprintf("http://127.0.0.1:%d/ready", o.ReadyPort)
	}
	if o.Pprof {
		s.pprof = fmt.Sprintf("http://127.0.0.1:%d", o.PprofPort)
	}
	var err error
	if s.Server, err = coredns.Start(context.Background(), shared.bin, cf.String(), o.Wait, s.addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if exited, err := s.Exited(); exited {
			t.Errorf("coredns exited before the end of the test: %v", err)
		}
		if t.Failed() {
			t.Logf("coredns log:\n%s", tailLines(s.Output(), 200))
		}
		s.Stop()
	})
	return s
}

// alive fails the test if the server has exited.
func (s *server) alive(t testing.TB) {
	t.Helper()
	if exited, err := s.Exited(); exited {
		t.Fatalf("coredns exited: %v\n%s", err, tailLines(s.Output(), 60))
	}
}

// readyStatus returns the HTTP status of /ready, or 0 if it does not answer.
func (s *server) readyStatus() int {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(s.ready)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
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

// rssKB returns the resident set size of process pid in KiB.
func rssKB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// tcpConns returns the established TCP connections of process pid to
// 127.0.0.1:port, from its file descriptors and /proc/pid/net/tcp.
func tcpConns(t testing.TB, pid, port int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
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
	return n
}

// exchange sends m to addr over net and returns the reply, retrying twice
// on a network error (UDP under load can lose a datagram).
func exchange(net, addr string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	var err error
	for range 3 {
		var r *dns.Msg
		if r, _, err = c.Exchange(m, addr); err == nil {
			return r, nil
		}
	}
	return nil, err
}

// newQuery returns a query for name and qtype with EDNS0 and a 4096 byte
// buffer, as dig sends.
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	return m
}

// query asks addr over UDP and fails the test when no reply comes.
func query(t testing.TB, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := exchange("udp", addr, newQuery(name, qtype))
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// eventually polls cond every 100ms until it holds; it fails the test after
// timeout with the last state cond described. It returns how long it took.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answerKey is the rcode, answer and additional sections of m as one
// string, to compare answers.
func answerKey(m *dns.Msg) string {
	return dns.RcodeToString[m.Rcode] + "\n" + strings.Join(coredns.Records(m.Answer), "\n") + "\n--\n" + strings.Join(coredns.Records(m.Extra), "\n")
}

// wellFormed returns an error if m does not pack, or if one of its names is
// not a valid domain name of at most 255 bytes.
func wellFormed(m *dns.Msg) error {
	if _, err := m.Copy().Pack(); err != nil {
		return fmt.Errorf("does not pack: %w", err)
	}
	check := func(what, name string) error {
		if _, ok := dns.IsDomainName(name); !ok || len(name) > 255 || !dns.IsFqdn(name) {
			return fmt.Errorf("%s %q is not a valid domain name", what, name)
		}
		return nil
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			if err := check("owner", rr.Header().Name); err != nil {
				return err
			}
			switch rr := rr.(type) {
			case *dns.SRV:
				if err := check("SRV target", rr.Target); err != nil {
					return err
				}
			case *dns.PTR:
				if err := check("PTR", rr.Ptr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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

// apiPort is the port of the API server of c.
func apiPort(t testing.TB, c *cluster.Cluster) int {
	t.Helper()
	i := strings.LastIndexByte(c.Server, ':')
	port, err := strconv.Atoi(c.Server[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	return port
}
