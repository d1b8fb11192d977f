package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The CoreDNS setups compared on the cluster mix.
const (
	stock           = "stock"            // deploy/Corefile without headless
	dropIn          = "drop-in"          // deploy/Corefile as shipped
	headlessAlone   = "headless alone"   // a server block with headless only
	kubernetesAlone = "kubernetes alone" // a server block with kubernetes only
)

// setups are the processes measured for memory, whoami first.
var setups = []string{whoami, kubernetesAlone, headlessAlone, stock, dropIn}

// corefilePorts are the loopback ports of a production Corefile.
type corefilePorts struct {
	dns, health, ready, metrics, pprof, upstream int
}

// The directives of deploy/Corefile that are adapted to run here.
var (
	serverLine     = regexp.MustCompile(`^\.:53 \{$`)
	healthLine     = regexp.MustCompile(`^(\s*health)\b(.*)$`)
	readyLine      = regexp.MustCompile(`^(\s*ready)\s*$`)
	prometheusLine = regexp.MustCompile(`^(\s*prometheus)\b.*$`)
	forwardLine    = regexp.MustCompile(`^(\s*forward \.) \S+(.*)$`)
	pluginLine     = regexp.MustCompile(`^(\s*)(headless|kubernetes) .*\{$`)
	cacheLine      = regexp.MustCompile(`^\s*cache\b`)
)

// shape is a Corefile shape that clusters run their cluster DNS in.
type shape string

// The shapes, from issue 20: deploy/Corefile is kubeadm's Corefile with the
// headless block added.
const (
	// kubeadmShape is deploy/Corefile as it is: kubeadm's cache block keeps
	// nothing of cluster.local, so every headless question reaches the plugins.
	kubeadmShape shape = "kubeadm"
	// helmShape is the coredns Helm chart's: a plain cache 30 in place of
	// kubeadm's cache block.
	helmShape shape = "Helm chart"
	// nodeLocalShape is kubeadm's behind NodeLocal DNSCache's caching server
	// (nodeLocalCorefile), which the clients ask.
	nodeLocalShape shape = "NodeLocal DNSCache"
)

var shapes = []shape{kubeadmShape, helmShape, nodeLocalShape}

// productionCorefile returns deploy/Corefile (shipped) as the bench runs it
// in shape: listening on 127.0.0.1 only, health, ready and prometheus on
// loopback ports, forward to a loopback port nothing listens on (the only
// query it gets is the loop plugin's probe), a kubeconfig in both plugins
// and the pprof plugin added, for the heap. Stock drops the headless block.
// In the Helm chart's shape, kubeadm's cache block is the chart's plain
// cache 30. The headless block gets options too, one a line, after its
// kubeconfig.
func productionCorefile(shipped string, withHeadless bool, sh shape, kubeconfig string, p corefilePorts, options ...string) (string, error) {
	var out strings.Builder
	var found []string
	lines := strings.Split(strings.TrimRight(shipped, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case serverLine.MatchString(l):
			fmt.Fprintf(&out, ".:%d {\n    bind 127.0.0.1\n    pprof 127.0.0.1:%d\n", p.dns, p.pprof)
			found = append(found, "server")
			continue
		case healthLine.MatchString(l):
			l = healthLine.ReplaceAllString(l, fmt.Sprintf("${1} 127.0.0.1:%d${2}", p.health))
		case readyLine.MatchString(l):
			l = readyLine.ReplaceAllString(l, fmt.Sprintf("${1} 127.0.0.1:%d", p.ready))
		case prometheusLine.MatchString(l):
			l = prometheusLine.ReplaceAllString(l, fmt.Sprintf("${1} 127.0.0.1:%d", p.metrics))
		case forwardLine.MatchString(l):
			l = forwardLine.ReplaceAllString(l, fmt.Sprintf("${1} 127.0.0.1:%d${2}", p.upstream))
		case cacheLine.MatchString(l):
			found = append(found, "cache")
			if sh != helmShape {
				break
			}
			if strings.HasSuffix(l, "{") {
				for strings.TrimSpace(lines[i]) != "}" {
					i++
				}
			}
			l = l[:len(l)-len(strings.TrimLeft(l, " \t"))] + "cache 30"
		case pluginLine.MatchString(l):
			m := pluginLine.FindStringSubmatch(l)
			found = append(found, m[2])
			if m[2] == "headless" && !withHeadless {
				for !strings.HasPrefix(lines[i], m[1]+"}") {
					i++
				}
				continue
			}
			l += fmt.Sprintf("\n%s    kubeconfig %s", m[1], kubeconfig)
			if m[2] == "headless" {
				for _, o := range options {
					l += fmt.Sprintf("\n%s    %s", m[1], o)
				}
			}
		}
		out.WriteString(l + "\n")
	}
	for _, want := range []string{"server", "headless", "kubernetes", "cache"} {
		if !slices.Contains(found, want) {
			return "", fmt.Errorf("deploy/Corefile has no %s line the bench knows how to adapt", want)
		}
	}
	return out.String(), nil
}

// nodeLocalCorefile is NodeLocal DNSCache's Corefile for the cluster's zones
// (Kubernetes' cluster/addons/dns/nodelocaldns/nodelocaldns.yaml, as
// docs/operators.md quotes it), listening on 127.0.0.1:port and forwarding
// over TCP to the cluster DNS at upstream. Its prometheus and health
// listeners and its block for other names, which nothing here asks, are left
// out.
func nodeLocalCorefile(port int, upstream string) string {
	var out strings.Builder
	for _, zone := range []string{"cluster.local", "in-addr.arpa", "ip6.arpa"} {
		cache := "cache 30"
		if zone == "cluster.local" {
			cache = "cache {\n            success 9984 30\n            denial 9984 5\n    }"
		}
		fmt.Fprintf(&out, "%s:%d {\n    errors\n    %s\n    reload\n    loop\n    bind 127.0.0.1\n    forward . %s {\n            force_tcp\n    }\n}\n",
			zone, port, cache, upstream)
	}
	return out.String()
}

// prodProc is one running CoreDNS process of a setup, and in NodeLocal
// DNSCache's shape the caching server in front of it.
type prodProc struct {
	setup   string
	shape   shape
	srv     *testkit.Server
	front   *testkit.Server // the node cache, in NodeLocal DNSCache's shape
	port    int             // where clients ask: the node cache's, if any
	addr    string
	pprof   int    // the cluster DNS's
	metrics int    // the cluster DNS's prometheus port, stock and drop-in only
	meter   *meter // nil unless metered
}

// stop ends the processes at once: the shipped Corefile's lameduck would
// hold each stop for 5s.
func (p *prodProc) stop() {
	for _, srv := range []*testkit.Server{p.front, p.srv} {
		if srv == nil {
			continue
		}
		if proc, err := os.FindProcess(srv.PID()); err == nil {
			_ = proc.Kill()
		}
		srv.Stop()
	}
	if p.meter != nil {
		p.meter.close()
	}
}

// procSet is the processes of setups that run at once, by setup.
type procSet map[string]*prodProc

// stop stops them all.
func (ps procSet) stop() {
	for _, p := range ps {
		p.stop()
	}
}

// startEach starts a process of each of setups with start; if one fails,
// it stops those started.
func startEach(setups []string, start func(setup string) (*prodProc, error)) (procSet, error) {
	ps := procSet{}
	for _, s := range setups {
		p, err := start(s)
		if err != nil {
			ps.stop()
			return nil, err
		}
		ps[s] = p
	}
	return ps, nil
}

// startSetup starts a process of setup on the cluster mix with startShape,
// and returns once it answers the probes of its setup.
func (b *bench) startSetup(ctx context.Context, setup string, cpu int, sh shape, metered bool) (*prodProc, error) {
	p, err := b.startShape(ctx, setup, cpu, sh, metered)
	if err != nil || setup == whoami {
		return p, err
	}
	for _, name := range mixProbes(b.cfg.mixServices, b.cfg.headlessEvery, setup != headlessAlone) {
		// Slowly: an early NXDOMAIN stays in the cache for 30s.
		if err := answered(ctx, p.addr, name, 100*time.Millisecond, 10*time.Minute); err != nil {
			p.stop()
			return nil, fmt.Errorf("%s: %w", setup, err)
		}
	}
	return p, nil
}

// startShape starts a process of setup on the cluster of b, on CPU cpu
// unless it is negative, stock and drop-in in shape sh, through a meter if
// metered. In NodeLocal DNSCache's shape the node cache starts too, on the
// same CPU. It returns once the processes serve.
func (b *bench) startShape(ctx context.Context, setup string, cpu int, sh shape, metered bool) (*prodProc, error) {
	return b.startShapeWith(ctx, setup, cpu, sh, metered)
}

// startShapeWith is startShape with options added to the drop-in's headless
// block.
func (b *bench) startShapeWith(ctx context.Context, setup string, cpu int, sh shape, metered bool, options ...string) (*prodProc, error) {
	ports, err := testkit.FreePorts(7)
	if err != nil {
		return nil, err
	}
	p := &prodProc{setup: setup, shape: sh, port: ports[0], addr: testkit.Addr(ports[0]), pprof: ports[1], metrics: ports[4]}
	kubeconfig := b.kubeconfig
	if metered && setup != whoami {
		if p.meter, err = newMeter(b.cluster, b.path(fmt.Sprintf("kubeconfig-%d", ports[0]))); err != nil {
			return nil, err
		}
		kubeconfig = p.meter.kubeconfig
	}
	var corefile string
	switch setup {
	case stock, dropIn:
		corefile, err = productionCorefile(b.shipped, setup == dropIn, sh, kubeconfig,
			corefilePorts{ports[0], ports[2], ports[3], ports[4], ports[1], ports[5]}, options...)
	default:
		corefile = testkit.Block{
			Port: ports[0], Pprof: ports[1],
			Whoami: setup == whoami, Kubernetes: setup == kubernetesAlone, Headless: setup == headlessAlone,
			Kubeconfig: kubeconfig, StartupTimeout: "5m",
		}.String()
	}
	if err == nil {
		p.srv, err = startPinned(ctx, cpu, b.bin, corefile, p.addr)
	}
	if err == nil && sh == nodeLocalShape && (setup == stock || setup == dropIn) {
		p.port, p.addr = ports[6], testkit.Addr(ports[6])
		p.front, err = startPinned(ctx, cpu, b.bin, nodeLocalCorefile(p.port, testkit.Addr(ports[0])), p.addr)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startPinned starts bin on corefile, pinned to cpu unless it is negative,
// and waits for addr to serve.
func startPinned(ctx context.Context, cpu int, bin, corefile, addr string) (*testkit.Server, error) {
	if cpu >= 0 {
		return testkit.StartPinned(ctx, cpu, bin, corefile, 15*time.Minute, addr)
	}
	return testkit.Start(ctx, bin, corefile, 15*time.Minute, addr)
}

// measureSetups starts each setup alone on the cluster mix, pinned to CPU 0
// and through a meter, and records the bytes it received until it answers
// for the last services, and its memory once a collection has run and the
// settle time has passed. It also counts the objects each plugin's lists
// return.
func (b *bench) measureSetups(ctx context.Context) error {
	for _, s := range setups {
		fmt.Fprintf(b.log, "cluster mix: starting %s ...\n", s)
		begin := time.Now()
		p, err := b.startSetup(ctx, s, 0, helmShape, true)
		if err != nil {
			return err
		}
		ready := time.Since(begin)
		var tr traffic
		if p.meter != nil {
			tr = traffic{bytes: p.meter.received.Load(), requests: p.meter.requests.Load(), calls: p.meter.requestsSoFar()}
		}
		r, err := settledMemory(ctx, p.srv.PID(), p.pprof, b.cfg.settle)
		p.stop()
		if err != nil {
			return err
		}
		r.ready = ready
		b.rep.prod.procs[s] = r
		b.rep.prod.received[s] = tr
		fmt.Fprintf(b.log, "cluster mix: %s ready in %s after %d bytes in %d responses, RSS %d kB, heap %d kB\n",
			s, ready.Round(time.Millisecond), tr.bytes, tr.requests, r.rssKB, r.heapKB)
	}
	objects, err := listed(ctx, b.cluster)
	if err != nil {
		return err
	}
	b.rep.prod.objects = objects
	fmt.Fprintf(b.log, "cluster mix: the lists return %d objects to kubernetes, %d to headless\n", objects[kubernetesKind], objects[headless])
	return nil
}

// shapeResult is what one setup did in one shape.
type shapeResult struct {
	qps           float64 // the best of the rounds
	rssKB, heapKB int     // the cluster DNS's, settled after the rounds
}

// measureShapes runs dnsperf on CPU 1 against stock and drop-in, each alone
// with its processes on CPU 0, in each shape, on the headless names of the
// cluster mix, and reads the cluster DNS's memory after the runs, its cache
// as full as they left it.
func (b *bench) measureShapes(ctx context.Context) error {
	for _, sh := range shapes {
		b.rep.prod.shapes[sh] = map[string]shapeResult{}
		for _, s := range []string{stock, dropIn} {
			p, err := b.startSetup(ctx, s, 0, sh, false)
			if err != nil {
				return err
			}
			var r shapeResult
			for range b.cfg.rounds {
				qps, err := dnsperf(ctx, b.files[headlessMix], p.port, b.cfg.duration, 0)
				if err != nil {
					p.stop()
					return fmt.Errorf("%s, %s: %w", s, sh, err)
				}
				r.qps = max(r.qps, qps)
			}
			mem, err := settledMemory(ctx, p.srv.PID(), p.pprof, b.cfg.settle)
			p.stop()
			if err != nil {
				return err
			}
			r.rssKB, r.heapKB = mem.rssKB, mem.heapKB
			b.rep.prod.shapes[sh][s] = r
			fmt.Fprintf(b.log, "cluster mix: %s, %s: %.0f qps, RSS %d kB, heap %d kB\n", s, sh, r.qps, r.rssKB, r.heapKB)
		}
	}
	return nil
}

// relistResult is the resident memory of a process around a relist.
type relistResult struct {
	beforeKB, peakKB int
	relisted         bool  // the process received its initial lists again
	bytes            int64 // received after the API server stopped
	took             time.Duration
}

// measureRelist runs stock and drop-in at once, unpinned and metered, and
// samples their resident memory every 100ms while the API server stops for
// the outage and starts again, until each has received as much again as its
// initial lists (a relist), for up to 3 minutes, and 3s more.
func (b *bench) measureRelist(ctx context.Context) error {
	procs, err := startEach([]string{stock, dropIn}, func(s string) (*prodProc, error) { return b.startSetup(ctx, s, -1, helmShape, true) })
	if err != nil {
		return err
	}
	defer procs.stop()
	initial := map[string]int64{}
	for s, p := range procs {
		initial[s] = p.meter.received.Load()
	}
	results := map[string]*relistResult{}
	before := map[string]int64{}
	for s, p := range procs {
		r, err := settledMemory(ctx, p.srv.PID(), p.pprof, b.cfg.settle)
		if err != nil {
			return err
		}
		results[s] = &relistResult{beforeKB: r.rssKB, peakKB: r.rssKB}
		before[s] = p.meter.received.Load()
	}

	var mu sync.Mutex
	sampling, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for sampling.Err() == nil {
			for s, p := range procs {
				if rss, err := testkit.RSS(p.srv.PID()); err == nil {
					mu.Lock()
					results[s].peakKB = max(results[s].peakKB, rss)
					mu.Unlock()
				}
			}
			select {
			case <-sampling.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	fmt.Fprintf(b.log, "cluster mix: stopping the API server for %s with stock and drop-in running ...\n", b.cfg.outage)
	stopped := time.Now()
	b.cluster.StopAPIServer()
	time.Sleep(b.cfg.outage)
	err = b.cluster.StartAPIServer(ctx)
	if err == nil {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			done := true
			for s, p := range procs {
				r := results[s]
				if !r.relisted && p.meter.received.Load()-before[s] >= initial[s]*9/10 {
					r.relisted, r.took = true, time.Since(stopped)
				}
				done = done && r.relisted
			}
			if done {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
	}
	stopSampling()
	sampler.Wait()
	if err != nil {
		return err
	}
	for s, p := range procs {
		r := results[s]
		r.bytes = p.meter.received.Load() - before[s]
		b.rep.prod.relist[s] = *r
		fmt.Fprintf(b.log, "cluster mix: %s: RSS %d kB before, peak %d kB; relisted %v (%d bytes) in %s\n",
			s, r.beforeKB, r.peakKB, r.relisted, r.bytes, r.took.Round(time.Millisecond))
	}
	return nil
}

// measureRecovery runs headless alone and kubernetes alone, unpinned, and
// times, over the repetitions, how long after the API server is ready again
// after an outage each answers for a headless service created then.
func (b *bench) measureRecovery(ctx context.Context) error {
	procs, err := startEach([]string{kubernetesAlone, headlessAlone}, func(s string) (*prodProc, error) { return b.startSetup(ctx, s, -1, kubeadmShape, false) })
	if err != nil {
		return err
	}
	defer procs.stop()
	for rep := range b.cfg.reps {
		fmt.Fprintf(b.log, "cluster mix: recovery %d: stopping the API server for %s ...\n", rep+1, b.cfg.outage)
		b.cluster.StopAPIServer()
		time.Sleep(b.cfg.outage)
		if err := b.cluster.StartAPIServer(ctx); err != nil {
			return err
		}
		ready := time.Now()
		name := fmt.Sprintf("recovery-%d", rep)
		if err := testkit.Apply(ctx, b.cluster.Client, mixProbeService(name, 1)); err != nil {
			return err
		}
		if err := b.timeAnswers(ctx, procs, "pod-0."+name+"."+mixNamespace+".svc.cluster.local.", ready, time.Millisecond, b.rep.prod.recovery); err != nil {
			return err
		}
	}
	return nil
}

// measureNegativeTTL runs stock and drop-in at once, unpinned, and times,
// over the repetitions, how long after a not-ready endpoint turns ready a
// client that asked its name before (and got NXDOMAIN, which the cache
// keeps) gets its address, asking every 100ms.
func (b *bench) measureNegativeTTL(ctx context.Context) error {
	procs, err := startEach([]string{stock, dropIn}, func(s string) (*prodProc, error) { return b.startSetup(ctx, s, -1, helmShape, false) })
	if err != nil {
		return err
	}
	defer procs.stop()
	for rep := range b.cfg.reps {
		name := fmt.Sprintf("negative-%d", rep)
		o := mixProbeService(name, 2)
		notReady := o.Slices[0]
		no := false
		notReady.Endpoints[1].Conditions.Ready, notReady.Endpoints[1].Conditions.Serving = &no, &no
		if err := testkit.Apply(ctx, b.cluster.Client, o); err != nil {
			return err
		}
		// Both serve the service before the client asks: the drop-in's
		// headless passes names of services it does not know on to kubernetes.
		time.Sleep(500 * time.Millisecond)
		svc := name + "." + mixNamespace + ".svc.cluster.local."
		pod := "pod-1." + svc
		for _, p := range procs {
			if err := answered(ctx, p.addr, svc, 100*time.Millisecond, time.Minute); err != nil {
				return fmt.Errorf("%s: %w", p.setup, err)
			}
			r, err := testkit.Exchange("udp", p.addr, testkit.NewQuery(pod, dns.TypeA))
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeNameError {
				return fmt.Errorf("%s: %s before it is ready: %s, want NXDOMAIN", p.setup, pod, dns.RcodeToString[r.Rcode])
			}
		}
		sliceClient := b.cluster.Client.DiscoveryV1().EndpointSlices(mixNamespace)
		s, err := sliceClient.Get(ctx, notReady.Name, meta.GetOptions{})
		if err != nil {
			return err
		}
		yes := true
		s.Endpoints[1].Conditions.Ready, s.Endpoints[1].Conditions.Serving = &yes, &yes
		if _, err := sliceClient.Update(ctx, s, meta.UpdateOptions{}); err != nil {
			return err
		}
		fmt.Fprintf(b.log, "cluster mix: negative caching %d: %s turned ready\n", rep+1, pod)
		if err := b.timeAnswers(ctx, procs, pod, time.Now(), 100*time.Millisecond, b.rep.prod.negative); err != nil {
			return err
		}
	}
	return nil
}

// timeAnswers asks each process for name every interval until it has an
// address, for up to 5 minutes (the kubernetes plugin's backoff after an
// outage reaches a minute), and adds the time since from to times under the
// process's setup.
func (b *bench) timeAnswers(ctx context.Context, procs procSet, name string, from time.Time, every time.Duration, times map[string][]time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(procs))
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := answered(ctx, p.addr, name, every, 5*time.Minute); err != nil {
				errs <- fmt.Errorf("%s: %w", p.setup, err)
				return
			}
			d := time.Since(from)
			b.rep.mu.Lock()
			defer b.rep.mu.Unlock()
			times[p.setup] = append(times[p.setup], d)
			fmt.Fprintf(b.log, "cluster mix: %s answers %s after %s\n", p.setup, name, d.Round(time.Millisecond))
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// mixProbeService is a headless service of the cluster mix, created during a
// measurement, with n endpoints pod-0 ... pod-(n-1).
func mixProbeService(name string, n int) testkit.Objects {
	return mixObjects(name, 1<<22, n, true)
}

// shippedCorefile reads deploy/Corefile.
func shippedCorefile() (string, error) {
	root, err := testkit.Root()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Corefile"))
	return string(b), err
}

// runProduction starts a control plane of its own, loads the cluster mix
// and measures the production shape on it.
func runProduction(ctx context.Context, b *bench) error {
	c, err := cluster.Start(ctx, cluster.Options{AlwaysAllow: true})
	if err != nil {
		return err
	}
	defer c.Stop()
	b.cluster, b.kubeconfig = c, c.Kubeconfig
	if b.shipped, err = shippedCorefile(); err != nil {
		return err
	}
	display, err := productionCorefile(b.shipped, true, kubeadmShape, "KUBECONFIG", corefilePorts{1053, 8080, 8181, 9153, 6060, 5301})
	if err != nil {
		return err
	}
	b.rep.prod.corefile = display
	start := time.Now()
	fmt.Fprintf(b.log, "cluster mix: loading %d services x %d endpoints, one in %d headless ...\n", b.cfg.mixServices, b.cfg.mixEndpoints, b.cfg.headlessEvery)
	if err := loadMix(ctx, c.Client, b.cfg.mixServices, b.cfg.mixEndpoints, b.cfg.headlessEvery); err != nil {
		return err
	}
	b.rep.prod.loadTime = time.Since(start)
	if err := b.writeMixQueries(); err != nil {
		return err
	}
	for _, measure := range []func(context.Context) error{
		b.measureSetups, b.measureShapes, b.measureNegativeTTL, b.measureRelist, b.measureRecovery,
	} {
		if err := measure(ctx); err != nil {
			return err
		}
	}
	return nil
}
