package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	apps "k8s.io/api/apps/v1"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestControllers runs workloads on a control plane of its own with the
// controllers and three fake nodes (test/cluster Options.Controllers), so
// that the EndpointSlices are the EndpointSlice controller's, not the
// fixtures': the seed's consul-server as its user made it (Parallel, with
// publishNotReadyAddresses), then a StatefulSet (OrderedReady) scaled up
// and down, a Parallel one of 8 shaped like a training job and its rolling
// restart, a Deployment whose pods share a hostname and subdomain, a
// selectorless Service with Endpoints that the mirroring controller copies
// into slices, a pod whose readiness flips, a Service that publishes not
// ready addresses, and a deleted Service whose slices the garbage collector
// removes. After each step, headless alone and in front of
// kubernetes must answer every name of the namespace as kubernetes alone
// does, over UDP and TCP, in the drop-in listeners and in the full ones
// (zonal, with the nodes' zones). The control plane is dual-stack, its fake
// nodes give each pod an IPv4 and an IPv6 address: a Service that asks for
// both families has a slice of each (dualStack).
func TestControllers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with controllers")
	}
	begin := time.Now()
	e, err := start(cluster.Options{Controllers: true, ServiceCIDR: "10.96.0.0/16,fd00:10:96::/112"})
	testkit.Require(t, err)
	defer e.stop()
	named = append(named, e)
	t.Logf("control plane with controllers, 3 fake nodes and CoreDNS started in %v", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()
	client := e.cluster.Client
	var c tally

	t.Run("seed", func(t *testing.T) {
		begin := time.Now()
		if err := testkit.ConsulServer("default", 3).Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		s := waitForEndpoints(t, e, "default", "consul-server", 3)
		t.Logf("the EndpointSlice controller's slices of 3 Ready pods in %v:\n%s", time.Since(begin).Round(time.Millisecond), describe(s))
		// The zonal names need each endpoint's node and its zone.
		nodes, err := client.CoreV1().Nodes().List(ctx, meta.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		zoneOf := map[string]string{}
		for _, n := range nodes.Items {
			zoneOf[n.Name] = n.Labels[cluster.ZoneLabel]
		}
		for _, sl := range s {
			for _, ep := range sl.Endpoints {
				if node, zone := deref(ep.NodeName, ""), deref(ep.Zone, ""); zone == "" || zoneOf[node] != zone {
					t.Errorf("endpoint %s on node %q in zone %q, want a node's zone (%v)", ep.Addresses[0], node, zone, zoneOf)
				}
			}
		}
		waitServed(t, e, "consul-server.default.svc.cluster.local.", 3)
		t.Logf("served by every listener %v after the objects were created", time.Since(begin).Round(time.Millisecond))
		compareNamespace(t, e, "default", &c)
	})

	t.Run("scale", func(t *testing.T) {
		const ns = "scale"
		w := testkit.Workload{
			Services:     []*core.Service{testkit.Headless(ns, "web", testkit.ServicePort("http", 80, core.ProtocolTCP))},
			StatefulSets: []*apps.StatefulSet{testkit.StatefulSet(ns, "web", "web", 2, false)},
		}
		if err := w.Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int32{2, 5, 1} {
			if n != 2 {
				scale(t, e, ns, "web", n)
			}
			begin := time.Now()
			waitForEndpoints(t, e, ns, "web", int(n))
			waitServed(t, e, "web.scale.svc.cluster.local.", int(n))
			t.Logf("%d replicas (OrderedReady) served in %v", n, time.Since(begin).Round(time.Millisecond))
			compareNamespace(t, e, ns, &c)
		}
	})

	t.Run("parallel", func(t *testing.T) {
		const ns = "training"
		w := testkit.Workload{
			Services:     []*core.Service{testkit.Headless(ns, "workers", testkit.ServicePort("nccl", 29500, core.ProtocolTCP))},
			StatefulSets: []*apps.StatefulSet{testkit.StatefulSet(ns, "workers", "workers", 8, true)},
		}
		w.Services[0].Spec.PublishNotReadyAddresses = true
		begin := time.Now()
		if err := w.Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		waitForEndpoints(t, e, ns, "workers", 8)
		waitServed(t, e, "workers.training.svc.cluster.local.", 8)
		t.Logf("8 pods (Parallel) served in %v", time.Since(begin).Round(time.Millisecond))
		compareNamespace(t, e, ns, &c)
	})

	t.Run("rollout", func(t *testing.T) {
		const ns = "training"
		begin := time.Now()
		restart(t, e, ns, "workers")
		waitForEndpoints(t, e, ns, "workers", 8)
		waitServed(t, e, "workers.training.svc.cluster.local.", 8)
		t.Logf("8 pods replaced one by one (kubectl rollout restart) and served in %v", time.Since(begin).Round(time.Millisecond))
		compareNamespace(t, e, ns, &c)
	})

	t.Run("subdomain", func(t *testing.T) {
		const ns = "subdomain"
		svc := testkit.Headless(ns, "group", testkit.ServicePort("http", 80, core.ProtocolTCP))
		svc.Spec.Selector = map[string]string{"app": "members"}
		w := testkit.Workload{
			Services:    []*core.Service{svc},
			Deployments: []*apps.Deployment{testkit.Deployment(ns, "members", "member", "group", 2)},
		}
		if err := w.Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		waitForEndpoints(t, e, ns, "group", 2)
		waitServed(t, e, "group.subdomain.svc.cluster.local.", 2)
		compareNamespace(t, e, ns, &c)
	})

	t.Run("mirrored", func(t *testing.T) {
		const ns = "legacy"
		ep := &core.Endpoints{
			ObjectMeta: meta.ObjectMeta{Name: "db", Namespace: ns},
			Subsets: []core.EndpointSubset{{
				Addresses: []core.EndpointAddress{{IP: "192.0.2.20", Hostname: "db-0"}, {IP: "192.0.2.21"}},
				Ports:     []core.EndpointPort{{Name: "pg", Port: 5432, Protocol: core.ProtocolTCP}},
			}},
		}
		w := testkit.Workload{Services: []*core.Service{testkit.Selectorless(ns, "db")}, Endpoints: []*core.Endpoints{ep}}
		w.Services[0].Spec.Ports = []core.ServicePort{testkit.ServicePort("pg", 5432, core.ProtocolTCP)}
		if err := w.Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		s := waitForEndpoints(t, e, ns, "db", 2)
		for _, sl := range s {
			if m := sl.Labels[discovery.LabelManagedBy]; m != "endpointslicemirroring-controller.k8s.io" {
				t.Errorf("slice %s managed by %q", sl.Name, m)
			}
		}
		waitServed(t, e, "db.legacy.svc.cluster.local.", 2)
		compareNamespace(t, e, ns, &c)
	})

	t.Run("readiness", func(t *testing.T) {
		const ns = "scale"
		for _, ready := range []bool{false, true} {
			begin := time.Now()
			setReady(t, e, ns, "web-0", ready)
			want := map[bool]int{false: 0, true: 1}[ready]
			testkit.Eventually(t, time.Minute, fmt.Sprintf("web-0 ready=%v in the slices", ready), func() (bool, string) {
				s, err := testkit.ServiceSlices(ctx, client, ns, "web")
				r := testkit.ReadyEndpoints(s)
				return err == nil && len(r) == want, fmt.Sprintf("%v %v", r, err)
			})
			waitServed(t, e, "web.scale.svc.cluster.local.", want)
			t.Logf("web-0 ready=%v served in %v", ready, time.Since(begin).Round(time.Millisecond))
			compareNamespace(t, e, ns, &c)
		}
	})

	t.Run("publishNotReadyAddresses", func(t *testing.T) {
		// consul-server publishes the addresses of pods that are not
		// ready: the controller keeps their endpoints ready, and says
		// they are not serving.
		setReady(t, e, "default", "consul-server-0", false)
		testkit.Eventually(t, time.Minute, "consul-server-0 not serving in the slices", func() (bool, string) {
			s, err := testkit.ServiceSlices(ctx, client, "default", "consul-server")
			if err != nil {
				return false, err.Error()
			}
			for _, sl := range s {
				for _, ep := range sl.Endpoints {
					if deref(ep.Hostname, "") == "consul-server-0" {
						return deref(ep.Conditions.Ready, true) && !deref(ep.Conditions.Serving, true), describe(s)
					}
				}
			}
			return false, describe(s)
		})
		waitServed(t, e, "consul-server.default.svc.cluster.local.", 3)
		compareNamespace(t, e, "default", &c)
		setReady(t, e, "default", "consul-server-0", true)
	})

	t.Run("deleted", func(t *testing.T) {
		const ns = "scale"
		// The names of the Service before, asked once it is gone.
		before := namespaceObjects(t, e, ns)
		if err := client.CoreV1().Services(ns).Delete(ctx, "web", meta.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		testkit.Eventually(t, time.Minute, "the garbage collector deletes the slices of web", func() (bool, string) {
			s, err := testkit.ServiceSlices(ctx, client, ns, "web")
			return err == nil && len(s) == 0, fmt.Sprintf("%d slices, %v", len(s), err)
		})
		waitServed(t, e, "web.scale.svc.cluster.local.", 0)
		t.Logf("the slices collected and the name gone in %v", time.Since(begin).Round(time.Millisecond))
		// No plugin knows the addresses any more: kubernetes passes
		// their PTR names on (fallthrough in-addr.arpa ip6.arpa), and
		// headless alone answers NXDOMAIN with its SOA.
		probes := workloadProbes(before)
		for i := range probes {
			probes[i].Passed = probes[i].Qtype == dns.TypePTR
		}
		compareProbes(t, e, ns, probes, &c)
	})

	t.Run("dualStack", func(t *testing.T) {
		const ns = "dual"
		w := testkit.Workload{
			Services:     []*core.Service{testkit.Headless(ns, "workers", testkit.ServicePort("nccl", 29500, core.ProtocolTCP))},
			StatefulSets: []*apps.StatefulSet{testkit.StatefulSet(ns, "workers", "workers", 8, true)},
		}
		// A Service is single-stack unless it asks for both families.
		w.Services[0].Spec.IPFamilyPolicy = ptrTo(core.IPFamilyPolicyRequireDualStack)
		if err := w.Create(ctx, client); err != nil {
			t.Fatal(err)
		}
		// An endpoint per pod in the slice of each family.
		sl := waitForEndpoints(t, e, ns, "workers", 2*8)
		families := map[discovery.AddressType]int{}
		for _, x := range sl {
			families[x.AddressType] += len(x.Endpoints)
		}
		if families[discovery.AddressTypeIPv4] != 8 || families[discovery.AddressTypeIPv6] != 8 {
			t.Errorf("endpoints per family %v, want 8 of each:\n%s", families, describe(sl))
		}
		waitServed(t, e, "workers.dual.svc.cluster.local.", 8)
		compareNamespace(t, e, ns, &c)
	})

	t.Logf("controllers: %d comparisons, %d identical, %d different, %d left out by design", c.same+c.different, c.same, c.different, c.excluded)
}

// waitForEndpoints waits until the slices of the Service namespace/name hold
// n ready endpoints of Ready pods, and returns them.
func waitForEndpoints(t *testing.T, e *env, namespace, name string, n int) []discovery.EndpointSlice {
	t.Helper()
	s, err := testkit.WaitForEndpoints(t.Context(), e.cluster.Client, namespace, name, n, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v; logs %s", err, e.cluster.Logs())
	}
	return s
}

// waitServed waits until every listener of e answers name with n address
// records, or NXDOMAIN for 0.
func waitServed(t *testing.T, e *env, name string, n int) {
	t.Helper()
	for _, addr := range []string{e.kubernetes, e.headless, e.both, e.full.kubernetes, e.full.headless, e.full.both} {
		testkit.Eventually(t, 15*time.Second, fmt.Sprintf("%d answers for %s at %s", n, name, listenerName(addr)), func() (bool, string) {
			r := testkit.Query(t, "udp", addr, name, dns.TypeA)
			if n == 0 {
				return r.Rcode == dns.RcodeNameError, r.String()
			}
			return r.Rcode == dns.RcodeSuccess && len(r.Answer) == n, r.String()
		})
	}
}

// restart restarts the pods of the StatefulSet namespace/name, as kubectl
// rollout restart does, and waits until every pod is of the new revision
// and Ready.
func restart(t *testing.T, e *env, namespace, name string) {
	t.Helper()
	api := e.cluster.Client.AppsV1().StatefulSets(namespace)
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	sts, err := api.Patch(t.Context(), name, types.StrategicMergePatchType, []byte(patch), meta.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	generation := sts.Generation
	testkit.Eventually(t, 2*time.Minute, "the rollout of "+namespace+"/"+name, func() (bool, string) {
		s, err := api.Get(t.Context(), name, meta.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := s.Status
		return st.ObservedGeneration >= generation && st.UpdateRevision == st.CurrentRevision && st.UpdatedReplicas == *s.Spec.Replicas &&
			st.ReadyReplicas == *s.Spec.Replicas, fmt.Sprintf("%+v", st)
	})
}

// scale sets the replicas of the StatefulSet namespace/name, as kubectl
// scale does.
func scale(t *testing.T, e *env, namespace, name string, n int32) {
	t.Helper()
	api := e.cluster.Client.AppsV1().StatefulSets(namespace)
	s, err := api.GetScale(t.Context(), name, meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = n
	if _, err := api.UpdateScale(t.Context(), name, s, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// compareNamespace compares, over UDP and TCP, the answers of the listeners
// of e for the names of the Services and EndpointSlices of namespace, as
// the API server holds them: the same probes as TestConformance's, and the
// zonal names of the nodes' zones.
func compareNamespace(t *testing.T, e *env, namespace string, c *tally) {
	t.Helper()
	compareProbes(t, e, namespace, workloadProbes(namespaceObjects(t, e, namespace)), c)
}

// compareProbes asks the listeners of e the probes, as compareNamespace
// does.
func compareProbes(t *testing.T, e *env, namespace string, probes []testkit.Probe, c *tally) {
	t.Helper()
	before := *c
	compare(t, e.listeners, probes, c)
	compare(t, e.full, probes, c)
	t.Logf("%s: %d probes: %d comparisons, %d different", namespace, len(probes),
		c.same+c.different-before.same-before.different, c.different-before.different)
}

// namespaceObjects returns the Services, but the API server's own, and the
// EndpointSlices of namespace.
func namespaceObjects(t *testing.T, e *env, namespace string) testkit.Objects {
	t.Helper()
	ctx := t.Context()
	svcs, err := e.cluster.Client.CoreV1().Services(namespace).List(ctx, meta.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices, err := e.cluster.Client.DiscoveryV1().EndpointSlices(namespace).List(ctx, meta.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var o testkit.Objects
	for i := range svcs.Items {
		if svcs.Items[i].Name != "kubernetes" {
			o.Services = append(o.Services, &svcs.Items[i])
		}
	}
	for i := range slices.Items {
		o.Slices = append(o.Slices, &slices.Items[i])
	}
	return o
}

// setReady sets the Ready condition of the pod namespace/name, as a
// kubelet does when its readiness probe changes. kwok leaves a pod that has
// an address alone.
func setReady(t *testing.T, e *env, namespace, name string, ready bool) {
	t.Helper()
	pods := e.cluster.Client.CoreV1().Pods(namespace)
	pod, err := pods.Get(t.Context(), name, meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := map[bool]core.ConditionStatus{false: core.ConditionFalse, true: core.ConditionTrue}[ready]
	for i, c := range pod.Status.Conditions {
		if c.Type == core.PodReady || c.Type == core.ContainersReady {
			pod.Status.Conditions[i].Status = status
			pod.Status.Conditions[i].LastTransitionTime = meta.Now()
		}
	}
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = ready
	}
	if _, err := pods.UpdateStatus(t.Context(), pod, meta.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// workloadProbes are conformanceProbes for o, without its probes of the
// conformance objects, and with the zonal names of each headless Service in
// the nodes' zones.
func workloadProbes(o testkit.Objects) []testkit.Probe {
	var ps []testkit.Probe
	for _, p := range testkit.ConformanceProbes(o, nil, false) {
		if !strings.Contains(p.Name, "."+conf+".") {
			ps = append(ps, p)
		}
	}
	for _, s := range o.Services {
		if s.Spec.ClusterIP != core.ClusterIPNone {
			continue
		}
		name := s.Name + "." + s.Namespace + ".svc.cluster.local."
		for _, z := range append(cluster.Zones, "eu-west-1a") {
			for _, policy := range []string{"pin", "prefer", "nearest"} {
				for _, t := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
					ps = append(ps, testkit.Probe{Name: z + "." + policy + "._zone." + name, Qtype: t, Headless: true})
				}
			}
		}
	}
	return ps
}

// describe returns the endpoints of slices, one a line, as kubectl shows
// them.
func describe(s []discovery.EndpointSlice) string {
	var b strings.Builder
	for _, sl := range s {
		fmt.Fprintf(&b, "  %s (%s, %d ports, labels %v)\n", sl.Name, sl.AddressType, len(sl.Ports), sl.Labels)
		for _, ep := range sl.Endpoints {
			fmt.Fprintf(&b, "    %s %s ready=%v node=%s zone=%s\n", strings.Join(ep.Addresses, ","), deref(ep.Hostname, "-"),
				deref(ep.Conditions.Ready, false), deref(ep.NodeName, "-"), deref(ep.Zone, "-"))
		}
	}
	return b.String()
}

// deref returns *p, or def when p is nil.
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ptrTo returns a pointer to v.
func ptrTo[T any](v T) *T { return &v }
