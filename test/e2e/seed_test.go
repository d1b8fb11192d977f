package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func checkRecords(t *testing.T, what string, got []dns.RR, want []string) {
	t.Helper()
	slices.Sort(want)
	if g := testkit.Records(got); !slices.Equal(g, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestSeed is the seed document's scenario: `dig consul-server` and `dig
// consul-server srv` from a pod in the default namespace.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	if err := testkit.Apply(ctx, shared.cluster.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	const name = "consul-server.default.svc.cluster.local."
	var wantA, wantSRV, wantGlue []string
	for i, ip := range testkit.ConsulIPs {
		target := fmt.Sprintf("consul-server-%d.consul-server.default.svc.cluster.local.", i)
		wantA = append(wantA, name+"\t30\tIN\tA\t"+ip)
		wantGlue = append(wantGlue, target+"\t30\tIN\tA\t"+ip)
		for _, port := range []int{8301, 8600, 8300, 8500, 8302} {
			wantSRV = append(wantSRV, fmt.Sprintf("%s\t30\tIN\tSRV\t0 4 %d %s", name, port, target))
		}
	}
	for _, addr := range []string{shared.headless, shared.both} {
		testkit.Eventually(t, 10*time.Second, "the seed objects in DNS at "+addr, func() (bool, string) {
			r := testkit.Query(t, "udp", addr, name, dns.TypeA)
			return len(r.Answer) == 3, r.String()
		})
		for _, net := range []string{"udp", "tcp"} {
			a := testkit.Query(t, net, addr, name, dns.TypeA)
			checkRecords(t, "A over "+net+" at "+addr, a.Answer, wantA)
			if a.Rcode != dns.RcodeSuccess || !a.Authoritative {
				t.Errorf("A over %s: rcode %s aa %v", net, dns.RcodeToString[a.Rcode], a.Authoritative)
			}
			srv := testkit.Query(t, net, addr, name, dns.TypeSRV)
			checkRecords(t, "SRV over "+net+" at "+addr, srv.Answer, wantSRV)
			checkRecords(t, "SRV glue over "+net+" at "+addr, srv.Extra, wantGlue)
			pod := testkit.Query(t, net, addr, "consul-server-1."+name, dns.TypeA)
			checkRecords(t, "pod A over "+net, pod.Answer, []string{"consul-server-1." + name + "\t30\tIN\tA\t10.244.2.11"})
		}
	}
}

// TestChanges checks that scaling, readiness and deletion reach DNS.
func TestChanges(t *testing.T) {
	ctx := context.Background()
	const ns = "changes"
	client := shared.cluster.Client
	ports := []discovery.EndpointPort{testkit.Port("web", 80, "TCP")}
	pods := func(n int, readyFirst bool) testkit.Objects {
		var eps []discovery.Endpoint
		for i := range n {
			e := testkit.Endpoint(fmt.Sprintf("10.50.0.%d", i+1), fmt.Sprintf("web-%d", i))
			if i == 0 {
				e = testkit.Ready(e, readyFirst)
			}
			eps = append(eps, e)
		}
		return testkit.Objects{Slices: []*discovery.EndpointSlice{testkit.HeadlessSlice(ns, "web", "web-abc", discovery.AddressTypeIPv4, ports, eps...)}}
	}
	const name = "web.changes.svc.cluster.local."
	answers := func(addr string, want int) func() (bool, string) {
		return func() (bool, string) {
			r := testkit.Query(t, "udp", addr, name, dns.TypeA)
			if want == 0 {
				return r.Rcode == dns.RcodeNameError, r.String()
			}
			return r.Rcode == dns.RcodeSuccess && len(r.Answer) == want, r.String()
		}
	}
	steps := []struct {
		what  string
		apply func() error
		want  int
	}{
		{"create with 2 pods", func() error {
			o := pods(2, true)
			o.Services = append(o.Services, testkit.Headless(ns, "web"))
			return testkit.Apply(ctx, client, o)
		}, 2},
		{"scale up to 5", func() error { return testkit.Apply(ctx, client, pods(5, true)) }, 5},
		{"scale down to 1", func() error { return testkit.Apply(ctx, client, pods(1, true)) }, 1},
		{"the last pod not ready", func() error { return testkit.Apply(ctx, client, pods(1, false)) }, 0},
		{"ready again, 3 pods", func() error { return testkit.Apply(ctx, client, pods(3, true)) }, 3},
		{"delete the service", func() error { return client.CoreV1().Services(ns).Delete(ctx, "web", meta.DeleteOptions{}) }, 0},
	}
	for _, s := range steps {
		if err := s.apply(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		for _, addr := range []string{shared.headless, shared.both, shared.kubernetes} {
			testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s: %d answers at %s", s.what, s.want, addr), answers(addr, s.want))
		}
	}
}
