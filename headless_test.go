package headless

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

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

func headlessService(namespace, name string) *core.Service {
	return &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       core.ServiceSpec{ClusterIP: core.ClusterIPNone, ClusterIPs: []string{core.ClusterIPNone}},
	}
}

func clusterIPService(namespace, name, ip string) *core.Service {
	return &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec: core.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}, Ports: []core.ServicePort{
			{Name: "http", Port: 80, Protocol: core.ProtocolTCP},
		}},
	}
}

func endpointSliceOf(namespace, service, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
			discovery.LabelServiceName: service,
			discovery.LabelManagedBy:   "endpointslice-controller.k8s.io",
		}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func port(name string, number int32, protocol core.Protocol) discovery.EndpointPort {
	return discovery.EndpointPort{Name: &name, Port: &number, Protocol: &protocol}
}

func endpoint(ip, hostname string) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{ip}}
	if hostname != "" {
		e.Hostname = &hostname
	}
	return e
}

func withReady(e discovery.Endpoint, ready bool) discovery.Endpoint {
	e.Conditions.Ready = &ready
	return e
}

func withPod(e discovery.Endpoint, pod string) discovery.Endpoint {
	e.TargetRef = &core.ObjectReference{Kind: "Pod", Name: pod}
	return e
}

// consul returns the seed scenario: the consul-server StatefulSet's headless
// service with its eight ports and three pods.
func consul() []runtime.Object {
	ports := []discovery.EndpointPort{
		port("http", 8500, core.ProtocolTCP),
		port("serflan-tcp", 8301, core.ProtocolTCP),
		port("serflan-udp", 8301, core.ProtocolUDP),
		port("serfwan-tcp", 8302, core.ProtocolTCP),
		port("serfwan-udp", 8302, core.ProtocolUDP),
		port("server", 8300, core.ProtocolTCP),
		port("dns-tcp", 8600, core.ProtocolTCP),
		port("dns-udp", 8600, core.ProtocolUDP),
	}
	return []runtime.Object{
		headlessService("default", "consul-server"),
		endpointSliceOf("default", "consul-server", "consul-server-abcde", ports,
			endpoint("10.244.1.10", "consul-server-0"),
			endpoint("10.244.2.11", "consul-server-1"),
			endpoint("10.244.3.12", "consul-server-2"),
		),
	}
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
