// Command bench measures headless against the kubernetes plugin in one run,
// on the same objects and the same CoreDNS binary, and writes BENCHMARKS.md
// with a chart. `make bench` runs it; -smoke runs a tiny workload; -only
// runs some of the scenarios and writes their report elsewhere, such as
// `go run ./test/bench -only big-service -out /tmp/big.md`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// config is the size and length of a run.
type config struct {
	services, endpoints int           // the mixed workload: services x endpoints
	duration            time.Duration // of each dnsperf run
	rounds              int           // dnsperf runs per workload and listener; the best counts
	writes              int           // EndpointSlice writes timed for programming latency
	out                 string        // the report, Markdown
	chart               string        // the chart, SVG
	goBench             string        // a file of Go benchmark output to include

	// The production shape: the cluster mix, mixServices x mixEndpoints,
	// one in headlessEvery headless; 0 services skips it.
	mixServices, mixEndpoints, headlessEvery int
	reps                                     int           // of the recovery and negative caching timings
	outage                                   time.Duration // of the API server, before a restart
	settle                                   time.Duration // after a collection, before memory is read

	// The big-service scenario: a service of each size, written bigWrites
	// times at its rate; no size skips it.
	big       []bigSize
	bigWrites int

	// The largest-clusters scenario's workloads (largestWorkloads).
	largestJob, largestServices int
	largest                     []largeWorkload

	// The controllers scenario: a StatefulSet of gangPods pods, rolled
	// gangMaxUnavailable at a time (a count or a percentage); peers ask
	// for up to gangWait while it starts, and for up to staleWait after
	// its rollout; 0 pods skips it.
	gangPods           int
	gangMaxUnavailable string
	gangWait           time.Duration
	staleWait          time.Duration
	// Its unready names case: two StatefulSets of gangPods pods whose
	// pods stay unready for unreadyFor to 1.2x unreadyFor after they get
	// their addresses; 0 skips it.
	unreadyFor time.Duration

	// only names the scenarios to run, all when empty.
	only []string
}

// The scenarios, each on a control plane of its own, in the order they run.
const (
	scenarioHeadless   = "headless"    // headless services only: QPS, memory, programming latency
	scenarioProduction = "production"  // the production shape: deploy/Corefile on a cluster mix
	scenarioBig        = "big-service" // one big headless service whose slices change
	scenarioController = "controllers" // a StatefulSet the controllers start and roll, in each shape
	scenarioLargest    = "largest"     // a training job started at once, and a million endpoints
)

var scenarios = []string{scenarioHeadless, scenarioProduction, scenarioBig, scenarioController, scenarioLargest}

// runs reports whether the run measures scenario: it is among -only, or
// -only is empty and the scenario's size is not 0.
func (c config) runs(scenario string) bool {
	if len(c.only) > 0 && !slices.Contains(c.only, scenario) {
		return false
	}
	switch scenario {
	case scenarioHeadless:
		return c.services > 0
	case scenarioProduction:
		return c.mixServices > 0
	case scenarioBig:
		return len(c.big) > 0 && c.bigWrites > 0
	case scenarioController:
		return c.gangPods > 0
	case scenarioLargest:
		return len(c.largest) > 0 && c.bigWrites > 0
	}
	return false
}

func main() {
	var cfg config
	smoke := flag.Bool("smoke", false, "a tiny workload, for tests")
	flag.IntVar(&cfg.services, "services", 10000, "headless services in the mixed workload")
	flag.IntVar(&cfg.endpoints, "endpoints", 10, "endpoints per service")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each dnsperf run")
	flag.IntVar(&cfg.rounds, "rounds", 3, "dnsperf runs per workload and listener")
	flag.IntVar(&cfg.writes, "writes", 200, "EndpointSlice writes timed for programming latency")
	flag.StringVar(&cfg.out, "out", "", "report path (default BENCHMARKS.md at the repository root)")
	flag.StringVar(&cfg.goBench, "gobench", "", "a file with Go benchmark output to include in the report")
	flag.IntVar(&cfg.mixServices, "mix-services", 20000, "services of the cluster mix of the production shape; 0 skips it")
	flag.IntVar(&cfg.mixEndpoints, "mix-endpoints", 10, "endpoints per service of the cluster mix")
	flag.IntVar(&cfg.headlessEvery, "mix-headless-every", 10, "one service in this many of the cluster mix is headless")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of the recovery and negative caching timings")
	flag.DurationVar(&cfg.outage, "outage", 5*time.Second, "how long the API server is down before it restarts")
	flag.DurationVar(&cfg.settle, "settle", 5*time.Second, "wait after a garbage collection before memory is read")
	big := flag.String("big", "10000:10,50000:50", "sizes of the big-service scenario, ENDPOINTS:WRITES_PER_SECOND,...; empty skips it")
	flag.IntVar(&cfg.bigWrites, "big-writes", 100, "EndpointSlice writes timed at each size of the big-service scenario")
	flag.IntVar(&cfg.largestJob, "largest-job", 65000, "pods of the training job of the largest-clusters scenario, behind one headless service; 0 skips it")
	flag.IntVar(&cfg.largestServices, "largest-services", 100000, "headless services of 10 endpoints of the largest-clusters scenario's cluster; 0 skips it")
	flag.IntVar(&cfg.gangPods, "gang-pods", 1000, "pods of the StatefulSet of the controllers scenario; 0 skips it")
	flag.StringVar(&cfg.gangMaxUnavailable, "gang-max-unavailable", "10%", "maxUnavailable of the StatefulSet's rolling update, a count or a percentage")
	flag.DurationVar(&cfg.gangWait, "gang-wait", 5*time.Minute, "how long the peers ask for the pods' names while the StatefulSet starts")
	flag.DurationVar(&cfg.staleWait, "stale-wait", 45*time.Second, "how long after the rollout the peers ask for the pods' new addresses")
	flag.DurationVar(&cfg.unreadyFor, "unready-for", 10*time.Second, "how long the pods of the controllers scenario's unready names case stay unready once they have an address (up to 1.2x, at random); 0 skips the case")
	only := flag.String("only", "", "run only these scenarios, comma-separated, of "+strings.Join(scenarios, ", ")+
		"; the report then goes to -out, by default build/BENCHMARKS-<scenarios>.md, not BENCHMARKS.md")
	flag.Parse()
	var err error
	if cfg.big, err = parseBigSizes(*big); err != nil {
		fail(err)
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarios, s) {
			fail(fmt.Errorf("-only: no scenario %q (%s)", s, strings.Join(scenarios, ", ")))
		}
		cfg.only = append(cfg.only, s)
	}
	cfg.largest = largestWorkloads(cfg.largestJob, cfg.largestServices)
	if *smoke {
		cfg = smokeConfig(cfg)
	}
	if cfg.out == "" {
		root, err := testkit.Root()
		if err != nil {
			fail(err)
		}
		cfg.out = filepath.Join(root, "BENCHMARKS.md")
		if len(cfg.only) > 0 {
			// A part of a run does not replace the whole report.
			cfg.out = filepath.Join(root, "build", "BENCHMARKS-"+strings.Join(cfg.only, "+")+".md")
			if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
				fail(err)
			}
		}
	}
	cfg.chart = cfg.out[:len(cfg.out)-len(filepath.Ext(cfg.out))] + ".svg"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Minute)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fail(err)
	}
}

// smokeConfig is cfg at tiny sizes and lengths, for tests: it shows that
// every measurement runs, and its figures mean nothing.
func smokeConfig(cfg config) config {
	cfg.services, cfg.endpoints, cfg.duration, cfg.rounds, cfg.writes = 20, 10, time.Second, 1, 5
	cfg.largest = largestWorkloads(300, 30)
	cfg.mixServices, cfg.mixEndpoints, cfg.headlessEvery, cfg.reps, cfg.outage, cfg.settle = 40, 10, 10, 1, time.Second, time.Second
	cfg.big, cfg.bigWrites = []bigSize{{300, 10}, {1000, 50}}, 5
	cfg.gangPods, cfg.gangMaxUnavailable, cfg.gangWait, cfg.staleWait, cfg.unreadyFor = 10, "50%", 2*time.Minute, 10*time.Second, 3*time.Second
	return cfg
}

// largestWorkloads are the workloads of the largest-clusters scenario: a
// job of job pods behind one service, and a cluster of services services
// of 10 endpoints; 0 leaves either out.
func largestWorkloads(job, services int) []largeWorkload {
	var ws []largeWorkload
	if job > 0 {
		ws = append(ws, largeWorkload{services: 1, endpoints: job, gang: true})
	}
	if services > 0 {
		ws = append(ws, largeWorkload{services: services, endpoints: 10})
	}
	return ws
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
