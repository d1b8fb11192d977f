package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/headlessdns/headless/internal/testkit"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/kubernetes"
)

const namespace = "bench"

// The workloads, each a dnsperf query file.
const (
	seedA   = "seed A"
	seedSRV = "seed SRV"
	mix     = "mix"
)

// load creates the seed objects and services [0, n) of endpoints each.
func load(ctx context.Context, client kubernetes.Interface, n, endpoints int) error {
	if err := testkit.Apply(ctx, client, testkit.Consul("default")); err != nil {
		return err
	}
	if err := testkit.Apply(ctx, client, benchService("lat", 0, 1)); err != nil {
		return err
	}
	return loadRange(ctx, client, 0, n, endpoints)
}

// loadRange creates services [from, to), 16 at a time.
func loadRange(ctx context.Context, client kubernetes.Interface, from, to, endpoints int) error {
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := testkit.Apply(ctx, client, benchService(serviceName(i), i*endpoints, endpoints)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
	for i := from; i < to && err == nil; i++ {
		select {
		case work <- i:
		case err = <-errs:
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

func serviceName(i int) string { return fmt.Sprintf("svc-%06d", i) }

// benchService is a headless service with n endpoints, pod-0 ... pod-(n-1),
// at addresses counted from first, and two ports.
func benchService(name string, first, n int) testkit.Objects {
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	eps := make([]discovery.Endpoint, n)
	for j := range n {
		eps[j] = testkit.Endpoint(benchAddr(first+j).String(), fmt.Sprintf("pod-%d", j))
	}
	return testkit.Objects{
		Services: []*core.Service{testkit.Headless(namespace, name)},
		Slices:   []*discovery.EndpointSlice{testkit.Slice(namespace, name, name+"-x1", discovery.AddressTypeIPv4, ports, eps...)},
	}
}

// benchAddr is the n-th address of 10.128.0.0/9.
func benchAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(128 + n>>16), byte(n >> 8), byte(n)})
}

// writeQueries writes a dnsperf query file per workload: the seed's A and
// SRV questions, and a random mix over the services of A, per-pod A, named
// SRV and bare SRV questions.
func (b *bench) writeQueries() error {
	b.files = map[string]string{
		seedA:   b.path("seed-a.txt"),
		seedSRV: b.path("seed-srv.txt"),
		mix:     b.path("mix.txt"),
	}
	seed := "consul-server.default.svc.cluster.local"
	if err := os.WriteFile(b.files[seedA], []byte(seed+" A\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(b.files[seedSRV], []byte(seed+" SRV\n"), 0o644); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for range 100000 {
		svc := serviceName(rng.IntN(b.cfg.services)) + "." + namespace + ".svc.cluster.local"
		switch rng.IntN(4) {
		case 0:
			sb.WriteString(svc + " A\n")
		case 1:
			fmt.Fprintf(&sb, "pod-%d.%s A\n", rng.IntN(b.cfg.endpoints), svc)
		case 2:
			sb.WriteString("_http._tcp." + svc + " SRV\n")
		default:
			sb.WriteString(svc + " SRV\n")
		}
	}
	return os.WriteFile(b.files[mix], []byte(sb.String()), 0o644)
}
