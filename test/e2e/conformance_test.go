package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const conf = "conf"

// conformanceObjects covers every rule of the plugin: dual stack,
// hostname-less endpoints, ready, not ready and unset, slices that overlap, a
// service without ready endpoints, one without selector, unnamed ports, TCP
// and UDP ports of one name, a slice without ports, and ClusterIP services
// beside headless ones, one of them sharing an address with a headless one.
func conformanceObjects() testkit.Objects {
	tcp, udp := core.ProtocolTCP, core.ProtocolUDP
	web := []discovery.EndpointPort{testkit.Port("http", 80, tcp), testkit.Port("metrics", 9090, tcp)}
	o := testkit.Consul(conf)
	selectorless := testkit.Headless(conf, "external")
	selectorless.Spec.Selector = nil
	manual := testkit.Slice(conf, "external", "external-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{testkit.Port("pg", 5432, tcp)},
		testkit.Endpoint("192.0.2.10", "db-a"), testkit.Endpoint("192.0.2.11", ""))
	manual.Labels[discovery.LabelManagedBy] = "operator.example.com"
	o.Add(testkit.Objects{
		Services: []*core.Service{
			testkit.Headless(conf, "dual"), testkit.Headless(conf, "nohost"), testkit.Headless(conf, "ready"),
			testkit.Headless(conf, "overlap"), testkit.Headless(conf, "empty"), selectorless,
			testkit.Headless(conf, "unnamed"), testkit.Headless(conf, "dns"), testkit.Headless(conf, "noports"),
			testkit.Headless(conf, "seven"), testkit.Headless(conf, "last"),
			testkit.ClusterIP(conf, "frontend", testkit.ServicePort("http", 80, tcp)),
			testkit.ClusterIP(conf, "backend", testkit.ServicePort("http", 80, tcp)),
		},
		Slices: []*discovery.EndpointSlice{
			testkit.Slice(conf, "dual", "dual-v4", discovery.AddressTypeIPv4, web,
				testkit.Endpoint("10.1.0.1", "web-0"), testkit.Endpoint("10.1.0.2", "web-1"), testkit.Endpoint("10.1.0.3", "")),
			testkit.Slice(conf, "dual", "dual-v6", discovery.AddressTypeIPv6, web,
				testkit.Endpoint("fd00:10::1", "web-0"), testkit.Endpoint("fd00:10::2", "web-1"), testkit.Endpoint("fd00:10::", "")),
			testkit.Slice(conf, "nohost", "nohost-1", discovery.AddressTypeIPv4, web,
				testkit.Endpoint("10.2.0.1", ""), testkit.Endpoint("10.2.0.2", "")),
			testkit.Slice(conf, "ready", "ready-1", discovery.AddressTypeIPv4, web,
				testkit.Ready(testkit.Endpoint("10.3.0.1", "r-0"), true),
				testkit.Ready(testkit.Endpoint("10.3.0.2", "r-1"), false),
				testkit.Endpoint("10.3.0.3", "r-2")),
			testkit.Slice(conf, "overlap", "overlap-1", discovery.AddressTypeIPv4, web,
				testkit.Endpoint("10.4.0.1", "o-0"), testkit.Endpoint("10.4.0.2", "o-1")),
			testkit.Slice(conf, "overlap", "overlap-2", discovery.AddressTypeIPv4, web,
				testkit.Endpoint("10.4.0.2", "o-1"), testkit.Endpoint("10.4.0.3", "o-2")),
			testkit.Slice(conf, "empty", "empty-1", discovery.AddressTypeIPv4, web,
				testkit.Ready(testkit.Endpoint("10.5.0.1", "e-0"), false)),
			manual,
			testkit.Slice(conf, "unnamed", "unnamed-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{testkit.Port("", 7000, tcp)},
				testkit.Endpoint("10.6.0.1", "u-0")),
			testkit.Slice(conf, "dns", "dns-1", discovery.AddressTypeIPv4,
				[]discovery.EndpointPort{testkit.Port("dns-udp", 53, udp), testkit.Port("dns-tcp", 53, tcp), testkit.Port("admin", 8080, tcp)},
				testkit.Endpoint("10.7.0.1", "ns-0"), testkit.Endpoint("10.7.0.2", "ns-1")),
			testkit.Slice(conf, "noports", "noports-1", discovery.AddressTypeIPv4, nil,
				testkit.Endpoint("10.8.0.1", "n-0")),
			testkit.Slice(conf, "seven", "seven-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.9.0.1", "s-0"), testkit.Endpoint("10.9.0.2", "s-1"), testkit.Endpoint("10.9.0.3", "s-2"),
				testkit.Endpoint("10.9.0.4", "s-3"), testkit.Endpoint("10.9.0.5", "s-4"), testkit.Endpoint("10.9.0.6", "s-5"),
				testkit.Endpoint("10.9.0.7", "s-6")),
			// The frontend selects a pod of nohost: its PTR names both.
			testkit.Slice(conf, "frontend", "frontend-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.2.0.1", ""), testkit.Endpoint("10.10.0.1", "")),
			testkit.Slice(conf, "backend", "backend-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.11.0.1", "")),
			// Applied last: once every listener serves it, all came through.
			testkit.Slice(conf, "last", "last-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.12.0.1", "z-0")),
		},
	})
	return o
}

// probe is one query of the conformance table; headless marks the names
// that the plugin alone must answer as the kubernetes plugin does.
type probe struct {
	name     string
	qtype    uint16
	headless bool
}

// conformanceProbes derives the queries from the objects: for every headless
// service its name, its pods' names, its _port._proto names and its
// addresses' PTR names, in several types; then names around them.
func conformanceProbes(o testkit.Objects, clusterIPs []string) []probe {
	var ps []probe
	add := func(headless bool, name string, types ...uint16) {
		for _, t := range types {
			ps = append(ps, probe{name, t, headless})
		}
	}
	headless := map[string]bool{}
	for _, s := range o.Services {
		if s.Spec.ClusterIP == core.ClusterIPNone {
			headless[s.Name] = true
		}
	}
	shadowed := map[string]bool{}
	for _, s := range o.Slices {
		svc := s.Labels[discovery.LabelServiceName]
		name := svc + "." + s.Namespace + ".svc.cluster.local."
		if !headless[svc] {
			add(false, name, dns.TypeA, dns.TypeSRV)
			for _, e := range s.Endpoints {
				shadowed[e.Addresses[0]] = true
			}
			continue
		}
		add(true, name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeMX, dns.TypeANY)
		add(true, caseMix(name), dns.TypeA, dns.TypeSRV)
		for _, p := range s.Ports {
			add(true, "_"+*p.Name+"._"+strings.ToLower(string(*p.Protocol))+"."+name, dns.TypeSRV, dns.TypeA)
		}
		for _, e := range s.Endpoints {
			host := strings.NewReplacer(".", "-", ":", "-").Replace(e.Addresses[0])
			if strings.HasSuffix(host, "-") {
				host += "0"
			}
			if e.Hostname != nil {
				host = *e.Hostname
			}
			add(true, host+"."+name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
		}
	}
	for _, s := range o.Slices {
		if !headless[s.Labels[discovery.LabelServiceName]] {
			continue
		}
		for _, e := range s.Endpoints {
			rev, _ := dns.ReverseAddr(e.Addresses[0])
			add(!shadowed[e.Addresses[0]], rev, dns.TypePTR)
		}
	}
	for _, ip := range clusterIPs {
		rev, _ := dns.ReverseAddr(ip)
		add(false, rev, dns.TypePTR)
	}
	add(true, "_http._udp.dual.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "_HTTP._TCP.Dual.Conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "http.tcp.dual.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "_._tcp.dns.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "_dns-udp._.dns.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "web-9.dual.conf.svc.cluster.local.", dns.TypeA, dns.TypeSRV)
	add(true, "a.b.c.dual.conf.svc.cluster.local.", dns.TypeA)
	add(true, "r-1.ready.conf.svc.cluster.local.", dns.TypeA)
	add(true, "e-0.empty.conf.svc.cluster.local.", dns.TypeA)
	add(true, "dual.conf.svc.cluster.local.", dns.TypeAXFR)
	add(false, "missing.conf.svc.cluster.local.", dns.TypeA, dns.TypeSRV)
	add(false, "conf.svc.cluster.local.", dns.TypeA)
	add(false, "missing.svc.cluster.local.", dns.TypeA)
	add(false, "cluster.local.", dns.TypeSOA, dns.TypeA)
	add(false, "dns-version.cluster.local.", dns.TypeTXT)
	add(false, "10-1-0-1.conf.pod.cluster.local.", dns.TypeA)
	add(false, "1.0.0.127.in-addr.arpa.", dns.TypePTR)
	return ps
}

// caseMix writes every other letter of name in upper case.
func caseMix(name string) string {
	b := []byte(name)
	for i := 0; i < len(b); i += 2 {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// normalize prepares a response for comparison: records sorted in each
// section, the message id and the SOA serial zeroed.
func normalize(m *dns.Msg) string {
	m = m.Copy()
	m.Id = 0
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Serial = 0
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", m.MsgHdr.String())
	if opt := m.IsEdns0(); opt != nil {
		fmt.Fprintf(&b, ";; EDNS %d do=%v rcode=%d\n", opt.UDPSize(), opt.Do(), opt.ExtendedRcode())
	}
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"ANSWER", m.Answer}, {"AUTHORITY", m.Ns}, {"ADDITIONAL", m.Extra}} {
		fmt.Fprintf(&b, ";; %s\n", sec.name)
		for _, s := range testkit.Records(sec.rrs) {
			fmt.Fprintln(&b, s)
		}
	}
	return b.String()
}

// TestConformance compares the answers of the three listeners: headless in
// front of kubernetes must answer every query as kubernetes alone does, and
// headless alone every headless query.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	objs := conformanceObjects()
	if err := testkit.Apply(ctx, shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	var clusterIPs []string
	for _, name := range []string{"frontend", "backend"} {
		svc, err := shared.cluster.Client.CoreV1().Services(conf).Get(ctx, name, meta.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clusterIPs = append(clusterIPs, svc.Spec.ClusterIP)
	}
	waitForObjects(t)

	probes := conformanceProbes(objs, clusterIPs)
	services := len(objs.Services)
	same, different := 0, 0
	for _, p := range probes {
		for _, net := range []string{"udp", "tcp"} {
			want := normalize(testkit.Query(t, net, shared.kubernetes, p.name, p.qtype))
			targets := []string{shared.both}
			if p.headless {
				targets = append(targets, shared.headless)
			}
			for _, addr := range targets {
				got := normalize(testkit.Query(t, net, addr, p.name, p.qtype))
				if got == want {
					same++
					continue
				}
				different++
				t.Errorf("%s %s over %s: %s answers differently from kubernetes alone\n--- kubernetes:\n%s--- %s:\n%s",
					p.name, dns.TypeToString[p.qtype], net, listenerName(addr), want, listenerName(addr), got)
			}
		}
	}
	summary := fmt.Sprintf("conformance: %d queries over %d services, %d comparisons: %d identical, %d different\n",
		len(probes), services, same+different, same, different)
	t.Log(summary)
	if root, err := testkit.Root(); err == nil {
		_ = os.MkdirAll(filepath.Join(root, "build"), 0o755)
		_ = os.WriteFile(filepath.Join(root, "build", "conformance.txt"), []byte(summary), 0o644)
	}
	if len(probes) < 40 || services < 8 {
		t.Errorf("the table has %d queries over %d services, want at least 40 over 8", len(probes), services)
	}
}

// waitForObjects waits until the last objects applied are served on every
// listener.
func waitForObjects(t *testing.T) {
	const name = "z-0.last.conf.svc.cluster.local."
	for _, addr := range []string{shared.kubernetes, shared.both, shared.headless} {
		testkit.Eventually(t, 15*time.Second, name+" at "+listenerName(addr), func() (bool, string) {
			r := testkit.Query(t, "udp", addr, name, dns.TypeA)
			return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0, r.String()
		})
	}
}

func listenerName(addr string) string {
	switch addr {
	case shared.both:
		return "headless+kubernetes"
	case shared.kubernetes:
		return "kubernetes"
	default:
		return "headless"
	}
}
