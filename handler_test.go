package headless

import (
	"context"
	"fmt"
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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

const soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"

// seedSRV is the seed document's `dig consul-server srv`: 5 distinct ports x
// 3 pods, weight floor(100/24) = 4 for 8 ports x 3 pods.
func seedSRV() (answer, extra []dns.RR) {
	for i, ip := range []string{"10.244.1.10", "10.244.2.11", "10.244.3.12"} {
		target := fmt.Sprintf("consul-server-%d.consul-server.default.svc.cluster.local.", i)
		for _, p := range []int{8500, 8301, 8302, 8300, 8600} {
			answer = append(answer, test.SRV(fmt.Sprintf("consul-server.default.svc.cluster.local. 5 IN SRV 0 4 %d %s", p, target)))
		}
		extra = append(extra, test.A(target+" 5 IN A "+ip))
	}
	return answer, extra
}

func TestServeDNSSeed(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa", consul()...)
	srv, glue := seedSRV()
	runCases(t, h, []test.Case{
		{
			Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeA,
			Answer: []dns.RR{
				test.A("consul-server.default.svc.cluster.local. 5 IN A 10.244.1.10"),
				test.A("consul-server.default.svc.cluster.local. 5 IN A 10.244.2.11"),
				test.A("consul-server.default.svc.cluster.local. 5 IN A 10.244.3.12"),
			},
		},
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeSRV, Answer: srv, Extra: glue},
		{
			Qname: "consul-server-1.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA,
			Answer: []dns.RR{test.A("consul-server-1.consul-server.default.svc.cluster.local. 5 IN A 10.244.2.11")},
		},
		{
			// TCP and UDP share 8301: one SRV record, weight from both entries.
			Qname: "_serflan-udp._udp.consul-server.default.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{
				test.SRV("_serflan-udp._udp.consul-server.default.svc.cluster.local. 5 IN SRV 0 33 8301 consul-server-0.consul-server.default.svc.cluster.local."),
				test.SRV("_serflan-udp._udp.consul-server.default.svc.cluster.local. 5 IN SRV 0 33 8301 consul-server-1.consul-server.default.svc.cluster.local."),
				test.SRV("_serflan-udp._udp.consul-server.default.svc.cluster.local. 5 IN SRV 0 33 8301 consul-server-2.consul-server.default.svc.cluster.local."),
			},
			Extra: glue,
		},
		{
			Qname: "10.1.244.10.in-addr.arpa.", Qtype: dns.TypePTR,
			Answer: []dns.RR{test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR consul-server-0.consul-server.default.svc.cluster.local.")},
		},
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeAAAA, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeTXT, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "consul-server-3.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "_http._udp.consul-server.default.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "a.b.c.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
	})
}

func TestServeDNSRules(t *testing.T) {
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("dns", 53, core.ProtocolUDP)}
	dual := sliceOf("ns", "dual", "dual-v6", ports, testkit.Endpoint("fd00::1", "web-0"), testkit.Endpoint("fd00::2", ""))
	dual.AddressType = discovery.AddressTypeIPv6
	objs := []runtime.Object{
		testkit.Headless("ns", "dual"),
		sliceOf("ns", "dual", "dual-v4", ports, testkit.Endpoint("10.0.0.1", "web-0"), testkit.Endpoint("10.0.0.2", "")),
		dual,
		testkit.Headless("ns", "ready"),
		sliceOf("ns", "ready", "ready-a", nil,
			testkit.Ready(testkit.Endpoint("10.0.1.1", ""), true),
			testkit.Ready(testkit.Endpoint("10.0.1.2", ""), false),
			testkit.Endpoint("10.0.1.3", ""), // ready unset counts as ready
		),
		testkit.Headless("ns", "empty"),
		sliceOf("ns", "empty", "empty-a", ports, testkit.Ready(testkit.Endpoint("10.0.2.1", ""), false)),
		testkit.Headless("ns", "overlap"),
		sliceOf("ns", "overlap", "overlap-a", ports[:1], testkit.Endpoint("10.0.3.1", "db-0"), testkit.Endpoint("10.0.3.2", "db-1")),
		sliceOf("ns", "overlap", "overlap-b", ports[:1], testkit.Endpoint("10.0.3.2", "db-1"), testkit.Endpoint("10.0.3.3", "db-2")),
		testkit.Headless("ns", "unnamed"),
		sliceOf("ns", "unnamed", "unnamed-a", []discovery.EndpointPort{testkit.Port("", 9000, core.ProtocolTCP)}, testkit.Endpoint("10.0.4.1", "")),
		clusterIPService("ns", "web", "10.96.0.10"),
		sliceOf("ns", "web", "web-a", ports, testkit.Endpoint("10.0.5.1", "")),
		testkit.Headless("ns", "pods"),
		sliceOf("ns", "pods", "pods-a", ports[:1], testkit.Pod(testkit.Endpoint("10.0.6.1", ""), "pods-7f9c")),
		testkit.Headless("ns", "six"),
		sliceOf("ns", "six", "six-a", nil, testkit.Endpoint("fd00:1::", "")),
	}
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa ip6.arpa", objs...)
	nx := func(name string, qtype uint16) test.Case {
		return test.Case{Qname: name, Qtype: qtype, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}}
	}
	noData := func(name string, qtype uint16) test.Case {
		return test.Case{Qname: name, Qtype: qtype, Ns: []dns.RR{test.SOA(soa)}}
	}
	runCases(t, h, []test.Case{
		// Dual stack: A and AAAA from the two slices of one service.
		{Qname: "dual.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("dual.ns.svc.cluster.local. 5 IN A 10.0.0.1"),
			test.A("dual.ns.svc.cluster.local. 5 IN A 10.0.0.2"),
		}},
		{Qname: "dual.ns.svc.cluster.local.", Qtype: dns.TypeAAAA, Answer: []dns.RR{
			test.AAAA("dual.ns.svc.cluster.local. 5 IN AAAA fd00::1"),
			test.AAAA("dual.ns.svc.cluster.local. 5 IN AAAA fd00::2"),
		}},
		{Qname: "web-0.dual.ns.svc.cluster.local.", Qtype: dns.TypeAAAA, Answer: []dns.RR{
			test.AAAA("web-0.dual.ns.svc.cluster.local. 5 IN AAAA fd00::1"),
		}},
		// Hostname-less endpoints are named after their address; an IPv6
		// name that would end in a dash gets a 0.
		{Qname: "10-0-0-2.dual.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("10-0-0-2.dual.ns.svc.cluster.local. 5 IN A 10.0.0.2"),
		}},
		{Qname: "fd00--2.dual.ns.svc.cluster.local.", Qtype: dns.TypeAAAA, Answer: []dns.RR{
			test.AAAA("fd00--2.dual.ns.svc.cluster.local. 5 IN AAAA fd00::2"),
		}},
		{Qname: "_http._tcp.dual.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{
				test.SRV("_http._tcp.dual.ns.svc.cluster.local. 5 IN SRV 0 25 80 web-0.dual.ns.svc.cluster.local."),
				test.SRV("_http._tcp.dual.ns.svc.cluster.local. 5 IN SRV 0 25 80 10-0-0-2.dual.ns.svc.cluster.local."),
				test.SRV("_http._tcp.dual.ns.svc.cluster.local. 5 IN SRV 0 25 80 fd00--2.dual.ns.svc.cluster.local."),
			},
			Extra: []dns.RR{
				test.A("web-0.dual.ns.svc.cluster.local. 5 IN A 10.0.0.1"),
				test.AAAA("web-0.dual.ns.svc.cluster.local. 5 IN AAAA fd00::1"),
				test.A("10-0-0-2.dual.ns.svc.cluster.local. 5 IN A 10.0.0.2"),
				test.AAAA("fd00--2.dual.ns.svc.cluster.local. 5 IN AAAA fd00::2"),
			},
		},
		{Qname: "web-0.dual.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{
				test.SRV("web-0.dual.ns.svc.cluster.local. 5 IN SRV 0 25 80 web-0.dual.ns.svc.cluster.local."),
				test.SRV("web-0.dual.ns.svc.cluster.local. 5 IN SRV 0 25 53 web-0.dual.ns.svc.cluster.local."),
			},
			Extra: []dns.RR{
				test.A("web-0.dual.ns.svc.cluster.local. 5 IN A 10.0.0.1"),
				test.AAAA("web-0.dual.ns.svc.cluster.local. 5 IN AAAA fd00::1"),
			},
		},
		// Ready: false is left out, unset counts as ready; no ports: A yes, SRV none.
		{Qname: "ready.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("ready.ns.svc.cluster.local. 5 IN A 10.0.1.1"),
			test.A("ready.ns.svc.cluster.local. 5 IN A 10.0.1.3"),
		}},
		nx("10-0-1-2.ready.ns.svc.cluster.local.", dns.TypeA),
		noData("ready.ns.svc.cluster.local.", dns.TypeSRV),
		// A headless service without a ready endpoint does not exist.
		nx("empty.ns.svc.cluster.local.", dns.TypeA),
		nx("empty.ns.svc.cluster.local.", dns.TypeSRV),
		// Overlapping slices: the shared address once, weights count it twice.
		{Qname: "overlap.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("overlap.ns.svc.cluster.local. 5 IN A 10.0.3.1"),
			test.A("overlap.ns.svc.cluster.local. 5 IN A 10.0.3.2"),
			test.A("overlap.ns.svc.cluster.local. 5 IN A 10.0.3.3"),
		}},
		{Qname: "overlap.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{
				test.SRV("overlap.ns.svc.cluster.local. 5 IN SRV 0 25 80 db-0.overlap.ns.svc.cluster.local."),
				test.SRV("overlap.ns.svc.cluster.local. 5 IN SRV 0 25 80 db-1.overlap.ns.svc.cluster.local."),
				test.SRV("overlap.ns.svc.cluster.local. 5 IN SRV 0 25 80 db-2.overlap.ns.svc.cluster.local."),
			},
			Extra: []dns.RR{
				test.A("db-0.overlap.ns.svc.cluster.local. 5 IN A 10.0.3.1"),
				test.A("db-1.overlap.ns.svc.cluster.local. 5 IN A 10.0.3.2"),
				test.A("db-2.overlap.ns.svc.cluster.local. 5 IN A 10.0.3.3"),
			},
		},
		// An unnamed port is served on the bare name only.
		{Qname: "unnamed.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("unnamed.ns.svc.cluster.local. 5 IN SRV 0 100 9000 10-0-4-1.unnamed.ns.svc.cluster.local.")},
			Extra:  []dns.RR{test.A("10-0-4-1.unnamed.ns.svc.cluster.local. 5 IN A 10.0.4.1")},
		},
		// Names are case-insensitive; the answer keeps the query's case.
		{Qname: "Dual.NS.svc.Cluster.Local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("Dual.NS.svc.Cluster.Local. 5 IN A 10.0.0.1"),
			test.A("Dual.NS.svc.Cluster.Local. 5 IN A 10.0.0.2"),
		}},
		{Qname: "_HTTP._TCP.unnamed.ns.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
		// Underscores are optional, an empty label matches any, as in the kubernetes plugin.
		{Qname: "_._tcp.unnamed.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_._tcp.unnamed.ns.svc.cluster.local. 5 IN SRV 0 100 9000 10-0-4-1.unnamed.ns.svc.cluster.local.")},
			Extra:  []dns.RR{test.A("10-0-4-1.unnamed.ns.svc.cluster.local. 5 IN A 10.0.4.1")},
		},
		// Alone, the plugin knows no name that is not headless.
		nx("web.ns.svc.cluster.local.", dns.TypeA),
		{Qname: "nothing.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
		// PTR: dual stack, and an address a ClusterIP service also selects.
		{Qname: reverse("fd00::1"), Qtype: dns.TypePTR, Answer: []dns.RR{
			test.PTR(reverse("fd00::1") + " 5 IN PTR web-0.dual.ns.svc.cluster.local."),
		}},
		{Qname: "fd00-1--0.six.ns.svc.cluster.local.", Qtype: dns.TypeAAAA, Answer: []dns.RR{
			test.AAAA("fd00-1--0.six.ns.svc.cluster.local. 5 IN AAAA fd00:1::"),
		}},
		{Qname: "2.3.0.10.in-addr.arpa.", Qtype: dns.TypePTR, Answer: []dns.RR{
			test.PTR("2.3.0.10.in-addr.arpa. 5 IN PTR db-1.overlap.ns.svc.cluster.local."),
		}},
		{Qname: "1.5.0.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA("in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 0 7200 1800 86400 5")}},
		// endpoint_pod_names is off: the pod name is not a label.
		nx("pods-7f9c.pods.ns.svc.cluster.local.", dns.TypeA),
		// The zone itself and empty non-terminals.
		{Qname: "cluster.local.", Qtype: dns.TypeSOA, Answer: []dns.RR{test.SOA(soa)}},
		noData("cluster.local.", dns.TypeA),
		noData("svc.cluster.local.", dns.TypeA),
		noData("ns.svc.cluster.local.", dns.TypeA),
		nx("other.svc.cluster.local.", dns.TypeA),
		{Qname: "dns-version.cluster.local.", Qtype: dns.TypeTXT, Answer: []dns.RR{
			test.TXT(`dns-version.cluster.local. 28800 IN TXT "1.1.0"`),
		}},
	})
}

func TestServeDNSEndpointPodNames(t *testing.T) {
	objs := []runtime.Object{
		testkit.Headless("ns", "pods"),
		sliceOf("ns", "pods", "pods-a", nil,
			testkit.Pod(testkit.Endpoint("10.0.6.1", ""), "pods-7f9c"),
			testkit.Pod(testkit.Endpoint("10.0.6.2", "named"), "pods-8abc"),
		),
	}
	h, _ := newTestHeadless(t, "headless cluster.local {\n endpoint_pod_names\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "pods-7f9c.pods.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("pods-7f9c.pods.ns.svc.cluster.local. 5 IN A 10.0.6.1"),
		}},
		{Qname: "named.pods.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("named.pods.ns.svc.cluster.local. 5 IN A 10.0.6.2"),
		}},
	})
}

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

func TestServeDNSTTL(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local {\n ttl 30\n}", consul()...)
	runCases(t, h, []test.Case{
		{Qname: "consul-server-0.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("consul-server-0.consul-server.default.svc.cluster.local. 30 IN A 10.244.1.10"),
		}},
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeAAAA, Ns: []dns.RR{
			test.SOA("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 30"),
		}},
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

func TestServeDNSNamespaces(t *testing.T) {
	objs := append(consul(), testkit.Headless("other", "db"),
		sliceOf("other", "db", "db-a", nil, testkit.Endpoint("10.1.0.1", "")))
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa {\n namespaces default\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "consul-server-0.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("consul-server-0.consul-server.default.svc.cluster.local. 5 IN A 10.244.1.10"),
		}},
		{Qname: "db.other.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
		{Qname: "1.0.1.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError, Ns: []dns.RR{
			test.SOA("in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 0 7200 1800 86400 5"),
		}},
	})
}

func TestServeDNSNotSynced(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	h.watcher = newWatcher(fake.NewClientset(), nil, h.index, h.watch) // never started
	h.Next = nextHandler()
	m := serve(t, h, new(dns.Msg).SetQuestion("consul-server.default.svc.cluster.local.", dns.TypeA))
	if m.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode before sync = %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
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
