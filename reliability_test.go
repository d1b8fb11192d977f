package headless

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/headlessdns/headless/test/cluster"
	"github.com/headlessdns/headless/test/fixtures"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The in-process twin of test/reliability's churn test: the watcher and the
// index of the plugin against a real local API server whose EndpointSlices
// churn, while goroutines call ServeDNS, so that `go test -race` sees every
// access the two sides make.

const (
	// raceChurnFor is how long the slices churn; 5s with -short.
	raceChurnFor      = 15 * time.Second
	raceServices      = 10
	raceMaxEndpoints  = 6
	raceWriters       = 2
	raceWriteInterval = 10 * time.Millisecond // per writer
	raceReaders       = 4
	raceNS            = "churn"
)

func raceService(i int) string { return fmt.Sprintf("svc-%02d", i) }

// raceState is one churning service: endpoint j is host h-j with address
// 10.90.i.j+1 and ports web 80 and metrics 9090, endpoint 0 always ready;
// split, the first half of the endpoints is in slice a and the rest in b,
// else all are in a.
type raceState struct {
	i        int
	n        int
	notReady map[int]bool
	split    bool
	a, b     *discovery.EndpointSlice
}

func (s *raceState) slice(name string, lo, hi int) *discovery.EndpointSlice {
	var eps []discovery.Endpoint
	for j := lo; j < hi; j++ {
		eps = append(eps, fixtures.Ready(fixtures.Endpoint(fmt.Sprintf("10.90.%d.%d", s.i, j+1), fmt.Sprintf("h-%d", j)), !s.notReady[j]))
	}
	return sliceOf(raceNS, raceService(s.i), raceService(s.i)+"-"+name,
		[]discovery.EndpointPort{fixtures.Port("web", 80, core.ProtocolTCP), fixtures.Port("metrics", 9090, core.ProtocolTCP)}, eps...)
}

func raceWrite(ctx context.Context, client kubernetes.Interface, last **discovery.EndpointSlice, want *discovery.EndpointSlice) error {
	api := client.DiscoveryV1().EndpointSlices(raceNS)
	var got *discovery.EndpointSlice
	var err error
	if *last == nil {
		got, err = api.Create(ctx, want, meta.CreateOptions{})
	} else {
		want.ResourceVersion = (*last).ResourceVersion
		got, err = api.Update(ctx, want, meta.UpdateOptions{})
	}
	if err != nil {
		if cur, gerr := api.Get(ctx, want.Name, meta.GetOptions{}); gerr == nil {
			*last = cur
		}
		return err
	}
	*last = got
	return nil
}

// step makes one random change whose every write leaves a state with
// disjoint slices and endpoint 0 ready.
func (s *raceState) step(ctx context.Context, client kubernetes.Interface, r *rand.Rand) error {
	half := s.n / 2
	switch op := r.IntN(10); {
	case op < 4 && !s.split:
		s.n = 1 + r.IntN(raceMaxEndpoints)
		for j := range s.notReady {
			if j >= s.n {
				delete(s.notReady, j)
			}
		}
		return raceWrite(ctx, client, &s.a, s.slice("a", 0, s.n))
	case op < 7 && s.n > 1:
		j := 1 + r.IntN(s.n-1)
		s.notReady[j] = !s.notReady[j]
		switch {
		case s.split && j >= half:
			return raceWrite(ctx, client, &s.b, s.slice("b", half, s.n))
		case s.split:
			return raceWrite(ctx, client, &s.a, s.slice("a", 0, half))
		}
		return raceWrite(ctx, client, &s.a, s.slice("a", 0, s.n))
	case !s.split && s.n > 1:
		s.split = true
		if err := raceWrite(ctx, client, &s.a, s.slice("a", 0, half)); err != nil {
			return err
		}
		return raceWrite(ctx, client, &s.b, s.slice("b", half, s.n))
	case s.split:
		s.split = false
		err := client.DiscoveryV1().EndpointSlices(raceNS).Delete(ctx, raceService(s.i)+"-b", meta.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		s.b = nil
		return raceWrite(ctx, client, &s.a, s.slice("a", 0, s.n))
	default:
		s.n = 2 + r.IntN(raceMaxEndpoints-1)
		return raceWrite(ctx, client, &s.a, s.slice("a", 0, s.n))
	}
}

// checkRaceAnswer returns an error if m, the answer to an A or SRV query of
// service i, is one no API state had.
func checkRaceAnswer(i int, qtype uint16, m *dns.Msg) error {
	if m.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
	}
	if _, err := m.Pack(); err != nil {
		return fmt.Errorf("does not pack: %w", err)
	}
	name := raceService(i) + "." + raceNS + ".svc.cluster.local."
	hostOf := func(target string) int {
		j, ok := -1, false
		if h, rest, found := strings.Cut(target, "."); found && rest == name {
			_, err := fmt.Sscanf(h, "h-%d", &j)
			ok = err == nil && h == fmt.Sprintf("h-%d", j)
		}
		if !ok {
			return -1
		}
		return j
	}
	addrOf := func(j int) string { return fmt.Sprintf("10.90.%d.%d", i, j+1) }
	switch qtype {
	case dns.TypeA:
		seen := map[string]bool{}
		for _, rr := range m.Answer {
			a, ok := rr.(*dns.A)
			if !ok || a.Hdr.Name != name || seen[a.A.String()] || !strings.HasPrefix(a.A.String(), fmt.Sprintf("10.90.%d.", i)) {
				return fmt.Errorf("unexpected or repeated %s", rr)
			}
			seen[a.A.String()] = true
		}
		if !seen[addrOf(0)] {
			return fmt.Errorf("no address of endpoint 0 in %v", m.Answer)
		}
	case dns.TypeSRV:
		ports := map[int][]uint16{}
		weight := uint16(max(math.Floor(100.0/float64(100*len(m.Answer))*100), 1))
		for _, rr := range m.Answer {
			srv, ok := rr.(*dns.SRV)
			if !ok || srv.Weight != weight {
				return fmt.Errorf("unexpected %s of %d, want weight %d", rr, len(m.Answer), weight)
			}
			j := hostOf(srv.Target)
			if j < 0 {
				return fmt.Errorf("unexpected target %s", srv.Target)
			}
			ports[j] = append(ports[j], srv.Port)
		}
		if ports[0] == nil {
			return fmt.Errorf("no SRV of endpoint 0")
		}
		for j, ps := range ports {
			slices.Sort(ps)
			if !slices.Equal(ps, []uint16{80, 9090}) {
				return fmt.Errorf("h-%d with ports %v", j, ps)
			}
		}
		glue := map[int]bool{}
		for _, rr := range m.Extra {
			a, ok := rr.(*dns.A)
			j := hostOf(rr.Header().Name)
			if !ok || j < 0 || glue[j] || ports[j] == nil || a.A.String() != addrOf(j) {
				return fmt.Errorf("unexpected or repeated glue %s", rr)
			}
			glue[j] = true
		}
		if len(glue) != len(ports) {
			return fmt.Errorf("glue for %d hosts, SRV for %d", len(glue), len(ports))
		}
	}
	return nil
}

// TestChurnInProcess runs the watcher and the index against a real API
// server whose slices churn, while readers call ServeDNS; run it with -race.
func TestChurnInProcess(t *testing.T) {
	duration := raceChurnFor
	if testing.Short() {
		duration = 5 * time.Second
	}
	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	c, err := cluster.Start(startCtx, cluster.Options{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)

	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &core.Namespace{ObjectMeta: meta.ObjectMeta{Name: raceNS}}, meta.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	states := make([]*raceState, raceServices)
	for i := range states {
		states[i] = &raceState{i: i, n: 1 + i%raceMaxEndpoints, notReady: map[int]bool{}}
		if _, err := c.Client.CoreV1().Services(raceNS).Create(ctx, fixtures.Headless(raceNS, raceService(i)), meta.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := raceWrite(ctx, c.Client, &states[i].a, states[i].slice("a", 0, states[i].n)); err != nil {
			t.Fatal(err)
		}
	}

	h, _, err := parse(newController("headless cluster.local in-addr.arpa"))
	if err != nil {
		t.Fatal(err)
	}
	if h.watcher, err = newWatcher(c.Client, h.index, h.watch); err != nil {
		t.Fatal(err)
	}
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(30 * time.Second) {
		t.Fatal("informers did not sync")
	}
	h.Next = nextHandler()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, writeErrors, queries, bad atomic.Int64
	var mu sync.Mutex
	var failures []string
	for w := range raceWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 3))
			tick := time.NewTicker(raceWriteInterval)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// Writer w owns the services i with i%raceWriters == w.
				i := w + raceWriters*r.IntN(raceServices/raceWriters)
				writes.Add(1)
				if err := states[i].step(ctx, c.Client, r); err != nil {
					writeErrors.Add(1)
				}
			}
		}()
	}
	for q := range raceReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(q), 4))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if n%10 == 0 {
					time.Sleep(time.Millisecond) // leave the writers some CPU
				}
				i := r.IntN(raceServices)
				qtype := []uint16{dns.TypeA, dns.TypeSRV}[r.IntN(2)]
				m := new(dns.Msg).SetQuestion(raceService(i)+"."+raceNS+".svc.cluster.local.", qtype)
				rec := dnstest.NewRecorder(&test.ResponseWriter{})
				queries.Add(1)
				if _, err := h.ServeDNS(ctx, rec, m); err != nil || rec.Msg == nil {
					bad.Add(1)
					continue
				}
				if err := checkRaceAnswer(i, qtype, rec.Msg); err != nil {
					bad.Add(1)
					mu.Lock()
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%s: %v\n%s", m.Question[0].String(), err, rec.Msg))
					}
					mu.Unlock()
				}
				// Now and then a PTR and the SOA, which read the other maps.
				if r.IntN(10) == 0 {
					rec := dnstest.NewRecorder(&test.ResponseWriter{})
					ptr := new(dns.Msg).SetQuestion(reverse(fmt.Sprintf("10.90.%d.%d", i, 1+r.IntN(raceMaxEndpoints))), dns.TypePTR)
					if _, err := h.ServeDNS(ctx, rec, ptr); err != nil || rec.Msg == nil || rec.Msg.Rcode == dns.RcodeServerFailure {
						bad.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	t.Logf("%v: %d writes (%d failed), %d queries, %d bad", duration, writes.Load(), writeErrors.Load(), queries.Load(), bad.Load())
	for _, f := range failures {
		t.Errorf("bad answer: %s", f)
	}
	if bad.Load() > 0 && len(failures) == 0 {
		t.Errorf("%d queries without a good answer", bad.Load())
	}
	if writes.Load() == 0 || queries.Load() == 0 {
		t.Error("no churn or no queries")
	}
	if writeErrors.Load()*10 > writes.Load() {
		t.Errorf("%d of %d writes failed", writeErrors.Load(), writes.Load())
	}
}
