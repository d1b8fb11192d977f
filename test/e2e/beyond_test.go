package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The options beyond the kubernetes plugin: negative_ttl, stable_ptr and
// terminating_fallback. Each test runs CoreDNS processes of its own, started
// once its objects exist so that no cache holds an answer from before, and
// compares the plugin with the option on and off against the kubernetes
// plugin alone in the same process: on, the answers differ only as the
// option documents; off, the drop-in answers the names the option would
// change exactly as kubernetes does. negative_ttl and stable_ptr also run in
// deploy/Corefile's shape: kubeadm's cache, which keeps nothing of
// cluster.local, and, for negative_ttl, the Helm chart's plain cache 30.

// TestNegativeTTL checks negative_ttl: the negative answers for names under
// an existing headless service carry its TTL, so that behind cache 30 a
// client that asked for a pod before it was ready is told that the negative
// answer is kept 5 s at most, not kubernetes' 30 s, and gets the address
// once the cache lets it go. The TTLs say how long; the test does not time
// it (make bench does).
// Behind kubeadm's cache, which keeps no answer of cluster.local, every
// setup serves the address once the endpoint is ready.
func TestNegativeTTL(t *testing.T) {
	const ns = "negative"
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	pods := func(web1Ready bool) *discovery.EndpointSlice {
		return testkit.HeadlessSlice(ns, "web", "web-1", discovery.AddressTypeIPv4, web,
			testkit.Endpoint("10.20.0.1", "web-0"), testkit.Ready(testkit.Endpoint("10.20.0.2", "web-1"), web1Ready))
	}
	objs := testkit.Objects{
		Services: []*core.Service{testkit.Headless(ns, "web"), testkit.Headless(ns, "starting")},
		Slices: []*discovery.EndpointSlice{pods(false), testkit.Slice(ns, "starting", "starting-1", discovery.AddressTypeIPv4, web,
			testkit.Ready(testkit.Endpoint("10.20.1.1", "s-0"), false))},
	}
	if err := testkit.Apply(context.Background(), shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	addrs := serve(t, kubernetesAlone, dropIn(), dropIn("negative_ttl 5"))
	kubernetes, off, on := addrs[0], addrs[1], addrs[2]

	// The names negative_ttl changes: a pod that is not ready, a pod that
	// does not exist, a _port._proto that selects nothing, a type the
	// service has no address of, a service without a ready endpoint.
	const pod = "web-1.web.negative.svc.cluster.local."
	changed := []question{
		{pod, dns.TypeA}, {"web-9.web.negative.svc.cluster.local.", dns.TypeA},
		{"_http._udp.web.negative.svc.cluster.local.", dns.TypeSRV},
		{"web.negative.svc.cluster.local.", dns.TypeAAAA},
		{"starting.negative.svc.cluster.local.", dns.TypeA}, {"s-0.starting.negative.svc.cluster.local.", dns.TypeA},
	}
	// Answers and the names of no headless service stay as they are.
	unchanged := []question{
		{"web-0.web.negative.svc.cluster.local.", dns.TypeA}, {"web.negative.svc.cluster.local.", dns.TypeSRV},
		{"missing.negative.svc.cluster.local.", dns.TypeA},
	}
	for _, net := range []string{"udp", "tcp"} {
		for _, p := range changed {
			want := testkit.Query(t, net, kubernetes, p.name, p.qtype)
			if want.Rcode == dns.RcodeSuccess && len(want.Answer) > 0 {
				t.Fatalf("%s %s: kubernetes answers %v, the test wants a negative answer", p.name, dns.TypeToString[p.qtype], want.Answer)
			}
			sameAs(t, net, off, p, want)
			sameAs(t, net, on, p, negativeTTL(want, 5))
		}
		for _, p := range unchanged {
			want := testkit.Query(t, net, kubernetes, p.name, p.qtype)
			sameAs(t, net, off, p, want)
			sameAs(t, net, on, p, want)
		}
	}

	// deploy/Corefile as shipped (kubeadm's cache) and stock CoreDNS beside
	// it; then deploy/Corefile, the drop-in that changes nothing and stock
	// CoreDNS, each behind the Helm chart's plain cache 30. A client asks for
	// the pod before it is ready and keeps asking once it is.
	servers := []struct {
		name, addr string
		on, cached bool // negative_ttl; a cache that keeps the NXDOMAIN
	}{
		{"deploy/Corefile", deployed(t), true, false},
		{"kubernetes alone, kubeadm's cache", deployed(t, headlessOff...), false, false},
		{"deploy/Corefile, cache 30", deployed(t, plainCache), true, true},
		{"drop-in without the options, cache 30", deployed(t, slices.Concat(optionsOff, []edit{plainCache})...), false, true},
		{"kubernetes alone, cache 30", deployed(t, slices.Concat(headlessOff, []edit{plainCache})...), false, true},
	}
	for _, s := range servers {
		for _, net := range []string{"udp", "tcp"} {
			if r := testkit.Query(t, net, s.addr, "web-0.web.negative.svc.cluster.local.", dns.TypeA); len(r.Answer) != 1 {
				t.Fatalf("%s does not serve the ready pod yet:\n%v", s.name, r)
			}
			r := testkit.Query(t, net, s.addr, pod, dns.TypeA)
			if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
				t.Fatalf("%s answers %s before it is ready over %s:\n%v", s.name, pod, net, r)
			}
			// The TTL the cache keeps the negative answer for.
			switch ttl := r.Ns[0].Header().Ttl; {
			case s.on && ttl > 5:
				t.Errorf("%s: negative answer over %s with TTL %d, want at most negative_ttl 5", s.name, net, ttl)
			case !s.on && ttl <= 8:
				t.Errorf("%s: negative answer over %s with TTL %d, want kubernetes' 30", s.name, net, ttl)
			}
		}
	}
	if err := testkit.Apply(context.Background(), shared.cluster.Client, testkit.Objects{Slices: []*discovery.EndpointSlice{pods(true)}}); err != nil {
		t.Fatal(err)
	}
	// The change reaches DNS: without a cache, every server has the address.
	for _, addr := range []string{kubernetes, off, on} {
		testkit.Eventually(t, liveness, pod+" at "+addr+" once ready", func() (bool, string) {
			r := testkit.Query(t, "udp", addr, pod, dns.TypeA)
			return hasAddress(r, "10.20.0.2"), r.String()
		})
	}
	// Behind the cache, a negative answer still served says how long the
	// cache keeps it: deploy/Corefile's at most negative_ttl's 5 s, after
	// which it serves the address; the others' up to kubernetes' 30 s,
	// which the test does not wait for. kubeadm's cache keeps none: those
	// servers serve the address.
	for _, s := range servers {
		limit := uint32(30)
		if s.on {
			limit = 5
		}
		for _, net := range []string{"udp", "tcp"} {
			cached := func() (bool, string) {
				r := testkit.Query(t, net, s.addr, pod, dns.TypeA)
				switch {
				case hasAddress(r, "10.20.0.2"):
					return true, ""
				case r.Rcode != dns.RcodeNameError || len(r.Ns) != 1:
					t.Fatalf("%s over %s: neither NXDOMAIN nor 10.20.0.2:\n%v", s.name, net, r)
				case r.Ns[0].Header().Ttl > limit:
					t.Fatalf("%s over %s: a negative answer kept %d s more, want at most %d:\n%v", s.name, net, r.Ns[0].Header().Ttl, limit, r)
				}
				return false, r.String()
			}
			if s.on || !s.cached {
				testkit.Eventually(t, liveness, s.name+": "+pod+" over "+net+" once the cache lets the negative answer go", cached)
			} else {
				cached()
			}
		}
	}
}

// hasAddress reports whether r answers the address ip alone.
func hasAddress(r *dns.Msg, ip string) bool {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return false
	}
	a, ok := r.Answer[0].(*dns.A)
	return ok && a.A.String() == ip
}

// TestStablePTR checks stable_ptr: the PTR of a pod's address is exactly
// its stable names, one per headless service that gives it a hostname, even
// when other services select it; other addresses are the next plugin's, or
// NXDOMAIN when the plugin is alone.
func TestStablePTR(t *testing.T) {
	ctx := context.Background()
	const ns = "stable-ptr"
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	slice := func(service string, endpoints ...discovery.Endpoint) *discovery.EndpointSlice {
		return testkit.Slice(ns, service, service+"-1", discovery.AddressTypeIPv4, web, endpoints...)
	}
	// db-0 (10.21.0.1) is named by db and peers, selected without a
	// hostname by anon and the ClusterIP service front; 10.21.0.2 has no
	// hostname anywhere.
	objs := testkit.Objects{
		Services: []*core.Service{
			testkit.Headless(ns, "db"), testkit.Headless(ns, "peers"), testkit.Headless(ns, "anon"),
			testkit.ClusterIP(ns, "front", testkit.ServicePort("http", 80, core.ProtocolTCP)),
		},
		Slices: []*discovery.EndpointSlice{
			slice("db", testkit.Endpoint("10.21.0.1", "db-0"), testkit.Endpoint("10.21.0.2", "")),
			slice("peers", testkit.Endpoint("10.21.0.1", "db-0")),
			slice("anon", testkit.Endpoint("10.21.0.1", "")),
			slice("front", testkit.Endpoint("10.21.0.1", ""), testkit.Endpoint("10.21.0.2", "")),
		},
	}
	if err := testkit.Apply(ctx, shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	front, err := shared.cluster.Client.CoreV1().Services(ns).Get(ctx, "front", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := serve(t, kubernetesAlone, dropIn(), dropIn("stable_ptr"), alone("stable_ptr"))
	kubernetes, off, on, headless := addrs[0], addrs[1], addrs[2], addrs[3]

	reverse := func(ip string) string { r, _ := dns.ReverseAddr(ip); return r }
	pod, nameless, vip := reverse("10.21.0.1"), reverse("10.21.0.2"), reverse(front.Spec.ClusterIP)
	stable := records(t,
		pod+" 30 IN PTR db-0.db.stable-ptr.svc.cluster.local.",
		pod+" 30 IN PTR db-0.peers.stable-ptr.svc.cluster.local.")
	all := records(t,
		pod+" 30 IN PTR db-0.db.stable-ptr.svc.cluster.local.",
		pod+" 30 IN PTR db-0.peers.stable-ptr.svc.cluster.local.",
		pod+" 30 IN PTR 10-21-0-1.anon.stable-ptr.svc.cluster.local.",
		pod+" 30 IN PTR 10-21-0-1.front.stable-ptr.svc.cluster.local.")
	for _, net := range []string{"udp", "tcp"} {
		want := testkit.Query(t, net, kubernetes, pod, dns.TypePTR)
		sameRecords(t, "kubernetes: PTR of db-0 over "+net, want.Answer, all, true)
		sameAs(t, net, off, question{pod, dns.TypePTR}, want)
		stableOnly := want.Copy()
		stableOnly.Answer = stable
		sameAs(t, net, on, question{pod, dns.TypePTR}, stableOnly)
		sameAs(t, net, headless, question{pod, dns.TypePTR}, stableOnly)

		for _, name := range []string{nameless, vip} {
			want := testkit.Query(t, net, kubernetes, name, dns.TypePTR)
			if len(want.Answer) == 0 {
				t.Fatalf("kubernetes has no PTR for %s:\n%v", name, want)
			}
			sameAs(t, net, off, question{name, dns.TypePTR}, want)
			sameAs(t, net, on, question{name, dns.TypePTR}, want)
			if r := testkit.Query(t, net, headless, name, dns.TypePTR); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Errorf("headless alone with stable_ptr: PTR %s over %s, want NXDOMAIN:\n%v", name, net, r)
			}
		}
	}

	// In deploy/Corefile's shape, behind kubeadm's cache, which keeps the
	// reverse zones' answers and counts their TTLs down.
	shipped, dropped := deployed(t), deployed(t, optionsOff...)
	for _, net := range []string{"udp", "tcp"} {
		sameRecords(t, "deploy/Corefile: PTR of db-0 over "+net, testkit.Query(t, net, shipped, pod, dns.TypePTR).Answer, stable, false)
		sameRecords(t, "drop-in without the options: PTR of db-0 over "+net, testkit.Query(t, net, dropped, pod, dns.TypePTR).Answer, all, false)
		want := testkit.Query(t, net, kubernetes, nameless, dns.TypePTR).Answer
		for _, addr := range []string{shipped, dropped} {
			sameRecords(t, "PTR of 10.21.0.2 over "+net+" at "+addr, testkit.Query(t, net, addr, nameless, dns.TypePTR).Answer, want, false)
		}
	}
}

// TestTerminatingFallback checks terminating_fallback: a headless service
// without a ready endpoint answers with its serving and terminating ones,
// exactly as kubernetes answers when they are ready, and only until one is
// ready again.
func TestTerminatingFallback(t *testing.T) {
	ctx := context.Background()
	const ns, twin = "fallback", "fallback-twin"
	web := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	leaving := func(e discovery.Endpoint, serving bool) discovery.Endpoint {
		e = testkit.Ready(e, false)
		terminating := true
		e.Conditions.Serving, e.Conditions.Terminating = &serving, &terminating
		return e
	}
	// drain's slices: db-0 (v4 and v6) and db-1 serving and terminating,
	// db-2 terminating and no longer serving; with db1Ready, db-1 ready.
	drain := func(ns string, db1Ready bool) []*discovery.EndpointSlice {
		db1 := leaving(testkit.Endpoint("10.22.0.2", "db-1"), true)
		if db1Ready {
			db1 = testkit.Endpoint("10.22.0.2", "db-1")
		}
		return []*discovery.EndpointSlice{
			testkit.HeadlessSlice(ns, "drain", "drain-v4", discovery.AddressTypeIPv4, web,
				leaving(testkit.Endpoint("10.22.0.1", "db-0"), true), db1, leaving(testkit.Endpoint("10.22.0.3", "db-2"), false)),
			testkit.HeadlessSlice(ns, "drain", "drain-v6", discovery.AddressTypeIPv6, web,
				leaving(testkit.Endpoint("fd00:22::1", "db-0"), true)),
		}
	}
	// The twin is drain with its serving endpoints ready: the answers that
	// drain should have with the option.
	twinSlices := drain(twin, true)
	twinSlices[0].Endpoints[0] = testkit.Endpoint("10.22.0.1", "db-0")
	twinSlices[1].Endpoints[0] = testkit.Endpoint("fd00:22::1", "db-0")
	objs := testkit.Objects{
		Services: []*core.Service{testkit.Headless(ns, "drain"), testkit.Headless(ns, "stopped"), testkit.Headless(twin, "drain")},
		Slices: append(append(drain(ns, false), twinSlices...), testkit.HeadlessSlice(ns, "stopped", "stopped-1", discovery.AddressTypeIPv4, web,
			leaving(testkit.Endpoint("10.22.1.1", "st-0"), false))),
	}
	if err := testkit.Apply(ctx, shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	addrs := serve(t, kubernetesAlone, dropIn(), dropIn("terminating_fallback"))
	kubernetes, off, on := addrs[0], addrs[1], addrs[2]

	// The names of drain, in namespace ns.
	names := func(ns string) []question {
		svc := "drain." + ns + ".svc.cluster.local."
		return []question{
			{svc, dns.TypeA}, {svc, dns.TypeAAAA}, {svc, dns.TypeSRV},
			{"_http._tcp." + svc, dns.TypeSRV}, {"_http._udp." + svc, dns.TypeSRV},
			{"db-0." + svc, dns.TypeA}, {"db-0." + svc, dns.TypeAAAA}, {"db-0." + svc, dns.TypeSRV},
			{"db-1." + svc, dns.TypeA}, {"db-2." + svc, dns.TypeA},
		}
	}
	stopped := []question{{"stopped.fallback.svc.cluster.local.", dns.TypeA}, {"st-0.stopped.fallback.svc.cluster.local.", dns.TypeA}}
	const service = "drain.fallback.svc.cluster.local."

	for _, net := range []string{"udp", "tcp"} {
		if r := testkit.Query(t, net, kubernetes, service, dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("kubernetes answers %s without a ready endpoint:\n%v", service, r)
		}
		sameRecords(t, "terminating_fallback: "+service+" over "+net, testkit.Query(t, net, on, service, dns.TypeA).Answer,
			records(t, service+" 30 IN A 10.22.0.1", service+" 30 IN A 10.22.0.2"), true)
		twins := names(twin)
		for i, p := range names(ns) {
			sameAs(t, net, off, p, testkit.Query(t, net, kubernetes, p.name, p.qtype))
			sameAsTwin(t, net, on, p, testkit.Query(t, net, kubernetes, twins[i].name, p.qtype), twin, ns)
		}
		for _, p := range stopped {
			want := testkit.Query(t, net, kubernetes, p.name, p.qtype)
			sameAs(t, net, off, p, want)
			sameAs(t, net, on, p, want)
		}
	}

	// db-1 ready again: it alone answers, as in kubernetes.
	if err := testkit.Apply(ctx, shared.cluster.Client, testkit.Objects{Slices: drain(ns, true)}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{kubernetes, off, on} {
		testkit.Eventually(t, liveness, service+" to answer db-1 alone at "+addr, func() (bool, string) {
			r := testkit.Query(t, "udp", addr, service, dns.TypeA)
			return len(r.Answer) == 1, r.String()
		})
	}
	for _, net := range []string{"udp", "tcp"} {
		sameRecords(t, "terminating_fallback, db-1 ready: "+service+" over "+net, testkit.Query(t, net, on, service, dns.TypeA).Answer,
			records(t, service+" 30 IN A 10.22.0.2"), true)
		for _, p := range names(ns) {
			want := testkit.Query(t, net, kubernetes, p.name, p.qtype)
			sameAs(t, net, off, p, want)
			sameAs(t, net, on, p, want)
		}
	}
}

// question is a name and a type to ask.
type question struct {
	name  string
	qtype uint16
}

// block is one server block of a test's CoreDNS: the plugins configured as
// in deploy/Corefile, without the cache, so that answers compare whole.
type block struct {
	headless   bool
	options    []string // of headless, beyond kubeconfig and ttl 30
	kubernetes bool     // behind headless, which then falls through to it
}

var kubernetesAlone = block{kubernetes: true}

// dropIn is headless with options in front of kubernetes.
func dropIn(options ...string) block {
	return block{headless: true, options: options, kubernetes: true}
}

// alone is headless with options and no plugin behind it.
func alone(options ...string) block { return block{headless: true, options: options} }

func (b block) corefile(port int, kubeconfig string) string {
	var s strings.Builder
	fmt.Fprintf(&s, ".:%d {\n    bind 127.0.0.1\n", port)
	if b.headless {
		fmt.Fprintf(&s, "    headless %s {\n        kubeconfig %s\n        ttl 30\n", testkit.DefaultZones, kubeconfig)
		for _, o := range b.options {
			fmt.Fprintf(&s, "        %s\n", o)
		}
		if b.kubernetes {
			s.WriteString("        fallthrough\n")
		}
		s.WriteString("    }\n")
	}
	if b.kubernetes {
		fmt.Fprintf(&s, "    kubernetes %s {\n        kubeconfig %s\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n",
			testkit.DefaultZones, kubeconfig)
	}
	s.WriteString("}\n")
	return s.String()
}

// serve starts one CoreDNS with blocks and returns their addresses, in the
// order of blocks.
func serve(t *testing.T, blocks ...block) []string {
	t.Helper()
	ports, err := testkit.FreePorts(len(blocks))
	if err != nil {
		t.Fatal(err)
	}
	var corefile strings.Builder
	var addrs []string
	for i, b := range blocks {
		corefile.WriteString(b.corefile(ports[i], shared.cluster.Kubeconfig))
		addrs = append(addrs, testkit.Addr(ports[i]))
	}
	startCoreDNS(t, corefile.String(), addrs...)
	return addrs
}

// startCoreDNS runs ./coredns with corefile until the test ends.
func startCoreDNS(t *testing.T, corefile string, addrs ...string) *testkit.Server {
	t.Helper()
	bin, err := testkit.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := testkit.Start(context.Background(), bin, corefile, time.Minute, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// edit replaces the n matches of a pattern of a Corefile with a template
// (regexp.Expand).
type edit struct {
	pattern  string
	n        int
	template string
}

var (
	// optionsOff makes deploy/Corefile the drop-in that changes nothing:
	// headless without the options beyond the kubernetes plugin.
	optionsOff = []edit{{`(?m)^[ \t]*negative_ttl 5\n`, 1, ""}, {`(?m)^[ \t]*stable_ptr\n`, 1, ""}}
	// headlessOff makes deploy/Corefile stock CoreDNS.
	headlessOff = []edit{{`(?m)^[ \t]*headless [^{]*\{[^}]*\}\n`, 1, ""}}
	// plainCache puts the Helm chart's cache 30, which keeps the answers of
	// cluster.local too, in place of kubeadm's.
	plainCache = edit{`(?m)^([ \t]*)cache 30 \{[^}]*\}\n`, 1, "${1}cache 30\n"}
)

// deployed starts a CoreDNS with deploy/Corefile changed by edits and
// returns its address once the ready plugin says it is ready.
func deployed(t *testing.T, edits ...edit) string {
	t.Helper()
	ports, err := testkit.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	s := startCoreDNS(t, deployCorefile(t, ports[0], ports[1], ports[2], edits...), testkit.Addr(ports[0]))
	url := "http://" + testkit.Addr(ports[1]) + "/ready"
	s.Eventually(t, liveness, url, func() (bool, string) {
		code, body := testkit.Get(url)
		return code == http.StatusOK, body
	})
	return testkit.Addr(ports[0])
}

// deployCorefile returns deploy/Corefile as a test runs it, then changed by
// edits: the server on 127.0.0.1:port, ready and prometheus on ports of
// their own, both plugins with the test cluster's kubeconfig; without health,
// whose probes are the kubelet's and whose lameduck only delays the stop,
// and without forward, which would leave loopback. It fails the test when
// deploy/Corefile no longer has the lines these changes expect.
func deployCorefile(t *testing.T, port, ready, metrics int, edits ...edit) string {
	t.Helper()
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Corefile"))
	if err != nil {
		t.Fatal(err)
	}
	corefile := string(b)
	adapt := []edit{
		{`(?m)^\.:53 \{$`, 1, fmt.Sprintf(".:%d {\n    bind 127.0.0.1", port)},
		{`(?m)^([ \t]*)ready$`, 1, "${1}ready " + testkit.Addr(ready)},
		{`(?m)^([ \t]*)prometheus :9153$`, 1, "${1}prometheus " + testkit.Addr(metrics)},
		{`(?m)^[ \t]*health \{[^}]*\}\n`, 1, ""},
		{`(?m)^[ \t]*forward [^{]*\{[^}]*\}\n`, 1, ""},
		{`(?m)^([ \t]*)((headless|kubernetes) .*\{)$`, 2, "${1}${2}\n${1}    kubeconfig " + shared.cluster.Kubeconfig},
		{`(?m)^[ \t]*cache 30 \{\n[ \t]*disable success cluster\.local\n[ \t]*disable denial cluster\.local\n[ \t]*\}$`, 1, "${0}"},
	}
	for _, e := range append(adapt, edits...) {
		re := regexp.MustCompile(e.pattern)
		if n := len(re.FindAllStringIndex(corefile, -1)); n != e.n {
			t.Fatalf("deploy/Corefile has %d matches of %s, want %d:\n%s", n, e.pattern, e.n, corefile)
		}
		corefile = re.ReplaceAllString(corefile, e.template)
	}
	return corefile
}

// sameAs fails the test unless addr answers p over net exactly as want,
// compared whole with normalize.
func sameAs(t *testing.T, net, addr string, q question, want *dns.Msg) {
	t.Helper()
	w, got := normalize(want), normalize(testkit.Query(t, net, addr, q.name, q.qtype))
	if got != w {
		t.Errorf("%s %s over %s at %s:\n--- want:\n%s--- got:\n%s", q.name, dns.TypeToString[q.qtype], net, addr, w, got)
	}
}

// sameAsTwin is sameAs for a reply of the same name in namespace twin
// instead of ns.
func sameAsTwin(t *testing.T, net, addr string, q question, want *dns.Msg, twin, ns string) {
	t.Helper()
	w := strings.ReplaceAll(normalize(want), "."+twin+".svc.", "."+ns+".svc.")
	if got := normalize(testkit.Query(t, net, addr, q.name, q.qtype)); got != w {
		t.Errorf("%s %s over %s at %s, as its twin in %s:\n--- want:\n%s--- got:\n%s", q.name, dns.TypeToString[q.qtype], net, addr, twin, w, got)
	}
}

// negativeTTL returns m with the TTL and minimum of its SOA records ttl, as
// the plugin writes them with negative_ttl.
func negativeTTL(m *dns.Msg, ttl uint32) *dns.Msg {
	m = m.Copy()
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Hdr.Ttl, soa.Minttl = ttl, ttl
		}
	}
	return m
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

// sameRecords fails the test unless got holds the records of want, in any
// order; without ttl their TTLs, which a cache counts down, are not compared.
func sameRecords(t *testing.T, what string, got, want []dns.RR, ttl bool) {
	t.Helper()
	lines := func(rrs []dns.RR) []string {
		if !ttl {
			rrs = slices.Clone(rrs)
			for i, rr := range rrs {
				rrs[i] = dns.Copy(rr)
				rrs[i].Header().Ttl = 0
			}
		}
		return testkit.Records(rrs)
	}
	if g, w := lines(got), lines(want); !slices.Equal(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
}
