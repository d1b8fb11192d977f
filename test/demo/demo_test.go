package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// TestDemo runs `make demo` the way a newcomer does, printing instead of
// serving, and checks that it shows the seed document's answers.
func TestDemo(t *testing.T) {
	testkit.Require(t, testkit.Supported())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, true); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"consul-server.default.svc.cluster.local.\t5\tIN\tA\t10.244.1.10",
		"consul-server.default.svc.cluster.local.\t5\tIN\tSRV\t0 4 8301 consul-server-2.consul-server.default.svc.cluster.local.",
		"consul-server-0.consul-server.default.svc.cluster.local.\t5\tIN\tA\t10.244.1.10",
		"status: NOERROR",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo does not show %q:\n%s", want, out.String())
		}
	}
}
