package headless

import (
	"context"
	"flag"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

func slim(service, host string, addrs ...string) *endpointSlice {
	s := &endpointSlice{objectMeta: objectMeta{name: service + "-1", namespace: "ns"}, service: service, ports: []slicePort{{name: "http", protocol: "TCP", port: 80}}}
	for _, a := range addrs {
		s.endpoints = append(s.endpoints, endpoint(a, host))
	}
	return s
}

func endpoint(addr, host string) sliceEndpoint {
	return sliceEndpoint{addr: netip.MustParseAddr(addr), host: host, hostname: true}
}

func headlessService(name string) *service {
	return &service{objectMeta: objectMeta{name: name, namespace: "ns"}, headless: true}
}

// TestIndexOnlyRealChanges checks that an update that changes nothing the
// index holds publishes nothing and moves no serial: the same object again,
// a relist of the same objects, a change the transform drops.
func TestIndexOnlyRealChanges(t *testing.T) {
	ix := newIndex()
	if !ix.apply(services, headlessService("web")) || !ix.apply(controllerSlices, slim("web", "pod", "10.0.0.1")) {
		t.Fatal("the first service and slice changed nothing")
	}
	snap := ix.view("web")
	ix.modified.Store(1)
	again := slim("web", "pod", "10.0.0.1")
	again.triggered = 12345 // a new trigger time, the same records
	if ix.apply(controllerSlices, again) {
		t.Error("the same slice again is a change")
	}
	if ix.apply(services, headlessService("web")) {
		t.Error("the same service again is a change")
	}
	ix.replace(services, anys([]*service{headlessService("web")}))
	ix.replace(controllerSlices, anys([]*endpointSlice{slim("web", "pod", "10.0.0.1")}))
	if ix.view("web") != snap || ix.serial() != 1 {
		t.Errorf("a relist of the same objects published a view or moved the serial to %d", ix.serial())
	}
	if !ix.apply(controllerSlices, slim("web", "pod", "10.0.0.2")) || ix.serial() == 1 {
		t.Error("a new address is not a change")
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

// TestIndexConcurrent has one writer replace views while readers answer
// queries; run it with -race. Every answer must be one of the states written.
func TestIndexConcurrent(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa")
	states := [][]string{{"10.0.0.1"}, {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, {"10.0.0.4", "10.0.0.5"}}
	h.index.apply(services, headlessService("web"))
	h.index.apply(controllerSlices, slim("web", "pod", states[0]...))

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
		h.index.apply(controllerSlices, slim("web", "pod", states[i%len(states)]...))
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("an answer no state had:\n%s", e)
	}
}

// TestIndexSequences plays random sequences of slice adds, updates, moves
// between services and between watches, deletes (also from the watch that
// does not hold the slice) and relists, and service switches and relists
// (some services gone), over services
// of several slices that share addresses and labels. After each step the
// index answers exactly what an index built from scratch on the same
// objects answers, for every name and address.
func TestIndexSequences(t *testing.T) {
	for seed := range int64(*sequences) {
		zonal := seed%3 == 2
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			playSequence(t, rand.New(rand.NewPCG(uint64(seed), 17)), *sequenceSteps, zonal) // #nosec G404 -- a test's sequence
		})
	}
}

var (
	sequences     = flag.Int("index.sequences", 6, "TestIndexSequences: the number of sequences, each of its own seed")
	sequenceSteps = flag.Int("index.steps", 100, "TestIndexSequences: the steps of each sequence")
)

// sequenceModel is what the objects are after each step: each slice's
// latest version and the watch that holds it, and the headless services.
type sequenceModel struct {
	slices   map[string]*endpointSlice
	sources  map[string]watchID
	headless map[string]bool
	policies map[string]servicePolicy
}

func playSequence(t *testing.T, rnd *rand.Rand, steps int, zonal bool) {
	corefile := "headless cluster.local in-addr.arpa ip6.arpa"
	if zonal {
		corefile = "headless cluster.local in-addr.arpa ip6.arpa {\n zonal\n}"
	}
	h := sequenceHeadless(t, corefile, nil)
	// Services of two slices and more find labels through a hostIndex; the
	// index built from scratch keeps the default and searches its slices.
	h.index.indexedSlices = 2
	svcNames := []string{"svc-0", "svc-1", "svc-2"}
	hosts := []string{"web-0", "web-1", "Web-1", "web-2", "web-3", "db-0", "10-0-0-1", "x"}
	zones := []string{"", "z1", "z2"}
	ports := []slicePort{{name: "http", protocol: "TCP", port: 80}, {name: "alt", protocol: "UDP", port: 80}, {name: "metrics", protocol: "TCP", port: 9090}, {name: "", protocol: "TCP", port: 53}}
	addr := func() netip.Addr {
		if rnd.IntN(5) == 0 {
			return netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(1 + rnd.IntN(3))})
		}
		return netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + rnd.IntN(12))})
	}
	newSlice := func(name string) *endpointSlice {
		s := &endpointSlice{objectMeta: objectMeta{name: name, namespace: "ns"}, service: svcNames[rnd.IntN(len(svcNames))]}
		if rnd.IntN(8) == 0 {
			s.ports = []slicePort{{port: -1}}
		} else {
			for _, p := range ports {
				if rnd.IntN(2) == 0 {
					s.ports = append(s.ports, p)
				}
			}
			if len(s.ports) == 0 {
				s.ports = ports[:1]
			}
		}
		for range rnd.IntN(7) {
			e := sliceEndpoint{addr: addr(), host: hosts[rnd.IntN(len(hosts))], hostname: rnd.IntN(3) > 0, state: endpointState(max(0, rnd.IntN(7)-3))}
			if z := zones[rnd.IntN(len(zones))]; zonal && z != "" {
				e.more = &endpointDetail{zone: z}
			}
			s.endpoints = append(s.endpoints, e)
		}
		return s
	}
	m := sequenceModel{slices: map[string]*endpointSlice{}, sources: map[string]watchID{}, headless: map[string]bool{}, policies: map[string]servicePolicy{}}
	ix := h.index
	for step := range steps {
		name := fmt.Sprintf("s%d", rnd.IntN(10))
		source := []watchID{controllerSlices, otherSlices}[rnd.IntN(2)]
		var what string
		switch op := rnd.IntN(20); {
		case op < 9: // add, update, move to another service or watch
			s := newSlice(name)
			if old := m.slices[name]; old != nil && rnd.IntN(3) > 0 {
				s.service = old.service // an update in place
			}
			what = fmt.Sprintf("set %s of %s from watch %d, %d endpoints", name, s.service, source, len(s.endpoints))
			ix.apply(source, s)
			m.slices[name], m.sources[name] = s, source
		case op < 12: // delete, from either watch
			what = fmt.Sprintf("delete %s from watch %d", name, source)
			ix.remove(source, &endpointSlice{objectMeta: objectMeta{name: name, namespace: "ns"}})
			if m.sources[name] == source {
				delete(m.slices, name)
				delete(m.sources, name)
			}
		case op < 14: // a slice no service names any more
			what = fmt.Sprintf("unname %s from watch %d", name, source)
			ix.apply(source, &endpointSlice{objectMeta: objectMeta{name: name, namespace: "ns"}})
			delete(m.slices, name)
			delete(m.sources, name)
		case op < 16: // a relist of one watch, with some of its slices changed or gone
			var list []*endpointSlice
			for n, s := range m.slices {
				switch {
				case m.sources[n] != source:
				case rnd.IntN(4) == 0:
					delete(m.slices, n)
					delete(m.sources, n)
				case rnd.IntN(3) == 0:
					s = newSlice(n)
					m.slices[n] = s
					list = append(list, s)
				default:
					list = append(list, s)
				}
			}
			what = fmt.Sprintf("relist watch %d: %d slices", source, len(list))
			ix.replace(source, anys(list))
		case op < 18:
			svc := svcNames[rnd.IntN(len(svcNames))]
			if rnd.IntN(2) == 0 {
				m.headless[svc] = !m.headless[svc]
			} else {
				m.policies[svc] = servicePolicy{unreadyNames: !m.policies[svc].unreadyNames}
				m.headless[svc] = m.headless[svc] // listed from now on
			}
			what = fmt.Sprintf("%s headless %v, %+v", svc, m.headless[svc], m.policies[svc])
			ix.apply(services, &service{objectMeta: objectMeta{name: svc, namespace: "ns"}, headless: m.headless[svc], policy: m.policies[svc]})
		default:
			var svcs []*service
			for _, svc := range svcNames {
				if rnd.IntN(5) == 0 { // deleted while the watch was down
					delete(m.headless, svc)
					delete(m.policies, svc)
					continue
				}
				if rnd.IntN(4) == 0 {
					m.headless[svc] = !m.headless[svc]
				}
				if rnd.IntN(4) == 0 {
					m.policies[svc] = servicePolicy{unreadyNames: !m.policies[svc].unreadyNames}
				}
				m.headless[svc] = m.headless[svc]
				svcs = append(svcs, &service{objectMeta: objectMeta{name: svc, namespace: "ns"}, headless: m.headless[svc], policy: m.policies[svc]})
			}
			what = "relist services"
			ix.replace(services, anys(svcs))
		}
		fresh := sequenceHeadless(t, corefile, &m)
		if diff := compareIndexes(t, h, fresh, svcNames, hosts); diff != "" {
			t.Fatalf("step %d (%s): the index answers differently from one built from scratch:\n%s", step, what, diff)
		}
	}
}

// sequenceHeadless returns a plugin configured by corefile, serving from an
// index built from scratch on m, or from an empty one.
func sequenceHeadless(t *testing.T, corefile string, m *sequenceModel) *Headless {
	t.Helper()
	h, _, err := parse(newController(corefile))
	if err != nil {
		t.Fatal(err)
	}
	h.watcher, h.Next = &watcher{}, nextHandler()
	if m == nil {
		return h
	}
	var svcs []*service
	for name, headless := range m.headless {
		svcs = append(svcs, &service{objectMeta: objectMeta{name: name, namespace: "ns"}, headless: headless, policy: m.policies[name]})
	}
	h.index.replace(services, anys(svcs))
	for _, source := range []watchID{controllerSlices, otherSlices} {
		var list []*endpointSlice
		for name, s := range m.slices {
			if m.sources[name] == source {
				list = append(list, s)
			}
		}
		h.index.replace(source, anys(list))
	}
	return h
}

// compareIndexes returns how the answers of a and b differ for every name
// of the services and every address of the sequences, or "".
func compareIndexes(t *testing.T, a, b *Headless, svcNames, hosts []string) string {
	var names []string
	for _, svc := range svcNames {
		base := svc + ".ns.svc.cluster.local."
		names = append(names, base, "_http._tcp."+base, "_alt._udp."+base, "_metrics._tcp."+base, "_http._udp."+base, "z1."+base, "z2."+base)
		for _, host := range hosts {
			names = append(names, host+"."+base)
		}
	}
	var b1 strings.Builder
	ask := func(name string, qtype uint16) {
		m := new(dns.Msg).SetQuestion(name, qtype)
		want, got := exchange(t, b, m), exchange(t, a, m)
		if qtype == dns.TypePTR {
			// The names of an address held by several services come in
			// the order the services were indexed, in both plugins.
			sort.Sort(test.RRSet(want.Answer))
			sort.Sort(test.RRSet(got.Answer))
		}
		if !sameAnswer(want, got) {
			fmt.Fprintf(&b1, "%s %s:\nfrom scratch: %s\nincremental:  %s\n", name, dns.TypeToString[qtype], answerText(want), answerText(got))
		}
	}
	for _, name := range names {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			ask(name, qtype)
		}
	}
	for i := 1; i <= 12; i++ {
		ask(fmt.Sprintf("%d.0.0.10.in-addr.arpa.", i), dns.TypePTR)
	}
	for i := 1; i <= 3; i++ {
		r, _ := dns.ReverseAddr(netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(i)}).String())
		ask(r, dns.TypePTR)
	}
	s1, e1 := a.index.size()
	if s2, e2 := b.index.size(); s1 != s2 || e1 != e2 {
		fmt.Fprintf(&b1, "size: incremental %d services %d endpoints, from scratch %d %d\n", s1, e1, s2, e2)
	}
	return b1.String()
}

// TestIndexConcurrentWriters has the writers of several watches change the
// slices of one service at once, as the reflectors do, while queries read
// it; then the index answers what one built from scratch answers. Run with
// -race.
func TestIndexConcurrentWriters(t *testing.T) {
	h := sequenceHeadless(t, "headless cluster.local in-addr.arpa", nil)
	h.index.apply(services, headlessService("web"))
	final := sequenceModel{slices: map[string]*endpointSlice{}, sources: map[string]watchID{}, headless: map[string]bool{"web": true}}
	ctx, cancel := context.WithCancel(context.Background())
	var readers, writers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for ctx.Err() == nil {
			serve(t, h, new(dns.Msg).SetQuestion("web.ns.svc.cluster.local.", dns.TypeSRV))
			serve(t, h, new(dns.Msg).SetQuestion("pod-1.web.ns.svc.cluster.local.", dns.TypeA))
			serve(t, h, new(dns.Msg).SetQuestion("1.0.0.10.in-addr.arpa.", dns.TypePTR))
		}
	}()
	for w, source := range []watchID{controllerSlices, otherSlices, controllerSlices} {
		name := fmt.Sprintf("web-%d", w)
		last := &endpointSlice{objectMeta: objectMeta{name: name, namespace: "ns"}, service: "web", ports: []slicePort{{name: "http", protocol: "TCP", port: 80}},
			endpoints: []sliceEndpoint{endpoint(fmt.Sprintf("10.0.0.%d", w+1), fmt.Sprintf("pod-%d", w)), endpoint("10.0.0.1", "pod-1")}}
		final.slices[name], final.sources[name] = last, source
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 300 {
				s := *last
				s.endpoints = []sliceEndpoint{endpoint(fmt.Sprintf("10.0.%d.%d", w+1, i%200+1), "pod-1")}
				h.index.apply(source, &s)
				if i%50 == 0 {
					h.index.remove(source, &s)
				}
			}
			h.index.apply(source, last)
		}()
	}
	writers.Wait()
	cancel()
	readers.Wait()
	if diff := compareIndexes(t, h, sequenceHeadless(t, "headless cluster.local in-addr.arpa", &final), []string{"web"}, []string{"pod-0", "pod-1", "pod-2"}); diff != "" {
		t.Errorf("after concurrent writers the index answers differently from one built from scratch:\n%s", diff)
	}
}

// anys returns xs as the objects of a list.
func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// view returns the published view of the service name.ns, or nil.
func (ix *index) view(name string) *serviceView {
	v, _ := ix.lookup(false, name, "ns")
	return v
}

// TestHostIndexResizes grows a service one slice at a time past the point
// where its hostIndex takes more shards, then shrinks it back: after each
// change, the index made incrementally finds every label where one made
// from scratch does, and no other.
func TestHostIndexResizes(t *testing.T) {
	seed := maphash.MakeSeed()
	rnd := rand.New(rand.NewPCG(1, 2))
	var (
		all  []*endpointSlice
		x    *hostIndex
		most int
	)
	// Each slice holds 100 labels, a few of them also in another slice.
	newSlice := func(i int) *endpointSlice {
		s := &endpointSlice{objectMeta: objectMeta{name: fmt.Sprintf("s%03d", i)}}
		for k := range 100 {
			label := fmt.Sprintf("pod-%d", i*100+k)
			if rnd.IntN(20) == 0 {
				label = fmt.Sprintf("pod-%d", rnd.IntN((i+1)*100))
			}
			s.endpoints = append(s.endpoints, sliceEndpoint{host: label})
		}
		return s
	}
	// matches fails unless x finds every label where want does, and no other.
	matches := func(what string, x, want *hostIndex) {
		t.Helper()
		held := 0
		for _, shard := range x.shards {
			held += len(shard)
		}
		if x.labels != want.labels || held != want.labels {
			t.Fatalf("%s: %d labels (%d held), want %d", what, x.labels, held, want.labels)
		}
		for _, shard := range want.shards {
			for _, h := range shard {
				if got, _ := x.get(h.label); got != h {
					t.Fatalf("%s: %s at %+v, want %+v", what, h.label, got, h)
				}
			}
		}
	}
	var before *hostIndex // made from scratch for x
	check := func(what string, gone, added []*endpointSlice) {
		t.Helper()
		prev := x
		x = nextHostIndex(x, seed, all, gone, added)
		if prev != nil {
			matches(what+", the index before", prev, before)
		}
		before = indexHosts(seed, all)
		matches(what, x, before)
		most = max(most, len(x.shards))
	}
	for i := range 120 {
		s := newSlice(i)
		all = append(all, s)
		check(fmt.Sprintf("slice %d added", i), nil, []*endpointSlice{s})
	}
	for len(all) > 8 {
		i := rnd.IntN(len(all))
		gone := all[i]
		all = slices.Delete(all, i, i+1)
		check(fmt.Sprintf("%s deleted", gone.name), []*endpointSlice{gone}, nil)
	}
	if most <= minHostShards || len(x.shards) >= most {
		t.Errorf("the index had up to %d shards and has %d at the end, want more than %d and then fewer", most, len(x.shards), minHostShards)
	}
}
