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

// TestStartWithoutAPIServer starts CoreDNS while the API server is down: it
// must serve after startup_timeout, answer SERVFAIL (not NXDOMAIN) for the
// names it cannot know yet and not be ready; once the API server is up it
// must become ready and answer.
func TestStartWithoutAPIServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := ownCluster(t, cluster.Options{})
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	c.StopAPIServer()

	begin := time.Now()
	s := startServer(t, serverOptions{Kubeconfig: c.Kubeconfig, StartupTimeout: "2s", Ready: true, Wait: 30 * time.Second})
	serving := time.Since(begin)
	t.Logf("serving DNS %v after the start", serving.Round(time.Millisecond))
	if serving < 2*time.Second {
		t.Errorf("served DNS %v after the start, before startup_timeout 2s", serving)
	}
	if len(s.Lines("unsynced Kubernetes API")) == 0 {
		t.Errorf("no warning about the unsynced API in the log:\n%s", s.Output())
	}

	const consul = "consul-server.default.svc.cluster.local."
	unknown := []named{
		{consul, dns.TypeA}, {consul, dns.TypeSRV}, {"consul-server-0." + consul, dns.TypeA},
		{"_http._tcp." + consul, dns.TypeSRV}, {reverse(t, testkit.ConsulIPs[0]), dns.TypePTR},
		{"app.startup.svc.cluster.local.", dns.TypeA},
	}
	// For a few seconds: SERVFAIL for every name, and not ready.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		for _, n := range unknown {
			if r := testkit.Query(t, "udp", s.addr, n.name, n.qtype); r.Rcode != dns.RcodeServerFailure {
				t.Fatalf("%s without the API server: %s, want SERVFAIL", n, dns.RcodeToString[r.Rcode])
			}
		}
		if code := s.readyStatus(); code == http.StatusOK {
			t.Fatal("/ready is 200 without the API server")
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.alive(t)

	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	o := testkit.Objects{
		Services: []*core.Service{testkit.Headless("startup", "app")},
		Slices: []*discovery.EndpointSlice{testkit.Slice("startup", "app", "app-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)},
			testkit.Endpoint("10.70.0.1", "app-0"), testkit.Endpoint("10.70.0.2", "app-1"))},
	}
	if err := testkit.Apply(ctx, c.Client, o); err != nil {
		t.Fatal(err)
	}
	// The reflectors retry a failed list after a delay that doubles from
	// 0.8s (see recoverWithin): a few seconds here.
	testkit.Eventually(t, time.Minute, "/ready 200", func() (bool, string) {
		code := s.readyStatus()
		return code == http.StatusOK, fmt.Sprintf("status %d", code)
	})
	t.Logf("ready %v after the API server was back", time.Since(back).Round(time.Millisecond))
	testkit.Eventually(t, 30*time.Second, "the objects in DNS", func() (bool, string) {
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
	t.Logf("answers correct %v after the API server was back", time.Since(back).Round(time.Millisecond))
	if r := testkit.Query(t, "udp", s.addr, "nothing.startup.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("an unknown name once synced: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}
