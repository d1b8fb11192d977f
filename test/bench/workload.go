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
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

const namespace = "bench"

// The workloads, each a dnsperf query file.
const (
	seedA   = "seed A"
	seedSRV = "seed SRV"
	mix     = "mix"

	headlessMix = "headless names of the cluster mix"
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
	return parallel(ctx, from, to, func(i int) error {
		return testkit.Apply(ctx, client, benchService(serviceName(i), i*endpoints, endpoints))
	})
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
	b.files[seedA] = b.path("seed-a.txt")
	b.files[seedSRV] = b.path("seed-srv.txt")
	b.files[mix] = b.path("mix.txt")
	seed := "consul-server.default.svc.cluster.local"
	if err := os.WriteFile(b.files[seedA], []byte(seed+" A\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(b.files[seedSRV], []byte(seed+" SRV\n"), 0o644); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	return writeQueryMix(b.files[mix], rng, b.cfg.endpoints, func() string {
		return serviceName(rng.IntN(b.cfg.services)) + "." + namespace + ".svc.cluster.local"
	})
}

// The cluster mix: the production shape, in a namespace of its own.
const mixNamespace = "mix"

// loadMix creates the cluster mix, services [0, n) of endpoints each, every
// headlessEvery-th headless and the others ClusterIP services, 16 at a time.
// It takes minutes for 20000: kube-apiserver counts every allocated cluster
// IP each time it allocates one (the metrics of pkg/registry/core/service/
// ipallocator), so each ClusterIP service takes longer than the one before.
func loadMix(ctx context.Context, client kubernetes.Interface, n, endpoints, headlessEvery int) error {
	if err := testkit.Apply(ctx, client, mixService(0, endpoints, headlessEvery)); err != nil {
		return err // creates the namespace
	}
	return parallel(ctx, 1, n, func(i int) error {
		o := testkit.Labelled(mixService(i, endpoints, headlessEvery))
		if _, err := client.CoreV1().Services(mixNamespace).Create(ctx, o.Services[0], meta.CreateOptions{}); err != nil {
			return err
		}
		_, err := client.DiscoveryV1().EndpointSlices(mixNamespace).Create(ctx, o.Slices[0], meta.CreateOptions{})
		return err
	})
}

// parallel calls f for each of [from, to), 16 at a time, and returns the
// first error.
func parallel(ctx context.Context, from, to int, f func(int) error) error {
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
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
		case <-ctx.Done():
			err = ctx.Err()
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

func mixName(i int) string { return fmt.Sprintf("app-%06d", i) }

// mixHeadless reports whether service i of the mix is headless.
func mixHeadless(i, headlessEvery int) bool { return i%headlessEvery == 0 }

// mixService is service i of the cluster mix, n endpoints at addresses
// counted from i*n.
func mixService(i, n, headlessEvery int) testkit.Objects {
	return mixObjects(mixName(i), i*n, n, mixHeadless(i, headlessEvery))
}

// mixObjects is a service of the cluster mix with its EndpointSlice as the
// EndpointSlice controller writes it: n endpoints at addresses counted from
// first, with their conditions, pod, node and zone; for a headless service,
// a StatefulSet's, with hostnames pod-0 ... pod-(n-1).
func mixObjects(name string, first, n int, headless bool) testkit.Objects {
	svcPorts := []core.ServicePort{testkit.ServicePort("http", 80, core.ProtocolTCP), testkit.ServicePort("metrics", 9090, core.ProtocolTCP)}
	ports := []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	svc := testkit.ClusterIP(mixNamespace, name, svcPorts...)
	if headless {
		svc = testkit.Headless(mixNamespace, name, svcPorts...)
	}
	eps := make([]discovery.Endpoint, n)
	for j := range n {
		k := first + j
		pod, host := fmt.Sprintf("%s-7d9f8b6c4-%05x", name, k), "" // a Deployment's pod
		if headless {
			pod, host = fmt.Sprintf("%s-%d", name, j), fmt.Sprintf("pod-%d", j)
		}
		eps[j] = controllerEndpoint(mixNamespace, pod, host, benchAddr(k), k)
	}
	return testkit.Objects{
		Services: []*core.Service{svc},
		Slices:   []*discovery.EndpointSlice{testkit.Slice(mixNamespace, name, name+"-x7k2p", discovery.AddressTypeIPv4, ports, eps...)},
	}
}

// controllerEndpoint is an endpoint as the EndpointSlice controller writes
// it: ready, serving and not terminating, with its pod, node and zone; k
// numbers the pod, for its UID, node and zone.
func controllerEndpoint(namespace, pod, host string, addr netip.Addr, k int) discovery.Endpoint {
	yes, no := true, false
	e := testkit.Pod(testkit.Endpoint(addr.String(), host), pod)
	e.TargetRef.Namespace = namespace
	e.TargetRef.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012x", k))
	e.Conditions = discovery.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no}
	node, zone := fmt.Sprintf("node-%04d", k%5000), fmt.Sprintf("zone-%c", 'a'+k%3)
	e.NodeName, e.Zone = &node, &zone
	return e
}

// mixProbes are names that each setup answers only once it has the last
// services of the mix: a pod of the last headless service, and the last
// ClusterIP service when the kubernetes plugin is in the setup.
func mixProbes(n, headlessEvery int, withKubernetes bool) []string {
	lastHeadless := (n - 1) / headlessEvery * headlessEvery
	probes := []string{fmt.Sprintf("pod-0.%s.%s.svc.cluster.local.", mixName(lastHeadless), mixNamespace)}
	for i := n - 1; withKubernetes && i >= 0; i-- {
		if !mixHeadless(i, headlessEvery) {
			probes = append(probes, fmt.Sprintf("%s.%s.svc.cluster.local.", mixName(i), mixNamespace))
			break
		}
	}
	return probes
}

// writeMixQueries writes the dnsperf query file of the production shape: a
// random mix over the headless services of the cluster mix of A, per-pod A,
// named SRV and bare SRV questions.
func (b *bench) writeMixQueries() error {
	b.files[headlessMix] = b.path("headless-mix.txt")
	headless := (b.cfg.mixServices + b.cfg.headlessEvery - 1) / b.cfg.headlessEvery
	rng := rand.New(rand.NewPCG(3, 4))
	return writeQueryMix(b.files[headlessMix], rng, b.cfg.mixEndpoints, func() string {
		return mixName(rng.IntN(headless)*b.cfg.headlessEvery) + "." + mixNamespace + ".svc.cluster.local"
	})
}

// writeQueryMix writes a dnsperf query file of 100000 questions, each about
// the name service returns: its A, a pod's A (pod-0 to pod-endpoints-1),
// its _http._tcp SRV or its bare SRV, at random.
func writeQueryMix(path string, rng *rand.Rand, endpoints int, service func() string) error {
	var sb strings.Builder
	for range 100000 {
		svc := service()
		switch rng.IntN(4) {
		case 0:
			sb.WriteString(svc + " A\n")
		case 1:
			fmt.Fprintf(&sb, "pod-%d.%s A\n", rng.IntN(endpoints), svc)
		case 2:
			sb.WriteString("_http._tcp." + svc + " SRV\n")
		default:
			sb.WriteString(svc + " SRV\n")
		}
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
