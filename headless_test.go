package headless

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/test/fixtures"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// newTestHeadless returns a started plugin configured by corefile that
// watches a fake clientset holding objs.
func newTestHeadless(t testing.TB, corefile string, objs ...runtime.Object) (*Headless, *fake.Clientset) {
	t.Helper()
	h, _, err := parse(newController(corefile))
	if err != nil {
		t.Fatalf("parse %q: %v", corefile, err)
	}
	client := fake.NewSimpleClientset(objs...)
	if h.watcher, err = newWatcher(client, h.index, h.watch); err != nil {
		t.Fatal(err)
	}
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(10 * time.Second) {
		t.Fatal("informers did not sync")
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

// runCases sends every case to h and checks the answer.
func runCases(t *testing.T, h *Headless, cases []test.Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(dns.TypeToString[tc.Qtype]+" "+tc.Qname, func(t *testing.T) {
			w := dnstest.NewRecorder(&test.ResponseWriter{})
			if _, err := h.ServeDNS(context.Background(), w, tc.Msg()); err != nil {
				t.Fatalf("ServeDNS: %v", err)
			}
			if w.Msg == nil {
				t.Fatal("no message written")
			}
			for _, sec := range [][]dns.RR{tc.Answer, tc.Ns, tc.Extra} {
				sort.Sort(test.RRSet(sec))
			}
			if err := test.SortAndCheck(w.Msg, tc); err != nil {
				t.Error(err)
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
func objects(o fixtures.Objects) []runtime.Object {
	var objs []runtime.Object
	for _, s := range o.Services {
		objs = append(objs, s)
	}
	for _, s := range o.Slices {
		objs = append(objs, s)
	}
	return objs
}

// consul returns the seed scenario: the consul-server StatefulSet's headless
// service with its eight ports and three pods.
func consul() []runtime.Object { return objects(fixtures.Consul("default")) }

// clusterIPService is a ClusterIP service with its address, which the fake
// clientset does not allocate.
func clusterIPService(namespace, name, ip string) *core.Service {
	s := fixtures.ClusterIP(namespace, name, fixtures.ServicePort("http", 80, core.ProtocolTCP))
	s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
	return s
}

// sliceOf is an IPv4 EndpointSlice of service.
func sliceOf(namespace, service, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return fixtures.Slice(namespace, service, name, discovery.AddressTypeIPv4, ports, eps...)
}

func TestName(t *testing.T) {
	h := &Headless{}
	if h.Name() != "headless" {
		t.Errorf("Name() = %q, want headless", h.Name())
	}
}

func TestReady(t *testing.T) {
	h := &Headless{}
	if h.Ready() {
		t.Error("Ready() is true without a watcher")
	}
	h, _ = newTestHeadless(t, "headless cluster.local", consul()...)
	if !h.Ready() {
		t.Error("Ready() is false after the informers synced")
	}
}
