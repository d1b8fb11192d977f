package reliability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// TestStartWithoutAPIServer starts CoreDNS while the API server is down.
// With a startup_timeout that does not run out, it must not serve at all
// until it has synced: the first answer it gives has the objects. With one
// that runs out, it must serve once it has said so in the log, answer
// SERVFAIL (not NXDOMAIN) for the names it cannot know yet and not be ready,
// and stay so while it keeps trying the API server; once the API server is
// up, both must become ready and answer.
func TestStartWithoutAPIServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := ownCluster(t, cluster.Options{})
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	c.StopAPIServer()

	const consul = "consul-server.default.svc.cluster.local."
	waiting := startServer(t, serverOptions{Kubeconfig: c.Kubeconfig, StartupTimeout: "1h", Ready: true, Metrics: true, Background: true})
	first := firstAnswer(t, waiting.addr, consul, dns.TypeA)

	s := startServer(t, serverOptions{Kubeconfig: c.Kubeconfig, StartupTimeout: "2s", Ready: true, Metrics: true})
	// It serves only once startup_timeout has run out, which it logs first.
	if len(s.Lines("unsynced Kubernetes API")) == 0 {
		t.Errorf("serving DNS without the warning about the unsynced API in the log:\n%s", s.Output())
	}
	unknown := []named{
		{consul, dns.TypeA}, {consul, dns.TypeSRV}, {"consul-server-0." + consul, dns.TypeA},
		{"_http._tcp." + consul, dns.TypeSRV}, {reverse(t, testkit.ConsulIPs[0]), dns.TypePTR},
		{"app.startup.svc.cluster.local.", dns.TypeA},
	}
	unsynced := func() {
		t.Helper()
		for _, n := range unknown {
			if r := testkit.Query(t, "udp", s.addr, n.name, n.qtype); r.Rcode != dns.RcodeServerFailure {
				t.Fatalf("%s without the API server: %s, want SERVFAIL", n, dns.RcodeToString[r.Rcode])
			}
		}
		if code := s.readyStatus(); code == http.StatusOK {
			t.Fatal("/ready is 200 without the API server")
		}
		if code := waiting.readyStatus(); code == http.StatusOK {
			t.Fatal("/ready is 200 without the API server, startup_timeout 1h")
		}
		select {
		case r := <-first:
			t.Fatalf("startup_timeout 1h: served DNS without the API server:\n%v", r)
		default:
		}
	}
	unsynced()
	// So it stays while both try the API server again and again.
	s.retried(t, s.failedRequests(t), outageRetries, unsynced)
	waiting.retried(t, waiting.failedRequests(t), outageRetries, unsynced)
	s.alive(t)
	waiting.alive(t)

	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	o := testkit.Objects{
		Services: []*core.Service{testkit.Headless("startup", "app")},
		Slices: []*discovery.EndpointSlice{testkit.Slice("startup", "app", "app-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)},
			testkit.Endpoint("10.70.0.1", "app-0"), testkit.Endpoint("10.70.0.2", "app-1"))},
	}
	if err := testkit.Apply(ctx, c.Client, o); err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*server{s, waiting} {
		srv.Eventually(t, liveness, "/ready 200", func() (bool, string) {
			code := srv.readyStatus()
			return code == http.StatusOK, fmt.Sprintf("status %d", code)
		})
	}
	select {
	case r := <-first:
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != len(testkit.ConsulIPs) {
			t.Errorf("startup_timeout 1h: the first answer it gave is not the synced one:\n%v", r)
		}
	case <-time.After(liveness):
		t.Fatalf("startup_timeout 1h: no answer once synced\n%s", waiting.Tail(60))
	}
	s.Eventually(t, liveness, "the objects in DNS", func() (bool, string) {
		for _, c := range []struct {
			n    named
			want int
		}{
			{unknown[0], 3}, {unknown[1], 15}, {unknown[2], 1}, {unknown[3], 3}, {unknown[4], 1}, {unknown[5], 2},
		} {
			r := testkit.Query(t, "udp", s.addr, c.n.name, c.n.qtype)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != c.want {
				return false, fmt.Sprintf("%s: want %d answers, got %s", c.n, c.want, r)
			}
		}
		return true, ""
	})
	if r := testkit.Query(t, "udp", s.addr, "nothing.startup.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("an unknown name once synced: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

// firstAnswer asks addr for name until a reply comes, and sends the first
// on the channel it returns; it gives up when the test ends. A server that
// does not listen yet refuses or drops the query: that is no reply.
func firstAnswer(t testing.TB, addr, name string, qtype uint16) <-chan *dns.Msg {
	ch := make(chan *dns.Msg, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		for ctx.Err() == nil {
			if r, _, err := c.ExchangeContext(ctx, testkit.NewQuery(name, qtype), addr); err == nil {
				ch <- r
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return ch
}
