package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
)

// TestDemo runs the demo the way `make demo` does, printing instead of
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
		"+bufsize=4096 consul-server.default.svc.cluster.local. SRV\n",
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

// TestExamples runs the kubectl command that the demo's hints print, which
// applies examples/statefulset.yaml, and checks that the example's names
// then resolve.
func TestExamples(t *testing.T) {
	testkit.Require(t, testkit.Supported())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	d, err := start(ctx, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	defer d.stop()
	d.hints(&out)
	apply := d.apply(d.examples())
	hints := out.String()
	for _, want := range []string{apply.String(), "KUBECONFIG=" + d.cluster.Kubeconfig, "PATH=" + quote(filepath.Dir(d.kubectl)), "Ctrl-C"} {
		if !strings.Contains(hints, want) {
			t.Errorf("the hints do not show %q:\n%s", want, hints)
		}
	}
	if !filepath.IsAbs(d.kubectl) || !strings.HasSuffix(apply.args[len(apply.args)-1], "examples/statefulset.yaml") {
		t.Errorf("the command names kubectl or the file by a relative path: %s", apply)
	}

	cmd := exec.CommandContext(ctx, apply.args[0], apply.args[1:]...)
	cmd.Env = append(os.Environ(), apply.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", apply, err, b)
	}
	addr := testkit.Addr(d.port)
	for _, q := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"web.default.svc.cluster.local.", dns.TypeA, []string{
			"web.default.svc.cluster.local.\t5\tIN\tA\t10.244.1.20",
			"web.default.svc.cluster.local.\t5\tIN\tA\t10.244.2.21",
		}},
		{"web-0.web.default.svc.cluster.local.", dns.TypeA, []string{
			"web-0.web.default.svc.cluster.local.\t5\tIN\tA\t10.244.1.20",
		}},
		{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, []string{
			"_http._tcp.web.default.svc.cluster.local.\t5\tIN\tSRV\t0 50 80 web-0.web.default.svc.cluster.local.",
			"_http._tcp.web.default.svc.cluster.local.\t5\tIN\tSRV\t0 50 80 web-1.web.default.svc.cluster.local.",
		}},
	} {
		testkit.Eventually(t, 30*time.Second, q.name+" "+dns.TypeToString[q.qtype], func() (bool, string) {
			r, err := testkit.Exchange("udp", addr, testkit.NewQuery(q.name, q.qtype))
			if err != nil {
				return false, err.Error()
			}
			got := testkit.Records(r.Answer)
			return slices.Equal(got, q.want), strings.Join(got, "\n")
		})
	}
}
