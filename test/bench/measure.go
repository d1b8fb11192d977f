package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// procResult is what one single-listener process costs.
type procResult struct {
	rssKB, heapKB int
	// unforcedRSSKB is the resident memory before any forced collection,
	// as a pod's memory limit sees it; 0 where it is not read.
	unforcedRSSKB int
	ready         time.Duration
}

// measureProcesses starts one process per kind alone, pinned to CPU 0, and
// records how long it takes to answer for the last service loaded; its
// resident memory the settle time after that, before any collection is
// forced; and, once a forced collection has run and the settle time has
// passed again, its resident memory and heap.
func (b *bench) measureProcesses(ctx context.Context, label string) error {
	last := fmt.Sprintf("pod-0.%s.%s.svc.cluster.local.", serviceName(b.rep.loaded(label)-1), namespace)
	for _, kind := range []string{whoami, kubernetesKind, headless} {
		port, err := testkit.FreePort()
		if err != nil {
			return err
		}
		pprofPort, err := testkit.FreePort()
		if err != nil {
			return err
		}
		addr := testkit.Addr(port)
		fmt.Fprintf(b.log, "%s: starting %s alone ...\n", label, kind)
		begin := time.Now()
		srv, err := testkit.StartPinned(ctx, 0, b.bin, b.corefileBlock(kind, port, pprofPort), 15*time.Minute, addr)
		if err != nil {
			return err
		}
		if kind != whoami {
			if err := waitAnswer(ctx, addr, last, time.Minute); err != nil {
				srv.Stop()
				return fmt.Errorf("%s: %w", kind, err)
			}
		}
		ready := time.Since(begin)
		unforced, err := unforcedRSS(ctx, srv.PID(), b.cfg.settle)
		if err != nil {
			srv.Stop()
			return err
		}
		p, err := settledMemory(ctx, srv.PID(), pprofPort, b.cfg.settle)
		srv.Stop()
		if err != nil {
			return err
		}
		p.ready, p.unforcedRSSKB = ready, unforced
		b.rep.addProcess(label, kind, p)
		fmt.Fprintf(b.log, "%s: %s ready in %s, RSS %d kB before a forced collection, %d kB after, heap %d kB\n",
			label, kind, ready.Round(time.Millisecond), p.unforcedRSSKB, p.rssKB, p.heapKB)
	}
	return nil
}

// measureQPS runs dnsperf on CPU 1 against each listener of one process
// pinned to CPU 0, for each workload, and keeps the best of the rounds. The
// listeners take turns within a round, so that a slow moment of the machine
// (runs of the same listener in one bench differed by up to a third) falls on each of them
// rather than on all the runs of one. Before the rounds, the cache listener
// is warmed with every question of every workload, so that its runs are
// cache hits: the ceiling of the QPS targets.
func (b *bench) measureQPS(ctx context.Context) error {
	srv, ports, err := b.startAll(ctx, whoami, kubernetesKind, headless, cacheKind)
	if err != nil {
		return err
	}
	defer srv.Stop()
	workloads := []string{seedA, seedSRV, mix}
	if err := b.warmCache(ctx, ports[cacheKind], workloads); err != nil {
		return err
	}
	for _, w := range workloads {
		kinds := []string{kubernetesKind, headless, cacheKind}
		if w == seedA {
			kinds = append(kinds, whoami)
		}
		for round := range b.cfg.rounds {
			for _, kind := range kinds {
				qps, err := dnsperf(ctx, b.files[w], ports[kind], b.cfg.duration, 0)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", w, kind, err)
				}
				key := w + "/" + kind
				b.rep.qps[key] = max(b.rep.qps[key], qps)
				fmt.Fprintf(b.log, "%s on %s, round %d: %.0f qps\n", w, kind, round+1, qps)
			}
		}
	}
	return nil
}

// cacheSample is how many questions of each workload warmCache asks again
// to check that the cache answers them.
const cacheSample = 500

// warmCache runs dnsperf once through the questions of each workload
// against the cache listener at port, waits a second and asks again up to
// cacheSample questions of each: an answer from the cache has a TTL below
// the 3600s the cache gives an answer it has just stored (cacheDirective),
// which it then keeps. It fails unless 99% of them come from the cache.
func (b *bench) warmCache(ctx context.Context, port int, workloads []string) error {
	for _, w := range workloads {
		if _, err := dnsperfOnce(ctx, b.files[w], port); err != nil {
			return fmt.Errorf("warming the cache with %s: %w", w, err)
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(1100 * time.Millisecond):
	}
	hits, asked := 0, 0
	for _, w := range workloads {
		qs, err := readQuestions(b.files[w], cacheSample)
		if err != nil {
			return err
		}
		for _, q := range qs {
			hit, err := cachedAnswer(ctx, testkit.Addr(port), q)
			if err != nil {
				return fmt.Errorf("checking the warm cache: %w", err)
			}
			asked++
			if hit {
				hits++
			}
		}
	}
	b.rep.cacheHits, b.rep.cacheAsked = hits, asked
	fmt.Fprintf(b.log, "cache warmed: %d of %d questions asked again answered from the cache\n", hits, asked)
	if hits*100 < asked*99 {
		return fmt.Errorf("the cache listener answered only %d of %d questions from its cache after warming", hits, asked)
	}
	return nil
}

// readQuestions returns up to n questions of a dnsperf query file.
func readQuestions(file string, n int) ([]dns.Question, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var qs []dns.Question
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		t, ok := dns.StringToType[f[1]]
		if !ok {
			return nil, fmt.Errorf("%s: no type %q", file, f[1])
		}
		if qs = append(qs, dns.Question{Name: dns.Fqdn(f[0]), Qtype: t, Qclass: dns.ClassINET}); len(qs) == n {
			break
		}
	}
	return qs, nil
}

// cachedAnswer asks addr q as dnsperf does (EDNS0, 4096 bytes) and reports
// whether the answer came from the cache: a TTL below 3600s.
func cachedAnswer(ctx context.Context, addr string, q dns.Question) (bool, error) {
	m := new(dns.Msg)
	m.Question = []dns.Question{q}
	m.RecursionDesired = true
	m.Id = dns.Id()
	m.SetEdns0(4096, false)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return false, err
	}
	if r.Rcode != dns.RcodeSuccess || r.Truncated || len(r.Answer) == 0 {
		return false, fmt.Errorf("%s %s: %s, truncated %t, %d answers", q.Name, dns.TypeToString[q.Qtype], dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer))
	}
	return r.Answer[0].Header().Ttl < 3600, nil
}

// startAll starts one process with a listener of each kind, pinned to CPU
// 0, and waits until each but whoami answers for the last service: the
// cache listener last, so that its headless has synced by then.
func (b *bench) startAll(ctx context.Context, kinds ...string) (*testkit.Server, map[string]int, error) {
	ports := map[string]int{}
	var corefile strings.Builder
	var addrs []string
	for _, kind := range kinds {
		port, err := testkit.FreePort()
		if err != nil {
			return nil, nil, err
		}
		ports[kind] = port
		addrs = append(addrs, testkit.Addr(port))
		corefile.WriteString(b.corefileBlock(kind, port, 0))
	}
	srv, err := testkit.StartPinned(ctx, 0, b.bin, corefile.String(), 15*time.Minute, addrs...)
	if err != nil {
		return nil, nil, err
	}
	last := fmt.Sprintf("pod-0.%s.%s.svc.cluster.local.", serviceName(b.cfg.services-1), namespace)
	for _, kind := range []string{kubernetesKind, headless, cacheKind} {
		if _, ok := ports[kind]; !ok {
			continue
		}
		if err := waitAnswer(ctx, testkit.Addr(ports[kind]), last, time.Minute); err != nil {
			srv.Stop()
			return nil, nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	return srv, ports, nil
}

var qpsLine = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)

// dnsperf runs dnsperf on CPU 1 with EDNS0 against port for d, at most
// maxQPS queries per second when not 0, and returns the queries per second.
func dnsperf(ctx context.Context, file string, port int, d time.Duration, maxQPS int) (float64, error) {
	args := []string{"-l", strconv.Itoa(max(1, int(d.Seconds())))}
	if maxQPS > 0 {
		args = append(args, "-Q", strconv.Itoa(maxQPS))
	}
	return runDnsperf(ctx, file, port, args...)
}

// dnsperfOnce runs dnsperf on CPU 1 as dnsperf (the function) does, but
// once through file, for at most two minutes, and returns the queries per
// second.
func dnsperfOnce(ctx context.Context, file string, port int) (float64, error) {
	return runDnsperf(ctx, file, port, "-n", "1", "-l", "120")
}

// runDnsperf runs dnsperf on CPU 1 with EDNS0, 20 clients and 200 queries
// outstanding, and args, against port and returns the queries per second.
func runDnsperf(ctx context.Context, file string, port int, args ...string) (float64, error) {
	args = append([]string{"-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", file,
		"-c", "20", "-q", "200", "-e", "-t", "2"}, args...)
	out, err := exec.CommandContext(ctx, "taskset", args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("dnsperf: %v\n%s", err, out)
	}
	m := qpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no rate in dnsperf's output:\n%s", out)
	}
	if strings.Contains(string(out), "SERVFAIL") || strings.Contains(string(out), "NXDOMAIN") {
		return 0, fmt.Errorf("dnsperf saw errors:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// measureLatency times EndpointSlice writes until each plugin serves them,
// while dnsperf keeps both listeners under load.
func (b *bench) measureLatency(ctx context.Context, c *cluster.Cluster) error {
	srv, ports, err := b.startAll(ctx, whoami, kubernetesKind, headless)
	if err != nil {
		return err
	}
	defer srv.Stop()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	defer func() {
		stopLoad()
		load.Wait()
	}()
	for _, kind := range []string{kubernetesKind, headless} {
		load.Add(1)
		go func() {
			defer load.Done()
			_, _ = dnsperf(loadCtx, b.files[mix], ports[kind], 10*time.Minute, 3000)
		}()
	}
	time.Sleep(time.Second)

	slices := c.Client.DiscoveryV1().EndpointSlices(namespace)
	for i := range b.cfg.writes {
		s, err := slices.Get(ctx, "lat-x1", meta.GetOptions{})
		if err != nil {
			return err
		}
		host := fmt.Sprintf("w-%d", i)
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{benchAddr(1<<20 + i).String()}, Hostname: &host})
		if _, err := slices.Update(ctx, s, meta.UpdateOptions{}); err != nil {
			return err
		}
		acked := time.Now()
		name := host + ".lat." + namespace + ".svc.cluster.local."
		errs := make(chan error, 2)
		for _, kind := range []string{kubernetesKind, headless} {
			go func() {
				err := waitAnswer(ctx, testkit.Addr(ports[kind]), name, 30*time.Second)
				if err == nil {
					b.rep.addLatency(kind, time.Since(acked))
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(b.log, "programming latency: %d writes timed\n", b.cfg.writes)
	return nil
}

// waitAnswer polls addr every millisecond until name has an A record.
func waitAnswer(ctx context.Context, addr, name string, timeout time.Duration) error {
	return answered(ctx, addr, name, time.Millisecond, timeout)
}

// answered asks addr for name's A record every interval until it has one,
// for up to timeout.
func answered(ctx context.Context, addr, name string, every, timeout time.Duration) error {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	deadline := time.Now().Add(timeout)
	for {
		r, _, err := c.ExchangeContext(ctx, m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has no answer at %s after %s", name, addr, timeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(every)
	}
}

var heapAlloc = regexp.MustCompile(`# HeapAlloc = ([0-9]+)`)

// unforcedRSS waits settle and reads the resident set of pid, with no
// collection forced: what a pod's memory limit sees.
func unforcedRSS(ctx context.Context, pid int, settle time.Duration) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(settle):
	}
	return testkit.RSS(pid)
}

// settledMemory collects the start-up garbage (the pprof plugin's heap
// profile with gc=1 runs a collection), gives the runtime settle (5s) to
// return freed pages to the system, and reads the resident set and the live
// heap.
func settledMemory(ctx context.Context, pid, pprofPort int, settle time.Duration) (procResult, error) {
	var p procResult
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", pprofPort)
	for i := range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return p, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return p, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return p, err
		}
		m := heapAlloc.FindSubmatch(body)
		if m == nil {
			return p, fmt.Errorf("no HeapAlloc in %s", url)
		}
		heap, _ := strconv.Atoi(string(m[1]))
		p.heapKB = heap / 1024
		if i == 0 {
			time.Sleep(settle)
		}
	}
	rss, err := testkit.RSS(pid)
	p.rssKB = rss
	return p, err
}
