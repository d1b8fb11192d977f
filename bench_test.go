package headless

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
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
	all := withNamespaces(labelled(objects(objs)))
	h, _ := newTestHeadless(b, "headless cluster.local in-addr.arpa", all...)
	k := newReference(b, "kubernetes cluster.local in-addr.arpa", all...)
	handlers := []plugin.Handler{k, h}

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
		if want, got := exchange(b, k, m), exchange(b, h, m); !sameAnswer(want, got) {
			b.Fatalf("%s: the plugins answer differently:\n%s\n%s", q.name, want, got)
		}
		for _, p := range handlers {
			b.Run(q.name+"/"+p.Name(), func(b *testing.B) {
				w := &test.ResponseWriter{}
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
// writer: rebuilding the service's snapshot and publishing it.
func BenchmarkIndexUpdate(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("endpoints-%d", n), func(b *testing.B) {
			ix := newIndex(false)
			ix.setService(false, &service{objectMeta: objectMeta{name: "web", namespace: "bench"}, headless: true})
			slices := [2]*endpointSlice{}
			for i := range slices {
				o := benchService("bench", "web", n)
				o.Slices[0].Endpoints[0].Addresses[0] = fmt.Sprintf("10.99.0.%d", i) // two versions that differ
				slices[i] = toEndpointSlice(o.Slices[0], transformOptions{})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ix.setSlice(false, controllerSlices, slices[i%2])
				i++
			}
		})
	}
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
// the snapshots and the reverse map. Nothing else holds the objects. The
// API objects are made in the measured span, as a decoder makes them, and
// what the index does not keep of them is collected before the reading.
func BenchmarkIndexMemory(b *testing.B) {
	const services, endpoints = 10000, 10
	yes, no := true, false
	transform := sliceTransform(transformOptions{}, false)
	slice := func(i int) *discovery.EndpointSlice {
		name := fmt.Sprintf("app-%06d", i)
		ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
		eps := make([]discovery.Endpoint, endpoints)
		for j := range eps {
			k := i*endpoints + j
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
		ix := newIndex(false)
		for i := range services {
			s := transform(slice(i)).(*endpointSlice)
			ix.setService(false, &service{objectMeta: objectMeta{name: s.service, namespace: s.namespace}, headless: true})
			ix.setSlice(false, controllerSlices, s)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(services*endpoints), "B/endpoint")
		runtime.KeepAlive(ix)
	}
}
