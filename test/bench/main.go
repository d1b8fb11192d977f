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
	flag.Parse()
	if *smoke {
		cfg.services, cfg.endpoints, cfg.large, cfg.duration, cfg.rounds, cfg.writes = 20, 10, 0, time.Second, 1, 5
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
