package headless

import (
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The options beyond the kubernetes plugin: each is off by default, and
// TestSameAsKubernetes shows the answers without them.

// TestNegativeTTL checks that with negative_ttl the negative answers for
// names under an existing headless service carry that TTL and minimum and
// are answered by the plugin even with fallthrough, while other names still
// pass on.
func TestNegativeTTL(t *testing.T) {
	objs := append(consul(), testkit.Headless("default", "starting"))
	short := "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"
	h, _ := newTestHeadless(t, "headless cluster.local {\n ttl 30\n negative_ttl 5\n fallthrough\n}", objs...)
	runCases(t, h, []test.Case{
		// A pod not ready yet, a port nobody serves, a service without endpoints.
		{Qname: "consul-server-3.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(short)}},
		{Qname: "_http._udp.consul-server.default.svc.cluster.local.", Qtype: dns.TypeSRV, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(short)}},
		{Qname: "starting.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(short)}},
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeAAAA, Ns: []dns.RR{test.SOA(short)}},
		// Positive answers keep ttl; names of no headless service pass on.
		{Qname: "consul-server-0.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("consul-server-0.consul-server.default.svc.cluster.local. 30 IN A 10.244.1.10"),
		}},
		{Qname: "missing.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError},
	})

	h, _ = newTestHeadless(t, "headless cluster.local {\n ttl 30\n fallthrough\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "consul-server-3.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError}, // passed on
		{Qname: "consul-server.default.svc.cluster.local.", Qtype: dns.TypeAAAA, Ns: []dns.RR{
			test.SOA("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 30"),
		}},
	})
}

// TestStablePTR checks that with stable_ptr the PTR of a pod address is its
// stable name in each headless service that gives it a hostname, and only
// that: not the names of other services, not a name made of its address.
func TestStablePTR(t *testing.T) {
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	objs := append(consul(),
		// consul-server-0 is also behind a ClusterIP service and a second
		// headless service without hostname, and a third that names it.
		clusterIPService("default", "consul-ui", "10.96.0.20"),
		sliceOf("default", "consul-ui", "consul-ui-1", web, testkit.Endpoint("10.244.1.10", "")),
		testkit.Headless("default", "consul-dns"),
		sliceOf("default", "consul-dns", "consul-dns-1", web, testkit.Endpoint("10.244.1.10", "")),
		testkit.Headless("default", "consul-peers"),
		sliceOf("default", "consul-peers", "consul-peers-1", web, testkit.Endpoint("10.244.1.10", "consul-server-0")),
		testkit.Headless("default", "anon"),
		sliceOf("default", "anon", "anon-1", web, testkit.Endpoint("10.244.7.7", "")),
	)
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa {\n stable_ptr\n fallthrough in-addr.arpa\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "10.1.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Answer: []dns.RR{
			test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR consul-server-0.consul-server.default.svc.cluster.local."),
			test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR consul-server-0.consul-peers.default.svc.cluster.local."),
		}},
		// No hostname: the next plugin's.
		{Qname: "7.7.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError},
	})

	// Without the option, in front of another plugin, the PTR is the next
	// plugin's, which knows the other services; alone, all names it knows.
	h, _ = newTestHeadless(t, "headless cluster.local in-addr.arpa {\n fallthrough\n}", objs...)
	runCases(t, h, []test.Case{{Qname: "10.1.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Rcode: dns.RcodeNameError}})
	h, _ = newTestHeadless(t, "headless cluster.local in-addr.arpa", objs...)
	runCases(t, h, []test.Case{
		{Qname: "10.1.244.10.in-addr.arpa.", Qtype: dns.TypePTR, Answer: []dns.RR{
			test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR consul-server-0.consul-server.default.svc.cluster.local."),
			test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-10.consul-dns.default.svc.cluster.local."),
			test.PTR("10.1.244.10.in-addr.arpa. 5 IN PTR consul-server-0.consul-peers.default.svc.cluster.local."),
		}},
	})
}

// TestTerminatingFallback checks that with terminating_fallback a service
// whose endpoints are all terminating answers with those still serving, and
// that a ready endpoint takes over as soon as there is one.
func TestTerminatingFallback(t *testing.T) {
	leaving := func(ip, host string, serving bool) discovery.Endpoint {
		e := testkit.Ready(testkit.Endpoint(ip, host), false)
		terminating := true
		e.Conditions.Serving, e.Conditions.Terminating = &serving, &terminating
		return e
	}
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	objs := []runtime.Object{
		testkit.Headless("ns", "draining"),
		sliceOf("ns", "draining", "draining-1", web, leaving("10.0.0.1", "db-0", true), leaving("10.0.0.2", "db-1", false)),
		testkit.Headless("ns", "rolling"),
		sliceOf("ns", "rolling", "rolling-1", web, leaving("10.0.1.1", "db-0", true), testkit.Endpoint("10.0.1.2", "db-1")),
	}
	h, _ := newTestHeadless(t, "headless cluster.local {\n terminating_fallback\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "draining.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("draining.ns.svc.cluster.local. 5 IN A 10.0.0.1")}},
		{Qname: "db-0.draining.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("db-0.draining.ns.svc.cluster.local. 5 IN A 10.0.0.1")}},
		{Qname: "_http._tcp.draining.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_http._tcp.draining.ns.svc.cluster.local. 5 IN SRV 0 100 80 db-0.draining.ns.svc.cluster.local.")},
			Extra:  []dns.RR{test.A("db-0.draining.ns.svc.cluster.local. 5 IN A 10.0.0.1")}},
		{Qname: "db-1.draining.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}}, // not serving
		{Qname: "rolling.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("rolling.ns.svc.cluster.local. 5 IN A 10.0.1.2")}},
	})

	h, _ = newTestHeadless(t, "headless cluster.local", objs...)
	runCases(t, h, []test.Case{
		{Qname: "draining.ns.svc.cluster.local.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}},
	})
}
