package headless

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/headlessdns/headless/test/cluster"
	"github.com/headlessdns/headless/test/fixtures"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// BenchmarkServeDNS measures the query path of headless and, beside it on the
// same objects, of the kubernetes plugin. Both watch a real local API server:
// the kubernetes plugin cannot be fed a fake clientset from outside its
// package. Run it with `go test -run=^$ -bench=ServeDNS -benchmem .`.
func BenchmarkServeDNS(b *testing.B) {
	ctx := context.Background()
	c, err := cluster.Start(ctx, cluster.Options{AlwaysAllow: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Stop)
	objs := fixtures.Consul("default")
	objs.Add(benchService("bench", "web", 10))
	if err := fixtures.Apply(ctx, c.Client, objs); err != nil {
		b.Fatal(err)
	}
	handlers := []plugin.Handler{benchKubernetes(b, c.Kubeconfig), benchHeadless(b, c.Kubeconfig)}

	for _, q := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"seed-A", "consul-server.default.svc.cluster.local.", dns.TypeA},
		{"seed-SRV", "consul-server.default.svc.cluster.local.", dns.TypeSRV},
		{"pod-A", "web-3.web.bench.svc.cluster.local.", dns.TypeA},
		{"named-SRV", "_http._tcp.web.bench.svc.cluster.local.", dns.TypeSRV},
		{"bare-SRV-10x2", "web.bench.svc.cluster.local.", dns.TypeSRV},
		{"PTR", "3.0.20.10.in-addr.arpa.", dns.TypePTR},
		{"NXDOMAIN", "web-99.web.bench.svc.cluster.local.", dns.TypeA},
	} {
		m := new(dns.Msg).SetQuestion(q.qname, q.qtype)
		sameAnswers(b, handlers, m)
		for _, h := range handlers {
			b.Run(q.name+"/"+h.Name(), func(b *testing.B) {
				w := &test.ResponseWriter{}
				b.ReportAllocs()
				for b.Loop() {
					h.ServeDNS(ctx, w, m)
				}
			})
		}
	}
}

// BenchmarkIndexUpdate measures what one EndpointSlice change costs the
// writer: rebuilding the service's snapshot and publishing it.
func BenchmarkIndexUpdate(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("endpoints-%d", n), func(b *testing.B) {
			ix := newIndex([]string{"cluster.local."})
			svc := &service{name: "web", namespace: "bench", headless: true}
			o := benchService("bench", "web", n)
			ess := []*endpointSlice{toEndpointSlice(o.Slices[0], false)}
			b.ReportAllocs()
			for b.Loop() {
				ix.update("web", "bench", svc, ess)
			}
		})
	}
}

// benchService is a headless service with n endpoints and two ports.
func benchService(namespace, name string, n int) fixtures.Objects {
	var eps []discovery.Endpoint
	for i := range n {
		eps = append(eps, fixtures.Endpoint(netip.AddrFrom4([4]byte{10, byte(20 + i>>16), byte(i >> 8), byte(i)}).String(), fmt.Sprintf("%s-%d", name, i)))
	}
	ports := []discovery.EndpointPort{fixtures.Port("http", 80, core.ProtocolTCP), fixtures.Port("metrics", 9090, core.ProtocolTCP)}
	return fixtures.Objects{
		Services: []*core.Service{fixtures.Headless(namespace, name)},
		Slices:   []*discovery.EndpointSlice{fixtures.Slice(namespace, name, name+"-1", discovery.AddressTypeIPv4, ports, eps...)},
	}
}

func benchHeadless(b *testing.B, kubeconfig string) *Headless {
	h, cc, err := parse(newController("headless cluster.local in-addr.arpa {\nkubeconfig " + kubeconfig + "\n}"))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := cc.restConfig()
	if err != nil {
		b.Fatal(err)
	}
	client, err := newClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if h.watcher, err = newWatcher(client, h.index, h.watch); err != nil {
		b.Fatal(err)
	}
	h.watcher.start()
	b.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(30 * time.Second) {
		b.Fatal("headless did not sync")
	}
	return h
}

func benchKubernetes(b *testing.B, kubeconfig string) *kubernetes.Kubernetes {
	k, err := kubernetes.ParseStanza(newController("kubernetes cluster.local in-addr.arpa {\nkubeconfig " + kubeconfig + "\n}"))
	if err != nil {
		b.Fatal(err)
	}
	onStart, onShut, err := k.InitKubeCache(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := onStart(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { onShut() })
	return k
}

// sameAnswers fails the benchmark unless every handler gives m the same
// rcode and the same number of records: timing a wrong answer is pointless.
func sameAnswers(b *testing.B, handlers []plugin.Handler, m *dns.Msg) {
	var want string
	for i, h := range handlers {
		w := dnstest.NewRecorder(&test.ResponseWriter{})
		deadline := time.Now().Add(10 * time.Second)
		var got string
		for {
			h.ServeDNS(context.Background(), w, m)
			got = fmt.Sprintf("%s %d/%d/%d", dns.RcodeToString[w.Msg.Rcode], len(w.Msg.Answer), len(w.Msg.Ns), len(w.Msg.Extra))
			if i == 0 || got == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if i == 0 {
			want = got
		} else if got != want {
			b.Fatalf("%s %s: %s answers %s, %s answers %s", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], handlers[0].Name(), want, h.Name(), got)
		}
	}
}

// BenchmarkIndexMemory reports the heap the index holds per endpoint for
// 10k services x 10 endpoints x 2 ports, the informers' slim objects aside.
func BenchmarkIndexMemory(b *testing.B) {
	const services, endpoints = 10000, 10
	ess := make([]*endpointSlice, services)
	for i := range ess {
		s := &endpointSlice{name: fmt.Sprintf("svc-%06d-x1", i), namespace: "bench", service: fmt.Sprintf("svc-%06d", i),
			ports: []slicePort{{"http", "TCP", 80}, {"metrics", "TCP", 9090}}}
		for j := range endpoints {
			n := i*endpoints + j
			s.endpoints = append(s.endpoints, sliceEndpoint{netip.AddrFrom4([4]byte{10, byte(128 + n>>16), byte(n >> 8), byte(n)}), fmt.Sprintf("pod-%d", j)})
		}
		ess[i] = s
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := newIndex([]string{"cluster.local."})
		for _, s := range ess {
			ix.update(s.service, "bench", &service{name: s.service, namespace: "bench", headless: true}, []*endpointSlice{s})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(services*endpoints), "B/endpoint")
		runtime.KeepAlive(ix)
	}
}
