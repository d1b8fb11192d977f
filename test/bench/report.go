package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// report collects the figures of a run and writes them out.
type report struct {
	cfg      config
	date     time.Time
	loadTime time.Duration
	total    time.Duration
	goBench  string // output of the Go benchmarks, if given

	mu      sync.Mutex
	labels  []string // workload sizes measured for memory and ready time, in order
	sizes   map[string]int
	procs   map[string]map[string]procResult
	qps     map[string]float64 // by "workload/kind"
	latency map[string][]time.Duration
}

func newReport(cfg config) *report {
	return &report{
		cfg: cfg, date: time.Now().UTC(),
		sizes:   map[string]int{},
		procs:   map[string]map[string]procResult{},
		qps:     map[string]float64{},
		latency: map[string][]time.Duration{},
	}
}

// sizeLabel names a workload size and remembers how many services it has.
func (r *report) sizeLabel(services, endpoints int) string {
	l := fmt.Sprintf("%d services x %d endpoints", services, endpoints)
	r.sizes[l] = services
	return l
}

func (r *report) loaded(label string) int { return r.sizes[label] }

func (r *report) addProcess(label, kind string, p procResult) {
	if r.procs[label] == nil {
		r.procs[label] = map[string]procResult{}
		r.labels = append(r.labels, label)
	}
	r.procs[label][kind] = p
}

func (r *report) addLatency(kind string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency[kind] = append(r.latency[kind], d)
}

// growthMB is the resident memory a plugin adds over the whoami-only process.
func (r *report) growthMB(label, kind string) float64 {
	p := r.procs[label]
	return float64(p[kind].rssKB-p[whoami].rssKB) / 1024
}

// heapGrowthMB is the heap in use a plugin adds over the whoami-only process.
func (r *report) heapGrowthMB(label, kind string) float64 {
	p := r.procs[label]
	return float64(p[kind].heapKB-p[whoami].heapKB) / 1024
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// target is one line of the summary table.
type target struct {
	name, want, measured string
	ratio                float64
	met                  bool
}

func (r *report) targets() []target {
	var ts []target
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for _, w := range []string{seedA, seedSRV, mix} {
		h, k := r.qps[w+"/"+headless], r.qps[w+"/"+kubernetesKind]
		ts = append(ts, target{"QPS, " + w, ">= 3x kubernetes",
			fmt.Sprintf("%.0f vs %.0f qps", h, k), ratio(h, k), ratio(h, k) >= 3})
	}
	h, wh := r.qps[seedA+"/"+headless], r.qps[seedA+"/"+whoami]
	ts = append(ts, target{"QPS, seed A against the whoami ceiling", ">= 0.9x whoami",
		fmt.Sprintf("%.0f vs %.0f qps", h, wh), ratio(h, wh), ratio(h, wh) >= 0.9})
	for i, l := range r.labels {
		hg, kg := r.growthMB(l, headless), r.growthMB(l, kubernetesKind)
		want := "<= 0.3x kubernetes"
		if i > 0 {
			want = "measured"
		}
		ts = append(ts, target{"memory over whoami, " + l, want,
			fmt.Sprintf("%.1f vs %.1f MB", hg, kg), ratio(hg, kg), i > 0 || ratio(hg, kg) <= 0.3})
		hh, kh := r.heapGrowthMB(l, headless), r.heapGrowthMB(l, kubernetesKind)
		ts = append(ts, target{"live heap over whoami, " + l, "measured",
			fmt.Sprintf("%.1f vs %.1f MB", hh, kh), ratio(hh, kh), true})
		hr, kr := r.procs[l][headless].ready, r.procs[l][kubernetesKind].ready
		ts = append(ts, target{"start to serving, " + l, "<= kubernetes",
			fmt.Sprintf("%s vs %s", hr.Round(time.Millisecond), kr.Round(time.Millisecond)), ratio(float64(hr), float64(kr)), hr <= kr})
	}
	for _, p := range []float64{0.5, 0.99} {
		hl, kl := percentile(r.latency[headless], p), percentile(r.latency[kubernetesKind], p)
		ts = append(ts, target{fmt.Sprintf("programming latency p%.0f under load (%d writes)", p*100, len(r.latency[headless])), "<= kubernetes",
			fmt.Sprintf("%s vs %s", hl.Round(100*time.Microsecond), kl.Round(100*time.Microsecond)), ratio(float64(hl), float64(kl)), hl <= kl})
	}
	return ts
}

// write writes the Markdown report and the chart.
func (r *report) write() error {
	ts := r.targets()
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nMeasured on %s by `make bench` (`test/bench`), %s, on %s.\n",
		r.date.Format("2006-01-02 15:04 UTC"), goVersion(), machine())
	fmt.Fprintf(&b, "One CoreDNS binary (`./coredns`, CoreDNS with every in-tree plugin plus headless), a local etcd and kube-apiserver, the same objects for both plugins: the seed document's consul-server (8 ports, 3 pods) and %d headless services x %d endpoints x 2 ports. ", r.cfg.services, r.cfg.endpoints)
	b.WriteString("The server is pinned to CPU 0 with taskset and dnsperf (EDNS0, 20 clients, 200 outstanding) to CPU 1; ")
	fmt.Fprintf(&b, "each QPS figure is the best of %d runs of %s. Memory is the resident set (VmRSS) of a process serving one plugin alone, read once it answers for the last service loaded, a garbage collection has run (the *pprof* plugin's heap profile with `gc=1`) and 5 s have passed, minus the same for a process serving only `whoami`; the live heap (`HeapAlloc` right after the collection) is read at the same time. Programming latency is the time from the API server acknowledging an EndpointSlice update to the new name being answered, polled every millisecond, while dnsperf sends 3000 qps of the mixed workload to each plugin.\n\n", r.cfg.rounds, r.cfg.duration)
	fmt.Fprintf(&b, "Loading the objects took %s; the whole run %s.\n\n", r.loadTime.Round(time.Second), r.total.Round(time.Second))
	fmt.Fprintf(&b, "![headless against kubernetes](%s)\n\n", filepath.Base(r.cfg.chart))
	b.WriteString("## Targets\n\n| target | wanted | headless vs kubernetes | ratio | met |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range ts {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fx | %s |\n", t.name, t.want, t.measured, t.ratio, yes(t.met))
	}
	b.WriteString("\n## Raw figures\n\n| workload | kubernetes qps | headless qps | whoami qps |\n| --- | --- | --- | --- |\n")
	for _, w := range []string{seedA, seedSRV, mix} {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s |\n", w, r.qps[w+"/"+kubernetesKind], r.qps[w+"/"+headless], orDash(r.qps[w+"/"+whoami]))
	}
	b.WriteString("\n| objects | process | VmRSS | over whoami | live heap | over whoami | start to serving |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, l := range r.labels {
		for _, kind := range []string{whoami, kubernetesKind, headless} {
			p := r.procs[l][kind]
			fmt.Fprintf(&b, "| %s | %s | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %s |\n", l, kind, float64(p.rssKB)/1024, r.growthMB(l, kind),
				float64(p.heapKB)/1024, r.heapGrowthMB(l, kind), p.ready.Round(time.Millisecond))
		}
	}
	b.WriteString("\n| plugin | writes | p50 | p99 | max |\n| --- | --- | --- | --- | --- |\n")
	for _, kind := range []string{kubernetesKind, headless} {
		ds := r.latency[kind]
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", kind, len(ds), percentile(ds, 0.5).Round(100*time.Microsecond),
			percentile(ds, 0.99).Round(100*time.Microsecond), percentile(ds, 1).Round(100*time.Microsecond))
	}
	if r.cfg.goBench != "" {
		gb, err := os.ReadFile(r.cfg.goBench)
		if err != nil {
			return err
		}
		r.goBench = string(gb)
	}
	if r.goBench != "" {
		b.WriteString("\n## Go benchmarks\n\nThe query path in-process (`go test -run '^$' -bench . -benchmem .`), both plugins watching the same local API server; allocs/op counts every allocation of ServeDNS, including the reply message handed to the writer.\n\n```\n")
		b.WriteString(r.goBench)
		b.WriteString("```\n")
	}
	if err := os.WriteFile(r.cfg.out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(r.cfg.chart, []byte(r.chart(ts)), 0o644)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func orDash(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", f)
}

func goVersion() string { return runtime.Version() }

// machine describes the CPU, cores and memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	mem := ""
	if out, err := exec.Command("sh", "-c", "awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo").Output(); err == nil {
		mem = ", " + string(out)
	}
	return fmt.Sprintf("%s, %d cores%s", model, runtime.NumCPU(), mem)
}
