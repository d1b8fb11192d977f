package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const relistNS = "relist"

// ep is one endpoint of a model: its hostname and address.
type ep struct {
	host, ip string
	notReady bool
}

// model is the API state of namespace relist: for each headless service, its
// EndpointSlices by name.
type model map[string]map[string][]ep

func (m model) clone() model {
	c := model{}
	for svc, ss := range m {
		c[svc] = map[string][]ep{}
		for name, eps := range ss {
			c[svc][name] = slices.Clone(eps)
		}
	}
	return c
}

// apply makes the API state of namespace relist that of next, from prev.
func (m model) apply(ctx context.Context, t testing.TB, c *cluster.Cluster, prev model) {
	t.Helper()
	for svc, ss := range prev {
		for name := range ss {
			if _, ok := m[svc][name]; !ok {
				err := c.Client.DiscoveryV1().EndpointSlices(relistNS).Delete(ctx, name, meta.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
		}
		if _, ok := m[svc]; !ok {
			if err := c.Client.CoreV1().Services(relistNS).Delete(ctx, svc, meta.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}
	var o testkit.Objects
	for svc, ss := range m {
		o.Services = append(o.Services, testkit.Headless(relistNS, svc))
		for name, eps := range ss {
			var es []discovery.Endpoint
			for _, e := range eps {
				d := testkit.Endpoint(e.ip, e.host)
				if e.notReady {
					d = testkit.Ready(d, false)
				}
				es = append(es, d)
			}
			o.Slices = append(o.Slices, testkit.Slice(relistNS, svc, name, discovery.AddressTypeIPv4,
				[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, es...))
		}
	}
	if err := testkit.Apply(ctx, c.Client, o); err != nil {
		t.Fatal(err)
	}
}

// names returns the questions the test asks: the name of every service and
// endpoint of the models, and the PTR of every address.
func names(t testing.TB, models ...model) []named {
	seen := map[named]bool{}
	var out []named
	add := func(n named) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, m := range models {
		for svc, ss := range m {
			base := svc + "." + relistNS + ".svc.cluster.local."
			add(named{base, dns.TypeA})
			add(named{base, dns.TypeSRV})
			for _, eps := range ss {
				for _, e := range eps {
					add(named{e.host + "." + base, dns.TypeA})
					add(named{reverse(t, e.ip), dns.TypePTR})
				}
			}
		}
	}
	return out
}

// answers returns the answers of addr to qs as text: for each, its rcode
// and its records.
func answers(t testing.TB, addr string, qs []named) string {
	var b strings.Builder
	for _, q := range qs {
		r := testkit.Query(t, "udp", addr, q.name, q.qtype)
		fmt.Fprintf(&b, "%s: %s %s\n", q, dns.RcodeToString[r.Rcode], strings.Join(testkit.Records(r.Answer), "; "))
	}
	return b.String()
}

// proxyKubeconfig writes an admin kubeconfig for c whose server is the
// proxy's address.
func proxyKubeconfig(t testing.TB, c *cluster.Cluster, p *proxy) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(path, "https://"+p.addr); err != nil {
		t.Fatal(err)
	}
	return path
}

// pluginRequests counts, in the audit log of c, the requests of the plugin
// since the given time that list (a list, or a watch that starts with the
// initial state) and those that resume a watch from a resource version.
func pluginRequests(t testing.TB, c *cluster.Cluster, since time.Time) (lists, resumes int) {
	t.Helper()
	events, err := c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if !strings.Contains(e.UserAgent, "headless") || e.Received.Before(since) {
			continue
		}
		switch {
		case e.Stage == "ResponseComplete" && e.Verb == "list":
			lists++
		case e.Stage == "ResponseStarted" && e.Verb == "watch" && strings.Contains(e.RequestURI, "sendInitialEvents=true"):
			lists++
		case e.Stage == "ResponseStarted" && e.Verb == "watch":
			resumes++
		}
	}
	return lists, resumes
}

// TestWatchCut cuts the plugin off the API server with a TCP proxy between
// them while services and slices are deleted, added and modified; once the
// proxy forwards again, DNS must answer the API state exactly, as the
// kubernetes plugin, never cut off, answers it: nothing deleted survives,
// nothing is duplicated, nothing is missing.
//
// client-go recovers in one of two ways, and the API server's audit log says
// which one each cut took (the test logs it):
//   - it lists again (a watch list, which starts with the whole state) and
//     replaces its store: the plugin learns of the deletions made meanwhile
//     from the difference between the old and the new state
//     (DeletedFinalStateUnknown), not from events;
//   - it resumes its watch from the last resource version it saw, and the
//     API server's watch cache replays the events made meanwhile.
//
// The cuts: reset (the proxy closes the connections, then accepts new ones
// only to close them: client-go lists again), refuse (the proxy stops
// listening: client-go resumes its watches), and restart (a reset during
// which the API server restarts: its new watch cache starts after the last
// resource version the plugin saw, so a watch cannot resume and the plugin
// must list again). The test checks that the reset and restart cuts did make
// the plugin list again.
//
// However often the plugin tries the API server meanwhile, the answers must
// not change while it is cut off; once back, a Service created then must be
// served, after each cut (issue 9: client-go's default delays reset only
// after 2 minutes, so that a later cut would start where the first left
// them; the plugin's reflectors have a backoff of their own, TestBackoff);
// and the process must not keep goroutines or connections from the cuts.
func TestWatchCut(t *testing.T) {
	t.Parallel()
	_, err := testkit.TCPConns(os.Getpid(), 1)
	testkit.Require(t, err)
	ctx := context.Background()
	c := ownCluster(t, cluster.Options{Audit: true})
	p := startProxy(t, strings.TrimPrefix(c.Server, "https://"))

	m0 := model{
		"keep":  {"keep-1": {{"k-0", "10.80.0.1", false}, {"k-1", "10.80.0.2", false}}},
		"gone":  {"gone-1": {{"g-0", "10.80.1.1", false}, {"g-1", "10.80.1.2", false}}},
		"split": {"split-1": {{"s-0", "10.80.2.1", false}, {"s-1", "10.80.2.2", false}}, "split-2": {{"s-2", "10.80.2.3", false}, {"s-3", "10.80.2.4", false}}},
		"mod":   {"mod-1": {{"m-0", "10.80.3.1", false}, {"m-1", "10.80.3.2", false}}},
	}
	// Cut 1: a service and its slice deleted, one of two slices deleted, a
	// slice modified, a service added.
	m1 := m0.clone()
	delete(m1, "gone")
	delete(m1["split"], "split-2")
	m1["mod"]["mod-1"] = []ep{{"m-0", "10.80.3.1", false}, {"m-2", "10.80.3.3", false}, {"m-3", "10.80.3.4", false}}
	m1["new"] = map[string][]ep{"new-1": {{"n-0", "10.80.4.1", false}}}
	// Cut 2: the deleted service back with other endpoints, the added one
	// deleted, the slice back, an endpoint not ready.
	m2 := m1.clone()
	m2["gone"] = map[string][]ep{"gone-1": {{"g-2", "10.80.1.3", false}}}
	delete(m2, "new")
	m2["split"]["split-2"] = []ep{{"s-3", "10.80.2.4", false}}
	m2["keep"]["keep-1"] = []ep{{"k-0", "10.80.0.1", false}, {"k-1", "10.80.0.2", true}}
	// Cut 3: as cut 1, with other endpoints.
	m3 := m2.clone()
	delete(m3, "gone")
	delete(m3["split"], "split-2")
	m3["mod"]["mod-1"] = []ep{{"m-4", "10.80.3.5", false}}
	m3["new"] = map[string][]ep{"new-1": {{"n-1", "10.80.4.2", false}}}
	m3["keep"]["keep-1"] = []ep{{"k-0", "10.80.0.1", false}, {"k-1", "10.80.0.2", false}}

	qs := names(t, m0, m1, m2, m3)
	m0.apply(ctx, t, c, model{})
	ports, err := testkit.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	oracle := testkit.Block{Port: ports[0], Kubernetes: true, Kubeconfig: c.Kubeconfig, StartupTimeout: "10s"}
	k, err := testkit.Start(ctx, shared.bin, oracle.String(), time.Minute, oracle.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	s := startServer(t, serverOptions{Kubeconfig: proxyKubeconfig(t, c, p), Metrics: true, Pprof: true})
	asKubernetes := func() (bool, string) {
		want, got := answers(t, oracle.Addr(), qs), answers(t, s.addr, qs)
		return got == want, fmt.Sprintf("\n--- kubernetes:\n%s--- headless:\n%s", want, got)
	}
	s.Eventually(t, liveness, "the first state in DNS", asKubernetes)
	goroutinesBefore := s.fewestGoroutines(t)

	steps := []struct {
		what     string
		mode     cutMode
		restart  bool
		from, to model
	}{
		{"reset", reset, false, m0, m1},
		{"refuse", refuse, false, m1, m2},
		{"restart", reset, true, m2, m3},
	}
	for _, st := range steps {
		before := answers(t, s.addr, qs)
		failed := s.failedRequests(t)
		p.cut(t, st.mode)
		st.to.apply(ctx, t, c, st.from)
		if st.restart {
			c.StopAPIServer()
			if err := c.StartAPIServer(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Cut off, the plugin still answers the state it had, however often
		// it tries to reach the API server.
		s.retried(t, failed, outageRetries, func() {
			if now := answers(t, s.addr, qs); now != before {
				t.Fatalf("cut (%s): the answers changed:\n--- before:\n%s--- now:\n%s", st.what, before, now)
			}
		})
		p.restore(t)
		back := time.Now()
		s.Eventually(t, liveness, "the changes made during the cut ("+st.what+")", asKubernetes)
		// The test is meant to exercise a relist: check it did, once the
		// audit log has it.
		var lists, resumes int
		s.Eventually(t, liveness, "the plugin's requests in the audit log", func() (bool, string) {
			lists, resumes = pluginRequests(t, c, back.Add(-time.Second))
			return st.mode != reset || lists >= 2, fmt.Sprintf("%d lists, %d resumed watches", lists, resumes)
		})
		t.Logf("cut (%s): %d failed requests to the API server; the API state served after %d lists and %d resumed watches",
			st.what, s.failedRequests(t)-failed, lists, resumes)
		fresh := testkit.Objects{
			Services: []*core.Service{testkit.Headless("relist-after", st.what)},
			Slices: []*discovery.EndpointSlice{testkit.Slice("relist-after", st.what, st.what+"-1", discovery.AddressTypeIPv4,
				[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, testkit.Endpoint("10.81.0.1", "fresh-0"))},
		}
		if err := testkit.Apply(ctx, c.Client, fresh); err != nil {
			t.Fatal(err)
		}
		s.Eventually(t, liveness, "a Service created after the cut ("+st.what+")", func() (bool, string) {
			r := testkit.Query(t, "udp", s.addr, st.what+".relist-after.svc.cluster.local.", dns.TypeA)
			return len(r.Answer) == 1, r.String()
		})
	}

	goroutinesAfter := s.fewestGoroutines(t)
	if goroutinesAfter > goroutinesBefore+20 {
		t.Errorf("goroutines grew from %d to %d over the cuts", goroutinesBefore, goroutinesAfter)
	}
	s.Eventually(t, liveness, "at most 2 connections to the API server", func() (bool, string) {
		n, err := testkit.TCPConns(s.PID(), portOf(t, p.addr))
		if err != nil {
			t.Fatal(err)
		}
		return n > 0 && n <= 2, fmt.Sprintf("%d connections", n)
	})
}
