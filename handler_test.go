package headless

import (
	"context"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"net"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

const soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"

// TestServeDNSFallthrough checks that with fallthrough the names the
// plugin does not know reach the next plugin. (TestSameAsKubernetes shows
// the answers without it, the seed's among them.)
func TestServeDNSFallthrough(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local {\n fallthrough\n}", consul()...)
	runCases(t, h, []test.Case{
		// Known names are answered, everything else reaches the next plugin,
		// which here answers NXDOMAIN without a SOA.
		{Qname: "consul-server-0.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("consul-server-0.consul-server.default.svc.cluster.local. 5 IN A 10.244.1.10"),
		}},
		{Qname: "consul-server-9.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError},
		{Qname: "cluster.local.", Qtype: dns.TypeSOA, Rcode: dns.RcodeNameError},
		{Qname: "kubernetes.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError},
		{Qname: "example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError},
	})
}

// TestServeDNSNameServers checks the name servers of the zones alone, which
// the in-process kubernetes plugin of reference_test.go has no addresses
// for: ns.dns.ZONE with the addresses the server is bound to.
func TestServeDNSNameServers(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa", consul()...)
	h.localIPs = []net.IP{net.ParseIP("192.0.2.53").To4(), net.ParseIP("2001:db8::53")}
	runCases(t, h, []test.Case{
		{Qname: "cluster.local.", Qtype: dns.TypeNS, Answer: []dns.RR{
			test.NS("cluster.local. 5 IN NS ns.dns.cluster.local."),
		}, Extra: []dns.RR{
			test.A("ns.dns.cluster.local. 5 IN A 192.0.2.53"),
			test.AAAA("ns.dns.cluster.local. 5 IN AAAA 2001:db8::53"),
		}},
		{Qname: "in-addr.arpa.", Qtype: dns.TypeNS, Answer: []dns.RR{
			test.NS("in-addr.arpa. 5 IN NS ns.dns.in-addr.arpa."),
		}, Extra: []dns.RR{
			test.A("ns.dns.in-addr.arpa. 5 IN A 192.0.2.53"),
			test.AAAA("ns.dns.in-addr.arpa. 5 IN AAAA 2001:db8::53"),
		}},
		{Qname: "ns.dns.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("ns.dns.cluster.local. 5 IN A 192.0.2.53")}},
		{Qname: "ns.dns.in-addr.arpa.", Qtype: dns.TypeAAAA, Answer: []dns.RR{test.AAAA("ns.dns.in-addr.arpa. 5 IN AAAA 2001:db8::53")}},
		{Qname: "ns.dns.cluster.local.", Qtype: dns.TypeSRV, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "ns.dns.cluster.local.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
	})
}

func TestServeDNSUpdates(t *testing.T) {
	h, client := newTestHeadless(t, "headless cluster.local", consul()...)
	ctx := context.Background()
	answers := func() int {
		w := dnstest.NewRecorder(&test.ResponseWriter{})
		m := new(dns.Msg).SetQuestion("consul-server.default.svc.cluster.local.", dns.TypeA)
		h.ServeDNS(ctx, w, m)
		if w.Msg.Rcode != dns.RcodeSuccess {
			return -1
		}
		return len(w.Msg.Answer)
	}
	slices := client.DiscoveryV1().EndpointSlices("default")

	s, err := slices.Get(ctx, "consul-server-x7k2p", getOptions)
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints = append(s.Endpoints, testkit.Endpoint("10.244.4.13", "consul-server-3"))
	if _, err := slices.Update(ctx, s, updateOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a fourth address", func() bool { return answers() == 4 })

	s.Endpoints[0] = testkit.Ready(s.Endpoints[0], false)
	if _, err := slices.Update(ctx, s, updateOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a not ready address to leave", func() bool { return answers() == 3 })

	if err := slices.Delete(ctx, s.Name, deleteOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NXDOMAIN once the slice is gone", func() bool { return answers() == -1 })

	if _, err := slices.Create(ctx, headlessSlice("default", "consul-server", "again", nil, testkit.Endpoint("10.0.0.9", "")), createOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new slice", func() bool { return answers() == 1 })
	if err := client.CoreV1().Services("default").Delete(ctx, "consul-server", deleteOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NXDOMAIN once the service is gone", func() bool { return answers() == -1 })
	if n, eps := h.index.size(); n != 0 || eps != 0 {
		t.Errorf("index holds %d services, %d endpoints after deletion, want 0, 0", n, eps)
	}
}

// TestServeDNSFQDNLoop checks that CNAMEs to FQDN endpoints are followed as
// plugin.A follows them: each target once an answer, and no CNAME already in
// the chain. Two services whose FQDN endpoints, 3 of them with 4 ports each,
// name each other take three lookups through the server, not 12 + 12² + ...
func TestServeDNSFQDNLoop(t *testing.T) {
	ports := []discovery.EndpointPort{testkit.Port("a", 1, core.ProtocolTCP), testkit.Port("b", 2, core.ProtocolTCP),
		testkit.Port("c", 3, core.ProtocolTCP), testkit.Port("d", 4, core.ProtocolTCP)}
	fqdns := func(service, target string) *discovery.EndpointSlice {
		s := testkit.Slice("ns", service, service+"-fqdn", discovery.AddressTypeFQDN, ports,
			testkit.Endpoint(target, "e1"), testkit.Endpoint(target, "e2"), testkit.Endpoint(target, "e3"))
		return s
	}
	h, _ := newTestHeadless(t, "headless cluster.local", testkit.Headless("ns", "ping"), testkit.Headless("ns", "pong"),
		fqdns("ping", "pong.ns.svc.cluster.local"), fqdns("pong", "ping.ns.svc.cluster.local"))

	// The server that upstream lookups go through: a counter, then h.
	lookups := 0
	counter := test.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		lookups++
		return h.ServeDNS(ctx, w, r)
	})
	cfg := &dnsserver.Config{Zone: ".", Transport: "dns", ListenHosts: []string{"127.0.0.1"}, Port: "0"}
	cfg.AddPlugin(func(plugin.Handler) plugin.Handler { return counter })
	server, err := dnsserver.NewServer("dns://.:0", []*dnsserver.Config{cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, server)
	w := dnstest.NewRecorder(&test.ResponseWriter{})
	counter.ServeDNS(ctx, w, new(dns.Msg).SetQuestion("ping.ns.svc.cluster.local.", dns.TypeA))
	if lookups != 3 {
		t.Errorf("%d queries through the server, want 3: ping, pong for ping's endpoints, ping for pong's", lookups)
	}
	if w.Msg == nil || w.Msg.Rcode != dns.RcodeSuccess || len(w.Msg.Answer) != 0 {
		t.Errorf("answer %v, want NOERROR without records: the chain ends in a loop", w.Msg)
	}
}
