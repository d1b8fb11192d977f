// Command demo starts a local control plane with the seed document's
// consul-server objects and a CoreDNS built with the plugin, shows the
// answers the seed document shows, and serves until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
)

func main() {
	once := flag.Bool("once", false, "print the answers and exit instead of serving until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *once); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run does the demo, writing what the user reads to out.
func run(ctx context.Context, out io.Writer, once bool) error {
	fmt.Fprintln(out, "Building what is missing and starting etcd and kube-apiserver on 127.0.0.1 ...")
	bin, err := testkit.Binary()
	if err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		return err
	}
	fmt.Fprintln(out, "Loaded the seed objects: Service default/consul-server (clusterIP: None, 8 ports) and its EndpointSlice (3 pods).")

	srv, port, err := startCoreDNS(ctx, bin, c.Kubeconfig)
	if err != nil {
		return err
	}
	defer srv.Stop()
	addr := testkit.Addr(port)
	fmt.Fprintf(out, "CoreDNS with Corefile.example answers on %s.\n\n", addr)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"consul-server.default.svc.cluster.local.", dns.TypeA},
		{"consul-server.default.svc.cluster.local.", dns.TypeSRV},
		{"consul-server-0.consul-server.default.svc.cluster.local.", dns.TypeA},
	} {
		if err := show(out, addr, port, q.name, q.qtype); err != nil {
			return err
		}
	}
	if once {
		return nil
	}
	fmt.Fprintf(out, "Try it:\n  dig @127.0.0.1 -p %d consul-server.default.svc.cluster.local srv\n", port)
	fmt.Fprintf(out, "Add your own objects (a Service with clusterIP: None and an EndpointSlice labelled kubernetes.io/service-name):\n  kubectl --kubeconfig %s apply -f my-objects.yaml\n", c.Kubeconfig)
	fmt.Fprintln(out, "Press Ctrl-C to stop CoreDNS, kube-apiserver and etcd.")
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping.")
	return nil
}

// startCoreDNS runs bin with Corefile.example on port 1053, or on a free port
// when 1053 is taken.
func startCoreDNS(ctx context.Context, bin, kubeconfig string) (*testkit.Server, int, error) {
	root, err := testkit.Root()
	if err != nil {
		return nil, 0, err
	}
	corefile, err := os.ReadFile(filepath.Join(root, "Corefile.example"))
	if err != nil {
		return nil, 0, err
	}
	port := 1053
	if !testkit.PortFree(port) {
		if port, err = testkit.FreePort(); err != nil {
			return nil, 0, err
		}
	}
	readyPort, err := testkit.FreePort()
	if err != nil {
		return nil, 0, err
	}
	os.Setenv("DNS_PORT", fmt.Sprint(port))
	os.Setenv("READY_PORT", fmt.Sprint(readyPort))
	os.Setenv("KUBECONFIG", kubeconfig)
	srv, err := testkit.Start(ctx, bin, string(corefile), time.Minute, testkit.Addr(port))
	if err != nil {
		return nil, 0, err
	}
	return srv, port, waitReady(ctx, readyPort)
}

func show(out io.Writer, addr string, port int, name string, qtype uint16) error {
	begin := time.Now()
	r, err := testkit.Exchange("udp", addr, testkit.NewQuery(name, qtype))
	if err != nil {
		return err
	}
	rtt := time.Since(begin)
	fmt.Fprintf(out, "$ dig @127.0.0.1 -p %d %s %s\n%s;; Query time: %d usec\n\n", port, name, dns.TypeToString[qtype], r, rtt.Microseconds())
	return nil
}

// waitReady waits until the ready plugin on port says 200, for up to 30s.
func waitReady(ctx context.Context, port int) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := testkit.Get(url); code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("CoreDNS is not ready after 30s (%s)", url)
}
