package headless

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

func slim(service, host string, addrs ...string) *endpointSlice {
	s := &endpointSlice{name: service + "-1", namespace: "ns", service: service, ports: []slicePort{{name: "http", protocol: "TCP", port: 80}}}
	for _, a := range addrs {
		s.endpoints = append(s.endpoints, sliceEndpoint{addr: netip.MustParseAddr(a), host: host})
	}
	return s
}

func names(refs []ptrRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.recs.target(r.host, "z."))
	}
	return out
}

func TestIndexReverseSharedAddress(t *testing.T) {
	ix := newIndex([]string{"z."})
	addr := netip.MustParseAddr("10.0.0.1")
	svc := func(name string) *service { return &service{name: name, namespace: "ns", headless: true} }
	ix.update("a", "ns", svc("a"), []*endpointSlice{slim("a", "pod", "10.0.0.1")})
	ix.update("b", "ns", svc("b"), []*endpointSlice{slim("b", "pod", "10.0.0.1")})
	ix.update("c", "ns", svc("c"), []*endpointSlice{slim("c", "pod", "10.0.0.1")})
	if refs, _ := ix.ptr(addr); len(refs) != 3 {
		t.Fatalf("PTR names %v, want 3", names(refs))
	}
	ix.update("a", "ns", nil, nil) // the first owner goes: the next takes its place
	if got := names(first(ix.ptr(addr))); fmt.Sprint(got) != "[pod.b.ns.svc.z. pod.c.ns.svc.z.]" {
		t.Errorf("after removing a: %v", got)
	}
	ix.update("c", "ns", svc("c"), []*endpointSlice{slim("c", "pod", "10.0.0.2")}) // c moves away
	if got := names(first(ix.ptr(addr))); fmt.Sprint(got) != "[pod.b.ns.svc.z.]" {
		t.Errorf("after moving c: %v", got)
	}
	ix.update("b", "ns", nil, nil)
	if refs, _ := ix.ptr(addr); len(refs) != 0 || len(ix.more) != 0 {
		t.Errorf("after removing b: %v, %d shared", names(refs), len(ix.more))
	}
	if n, eps := ix.size(); n != 1 || eps != 1 {
		t.Errorf("size %d services %d endpoints, want 1 1", n, eps)
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

func first(refs []ptrRef, _ bool) []ptrRef { return refs }

func TestIndexShadow(t *testing.T) {
	ix := newIndex([]string{"z."})
	addr := netip.MustParseAddr("10.0.0.1")
	ix.update("web", "ns", &service{name: "web", namespace: "ns"}, []*endpointSlice{slim("web", "", "10.0.0.1")})
	ix.update("orphan", "ns", nil, []*endpointSlice{slim("orphan", "", "10.0.0.1")})
	if _, shadowed := ix.ptr(addr); !shadowed {
		t.Error("an address of a ClusterIP service is not shadowed")
	}
	ix.update("web", "ns", nil, nil)
	if _, shadowed := ix.ptr(addr); !shadowed {
		t.Error("an address of a slice without service is not shadowed")
	}
	ix.update("orphan", "ns", nil, nil)
	if _, shadowed := ix.ptr(addr); shadowed || len(ix.shadow) != 0 {
		t.Errorf("shadow left behind: %v", ix.shadow)
	}
}

// TestIndexConcurrent has one writer replace snapshots while readers answer
// queries; run it with -race. Every answer must be one of the states written.
func TestIndexConcurrent(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local in-addr.arpa"))
	if err != nil {
		t.Fatal(err)
	}
	h.watcher = &watcher{synced: func() bool { return true }}
	svc := &service{name: "web", namespace: "ns", headless: true}
	states := [][]string{{"10.0.0.1"}, {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, {"10.0.0.4", "10.0.0.5"}}
	h.index.update("web", "ns", svc, []*endpointSlice{slim("web", "", states[0]...)})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, q := range []uint16{dns.TypeA, dns.TypeSRV} {
					w := dnstest.NewRecorder(&test.ResponseWriter{})
					h.ServeDNS(ctx, w, new(dns.Msg).SetQuestion("web.ns.svc.cluster.local.", q))
					if !oneOf(w.Msg, states) {
						errs <- w.Msg.String()
						return
					}
				}
				w := dnstest.NewRecorder(&test.ResponseWriter{})
				h.ServeDNS(ctx, w, new(dns.Msg).SetQuestion("1.0.0.10.in-addr.arpa.", dns.TypePTR))
			}
		}()
	}
	for i := range 2000 {
		h.index.update("web", "ns", svc, []*endpointSlice{slim("web", "", states[i%len(states)]...)})
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("an answer no state had:\n%s", e)
	}
}
