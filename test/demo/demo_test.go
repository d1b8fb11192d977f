package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDemo starts the demo as `make demo` does (TestMakeDemoCtrlC runs
// that, and stops it), and checks that it shows the pods that the
// controllers made, on the fake nodes, their slice, and the seed document's
// answers with the pods' addresses; then it runs the kubectl command that
// the hints print, which applies examples/statefulset.yaml, then applies
// examples/training.yaml, and checks that the examples' names resolve to
// their pods' addresses.
func TestDemo(t *testing.T) {
	testkit.Require(t, testkit.Supported())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out strings.Builder
	d, err := start(ctx, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	defer d.stop()
	if err := d.showSeed(&out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	// kubectl get pods -o wide: NAME READY STATUS RESTARTS AGE IP NODE ...
	ips := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && strings.HasPrefix(f[0], "consul-server-") && f[1] == "1/1" && f[2] == "Running" && strings.HasPrefix(f[6], "node-") {
			ips[f[0]] = f[5]
		}
	}
	if len(ips) != 3 {
		t.Fatalf("the demo does not show 3 consul-server pods Running on the fake nodes (%v):\n%s", ips, out.String())
	}
	// The endpoints of the slice, in the slice's order, one column each.
	shown := false
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && strings.HasPrefix(f[0], "consul-server-") && f[3] == "true,true,true" {
			hosts := strings.Split(f[1], ",")
			slices.Sort(hosts)
			shown = slices.Equal(hosts, []string{"consul-server-0", "consul-server-1", "consul-server-2"}) && strings.Count(f[5], "us-east-1") == 3
		}
	}
	if !shown {
		t.Errorf("the demo does not show the slice's 3 ready endpoints with their hostnames and zones:\n%s", out.String())
	}
	for _, want := range []string{
		"$ kubectl get pods -o wide\n",
		"$ kubectl get endpointslices -l kubernetes.io/service-name=consul-server -o wide\n",
		"+bufsize=4096 consul-server.default.svc.cluster.local. SRV\n",
		"consul-server.default.svc.cluster.local.\t5\tIN\tA\t" + ips["consul-server-1"] + "\n",
		"consul-server.default.svc.cluster.local.\t5\tIN\tSRV\t0 4 8301 consul-server-2.consul-server.default.svc.cluster.local.",
		"consul-server-0.consul-server.default.svc.cluster.local.\t5\tIN\tA\t" + ips["consul-server-0"] + "\n",
		"status: NOERROR",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo does not show %q:\n%s", want, out.String())
		}
	}

	out.Reset()
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
	training := d.apply(d.rel(filepath.Join(d.root, filepath.FromSlash(training))))
	cmd = exec.CommandContext(ctx, training.args[0], training.args[1:]...)
	cmd.Env = append(os.Environ(), training.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", training, err, b)
	}
	client := d.cluster.Client
	for _, w := range []struct {
		service string
		n       int
	}{{"web", 2}, {"workers", 8}} {
		if _, err := testkit.WaitForEndpoints(ctx, client, "default", w.service, w.n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ip := func(pod string) string {
		p, err := client.CoreV1().Pods("default").Get(ctx, pod, meta.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Status.PodIP
	}
	web0, web1, worker7 := ip("web-0"), ip("web-1"), ip("worker-7")
	var srv []string
	for i := range 8 {
		srv = append(srv, fmt.Sprintf("_rendezvous._tcp.workers.default.svc.cluster.local.\t5\tIN\tSRV\t0 12 29400 worker-%d.workers.default.svc.cluster.local.", i))
	}
	addr := testkit.Addr(d.port)
	for _, q := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"web.default.svc.cluster.local.", dns.TypeA, []string{
			"web.default.svc.cluster.local.\t5\tIN\tA\t" + web0,
			"web.default.svc.cluster.local.\t5\tIN\tA\t" + web1,
		}},
		{"web-0.web.default.svc.cluster.local.", dns.TypeA, []string{
			"web-0.web.default.svc.cluster.local.\t5\tIN\tA\t" + web0,
		}},
		{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, []string{
			"_http._tcp.web.default.svc.cluster.local.\t5\tIN\tSRV\t0 50 80 web-0.web.default.svc.cluster.local.",
			"_http._tcp.web.default.svc.cluster.local.\t5\tIN\tSRV\t0 50 80 web-1.web.default.svc.cluster.local.",
		}},
		{"worker-7.workers.default.svc.cluster.local.", dns.TypeA, []string{
			"worker-7.workers.default.svc.cluster.local.\t5\tIN\tA\t" + worker7,
		}},
		{"_rendezvous._tcp.workers.default.svc.cluster.local.", dns.TypeSRV, srv},
	} {
		slices.Sort(q.want)
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
