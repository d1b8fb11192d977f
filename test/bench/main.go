// Command bench measures headless against the kubernetes plugin in one run,
// on the same objects and the same CoreDNS binary, and writes BENCHMARKS.md
// with a chart. `make bench` runs it; -smoke runs a tiny workload.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// config is the size and length of a run.
type config struct {
	services, endpoints int           // the mixed workload: services x endpoints
	large               int           // services of a second, larger workload for memory and ready time; 0 skips it
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
}

func main() {
	var cfg config
	smoke := flag.Bool("smoke", false, "a tiny workload, for tests")
	flag.IntVar(&cfg.services, "services", 10000, "headless services in the mixed workload")
	flag.IntVar(&cfg.endpoints, "endpoints", 10, "endpoints per service")
	flag.IntVar(&cfg.large, "large", 0, "services of a larger workload measured for memory and ready time (100000 for 1M endpoints); 0 skips it")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each dnsperf run")
	flag.IntVar(&cfg.rounds, "rounds", 2, "dnsperf runs per workload and listener")
	flag.IntVar(&cfg.writes, "writes", 200, "EndpointSlice writes timed for programming latency")
	flag.StringVar(&cfg.out, "out", "", "report path (default BENCHMARKS.md at the repository root)")
	flag.StringVar(&cfg.goBench, "gobench", "", "a file with Go benchmark output to include in the report")
	flag.IntVar(&cfg.mixServices, "mix-services", 20000, "services of the cluster mix of the production shape; 0 skips it")
	flag.IntVar(&cfg.mixEndpoints, "mix-endpoints", 10, "endpoints per service of the cluster mix")
	flag.IntVar(&cfg.headlessEvery, "mix-headless-every", 10, "one service in this many of the cluster mix is headless")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of the recovery and negative caching timings")
	flag.DurationVar(&cfg.outage, "outage", 5*time.Second, "how long the API server is down before it restarts")
	flag.DurationVar(&cfg.settle, "settle", 5*time.Second, "wait after a garbage collection before memory is read")
	flag.Parse()
	if *smoke {
		cfg = smokeConfig(cfg)
	}
	if cfg.out == "" {
		root, err := testkit.Root()
		if err != nil {
			fail(err)
		}
		cfg.out = filepath.Join(root, "BENCHMARKS.md")
	}
	cfg.chart = cfg.out[:len(cfg.out)-len(filepath.Ext(cfg.out))] + ".svg"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fail(err)
	}
}

// smokeConfig is cfg at tiny sizes and lengths, for tests: it shows that
// every measurement runs, and its figures mean nothing.
func smokeConfig(cfg config) config {
	cfg.services, cfg.endpoints, cfg.large, cfg.duration, cfg.rounds, cfg.writes = 20, 10, 0, time.Second, 1, 5
	cfg.mixServices, cfg.mixEndpoints, cfg.headlessEvery, cfg.reps, cfg.outage, cfg.settle = 40, 10, 10, 1, time.Second, time.Second
	return cfg
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
