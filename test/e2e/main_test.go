// Package e2e tests the plugin end to end: a real kube-apiserver and etcd on
// loopback, the CoreDNS binary built with the plugin, queries over UDP and TCP.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"
)

// env is the control plane and the CoreDNS server every test of the package
// shares. Tests use namespaces of their own.
type env struct {
	cluster *cluster.Cluster
	server  *testkit.Server
	// Three listeners of one server: headless in front of kubernetes,
	// kubernetes alone, headless alone.
	both, kubernetes, headless string
}

var shared *env

func TestMain(m *testing.M) {
	if err := testkit.Supported(); err != nil {
		fmt.Println("e2e: skipped:", err)
		os.Exit(0)
	}
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

func start() (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := testkit.Binary()
	if err != nil {
		return nil, err
	}
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return nil, err
	}
	ports, err := testkit.FreePorts(3)
	if err != nil {
		c.Stop()
		return nil, err
	}
	blocks := []testkit.Block{{Headless: true, Kubernetes: true}, {Kubernetes: true}, {Headless: true}}
	for i := range blocks {
		blocks[i].Port, blocks[i].Kubeconfig, blocks[i].StartupTimeout = ports[i], c.Kubeconfig, "10s"
	}
	e := &env{cluster: c, both: blocks[0].Addr(), kubernetes: blocks[1].Addr(), headless: blocks[2].Addr()}
	if e.server, err = testkit.Start(ctx, bin, testkit.Corefile(blocks...), time.Minute, e.both, e.kubernetes, e.headless); err != nil {
		c.Stop()
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	e.server.Stop()
	e.cluster.Stop()
}
