package main

import (
	"strings"
	"testing"
)

// TestQueryPathTargets reads the in-process targets from Go benchmark output:
// met or not by their figures, and unmet, saying so, when a benchmark's line
// is missing.
func TestQueryPathTargets(t *testing.T) {
	const (
		seedA   = "BenchmarkServeDNS/seed-A/headless-2    1444837   819.8 ns/op   456 B/op   3 allocs/op\n"
		podA    = "BenchmarkServeDNS/pod-A/headless-2     1494709   862.4 ns/op   456 B/op   4 allocs/op\n"
		kubeA   = "BenchmarkServeDNS/pod-A/kubernetes-2    434521    2759 ns/op  1752 B/op  34 allocs/op\n"
		memory  = "BenchmarkIndexMemory-2   4   294455908 ns/op   291.2 B/endpoint   130791586 B/op   2155368 allocs/op\n"
		missing = "not in the Go benchmark output"
	)
	tests := []struct {
		goBench  string
		measured []string // of seed A, pod A and the index memory
		met      []bool
	}{
		{seedA + kubeA + podA + memory, []string{"3 vs 3", "4 vs 3", "291 B vs 292 B"}, []bool{true, false, true}},
		{kubeA + memory, []string{missing, missing, "291 B vs 292 B"}, []bool{false, false, true}},
		{seedA, []string{"3 vs 3", missing, missing}, []bool{true, false, false}},
		{seedA + strings.Replace(memory, "291.2", "293.0", 1), []string{"3 vs 3", missing, "293 B vs 292 B"}, []bool{true, false, false}},
	}
	for i, tc := range tests {
		ts := (&report{goBench: tc.goBench}).queryPathTargets()
		if len(ts) != len(tc.measured) {
			t.Fatalf("test %d: %d targets, want %d", i, len(ts), len(tc.measured))
		}
		for j, tg := range ts {
			if !strings.HasPrefix(tg.measured, tc.measured[j]) || tg.met != tc.met[j] {
				t.Errorf("test %d: %s: measured %q, met %t; want %q, met %t", i, tg.name, tg.measured, tg.met, tc.measured[j], tc.met[j])
			}
		}
	}
}
