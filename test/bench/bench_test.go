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
	cfg := smokeConfig(config{out: out, chart: strings.TrimSuffix(out, ".md") + ".svg"})
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
	// 9 of the all-headless workload, 9 of the production shape.
	rows := regexp.MustCompile(`(?m)^\| [^|]+\| [^|]+\| [^|]*[0-9][^|]*\| [0-9.]+x \| (yes|\*\*no\*\*) \|$`).FindAllString(string(md), -1)
	if len(rows) != 18 {
		t.Errorf("the report has %d target rows with figures, want 18:\n%s", len(rows), md)
	}
	svg, err := os.ReadFile(cfg.chart)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<rect") < 18 {
		t.Errorf("the chart is not an SVG with a bar a target:\n%s", svg)
	}
}
