package headless

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/kubernetes/object"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
)

// The kubernetes plugin is the reference: these tests run it in the same
// process on the same objects, through a controller that serves them from
// memory as its informers would, and compare whole answers. Its slices come
// in name order, the order in which the plugin keeps them, so that record
// order is compared too. test/e2e does the same on a real API server.

// referenceController implements the kubernetes plugin's dnsController over
// a fixed set of objects, reduced by the plugin's own transforms.
type referenceController struct {
	services   []*object.Service
	endpoints  []*object.Endpoints
	imports    []*object.ServiceImport
	mcs        []*object.MultiClusterEndpoints
	namespaces map[string]*object.Namespace
}

// newReference returns the kubernetes plugin configured by corefile, serving
// objs. Like the plugin's informers, it applies labels to Services and
// EndpointSlices and namespace_labels to Namespaces.
func newReference(t testing.TB, corefile string, objs ...runtime.Object) *kubernetes.Kubernetes {
	t.Helper()
	c := newController(corefile)
	c.Next() // ParseStanza starts after the plugin's name
	k, err := kubernetes.ParseStanza(c)
	if err != nil {
		t.Fatalf("kubernetes %q: %v", corefile, err)
	}
	h, _, err := parse(newController(strings.Replace(corefile, "kubernetes", "headless", 1)))
	if err != nil {
		t.Fatalf("the same options for headless: %v", err)
	}
	match := func(sel labels.Selector, l map[string]string) bool { return sel == nil || sel.Matches(labels.Set(l)) }
	rc := &referenceController{namespaces: map[string]*object.Namespace{}}
	withZones := h.watch.transform.zones
	for _, obj := range objs {
		obj = obj.DeepCopyObject() // the transforms empty what they read
		switch o := obj.(type) {
		case *core.Service:
			if o.Spec.Type == "" {
				o.Spec.Type = core.ServiceTypeClusterIP // as the API server defaults it
			}
			if match(h.watch.labels, o.Labels) {
				s, _ := object.ToService(o)
				rc.services = append(rc.services, s.(*object.Service))
			}
		case *discovery.EndpointSlice:
			if _, ok := o.Labels[mcs.LabelServiceName]; ok && match(h.watch.labels, o.Labels) {
				e, _ := object.EndpointSliceToMultiClusterEndpoints(o.DeepCopy())
				rc.mcs = append(rc.mcs, e.(*object.MultiClusterEndpoints))
			}
			if match(h.watch.labels, o.Labels) {
				transform := object.EndpointSliceToEndpoints
				if withZones {
					transform = object.EndpointSliceToEndpointsWithZones
				}
				e, _ := transform(o)
				rc.endpoints = append(rc.endpoints, e.(*object.Endpoints))
			}
		case *mcs.ServiceImport:
			if match(h.watch.namespaceLabels, o.Labels) {
				s, _ := object.ToServiceImport(o)
				rc.imports = append(rc.imports, s.(*object.ServiceImport))
			}
		case *core.Namespace:
			if match(h.watch.namespaceLabels, o.Labels) {
				n, _ := object.ToNamespace(o)
				rc.namespaces[n.GetName()] = n.(*object.Namespace)
			}
		}
	}
	slices.SortFunc(rc.endpoints, func(a, b *object.Endpoints) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(rc.mcs, func(a, b *object.MultiClusterEndpoints) int { return cmp.Compare(a.Name, b.Name) })
	k.APIConn = rc
	k.Next = nextHandler()
	return k
}

// withNamespaces adds the Namespace of each namespaced object of objs, as an
// API server holds them and the kubernetes plugin requires, labelled with
// team=NAME.
func withNamespaces(objs []runtime.Object) []runtime.Object {
	seen := map[string]bool{}
	out := slices.Clone(objs)
	for _, obj := range objs {
		if o, ok := obj.(interface{ GetNamespace() string }); ok && o.GetNamespace() != "" && !seen[o.GetNamespace()] {
			seen[o.GetNamespace()] = true
			ns := &core.Namespace{}
			ns.Name = o.GetNamespace()
			ns.Labels = map[string]string{"team": ns.Name}
			out = append(out, ns)
		}
	}
	return out
}

func (rc *referenceController) ServiceList() []*object.Service             { return rc.services }
func (rc *referenceController) EndpointsList() []*object.Endpoints         { return rc.endpoints }
func (rc *referenceController) ServiceImportList() []*object.ServiceImport { return rc.imports }
func (rc *referenceController) PodIndex(string) []*object.Pod              { return nil }
func (rc *referenceController) Run()                                       {}
func (rc *referenceController) HasSynced() bool                            { return true }
func (rc *referenceController) Stop() error                                { return nil }
func (rc *referenceController) Modified(kubernetes.ModifiedMode) int64     { return 0 }

func (rc *referenceController) SvcIndex(key string) []*object.Service {
	return filter(rc.services, func(s *object.Service) bool { return s.Index == key })
}

func (rc *referenceController) SvcIndexReverse(ip string) []*object.Service {
	return filter(rc.services, func(s *object.Service) bool { return slices.Contains(s.ClusterIPs, ip) })
}

func (rc *referenceController) SvcExtIndexReverse(ip string) []*object.Service {
	return filter(rc.services, func(s *object.Service) bool { return slices.Contains(s.ExternalIPs, ip) })
}

func (rc *referenceController) SvcImportIndex(key string) []*object.ServiceImport {
	return filter(rc.imports, func(s *object.ServiceImport) bool { return s.Index == key })
}

func (rc *referenceController) EpIndex(key string) []*object.Endpoints {
	return filter(rc.endpoints, func(e *object.Endpoints) bool { return e.Index == key })
}

func (rc *referenceController) EpIndexReverse(ip string) []*object.Endpoints {
	return filter(rc.endpoints, func(e *object.Endpoints) bool { return slices.Contains(e.IndexIP, ip) })
}

func (rc *referenceController) McEpIndex(key string) []*object.MultiClusterEndpoints {
	return filter(rc.mcs, func(e *object.MultiClusterEndpoints) bool { return e.Index == key })
}

func (rc *referenceController) GetNodeByName(context.Context, string) (*core.Node, error) {
	return nil, errors.New("no nodes")
}

func (rc *referenceController) GetNamespaceByName(name string) (*object.Namespace, error) {
	if n, ok := rc.namespaces[name]; ok {
		return n, nil
	}
	return nil, errors.New("namespace not found")
}

func filter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// sameAnswer compares whole messages, in order, the SOA serial aside: the
// two plugins count changes differently.
func sameAnswer(want, got *dns.Msg) bool {
	return answerText(want) == answerText(got)
}

func answerText(m *dns.Msg) string {
	m = m.Copy()
	for _, rr := range append(m.Answer, m.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Serial = 0
		}
	}
	return m.String()
}

// query is one question of a comparison table.
type query struct {
	name  string
	qtype uint16
}

// compareWithReference asks both plugins every query and fails on the
// first difference of each.
func compareWithReference(t *testing.T, h *Headless, k *kubernetes.Kubernetes, queries []query) {
	t.Helper()
	for _, q := range queries {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.RecursionDesired = true
		want, got := exchange(t, k, m), serve(t, h, m)
		if !sameAnswer(want, got) {
			t.Errorf("%s %s differs from the kubernetes plugin\n--- kubernetes:\n%s\n--- headless:\n%s",
				q.name, dns.TypeToString[q.qtype], answerText(want), answerText(got))
		}
	}
}

// referenceObjects are testkit's conformance objects and edgeObjects, with
// their ServiceImports and Namespaces.
func referenceObjects() []runtime.Object {
	return withNamespaces(append(labelled(objects(referenceSet())), importedObjects()...))
}

// referenceSet leaves out alias, whose FQDN endpoints name a headless
// service: the kubernetes plugin looks that name up in itself, headless
// through the server, which the in-process plugins have not (TestConformance
// compares it).
func referenceSet() testkit.Objects {
	var o testkit.Objects
	all := testkit.ConformanceObjects()
	all.Add(edgeObjects(testkit.Conf))
	for _, s := range all.Services {
		if s.Name != "alias" {
			o.Services = append(o.Services, s)
		}
	}
	for _, s := range all.Slices {
		if s.Labels[discovery.LabelServiceName] != "alias" {
			o.Slices = append(o.Slices, s)
		}
	}
	return o
}

// edgeObjects is a selectorless headless service of 63 characters, with
// the objects at the edges of what the API server accepts: a hostname of 63
// characters, two hostnames on one address, one endpoint twice and again in
// a second slice, an endpoint of two addresses, ports without name, number
// or protocol, SCTP, and pod names with dots, too long or in upper case.
func edgeObjects(namespace string) testkit.Objects {
	name := "e" + strings.Repeat("d", 62)
	svc := testkit.Headless(namespace, name)
	svc.Spec.Selector = nil
	port := func(name string, n int32, protocol core.Protocol) discovery.EndpointPort {
		p := testkit.Port(name, n, protocol)
		if n == 0 {
			p.Port = nil
		}
		if protocol == "" {
			p.Protocol = nil
		}
		return p
	}
	ports := []discovery.EndpointPort{port("", 7000, core.ProtocolTCP), port("sctp", 7001, core.ProtocolSCTP),
		port("noport", 0, core.ProtocolUDP), port("noproto", 7003, ""), port(strings.Repeat("p", 15), 65535, core.ProtocolTCP)}
	slice := func(suffix string, family discovery.AddressType, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
		return testkit.ManagedBy(testkit.Slice(namespace, name, name[:50]+"-"+suffix, family, ports, eps...), "edge.example.com")
	}
	return testkit.Objects{
		Services: []*core.Service{svc},
		Slices: []*discovery.EndpointSlice{
			slice("main", discovery.AddressTypeIPv4, ports, testkit.Endpoint("10.110.0.1", "h"+strings.Repeat("o", 62)),
				testkit.Endpoint("10.110.0.2", "dup-a"), testkit.Endpoint("10.110.0.2", "dup-b"),
				testkit.Endpoint("10.110.0.3", "same"), testkit.Endpoint("10.110.0.3", "same"),
				discovery.Endpoint{Addresses: []string{"10.110.0.4", "10.110.0.5"}}),
			slice("pods", discovery.AddressTypeIPv4, ports[:1], testkit.Pod(testkit.Endpoint("10.110.0.6", ""), "pod.with.dots"),
				testkit.Pod(testkit.Endpoint("10.110.0.7", ""), "Pod-Upper"), testkit.Pod(testkit.Endpoint("10.110.0.8", ""), "p"+strings.Repeat("o", 70))),
			slice("again", discovery.AddressTypeIPv4, ports[:1], testkit.Endpoint("10.110.0.3", "same")),
		},
	}
}

// importedObjects are testkit's ServiceImports in namespace Conf.
func importedObjects() []runtime.Object {
	var objs []runtime.Object
	for _, si := range testkit.ServiceImports(testkit.Conf) {
		objs = append(objs, si)
	}
	return objs
}

// referenceQueries are the headless names of testkit's conformance table for
// referenceSet, with or without multicluster, and the edges of the zones,
// which the plugin answers alone, in several types.
func referenceQueries(multicluster bool) []query {
	var qs []query
	o := referenceSet()
	for _, p := range testkit.ConformanceProbes(o, nil, multicluster) {
		if p.Headless {
			qs = append(qs, query{p.Name, p.Qtype})
		}
	}
	for _, s := range o.Slices { // the names endpoint_pod_names gives
		for _, e := range s.Endpoints {
			if e.TargetRef != nil {
				qs = append(qs, query{e.TargetRef.Name + "." + s.Labels[discovery.LabelServiceName] + "." + s.Namespace + ".svc.cluster.local.", dns.TypeA})
			}
		}
	}
	all := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypePTR, dns.TypeANY}
	for _, name := range []string{"svc.cluster.local.", "pod.cluster.local.", "conf.svc.cluster.local.", "nons.svc.cluster.local.",
		"ns.dns.cluster.local.", "x.pod.cluster.local.", "in-addr.arpa.", "99.99.99.10.in-addr.arpa.", "ns.dns.in-addr.arpa.", "ip6.arpa.", "d.f.ip6.arpa."} {
		for _, t := range all {
			qs = append(qs, query{name, t})
		}
	}
	return qs
}

// TestSameAsKubernetes compares every headless name of referenceObjects with
// the kubernetes plugin, with each option they share.
func TestSameAsKubernetes(t *testing.T) {
	objs := referenceObjects()
	for _, options := range []string{
		"",
		"ttl 30",
		"endpoint_pod_names",
		"zonal",
		"namespaces conf",
		"namespace_labels team=conf",
		"namespace_labels team=other",
		"multicluster clusterset.local",
		"multicluster clusterset.local\nnamespace_labels team=conf",
		"multicluster clusterset.local\nzonal",
	} {
		t.Run(options, func(t *testing.T) {
			corefile := "kubernetes cluster.local clusterset.local in-addr.arpa ip6.arpa {\n" + options + "\n}"
			k := newReference(t, corefile, objs...)
			h, _ := newTestHeadless(t, strings.Replace(corefile, "kubernetes", "headless", 1), objs...)
			compareWithReference(t, h, k, referenceQueries(strings.Contains(options, "multicluster")))
		})
	}
}

// TestExtendedErrorsAsKubernetes checks that extended_errors changes no
// answer but for the Extended DNS Error, which a query without EDNS does not
// get: the names it answers itself, also with fallthrough, are those the
// kubernetes plugin answers the same.
func TestExtendedErrorsAsKubernetes(t *testing.T) {
	objs := referenceObjects()
	for _, options := range []string{"", "namespace_labels team=other", "zonal"} {
		t.Run(options, func(t *testing.T) {
			k := newReference(t, "kubernetes cluster.local in-addr.arpa ip6.arpa {\n"+options+"\n}", objs...)
			h, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa ip6.arpa {\n"+options+"\nextended_errors\n}", objs...)
			compareWithReference(t, h, k, referenceQueries(false))
		})
	}
}

// TestZoneEdgesAsKubernetes compares the apex and the names just below it
// of forward and reverse zones, in any case, with the plugin alone.
func TestZoneEdgesAsKubernetes(t *testing.T) {
	objs := referenceObjects()
	corefile := "kubernetes cluster.local 10.in-addr.arpa 0.0.d.f.ip6.arpa"
	k := newReference(t, corefile, objs...)
	h, _ := newTestHeadless(t, strings.Replace(corefile, "kubernetes", "headless", 1), objs...)
	var queries []query
	for _, name := range []string{"cluster.local.", "Cluster.local.", "CLUSTER.LOCAL.", "svc.Cluster.local.", "conf.svc.Cluster.Local.", "dns-version.Cluster.local.",
		"10.in-addr.arpa.", "10.In-Addr.Arpa.", "1.10.in-addr.arpa.", "0.0.d.f.ip6.arpa.", "0.0.D.F.IP6.ARPA.", "1.0.0.d.f.ip6.arpa."} {
		for _, qtype := range []uint16{dns.TypeSOA, dns.TypePTR, dns.TypeNS, dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypeCNAME, dns.TypeMX} {
			queries = append(queries, query{name, qtype})
		}
	}
	compareWithReference(t, h, k, queries)
}

// TestHugeServiceAsKubernetes compares the answers for a service of 1000
// endpoints with 2 ports, in slices of 100 as the EndpointSlice controller
// packs them, with the kubernetes plugin's, through the writer of CoreDNS's
// server, which cuts an answer to what the client takes: over UDP without
// EDNS (512 bytes) and with a buffer of 1232, with TC set, and over TCP,
// where the 1000 addresses fit and 2000 SRV records and their glue do not.
func TestHugeServiceAsKubernetes(t *testing.T) {
	ports := []discovery.EndpointPort{testkit.Port("web", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	o := testkit.Objects{Services: []*core.Service{testkit.Headless("huge", "big")}}
	for s := range 10 {
		var eps []discovery.Endpoint
		for i := s * 100; i < (s+1)*100; i++ {
			eps = append(eps, testkit.Endpoint(fmt.Sprintf("10.100.%d.%d", i/250, i%250+1), fmt.Sprintf("big-%d", i)))
		}
		o.Slices = append(o.Slices, testkit.Slice("huge", "big", fmt.Sprintf("big-%d", s), discovery.AddressTypeIPv4, ports, eps...))
	}
	objs := withNamespaces(labelled(objects(o)))
	k := newReference(t, "kubernetes cluster.local", objs...)
	h, _ := newTestHeadless(t, "headless cluster.local", objs...)
	for _, name := range []string{"big.huge.svc.cluster.local.", "_web._tcp.big.huge.svc.cluster.local."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			for _, c := range []struct {
				tcp     bool
				bufsize uint16 // 0: no EDNS
			}{{false, 0}, {false, 1232}, {true, 0}} {
				m := new(dns.Msg).SetQuestion(name, qtype)
				if c.bufsize > 0 {
					m.SetEdns0(c.bufsize, false)
				}
				want, got := scrubbed(k, m, c.tcp), scrubbed(h, m, c.tcp)
				what := fmt.Sprintf("%s %s over TCP %v, EDNS buffer %d", name, dns.TypeToString[qtype], c.tcp, c.bufsize)
				switch {
				case !sameAnswer(want, got):
					t.Errorf("%s differs from the kubernetes plugin\n--- kubernetes:\n%s\n--- headless:\n%s", what, answerText(want), answerText(got))
				case c.tcp && qtype == dns.TypeA && (got.Truncated || len(got.Answer) != 1000):
					t.Errorf("%s: %d records, TC %v, want all 1000", what, len(got.Answer), got.Truncated)
				case !c.tcp && (!got.Truncated || got.Len() > int(max(c.bufsize, dns.MinMsgSize))):
					t.Errorf("%s: %d bytes, TC %v, want TC and what fits", what, got.Len(), got.Truncated)
				case c.tcp && qtype == dns.TypeSRV && len(got.Answer) < 1000:
					t.Errorf("%s: %d records, want what fits in a message", what, len(got.Answer))
				}
			}
		}
	}
}

// scrubbed returns the answer of p to m as CoreDNS's server writes it to a
// client over UDP or TCP.
func scrubbed(p plugin.Handler, m *dns.Msg, tcp bool) *dns.Msg {
	w := dnstest.NewRecorder(&test.ResponseWriter{TCP: tcp})
	p.ServeDNS(context.Background(), request.NewScrubWriter(m, w), m)
	return w.Msg
}
