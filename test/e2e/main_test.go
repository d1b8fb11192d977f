// Package e2e tests the plugin end to end: a real kube-apiserver and etcd on
// loopback, the CoreDNS binary built with the plugin, queries over UDP and TCP.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	"sigs.k8s.io/mcs-api/config/crd"
)

// env is the control plane and the CoreDNS server every test of the package
// shares. Tests use namespaces of their own.
type env struct {
	cluster *cluster.Cluster
	server  *testkit.Server
	// The listeners of the drop-in, deploy/Corefile as it is but for the
	// options beyond the kubernetes plugin (negative_ttl, stable_ptr).
	listeners
	// full are three listeners with every option the two plugins share
	// that changes answers turned on: zonal, multicluster.
	full listeners
	// pprof is the address of the pprof plugin.
	pprof string
}

// listeners are three listeners of one server that differ only in their
// DNS plugins: headless in front of kubernetes, kubernetes alone, headless
// alone (each host:port, UDP and TCP).
type listeners struct {
	both, kubernetes, headless string
}

var shared *env

func TestMain(m *testing.M) {
	if err := testkit.Supported(); err != nil {
		fmt.Println("e2e: skipped:", err)
		os.Exit(0)
	}
	e, err := start(cluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	e.stop()
	os.Exit(code)
}

// start starts a control plane with opts and a CoreDNS server with the
// listeners of env in front of it.
func start(opts cluster.Options) (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := testkit.Binary()
	if err != nil {
		return nil, err
	}
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	// Both plugins watch ServiceImports with multicluster: without their
	// definition the kubernetes plugin would never sync.
	if err := c.InstallCRDs(ctx, crd.ServiceImportCRD, crd.ServiceExportCRD); err != nil {
		c.Stop()
		return nil, err
	}
	ports, err := testkit.FreePorts(11)
	if err != nil {
		c.Stop()
		return nil, err
	}
	cf := corefileConfig{Kubeconfig: c.Kubeconfig, Stub: ports[0], Prometheus: ports[1], Health: ports[2], Ready: ports[3], Pprof: ports[4]}
	for i, l := range []*listener{
		{Name: "both", Headless: true, Kubernetes: true}, {Name: "kubernetes", Kubernetes: true}, {Name: "headless", Headless: true},
		{Name: "full-both", Headless: true, Kubernetes: true, Full: true}, {Name: "full-kubernetes", Kubernetes: true, Full: true},
		{Name: "full-headless", Headless: true, Full: true},
	} {
		l.Port = ports[5+i]
		cf.Listeners = append(cf.Listeners, l)
	}
	corefile, err := cf.String()
	if err != nil {
		c.Stop()
		return nil, err
	}
	addr := func(i int) string { return testkit.Addr(cf.Listeners[i].Port) }
	e := &env{
		cluster:   c,
		listeners: listeners{both: addr(0), kubernetes: addr(1), headless: addr(2)},
		full:      listeners{both: addr(3), kubernetes: addr(4), headless: addr(5)},
		pprof:     testkit.Addr(cf.Pprof),
	}
	if e.server, err = testkit.Start(ctx, bin, corefile, time.Minute, addr(0), addr(1), addr(2), addr(3), addr(4), addr(5)); err != nil {
		c.Stop()
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	e.server.Stop()
	e.cluster.Stop()
}

// corefileConfig is what the shared server's Corefile is made of.
type corefileConfig struct {
	Kubeconfig string
	// Ports on 127.0.0.1: the upstream that forward goes to, prometheus,
	// health, ready and pprof.
	Stub, Prometheus, Health, Ready, Pprof int
	Listeners                              []*listener
}

// listener is one listener of the shared server.
type listener struct {
	Name                 string
	Port                 int
	Headless, Kubernetes bool
	// Full adds the zone clusterset.local and the options zonal and
	// multicluster.
	Full bool
}

// corefileTemplate is deploy/Corefile, on loopback, for each listener, with
// what only reaches the network or changes answers by design replaced or
// left out:
//   - forward goes to a stub on loopback that answers NXDOMAIN, not to
//     /etc/resolv.conf;
//   - cache is left out: it counts TTLs down and answers a repeated query
//     from memory, so the same question asked of two listeners a second
//     apart would differ;
//   - loadbalance is left out: it shuffles the address records, so the
//     records a truncated answer keeps would be a random subset;
//   - health and ready listen once, on the drop-in listener, and so does
//     pprof, for the live heap (TestRandomChanges).
//
// Beside each listener, a server block for example.org on the same port
// answers the names that FQDN endpoints point to: both plugins look them up
// through the server itself.
const corefileTemplate = `.:{{.Stub}} {
    bind 127.0.0.1
    template ANY ANY {
        rcode NXDOMAIN
    }
}
{{range .Listeners}}
.:{{.Port}} {
    bind 127.0.0.1
    errors
{{- if eq .Name "both"}}
    health 127.0.0.1:{{$.Health}} {
        lameduck 5s
    }
    ready 127.0.0.1:{{$.Ready}}
    pprof 127.0.0.1:{{$.Pprof}}
{{- end}}
{{- if .Headless}}
    headless cluster.local{{if .Full}} clusterset.local 10.in-addr.arpa{{end}} in-addr.arpa ip6.arpa {
        kubeconfig {{$.Kubeconfig}}
        startup_timeout 10s
        ttl 30
{{- if .Full}}
        zonal
        multicluster clusterset.local
{{- end}}
{{- if .Kubernetes}}
        fallthrough
{{- end}}
    }
{{- end}}
{{- if .Kubernetes}}
    kubernetes cluster.local{{if .Full}} clusterset.local 10.in-addr.arpa{{end}} in-addr.arpa ip6.arpa {
        kubeconfig {{$.Kubeconfig}}
        startup_timeout 10s
        pods insecure
{{- if .Full}}
        zonal
        multicluster clusterset.local
{{- end}}
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
{{- end}}
    prometheus 127.0.0.1:{{$.Prometheus}}
    forward . 127.0.0.1:{{$.Stub}} {
        max_concurrent 1000
    }
    loop
    reload
}
example.org:{{.Port}} {
    bind 127.0.0.1
    hosts {
        192.0.2.80 db.example.org
        2001:db8::80 db.example.org
        192.0.2.81 cache.example.org
    }
}
{{end}}`

// String returns the Corefile.
func (cf corefileConfig) String() (string, error) {
	var b bytes.Buffer
	err := template.Must(template.New("Corefile").Parse(corefileTemplate)).Execute(&b, cf)
	return b.String(), err
}

// records parses zone file lines.
func records(t *testing.T, lines ...string) []dns.RR {
	t.Helper()
	rrs := make([]dns.RR, len(lines))
	for i, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		rrs[i] = rr
	}
	return rrs
}

// sameRecords fails the test unless got holds the records of the zone file
// lines want, in any order.
func sameRecords(t *testing.T, what string, got []dns.RR, want ...string) {
	t.Helper()
	if g, w := testkit.Records(got), testkit.Records(records(t, want...)); !slices.Equal(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
}
