package headless

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// fuzzObjects are what the fuzzed plugins serve: the seed, a dual-stack
// service, endpoints without hostname, unnamed and SCTP ports, a slice
// without ports, edgeObjects, a slice that names no service, and a ClusterIP service that
// shares an address with a headless one.
func fuzzObjects() []runtime.Object {
	tcp := core.ProtocolTCP
	web := []discovery.EndpointPort{testkit.Port("http", 80, tcp), testkit.Port("", 81, tcp), testkit.Port("sctp", 82, core.ProtocolSCTP)}
	frontend := testkit.ClusterIP("conf", "frontend", testkit.ServicePort("http", 80, tcp))
	frontend.Spec.ClusterIP, frontend.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	o := testkit.Consul("default")
	o.Add(edgeObjects("conf"))
	o.Add(testkit.Objects{
		Services: []*core.Service{testkit.Headless("conf", "dual"), testkit.Headless("conf", "bare"), frontend},
		Slices: []*discovery.EndpointSlice{
			testkit.Slice("conf", "dual", "dual-4", discovery.AddressTypeIPv4, web,
				testkit.Endpoint("10.1.0.1", "web-0"), testkit.Endpoint("10.1.0.2", ""), testkit.Ready(testkit.Endpoint("10.1.0.3", "web-2"), false)),
			testkit.Slice("conf", "dual", "dual-6", discovery.AddressTypeIPv6, web,
				testkit.Endpoint("fd00::1", "web-0"), testkit.Endpoint("fd00::", "")),
			testkit.Slice("conf", "bare", "bare-1", discovery.AddressTypeIPv4, nil, testkit.Pod(testkit.Endpoint("10.1.0.1", ""), "bare-pod")),
			testkit.Slice("conf", "frontend", "frontend-1", discovery.AddressTypeIPv4, web[:1], testkit.Endpoint("10.1.0.2", "")),
			testkit.Slice("conf", "", "orphan", discovery.AddressTypeIPv4, web[:1], testkit.Endpoint("10.1.0.9", "o")),
		},
	})
	return objects(o)
}

// fuzzPlugins returns three plugins over fuzzObjects: one alone, one with
// fallthrough, endpoint_pod_names and a TTL of 0, and one with every option
// that changes how names are read or answered.
func fuzzPlugins(f testing.TB) []*Headless {
	alone, _ := newTestHeadless(f, "headless cluster.local in-addr.arpa ip6.arpa", fuzzObjects()...)
	through, _ := newTestHeadless(f, `headless cluster.local example.org. in-addr.arpa {
		fallthrough
		endpoint_pod_names
		ttl 0
	}`, fuzzObjects()...)
	options, _ := newTestHeadless(f, `headless cluster.local clusterset.local in-addr.arpa {
		zonal
		multicluster clusterset.local
		negative_ttl 1
		stable_ptr
		terminating_fallback
		unready_names
		answer_limit 2
		extended_errors
	}`, append(fuzzObjects(), importedObjects()...)...)
	return []*Headless{alone, through, options}
}

// serveChecked sends r to h and fails t if h panics (the fuzzer reports
// that), claims to have written an answer it did not write, or writes one
// that does not pack, does not answer r, or holds records owned by other
// names than the question's.
func serveChecked(t *testing.T, h *Headless, r *dns.Msg) {
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rcode, err := h.ServeDNS(context.Background(), rec, r)
	if rec.Msg == nil {
		if plugin.ClientWrite(rcode) {
			t.Fatalf("rcode %s (%v) and no message written for\n%s", dns.RcodeToString[rcode], err, r)
		}
		return
	}
	m := rec.Msg
	if _, err := m.Pack(); err != nil {
		t.Fatalf("the answer does not pack: %v\n%s", err, m)
	}
	// A reply holds the first question, as dns.Msg.SetReply makes it.
	if m.Id != r.Id || !m.Response || len(m.Question) != min(1, len(r.Question)) {
		t.Fatalf("the answer is not a reply to the query:\n%s\n%s", r, m)
	}
	if len(r.Question) == 0 {
		return
	}
	if m.Question[0] != r.Question[0] {
		t.Fatalf("the answer is for another question:\n%s\n%s", r, m)
	}
	qname := r.Question[0].Name
	for _, rr := range m.Answer {
		if rr.Header().Name != qname {
			t.Fatalf("an answer owned by %q for %q:\n%s", rr.Header().Name, qname, m)
		}
	}
	for _, rr := range m.Ns {
		if !dns.IsSubDomain(rr.Header().Name, qname) {
			t.Fatalf("an authority record owned by %q, not a parent of %q:\n%s", rr.Header().Name, qname, m)
		}
	}
}

// fuzzSeedQueries are queries for the names of fuzzObjects.
var fuzzSeedQueries = []struct {
	name  string
	qtype uint16
}{
	{"consul-server.default.svc.cluster.local.", dns.TypeA},
	{"consul-server.default.svc.cluster.local.", dns.TypeSRV},
	{"consul-server-1.consul-server.default.svc.cluster.local.", dns.TypeA},
	{"_http._tcp.consul-server.default.svc.cluster.local.", dns.TypeSRV},
	{"_serflan-udp._udp.Consul-Server.DEFAULT.svc.cluster.local.", dns.TypeSRV},
	{"dual.conf.svc.cluster.local.", dns.TypeAAAA},
	{"fd00--0.dual.conf.svc.cluster.local.", dns.TypeAAAA},
	{"bare-pod.bare.conf.svc.cluster.local.", dns.TypeA},
	{"10.0.1.10.in-addr.arpa.", dns.TypePTR},
	{"2.0.1.10.in-addr.arpa.", dns.TypePTR},
	{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR},
	{"cluster.local.", dns.TypeSOA},
	{"dns-version.cluster.local.", dns.TypeTXT},
	{"conf.svc.cluster.local.", dns.TypeA},
	{"example.org.", dns.TypeA},
	{"consul-server.default.svc.cluster.local.", dns.TypeAXFR},
	{"us-east-1a.pin._zone.dual.conf.svc.cluster.local.", dns.TypeA},
	{"db-0.c1.db.conf.svc.clusterset.local.", dns.TypeSRV},
}

// TestHostileQueries sends each fuzzed plugin what a hostile or broken
// client would, as far as it unpacks: several questions or none, every
// class and opcode, a bad EDNS version or buffer, every type of question
// under a headless name, a host name, a port name and an address, and names
// of the longest length and labels in each position a name of the plugin
// has. Every answer must be a reply to its query (serveChecked), and none
// SERVFAIL.
func TestHostileQueries(t *testing.T) {
	const consul = "consul-server.default.svc.cluster.local."
	edge := "e" + strings.Repeat("d", 62) + ".conf.svc.cluster.local."
	l63, zone := strings.Repeat("a", 63), "svc.cluster.local."
	pad := func(suffix string) string { // to 255 bytes in wire format
		for len(suffix)+1 < 255 {
			suffix = strings.Repeat("x", min(63, 255-len(suffix)-2)) + "." + suffix
		}
		return suffix
	}
	var queries []*dns.Msg
	for _, name := range []string{consul, "consul-server-1." + consul, "_http._tcp." + consul, "11.2.244.10.in-addr.arpa.",
		"h" + strings.Repeat("o", 62) + "." + edge, "pod.with.dots." + edge, "_." + edge, "_sctp._sctp." + edge} {
		for qtype := range 262 {
			queries = append(queries, new(dns.Msg).SetQuestion(name, uint16(qtype)))
		}
		queries = append(queries, new(dns.Msg).SetQuestion(name, 65535))
	}
	for _, name := range []string{pad(zone), pad(l63 + "." + zone), pad("consul-server.default." + zone), pad("_http._tcp.consul-server.default." + zone),
		l63 + "." + l63 + "." + l63 + "." + zone, "_" + strings.Repeat("p", 62) + "._tcp.consul-server.default." + zone, pad("in-addr.arpa."), pad("ip6.arpa."),
		"255.255.255.255.in-addr.arpa.", "1.2.3.4.5.in-addr.arpa.", "x.10.in-addr.arpa.", strings.Repeat("f.", 33) + "ip6.arpa.",
		`a\.b.consul-server.default.` + zone, `\000.consul-server.default.` + zone, `\255\254.` + zone, `*.consul-server.default.` + zone} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypePTR, dns.TypeANY} {
			queries = append(queries, new(dns.Msg).SetQuestion(name, qtype))
		}
	}
	for _, class := range []uint16{dns.ClassCHAOS, dns.ClassANY, dns.ClassNONE, dns.ClassHESIOD, 12345} {
		m := new(dns.Msg).SetQuestion(consul, dns.TypeA)
		m.Question[0].Qclass = class
		queries = append(queries, m)
	}
	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate, 15} {
		m := new(dns.Msg).SetQuestion(consul, dns.TypeA)
		m.Opcode = op
		queries = append(queries, m)
	}
	several := new(dns.Msg).SetQuestion(consul, dns.TypeSRV)
	several.Question = append(several.Question, dns.Question{Name: "consul-server-0." + consul, Qtype: dns.TypeA, Qclass: dns.ClassINET})
	badVersion, tiny := new(dns.Msg).SetQuestion(consul, dns.TypeA), new(dns.Msg).SetQuestion(consul, dns.TypeSRV)
	badVersion.SetEdns0(4096, false)
	badVersion.IsEdns0().SetVersion(1)
	tiny.SetEdns0(1, false)
	queries = append(queries, several, new(dns.Msg), badVersion, tiny)

	for i, h := range fuzzPlugins(t) {
		for _, q := range queries {
			b, err := q.Pack()
			if err != nil {
				t.Fatalf("%v does not pack: %v", q.Question, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				continue // CoreDNS's server passes on only what unpacks
			}
			serveChecked(t, h, r)
			if m := exchange(t, h, r); m.Rcode == dns.RcodeServerFailure {
				t.Errorf("plugin %d: SERVFAIL for %v", i, r.Question)
			}
		}
	}
}

// FuzzServeDNS feeds the plugin arbitrary messages: whatever unpacks, as
// CoreDNS's server would pass it on.
func FuzzServeDNS(f *testing.F) {
	for _, q := range fuzzSeedQueries {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	hs := fuzzPlugins(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if r.Unpack(b) != nil {
			return
		}
		for _, h := range hs {
			serveChecked(t, h, r)
		}
	})
}

// FuzzName feeds the plugin queries for arbitrary names and types, through
// the wire format as a client would send them.
func FuzzName(f *testing.F) {
	for _, q := range fuzzSeedQueries {
		f.Add(q.name, q.qtype)
	}
	hs := fuzzPlugins(f)
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		q := new(dns.Msg).SetQuestion(name, qtype)
		b, err := q.Pack()
		if err != nil {
			return // not a name a client can send
		}
		r := new(dns.Msg)
		if r.Unpack(b) != nil {
			return // miekg/dns packs some names it cannot unpack, such as ""
		}
		for _, h := range hs {
			serveChecked(t, h, r)
		}
	})
}

// FuzzSplitLabels checks that parseName splits a name as
// dns.SplitDomainName does.
func FuzzSplitLabels(f *testing.F) {
	for _, name := range []string{"", ".", "a", "a.b", "web-0.web.ns.svc", "a..b", ".a", "a.", `a\.b.c`, "us-east-1a.pin._zone.web.ns.svc", "1.2.3.4.5.6.7.8.9.10"} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		var labels [8]string
		if got, want := splitLabels(name, labels[:0]), dns.SplitDomainName(name); !slices.Equal(got, want) {
			t.Errorf("splitLabels(%q) = %q, want %q", name, got, want)
		}
	})
}

// FuzzMatchZone checks that matchZone finds the zone of a name as
// plugin.Zones.Matches finds it, for names and zones that are fully
// qualified domain names.
func FuzzMatchZone(f *testing.F) {
	for _, seed := range []struct{ name, zone string }{
		{"web-0.web.ns.svc.cluster.local.", "cluster.local."},
		{"cluster.local.", "cluster.local."},
		{"CLUSTER.Local.", "cluster.local."},
		{"xcluster.local.", "cluster.local."},
		{`a\.cluster.local.`, "cluster.local."},
		{`a\\.cluster.local.`, "cluster.local."},
		{"3.0.20.10.in-addr.arpa.", "0.20.10.in-addr.arpa."},
		{".", "."},
		{"a.b.", "."},
		{"local.", "cluster.local."},
	} {
		f.Add(seed.name, seed.zone)
	}
	f.Fuzz(func(t *testing.T, name, zone string) {
		if _, ok := dns.IsDomainName(name); !ok || !dns.IsFqdn(name) || strings.Contains(name, "..") {
			t.Skip()
		}
		if _, ok := dns.IsDomainName(zone); !ok || !dns.IsFqdn(zone) || strings.Contains(zone, "..") {
			t.Skip()
		}
		zones := []string{zone, "cluster.local.", "in-addr.arpa."}
		if got, want := matchZone(zones, name), plugin.Zones(zones).Matches(name); got != want {
			t.Errorf("matchZone(%q, %q) = %q, want %q", zones, name, got, want)
		}
	})
}
