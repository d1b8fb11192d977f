package headless

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// BenchmarkServeDNS measures the query path of headless and, beside it on
// the same objects, of the kubernetes plugin, each fed from memory (the
// reference controller of reference_test.go). Run it with
// `go test -run=^$ -bench=ServeDNS -benchmem .`.
func BenchmarkServeDNS(b *testing.B) {
	objs := testkit.Consul("default")
	objs.Add(benchService("bench", "web", 10))
	objs.Add(bigService("bench", "big", 10000))
	all := withNamespaces(labelled(objects(objs)))
	h, _ := newTestHeadless(b, "headless cluster.local in-addr.arpa", all...)
	k := newReference(b, "kubernetes cluster.local in-addr.arpa", all...)
	handlers := []plugin.Handler{k, h}

	for _, q := range []struct {
		name  string
		qname string
		qtype uint16
		tcp   bool
	}{
		{"seed-A", "consul-server.default.svc.cluster.local.", dns.TypeA, false},
		{"seed-SRV", "consul-server.default.svc.cluster.local.", dns.TypeSRV, false},
		{"pod-A", "web-3.web.bench.svc.cluster.local.", dns.TypeA, false},
		{"named-SRV", "_http._tcp.web.bench.svc.cluster.local.", dns.TypeSRV, false},
		{"bare-SRV-10x2", "web.bench.svc.cluster.local.", dns.TypeSRV, false},
		{"PTR", "3.0.20.10.in-addr.arpa.", dns.TypePTR, false},
		{"NXDOMAIN", "web-99.web.bench.svc.cluster.local.", dns.TypeA, false},
		// A service of 10,000 endpoints in 100 slices, as the EndpointSlice
		// controller packs them; its A answer truncated to 512 bytes over UDP,
		// whole over TCP, as the server's writer makes them.
		{"big-A-UDP", "big.bench.svc.cluster.local.", dns.TypeA, false},
		{"big-A-TCP", "big.bench.svc.cluster.local.", dns.TypeA, true},
		{"big-SRV-UDP", "big.bench.svc.cluster.local.", dns.TypeSRV, false},
		{"big-pod-A", "big-7777.big.bench.svc.cluster.local.", dns.TypeA, false},
	} {
		m := new(dns.Msg).SetQuestion(q.qname, q.qtype)
		if want, got := exchange(b, k, m), exchange(b, h, m); !sameAnswer(want, got) {
			b.Fatalf("%s: the plugins answer differently:\n%s\n%s", q.name, want, got)
		}
		for _, p := range handlers {
			b.Run(q.name+"/"+p.Name(), func(b *testing.B) {
				var w dns.ResponseWriter = &test.ResponseWriter{TCP: q.tcp}
				if strings.HasPrefix(q.name, "big-") {
					w = request.NewScrubWriter(m, w)
				}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					p.ServeDNS(ctx, w, m)
				}
			})
		}
	}
}

// BenchmarkIndexUpdate measures what one EndpointSlice change costs the
// writer, in services whose endpoints sit in slices of 100 as the
// EndpointSlice controller packs them: one endpoint's address changes in one
// slice, and the index builds that slice's part and publishes the service.
func BenchmarkIndexUpdate(b *testing.B) {
	for _, n := range []int{100, 10000, 50000} {
		b.Run(fmt.Sprintf("endpoints-%d", n), func(b *testing.B) {
			ix := newIndex()
			ix.apply(services, &service{objectMeta: objectMeta{name: "big", namespace: "bench"}, headless: true})
			objs := bigService("bench", "big", n)
			var ess []*endpointSlice
			for _, s := range objs.Slices {
				ess = append(ess, toEndpointSlice(s, transformOptions{}))
			}
			ix.replace(controllerSlices, anys(ess))
			versions := [2]*endpointSlice{}
			for i := range versions {
				s := objs.Slices[len(objs.Slices)/2].DeepCopy()
				s.Endpoints[0].Addresses[0] = fmt.Sprintf("10.99.0.%d", i) // two versions that differ
				versions[i] = toEndpointSlice(s, transformOptions{})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ix.apply(controllerSlices, versions[i%2])
				i++
			}
		})
	}
}

// BenchmarkGangStart adds the 650 slices of a 65000-pod job's service one
// at a time, as the watch delivers them when the job starts all at once:
// each add publishes a view of the service (the gang start of make bench's
// largest clusters).
func BenchmarkGangStart(b *testing.B) {
	objs := bigService("bench", "job", 65000)
	var ess []*endpointSlice
	for _, s := range objs.Slices {
		ess = append(ess, toEndpointSlice(s, transformOptions{}))
	}
	b.ReportAllocs()
	for b.Loop() {
		ix := newIndex()
		ix.apply(services, &service{objectMeta: objectMeta{name: "job", namespace: "bench"}, headless: true})
		for _, s := range ess {
			ix.apply(controllerSlices, s)
		}
	}
}

// bigService is a headless service with n endpoints with hostnames, in
// slices of 100 with the names the EndpointSlice controller gives, and two
// ports.
func bigService(namespace, name string, n int) testkit.Objects {
	o := testkit.Objects{Services: []*core.Service{testkit.Headless(namespace, name)}}
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	for lo := 0; lo < n; lo += 100 {
		var eps []discovery.Endpoint
		for i := lo; i < min(lo+100, n); i++ {
			eps = append(eps, testkit.Endpoint(netip.AddrFrom4([4]byte{10, byte(40 + i>>16), byte(i >> 8), byte(i)}).String(), fmt.Sprintf("%s-%d", name, i)))
		}
		o.Slices = append(o.Slices, testkit.Slice(namespace, name, fmt.Sprintf("%s-%05x", name, lo*7919%1048576), discovery.AddressTypeIPv4, ports, eps...))
	}
	return o
}

// benchService is a headless service with n endpoints and two ports.
func benchService(namespace, name string, n int) testkit.Objects {
	var eps []discovery.Endpoint
	for i := range n {
		eps = append(eps, testkit.Endpoint(netip.AddrFrom4([4]byte{10, byte(20 + i>>16), byte(i >> 8), byte(i)}).String(), fmt.Sprintf("%s-%d", name, i)))
	}
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	return testkit.Objects{
		Services: []*core.Service{testkit.Headless(namespace, name)},
		Slices:   []*discovery.EndpointSlice{testkit.Slice(namespace, name, name+"-1", discovery.AddressTypeIPv4, ports, eps...)},
	}
}

// BenchmarkIndexMemory reports the heap the index holds per endpoint for
// 10k headless services x 10 endpoints x 2 ports, their slices written as
// the EndpointSlice controller writes those of a StatefulSet (conditions,
// pod, node, zone) and reduced by the plugin's transform: the reduced slices,
// the views and the reverse map. Nothing else holds the objects. The
// API objects are made in the measured span, as a decoder makes them, and
// what the index does not keep of them is collected before the reading.
func BenchmarkIndexMemory(b *testing.B) {
	const nServices, nEndpoints = 10000, 10
	yes, no := true, false
	transform := sliceTransform(transformOptions{}, false)
	slice := func(i int) *discovery.EndpointSlice {
		name := fmt.Sprintf("app-%06d", i)
		ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
		eps := make([]discovery.Endpoint, nEndpoints)
		for j := range eps {
			k := i*nEndpoints + j
			e := testkit.Pod(testkit.Endpoint(netip.AddrFrom4([4]byte{10, byte(128 + k>>16), byte(k >> 8), byte(k)}).String(), fmt.Sprintf("pod-%d", j)), fmt.Sprintf("%s-%d", name, j))
			e.Conditions = discovery.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no}
			node, zone := fmt.Sprintf("node-%04d", k%5000), fmt.Sprintf("zone-%c", 'a'+k%3)
			e.NodeName, e.Zone = &node, &zone
			eps[j] = e
		}
		return testkit.HeadlessSlice("bench", name, name+"-x7k2p", discovery.AddressTypeIPv4, ports, eps...)
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := newIndex()
		for i := range nServices {
			s := transform(slice(i)).(*endpointSlice)
			ix.apply(services, &service{objectMeta: objectMeta{name: s.service, namespace: s.namespace}, headless: true})
			ix.apply(controllerSlices, s)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(nServices*nEndpoints), "B/endpoint")
		runtime.KeepAlive(ix)
	}
}
