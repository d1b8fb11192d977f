package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"
)

// The kinds of listener compared: whoami alone, each plugin alone, and the
// cache plugin in front of headless, whose hits are the ceiling of the QPS
// targets.
const (
	whoami         = "whoami"
	kubernetesKind = "kubernetes"
	headless       = "headless"
	cacheKind      = "cache"
)

// cacheCapacity is the success capacity of the cache listener: more than
// every name a workload asks (a query file holds at most 100000 questions),
// so that none is evicted, and a multiple of the cache's 256 shards.
const cacheCapacity = 1 << 20

// cacheDirective is the cache listener's cache: every answer kept an hour
// (MINTTL 3600 outlasts headless's TTL, 5s by default, so that no entry
// expires during the rounds) and no SERVFAIL kept, so that none given
// before headless has synced outlives the wait for it.
var cacheDirective = fmt.Sprintf("    cache 3600 {\n        success %d 3600 3600\n        servfail 0\n    }\n", cacheCapacity)

// run measures the all-headless workload on one local control plane, the
// production shape on another, the big services on a third, the
// controllers scenario on a fourth and the largest clusters on a fifth (those of cfg.only, when it names some),
// and writes the report.
func run(ctx context.Context, cfg config, log io.Writer) error {
	tools := []string{"taskset"}
	if cfg.runs(scenarioHeadless) || cfg.runs(scenarioProduction) || cfg.runs(scenarioBig) || cfg.runs(scenarioLargest) {
		tools = append(tools, "dnsperf")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: apt-get install %s", tool, map[string]string{"dnsperf": "dnsperf", "taskset": "util-linux"}[tool])
		}
	}
	bin, err := testkit.Binary()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	rep := newReport(cfg)
	start := time.Now()
	b := &bench{cfg: cfg, bin: bin, dir: dir, log: log, rep: rep, files: map[string]string{}}
	for _, s := range []struct {
		name string
		run  func(context.Context, *bench) error
	}{{scenarioHeadless, runHeadless}, {scenarioProduction, runProduction}, {scenarioBig, runBigService}, {scenarioController, runControllers}, {scenarioLargest, runLargest}} {
		if cfg.runs(s.name) {
			if err := s.run(ctx, b); err != nil {
				return err
			}
		}
	}
	rep.total = time.Since(start)
	if err := rep.write(); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s and %s in %s\n", cfg.out, cfg.chart, rep.total.Round(time.Second))
	return nil
}

// runHeadless starts a control plane, loads the all-headless workload and
// measures headless against kubernetes on it.
func runHeadless(ctx context.Context, b *bench) error {
	c, err := cluster.Start(ctx, cluster.Options{AlwaysAllow: true})
	if err != nil {
		return err
	}
	defer c.Stop()
	b.cluster, b.kubeconfig = c, c.Kubeconfig
	cfg, rep, log := b.cfg, b.rep, b.log
	start := time.Now()
	fmt.Fprintf(log, "loading the seed and %d services x %d endpoints ...\n", cfg.services, cfg.endpoints)
	if err := load(ctx, c.Client, cfg.services, cfg.endpoints); err != nil {
		return err
	}
	rep.loadTime = time.Since(start)
	if err := b.writeQueries(); err != nil {
		return err
	}
	if err := b.measureProcesses(ctx, rep.sizeLabel(cfg.services, cfg.endpoints)); err != nil {
		return err
	}
	if err := b.measureQPS(ctx); err != nil {
		return err
	}
	if err := b.measureLatency(ctx, c); err != nil {
		return err
	}
	return nil
}

// bench holds what the measurements share.
type bench struct {
	cfg        config
	bin        string
	kubeconfig string           // of the cluster in use
	cluster    *cluster.Cluster // in use
	shipped    string           // deploy/Corefile
	dir        string
	log        io.Writer
	rep        *report
	files      map[string]string // query files by workload
}

// corefileBlock returns a server block for one listener of kind, with the
// pprof plugin on pprofPort unless it is 0. The cache kind's is headless's
// with cacheDirective: CoreDNS orders the plugins by plugin.cfg, where cache
// comes before headless, whatever their order in the block.
func (b *bench) corefileBlock(kind string, port, pprofPort int) string {
	return b.corefileBlockWith(kind, port, pprofPort, b.kubeconfig)
}

// corefileBlockWith is corefileBlock with the plugins reaching the API server
// through kubeconfig.
func (b *bench) corefileBlockWith(kind string, port, pprofPort int, kubeconfig string) string {
	block := testkit.Block{
		Port: port, Pprof: pprofPort,
		Whoami: kind == whoami, Kubernetes: kind == kubernetesKind, Headless: kind == headless || kind == cacheKind,
		Zones: "cluster.local in-addr.arpa", Kubeconfig: kubeconfig, StartupTimeout: "5m",
	}.String()
	if kind == cacheKind {
		block = strings.TrimSuffix(block, "}\n") + cacheDirective + "}\n"
	}
	return block
}

func (b *bench) path(name string) string { return filepath.Join(b.dir, name) }
