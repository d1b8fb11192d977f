// Command demo starts a local control plane with controllers and three fake
// nodes, creates the seed document's consul-server as its user made it (a
// headless Service and a StatefulSet of 3, whose pods kwok runs and whose
// EndpointSlice the EndpointSlice controller writes), starts a CoreDNS built
// with the plugin, shows the pods, the slice and the answers the seed
// document shows, says how to add workloads and query them, and serves until
// Ctrl-C, which stops it cleanly with exit status 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
)

// examples is the file of objects the hints tell the user to apply,
// relative to the repository's root; training is the other workload they
// mention.
const (
	examples = "examples/statefulset.yaml"
	training = "examples/training.yaml"
)

func main() {
	once := flag.Bool("once", false, "print the answers and exit instead of serving until interrupted")
	flag.Parse()
	release := foreground()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, *once)
	stop()
	release()
	switch {
	case ctx.Err() != nil:
		// Ctrl-C, also while starting: what was started is stopped.
		fmt.Println("Stopped.")
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run does the demo, writing what the user reads to out.
func run(ctx context.Context, out io.Writer, once bool) error {
	d, err := start(ctx, out)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.showSeed(out); err != nil {
		return err
	}
	if once {
		return nil
	}
	d.hints(out)
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping CoreDNS, kwok, kube-scheduler, kube-controller-manager, kube-apiserver and etcd.")
	return nil
}

// demo is a running demo: the control plane with the seed objects, and
// CoreDNS on Corefile.example.
type demo struct {
	root    string // of the repository
	cluster *cluster.Cluster
	server  *testkit.Server
	port    int    // of CoreDNS, UDP and TCP
	kubectl string // path
}

// start starts the demo, building what is missing, which only `go run` or
// `go test` without `make demo` first leave to do.
func start(ctx context.Context, out io.Writer) (*demo, error) {
	root, err := testkit.Root()
	if err != nil {
		return nil, err
	}
	bin, err := testkit.Binary()
	if err != nil {
		return nil, err
	}
	kubectl, err := cluster.Kubectl()
	if err != nil {
		return nil, err
	}
	if _, _, _, err := cluster.ControllerBinaries(); err != nil {
		return nil, err
	}
	begin := time.Now()
	fmt.Fprintln(out, "Starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with 3 fake nodes on 127.0.0.1 ...")
	c, err := cluster.Start(ctx, cluster.Options{Controllers: true})
	if err != nil {
		return nil, err
	}
	d := &demo{root: root, cluster: c, kubectl: kubectl}
	if err := testkit.ConsulServer("default", 3).Create(ctx, c.Client); err != nil {
		d.stop()
		return nil, err
	}
	fmt.Fprintln(out, "Created the seed's consul-server: Service default/consul-server (clusterIP: None, 8 ports, publishNotReadyAddresses)\n"+
		"and StatefulSet default/consul-server (3 replicas, Parallel), as the consul Helm chart makes them.")
	if _, err := testkit.WaitForEndpoints(ctx, c.Client, "default", "consul-server", 3, 2*time.Minute); err != nil {
		d.stop()
		return nil, err
	}
	fmt.Fprintln(out, "The StatefulSet controller made the pods, kube-scheduler placed them, kwok runs them and the EndpointSlice controller wrote their slice.")
	if d.server, d.port, err = startCoreDNS(ctx, root, bin, c.Kubeconfig); err != nil {
		d.stop()
		return nil, err
	}
	fmt.Fprintf(out, "CoreDNS with Corefile.example answers on %s, %v after the start.\n\n", testkit.Addr(d.port), time.Since(begin).Round(100*time.Millisecond))
	return d, nil
}

// stop stops CoreDNS and the control plane.
func (d *demo) stop() {
	if d.server != nil {
		d.server.Stop()
	}
	d.cluster.Stop()
}

// showSeed prints the pods and the slice of the seed, as kubectl shows them,
// and the answers of the seed document, as dig would.
func (d *demo) showSeed(out io.Writer) error {
	for _, args := range [][]string{
		{"get", "pods", "-o", "wide"},
		{"get", "endpointslices", "-l", "kubernetes.io/service-name=consul-server", "-o", "wide"},
		{"get", "endpointslices", "-l", "kubernetes.io/service-name=consul-server", "-o", endpointColumns},
	} {
		if err := d.kubectlShow(out, args...); err != nil {
			return err
		}
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"consul-server.default.svc.cluster.local.", dns.TypeA},
		{"consul-server.default.svc.cluster.local.", dns.TypeSRV},
		{"consul-server-0.consul-server.default.svc.cluster.local.", dns.TypeA},
	} {
		if err := d.show(out, q.name, q.qtype); err != nil {
			return err
		}
	}
	return nil
}

// show asks CoreDNS for name and qtype over UDP with a 4096-byte EDNS
// buffer and prints the answer under the dig command that asks the same.
func (d *demo) show(out io.Writer, name string, qtype uint16) error {
	begin := time.Now()
	r, err := testkit.Exchange("udp", testkit.Addr(d.port), testkit.NewQuery(name, qtype))
	if err != nil {
		return err
	}
	rtt := time.Since(begin)
	fmt.Fprintf(out, "$ %s\n%s;; Query time: %d usec\n;; MSG SIZE  rcvd: %d\n\n", d.dig(name, dns.TypeToString[qtype]), r, rtt.Microseconds(), size(r))
	return nil
}

// endpointColumns shows the endpoints of slices, which `get -o wide` does
// not: the hostname, readiness, node and zone of each.
const endpointColumns = "custom-columns=SLICE:.metadata.name,HOSTNAME:.endpoints[*].hostname,ADDRESS:.endpoints[*].addresses[0]," +
	"READY:.endpoints[*].conditions.ready,NODE:.endpoints[*].nodeName,ZONE:.endpoints[*].zone"

// kubectlShow runs kubectl with args against the demo's API server and
// prints its output under the command.
func (d *demo) kubectlShow(out io.Writer, args ...string) error {
	cmd := exec.Command(d.kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.cluster.Kubeconfig)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	fmt.Fprintf(out, "$ kubectl %s\n%s\n", strings.Join(args, " "), b)
	return nil
}

// size returns the size of r on the wire, with its names compressed as
// CoreDNS compresses them.
func size(r *dns.Msg) int {
	r.Compress = true
	return r.Len()
}

// digBuffer is the EDNS buffer size that dig offers by default: an answer
// larger than it comes truncated, and dig retries over TCP.
const digBuffer = 1232

// dig returns the dig command that asks CoreDNS for name and qtype as show
// does.
func (d *demo) dig(name, qtype string) string {
	return fmt.Sprintf("dig @127.0.0.1 -p %d +bufsize=4096 %s %s", d.port, name, qtype)
}

// hints prints how to query the demo, add objects and run Corefile.example
// by hand.
func (d *demo) hints(out io.Writer) {
	srv, _ := testkit.Exchange("udp", testkit.Addr(d.port), testkit.NewQuery("consul-server.default.svc.cluster.local.", dns.TypeSRV))
	fmt.Fprintf(out, "Ask it yourself:\n  %s\n", d.dig("consul-server.default.svc.cluster.local", "SRV"))
	if srv != nil && size(srv) > digBuffer {
		fmt.Fprintf(out, "  (The SRV answer is %d bytes. Plain dig offers a %d-byte buffer, so it gets the answer truncated,\n"+
			"  says \";; Truncated, retrying in TCP mode.\" and asks again over TCP; +bufsize=4096 or +tcp ask for all of it at once.)\n", size(srv), digBuffer)
	}
	apply := d.apply(d.examples())
	fmt.Fprintf(out, "\nAdd workloads of your own: %s holds a headless Service and a StatefulSet of two pods;\n"+
		"the controllers and kwok run them on the fake nodes as above. Apply it with the kubectl that `make tools` built:\n  %s\n  %s\n",
		apply.args[len(apply.args)-1], apply, d.dig("web-0.web.default.svc.cluster.local", "A"))
	fmt.Fprintf(out, "%s is shaped like a training job: 8 workers started at once (Parallel) that find each other by name:\n  %s\n  %s\n",
		d.rel(filepath.Join(d.root, filepath.FromSlash(training))), d.apply(d.rel(filepath.Join(d.root, filepath.FromSlash(training)))),
		d.dig("worker-7.workers.default.svc.cluster.local", "A"))
	fmt.Fprintf(out, "Or put that kubectl on PATH for this API server, in another shell:\n  export KUBECONFIG=%s PATH=%s:\"$PATH\"\n",
		quote(d.cluster.Kubeconfig), quote(filepath.Dir(d.kubectl)))
	fmt.Fprintf(out, "\nRun Corefile.example by hand (it needs DNS_PORT, READY_PORT and KUBECONFIG), here against this API server on another port:\n"+
		"  DNS_PORT=1054 READY_PORT=8182 KUBECONFIG=%s %s -conf %s\n",
		quote(d.cluster.Kubeconfig), quote(d.command(filepath.Join(d.root, "coredns"))), quote(d.rel(filepath.Join(d.root, "Corefile.example"))))
	fmt.Fprintln(out, "\nPress Ctrl-C to stop CoreDNS and the control plane.")
}

// command is a command line with environment variables, as a shell runs it.
type command struct {
	env  []string // NAME=value
	args []string
}

func (c command) String() string {
	var words []string
	for _, e := range c.env {
		name, value, _ := strings.Cut(e, "=")
		words = append(words, name+"="+quote(value))
	}
	for _, a := range c.args {
		words = append(words, quote(a))
	}
	return strings.Join(words, " ")
}

// apply returns the kubectl command that applies file to the demo's API
// server.
func (d *demo) apply(file string) command {
	return command{env: []string{"KUBECONFIG=" + d.cluster.Kubeconfig}, args: []string{d.kubectl, "apply", "-f", file}}
}

// examples returns the path of the examples file as the user can type it.
func (d *demo) examples() string {
	return d.rel(filepath.Join(d.root, filepath.FromSlash(examples)))
}

// rel returns path relative to the working directory when it is below it,
// else path.
func (d *demo) rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// command returns the path of an executable as the user can type it: a
// path in the working directory starts with ./, or the shell looks in PATH.
func (d *demo) command(path string) string {
	rel := d.rel(path)
	if !filepath.IsAbs(rel) && !strings.Contains(rel, string(filepath.Separator)) {
		rel = "." + string(filepath.Separator) + rel
	}
	return rel
}

// quote quotes s for a POSIX shell when it needs it.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startCoreDNS runs bin with Corefile.example on port 1053, or on a free port
// when 1053 is taken.
func startCoreDNS(ctx context.Context, root, bin, kubeconfig string) (*testkit.Server, int, error) {
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
	if err := waitReady(ctx, readyPort); err != nil {
		srv.Stop()
		return nil, 0, err
	}
	return srv, port, nil
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
