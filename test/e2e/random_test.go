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

// The flags of TestRandomChanges; make test plays the defaults. A longer run:
//
//	go test ./test/e2e -run TestRandomChanges -random.steps=1000 -random.seed=7 -random.time=0 -random.burst=20000
var (
	randomSteps = flag.Int("random.steps", 120, "TestRandomChanges: the steps it plays, of one to three changes each")
	randomSeed  = flag.Uint64("random.seed", 1, "TestRandomChanges: the seed of its random changes")
	randomTime  = flag.Duration("random.time", time.Minute, "TestRandomChanges: it plays no new step after this long; 0 for no limit")
	randomBurst = flag.Int("random.burst", 2000, "TestRandomChanges: the changes of its last step, made back to back (a fifth with -short)")
)

const (
	randomNS        = "random"
	sliceController = "endpointslice-controller.k8s.io"
	settleTime      = 5 * time.Second // how long answers may differ after a step
	markerAddr      = "10.77.255.1"   // of the marker's endpoint (see mark)
	anchorAddr      = "10.77.254.1"   // of anchor-0, always in the Service anchor
)

// What the changes draw from; the names FQDN endpoints and ExternalName
// Services point to are the example.org block's, or no one's, so that no
// chain of FQDN endpoints forms.
var (
	randomServices = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	managers       = []string{sliceController, sliceController, "operator.example.com", "endpointslicemirroring-controller.k8s.io"}
	fqdnTargets    = []string{"db.example.org", "cache.example.org", "nothing.example.org"}
	randomPorts    = []discovery.EndpointPort{
		testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP),
		testkit.Port("dns-udp", 53, core.ProtocolUDP), testkit.Port("dns-tcp", 53, core.ProtocolTCP), testkit.Port("", 7000, core.ProtocolTCP),
	}
	randomSRV = []string{"_http._tcp.", "_metrics._tcp.", "_dns-udp._udp.", "_dns-tcp._tcp.", "_http._udp."}
)

// state is what the test wrote to the API server, as it returned it, but
// the marker's objects. Objects are replaced, never changed.
type state struct {
	services map[string]*core.Service
	slices   map[string]*discovery.EndpointSlice
}

// kind is "headless", "ClusterIP", "ExternalName", or "" for no Service.
func (s state) kind(svc string) string {
	switch o := s.services[svc]; {
	case o == nil:
		return ""
	case o.Spec.Type == core.ServiceTypeExternalName:
		return "ExternalName"
	case o.Spec.ClusterIP == core.ClusterIPNone:
		return "headless"
	}
	return "ClusterIP"
}

func service(sl *discovery.EndpointSlice) string { return sl.Labels[discovery.LabelServiceName] }

func isReady(e discovery.Endpoint) bool { return e.Conditions.Ready == nil || *e.Conditions.Ready }

// rQuery is a question under the Service service, or the PTR of addr.
type rQuery struct {
	name          string
	qtype         uint16
	service, addr string
}

func (q rQuery) String() string { return q.name + " " + dns.TypeToString[q.qtype] }

// queries adds to into the names of services, their _port._proto names,
// their endpoints' names and the PTR of their addresses.
func (s state) queries(services []string, into map[rQuery]bool) {
	for _, svc := range services {
		base := svc + "." + randomNS + ".svc.cluster.local."
		add := func(name string, types ...uint16) {
			for _, t := range types {
				into[rQuery{name: name, qtype: t, service: svc}] = true
			}
		}
		add(base, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
		for _, p := range randomSRV {
			add(p+base, dns.TypeSRV)
		}
		for _, sl := range s.slices {
			for _, e := range sl.Endpoints {
				if service(sl) == svc {
					add(testkit.Hostname(e)+"."+base, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
					if rev, err := dns.ReverseAddr(e.Addresses[0]); err == nil { // not of FQDN
						into[rQuery{name: rev, qtype: dns.TypePTR, addr: e.Addresses[0]}] = true
					}
				}
			}
		}
	}
}

// sources returns how many slices the records of q may come from: the
// kubernetes plugin keeps slices in a map, so that with several their order
// varies from one answer to the next, and answers compare as sets (within
// one slice the order is the slice's, which headless must keep). leftOut
// says whether headless alone answers q otherwise by design (README,
// conformanceProbes): a name of a ClusterIP or ExternalName Service, the
// PTR of an address that one, or a slice of no Service, holds.
func (s state) sources(q rQuery) (n int, leftOut bool) {
	for _, sl := range s.slices {
		if q.addr == "" && service(sl) == q.service && slices.ContainsFunc(sl.Endpoints, isReady) ||
			q.addr != "" && slices.ContainsFunc(sl.Endpoints, func(e discovery.Endpoint) bool { return isReady(e) && e.Addresses[0] == q.addr }) {
			n++
			leftOut = leftOut || q.addr != "" && s.kind(service(sl)) != "headless"
		}
	}
	k := s.kind(q.service)
	return n, leftOut || q.addr == "" && (k == "ClusterIP" || k == "ExternalName")
}

// text is an answer as it compares: normalize's form, and when its records
// come from one slice, the answer section in its order.
func text(m *dns.Msg, ordered bool) string {
	if m == nil {
		return "no answer\n"
	}
	s := normalize(m)
	if ordered {
		for _, rr := range m.Answer {
			s += "in order: " + rr.String() + "\n"
		}
	}
	return s
}

// agree reports whether got, the answer of the drop-in or (alone) of
// headless alone, is want, kubernetes alone's, but where sources leaves it
// out. A reverse name kubernetes does not know goes to the stub upstream,
// which answers without SOA: there the rcode and records must be the same.
func (s state) agree(q rQuery, want, got *dns.Msg, alone bool) bool {
	n, leftOut := s.sources(q)
	switch {
	case want == nil || got == nil:
		return want != nil && got != nil
	case alone && leftOut:
		return true
	case alone && q.addr != "" && want.Rcode == dns.RcodeNameError && len(want.Ns) == 0:
		return got.Rcode == want.Rcode && slices.Equal(testkit.Records(got.Answer), testkit.Records(want.Answer))
	}
	return text(got, n <= 1) == text(want, n <= 1)
}

// check is a question over one transport; its answers are those of
// kubernetes alone, the drop-in and headless alone, nil for none.
type check struct {
	q       rQuery
	network string
}

type answers [3]*dns.Msg

type randomRun struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
	rand   *rand.Rand
	state
	serial, marks, step, compared int
	what                          string // what the step changed
}

// TestRandomChanges plays seeded random changes (see change) on a namespace
// of its own. After each step of one to three, once kubernetes alone has
// seen it (mark), headless in front of kubernetes and headless alone must
// answer every name the step touched as kubernetes alone does, over UDP and
// TCP (agree), within settleTime. The last step is a burst of -random.burst
// changes back to back; then every name is compared, and the live heap of
// the server must not have grown much: a leak of slices, views or
// watches stays in it. (That no answer comes from a moment between two
// states, TestIndexConcurrent shows in process.)
func TestRandomChanges(t *testing.T) {
	start := time.Now()
	// The API server warns of each FQDN slice written: FQDN endpoints are
	// deprecated, and the test writes many.
	cfg := rest.CopyConfig(shared.cluster.RESTConfig)
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &randomRun{t: t, ctx: context.Background(), client: client, rand: rand.New(rand.NewPCG(*randomSeed, 0)),
		state: state{map[string]*core.Service{}, map[string]*discovery.EndpointSlice{}}}
	r.populate()
	r.what = "the first objects"
	r.settle(r.allQueries())
	heapBefore := liveHeap(t)

	for r.step = 1; r.step <= *randomSteps && (*randomTime == 0 || time.Since(start) < *randomTime); r.step++ {
		before, qs := state{maps.Clone(r.services), maps.Clone(r.slices)}, map[rQuery]bool{}
		var whats []string
		for range 1 + r.rand.IntN(3) {
			what, touched := r.change()
			whats = append(whats, what)
			before.queries(touched, qs)
			r.queries(touched, qs)
		}
		r.what = strings.Join(whats, "; ")
		r.settle(qs)
	}
	burst := *randomBurst
	if testing.Short() {
		burst /= 5
	}
	r.what = fmt.Sprintf("a burst of %d changes, then every name", burst)
	began := time.Now()
	for range burst {
		r.change()
	}
	t.Logf("%s: written in %s", r.what, time.Since(began).Round(time.Millisecond))
	r.settle(r.allQueries())

	heapAfter := liveHeap(t)
	if heapAfter > 2*heapBefore+16<<20 {
		t.Errorf("the live heap grew from %d KiB to %d KiB", heapBefore>>10, heapAfter>>10)
	}
	t.Logf("seed %d, %d steps in %s; %d comparisons once settled; live heap %d KiB before, %d KiB after",
		*randomSeed, r.step-1, time.Since(start).Round(time.Second), r.compared, heapBefore>>10, heapAfter>>10)
}

func liveHeap(t *testing.T) int {
	t.Helper()
	n, err := testkit.LiveHeap(shared.pprof)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// populate clears what an earlier run (-count) left, then creates the
// marker's objects, the anchor, four headless Services with a slice or two,
// and a ClusterIP one.
func (r *randomRun) populate() {
	svcs, err := r.client.CoreV1().Services(randomNS).List(r.ctx, meta.ListOptions{})
	r.must(err)
	for _, o := range svcs.Items {
		r.must(r.client.CoreV1().Services(randomNS).Delete(r.ctx, o.Name, meta.DeleteOptions{}))
	}
	r.must(r.client.DiscoveryV1().EndpointSlices(randomNS).DeleteCollection(r.ctx, meta.DeleteOptions{}, meta.ListOptions{}))
	r.must(testkit.Apply(r.ctx, r.client, testkit.Objects{
		Services: []*core.Service{
			testkit.ClusterIP(randomNS, "marker", testkit.ServicePort("http", 80, core.ProtocolTCP)),
			testkit.ExternalName(randomNS, "marker-name", "mark-0.example.org"),
		},
		Slices: []*discovery.EndpointSlice{markerSlice(0)},
	}))
	for i, name := range append(randomServices[:5:5], "anchor") {
		r.putService(r.newService(name, map[bool]string{true: "ClusterIP", false: "headless"}[i == 4]), true)
		for range map[bool]int{true: 0, false: 1 + r.rand.IntN(2)}[name == "anchor"] {
			r.putSlice(r.newSlice(name), true)
		}
	}
	r.putSlice(testkit.Slice(randomNS, "anchor", "anchor-1", discovery.AddressTypeIPv4, randomPorts[:1],
		testkit.Ready(testkit.Endpoint(anchorAddr, "anchor-0"), true)), true)
}

func (r *randomRun) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("step %d: %v", r.step, err)
	}
}

func markerSlice(mark int) *discovery.EndpointSlice {
	return testkit.Slice(randomNS, "marker", "marker-1", discovery.AddressTypeIPv4, randomPorts[:1], testkit.Endpoint(markerAddr, fmt.Sprintf("mark-%d", mark)))
}

// mark writes a new mark into a slice and a Service, and waits until the
// kubernetes plugin of kubernetes alone and of the drop-in answers it: each
// of its watches delivers events in order, so it has seen the whole step.
func (r *randomRun) mark() {
	r.marks++
	_, err := r.client.DiscoveryV1().EndpointSlices(randomNS).Update(r.ctx, markerSlice(r.marks), meta.UpdateOptions{})
	r.must(err)
	name, err := r.client.CoreV1().Services(randomNS).Get(r.ctx, "marker-name", meta.GetOptions{})
	r.must(err)
	name.Spec.ExternalName = fmt.Sprintf("mark-%d.example.org", r.marks)
	_, err = r.client.CoreV1().Services(randomNS).Update(r.ctx, name, meta.UpdateOptions{})
	r.must(err)
	host := fmt.Sprintf("mark-%d.marker.%s.svc.cluster.local.", r.marks, randomNS)
	for _, addr := range []string{shared.kubernetes, shared.both} {
		testkit.Eventually(r.t, 15*time.Second, fmt.Sprintf("step %d seen by the kubernetes plugin of %s", r.step, listenerName(addr)), func() (bool, string) {
			a := testkit.Query(r.t, "udp", addr, host, dns.TypeA)
			c := testkit.Query(r.t, "udp", addr, "marker-name."+randomNS+".svc.cluster.local.", dns.TypeCNAME)
			seen := len(a.Answer) == 1 && len(c.Answer) == 1 && strings.HasSuffix(c.Answer[0].String(), "\t"+name.Spec.ExternalName+".")
			return seen, a.String() + c.String()
		})
	}
}

func (r *randomRun) allQueries() map[rQuery]bool {
	qs := map[rQuery]bool{}
	r.queries(append(randomServices[:len(randomServices):len(randomServices)], "anchor"), qs)
	return qs
}

// settle waits until the listeners agree on every question of qs, over UDP
// and TCP, in two rounds a quarter of a second apart (a late event could
// undo a first agreement), and fails the test with the differences that
// outlive settleTime, the first few in full.
func (r *randomRun) settle(qs map[rQuery]bool) {
	r.mark()
	var all []check
	for _, q := range slices.SortedFunc(maps.Keys(qs), func(a, b rQuery) int { return strings.Compare(a.String(), b.String()) }) {
		all = append(all, check{q, "udp"}, check{q, "tcp"})
	}
	results := map[check]answers{}
	var deadline time.Time // from the end of the first round, which may be long
	for pending, confirming := all, false; ; {
		r.ask(pending, results)
		if deadline.IsZero() {
			deadline = time.Now().Add(settleTime)
		}
		pending = slices.DeleteFunc(slices.Clone(all), func(c check) bool {
			a := results[c]
			return r.agree(c.q, a[0], a[1], false) && r.agree(c.q, a[0], a[2], true)
		})
		if len(pending) == 0 && confirming {
			r.compared += len(all)
			return
		}
		if confirming = len(pending) == 0; confirming {
			pending = all
		} else if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var b strings.Builder
	n := 0
	for _, c := range all {
		for i, at := range []string{shared.both, shared.headless} {
			if a := results[c]; !r.agree(c.q, a[0], a[i+1], i == 1) {
				if n++; n <= 4 {
					k, _ := r.sources(c.q)
					fmt.Fprintf(&b, "\n%s over %s:\n--- kubernetes:\n%s--- %s:\n%s", c.q, c.network, text(a[0], k <= 1), listenerName(at), text(a[i+1], k <= 1))
				}
			}
		}
	}
	r.t.Fatalf("step %d (%s): %d answers still differ from kubernetes alone's %s after it (-random.seed=%d), the first %d:%s",
		r.step, r.what, n, settleTime, *randomSeed, min(n, 4), b.String())
}

// ask sends the checks to the three listeners, eight at a time.
func (r *randomRun) ask(checks []check, results map[check]answers) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, c := range checks {
		sem <- struct{}{}
		wg.Go(func() {
			var a answers
			for i, addr := range []string{shared.kubernetes, shared.both, shared.headless} {
				a[i], _ = testkit.Exchange(c.network, addr, testkit.NewQuery(c.q.name, c.q.qtype))
			}
			mu.Lock()
			results[c] = a
			mu.Unlock()
			<-sem
		})
	}
	wg.Wait()
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// change plays one random change: Services created, deleted, switched
// between headless, ClusterIP and ExternalName, updated; EndpointSlices
// (IPv4, IPv6, FQDN) created, deleted, moved to another Service or manager,
// their endpoints' readiness, hostnames and addresses changed, their ports
// too. It returns what it did and the Services whose names it may change.
func (r *randomRun) change() (string, []string) {
	n := r.rand.IntN(100)
	names := slices.DeleteFunc(slices.Sorted(maps.Keys(r.slices)), func(n string) bool { return n == "anchor-1" })
	svc := pick(r.rand, randomServices)
	switch {
	case n < 10 || n >= 32 && len(names) == 0:
		sl := r.newSlice(svc)
		r.putSlice(sl, true)
		return fmt.Sprintf("create slice %s (%s, by %s)", sl.Name, sl.AddressType, sl.Labels[discovery.LabelManagedBy]), []string{svc}
	case n < 23:
		// A Service created, deleted, or switched between headless,
		// ClusterIP and ExternalName.
		from, to := r.kind(svc), pick(r.rand, []string{"", "headless", "headless", "headless", "ClusterIP", "ExternalName"})
		switch {
		case from == to:
		case to == "":
			r.must(r.client.CoreV1().Services(randomNS).Delete(r.ctx, svc, meta.DeleteOptions{}))
			delete(r.services, svc)
		case from == "":
			r.putService(r.newService(svc, to), true)
		case from != "ExternalName" && to != "ExternalName":
			// The API server keeps a cluster IP (or None) as long as the
			// Service has one: delete and create, as kubectl replace
			// --force does.
			r.must(r.client.CoreV1().Services(randomNS).Delete(r.ctx, svc, meta.DeleteOptions{}))
			r.putService(r.newService(svc, to), true)
		default:
			// The API server drops the cluster IP it allocated, or
			// allocates one.
			o := r.services[svc].DeepCopy()
			o.Spec = r.newService(svc, to).Spec
			r.putService(o, false)
		}
		r.relabel(svc)
		return fmt.Sprintf("Service %s %q -> %q", svc, from, to), []string{svc}
	case n < 26:
		// The port of a ClusterIP Service (its SRV records), the target of
		// an ExternalName one, the port of a headless one (nothing: its
		// records come from its slices).
		if r.services[svc] != nil {
			o := r.services[svc].DeepCopy()
			o.Spec.ExternalName = r.newService(svc, r.kind(svc)).Spec.ExternalName
			for i := range o.Spec.Ports {
				o.Spec.Ports[i].Port = 80 + 8000*int32(r.rand.IntN(2)) + int32(r.rand.IntN(3))
			}
			r.putService(o, false)
		}
		return "update Service " + svc, []string{svc}
	case n < 32:
		// The anchor's slice: other endpoints beside anchor-0, in place.
		sl := r.slices["anchor-1"].DeepCopy()
		sl.Endpoints = sl.Endpoints[:1]
		for range r.rand.IntN(5) {
			sl.Endpoints = append(sl.Endpoints, r.endpoint(discovery.AddressTypeIPv4))
		}
		r.putSlice(sl, false)
		return fmt.Sprintf("anchor-0 and %d endpoints", len(sl.Endpoints)-1), []string{"anchor"}
	}
	sl := r.slices[pick(r.rand, names)].DeepCopy()
	from := service(sl)
	if n < 38 {
		r.must(r.client.DiscoveryV1().EndpointSlices(randomNS).Delete(r.ctx, sl.Name, meta.DeleteOptions{}))
		delete(r.slices, sl.Name)
		return "delete slice " + sl.Name, []string{from}
	}
	// endpoint is one of the slice's, which gets one if it has none.
	endpoint := func() *discovery.Endpoint {
		if len(sl.Endpoints) == 0 {
			sl.Endpoints = append(sl.Endpoints, r.endpoint(sl.AddressType))
		}
		return &sl.Endpoints[r.rand.IntN(len(sl.Endpoints))]
	}
	var what string
	switch {
	case n < 45:
		sl.Labels[discovery.LabelServiceName] = svc
		what = "moved to " + svc
	case n < 59:
		// Mostly between the EndpointSlice controller and another
		// manager: from one of the plugin's slice watches to the other.
		sl.Labels[discovery.LabelManagedBy] = pick(r.rand, managers)
		what = "managed by " + sl.Labels[discovery.LabelManagedBy]
	case n < 69:
		e := endpoint()
		e.Conditions.Ready = pick(r.rand, []*bool{nil, new(bool), &[]bool{true}[0]})
		what = fmt.Sprintf("%s ready: %v", e.Addresses[0], isReady(*e))
	case n < 77:
		e := endpoint()
		e.Hostname = r.hostname()
		what = fmt.Sprintf("%s named %s", e.Addresses[0], testkit.Hostname(*e))
	case n < 85:
		// From pools where slices come to share addresses.
		e := endpoint()
		e.Addresses[0] = r.address(sl.AddressType)
		what = "address " + e.Addresses[0]
	case n < 93 && len(sl.Endpoints) > 0 && (len(sl.Endpoints) >= 5 || r.rand.IntN(2) == 0):
		i := r.rand.IntN(len(sl.Endpoints))
		sl.Endpoints = slices.Delete(sl.Endpoints, i, i+1)
		what = "endpoint removed"
	case n < 93:
		sl.Endpoints = append(sl.Endpoints, r.endpoint(sl.AddressType))
		what = "endpoint added"
	case len(sl.Ports) > 0 && r.rand.IntN(2) == 0:
		p := &sl.Ports[r.rand.IntN(len(sl.Ports))]
		p.Port = &[]int32{1000 + int32(r.rand.IntN(3))}[0]
		what = "port renumbered"
	default:
		sl.Ports = r.ports()
		what = fmt.Sprint(len(sl.Ports), " ports")
	}
	r.putSlice(sl, false)
	return fmt.Sprintf("slice %s of %s: %s", sl.Name, from, what), []string{from, service(sl)}
}

func (r *randomRun) newService(name, kind string) *core.Service {
	switch http := testkit.ServicePort("http", 80, core.ProtocolTCP); kind {
	case "headless":
		return testkit.Headless(randomNS, name, http)
	case "ClusterIP":
		return testkit.ClusterIP(randomNS, name, http)
	}
	return testkit.ExternalName(randomNS, name, pick(r.rand, fqdnTargets[:2]))
}

func (r *randomRun) newSlice(svc string) *discovery.EndpointSlice {
	r.serial++
	v4, v6, fqdn := discovery.AddressTypeIPv4, discovery.AddressTypeIPv6, discovery.AddressTypeFQDN
	family := pick(r.rand, []discovery.AddressType{v4, v4, v4, v6, v6, fqdn})
	sl := testkit.ManagedBy(testkit.Slice(randomNS, svc, fmt.Sprintf("%s-%d", svc, r.serial), family, r.ports()), pick(r.rand, managers))
	for range 1 + r.rand.IntN(map[bool]int{true: 2, false: 4}[family == fqdn]) {
		sl.Endpoints = append(sl.Endpoints, r.endpoint(family))
	}
	return sl
}

// address returns a random address of family, from pools small enough that
// slices come to share addresses now and then.
func (r *randomRun) address(family discovery.AddressType) string {
	switch family {
	case discovery.AddressTypeIPv6:
		// In canonical form, as the API server wants it.
		return netip.MustParseAddr(fmt.Sprintf("fd00:77::%x:%x", r.rand.IntN(2), 1+r.rand.IntN(20))).String()
	case discovery.AddressTypeFQDN:
		return pick(r.rand, fqdnTargets)
	}
	return fmt.Sprintf("10.77.%d.%d", r.rand.IntN(4), 1+r.rand.IntN(25))
}

// endpoint returns a random endpoint of family: a hostname or none, ready,
// not ready or unset.
func (r *randomRun) endpoint(family discovery.AddressType) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{r.address(family)}, Hostname: r.hostname()}
	if n := r.rand.IntN(10); n < 3 {
		e = testkit.Ready(e, n < 2)
	}
	return e
}

func (r *randomRun) hostname() *string {
	if r.rand.IntN(3) == 0 {
		return nil
	}
	return &[]string{fmt.Sprintf("h-%d", r.rand.IntN(6))}[0]
}

// ports returns up to three ports of the pool, in a random order.
func (r *randomRun) ports() []discovery.EndpointPort {
	var out []discovery.EndpointPort
	for _, i := range r.rand.Perm(len(randomPorts))[:r.rand.IntN(4)] {
		out = append(out, randomPorts[i])
	}
	return out
}

// put creates or updates o and returns it as the API server returns it.
func put[T any](r *randomRun, o T, create bool, c func(context.Context, T, meta.CreateOptions) (T, error), u func(context.Context, T, meta.UpdateOptions) (T, error)) T {
	var err error
	if create {
		o, err = c(r.ctx, o, meta.CreateOptions{})
	} else {
		o, err = u(r.ctx, o, meta.UpdateOptions{})
	}
	r.must(err)
	return o
}

func (r *randomRun) putService(svc *core.Service, create bool) {
	api := r.client.CoreV1().Services(randomNS)
	r.services[svc.Name] = put(r, svc, create, api.Create, api.Update)
}

// putSlice writes sl labelled as the EndpointSlice controller labels its
// slices of headless Services: the test does the work of the controllers,
// which its control plane does not run.
func (r *randomRun) putSlice(sl *discovery.EndpointSlice, create bool) {
	delete(sl.Labels, core.IsHeadlessService)
	if sl.Labels[discovery.LabelManagedBy] == sliceController && r.kind(service(sl)) == "headless" {
		testkit.HeadlessLabel(sl)
	}
	api := r.client.DiscoveryV1().EndpointSlices(randomNS)
	r.slices[sl.Name] = put(r, sl, create, api.Create, api.Update)
}

// relabel does what the EndpointSlice controller does when a Service comes,
// goes or changes type: it relabels its slices, or, when it is gone,
// deletes them (they are owned by the Service).
func (r *randomRun) relabel(name string) {
	for _, sn := range slices.Sorted(maps.Keys(r.slices)) {
		sl := r.slices[sn]
		switch _, labelled := sl.Labels[core.IsHeadlessService]; {
		case service(sl) != name || sl.Labels[discovery.LabelManagedBy] != sliceController:
		case r.services[name] == nil:
			r.must(r.client.DiscoveryV1().EndpointSlices(randomNS).Delete(r.ctx, sn, meta.DeleteOptions{}))
			delete(r.slices, sn)
		case labelled != (r.kind(name) == "headless"):
			r.putSlice(sl.DeepCopy(), false)
		}
	}
}
