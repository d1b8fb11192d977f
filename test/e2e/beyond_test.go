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
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// TestOptions proves each option beyond the kubernetes plugin in the real
// CoreDNS, over UDP and TCP, against the kubernetes plugin alone in the same
// process: negative_ttl (also behind the cache plugin, which must keep a
// negative answer 5 s at most), stable_ptr (in front of kubernetes and
// alone) and terminating_fallback. The rules of each option are the root
// package's (options_test.go); without the options, the drop-in answers as
// kubernetes does (TestConformance).
func TestOptions(t *testing.T) {
	const ns, twin = "options", "options-twin"
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	slice := func(ns, service string, endpoints ...discovery.Endpoint) *discovery.EndpointSlice {
		return testkit.Slice(ns, service, service+"-1", discovery.AddressTypeIPv4, web, endpoints...)
	}
	leaving := func(e discovery.Endpoint, serving bool) discovery.Endpoint {
		e = testkit.Ready(e, false)
		terminating := true
		e.Conditions.Serving, e.Conditions.Terminating = &serving, &terminating
		return e
	}
	// drain: db-0 and db-1 serving and terminating, db-2 no longer
	// serving; its twin has db-0 and db-1 ready, the answers drain should
	// have with terminating_fallback. db-0 (10.21.0.1) is named by db and
	// peers, selected without a hostname by anon and the ClusterIP service
	// front; 10.21.0.2 has no hostname anywhere.
	drained := leaving(testkit.Endpoint("10.22.0.3", "db-2"), false)
	o := testkit.Objects{
		Services: []*core.Service{
			testkit.Headless(ns, "web"), testkit.Headless(ns, "db"), testkit.Headless(ns, "peers"), testkit.Headless(ns, "anon"),
			testkit.ClusterIP(ns, "front", testkit.ServicePort("http", 80, core.ProtocolTCP)), testkit.Headless(ns, "drain"), testkit.Headless(twin, "drain"),
		},
		Slices: []*discovery.EndpointSlice{
			slice(ns, "web", testkit.Endpoint("10.20.0.1", "web-0"), testkit.Ready(testkit.Endpoint("10.20.0.2", "web-1"), false)),
			slice(ns, "db", testkit.Endpoint("10.21.0.1", "db-0"), testkit.Endpoint("10.21.0.2", "")),
			slice(ns, "peers", testkit.Endpoint("10.21.0.1", "db-0")),
			slice(ns, "anon", testkit.Endpoint("10.21.0.1", "")),
			slice(ns, "front", testkit.Endpoint("10.21.0.1", ""), testkit.Endpoint("10.21.0.2", "")),
			slice(ns, "drain", leaving(testkit.Endpoint("10.22.0.1", "db-0"), true), leaving(testkit.Endpoint("10.22.0.2", "db-1"), true), drained),
			slice(twin, "drain", testkit.Endpoint("10.22.0.1", "db-0"), testkit.Endpoint("10.22.0.2", "db-1"), drained),
		},
	}
	if err := testkit.Apply(context.Background(), shared.cluster.Client, o); err != nil {
		t.Fatal(err)
	}
	// Started once the objects exist, so that no cache holds an answer from
	// before.
	cached := dropIn("negative_ttl 5")
	cached.Plugins = []string{"cache 30"}
	addrs := serve(t, testkit.Block{Kubernetes: true, KubernetesOptions: kubernetesOptions}, dropIn("negative_ttl 5"), dropIn("stable_ptr"),
		testkit.Block{Headless: true, HeadlessOptions: []string{"ttl 30", "stable_ptr"}}, dropIn("terminating_fallback"), cached)
	kubernetes, negative, stable, stableAlone, fallback, behindCache := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5]

	base := func(svc string) string { return svc + "." + ns + ".svc.cluster.local." }
	rev := func(ip string) string { r, _ := dns.ReverseAddr(ip); return r }
	stableNames := []string{rev("10.21.0.1") + " 30 IN PTR db-0.db.options.svc.cluster.local.", rev("10.21.0.1") + " 30 IN PTR db-0.peers.options.svc.cluster.local."}
	same := func(k *dns.Msg) *dns.Msg { return k }
	negativeTTL := func(k *dns.Msg) *dns.Msg {
		k = k.Copy()
		for _, rr := range k.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Hdr.Ttl, soa.Minttl = 5, 5
			}
		}
		return k
	}
	for _, c := range []struct {
		at          string
		name        string
		qtype       uint16
		want        func(kubernetes *dns.Msg) *dns.Msg // nil: NXDOMAIN
		twin, stale bool                               // ask kubernetes the twin's name; a negative answer kubernetes would give
	}{
		// negative_ttl: the negative answers under an existing headless
		// service, a pod not ready, one that does not exist, a port nobody
		// serves, a type without address, carry its TTL; answers do not.
		{at: negative, name: "web-1." + base("web"), qtype: dns.TypeA, want: negativeTTL, stale: true},
		{at: negative, name: "web-9." + base("web"), qtype: dns.TypeA, want: negativeTTL, stale: true},
		{at: negative, name: "_http._udp." + base("web"), qtype: dns.TypeSRV, want: negativeTTL, stale: true},
		{at: negative, name: base("web"), qtype: dns.TypeAAAA, want: negativeTTL, stale: true},
		{at: negative, name: "web-0." + base("web"), qtype: dns.TypeA, want: same},
		{at: negative, name: base("missing"), qtype: dns.TypeA, want: same},
		// stable_ptr: the PTR of a pod is its stable names alone; other
		// addresses are the next plugin's, or no one's alone.
		{at: stable, name: rev("10.21.0.1"), qtype: dns.TypePTR, want: func(k *dns.Msg) *dns.Msg { k = k.Copy(); k.Answer = records(t, stableNames...); return k }},
		{at: stableAlone, name: rev("10.21.0.1"), qtype: dns.TypePTR, want: func(k *dns.Msg) *dns.Msg { k = k.Copy(); k.Answer = records(t, stableNames...); return k }},
		{at: stable, name: rev("10.21.0.2"), qtype: dns.TypePTR, want: same},
		{at: stableAlone, name: rev("10.21.0.2"), qtype: dns.TypePTR},
		// terminating_fallback: drain answers as its twin, whose serving
		// endpoints are ready.
		{at: fallback, name: base("drain"), qtype: dns.TypeA, want: same, twin: true},
		{at: fallback, name: base("drain"), qtype: dns.TypeSRV, want: same, twin: true},
		{at: fallback, name: "_http._tcp." + base("drain"), qtype: dns.TypeSRV, want: same, twin: true},
		{at: fallback, name: "db-0." + base("drain"), qtype: dns.TypeA, want: same, twin: true},
		{at: fallback, name: "db-2." + base("drain"), qtype: dns.TypeA, want: same, twin: true},
	} {
		for _, net := range []string{"udp", "tcp"} {
			what := fmt.Sprintf("%s %s over %s at %s", c.name, dns.TypeToString[c.qtype], net, c.at)
			k := testkit.Query(t, net, kubernetes, strings.Replace(c.name, "."+ns+".", "."+map[bool]string{true: twin, false: ns}[c.twin]+".", 1), c.qtype)
			if c.stale && (k.Rcode != dns.RcodeSuccess && k.Rcode != dns.RcodeNameError || len(k.Answer) > 0) {
				t.Fatalf("%s: kubernetes answers %v, the test wants a negative answer", what, k)
			}
			got := testkit.Query(t, net, c.at, c.name, c.qtype)
			if c.want == nil {
				if got.Rcode != dns.RcodeNameError || len(got.Answer) > 0 {
					t.Errorf("%s: %v, want NXDOMAIN", what, got)
				}
				continue
			}
			want := strings.ReplaceAll(normalize(c.want(k)), "."+twin+".svc.", "."+ns+".svc.")
			if g := normalize(got); g != want {
				t.Errorf("%s:\n--- want:\n%s--- got:\n%s", what, want, g)
			}
		}
	}

	// Behind cache 30, which keeps answers of cluster.local too (the Helm
	// chart's), a negative answer is kept 5 s at most, not kubernetes' 30.
	for _, net := range []string{"udp", "tcp"} {
		for range 2 { // the second from the cache
			r := testkit.Query(t, net, behindCache, "web-1."+base("web"), dns.TypeA)
			if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Ttl > 5 {
				t.Errorf("web-1 over %s behind cache 30: %v, want NXDOMAIN kept 5 s at most", net, r)
			}
		}
	}
}

// kubernetesOptions are those of the kubernetes block of deploy/Corefile;
// dropIn is headless with options in front of kubernetes, as there.
var kubernetesOptions = []string{"pods insecure", "fallthrough in-addr.arpa ip6.arpa", "ttl 30"}

func dropIn(options ...string) testkit.Block {
	return testkit.Block{Headless: true, Kubernetes: true, HeadlessOptions: append([]string{"ttl 30"}, options...), KubernetesOptions: kubernetesOptions}
}

// serve starts one CoreDNS on the shared control plane with blocks on ports
// of their own, stopped when the test ends, and returns their addresses, in
// the order of blocks.
func serve(t *testing.T, blocks ...testkit.Block) []string {
	t.Helper()
	return serveOn(t, shared, blocks...)
}

// serveOn is serve on the control plane of e.
func serveOn(t *testing.T, e *env, blocks ...testkit.Block) []string {
	t.Helper()
	ports, err := testkit.FreePorts(len(blocks))
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range blocks {
		blocks[i].Port, blocks[i].Kubeconfig = ports[i], e.cluster.Kubeconfig
		addrs = append(addrs, blocks[i].Addr())
	}
	bin, err := testkit.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := testkit.Start(context.Background(), bin, testkit.Corefile(blocks...), time.Minute, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return addrs
}

// records parses zone file lines.
func records(t *testing.T, lines ...string) []dns.RR {
	t.Helper()
	rrs := make([]dns.RR, len(lines))
	for i, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		rrs[i] = rr
	}
	return rrs
}

// sameRecords fails the test unless got holds the records of the zone file
// lines want, in any order.
func sameRecords(t *testing.T, what string, got []dns.RR, want ...string) {
	t.Helper()
	if g, w := testkit.Records(got), testkit.Records(records(t, want...)); !slices.Equal(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
}
