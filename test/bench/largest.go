package main

import (
	"context"
	"fmt"
	"os"
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

// The largest-clusters scenario (issue 28): a training job's pods behind
// one headless service, created all at once as the job starts, and a
// cluster of many small headless services; each plugin alone on the same
// control plane.
const (
	largeNamespace = "largest"
	// largeRate is the writes a second after the start, as a rolling
	// restart makes them.
	largeRate = 50
	// gangPollers ask for the names of a gang start's slices, each at most
	// once every gangPollEvery, so that the questions do not load the
	// server more than a job's pods would.
	gangPollers   = 2
	gangPollEvery = 200 * time.Microsecond
)

// largeWorkload is one workload of the scenario: services of endpoints each.
type largeWorkload struct {
	services, endpoints int
	gang                bool // created all at once while each plugin runs
}

func (w largeWorkload) String() string {
	if w.services == 1 {
		return fmt.Sprintf("a job of %d pods behind one service (%d slices), started at once", w.endpoints, (w.endpoints+bigSliceLen-1)/bigSliceLen)
	}
	return fmt.Sprintf("%d endpoints in %d services of %d", w.services*w.endpoints, w.services, w.endpoints)
}

func (w largeWorkload) pods() int { return w.services * w.endpoints }

func (w largeWorkload) service(i int) string {
	if w.services == 1 {
		return "job"
	}
	return serviceName(i)
}

// objects is service i with its slices, its endpoints numbered on from the
// previous services'.
func (w largeWorkload) objects(i int) testkit.Objects {
	return controllerService(largeNamespace, w.service(i), i*w.endpoints, w.endpoints)
}

// endpoint locates the k-th pod: the slice and position of its endpoint,
// and its name.
func (w largeWorkload) endpoint(k int) (namespace, slice string, pos int, name string) {
	svc, j := w.service(k/w.endpoints), k%w.endpoints
	return largeNamespace, bigSliceName(svc, j/bigSliceLen), j % bigSliceLen,
		fmt.Sprintf("%s.%s.%s.svc.cluster.local.", bigHost(j), svc, largeNamespace)
}

// largeResult is what one process did on one workload.
type largeResult struct {
	gang           []time.Duration // per slice of a gang start, from its creation to its last pod's name answering
	gangUnanswered int
	ready          time.Duration // from start to answering for the last pod
	listPeakKB     int           // VmHWM once it answers: the peak of the initial list
	unforcedRSSKB  int           // settled, before any forced collection
	rssKB, heapKB  int           // after a forced collection
	podQPS         float64
	writeResult
	relistPeakKB int           // VmHWM from the API server's restart until the plugin has listed again
	relists      int64         // the lists it made meanwhile
	relistTook   time.Duration // from the API server's restart to a write made after it answering
}

// runLargest starts a control plane of its own with the seed and measures
// each workload of the scenario: the job first, created all at once while
// each plugin runs and deleted after, then the cluster, loaded once.
func runLargest(ctx context.Context, b *bench) error {
	c, err := cluster.Start(ctx, cluster.Options{AlwaysAllow: true})
	if err != nil {
		return err
	}
	defer c.Stop()
	b.cluster, b.kubeconfig = c, c.Kubeconfig
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		return err
	}
	if err := c.EnsureNamespace(ctx, largeNamespace); err != nil {
		return err
	}
	written := 1 << 16 // addresses of 10.32.0.0/11 the big-service scenario does not use
	for _, w := range b.cfg.largest {
		if !w.gang {
			fmt.Fprintf(b.log, "largest: loading %s ...\n", w)
			start := time.Now()
			if err := b.loadLarge(ctx, w); err != nil {
				return err
			}
			b.rep.addLargeLoad(w, time.Since(start))
		}
		for _, kind := range []string{whoami, kubernetesKind, headless} {
			r, err := b.measureLarge(ctx, w, kind, &written)
			if err != nil {
				return fmt.Errorf("largest, %s, %s: %w", w, kind, err)
			}
			b.rep.addLarge(w, kind, r)
			fmt.Fprintf(b.log, "largest: %s: %s: ready in %s, list peak %.1f MB, settled %.1f MB, relist peak %.1f MB (%d lists), writes p99 %s, gang p99 %s\n",
				w, kind, r.ready.Round(time.Millisecond), mb(r.listPeakKB), mb(r.unforcedRSSKB), mb(r.relistPeakKB), r.relists,
				short(percentile(r.latency, 0.99)), short(percentile(r.gang, 0.99)))
			if w.gang && kind != whoami {
				if err := b.deleteLarge(ctx, w); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func mb(kb int) float64 { return float64(kb) / 1024 }

// loadLarge creates the services of w and their slices, 16 services at a
// time.
func (b *bench) loadLarge(ctx context.Context, w largeWorkload) error {
	client := b.cluster.Client
	return parallel(ctx, 0, w.services, func(i int) error {
		o := w.objects(i)
		if _, err := client.CoreV1().Services(largeNamespace).Create(ctx, o.Services[0], meta.CreateOptions{}); err != nil {
			return err
		}
		for _, s := range o.Slices {
			if _, err := client.DiscoveryV1().EndpointSlices(largeNamespace).Create(ctx, s, meta.CreateOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteLarge deletes the job of w.
func (b *bench) deleteLarge(ctx context.Context, w largeWorkload) error {
	client := b.cluster.Client
	if err := client.CoreV1().Services(largeNamespace).Delete(ctx, w.service(0), meta.DeleteOptions{}); err != nil {
		return err
	}
	return client.DiscoveryV1().EndpointSlices(largeNamespace).DeleteCollection(ctx, meta.DeleteOptions{},
		meta.ListOptions{LabelSelector: discovery.LabelServiceName + "=" + w.service(0)})
}

// measureLarge measures the process of kind alone, pinned to CPU 0, on w.
// For a gang workload, it first starts the process with no pod yet, creates
// the job all at once and times each slice, and stops it. Then it starts
// the process with every pod there and reads how long it takes to answer
// for the last one; the peak of that start (VmHWM); its resident memory
// once settled, before and after a forced collection, and its live heap;
// dnsperf on 1000 of the pods' names; writes at largeRate; and the peak of
// a relist forced by restarting the API server.
func (b *bench) measureLarge(ctx context.Context, w largeWorkload, kind string, written *int) (largeResult, error) {
	var r largeResult
	m, err := newMeter(b.cluster, b.path("kubeconfig-"+kind))
	if err != nil {
		return r, err
	}
	defer m.close()
	ports, err := testkit.FreePorts(2)
	if err != nil {
		return r, err
	}
	addr := testkit.Addr(ports[0])
	block := b.corefileBlockWith(kind, ports[0], ports[1], m.kubeconfig)
	start := func() (*testkit.Server, error) {
		fmt.Fprintf(b.log, "largest: %s: starting %s alone ...\n", w, kind)
		return testkit.StartPinned(ctx, 0, b.bin, block, 15*time.Minute, addr)
	}
	_, _, _, last := w.endpoint(w.pods() - 1)
	if w.gang && kind != whoami {
		srv, err := start()
		if err != nil {
			return r, err
		}
		err = answered(ctx, addr, otherName, 10*time.Millisecond, 5*time.Minute)
		if err == nil {
			r.gang, r.gangUnanswered, err = b.gangStart(ctx, w, addr)
		}
		srv.Stop()
		if err != nil {
			return r, err
		}
	}
	begin := time.Now()
	srv, err := start()
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	if kind != whoami {
		for _, name := range []string{last, otherName} {
			if err := answered(ctx, addr, name, 10*time.Millisecond, 10*time.Minute); err != nil {
				return r, err
			}
		}
	}
	r.ready = time.Since(begin)
	if r.listPeakKB, err = testkit.PeakRSS(srv.PID()); err != nil {
		return r, err
	}
	if r.unforcedRSSKB, err = unforcedRSS(ctx, srv.PID(), b.cfg.settle); err != nil {
		return r, err
	}
	p, err := settledMemory(ctx, srv.PID(), ports[1], b.cfg.settle)
	if err != nil {
		return r, err
	}
	r.rssKB, r.heapKB = p.rssKB, p.heapKB
	if kind == whoami {
		return r, nil
	}

	names := b.path(fmt.Sprintf("largest-%d-%d.txt", w.services, w.endpoints))
	var q strings.Builder
	for i := range 1000 {
		_, _, _, name := w.endpoint(i * 7919 % w.pods())
		fmt.Fprintf(&q, "%s A\n", name)
	}
	if err := os.WriteFile(names, []byte(q.String()), 0o644); err != nil {
		return r, err
	}
	if r.podQPS, err = dnsperf(ctx, names, ports[0], b.cfg.duration, 0); err != nil {
		return r, err
	}
	if r.writeResult, err = b.timedWrites(ctx, addr, b.cfg.bigWrites, largeRate, func(i int) (string, string, int, string) {
		return w.endpoint(i * 7919 % w.pods())
	}, written); err != nil {
		return r, err
	}
	r.relistPeakKB, r.relists, r.relistTook, err = b.forceRelist(ctx, srv.PID(), m, addr, w, written)
	return r, err
}

// gangStart creates the job of w all at once, 16 slices at a time, and
// times each slice from its creation until its last pod's name answers at
// addr, for up to writeTimeout.
func (b *bench) gangStart(ctx context.Context, w largeWorkload, addr string) ([]time.Duration, int, error) {
	type created struct {
		name  string
		acked time.Time
	}
	o := w.objects(0)
	pending := make(chan created, len(o.Slices))
	var (
		mu         sync.Mutex
		took       []time.Duration
		unanswered int
		left       sync.WaitGroup
		pollers    sync.WaitGroup
	)
	for range gangPollers {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			c := &dns.Client{Timeout: 500 * time.Millisecond}
			for s := range pending {
				next := time.Now().Add(gangPollEvery)
				r, _, err := c.ExchangeContext(ctx, new(dns.Msg).SetQuestion(s.name, dns.TypeA), addr)
				waited := time.Since(s.acked)
				switch {
				case err == nil && len(r.Answer) > 0:
					mu.Lock()
					took = append(took, waited)
					mu.Unlock()
					left.Done()
				case waited > writeTimeout || ctx.Err() != nil:
					mu.Lock()
					took, unanswered = append(took, waited), unanswered+1
					mu.Unlock()
					left.Done()
				default:
					pending <- s
				}
				time.Sleep(time.Until(next))
			}
		}()
	}
	client := b.cluster.Client
	fmt.Fprintf(b.log, "largest: %s: creating the job ...\n", w)
	_, err := client.CoreV1().Services(largeNamespace).Create(ctx, o.Services[0], meta.CreateOptions{})
	if err == nil {
		err = parallel(ctx, 0, len(o.Slices), func(i int) error {
			s, err := client.DiscoveryV1().EndpointSlices(largeNamespace).Create(ctx, o.Slices[i], meta.CreateOptions{})
			if err != nil {
				return err
			}
			left.Add(1)
			pending <- created{fmt.Sprintf("%s.%s.%s.svc.cluster.local.", *s.Endpoints[len(s.Endpoints)-1].Hostname, w.service(0), largeNamespace), time.Now()}
			return nil
		})
	}
	left.Wait()
	close(pending)
	pollers.Wait()
	return took, unanswered, err
}

// forceRelist restarts the API server so that the process with pid, which
// reaches it through m, must list everything again, and returns the peak of
// its resident memory (VmHWM) from the restart until it has, the lists it
// made, and the time from the restart until a write made after it answers.
// A write the plugins do not watch comes first: the restarted API server's
// watch cache then starts past the last resource version they saw, and
// their watches cannot resume (TestWatchCut in test/reliability).
func (b *bench) forceRelist(ctx context.Context, pid int, m *meter, addr string, w largeWorkload, written *int) (int, int64, time.Duration, error) {
	c := b.cluster
	marker := &core.ConfigMap{ObjectMeta: meta.ObjectMeta{GenerateName: "relist-"}}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, marker, meta.CreateOptions{}); err != nil {
		return 0, 0, 0, err
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return 0, 0, 0, fmt.Errorf("resetting the peak resident memory: %w", err)
	}
	lists := m.lists.Load()
	fmt.Fprintf(b.log, "largest: %s: restarting the API server ...\n", w)
	restart := time.Now()
	c.StopAPIServer()
	if err := c.StartAPIServer(ctx); err != nil {
		return 0, 0, 0, err
	}
	ns, sliceName, pos, name := w.endpoint(*written * 7919 % w.pods())
	to, acked, err := b.writeEndpoint(ctx, ns, sliceName, pos, written)
	if err != nil {
		return 0, 0, 0, err
	}
	if _, ok := pollAddress(ctx, addr, name, to, acked); !ok {
		return 0, 0, 0, fmt.Errorf("%s did not answer %s within %s of the API server's restart", name, to, writeTimeout)
	}
	took := time.Since(restart)
	// Every watch lists again, each at its own pace; the peak is read once
	// the last has had the time to.
	deadline := time.Now().Add(writeTimeout)
	for m.lists.Load()-lists < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(b.cfg.settle)
	peak, err := testkit.PeakRSS(pid)
	return peak, m.lists.Load() - lists, took, err
}
