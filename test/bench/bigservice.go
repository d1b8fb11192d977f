package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The big-service scenario (issue 17): one headless service of many
// endpoints, in slices of 100 as the EndpointSlice controller packs them,
// one endpoint's address changed at a steady rate; each plugin alone.
const (
	bigNamespace = "big"
	bigSliceLen  = 100 // endpoints a slice, the controller's default
	// otherName is the small service asked for during the writes: the seed's.
	otherName = "consul-server.default.svc.cluster.local."
	// otherRate is the questions a second for otherName during the writes.
	otherRate = 500
	// otherTimeout is how long an answer to otherName is waited for; one
	// not answered by then counts as lost, and as that long.
	otherTimeout = 2 * time.Second
	// writeTimeout is how long a write is waited for at a server; one not
	// answered by then counts as unanswered, and as that long.
	writeTimeout = 2 * time.Minute
)

// bigSize is one size of the scenario: the endpoints of the service and the
// writes a second.
type bigSize struct{ endpoints, rate int }

func (s bigSize) slices() int     { return (s.endpoints + bigSliceLen - 1) / bigSliceLen }
func (s bigSize) service() string { return fmt.Sprintf("big-%d", s.endpoints) }

func (s bigSize) String() string {
	return fmt.Sprintf("%d endpoints (%d slices) at %d writes/s", s.endpoints, s.slices(), s.rate)
}

// parseBigSizes reads ENDPOINTS:RATE,... ; an empty string is no size.
func parseBigSizes(v string) ([]bigSize, error) {
	var sizes []bigSize
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		e, r, ok := strings.Cut(f, ":")
		n, err1 := strconv.Atoi(e)
		rate, err2 := strconv.Atoi(r)
		if !ok || err1 != nil || err2 != nil || n <= 0 || rate <= 0 {
			return nil, fmt.Errorf("-big: %q is not ENDPOINTS:WRITES_PER_SECOND", f)
		}
		sizes = append(sizes, bigSize{n, rate})
	}
	return sizes, nil
}

func formatBigSizes(sizes []bigSize) string {
	var fs []string
	for _, s := range sizes {
		fs = append(fs, fmt.Sprintf("%d:%d", s.endpoints, s.rate))
	}
	return strings.Join(fs, ",")
}

// bigResult is what one plugin alone did on one size.
type bigResult struct {
	ready     time.Duration // from start to answering for the last endpoint
	baseRSSKB int           // settled, before the writes
	peakRSSKB int           // during the writes
	podQPS    float64       // dnsperf on the names of the service's pods, before the writes
	writeResult
}

// writeResult is what a plugin did with timed writes.
type writeResult struct {
	latency             []time.Duration // per write, from its acknowledgement; the unanswered ones as writeTimeout or more
	unanswered          int             // writes not answered within writeTimeout
	writeSpan           time.Duration   // from the first write to the last acknowledgement
	other               []time.Duration // otherName's questions, the lost ones as otherTimeout
	otherLost, otherBad int             // not answered; answered without an address
}

// runBigService starts a control plane of its own with the seed, and for
// each size creates the big service, measures each plugin alone on it and
// deletes it.
func runBigService(ctx context.Context, b *bench) error {
	c, err := cluster.Start(ctx, cluster.Options{AlwaysAllow: true})
	if err != nil {
		return err
	}
	defer c.Stop()
	b.cluster, b.kubeconfig = c, c.Kubeconfig
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		return err
	}
	written := 0 // writes so far, for addresses never used before
	for _, size := range b.cfg.big {
		fmt.Fprintf(b.log, "big service: loading %s ...\n", size)
		start := time.Now()
		if err := loadBig(ctx, c, size); err != nil {
			return err
		}
		b.rep.addBigLoad(size, time.Since(start))
		for _, kind := range []string{kubernetesKind, headless} {
			r, err := b.measureBig(ctx, size, kind, &written)
			if err != nil {
				return fmt.Errorf("big service, %s, %s: %w", size, kind, err)
			}
			b.rep.addBig(size, kind, r)
			fmt.Fprintf(b.log, "big service: %s: %s: p50 %s, p99 %s, %d unanswered; peak RSS %.1f MB; %s p99 %s (%d lost)\n",
				size, kind, percentile(r.latency, 0.5).Round(100*time.Microsecond), percentile(r.latency, 0.99).Round(100*time.Microsecond),
				r.unanswered, float64(r.peakRSSKB)/1024, otherName, percentile(r.other, 0.99).Round(10*time.Microsecond), r.otherLost)
		}
		if err := deleteBig(ctx, c, size); err != nil {
			return err
		}
	}
	return nil
}

// bigObjects is the service of size, headless with two ports, and its slices
// as the EndpointSlice controller writes them for a StatefulSet.
func bigObjects(size bigSize) testkit.Objects {
	return controllerService(bigNamespace, size.service(), 0, size.endpoints)
}

// controllerService is a headless service with two ports and n endpoints, in
// slices of 100 as the EndpointSlice controller writes them for a
// StatefulSet, named as it names them: pod-k with the (first+k)-th address
// of 10.64.0.0/10.
func controllerService(namespace, name string, first, n int) testkit.Objects {
	svcPorts := []core.ServicePort{testkit.ServicePort("http", 80, core.ProtocolTCP), testkit.ServicePort("metrics", 9090, core.ProtocolTCP)}
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	o := testkit.Objects{Services: []*core.Service{testkit.Headless(namespace, name, svcPorts...)}}
	for i := range (n + bigSliceLen - 1) / bigSliceLen {
		var eps []discovery.Endpoint
		for k := i * bigSliceLen; k < min((i+1)*bigSliceLen, n); k++ {
			eps = append(eps, controllerEndpoint(namespace, fmt.Sprintf("%s-%d", name, k), bigHost(k), bigAddr(first+k), first+k))
		}
		o.Slices = append(o.Slices, testkit.Slice(namespace, name, bigSliceName(name, i), discovery.AddressTypeIPv4, ports, eps...))
	}
	return testkit.Labelled(o)
}

func bigHost(k int) string { return fmt.Sprintf("pod-%d", k) }

// bigSliceName is the i-th slice's name: the service's and 5 characters, in
// no order, as the controller's generated names.
func bigSliceName(service string, i int) string {
	return fmt.Sprintf("%s-%05x", service, (i*7919+1)%0x100000)
}

// bigAddr is the k-th address of 10.64.0.0/10.
func bigAddr(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(64 + k>>16), byte(k >> 8), byte(k)})
}

// writtenAddr is the n-th address of 10.32.0.0/11, the address of the n-th
// write: never an endpoint's before.
func writtenAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(32 + n>>16), byte(n >> 8), byte(n)})
}

// loadBig creates the service of size and its slices, 16 at a time.
func loadBig(ctx context.Context, c *cluster.Cluster, size bigSize) error {
	o := bigObjects(size)
	if err := testkit.Apply(ctx, c.Client, testkit.Objects{Services: o.Services}); err != nil {
		return err // creates the namespace
	}
	slices := c.Client.DiscoveryV1().EndpointSlices(bigNamespace)
	return parallel(ctx, 0, len(o.Slices), func(i int) error {
		_, err := slices.Create(ctx, o.Slices[i], meta.CreateOptions{})
		return err
	})
}

// deleteBig deletes the service of size and its slices.
func deleteBig(ctx context.Context, c *cluster.Cluster, size bigSize) error {
	if err := c.Client.CoreV1().Services(bigNamespace).Delete(ctx, size.service(), meta.DeleteOptions{}); err != nil {
		return err
	}
	return c.Client.DiscoveryV1().EndpointSlices(bigNamespace).DeleteCollection(ctx, meta.DeleteOptions{},
		meta.ListOptions{LabelSelector: discovery.LabelServiceName + "=" + size.service()})
}

// measureBig starts the plugin of kind alone, pinned to CPU 0, waits until it
// answers for the last endpoint and the other service, reads its settled
// memory, and then, while it samples the process's resident memory every
// 50 ms and asks for otherName otherRate times a second, changes one
// endpoint's address in one slice at size's rate, the configured number of
// times, each time polling the server for that pod's name until it answers
// the new address. written counts the writes of the run, so that each
// writes an address never written before.
func (b *bench) measureBig(ctx context.Context, size bigSize, kind string, written *int) (bigResult, error) {
	var r bigResult
	ports, err := testkit.FreePorts(2)
	if err != nil {
		return r, err
	}
	addr := testkit.Addr(ports[0])
	fmt.Fprintf(b.log, "big service: %s: starting %s alone ...\n", size, kind)
	begin := time.Now()
	srv, err := testkit.StartPinned(ctx, 0, b.bin, b.corefileBlock(kind, ports[0], ports[1]), 15*time.Minute, addr)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	last := fmt.Sprintf("%s.%s.%s.svc.cluster.local.", bigHost(size.endpoints-1), size.service(), bigNamespace)
	for _, name := range []string{last, otherName} {
		if err := answered(ctx, addr, name, 10*time.Millisecond, 5*time.Minute); err != nil {
			return r, err
		}
	}
	r.ready = time.Since(begin)
	base, err := settledMemory(ctx, srv.PID(), ports[1], b.cfg.settle)
	if err != nil {
		return r, err
	}
	r.baseRSSKB = base.rssKB

	// The pods' names at the wire: what a training job asks while it starts.
	names := b.path(fmt.Sprintf("pods-%d.txt", size.endpoints))
	var q strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&q, "%s.%s.%s.svc.cluster.local. A\n", bigHost(i*7919%size.endpoints), size.service(), bigNamespace)
	}
	if err := os.WriteFile(names, []byte(q.String()), 0o644); err != nil {
		return r, err
	}
	if r.podQPS, err = dnsperf(ctx, names, ports[0], b.cfg.duration, 0); err != nil {
		return r, err
	}

	peak := samplePeak(srv.PID(), 50*time.Millisecond)
	r.writeResult, err = b.timedWrites(ctx, addr, b.cfg.bigWrites, size.rate, func(i int) (string, string, int, string) {
		// The i-th endpoint of a walk that visits each once, over the
		// slices in no order.
		k := i * 7919 % size.endpoints
		return bigNamespace, bigSliceName(size.service(), k/bigSliceLen), k % bigSliceLen,
			fmt.Sprintf("%s.%s.%s.svc.cluster.local.", bigHost(k), size.service(), bigNamespace)
	}, written)
	r.peakRSSKB = peak()
	return r, err
}

// timedWrites changes the address of an endpoint n times, at rate a second
// on a fixed schedule (a write does not wait for the one before to be
// answered): the i-th write changes the endpoint that endpoint(i) locates,
// by its namespace, slice and position in the slice, to an address never
// used before, and polls the server at addr for its pod's name until it
// answers the new address. Meanwhile it asks for otherName otherRate times
// a second. written counts the writes of the run.
func (b *bench) timedWrites(ctx context.Context, addr string, n, rate int, endpoint func(i int) (namespace, slice string, pos int, name string), written *int) (writeResult, error) {
	var r writeResult
	load, err := startOtherLoad(addr, otherRate, time.Duration(n)*time.Second/time.Duration(rate)+writeTimeout+time.Minute)
	if err != nil {
		return r, err
	}
	var (
		polls sync.WaitGroup
		mu    sync.Mutex
	)
	start := time.Now()
	var werr error
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		ns, sliceName, pos, name := endpoint(i)
		to, acked, err := b.writeEndpoint(ctx, ns, sliceName, pos, written)
		if err != nil {
			werr = err
			break
		}
		r.writeSpan = acked.Sub(start)
		polls.Add(1)
		go func() {
			defer polls.Done()
			d, ok := pollAddress(ctx, addr, name, to, acked)
			mu.Lock()
			defer mu.Unlock()
			r.latency = append(r.latency, d)
			if !ok {
				r.unanswered++
			}
		}()
	}
	polls.Wait()
	r.other, r.otherLost, r.otherBad = load.finish()
	if werr == nil {
		werr = ctx.Err()
	}
	return r, werr
}

// writeEndpoint changes the address of the endpoint at pos in the slice
// namespace/slice to one never used before, and returns it and when the
// API server acknowledged the update. written counts the writes of the run.
func (b *bench) writeEndpoint(ctx context.Context, namespace, slice string, pos int, written *int) (netip.Addr, time.Time, error) {
	client := b.cluster.Client.DiscoveryV1().EndpointSlices(namespace)
	s, err := client.Get(ctx, slice, meta.GetOptions{})
	if err != nil {
		return netip.Addr{}, time.Time{}, err
	}
	to := writtenAddr(*written)
	*written++
	s.Endpoints[pos].Addresses = []string{to.String()}
	if _, err := client.Update(ctx, s, meta.UpdateOptions{}); err != nil {
		return netip.Addr{}, time.Time{}, err
	}
	return to, time.Now(), nil
}

// pollAddress asks addr for name's A record until the answer holds want, for
// up to writeTimeout, and returns the time from acked to that answer. It
// asks every millisecond, and once the wait passes 20 ms every twentieth of
// the wait so far, so that a slow server is not flooded: the time it
// returns is at most 5% late.
func pollAddress(ctx context.Context, addr, name string, want netip.Addr, acked time.Time) (time.Duration, bool) {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	for {
		r, _, err := c.ExchangeContext(ctx, m, addr)
		waited := time.Since(acked)
		if err == nil {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.Equal(want.AsSlice()) {
					return waited, true
				}
			}
		}
		if waited > writeTimeout || ctx.Err() != nil {
			return waited, false
		}
		time.Sleep(max(time.Millisecond, waited/20))
	}
}

// samplePeak reads the resident memory of pid every interval until the
// function it returns is called, which returns the highest reading in KiB.
func samplePeak(pid int, every time.Duration) func() int {
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		peak := 0
		for {
			if rss, err := testkit.RSS(pid); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-time.After(every):
			}
		}
	}()
	return func() int {
		close(stop)
		return <-done
	}
}

// otherLoad asks a server for otherName's A record at a steady rate over one
// UDP socket, on a fixed schedule that does not wait for answers, and times
// each answer from the moment its question was sent.
type otherLoad struct {
	conn   *net.UDPConn
	stop   chan struct{}
	sender sync.WaitGroup
	reader sync.WaitGroup

	mu      sync.Mutex
	sent    [1 << 16]time.Time // by message ID; zero once answered
	pending int
	latency []time.Duration
	lost    int
	bad     int
}

// startOtherLoad starts asking addr for otherName rate times a second, for
// at most limit.
func startOtherLoad(addr string, rate int, limit time.Duration) (*otherLoad, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	wire, err := new(dns.Msg).SetQuestion(otherName, dns.TypeA).Pack()
	if err != nil {
		conn.Close()
		return nil, err
	}
	l := &otherLoad{conn: conn, stop: make(chan struct{})}
	l.sender.Add(1)
	go func() {
		defer l.sender.Done()
		start := time.Now()
		q := make([]byte, len(wire))
		copy(q, wire)
		for n := 0; ; n++ {
			due := start.Add(time.Duration(n) * time.Second / time.Duration(rate))
			if due.Sub(start) > limit {
				return
			}
			select {
			case <-l.stop:
				return
			case <-time.After(time.Until(due)):
			}
			id := uint16(n)
			binary.BigEndian.PutUint16(q, id)
			l.mu.Lock()
			if !l.sent[id].IsZero() { // unanswered since the IDs came round
				l.lost++
				l.latency = append(l.latency, otherTimeout)
				l.pending--
			}
			l.sent[id] = time.Now()
			l.pending++
			l.mu.Unlock()
			_, _ = conn.Write(q)
		}
	}()
	l.reader.Add(1)
	go func() {
		defer l.reader.Done()
		buf := make([]byte, 64*1024)
		for {
			n, err := conn.Read(buf)
			now := time.Now()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // such as a refused port, read as an error
			}
			if n < 12 {
				continue
			}
			id := binary.BigEndian.Uint16(buf)
			l.mu.Lock()
			if sent := l.sent[id]; !sent.IsZero() {
				l.latency = append(l.latency, now.Sub(sent))
				l.sent[id] = time.Time{}
				l.pending--
				if buf[3]&0xf != dns.RcodeSuccess || binary.BigEndian.Uint16(buf[6:]) == 0 {
					l.bad++
				}
			}
			l.mu.Unlock()
		}
	}()
	return l, nil
}

// finish stops the questions, waits up to otherTimeout for the answers
// still due and returns the times, with each question not answered counted
// as otherTimeout, how many those were, and how many answers had no
// address.
func (l *otherLoad) finish() ([]time.Duration, int, int) {
	close(l.stop)
	l.sender.Wait()
	deadline := time.Now().Add(otherTimeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		pending := l.pending
		l.mu.Unlock()
		if pending == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.conn.Close()
	l.reader.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.sent {
		if !l.sent[id].IsZero() {
			l.lost++
			l.latency = append(l.latency, otherTimeout)
		}
	}
	return l.latency, l.lost, l.bad
}
