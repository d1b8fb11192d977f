package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// TestSmoke runs `make bench` on a tiny workload and checks that the report
// and the chart are written and hold every target with a figure. It times
// nothing and asserts no speed.
func TestSmoke(t *testing.T) {
	// It reads the memory of the servers from /proc.
	_, err := testkit.RSS(os.Getpid())
	testkit.Require(t, err)
	out := filepath.Join(t.TempDir(), "BENCH.md")
	gobench := filepath.Join(t.TempDir(), "gobench.txt")
	testkit.Require(t, os.WriteFile(gobench, []byte(goBenchSample), 0o644))
	cfg := smokeConfig(config{out: out, chart: strings.TrimSuffix(out, ".md") + ".svg", goBench: gobench})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log strings.Builder
	if err := run(ctx, cfg, &log); err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// 13 of the all-headless workload (2 of QPS a workload, against the
	// cache-hit ceiling and against kubernetes, seed A against whoami, 2 of
	// memory, the live heap, start to serving and 2 of programming latency),
	// 8 of the big services (4 a size), 7 in process, 13 of the production
	// shape (2 for each of its 3 shapes), 8 of the controllers (2 a shape,
	// and 2 of unready pod names), 20 of the largest clusters (9 a workload,
	// and 2 of the job's gang start).
	rows := regexp.MustCompile(`(?m)^\| [^|]+\| [^|]+\| [^|]*[0-9][^|]*\| [0-9.]+x \| (yes|\*\*no\*\*) \|$`).FindAllString(string(md), -1)
	if len(rows) != 69 {
		t.Errorf("the report has %d target rows with figures, want 69:\n%s", len(rows), md)
	}
	// QPS against the cache listener, warmed, and kubernetes; memory before
	// a forced collection beside that after one.
	for _, row := range []struct {
		re string
		n  int
	}{
		{`\| QPS, (seed A|seed SRV|mix) against the cache-hit ceiling \| >= 0\.95x cache \| [0-9]+ vs [1-9][0-9]* qps \|`, 3},
		{`\| QPS, (seed A|seed SRV|mix) against kubernetes \| >= [0-9.]+x kubernetes \| [0-9]+ vs [1-9][0-9]* qps \|`, 3},
		{`\| memory over whoami without a forced collection, 20 services x 10 endpoints \| <= 0\.54x kubernetes \|`, 1},
		{`\| (seed A \| [1-9][0-9]* \| [1-9][0-9]* \| [1-9][0-9]* \| [1-9][0-9]*|(seed SRV|mix) \| [1-9][0-9]* \| [1-9][0-9]* \| [1-9][0-9]* \| -) \|\n`, 3},
		{`\| 20 services x 10 endpoints \| (whoami|kubernetes|headless) \| [1-9][0-9.]* MB \| -?[0-9.]+ MB \| [1-9][0-9.]* MB \| -?[0-9.]+ MB \| [0-9.]+ MB \| -?[0-9.]+ MB \| [0-9.]+[nµm]?s \|\n`, 3},
	} {
		if n := len(regexp.MustCompile(`(?m)^`+row.re).FindAllString(string(md), -1)); n != row.n {
			t.Errorf("the report has %d rows of\n%s\nwant %d:\n%s", n, row.re, row.n, md)
		}
	}
	if m := regexp.MustCompile(`, ([0-9]+) of ([0-9]+) were answered from the cache`).FindStringSubmatch(string(md)); m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("the report does not say that the cache listener answered every question asked again after warming:\n%s", md)
	}
	if strings.Contains(string(md), ">= 3x kubernetes") {
		t.Errorf("the report still wants 3x kubernetes:\n%s", md)
	}
	// A row of figures for each shape the production shape runs.
	for _, sh := range shapes {
		if !regexp.MustCompile(`(?m)^\| ` + string(sh) + ` \| [0-9]+ \| [0-9]+ \| [0-9.]+x \| [0-9.]+ MB \|`).Match(md) {
			t.Errorf("the report has no figures for the shape %s:\n%s", sh, md)
		}
	}
	// The controllers' section, with a row of figures for each shape and
	// setup of the gang start (its Ready-to-answer, Ready-to-slice and
	// slice-to-answer times) and of the rolling restart (answers received).
	if !strings.Contains(string(md), "\n## Controllers\n") {
		t.Errorf("the report has no section Controllers:\n%s", md)
	}
	duration := `[0-9.]+[nµm]?s`
	for _, sh := range shapes {
		for _, setup := range []string{stock, dropIn} {
			row := `(?m)^\| ` + regexp.QuoteMeta(string(sh)) + ` \| ` + setup + ` \| `
			if !regexp.MustCompile(row + strings.Repeat(duration+` \| `, 7) + `[0-9]+ \| [0-9]+ \| [1-9][0-9]* \|`).Match(md) {
				t.Errorf("the report has no gang start figures for %s in the shape %s:\n%s", setup, sh, md)
			}
			if !regexp.MustCompile(row + duration + ` \| [1-9][0-9]* \| [1-9][0-9]* \| [0-9]+ \| [0-9]+ \|`).Match(md) {
				t.Errorf("the report has no rolling restart figures for %s in the shape %s:\n%s", setup, sh, md)
			}
		}
	}
	// The unready names case: its two targets, and a row of figures for
	// each of its rows, every pod name answered, the Service's name asked.
	for _, re := range []string{
		`\| unready pod names, kubeadm: p99 address in a slice to answer \| <= 1\.2x or 50ms over stock \| ` + duration + ` vs ` + duration + ` \|`,
		`\| unready pod names, kubeadm: Service name answers holding an unready pod \| 0 \| [0-9]+ vs [0-9]+ of [1-9][0-9]* vs [1-9][0-9]* answers \|`,
	} {
		if !regexp.MustCompile(`(?m)^` + re).Match(md) {
			t.Errorf("the report has no target row\n%s\n%s", re, md)
		}
	}
	for _, row := range unreadyCases {
		re := `(?m)^\| ` + regexp.QuoteMeta(row.name) + ` \| [^|]+ \| [0-9]+ of 10 \| ` + strings.Repeat(duration+` \| `, 3) + `0 \| ` + duration + ` \| [0-9]+ \| [1-9][0-9]* \| [1-9][0-9]* \|`
		if !regexp.MustCompile(re).Match(md) {
			t.Errorf("the report has no unready names figures for %s:\n%s", row.name, md)
		}
	}
	// The largest clusters' section: a row of figures for each workload and
	// process, and for the plugins a relist that listed again.
	mbRe := `-?[0-9.]+ MB`
	for _, w := range cfg.largest {
		for _, kind := range []string{kubernetesKind, headless} {
			gang := `- \| -`
			if w.gang {
				gang = duration + ` \| ` + duration
			}
			re := `(?m)^\| ` + regexp.QuoteMeta(w.String()) + ` \| ` + kind + ` \| [^|]+ \| ` + gang + ` \| ` + duration + ` \| ` + strings.Repeat(mbRe+` \| `, 4) +
				`[1-9][0-9]* qps \| ` + duration + ` \| ` + duration + ` \| 0 \| ` + duration + ` \| 0 \| [1-9][0-9.]* MB \| ([2-9]|[1-9][0-9]+) \| ` + duration + ` \|$`
			if !regexp.MustCompile(re).Match(md) {
				t.Errorf("the report has no largest-clusters figures for %s, %s:\n%s", w, kind, md)
			}
		}
	}
	// The in-process rows, read from the Go benchmark output.
	for _, want := range []string{
		"| in process: one slice update, 10000 endpoints (100 slices), time | <= 3x 100 endpoints (1 slice) | 300µs vs 100µs | 3.00x | yes |",
		"| in process: one slice update, 50000 endpoints (500 slices), bytes allocated | <= 10x 100 endpoints (1 slice) | 1000.0 kB vs 80.0 kB | 12.50x | **no** |",
		"| in process: allocations of the seed's A question | <= 3 | 14 vs 3 | 4.67x | **no** |",
		"| in process: allocations of a pod's A question | <= 3 | 3 vs 3 | 1.00x | yes |",
		"| in process: index memory an endpoint | <= 292 B | 270 B vs 292 B | 0.92x | yes |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the report has no row\n%s\n%s", want, md)
		}
	}
	svg, err := os.ReadFile(cfg.chart)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<rect") < 18 {
		t.Errorf("the chart is not an SVG with a bar a target:\n%s", svg)
	}
}

// goBenchSample is Go benchmark output with the lines the in-process targets
// read.
const goBenchSample = `goos: linux
BenchmarkServeDNS/seed-A/headless-2           	  535609	      2185 ns/op	     720 B/op	      14 allocs/op
BenchmarkServeDNS/pod-A/kubernetes-2          	  382506	      2763 ns/op	    1752 B/op	      34 allocs/op
BenchmarkServeDNS/pod-A/headless-2            	 1277214	       943.2 ns/op	     440 B/op	       3 allocs/op
BenchmarkIndexMemory-2                        	       1	 912345678 ns/op	       270.0 B/endpoint	 123456 B/op	    1234 allocs/op
BenchmarkIndexUpdate/endpoints-100-2          	   10000	    100000 ns/op	   81920 B/op	     124 allocs/op
BenchmarkIndexUpdate/endpoints-10000-2        	    4000	    300000 ns/op	  163840 B/op	     200 allocs/op
BenchmarkIndexUpdate/endpoints-50000-2        	    2000	    600000 ns/op	 1024000 B/op	     300 allocs/op
`
