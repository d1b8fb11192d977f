package headless

import (
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// starting is an endpoint whose pod is not ready yet, and not terminating.
func starting(ip, host string) discovery.Endpoint {
	return testkit.Ready(testkit.Endpoint(ip, host), false)
}

// stopping is an endpoint that is terminating and no longer serving.
func stopping(ip, host string) discovery.Endpoint {
	e := testkit.Ready(testkit.Endpoint(ip, host), false)
	no, yes := false, true
	e.Conditions.Serving, e.Conditions.Terminating = &no, &yes
	return e
}

// annotated returns s with the annotation key set to value.
func annotated(s *core.Service, key, value string) *core.Service {
	s.Annotations = map[string]string{key: value}
	return s
}

// TestUnreadyNames checks that with unready_names the names of an endpoint
// that is not ready yet answer (A, SRV under its name, PTR), while the
// service's own names stay ready-only and a terminating endpoint stays out;
// that the annotation turns it off for one Service; and that with
// unready_names annotated only the Services annotated true have it.
func TestUnreadyNames(t *testing.T) {
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	objs := []runtime.Object{
		testkit.Headless("ns", "db"),
		sliceOf("ns", "db", "db-1", web, testkit.Endpoint("10.0.0.1", "db-0"), starting("10.0.0.2", "db-1"), stopping("10.0.0.3", "db-2")),
		annotated(testkit.Headless("ns", "off"), unreadyNamesAnnotation, "false"),
		sliceOf("ns", "off", "off-1", web, starting("10.0.1.2", "off-1")),
		annotated(testkit.Headless("ns", "on"), unreadyNamesAnnotation, "true"),
		sliceOf("ns", "on", "on-1", web, starting("10.0.2.2", "on-1")),
	}
	nx := func(name string) test.Case {
		return test.Case{Qname: name, Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Ns: []dns.RR{test.SOA(soa)}}
	}
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa {\n unready_names\n}", objs...)
	runCases(t, h, []test.Case{
		{Qname: "db-1.db.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("db-1.db.ns.svc.cluster.local. 5 IN A 10.0.0.2")}},
		{Qname: "db-1.db.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("db-1.db.ns.svc.cluster.local. 5 IN SRV 0 100 80 db-1.db.ns.svc.cluster.local.")},
			Extra:  []dns.RR{test.A("db-1.db.ns.svc.cluster.local. 5 IN A 10.0.0.2")}},
		{Qname: reverse("10.0.0.2"), Qtype: dns.TypePTR, Answer: []dns.RR{test.PTR(reverse("10.0.0.2") + " 5 IN PTR db-1.db.ns.svc.cluster.local.")}},
		{Qname: "db.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("db.ns.svc.cluster.local. 5 IN A 10.0.0.1")}},
		{Qname: "_http._tcp.db.ns.svc.cluster.local.", Qtype: dns.TypeSRV,
			Answer: []dns.RR{test.SRV("_http._tcp.db.ns.svc.cluster.local. 5 IN SRV 0 100 80 db-0.db.ns.svc.cluster.local.")},
			Extra:  []dns.RR{test.A("db-0.db.ns.svc.cluster.local. 5 IN A 10.0.0.1")}},
		nx("db-2.db.ns.svc.cluster.local."), // terminating
		nx("off-1.off.ns.svc.cluster.local."),
		{Qname: "on-1.on.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("on-1.on.ns.svc.cluster.local. 5 IN A 10.0.2.2")}},
	})

	h, _ = newTestHeadless(t, "headless cluster.local {\n unready_names annotated\n}", objs...)
	runCases(t, h, []test.Case{
		nx("db-1.db.ns.svc.cluster.local."),
		nx("off-1.off.ns.svc.cluster.local."),
		{Qname: "on-1.on.ns.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("on-1.on.ns.svc.cluster.local. 5 IN A 10.0.2.2")}},
	})
}

// TestAnswerLimit checks that with answer_limit an answer of a large
// service holds that many records, without the TC bit, each query another
// part of the service; that an SRV answer's glue is the records of its
// targets; and that the annotation changes the limit for one Service.
func TestAnswerLimit(t *testing.T) {
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	var eps []discovery.Endpoint
	for i := range 10 {
		eps = append(eps, testkit.Endpoint(fmt.Sprintf("10.0.0.%d", i+1), fmt.Sprintf("web-%d", i)))
	}
	objs := []runtime.Object{
		testkit.Headless("ns", "web"), sliceOf("ns", "web", "web-1", web, eps...),
		annotated(testkit.Headless("ns", "all"), answerLimitAnnotation, "0"), sliceOf("ns", "all", "all-1", web, eps...),
		annotated(testkit.Headless("ns", "five"), answerLimitAnnotation, "5"), sliceOf("ns", "five", "five-1", web, eps...),
	}
	// sizes asks name many times and returns how many records each answer
	// held, the addresses seen, and the different answers.
	sizes := func(h *Headless, name string, qtype uint16) (counts map[int]int, seen map[string]bool, answers int) {
		counts, seen, distinctAnswers := map[int]int{}, map[string]bool{}, map[string]bool{}
		for range 200 {
			m := serve(t, h, new(dns.Msg).SetQuestion(name, qtype))
			if m.Truncated || m.Rcode != dns.RcodeSuccess {
				t.Fatalf("%s: %s, truncated %v", name, dns.RcodeToString[m.Rcode], m.Truncated)
			}
			counts[len(m.Answer)]++
			distinctAnswers[fmt.Sprint(m.Answer)] = true
			targets := map[string]bool{}
			for _, rr := range m.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					seen[rr.A.String()] = true
				case *dns.SRV:
					targets[rr.Target] = true
					if rr.Weight != srvWeight(len(m.Answer)) {
						t.Errorf("%s: weight %d, want %d", name, rr.Weight, srvWeight(len(m.Answer)))
					}
				}
			}
			if qtype == dns.TypeSRV {
				for _, rr := range m.Extra {
					if !targets[rr.Header().Name] {
						t.Errorf("%s: glue of %s, which is no target", name, rr.Header().Name)
					}
					seen[rr.(*dns.A).A.String()] = true
				}
				if len(m.Extra) != len(targets) {
					t.Errorf("%s: %d glue records for %d targets", name, len(m.Extra), len(targets))
				}
			}
		}
		return counts, seen, len(distinctAnswers)
	}
	check := func(h *Headless, name string, qtype uint16, want int) {
		t.Helper()
		counts, seen, answers := sizes(h, name, qtype)
		if counts[want] != 200 {
			t.Errorf("%s %s: answers of %v records, want all of %d", name, dns.TypeToString[qtype], counts, want)
		}
		if len(seen) != 10 {
			t.Errorf("%s %s: %d addresses answered in 200 queries, want all 10", name, dns.TypeToString[qtype], len(seen))
		}
		if want < 10 && answers < 2 {
			t.Errorf("%s %s: every query got the same answer", name, dns.TypeToString[qtype])
		}
	}
	h, _ := newTestHeadless(t, "headless cluster.local {\n answer_limit 3\n}", objs...)
	check(h, "web.ns.svc.cluster.local.", dns.TypeA, 3)
	check(h, "_http._tcp.web.ns.svc.cluster.local.", dns.TypeSRV, 3)
	check(h, "all.ns.svc.cluster.local.", dns.TypeA, 10)
	check(h, "five.ns.svc.cluster.local.", dns.TypeSRV, 5)

	h, _ = newTestHeadless(t, "headless cluster.local {\n answer_limit annotated\n}", objs...)
	check(h, "web.ns.svc.cluster.local.", dns.TypeA, 10)
	check(h, "five.ns.svc.cluster.local.", dns.TypeA, 5)
}

// TestExtendedErrors checks that with extended_errors each negative answer
// for a name under a headless service carries an Extended DNS Error that
// says why, is counted by reason, and is answered by the plugin even with
// fallthrough; and that without EDNS the answer has no OPT record.
func TestExtendedErrors(t *testing.T) {
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	team := func(name, value string) *core.Namespace {
		return &core.Namespace{ObjectMeta: meta.ObjectMeta{Name: name, Labels: map[string]string{"team": value}}}
	}
	objs := []runtime.Object{
		team("ns", "a"), team("hidden", "b"),
		testkit.Headless("ns", "db"),
		sliceOf("ns", "db", "db-1", web, testkit.Endpoint("10.0.0.1", "db-0"), starting("10.0.0.2", "db-1"), stopping("10.0.0.3", "db-2")),
		testkit.Headless("ns", "empty"),
		testkit.Headless("hidden", "db"),
		sliceOf("hidden", "db", "db-1", web, testkit.Endpoint("10.0.9.1", "db-0")),
	}
	h, _ := newTestHeadless(t, "headless cluster.local {\n extended_errors\n namespace_labels team=a\n fallthrough\n}", objs...)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		why   negativeReason
	}{
		{"db-1.db.ns.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, endpointNotReady},
		{"db-2.db.ns.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, endpointNotReady},
		{"db-7.db.ns.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, noSuchEndpoint},
		{"_grpc._tcp.db.ns.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, noSuchPort},
		{"empty.ns.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, noReadyEndpoint},
		{"_http._tcp.empty.ns.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, noReadyEndpoint},
		{"db.hidden.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, namespaceHidden},
		{"db.ns.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, noRecordOfType},
		{"a.b.c.db.ns.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, notAName},
	} {
		t.Run(tc.name+" "+dns.TypeToString[tc.qtype], func(t *testing.T) {
			before := counterValue(t, negativeAnswers[tc.why])
			m := serve(t, h, new(dns.Msg).SetQuestion(tc.name, tc.qtype).SetEdns0(1232, false))
			if m.Rcode != tc.rcode || len(m.Answer) != 0 || len(m.Ns) != 1 {
				t.Fatalf("got %s with %d answers and %d authority records, want %s and the SOA (answered by the plugin)",
					dns.RcodeToString[m.Rcode], len(m.Answer), len(m.Ns), dns.RcodeToString[tc.rcode])
			}
			if got := extendedError(m); got == nil || got.InfoCode != dns.ExtendedErrorCodeOther || got.ExtraText != tc.why.String() {
				t.Errorf("extended error %v, want %q", got, tc.why)
			}
			if got := counterValue(t, negativeAnswers[tc.why]); got != before+1 {
				t.Errorf("counter of %s went from %v to %v, want one more", tc.why.label(), before, got)
			}
			if m := serve(t, h, new(dns.Msg).SetQuestion(tc.name, tc.qtype)); m.IsEdns0() != nil {
				t.Error("an answer to a query without EDNS has an OPT record")
			}
		})
	}

	// Without the option: no reason, and the name passes on.
	h, _ = newTestHeadless(t, "headless cluster.local {\n fallthrough\n}", objs...)
	if m := serve(t, h, new(dns.Msg).SetQuestion("db-7.db.ns.svc.cluster.local.", dns.TypeA).SetEdns0(1232, false)); extendedError(m) != nil || len(m.Ns) != 0 {
		t.Errorf("without extended_errors: %v", m)
	}
}

// extendedError returns the Extended DNS Error of m, or nil.
func extendedError(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
