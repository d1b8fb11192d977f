package e2e

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The flags of TestSequence. make test plays the default: a fixed seed, 120
// changes, and no new change after a minute. For a longer run, e.g.
//
//	go test ./test/e2e -run TestSequence -sequence.steps=1000 -sequence.seed=7 -sequence.time=0
var (
	sequenceSteps  = flag.Int("sequence.steps", 120, "TestSequence: the changes it plays")
	sequenceSeed   = flag.Uint64("sequence.seed", 1, "TestSequence: the seed of its random changes")
	sequenceSettle = flag.Duration("sequence.settle", 5*time.Second, "TestSequence: how long answers may differ after a change before the difference is reported")
	sequenceTime   = flag.Duration("sequence.time", 60*time.Second, "TestSequence: it plays no new change after this long; 0 for no limit")
)

const (
	sequenceNS      = "sequence"
	sliceController = "endpointslice-controller.k8s.io"
	// sequenceMarker is the address of the marker's endpoint (see mark).
	sequenceMarker = "10.77.255.1"
)

// What the sequence draws from: Services (not all exist at a time), slice
// managers other than the EndpointSlice controller, the names FQDN endpoints
// and ExternalName Services point to (answered by the server's example.org
// block, or not at all: none is in the cluster, so no chain of FQDN
// endpoints forms), and the ports of slices.
var (
	sequenceServices = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	otherManagers    = []string{"operator.example.com", "endpointslicemirroring-controller.k8s.io"}
	fqdnTargets      = []string{"db.example.org", "cache.example.org", "nothing.example.org"}
	sequencePorts    = []discovery.EndpointPort{
		testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP),
		testkit.Port("dns-udp", 53, core.ProtocolUDP), testkit.Port("dns-tcp", 53, core.ProtocolTCP),
		testkit.Port("", 7000, core.ProtocolTCP),
	}
	// sequenceSRV are the _port._proto names asked of every Service: one per
	// named port, and one that no port has.
	sequenceSRV = []string{"_http._tcp.", "_metrics._tcp.", "_dns-udp._udp.", "_dns-tcp._tcp.", "_http._udp."}
)

// kind is what a Service of the sequence is.
type kind string

const (
	headlessKind     kind = "headless"
	clusterIPKind    kind = "ClusterIP"
	externalNameKind kind = "ExternalName"
)

// seqService is a Service of the sequence's world.
type seqService struct {
	kind   kind
	port   int32  // its one port, http
	target string // an ExternalName's
}

// object returns the Service to create.
func (s seqService) object(name string) *core.Service {
	http := testkit.ServicePort("http", s.port, core.ProtocolTCP)
	switch s.kind {
	case headlessKind:
		return testkit.Headless(sequenceNS, name, http)
	case clusterIPKind:
		return testkit.ClusterIP(sequenceNS, name, http)
	}
	return testkit.ExternalName(sequenceNS, name, s.target)
}

// seqSlice is an EndpointSlice of the sequence's world.
type seqSlice struct {
	name, service, manager string
	family                 discovery.AddressType
	ports                  []discovery.EndpointPort
	endpoints              []discovery.Endpoint
}

// world is what the sequence has written to the API server. Its changes
// replace the pointers of an endpoint rather than write through them, so a
// copy of the endpoints is a copy of the world.
type world struct {
	services map[string]seqService // by name; absent when not created
	slices   map[string]*seqSlice  // by name
}

func (w *world) clone() *world {
	c := &world{services: maps.Clone(w.services), slices: map[string]*seqSlice{}}
	for name, s := range w.slices {
		s2 := *s
		s2.ports, s2.endpoints = slices.Clone(s.ports), slices.Clone(s.endpoints)
		c.slices[name] = &s2
	}
	return c
}

// sliceNames returns the names of the slices, sorted: the sequence draws
// from sorted lists only, so that a seed always plays the same changes.
func (w *world) sliceNames(keep func(*seqSlice) bool) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(w.slices)) {
		if keep(w.slices[name]) {
			out = append(out, name)
		}
	}
	return out
}

// labelled reports whether s carries the headless label: the EndpointSlice
// controller labels its slices of headless Services, and relabels them when
// the Service changes type. The test's control plane runs no controller:
// the sequence does its work.
func (w *world) labelled(s *seqSlice) bool {
	return s.manager == sliceController && w.services[s.service].kind == headlessKind
}

func (w *world) sliceObject(s *seqSlice) *discovery.EndpointSlice {
	o := testkit.ManagedBy(testkit.Slice(sequenceNS, s.service, s.name, s.family, s.ports, s.endpoints...), s.manager)
	if w.labelled(s) {
		testkit.HeadlessLabel(o)
	}
	return o
}

func ready(e discovery.Endpoint) bool { return e.Conditions.Ready == nil || *e.Conditions.Ready }

// holders returns how many slices hold addr in a ready endpoint, and whether
// one of them is of a Service that is not headless or does not exist.
func (w *world) holders(addr string) (n int, shadowed bool) {
	for _, s := range w.slices {
		if slices.ContainsFunc(s.endpoints, func(e discovery.Endpoint) bool { return ready(e) && e.Addresses[0] == addr }) {
			n++
			shadowed = shadowed || w.services[s.service].kind != headlessKind
		}
	}
	return n, shadowed
}

// seqQuery is a question the sequence asks after a change.
type seqQuery struct {
	name  string
	qtype uint16
	// service is the Service the name is under; for a PTR, addr is the
	// address.
	service, addr string
}

func (q seqQuery) String() string { return q.name + " " + dns.TypeToString[q.qtype] }

// queries adds to into the questions about services: the Service's name,
// its _port._proto names, its endpoints' names in A, AAAA and SRV, and the
// PTR of its endpoints' addresses.
func (w *world) queries(services []string, into map[seqQuery]bool) {
	for _, svc := range services {
		base := svc + "." + sequenceNS + ".svc.cluster.local."
		add := func(name string, types ...uint16) {
			for _, t := range types {
				into[seqQuery{name: name, qtype: t, service: svc}] = true
			}
		}
		add(base, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
		for _, p := range sequenceSRV {
			add(p+base, dns.TypeSRV)
		}
		for _, s := range w.slices {
			if s.service != svc {
				continue
			}
			for _, e := range s.endpoints {
				add(hostname(e)+"."+base, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
				if rev, err := dns.ReverseAddr(e.Addresses[0]); err == nil {
					into[seqQuery{name: rev, qtype: dns.TypePTR, addr: e.Addresses[0]}] = true
				}
			}
		}
	}
}

// unordered reports whether the records of q may come from several slices:
// the kubernetes plugin keeps slices in a map, so their order then varies
// from one answer to the next, and the answers compare as sets. Within one
// slice its order is the slice's, and headless must keep it.
func (w *world) unordered(q seqQuery) bool {
	if q.addr != "" {
		n, _ := w.holders(q.addr)
		return n > 1
	}
	n := 0
	for _, s := range w.slices {
		if s.service == q.service && slices.ContainsFunc(s.endpoints, ready) {
			n++
		}
	}
	return n > 1
}

// leftOut returns why headless alone answers q otherwise than kubernetes
// alone by design (README, and conformanceProbes), or "".
func (w *world) leftOut(q seqQuery) string {
	if q.addr != "" {
		if _, shadowed := w.holders(q.addr); shadowed {
			return "PTR of an address a Service that is not headless, or a slice of no Service, holds"
		}
		return ""
	}
	if k := w.services[q.service].kind; k == clusterIPKind || k == externalNameKind {
		return "names of a ClusterIP or ExternalName Service"
	}
	return ""
}

// passedOn reports whether the kubernetes plugin did not know a reverse
// name and passed it on (fallthrough in-addr.arpa ip6.arpa): the answer then
// comes from the upstream stub, without SOA. Headless alone must answer the
// same rcode and records, with its own SOA.
func passedOn(q seqQuery, m *dns.Msg) bool {
	return q.addr != "" && m.Rcode == dns.RcodeNameError && len(m.Ns) == 0
}

// check is a question over one transport.
type check struct {
	q       seqQuery
	network string
}

// reply is one listener's answer to a check.
type reply struct {
	m   *dns.Msg
	err error
}

// text is the reply as it compares: normalize's form, and when order
// matters, the answer section in its order.
func (r reply) text(ordered bool) string {
	if r.err != nil {
		return "no answer: " + r.err.Error() + "\n"
	}
	s := normalize(r.m)
	if ordered {
		s += ";; ANSWER, in order\n"
		for _, rr := range r.m.Answer {
			s += rr.String() + "\n"
		}
	}
	return s
}

// verdict is how a listener's reply compares with kubernetes alone's.
type verdict struct {
	same    bool
	leftOut string // a documented difference: not compared
	loose   bool   // compared by rcode and answer only
}

// result holds the replies of the three listeners to a check.
type result struct {
	kubernetes, both, headless reply
}

// judge compares got, the reply of the drop-in or (alone) of headless alone,
// with want, kubernetes alone's, as w says they compare.
func (w *world) judge(q seqQuery, want, got reply, alone bool) verdict {
	if want.err != nil || got.err != nil {
		return verdict{same: want.err == nil && got.err == nil}
	}
	if alone {
		if why := w.leftOut(q); why != "" {
			return verdict{same: got.text(false) == want.text(false), leftOut: why}
		}
		if passedOn(q, want.m) {
			same := got.m.Rcode == want.m.Rcode && slices.Equal(testkit.Records(got.m.Answer), testkit.Records(want.m.Answer))
			return verdict{same: same, loose: true}
		}
	}
	ordered := !w.unordered(q)
	return verdict{same: got.text(ordered) == want.text(ordered)}
}

// sequenceTally counts the comparisons once the answers have converged, or
// once the time to settle has passed.
type sequenceTally struct {
	compared, same, sets, loose int
	lasting                     map[string]int    // by listener
	leftOut                     map[string][2]int // by reason: comparisons, of which different
	changes                     map[string]int    // by kind of change
}

// sequence plays random changes on the API server and compares the answers
// of the shared server's three listeners after each.
type sequence struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
	rand   *rand.Rand
	world  *world
	serial int    // numbers new slices
	marks  int    // numbers the marks
	step   int    // the change played; 0 before the first
	what   string // what the step changed, for the reports
	tally  sequenceTally
	// differing are the Services that answered otherwise than kubernetes
	// alone when a step settled, and the step after which they first did.
	differing map[string]stepOf
}

// stepOf names a step.
type stepOf struct {
	n    int
	what string
}

// TestSequence plays a seeded random sequence of changes on a namespace of
// its own: Services created, deleted, switched between headless, ClusterIP
// and ExternalName, updated; EndpointSlices created, deleted, moved to
// another Service and from one of the plugin's two slice watches to the
// other (endpointslice.kubernetes.io/managed-by), IPv4, IPv6 and FQDN, their
// endpoints' readiness, hostnames and addresses changed, their ports too.
// After each change it waits until kubernetes alone has seen it, then until
// headless in front of kubernetes and headless alone answer every name the
// change touched as kubernetes alone does, over UDP and TCP, and reports
// each difference that lasts -sequence.settle. Headless alone is not
// compared where it differs by design (leftOut, passedOn); records that may
// come from several slices compare as sets (unordered). Last, every name of
// every Service is compared.
func TestSequence(t *testing.T) {
	start := time.Now()
	// The API server warns of each FQDN slice written: FQDN endpoints are
	// deprecated. The sequence writes many.
	cfg := rest.CopyConfig(shared.cluster.RESTConfig)
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &sequence{
		t: t, ctx: context.Background(), client: client, rand: rand.New(rand.NewPCG(*sequenceSeed, 0)),
		world:     &world{services: map[string]seqService{}, slices: map[string]*seqSlice{}},
		tally:     sequenceTally{lasting: map[string]int{}, leftOut: map[string][2]int{}, changes: map[string]int{}},
		differing: map[string]stepOf{},
	}
	s.clear()
	s.populate()
	s.what = "the first objects"
	s.settle(s.allQueries(), s.world)

	played := 0
	for s.step = 1; s.step <= *sequenceSteps; s.step++ {
		if *sequenceTime > 0 && time.Since(start) > *sequenceTime {
			t.Logf("sequence: stopped after %d of %d changes: -sequence.time=%s has passed", played, *sequenceSteps, *sequenceTime)
			break
		}
		before := s.world.clone()
		var touched []string
		s.what, touched = s.change()
		qs := map[seqQuery]bool{}
		before.queries(touched, qs)
		s.world.queries(touched, qs)
		s.settle(qs, before)
		played++
	}
	s.step, s.what = played+1, "every name, after the last change"
	s.settle(s.allQueries(), s.world)

	tl := s.tally
	var changes, leftOut []string
	for _, k := range slices.Sorted(maps.Keys(tl.changes)) {
		changes = append(changes, fmt.Sprintf("%s %d", k, tl.changes[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(tl.leftOut)) {
		leftOut = append(leftOut, fmt.Sprintf("%s: %d, of which %d differed", k, tl.leftOut[k][0], tl.leftOut[k][1]))
	}
	t.Logf("sequence: seed %d, %d changes in %s (%s); %d comparisons once settled: %d identical, "+
		"%d compared as sets (records of several slices), %d PTRs passed on by kubernetes compared by rcode and records; "+
		"lasting differences: %d in front of kubernetes, %d alone; left out by design for headless alone: %s",
		*sequenceSeed, played, time.Since(start).Round(time.Second), strings.Join(changes, ", "), tl.compared, tl.same,
		tl.sets, tl.loose, tl.lasting[listenerName(shared.both)], tl.lasting[listenerName(shared.headless)], strings.Join(leftOut, "; "))
}

// clear deletes what an earlier run (-count) left in the namespace.
func (s *sequence) clear() {
	client := s.client
	svcs, err := client.CoreV1().Services(sequenceNS).List(s.ctx, meta.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, o := range svcs.Items {
		if err := client.CoreV1().Services(sequenceNS).Delete(s.ctx, o.Name, meta.DeleteOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := client.DiscoveryV1().EndpointSlices(sequenceNS).DeleteCollection(s.ctx, meta.DeleteOptions{}, meta.ListOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// populate creates the marker's objects and a first world: four headless
// Services with a slice or two, a ClusterIP one with a slice, one absent.
func (s *sequence) populate() {
	marker := testkit.Objects{
		Services: []*core.Service{
			testkit.ClusterIP(sequenceNS, "marker", testkit.ServicePort("http", 80, core.ProtocolTCP)),
			testkit.ExternalName(sequenceNS, "marker-name", "mark-0.example.org"),
		},
		Slices: []*discovery.EndpointSlice{markerSlice(0)},
	}
	if err := testkit.Apply(s.ctx, s.client, marker); err != nil {
		s.t.Fatal(err)
	}
	for i, name := range sequenceServices[:5] {
		svc := seqService{kind: headlessKind, port: 80}
		if i == 4 {
			svc.kind = clusterIPKind
		}
		s.world.services[name] = svc
		s.createService(name)
		for range 1 + s.rand.IntN(2) {
			s.putSlice(s.newSlice(name), true)
		}
	}
}

// markerSlice is the slice of the marker Service, its endpoint named after
// the mark.
func markerSlice(mark int) *discovery.EndpointSlice {
	return testkit.Slice(sequenceNS, "marker", "marker-1", discovery.AddressTypeIPv4,
		[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, testkit.Endpoint(sequenceMarker, fmt.Sprintf("mark-%d", mark)))
}

// mark writes a new mark into a slice and a Service after the step's
// changes, and waits until the kubernetes plugin of kubernetes alone and of
// the drop-in answers it: each of its watches delivers events in order, so
// it has then seen every change of the step, and answers that agree with
// it are not merely answers from before the change.
func (s *sequence) mark() {
	s.marks++
	if _, err := s.client.DiscoveryV1().EndpointSlices(sequenceNS).Update(s.ctx, markerSlice(s.marks), meta.UpdateOptions{}); err != nil {
		s.t.Fatalf("step %d: the marker slice: %v", s.step, err)
	}
	s.editService("marker-name", func(o *core.Service) { o.Spec.ExternalName = fmt.Sprintf("mark-%d.example.org", s.marks) })
	host := fmt.Sprintf("mark-%d.marker.%s.svc.cluster.local.", s.marks, sequenceNS)
	target := fmt.Sprintf("mark-%d.example.org.", s.marks)
	for _, addr := range []string{shared.kubernetes, shared.both} {
		testkit.Eventually(s.t, 15*time.Second, fmt.Sprintf("step %d seen by the kubernetes plugin of %s", s.step, listenerName(addr)), func() (bool, string) {
			a := testkit.Query(s.t, "udp", addr, host, dns.TypeA)
			c := testkit.Query(s.t, "udp", addr, "marker-name."+sequenceNS+".svc.cluster.local.", dns.TypeCNAME)
			if len(a.Answer) != 1 || len(c.Answer) != 1 {
				return false, a.String() + c.String()
			}
			cname, ok := c.Answer[0].(*dns.CNAME)
			return ok && cname.Target == target, a.String() + c.String()
		})
	}
}

// allQueries is every question about the Services of the pool.
func (s *sequence) allQueries() map[seqQuery]bool {
	qs := map[seqQuery]bool{}
	s.world.queries(sequenceServices, qs)
	return qs
}

// settle waits until the listeners agree on every question of qs, over UDP
// and TCP, in two rounds a quarter of a second apart (a late event could
// undo a first agreement), and reports each difference that outlives
// -sequence.settle.
func (s *sequence) settle(qs map[seqQuery]bool, before *world) {
	s.mark()
	var all []check
	for _, q := range slices.SortedFunc(maps.Keys(qs), func(a, b seqQuery) int { return strings.Compare(a.String(), b.String()) }) {
		all = append(all, check{q, "udp"}, check{q, "tcp"})
	}
	results := map[check]result{}
	deadline := time.Now().Add(*sequenceSettle)
	pending, confirming := all, false
	for {
		s.ask(pending, results)
		pending = pending[:0:0]
		for _, c := range all {
			if !s.agree(c, results[c]) {
				pending = append(pending, c)
			}
		}
		if len(pending) == 0 {
			if confirming {
				break
			}
			time.Sleep(250 * time.Millisecond)
			pending, confirming = all, true
			continue
		}
		confirming = false
		if time.Now().After(deadline) {
			s.report(pending, results, before)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.count(all, results)
	s.note(all, results)
}

// agree reports whether the drop-in and headless alone answer c as
// kubernetes alone, but for the documented differences.
func (s *sequence) agree(c check, r result) bool {
	both := s.world.judge(c.q, r.kubernetes, r.both, false)
	alone := s.world.judge(c.q, r.kubernetes, r.headless, true)
	return both.same && (alone.same || alone.leftOut != "")
}

// ask sends the checks to the three listeners, eight at a time.
func (s *sequence) ask(checks []check, results map[check]result) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var r result
			for _, x := range []struct {
				addr string
				to   *reply
			}{{shared.kubernetes, &r.kubernetes}, {shared.both, &r.both}, {shared.headless, &r.headless}} {
				x.to.m, x.to.err = testkit.Exchange(c.network, x.addr, testkit.NewQuery(c.q.name, c.q.qtype))
			}
			mu.Lock()
			results[c] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// lasting is a difference that outlived -sequence.settle.
type lasting struct {
	c     check
	addr  string // the listener
	got   reply
	loose bool
}

// servicesOf returns the Services a question is about: the one its name is
// under, or for a PTR those with a slice that holds the address.
func (w *world) servicesOf(q seqQuery) []string {
	if q.addr == "" {
		return []string{q.service}
	}
	var out []string
	for _, sl := range w.slices {
		if slices.ContainsFunc(sl.endpoints, func(e discovery.Endpoint) bool { return e.Addresses[0] == q.addr }) {
			out = append(out, sl.service)
		}
	}
	return out
}

// report fails the test with the differences that lasted. A difference in
// a Service that already answered otherwise after an earlier step is
// likely that step's, still there: those are counted, and the others shown,
// the first few in full.
func (s *sequence) report(pending []check, results map[check]result, before *world) {
	var diffs []lasting
	for _, c := range pending {
		r := results[c]
		for _, x := range []struct {
			got   reply
			addr  string
			alone bool
		}{{r.both, shared.both, false}, {r.headless, shared.headless, true}} {
			if v := s.world.judge(c.q, r.kubernetes, x.got, x.alone); !v.same && v.leftOut == "" {
				diffs = append(diffs, lasting{c, x.addr, x.got, v.loose})
				s.tally.lasting[listenerName(x.addr)]++
			}
		}
	}
	// In front first, names before PTRs.
	rank := func(d lasting) int {
		r := 0
		if d.addr != shared.both {
			r += 2
		}
		if d.c.q.addr != "" {
			r++
		}
		return r
	}
	slices.SortStableFunc(diffs, func(a, b lasting) int { return rank(a) - rank(b) })
	const shown = 4
	n, earlier := 0, map[string]bool{}
	for _, d := range diffs {
		persisting := false
		for _, svc := range append(s.world.servicesOf(d.c.q), before.servicesOf(d.c.q)...) {
			if step, ok := s.differing[svc]; ok {
				persisting = true
				earlier[fmt.Sprintf("%s since step %d (%s)", svc, step.n, step.what)] = true
			}
		}
		if persisting {
			continue
		}
		if n++; n > shown {
			continue
		}
		ordered := !s.world.unordered(d.c.q) && !d.loose
		s.t.Errorf("step %d (%s): %s over %s: %s still answers otherwise than %s %s after the change%s\n--- %s:\n%s--- %s:\n%s",
			s.step, s.what, d.c.q, d.c.network, listenerName(d.addr), listenerName(shared.kubernetes), *sequenceSettle,
			map[bool]string{true: " (compared by rcode and records: kubernetes passed it on)"}[d.loose],
			listenerName(shared.kubernetes), results[d.c].kubernetes.text(ordered), listenerName(d.addr), d.got.text(ordered))
	}
	if n > shown || len(earlier) > 0 {
		var those string
		if len(earlier) > 0 {
			those = fmt.Sprintf("; %d in Services that answered otherwise after an earlier step, not shown: %s",
				len(diffs)-n, strings.Join(slices.Sorted(maps.Keys(earlier)), ", "))
		}
		s.t.Errorf("step %d (%s): %d lasting differences, %d of them shown%s", s.step, s.what, len(diffs), min(n, shown), those)
	}
}

// note records which Services of the checks answer otherwise than
// kubernetes alone once the step has settled, and which agree again: a
// Service whose names were asked and agree, and whose addresses' PTRs do.
func (s *sequence) note(checks []check, results map[check]result) {
	differs := map[string]bool{}
	for _, c := range checks {
		agree := s.agree(c, results[c])
		if c.q.addr == "" {
			differs[c.q.service] = differs[c.q.service] || !agree
			continue
		}
		for _, svc := range s.world.servicesOf(c.q) {
			if !agree {
				differs[svc] = true
			}
		}
	}
	for svc, d := range differs {
		if _, ok := s.differing[svc]; d && !ok {
			s.differing[svc] = stepOf{s.step, s.what}
		} else if !d {
			delete(s.differing, svc)
		}
	}
}

// count adds the last comparisons of a step to the tally.
func (s *sequence) count(checks []check, results map[check]result) {
	tl := &s.tally
	for _, c := range checks {
		r := results[c]
		for _, alone := range []bool{false, true} {
			got := r.both
			if alone {
				got = r.headless
			}
			v := s.world.judge(c.q, r.kubernetes, got, alone)
			if v.leftOut != "" {
				x := tl.leftOut[v.leftOut]
				x[0]++
				if !v.same {
					x[1]++
				}
				tl.leftOut[v.leftOut] = x
				continue
			}
			tl.compared++
			if v.same {
				tl.same++
			}
			if v.loose {
				tl.loose++
			} else if s.world.unordered(c.q) {
				tl.sets++
			}
		}
	}
}

// change plays one random change and returns what it was and the Services
// whose names it may have changed.
func (s *sequence) change() (string, []string) {
	changes := []struct {
		name   string
		weight int
		do     func() (string, []string, bool)
	}{
		{"slice created", 10, s.createSlice},
		{"slice deleted", 6, s.deleteSlice},
		{"slice moved to another Service", 7, s.moveSlice},
		{"slice moved to another manager", 14, s.moveManager},
		{"readiness", 10, s.flipReady},
		{"hostname", 8, s.changeHostname},
		{"address", 8, s.changeAddress},
		{"endpoint added or removed", 8, s.addOrRemoveEndpoint},
		{"ports", 7, s.changePorts},
		{"Service created", 4, s.createServiceChange},
		{"Service deleted", 3, s.deleteService},
		{"Service switched", 6, s.switchService},
		{"Service updated", 3, s.updateService},
	}
	total := 0
	for _, c := range changes {
		total += c.weight
	}
	for {
		n := s.rand.IntN(total)
		for _, c := range changes {
			if n -= c.weight; n >= 0 {
				continue
			}
			if what, touched, ok := c.do(); ok {
				s.tally.changes[c.name]++
				return what, touched
			}
			break
		}
	}
}

// pick returns a random element of xs.
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// address returns a random address of family, from pools small enough that
// slices come to share addresses now and then.
func (s *sequence) address(family discovery.AddressType) string {
	switch family {
	case discovery.AddressTypeIPv6:
		// In canonical form, as the API server wants it.
		return netip.MustParseAddr(fmt.Sprintf("fd00:77::%x:%x", s.rand.IntN(2), 1+s.rand.IntN(20))).String()
	case discovery.AddressTypeFQDN:
		return pick(s.rand, fqdnTargets)
	}
	return fmt.Sprintf("10.77.%d.%d", s.rand.IntN(4), 1+s.rand.IntN(25))
}

// endpoint returns a random endpoint of family: a hostname or none, ready,
// not ready or unset.
func (s *sequence) endpoint(family discovery.AddressType) discovery.Endpoint {
	e := testkit.Endpoint(s.address(family), s.hostname())
	switch s.rand.IntN(10) {
	case 0, 1:
		e = testkit.Ready(e, true)
	case 2:
		e = testkit.Ready(e, false)
	}
	return e
}

func (s *sequence) hostname() string {
	if s.rand.IntN(3) == 0 {
		return ""
	}
	return fmt.Sprintf("h-%d", s.rand.IntN(6))
}

// ports returns up to three ports of the pool, in a random order.
func (s *sequence) ports() []discovery.EndpointPort {
	perm := s.rand.Perm(len(sequencePorts))
	var out []discovery.EndpointPort
	for _, i := range perm[:s.rand.IntN(4)] {
		out = append(out, sequencePorts[i])
	}
	return out
}

func (s *sequence) manager() string {
	if s.rand.IntN(3) == 0 {
		return pick(s.rand, otherManagers)
	}
	return sliceController
}

// newSlice returns a new random slice of svc and adds it to the world.
func (s *sequence) newSlice(svc string) *seqSlice {
	s.serial++
	family := discovery.AddressTypeIPv4
	switch n := s.rand.IntN(20); {
	case n < 5:
		family = discovery.AddressTypeIPv6
	case n < 8:
		family = discovery.AddressTypeFQDN
	}
	sl := &seqSlice{name: fmt.Sprintf("%s-%d", svc, s.serial), service: svc, manager: s.manager(), family: family, ports: s.ports()}
	n := 1 + s.rand.IntN(4)
	if family == discovery.AddressTypeFQDN {
		n = 1 + s.rand.IntN(2)
	}
	for range n {
		sl.endpoints = append(sl.endpoints, s.endpoint(family))
	}
	s.world.slices[sl.name] = sl
	return sl
}

// putSlice creates or updates sl on the API server, as the world has it.
func (s *sequence) putSlice(sl *seqSlice, create bool) {
	api := s.client.DiscoveryV1().EndpointSlices(sequenceNS)
	var err error
	if create {
		_, err = api.Create(s.ctx, s.world.sliceObject(sl), meta.CreateOptions{})
	} else {
		_, err = api.Update(s.ctx, s.world.sliceObject(sl), meta.UpdateOptions{})
	}
	if err != nil {
		s.t.Fatalf("step %d (%s): slice %s: %v", s.step, s.what, sl.name, err)
	}
}

func (s *sequence) removeSlice(name string) {
	if err := s.client.DiscoveryV1().EndpointSlices(sequenceNS).Delete(s.ctx, name, meta.DeleteOptions{}); err != nil {
		s.t.Fatalf("step %d: delete slice %s: %v", s.step, name, err)
	}
	delete(s.world.slices, name)
}

// randomSlice returns a random slice that keep accepts, or nil.
func (s *sequence) randomSlice(keep func(*seqSlice) bool) *seqSlice {
	names := s.world.sliceNames(keep)
	if len(names) == 0 {
		return nil
	}
	return s.world.slices[pick(s.rand, names)]
}

func anySlice(*seqSlice) bool         { return true }
func withEndpoints(sl *seqSlice) bool { return len(sl.endpoints) > 0 }

func (s *sequence) createSlice() (string, []string, bool) {
	sl := s.newSlice(pick(s.rand, sequenceServices))
	s.putSlice(sl, true)
	return fmt.Sprintf("create slice %s of %s, %s, by %s, %d endpoints", sl.name, sl.service, sl.family, sl.manager, len(sl.endpoints)), []string{sl.service}, true
}

func (s *sequence) deleteSlice() (string, []string, bool) {
	sl := s.randomSlice(anySlice)
	if sl == nil {
		return "", nil, false
	}
	s.removeSlice(sl.name)
	return fmt.Sprintf("delete slice %s of %s", sl.name, sl.service), []string{sl.service}, true
}

func (s *sequence) moveSlice() (string, []string, bool) {
	sl := s.randomSlice(anySlice)
	if sl == nil {
		return "", nil, false
	}
	from := sl.service
	sl.service = pick(s.rand, slices.DeleteFunc(slices.Clone(sequenceServices), func(n string) bool { return n == from }))
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s from %s to %s", sl.name, from, sl.service), []string{from, sl.service}, true
}

// moveManager changes the managed-by label of a slice: mostly between the
// EndpointSlice controller and another manager, which moves the slice from
// one of the plugin's slice watches to the other.
func (s *sequence) moveManager() (string, []string, bool) {
	sl := s.randomSlice(anySlice)
	if sl == nil {
		return "", nil, false
	}
	from := sl.manager
	switch {
	case from == sliceController:
		sl.manager = pick(s.rand, otherManagers)
	case s.rand.IntN(4) == 0:
		sl.manager = pick(s.rand, slices.DeleteFunc(slices.Clone(otherManagers), func(m string) bool { return m == from }))
	default:
		sl.manager = sliceController
	}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s (%s): managed-by %s -> %s", sl.name, sl.service, s.world.services[sl.service].kind, from, sl.manager), []string{sl.service}, true
}

// endpointOf returns a random endpoint of a slice with endpoints, or nil.
func (s *sequence) endpointOf() (*seqSlice, *discovery.Endpoint) {
	sl := s.randomSlice(withEndpoints)
	if sl == nil {
		return nil, nil
	}
	return sl, &sl.endpoints[s.rand.IntN(len(sl.endpoints))]
}

func readiness(e discovery.Endpoint) string {
	if e.Conditions.Ready == nil {
		return "unset"
	}
	return fmt.Sprint(*e.Conditions.Ready)
}

func (s *sequence) flipReady() (string, []string, bool) {
	sl, e := s.endpointOf()
	if sl == nil {
		return "", nil, false
	}
	from := readiness(*e)
	switch {
	case e.Conditions.Ready == nil || *e.Conditions.Ready:
		*e = testkit.Ready(*e, false)
	case s.rand.IntN(2) == 0:
		*e = testkit.Ready(*e, true)
	default:
		e.Conditions.Ready = nil
	}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: %s ready %s -> %s", sl.name, sl.service, e.Addresses[0], from, readiness(*e)), []string{sl.service}, true
}

func (s *sequence) changeHostname() (string, []string, bool) {
	sl, e := s.endpointOf()
	if sl == nil {
		return "", nil, false
	}
	from := hostname(*e)
	h := s.hostname()
	for e.Hostname == nil && h == "" || e.Hostname != nil && *e.Hostname == h {
		h = s.hostname()
	}
	if h == "" {
		e.Hostname = nil
	} else {
		e.Hostname = &h
	}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: endpoint %s -> %s", sl.name, sl.service, from, hostname(*e)), []string{sl.service}, true
}

// changeAddress gives an endpoint a new address, now and then one another
// slice holds.
func (s *sequence) changeAddress() (string, []string, bool) {
	sl, e := s.endpointOf()
	if sl == nil {
		return "", nil, false
	}
	from, to := e.Addresses[0], s.address(sl.family)
	if other := s.randomSlice(func(o *seqSlice) bool { return o != sl && o.family == sl.family && len(o.endpoints) > 0 }); other != nil && s.rand.IntN(4) == 0 {
		to = pick(s.rand, other.endpoints).Addresses[0]
	}
	e.Addresses = []string{to}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: address %s -> %s", sl.name, sl.service, from, to), []string{sl.service}, true
}

func (s *sequence) addOrRemoveEndpoint() (string, []string, bool) {
	sl := s.randomSlice(anySlice)
	if sl == nil {
		return "", nil, false
	}
	var what string
	if len(sl.endpoints) > 0 && (len(sl.endpoints) >= 5 || s.rand.IntN(2) == 0) {
		i := s.rand.IntN(len(sl.endpoints))
		what = "remove endpoint " + sl.endpoints[i].Addresses[0]
		sl.endpoints = slices.Delete(slices.Clone(sl.endpoints), i, i+1)
	} else {
		e := s.endpoint(sl.family)
		what = "add endpoint " + e.Addresses[0]
		sl.endpoints = append(slices.Clip(sl.endpoints), e)
	}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: %s", sl.name, sl.service, what), []string{sl.service}, true
}

// changePorts renumbers a port of a slice, or gives it other ports.
func (s *sequence) changePorts() (string, []string, bool) {
	sl := s.randomSlice(anySlice)
	if sl == nil {
		return "", nil, false
	}
	from := portsString(sl.ports)
	if len(sl.ports) > 0 && s.rand.IntN(2) == 0 {
		i := s.rand.IntN(len(sl.ports))
		p := sl.ports[i]
		n := *p.Port + 1000
		if n > 20000 {
			n -= 2000
		}
		sl.ports = slices.Clone(sl.ports)
		sl.ports[i] = testkit.Port(*p.Name, n, *p.Protocol)
	} else {
		sl.ports = s.ports()
	}
	s.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: ports %s -> %s", sl.name, sl.service, from, portsString(sl.ports)), []string{sl.service}, true
}

func portsString(ps []discovery.EndpointPort) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s/%d/%s", *p.Name, *p.Port, *p.Protocol))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// createService creates name as the world has it, and relabels its slices.
func (s *sequence) createService(name string) {
	if _, err := s.client.CoreV1().Services(sequenceNS).Create(s.ctx, s.world.services[name].object(name), meta.CreateOptions{}); err != nil {
		s.t.Fatalf("step %d (%s): create Service %s: %v", s.step, s.what, name, err)
	}
	s.relabel(name)
}

// editService reads the Service name, edits it and writes it back.
func (s *sequence) editService(name string, edit func(*core.Service)) {
	api := s.client.CoreV1().Services(sequenceNS)
	o, err := api.Get(s.ctx, name, meta.GetOptions{})
	if err == nil {
		edit(o)
		_, err = api.Update(s.ctx, o, meta.UpdateOptions{})
	}
	if err != nil {
		s.t.Fatalf("step %d (%s): update Service %s: %v", s.step, s.what, name, err)
	}
}

// relabel does what the EndpointSlice controller does when a Service comes,
// goes or changes type: it relabels its slices, or, when it is gone,
// deletes them (they are owned by the Service). The world has the Service
// as it now is; labels as the world had them before are read back from the
// API server.
func (s *sequence) relabel(name string) {
	api := s.client.DiscoveryV1().EndpointSlices(sequenceNS)
	for _, sn := range s.world.sliceNames(func(sl *seqSlice) bool { return sl.service == name && sl.manager == sliceController }) {
		sl := s.world.slices[sn]
		if _, ok := s.world.services[name]; !ok {
			s.removeSlice(sn)
			continue
		}
		o, err := api.Get(s.ctx, sn, meta.GetOptions{})
		if err != nil {
			s.t.Fatalf("step %d (%s): slice %s: %v", s.step, s.what, sn, err)
		}
		if _, has := o.Labels[core.IsHeadlessService]; has != s.world.labelled(sl) {
			s.putSlice(sl, false)
		}
	}
}

func (s *sequence) existing() []string {
	return slices.DeleteFunc(slices.Clone(sequenceServices), func(n string) bool { _, ok := s.world.services[n]; return !ok })
}

func (s *sequence) randomKind() kind {
	switch n := s.rand.IntN(10); {
	case n < 6:
		return headlessKind
	case n < 8:
		return clusterIPKind
	}
	return externalNameKind
}

func (s *sequence) createServiceChange() (string, []string, bool) {
	absent := slices.DeleteFunc(slices.Clone(sequenceServices), func(n string) bool { _, ok := s.world.services[n]; return ok })
	if len(absent) == 0 {
		return "", nil, false
	}
	name := pick(s.rand, absent)
	s.world.services[name] = seqService{kind: s.randomKind(), port: 80, target: pick(s.rand, fqdnTargets[:2])}
	s.createService(name)
	return fmt.Sprintf("create %s Service %s", s.world.services[name].kind, name), []string{name}, true
}

func (s *sequence) deleteService() (string, []string, bool) {
	names := s.existing()
	if len(names) == 0 {
		return "", nil, false
	}
	name := pick(s.rand, names)
	k := s.world.services[name].kind
	if err := s.client.CoreV1().Services(sequenceNS).Delete(s.ctx, name, meta.DeleteOptions{}); err != nil {
		s.t.Fatalf("step %d: delete Service %s: %v", s.step, name, err)
	}
	delete(s.world.services, name)
	s.relabel(name)
	return fmt.Sprintf("delete %s Service %s and the controller's slices of it", k, name), []string{name}, true
}

// switchService switches a Service between headless, ClusterIP and
// ExternalName. The API server keeps a cluster IP (or None) as long as the
// Service has one: between headless and ClusterIP the Service is deleted and
// created again, as kubectl replace --force does.
func (s *sequence) switchService() (string, []string, bool) {
	names := s.existing()
	if len(names) == 0 {
		return "", nil, false
	}
	name := pick(s.rand, names)
	svc := s.world.services[name]
	from := svc.kind
	for svc.kind == from {
		svc.kind = s.randomKind()
	}
	svc.target = pick(s.rand, fqdnTargets[:2])
	s.world.services[name] = svc
	how := "updated"
	switch {
	case from != externalNameKind && svc.kind != externalNameKind:
		how = "deleted and created"
		if err := s.client.CoreV1().Services(sequenceNS).Delete(s.ctx, name, meta.DeleteOptions{}); err != nil {
			s.t.Fatalf("step %d: delete Service %s: %v", s.step, name, err)
		}
		s.createService(name)
	case svc.kind == externalNameKind:
		// The API server drops the cluster IP it allocated.
		s.editService(name, func(o *core.Service) {
			o.Spec.Type, o.Spec.ExternalName = core.ServiceTypeExternalName, svc.target
		})
		s.relabel(name)
	default:
		s.editService(name, func(o *core.Service) {
			o.Spec = svc.object(name).Spec
		})
		s.relabel(name)
	}
	return fmt.Sprintf("Service %s %s -> %s (%s)", name, from, svc.kind, how), []string{name}, true
}

// updateService changes what a Service's answers may hold: the port of a
// ClusterIP Service (its SRV records), the target of an ExternalName one,
// the port of a headless one (nothing: its records come from its slices).
func (s *sequence) updateService() (string, []string, bool) {
	names := s.existing()
	if len(names) == 0 {
		return "", nil, false
	}
	name := pick(s.rand, names)
	svc := s.world.services[name]
	var what string
	if svc.kind == externalNameKind {
		from := svc.target
		svc.target = pick(s.rand, slices.DeleteFunc(slices.Clone(fqdnTargets[:2]), func(t string) bool { return t == from }))
		what = fmt.Sprintf("ExternalName Service %s: %s -> %s", name, from, svc.target)
	} else {
		from := svc.port
		svc.port = 80 + 8000*int32(s.rand.IntN(2)) + int32(s.rand.IntN(3))
		what = fmt.Sprintf("%s Service %s: port %d -> %d", svc.kind, name, from, svc.port)
	}
	s.world.services[name] = svc
	s.editService(name, func(o *core.Service) {
		o.Spec.ExternalName = svc.object(name).Spec.ExternalName
		if len(o.Spec.Ports) > 0 {
			o.Spec.Ports[0].Port = svc.port
		}
	})
	return what, []string{name}, true
}
