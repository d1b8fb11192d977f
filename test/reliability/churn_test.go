package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// churnWrites is how many writes of EndpointSlices the churn makes
	// under query load, however long they take; churnWritesShort with
	// -short.
	churnWrites      = 20000
	churnWritesShort = 4000
	// churnServices is the number of headless services that churn.
	churnServices = 20
	// churnMaxEndpoints is the most endpoints a churning service has.
	churnMaxEndpoints = 8
	// churnWriters update the slices, each at most churnWriteRate a second.
	churnWriters   = 4
	churnWriteRate = 100
	// churnQueriers send queries, together at most churnQPS a second.
	churnQueriers = 8
	churnQPS      = 2000
	// inProcessQueriers query the plugin that runs in the test process, at
	// most inProcessQPS a second: under the race detector it is slow.
	inProcessQueriers = 2
	inProcessQPS      = 400
	churnNS           = "churn"
)

// churnService is one service that churns: endpoint j is host h-j with
// address 10.90.i.j+1 and ports web 80 and metrics 9090; endpoint 0 is always
// ready, so the service always has an address. A ready endpoint has its
// ready condition true when j is odd, unset when j is even: both mean ready.
// Split, its endpoints are in two slices, the first half in a, the rest in b;
// else all are in a. The two slices never share an endpoint.
type churnService struct {
	i        int
	n        int
	notReady map[int]bool
	split    bool
	a, b     *discovery.EndpointSlice // as last written, nil if absent
}

func churnName(i int) string { return fmt.Sprintf("svc-%02d", i) }

// churnFQDN is the name of service i.
func churnFQDN(i int) string { return churnName(i) + "." + churnNS + ".svc.cluster.local." }

// churnAddr is the address of endpoint j of service i.
func churnAddr(i, j int) string { return fmt.Sprintf("10.90.%d.%d", i, j+1) }

func (s *churnService) endpoints(lo, hi int) []discovery.Endpoint {
	var eps []discovery.Endpoint
	for j := lo; j < hi; j++ {
		e := testkit.Endpoint(churnAddr(s.i, j), fmt.Sprintf("h-%d", j))
		if s.notReady[j] || j%2 == 1 {
			e = testkit.Ready(e, !s.notReady[j])
		}
		eps = append(eps, e)
	}
	return eps
}

var churnPorts = []discovery.EndpointPort{testkit.Port("web", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}

// slice returns slice a or b of the current state.
func (s *churnService) slice(name string, lo, hi int) *discovery.EndpointSlice {
	return testkit.HeadlessSlice(churnNS, churnName(s.i), churnName(s.i)+"-"+name, discovery.AddressTypeIPv4, churnPorts, s.endpoints(lo, hi)...)
}

// write creates or updates one slice from want, keeping its last written
// version in *last.
func writeSlice(ctx context.Context, client kubernetes.Interface, last **discovery.EndpointSlice, want *discovery.EndpointSlice) error {
	api := client.DiscoveryV1().EndpointSlices(churnNS)
	if *last == nil {
		got, err := api.Create(ctx, want, meta.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			if got, err = api.Get(ctx, want.Name, meta.GetOptions{}); err == nil {
				want.ResourceVersion = got.ResourceVersion
				got, err = api.Update(ctx, want, meta.UpdateOptions{})
			}
		}
		if err != nil {
			return err
		}
		*last = got
		return nil
	}
	want.ResourceVersion = (*last).ResourceVersion
	got, err := api.Update(ctx, want, meta.UpdateOptions{})
	if err != nil {
		// Resynchronize with the API for the next write.
		if cur, gerr := api.Get(ctx, want.Name, meta.GetOptions{}); gerr == nil {
			*last = cur
		}
		return err
	}
	*last = got
	return nil
}

// step makes one random change, in one or two writes, each leaving an API
// state that keeps the invariants. It returns the number of writes.
func (s *churnService) step(ctx context.Context, client kubernetes.Interface, r *rand.Rand) (int, error) {
	half := s.n / 2
	switch op := r.IntN(10); {
	case op < 4 && !s.split: // scale
		s.n = 1 + r.IntN(churnMaxEndpoints)
		for j := range s.notReady {
			if j >= s.n {
				delete(s.notReady, j)
			}
		}
		return 1, writeSlice(ctx, client, &s.a, s.slice("a", 0, s.n))
	case op < 7 && s.n > 1: // flip the readiness of an endpoint but the first
		j := 1 + r.IntN(s.n-1)
		s.notReady[j] = !s.notReady[j]
		if s.split && j >= half {
			return 1, writeSlice(ctx, client, &s.b, s.slice("b", half, s.n))
		}
		if s.split {
			return 1, writeSlice(ctx, client, &s.a, s.slice("a", 0, half))
		}
		return 1, writeSlice(ctx, client, &s.a, s.slice("a", 0, s.n))
	case !s.split && s.n > 1: // split: a keeps the first half, then b gets the rest
		s.split = true
		if err := writeSlice(ctx, client, &s.a, s.slice("a", 0, half)); err != nil {
			return 1, err
		}
		return 2, writeSlice(ctx, client, &s.b, s.slice("b", half, s.n))
	case s.split: // merge: b goes, then a gets all
		s.split = false
		err := client.DiscoveryV1().EndpointSlices(churnNS).Delete(ctx, churnName(s.i)+"-b", meta.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 1, err
		}
		s.b = nil
		return 2, writeSlice(ctx, client, &s.a, s.slice("a", 0, s.n))
	default: // a service of one endpoint: grow
		s.n = 2 + r.IntN(churnMaxEndpoints-1)
		return 1, writeSlice(ctx, client, &s.a, s.slice("a", 0, s.n))
	}
}

// ready returns the hosts that are ready in the current state.
func (s *churnService) ready() []int {
	var js []int
	for j := range s.n {
		if !s.notReady[j] {
			js = append(js, j)
		}
	}
	return js
}

// kubernetesSRVWeight is the weight the kubernetes plugin gives each of n
// SRV records of priority 0, as it answers: literal values, so that the test
// shares no formula with the plugin. TestChurnUnderLoad checks them against
// the kubernetes plugin's answers on the final state.
var kubernetesSRVWeight = map[int]uint16{
	1: 100, 2: 50, 3: 33, 4: 25, 5: 20, 6: 16, 7: 14, 8: 12,
	9: 11, 10: 10, 11: 9, 12: 8, 13: 7, 14: 7, 15: 6, 16: 6,
}

// checkChurnAnswer returns an error if r, the answer to an A or SRV query for
// service i or to the PTR query of its endpoint j, is one that no API state
// of the service had: an error rcode, a message that is not well formed, no
// address, an address twice or not of the service, the first endpoint
// missing, an SRV target without both ports or glue, glue with another
// address than its host's, SRV weights other than the kubernetes plugin's,
// or a PTR record of another name than the endpoint's.
func checkChurnAnswer(i, j int, qtype uint16, r *dns.Msg) error {
	if err := wellFormed(r); err != nil {
		return err
	}
	name := churnFQDN(i)
	if qtype == dns.TypePTR {
		return checkChurnPTR(name, j, r)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	if r.Truncated {
		return fmt.Errorf("truncated")
	}
	addrOf := func(j int) string { return churnAddr(i, j) }
	hostOf := func(target string) (int, bool) {
		var j int
		if _, err := fmt.Sscanf(target, "h-%d."+name, &j); err != nil || target != fmt.Sprintf("h-%d.%s", j, name) || j < 0 || j >= churnMaxEndpoints {
			return 0, false
		}
		return j, true
	}
	switch qtype {
	case dns.TypeA:
		seen := map[string]bool{}
		for _, rr := range r.Answer {
			a, ok := rr.(*dns.A)
			if !ok || a.Hdr.Name != name {
				return fmt.Errorf("unexpected record %s", rr)
			}
			ip := a.A.String()
			if seen[ip] {
				return fmt.Errorf("address %s twice", ip)
			}
			seen[ip] = true
			if !strings.HasPrefix(ip, fmt.Sprintf("10.90.%d.", i)) {
				return fmt.Errorf("address %s of another service", ip)
			}
		}
		if !seen[addrOf(0)] {
			return fmt.Errorf("no address of the first endpoint in %d answers", len(r.Answer))
		}
	case dns.TypeSRV:
		ports := map[int][]uint16{}
		var weights []uint16
		for _, rr := range r.Answer {
			srv, ok := rr.(*dns.SRV)
			if !ok || srv.Hdr.Name != name || srv.Priority != 0 {
				return fmt.Errorf("unexpected record %s", rr)
			}
			j, ok := hostOf(srv.Target)
			if !ok {
				return fmt.Errorf("unexpected target %s", srv.Target)
			}
			ports[j] = append(ports[j], srv.Port)
			weights = append(weights, srv.Weight)
		}
		if _, ok := ports[0]; !ok {
			return fmt.Errorf("no SRV record of the first endpoint")
		}
		for j, ps := range ports {
			slices.Sort(ps)
			if !slices.Equal(ps, []uint16{80, 9090}) {
				return fmt.Errorf("host h-%d with ports %v, want 80 and 9090", j, ps)
			}
		}
		want, ok := kubernetesSRVWeight[len(r.Answer)]
		if !ok {
			return fmt.Errorf("%d SRV records, want at most %d", len(r.Answer), len(kubernetesSRVWeight))
		}
		for _, w := range weights {
			if w != want {
				return fmt.Errorf("weights %v for %d records, want all %d", weights, len(r.Answer), want)
			}
		}
		glue := map[int]bool{}
		for _, rr := range r.Extra {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			a, ok := rr.(*dns.A)
			if !ok {
				return fmt.Errorf("unexpected additional record %s", rr)
			}
			j, ok := hostOf(a.Hdr.Name)
			if !ok || a.A.String() != addrOf(j) {
				return fmt.Errorf("glue %s does not match its host", rr)
			}
			if glue[j] {
				return fmt.Errorf("glue of h-%d twice", j)
			}
			glue[j] = true
		}
		for j := range ports {
			if !glue[j] {
				return fmt.Errorf("no glue for h-%d", j)
			}
		}
		if len(glue) != len(ports) {
			return fmt.Errorf("glue for %d hosts, SRV records for %d", len(glue), len(ports))
		}
	}
	return nil
}

// checkChurnPTR returns an error if r, the answer to the PTR query of
// endpoint j of the service name, is neither its host's name nor, unless j
// is the first endpoint, which is always ready, NXDOMAIN.
func checkChurnPTR(name string, j int, r *dns.Msg) error {
	if r.Rcode == dns.RcodeNameError && j > 0 && len(r.Answer) == 0 {
		return nil
	}
	want := fmt.Sprintf("h-%d.%s", j, name)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return fmt.Errorf("rcode %s with %d records, want %s", dns.RcodeToString[r.Rcode], len(r.Answer), want)
	}
	if ptr, ok := r.Answer[0].(*dns.PTR); !ok || ptr.Ptr != want {
		return fmt.Errorf("%s, want %s", r.Answer[0], want)
	}
	return nil
}

// loadStats counts what the load generator saw.
type loadStats struct {
	queries, lost, bad atomic.Int64
	mu                 sync.Mutex
	failures           []string // the first few bad answers
}

func (st *loadStats) fail(msg string) {
	st.bad.Add(1)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.failures) < 5 {
		st.failures = append(st.failures, msg)
	}
}

// churnTarget is a server the load generator queries.
type churnTarget struct {
	name, addr    string
	queriers, qps int
	st            loadStats
}

// generateLoad queries A and SRV of the churning services over UDP, and one
// time in ten the PTR of one of their endpoints, with tg.queriers at most
// tg.qps a second in all, until stop is closed; wg waits for the queriers.
// A query whose datagram is lost is asked again over TCP: every query is
// answered and checked.
func generateLoad(wg *sync.WaitGroup, tg *churnTarget, stop <-chan struct{}) {
	addr, st := tg.addr, &tg.st
	interval := time.Second * time.Duration(tg.queriers) / time.Duration(tg.qps)
	for q := range tg.queriers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(q), 1))
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			tcp := &dns.Client{Net: "tcp", Timeout: 10 * time.Second}
			var conn *dns.Conn
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					if conn != nil {
						conn.Close()
					}
					return
				case <-tick.C:
				}
				if conn == nil {
					var err error
					if conn, err = c.Dial(addr); err != nil {
						st.fail("dial: " + err.Error())
						continue
					}
				}
				i, j := r.IntN(churnServices), r.IntN(churnMaxEndpoints)
				qtype := []uint16{dns.TypeA, dns.TypeSRV}[r.IntN(2)]
				name := churnFQDN(i)
				if r.IntN(10) == 0 {
					qtype = dns.TypePTR
					name, _ = dns.ReverseAddr(churnAddr(i, j))
				}
				m := testkit.NewQuery(name, qtype)
				st.queries.Add(1)
				resp, _, err := c.ExchangeWithConn(m, conn)
				if err != nil {
					// A datagram lost under load, which says nothing of the
					// server: ask again over TCP, which loses none. A new
					// socket, so that a late reply is not taken for the next.
					st.lost.Add(1)
					conn.Close()
					conn = nil
					if resp, _, err = tcp.Exchange(m, addr); err != nil {
						st.fail(fmt.Sprintf("%s %s: no answer over UDP nor TCP: %v", m.Question[0].Name, dns.TypeToString[qtype], err))
						continue
					}
				}
				if err := checkChurnAnswer(i, j, qtype, resp); err != nil {
					st.fail(fmt.Sprintf("%s %s: %v\n%s", m.Question[0].Name, dns.TypeToString[qtype], err, resp))
				}
			}
		}()
	}
}

// TestChurnUnderLoad updates the EndpointSlices of 20 headless services
// 20000 times (4000 with -short), up to hundreds of times a second
// (scaling, readiness, splitting a service into two slices and merging them
// back) while queries of their A, SRV and PTR records come in at up to 2000
// a second. No answer may be an error, have an address twice, or mix states:
// see checkChurnAnswer. Once the churn stops, DNS must answer the final
// state, exactly as the kubernetes plugin does, and the live heap of the
// process must not have grown much.
//
// The same plugin also runs in the test process, queried the same way, so
// that under -race (make test) the race detector sees its informers and
// ServeDNS run at once against a real API server.
func TestChurnUnderLoad(t *testing.T) {
	t.Parallel()
	exclusive(t)
	ctx := context.Background()
	client := shared.cluster.Client
	total := int64(churnWrites)
	if testing.Short() {
		total = churnWritesShort
	}

	svcs := make([]*churnService, churnServices)
	var o testkit.Objects
	for i := range svcs {
		svcs[i] = &churnService{i: i, n: 1 + i%churnMaxEndpoints, notReady: map[int]bool{}}
		o.Services = append(o.Services, testkit.Headless(churnNS, churnName(i)))
	}
	if err := testkit.Apply(ctx, client, o); err != nil {
		t.Fatal(err)
	}
	// Start from a known state whatever an earlier run left.
	if err := client.DiscoveryV1().EndpointSlices(churnNS).DeleteCollection(ctx, meta.DeleteOptions{}, meta.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if err := writeSlice(ctx, client, &s.a, s.slice("a", 0, s.n)); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, serverOptions{Pprof: true})
	// converged reports whether addr answers the A records of the state.
	converged := func(addr string) func() (bool, string) {
		return func() (bool, string) {
			for _, cs := range svcs {
				r := testkit.Query(t, "udp", addr, churnFQDN(cs.i), dns.TypeA)
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.(*dns.A).A.String())
				}
				var want []string
				for _, j := range cs.ready() {
					want = append(want, churnAddr(cs.i, j))
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					return false, fmt.Sprintf("%s: %v, want %v", churnName(cs.i), got, want)
				}
			}
			return true, ""
		}
	}
	// The same plugin in this process too: under -race, the race detector
	// sees every access its informers and its ServeDNS make.
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in := testkit.Block{Port: port, Headless: true, Kubeconfig: shared.cluster.Kubeconfig, StartupTimeout: "10s"}
	startInProcess(t, in.String())
	targets := []*churnTarget{
		{name: "coredns", addr: s.addr, queriers: churnQueriers, qps: churnQPS},
		{name: "in process", addr: in.Addr(), queriers: inProcessQueriers, qps: inProcessQPS},
	}
	for _, tg := range targets {
		s.Eventually(t, liveness, "the initial state in DNS "+tg.name, converged(tg.addr))
	}
	heapBefore := s.liveHeap(t)

	stop := make(chan struct{})
	var load sync.WaitGroup
	for _, tg := range targets {
		generateLoad(&load, tg, stop)
	}
	var writes, writeErrors atomic.Int64
	var firstWriteError atomic.Value
	var writers sync.WaitGroup
	done := make(chan struct{}) // closed once total writes are made
	var doneOnce sync.Once
	for w := range churnWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			var mine []*churnService
			for i := w; i < churnServices; i += churnWriters {
				mine = append(mine, svcs[i])
			}
			tick := time.NewTicker(time.Second / churnWriteRate)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				n, err := mine[r.IntN(len(mine))].step(ctx, client, r)
				if writes.Add(int64(n)) >= total {
					doneOnce.Do(func() { close(done) })
				}
				if err != nil {
					writeErrors.Add(1)
					firstWriteError.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	select {
	case <-done:
	case <-s.Done():
	case <-time.After(5 * liveness): // a bound against a hang, not a measure
		t.Errorf("%d of %d writes made after %s", writes.Load(), total, 5*liveness)
	}
	close(stop)
	writers.Wait()
	load.Wait()
	s.alive(t)

	t.Logf("%d slice writes, %d failed", writes.Load(), writeErrors.Load())
	if e := firstWriteError.Load(); e != nil {
		t.Logf("first failed write: %s", e)
	}
	for _, tg := range targets {
		st := &tg.st
		t.Logf("%s: %d queries, %d datagrams lost and asked again over TCP, %d bad answers",
			tg.name, st.queries.Load(), st.lost.Load(), st.bad.Load())
		for _, f := range st.failures {
			t.Errorf("bad answer %s: %s", tg.name, f)
		}
		if st.queries.Load() == 0 {
			t.Fatalf("%s: no queries", tg.name)
		}
	}
	if writes.Load() == 0 {
		t.Fatal("no writes")
	}
	if writeErrors.Load()*10 > writes.Load() {
		t.Errorf("%d of %d writes failed", writeErrors.Load(), writes.Load())
	}

	// The writers may have failed a write and resynchronized: trust the API.
	for _, cs := range svcs {
		cs.resync(ctx, t, client)
	}
	for _, tg := range targets {
		s.Eventually(t, liveness, "the final state in DNS "+tg.name, converged(tg.addr))
	}
	// What the process keeps once the churn is over: a leak of slices,
	// snapshots or watches stays in the live heap.
	heapAfter := s.liveHeap(t)
	t.Logf("live heap %d KiB before the churn, %d KiB after", heapBefore>>10, heapAfter>>10)
	if heapAfter > 2*heapBefore+16<<20 {
		t.Errorf("the live heap grew from %d KiB to %d KiB", heapBefore>>10, heapAfter>>10)
	}
	compareWithKubernetes(t, targets, svcs, converged)
}

// compareWithKubernetes starts the kubernetes plugin on the objects the
// churn left, and checks that the targets answer every name of the services
// as it does, SRV weights included: ground truth that shares no code with
// the plugin.
func compareWithKubernetes(t *testing.T, targets []*churnTarget, svcs []*churnService, converged func(string) func() (bool, string)) {
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := testkit.Block{Port: port, Kubernetes: true, Kubeconfig: shared.cluster.Kubeconfig, StartupTimeout: "10s"}
	k, err := testkit.Start(context.Background(), shared.bin, b.String(), time.Minute, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	k.Eventually(t, liveness, "the final state from the kubernetes plugin", converged(b.Addr()))
	compared, same := 0, 0
	for _, cs := range svcs {
		name := churnFQDN(cs.i)
		for _, q := range []named{
			{name, dns.TypeA}, {name, dns.TypeSRV}, {"_web._tcp." + name, dns.TypeSRV}, {"h-0." + name, dns.TypeA},
			{reverse(t, churnAddr(cs.i, 0)), dns.TypePTR}, {reverse(t, churnAddr(cs.i, churnMaxEndpoints-1)), dns.TypePTR},
		} {
			want := answerKey(testkit.Query(t, "udp", b.Addr(), q.name, q.qtype))
			for _, tg := range targets {
				got := answerKey(testkit.Query(t, "udp", tg.addr, q.name, q.qtype))
				if got == want {
					same++
				} else {
					t.Errorf("%s: headless (%s) answers\n%s\nthe kubernetes plugin\n%s", q, tg.name, got, want)
				}
				compared++
			}
		}
	}
	t.Logf("the final state: %d of %d answers the same as the kubernetes plugin's", same, compared)
}

// resync sets the state of s to the API's.
func (s *churnService) resync(ctx context.Context, t testing.TB, client kubernetes.Interface) {
	t.Helper()
	list, err := client.DiscoveryV1().EndpointSlices(churnNS).List(ctx, meta.ListOptions{LabelSelector: discovery.LabelServiceName + "=" + churnName(s.i)})
	if err != nil {
		t.Fatal(err)
	}
	s.n, s.notReady = 0, map[int]bool{}
	for _, sl := range list.Items {
		for _, e := range sl.Endpoints {
			var j int
			fmt.Sscanf(*e.Hostname, "h-%d", &j)
			s.n = max(s.n, j+1)
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				s.notReady[j] = true
			}
		}
	}
}
