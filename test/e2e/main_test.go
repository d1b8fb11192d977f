// Package e2e tests the plugin end to end: a real kube-apiserver and etcd on
// loopback, the CoreDNS binary built with the plugin, queries over UDP and TCP.
package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/headlessdns/headless/test/cluster"
	"github.com/headlessdns/headless/test/coredns"

	"github.com/miekg/dns"
)

// env is the control plane and the CoreDNS server every test of the package
// shares. Tests use namespaces of their own.
type env struct {
	cluster *cluster.Cluster
	server  *coredns.Server
	// Three listeners of one server: headless in front of kubernetes,
	// kubernetes alone, headless alone.
	both, kubernetes, headless string
}

var shared *env

func TestMain(m *testing.M) {
	e, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	e.stop()
	os.Exit(code)
}

const corefile = `{{range .}}.:{{.Port}} {
    bind 127.0.0.1
{{- if .Headless}}
    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig {{.Kubeconfig}}
        startup_timeout 10s
{{- if .Kubernetes}}
        fallthrough
{{- end}}
    }
{{- end}}
{{- if .Kubernetes}}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig {{.Kubeconfig}}
        startup_timeout 10s
    }
{{- end}}
}
{{end}}`

type listener struct {
	Port                 int
	Headless, Kubernetes bool
	Kubeconfig           string
}

func start() (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := coredns.Binary()
	if err != nil {
		return nil, err
	}
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return nil, err
	}
	e := &env{cluster: c}
	var ls []listener
	for _, l := range []listener{{Headless: true, Kubernetes: true}, {Kubernetes: true}, {Headless: true}} {
		if l.Port, err = coredns.FreePort(); err != nil {
			c.Stop()
			return nil, err
		}
		l.Kubeconfig = c.Kubeconfig
		ls = append(ls, l)
	}
	e.both, e.kubernetes, e.headless = addr(ls[0].Port), addr(ls[1].Port), addr(ls[2].Port)
	var cf strings.Builder
	if err := template.Must(template.New("corefile").Parse(corefile)).Execute(&cf, ls); err != nil {
		c.Stop()
		return nil, err
	}
	if e.server, err = coredns.Start(ctx, bin, cf.String(), time.Minute, e.both, e.kubernetes, e.headless); err != nil {
		c.Stop()
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	e.server.Stop()
	e.cluster.Stop()
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// query sends one question to addr over net ("udp" or "tcp"), with EDNS0
// and a 4096 byte buffer as dig does.
func query(t testing.TB, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	var lastErr error
	for range 3 {
		r, _, err := c.Exchange(m, addr)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("%s %s to %s over %s: %v", name, dns.TypeToString[qtype], addr, net, lastErr)
	return nil
}

// eventually polls cond every 50ms until it holds; it fails the test after
// timeout with the last state described by cond.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last: %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
