package headless

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

func slim(service, host string, addrs ...string) *endpointSlice {
	s := &endpointSlice{objectMeta: objectMeta{name: service + "-1", namespace: "ns"}, service: service, ports: []slicePort{{name: "http", protocol: "TCP", port: 80}}}
	for _, a := range addrs {
		s.endpoints = append(s.endpoints, endpoint(a, host))
	}
	return s
}

func headlessService(name string) *service {
	return &service{objectMeta: objectMeta{name: name, namespace: "ns"}, headless: true}
}

func names(refs []ptrRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.snap.target(r.host, "z."))
	}
	slices.Sort(out)
	return out
}

func TestIndexReverseSharedAddress(t *testing.T) {
	ix := newIndex(false)
	addr := netip.MustParseAddr("10.0.0.1")
	for _, s := range []string{"a", "b", "c"} {
		ix.setService(false, headlessService(s))
		ix.setSlice(false, controllerSlices, slim(s, "pod", "10.0.0.1"))
	}
	if refs, _ := ix.ptr(addr); len(refs) != 3 {
		t.Fatalf("PTR names %v, want 3", names(refs))
	}
	ix.removeService(false, headlessService("a"))
	if refs, _ := ix.ptr(addr); fmt.Sprint(names(refs)) != "[pod.b.ns.svc.z. pod.c.ns.svc.z.]" {
		t.Errorf("after removing a: %v", names(refs))
	}
	ix.setSlice(false, controllerSlices, slim("c", "pod", "10.0.0.2")) // c moves away
	if refs, _ := ix.ptr(addr); fmt.Sprint(names(refs)) != "[pod.b.ns.svc.z.]" {
		t.Errorf("after moving c: %v", names(refs))
	}
	ix.removeSlice(false, slim("b", "pod"))
	if refs, _ := ix.ptr(addr); len(refs) != 0 || len(ix.reverse.v4.first) != 1 {
		t.Errorf("after removing b's slice: %v, %d addresses", names(refs), len(ix.reverse.v4.first))
	}
	if n, eps := ix.size(); n != 2 || eps != 1 {
		t.Errorf("size %d services %d endpoints, want 2 1 (b without slices, c)", n, eps)
	}
}

// TestIndexOnlyRealChanges checks that an update that changes nothing the
// index holds publishes nothing and moves no serial: the same object again,
// a relist of the same objects, a change the transform drops.
func TestIndexOnlyRealChanges(t *testing.T) {
	ix := newIndex(false)
	if !ix.setService(false, headlessService("web")) || !ix.setSlice(false, controllerSlices, slim("web", "pod", "10.0.0.1")) {
		t.Fatal("the first service and slice changed nothing")
	}
	snap := ix.lookup(false, "web.ns")
	ix.modified.Store(1)
	again := slim("web", "pod", "10.0.0.1")
	again.triggered = 12345 // a new trigger time, the same records
	if ix.setSlice(false, controllerSlices, again) {
		t.Error("the same slice again is a change")
	}
	if ix.setService(false, headlessService("web")) {
		t.Error("the same service again is a change")
	}
	ix.replaceServices(false, []*service{headlessService("web")})
	ix.replaceSlices(false, controllerSlices, []*endpointSlice{slim("web", "pod", "10.0.0.1")})
	if ix.lookup(false, "web.ns") != snap || ix.serial() != 1 {
		t.Errorf("a relist of the same objects published a snapshot or moved the serial to %d", ix.serial())
	}
	if !ix.setSlice(false, controllerSlices, slim("web", "pod", "10.0.0.2")) || ix.serial() == 1 {
		t.Error("a new address is not a change")
	}
}

func TestIndexReplace(t *testing.T) {
	ix := newIndex(false)
	ix.replaceServices(false, []*service{headlessService("a"), headlessService("b"), {objectMeta: objectMeta{name: "c", namespace: "ns"}}})
	ix.replaceSlices(false, controllerSlices, []*endpointSlice{slim("a", "pod", "10.0.0.1"), slim("b", "pod", "10.0.0.2")})
	ix.replaceSlices(false, otherSlices, []*endpointSlice{slim("c", "pod", "10.0.0.3")})
	if n, eps := ix.size(); n != 2 || eps != 2 {
		t.Fatalf("size %d %d, want 2 services (c is not headless), 2 endpoints", n, eps)
	}
	// A relist without b: b and its slice go; the other watch's slice stays.
	ix.replaceServices(false, []*service{headlessService("a")})
	ix.replaceSlices(false, controllerSlices, []*endpointSlice{slim("a", "pod", "10.0.0.1")})
	if ix.lookup(false, "b.ns") != nil || len(ix.cluster.owners) != 2 {
		t.Errorf("after the relist: b %v, %d slices, want gone and 2", ix.lookup(false, "b.ns"), len(ix.cluster.owners))
	}
	if _, ok := ix.cluster.services["c.ns"]; !ok {
		t.Error("the slice of the other watch was dropped")
	}
}

// oneOf reports whether the addresses of m (the answer's A records, or the
// SRV glue) are exactly one of states.
func oneOf(m *dns.Msg, states [][]string) bool {
	var got []string
	for _, rr := range append(m.Answer, m.Extra...) {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	slices.Sort(got)
	for _, s := range states {
		if slices.Equal(got, s) && m.Rcode == dns.RcodeSuccess {
			return true
		}
	}
	return false
}

// TestIndexConcurrent has one writer replace snapshots while readers answer
// queries; run it with -race. Every answer must be one of the states written.
func TestIndexConcurrent(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa")
	states := [][]string{{"10.0.0.1"}, {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, {"10.0.0.4", "10.0.0.5"}}
	h.index.setService(false, headlessService("web"))
	h.index.setSlice(false, controllerSlices, slim("web", "pod", states[0]...))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, q := range []uint16{dns.TypeA, dns.TypeSRV} {
					if m := serve(t, h, new(dns.Msg).SetQuestion("web.ns.svc.cluster.local.", q)); !oneOf(m, states) {
						errs <- m.String()
						return
					}
				}
				serve(t, h, new(dns.Msg).SetQuestion("1.0.0.10.in-addr.arpa.", dns.TypePTR))
			}
		}()
	}
	for i := range 2000 {
		h.index.setSlice(false, controllerSlices, slim("web", "pod", states[i%len(states)]...))
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("an answer no state had:\n%s", e)
	}
}
