package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

const watchNS = "watch"

// watchObjects are the objects of TestWatchOnlyHeadless: headless services
// whose slices come from the EndpointSlice controller, by hand and from the
// mirroring controller; and a ClusterIP service with slices of all three.
func watchObjects() testkit.Objects {
	http := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	const (
		operator  = "operator.example.com"
		mirroring = "endpointslicemirroring-controller.k8s.io"
	)
	return testkit.Objects{
		Services: []*core.Service{
			testkit.Headless(watchNS, "web"), testkit.Selectorless(watchNS, "manual"), testkit.Selectorless(watchNS, "legacy"),
			testkit.Headless(watchNS, "flip"), testkit.Headless(watchNS, "unlabel"),
			testkit.ClusterIP(watchNS, "api", testkit.ServicePort("http", 80, core.ProtocolTCP)),
		},
		Slices: []*discovery.EndpointSlice{
			testkit.Slice(watchNS, "web", "web-1", discovery.AddressTypeIPv4, http,
				testkit.Endpoint("10.70.0.1", "web-0"), testkit.Endpoint("10.70.0.2", "web-1")),
			testkit.ManagedBy(testkit.Slice(watchNS, "manual", "manual-1", discovery.AddressTypeIPv4, http,
				testkit.Endpoint("10.70.1.1", "db-0")), operator),
			testkit.ManagedBy(testkit.Slice(watchNS, "legacy", "legacy-abcde", discovery.AddressTypeIPv4, http,
				testkit.Endpoint("10.70.2.1", "old-0"), testkit.Endpoint("10.70.2.2", "")), mirroring),
			testkit.Slice(watchNS, "flip", "flip-1", discovery.AddressTypeIPv4, http, testkit.Endpoint("10.70.3.1", "f-0")),
			testkit.Slice(watchNS, "unlabel", "unlabel-1", discovery.AddressTypeIPv4, http,
				testkit.Endpoint("10.70.4.1", "u-0"), testkit.Endpoint("10.70.4.2", "u-1")),
			// The ClusterIP service's: none may be served, and the first
			// must not even reach the plugin.
			testkit.Slice(watchNS, "api", "api-1", discovery.AddressTypeIPv4, http, testkit.Endpoint("10.70.9.1", "api-0")),
			testkit.ManagedBy(testkit.Slice(watchNS, "api", "api-manual", discovery.AddressTypeIPv4, http, testkit.Endpoint("10.70.9.2", "api-1")), operator),
			testkit.ManagedBy(testkit.Slice(watchNS, "api", "api-mirrored", discovery.AddressTypeIPv4, http, testkit.Endpoint("10.70.9.3", "api-2")), mirroring),
		},
	}
}

// gauges returns the values of the plugin's gauges of headless services and
// endpoints at the prometheus URL metrics.
func gauges(t *testing.T, metrics string) (services, endpoints int) {
	t.Helper()
	code, body := testkit.Get(metrics)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", metrics, code, body)
	}
	values := map[string]int{}
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "coredns_headless_services" || f[0] == "coredns_headless_endpoints") {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			values[f[0]] = int(v)
		}
	}
	if len(values) != 2 {
		t.Fatalf("%s has no headless gauges:\n%s", metrics, body)
	}
	return values["coredns_headless_services"], values["coredns_headless_endpoints"]
}

// TestWatchOnlyHeadless checks, on a real API server, that the plugin
// watches only headless objects: a ClusterIP service and its slices never
// reach the index, which its gauges and its answers alone show, and its
// requests ask the API server for nothing else; a service switched to
// ExternalName and a slice that loses the headless label leave the index,
// as the API server sends a deletion to a watch they no longer match; the
// slices of selectorless headless services, hand-written or mirrored, are
// served.
func TestWatchOnlyHeadless(t *testing.T) {
	ctx := context.Background()
	client := shared.cluster.Client
	since := time.Now()
	// A server of its own for the gauges, which count what every instance
	// of the process indexes, of this test's namespace alone.
	ports, err := testkit.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	addr, metrics := testkit.Addr(ports[0]), "http://"+testkit.Addr(ports[1])+"/metrics"
	corefile := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    prometheus %s
    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        namespaces %s
        ttl 30
    }
}
`, ports[0], testkit.Addr(ports[1]), shared.cluster.Kubeconfig, watchNS)
	bin, err := testkit.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := testkit.Start(ctx, bin, corefile, time.Minute, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := testkit.Apply(ctx, client, watchObjects()); err != nil {
		t.Fatal(err)
	}
	api, err := client.CoreV1().Services(watchNS).Get(ctx, "api", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	name := func(svc string) string { return svc + "." + watchNS + ".svc.cluster.local." }
	served := func(svcs ...string) func() (bool, string) {
		return func() (bool, string) {
			for _, svc := range svcs {
				if r := testkit.Query(t, "udp", addr, name(svc), dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					return false, svc + ": " + r.String()
				}
			}
			return true, ""
		}
	}
	gone := func(svc string) func() (bool, string) {
		return func() (bool, string) {
			r := testkit.Query(t, "udp", addr, name(svc), dns.TypeA)
			return r.Rcode == dns.RcodeNameError, r.String()
		}
	}
	s.Eventually(t, 15*time.Second, "the headless services served", served("web", "manual", "legacy", "flip", "unlabel"))
	notServed := func(what string) {
		t.Helper()
		for _, network := range []string{"udp", "tcp"} {
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{name("api"), dns.TypeA}, {name("api"), dns.TypeSRV}, {"api-1." + name("api"), dns.TypeA}, {"api-2." + name("api"), dns.TypeA}} {
				if r := testkit.Query(t, network, addr, q.name, q.qtype); r.Rcode != dns.RcodeNameError || len(r.Answer) > 0 {
					t.Errorf("%s: %s %s over %s: %s, want NXDOMAIN", what, q.name, dns.TypeToString[q.qtype], network, r)
				}
			}
			for _, ip := range []string{"10.70.9.1", "10.70.9.2", "10.70.9.3", api.Spec.ClusterIP} {
				rev, _ := dns.ReverseAddr(ip)
				if r := testkit.Query(t, network, addr, rev, dns.TypePTR); r.Rcode != dns.RcodeNameError || len(r.Answer) > 0 {
					t.Errorf("%s: PTR of %s, of the ClusterIP service, over %s: %s, want NXDOMAIN", what, ip, network, r)
				}
			}
		}
	}
	checkGauges := func(what string, services, endpoints int) {
		t.Helper()
		s.Eventually(t, 10*time.Second, fmt.Sprintf("%s: gauges of %d services and %d endpoints", what, services, endpoints), func() (bool, string) {
			gs, ge := gauges(t, metrics)
			return gs == services && ge == endpoints, fmt.Sprintf("%d services, %d endpoints", gs, ge)
		})
	}
	notServed("at first")
	checkGauges("at first", 5, 8)

	// The hand-written and mirrored slices of selectorless services are
	// served as the kubernetes plugin serves them.
	for _, q := range []string{name("manual"), "db-0." + name("manual"), name("legacy"), "old-0." + name("legacy"), "10-70-2-2." + name("legacy")} {
		for _, network := range []string{"udp", "tcp"} {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
				want := normalize(testkit.Query(t, network, shared.kubernetes, q, qtype))
				if got := normalize(testkit.Query(t, network, addr, q, qtype)); got != want {
					t.Errorf("%s %s over %s:\n%s\nkubernetes alone:\n%s", q, dns.TypeToString[qtype], network, got, want)
				}
			}
		}
	}

	// flip becomes an ExternalName service, unlabel's slice loses the
	// label: both leave what the plugin watches.
	flip, err := client.CoreV1().Services(watchNS).Get(ctx, "flip", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flip.Spec = core.ServiceSpec{Type: core.ServiceTypeExternalName, ExternalName: "db.example.org"}
	if _, err := client.CoreV1().Services(watchNS).Update(ctx, flip, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice, err := client.DiscoveryV1().EndpointSlices(watchNS).Get(ctx, "unlabel-1", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(slice.Labels, core.IsHeadlessService)
	if _, err := client.DiscoveryV1().EndpointSlices(watchNS).Update(ctx, slice, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Eventually(t, 10*time.Second, "flip (now ExternalName) and unlabel (its slice without the label) gone", func() (bool, string) {
		flipGone, flip := gone("flip")()
		unlabelGone, unlabel := gone("unlabel")()
		return flipGone && unlabelGone, fmt.Sprintf("flip:\n%s\nunlabel:\n%s", flip, unlabel)
	})
	testkit.Eventually(t, 10*time.Second, "the kubernetes plugin answers flip with its external name", func() (bool, string) {
		r := testkit.Query(t, "udp", shared.kubernetes, name("flip"), dns.TypeA)
		return len(r.Answer) > 0 && r.Answer[0].Header().Rrtype == dns.TypeCNAME, r.String()
	})
	for _, ip := range []string{"10.70.3.1", "10.70.4.1"} {
		rev, _ := dns.ReverseAddr(ip)
		if r := testkit.Query(t, "udp", addr, rev, dns.TypePTR); r.Rcode != dns.RcodeNameError {
			t.Errorf("PTR of %s, gone: %s", ip, r)
		}
	}
	notServed("after the changes")
	// unlabel is still a headless service, without endpoints.
	checkGauges("after the changes", 4, 5)

	checkWatchRequests(t, since)
}

// pluginAgent matches the user agent of the plugin, not the kubernetes
// plugin's ("CoreDNS/1.15.0 git_commit:...").
var pluginAgent = regexp.MustCompile(`^CoreDNS/\S+ headless \(`)

// checkWatchRequests reads the API server's audit log: every list and watch
// of services and EndpointSlices the plugin made since the given time must
// have selected away the ClusterIP services and the EndpointSlice
// controller's slices of services that are not headless.
func checkWatchRequests(t *testing.T, since time.Time) {
	events, err := shared.cluster.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := fields.Set{"spec.clusterIP": "10.96.0.10"}
	controllerSlice := labels.Set{discovery.LabelManagedBy: "endpointslice-controller.k8s.io", discovery.LabelServiceName: "api"}
	counts := map[string]int{}
	for _, e := range events {
		if !pluginAgent.MatchString(e.UserAgent) || e.Received.Before(since) || (e.Verb != "list" && e.Verb != "watch") {
			continue
		}
		q := e.Query()
		switch e.ObjectRef.Resource {
		case "services":
			sel, err := fields.ParseSelector(q.Get("fieldSelector"))
			if err != nil || sel.Empty() || sel.Matches(clusterIP) {
				t.Errorf("the plugin asked for ClusterIP services: %s %s", e.Verb, e.RequestURI)
			}
		case "endpointslices":
			sel, err := labels.Parse(q.Get("labelSelector"))
			if err != nil || sel.Empty() || sel.Matches(controllerSlice) {
				t.Errorf("the plugin asked for the slices of ClusterIP services: %s %s", e.Verb, e.RequestURI)
			}
		}
		counts[e.ObjectRef.Resource]++
	}
	t.Logf("the plugin's lists and watches since the test began: %v", counts)
	if counts["services"] == 0 || counts["endpointslices"] < 2 {
		t.Errorf("the audit log has %v lists and watches of the plugin, want services and endpointslices", counts)
	}
}
