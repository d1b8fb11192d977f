package headless

import (
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsfake "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned/fake"
)

// newTestHeadless returns a started plugin configured by corefile that
// watches a fake clientset holding objs, their EndpointSlices labelled as the
// EndpointSlice controller labels them.
func newTestHeadless(t testing.TB, corefile string, objs ...runtime.Object) (*Headless, *fake.Clientset) {
	t.Helper()
	h, _, err := parse(newController(corefile))
	if err != nil {
		t.Fatalf("parse %q: %v", corefile, err)
	}
	var kube, imports []runtime.Object
	for _, obj := range labelled(objs) {
		if _, ok := obj.(*mcs.ServiceImport); ok {
			imports = append(imports, obj)
		} else {
			kube = append(kube, obj)
		}
	}
	client := fake.NewClientset(kube...)
	h.watcher = newWatcher(client, mcsfake.NewSimpleClientset(imports...).MulticlusterV1alpha1(), h.index, h.watch)
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(10 * time.Second) {
		t.Fatal("the watches did not sync")
	}
	h.Next = nextHandler()
	return h, client
}

// nextHandler stands for the next plugin: it answers NXDOMAIN without a SOA,
// which no answer of the plugin looks like.
func nextHandler() test.Handler {
	return test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
		return dns.RcodeNameError, nil
	})
}

// serve sends m to h and returns the answer.
func serve(t testing.TB, h *Headless, m *dns.Msg) *dns.Msg {
	t.Helper()
	return exchange(t, h, m)
}

// exchange sends m to a plugin and returns its answer or, when it leaves the
// writing to the server, the error answer the server writes.
func exchange(t testing.TB, p plugin.Handler, m *dns.Msg) *dns.Msg {
	t.Helper()
	w := dnstest.NewRecorder(&test.ResponseWriter{})
	rcode, err := p.ServeDNS(context.Background(), w, m)
	if w.Msg != nil {
		return w.Msg
	}
	if plugin.ClientWrite(rcode) {
		t.Fatalf("%s wrote no answer and returned %s, %v", p.Name(), dns.RcodeToString[rcode], err)
	}
	return new(dns.Msg).SetRcode(m, rcode)
}

// runCases sends every case to h and checks the answer.
func runCases(t *testing.T, h *Headless, cases []test.Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(dns.TypeToString[tc.Qtype]+" "+tc.Qname, func(t *testing.T) {
			m := serve(t, h, tc.Msg())
			for _, sec := range [][]dns.RR{tc.Answer, tc.Ns, tc.Extra} {
				sort.Sort(test.RRSet(sec))
			}
			if err := test.SortAndCheck(m, tc); err != nil {
				t.Error(err)
			}
			// SortAndCheck compares only a SOA's name server; its minimum
			// is what resolvers cache a negative answer for (RFC 2308).
			for i, rr := range tc.Ns {
				if want, ok := rr.(*dns.SOA); ok && i < len(m.Ns) {
					if got, ok := m.Ns[i].(*dns.SOA); !ok || got.Minttl != want.Minttl {
						t.Errorf("authority %d is %s, want SOA minimum %d", i, m.Ns[i], want.Minttl)
					}
				}
			}
		})
	}
}

// eventually polls cond until it holds or fails the test after 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	getOptions    = meta.GetOptions{}
	createOptions = meta.CreateOptions{}
	updateOptions = meta.UpdateOptions{}
	deleteOptions = meta.DeleteOptions{}
)

func newController(corefile string) *caddy.Controller {
	return caddy.NewTestController("dns", corefile)
}

// reverse returns the PTR query name of ip.
func reverse(ip string) string {
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return r
}

// objects returns the Services and EndpointSlices of o for a fake clientset.
func objects(o testkit.Objects) []runtime.Object {
	var objs []runtime.Object
	for _, s := range o.Services {
		objs = append(objs, s)
	}
	for _, s := range o.Slices {
		objs = append(objs, s)
	}
	return objs
}

// labelled returns objs with the EndpointSlices of their headless Services
// labelled as the EndpointSlice controller labels them.
func labelled(objs []runtime.Object) []runtime.Object {
	var o testkit.Objects
	var rest []runtime.Object
	for _, obj := range objs {
		switch x := obj.(type) {
		case *core.Service:
			o.Services = append(o.Services, x)
		case *discovery.EndpointSlice:
			o.Slices = append(o.Slices, x)
		default:
			rest = append(rest, obj)
		}
	}
	return append(objects(testkit.Labelled(o)), rest...)
}

// consul returns the seed scenario: the consul-server StatefulSet's headless
// service with its eight ports and three pods.
func consul() []runtime.Object { return objects(testkit.Consul("default")) }

// clusterIPService is a ClusterIP service with its address, which the fake
// clientset does not allocate.
func clusterIPService(namespace, name, ip string) *core.Service {
	s := testkit.ClusterIP(namespace, name, testkit.ServicePort("http", 80, core.ProtocolTCP))
	s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
	return s
}

// sliceOf is an IPv4 EndpointSlice of service.
func sliceOf(namespace, service, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return testkit.Slice(namespace, service, name, discovery.AddressTypeIPv4, ports, eps...)
}

// headlessSlice is sliceOf with the label the EndpointSlice controller puts
// on the slices of a headless service.
func headlessSlice(namespace, service, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return testkit.HeadlessLabel(sliceOf(namespace, service, name, ports, eps...))
}

// TestName checks that the name the plugin answers to is the directive
// plugin.cfg builds it under and the one its setup is registered for: a
// server finds its plugins by name (dnsserver.Config.Handlers), and the
// ready and metrics plugins see the plugin only when the two agree.
func TestName(t *testing.T) {
	h := &Headless{}
	cfg, err := os.ReadFile("plugin.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var directives []string
	directive := ""
	for _, line := range strings.Split(string(cfg), "\n") {
		name, pkg, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		directives = append(directives, name)
		if pkg == "github.com/headlessdns/headless" {
			directive = name
		}
	}
	if directive != h.Name() {
		t.Fatalf("plugin.cfg builds the plugin as %q, Name() is %q", directive, h.Name())
	}
	if _, err := caddy.DirectiveAction("dns", h.Name()); err != nil {
		t.Errorf("no setup registered for %q: %v", h.Name(), err)
	}

	// A server with plugin.cfg's directives finds the handler, as the ready
	// plugin looks for it.
	stock := dnsserver.Directives
	t.Cleanup(func() { dnsserver.Directives = stock })
	dnsserver.Directives = directives
	c := &dnsserver.Config{Zone: "cluster.local.", ListenHosts: []string{"127.0.0.1"}, Port: "0",
		Plugin: []plugin.Plugin{func(plugin.Handler) plugin.Handler { return h }}}
	if _, err := dnsserver.NewServer("dns://127.0.0.1:0", []*dnsserver.Config{c}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Handlers(), plugin.Handler(h)) {
		t.Errorf("the server's handlers %v do not hold the plugin", c.Handlers())
	}
}

func TestReady(t *testing.T) {
	h := &Headless{}
	if h.Ready() {
		t.Error("Ready() is true without a watcher")
	}
	h, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	h.watcher = newWatcher(fake.NewClientset(), nil, h.index, h.watch)
	if h.Ready() {
		t.Error("Ready() is true before the watches started")
	}
	h, _ = newTestHeadless(t, "headless cluster.local", consul()...)
	if !h.Ready() {
		t.Error("Ready() is false after the watches synced")
	}
}
