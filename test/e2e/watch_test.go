package e2e

import (
	"context"
	"regexp"
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

// TestWatchOnAPIServer checks what only a real API server shows of the
// plugin's watches (the root package's watch tests show the rest with a
// fake clientset, which applies no selector): its lists and watches select
// away ClusterIP Services and the EndpointSlice controller's slices of them
// (the audit log says so); a Service switched to ExternalName and a slice
// that loses the headless label leave the index, as the API server sends a
// deletion to a watch they no longer match; and with the namespaces option,
// the hand-written and mirrored slices of selectorless headless Services
// are served as kubernetes alone serves them.
func TestWatchOnAPIServer(t *testing.T) {
	const ns, operator, mirroring = "watch", "operator.example.com", "endpointslicemirroring-controller.k8s.io"
	ctx := context.Background()
	client := shared.cluster.Client
	since := time.Now()
	addr := serve(t, testkit.Block{Headless: true, Namespaces: ns, HeadlessOptions: []string{"ttl 30"}})[0]
	http := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}
	slice := func(svc, name string, eps ...discovery.Endpoint) *discovery.EndpointSlice {
		return testkit.Slice(ns, svc, name, discovery.AddressTypeIPv4, http, eps...)
	}
	o := testkit.Objects{
		Services: []*core.Service{
			testkit.Selectorless(ns, "manual"), testkit.Selectorless(ns, "legacy"), testkit.Headless(ns, "flip"), testkit.Headless(ns, "unlabel"),
			testkit.ClusterIP(ns, "api", testkit.ServicePort("http", 80, core.ProtocolTCP)),
		},
		Slices: []*discovery.EndpointSlice{
			testkit.ManagedBy(slice("manual", "manual-1", testkit.Endpoint("10.70.1.1", "db-0")), operator),
			testkit.ManagedBy(slice("legacy", "legacy-abcde", testkit.Endpoint("10.70.2.1", "old-0"), testkit.Endpoint("10.70.2.2", "")), mirroring),
			slice("flip", "flip-1", testkit.Endpoint("10.70.3.1", "f-0")),
			slice("unlabel", "unlabel-1", testkit.Endpoint("10.70.4.1", "u-0")),
			// The ClusterIP service's, of every manager: none may be served.
			slice("api", "api-1", testkit.Endpoint("10.70.9.1", "api-0")),
			testkit.ManagedBy(slice("api", "api-manual", testkit.Endpoint("10.70.9.2", "api-1")), operator),
			testkit.ManagedBy(slice("api", "api-mirrored", testkit.Endpoint("10.70.9.3", "api-2")), mirroring),
		},
	}
	if err := testkit.Apply(ctx, client, o); err != nil {
		t.Fatal(err)
	}
	name := func(svc string) string { return svc + "." + ns + ".svc.cluster.local." }
	nxdomain := func(names ...string) func() (bool, string) {
		return func() (bool, string) {
			for _, n := range names {
				qtype := dns.TypeA
				if strings.HasSuffix(n, ".in-addr.arpa.") {
					qtype = dns.TypePTR
				}
				for _, network := range []string{"udp", "tcp"} {
					if r := testkit.Query(t, network, addr, n, qtype); r.Rcode != dns.RcodeNameError {
						return false, n + " over " + network + ": " + r.String()
					}
				}
			}
			return true, ""
		}
	}
	testkit.Eventually(t, 15*time.Second, "flip and unlabel served", func() (bool, string) {
		f, u := testkit.Query(t, "udp", addr, name("flip"), dns.TypeA), testkit.Query(t, "udp", addr, name("unlabel"), dns.TypeA)
		return len(f.Answer) == 1 && len(u.Answer) == 1, f.String() + u.String()
	})
	rev := func(ip string) string { r, _ := dns.ReverseAddr(ip); return r }
	notServed := []string{name("api"), "api-1." + name("api"), rev("10.70.9.1"), rev("10.70.9.2"), rev("10.70.9.3")}
	if ok, why := nxdomain(notServed...)(); !ok {
		t.Errorf("the ClusterIP service is served: %s", why)
	}
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

	flip, err := client.CoreV1().Services(ns).Get(ctx, "flip", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flip.Spec = core.ServiceSpec{Type: core.ServiceTypeExternalName, ExternalName: "db.example.org"}
	if _, err := client.CoreV1().Services(ns).Update(ctx, flip, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	unlabel, err := client.DiscoveryV1().EndpointSlices(ns).Get(ctx, "unlabel-1", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(unlabel.Labels, core.IsHeadlessService)
	if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, unlabel, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "flip (now ExternalName) and unlabel (its slice without the label) gone",
		nxdomain(name("flip"), "u-0."+name("unlabel"), rev("10.70.3.1"), rev("10.70.4.1")))
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
	controllerSlice := labels.Set{discovery.LabelManagedBy: sliceController, discovery.LabelServiceName: "api"}
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
