package testkit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
)

// Conf is the namespace of ConformanceObjects. The conformance table is
// shared by the root package's comparison with the kubernetes plugin in
// process (TestSameAsKubernetes) and test/e2e's on a real API server and a
// real CoreDNS (TestConformance).
const Conf = "conf"

// ConformanceObjects, in namespace Conf, cover every rule of the plugin: dual
// stack,
// hostname-less endpoints, ready, not ready and unset, slices that overlap, a
// service without ready endpoints, one without selector with a hand-written
// slice (TestControllers has one whose slice the mirroring controller
// writes), unnamed ports, TCP and UDP ports of one name, a slice without
// ports, zones (one with dots, one in upper case, an endpoint without), FQDN
// slices (to a name another server block answers, to one that does not
// exist, to a headless name), 40 endpoints in one slice, and ClusterIP and
// ExternalName services beside headless ones, one of them sharing an
// address with a headless one, and endpoints with pod names.
func ConformanceObjects() Objects {
	tcp, udp := core.ProtocolTCP, core.ProtocolUDP
	web := []discovery.EndpointPort{Port("http", 80, tcp), Port("metrics", 9090, tcp)}
	zoned := func(e discovery.Endpoint, zone string) discovery.Endpoint { e.Zone = &zone; return e }
	externalName := &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: "extname", Namespace: Conf},
		Spec:       core.ServiceSpec{Type: core.ServiceTypeExternalName, ExternalName: "db.example.org"},
	}
	var many []discovery.Endpoint
	for i := range 40 {
		many = append(many, Endpoint(fmt.Sprintf("10.20.0.%d", 40-i), fmt.Sprintf("m-%02d", (i*7)%40)))
	}
	o := Consul(Conf)
	o.Add(Objects{
		Services: []*core.Service{
			Headless(Conf, "dual"), Headless(Conf, "nohost"), Headless(Conf, "ready"),
			Headless(Conf, "overlap"), Headless(Conf, "empty"), Selectorless(Conf, "external"),
			Headless(Conf, "unnamed"), Headless(Conf, "dns"),
			Headless(Conf, "noports"), Headless(Conf, "seven"), Headless(Conf, "zoned"),
			Headless(Conf, "mixed"), Headless(Conf, "alias"), Headless(Conf, "many"),
			Headless(Conf, "last"), Headless(Conf, "pods"),
			ClusterIP(Conf, "frontend", ServicePort("http", 80, tcp)),
			ClusterIP(Conf, "backend", ServicePort("http", 80, tcp)),
			externalName,
		},
		Slices: []*discovery.EndpointSlice{
			Slice(Conf, "dual", "dual-v4", discovery.AddressTypeIPv4, web,
				Endpoint("10.1.0.1", "web-0"), Endpoint("10.1.0.2", "web-1"), Endpoint("10.1.0.3", "")),
			Slice(Conf, "dual", "dual-v6", discovery.AddressTypeIPv6, web,
				Endpoint("fd00:10::1", "web-0"), Endpoint("fd00:10::2", "web-1"), Endpoint("fd00:10::", "")),
			Slice(Conf, "nohost", "nohost-1", discovery.AddressTypeIPv4, web,
				Endpoint("10.2.0.1", ""), Endpoint("10.2.0.2", "")),
			Slice(Conf, "ready", "ready-1", discovery.AddressTypeIPv4, web,
				Ready(Endpoint("10.3.0.1", "r-0"), true),
				Ready(Endpoint("10.3.0.2", "r-1"), false),
				Endpoint("10.3.0.3", "r-2")),
			Slice(Conf, "overlap", "overlap-1", discovery.AddressTypeIPv4, web,
				Endpoint("10.4.0.1", "o-0"), Endpoint("10.4.0.2", "o-1")),
			Slice(Conf, "overlap", "overlap-2", discovery.AddressTypeIPv4, web,
				Endpoint("10.4.0.2", "o-1"), Endpoint("10.4.0.3", "o-2")),
			Slice(Conf, "empty", "empty-1", discovery.AddressTypeIPv4, web,
				Ready(Endpoint("10.5.0.1", "e-0"), false)),
			ManagedBy(Slice(Conf, "external", "external-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{Port("pg", 5432, tcp)},
				Endpoint("192.0.2.10", "db-a"), Endpoint("192.0.2.11", "")), "operator.example.com"),
			Slice(Conf, "unnamed", "unnamed-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{Port("", 7000, tcp)},
				Endpoint("10.6.0.1", "u-0")),
			Slice(Conf, "dns", "dns-1", discovery.AddressTypeIPv4,
				[]discovery.EndpointPort{Port("dns-udp", 53, udp), Port("dns-tcp", 53, tcp), Port("admin", 8080, tcp)},
				Endpoint("10.7.0.1", "ns-0"), Endpoint("10.7.0.2", "ns-1")),
			Slice(Conf, "noports", "noports-1", discovery.AddressTypeIPv4, nil,
				Endpoint("10.8.0.1", "n-0")),
			Slice(Conf, "seven", "seven-1", discovery.AddressTypeIPv4, web[:1],
				Endpoint("10.9.0.1", "s-0"), Endpoint("10.9.0.2", "s-1"), Endpoint("10.9.0.3", "s-2"),
				Endpoint("10.9.0.4", "s-3"), Endpoint("10.9.0.5", "s-4"), Endpoint("10.9.0.6", "s-5"),
				Endpoint("10.9.0.7", "s-6")),
			Slice(Conf, "zoned", "zoned-1", discovery.AddressTypeIPv4, web,
				zoned(Endpoint("10.13.0.1", "z-0"), "us-east-1a"), zoned(Endpoint("10.13.0.2", "z-1"), "US-East-1b"),
				zoned(Endpoint("10.13.0.3", "z-2"), "corp.example.com"), Endpoint("10.13.0.4", "z-3"),
				Ready(zoned(Endpoint("10.13.0.5", "z-4"), "us-east-1a"), false)),
			Slice(Conf, "zoned", "zoned-2", discovery.AddressTypeIPv6, web,
				zoned(Endpoint("fd00:13::1", "z-0"), "us-east-1a")),
			Slice(Conf, "mixed", "mixed-v4", discovery.AddressTypeIPv4, web[:1], Endpoint("10.10.0.1", "int")),
			Slice(Conf, "mixed", "mixed-fqdn", discovery.AddressTypeFQDN, web[:1], Endpoint("db.example.org", "ext")),
			Slice(Conf, "alias", "alias-1", discovery.AddressTypeFQDN, web[:1],
				Endpoint("cache.example.org", "cache"), Endpoint("nothing.example.org", "nothing"),
				Endpoint("consul-server.conf.svc.cluster.local", "consul")),
			// Not in hostname order, in one slice: the kubernetes plugin
			// keeps its order, so a truncated answer keeps the same records.
			Slice(Conf, "many", "many-1", discovery.AddressTypeIPv4, web[:1], many...),
			Slice(Conf, "pods", "pods-1", discovery.AddressTypeIPv4, web[:1],
				Pod(Endpoint("10.14.0.1", ""), "pods-7f9c"), Pod(Endpoint("10.14.0.2", "named"), "pods-8abc")),
			// The frontend selects a pod of nohost: its PTR names both.
			Slice(Conf, "frontend", "frontend-1", discovery.AddressTypeIPv4, web[:1],
				Endpoint("10.2.0.1", ""), Endpoint("10.10.0.1", "")),
			Slice(Conf, "backend", "backend-1", discovery.AddressTypeIPv4, web[:1],
				Endpoint("10.11.0.1", "")),
		},
	})
	o.Slices = append(o.Slices, ImportedSlices(Conf)...)
	// Applied last: once every listener serves it, all came through.
	o.Slices = append(o.Slices, Slice(Conf, "last", "last-1", discovery.AddressTypeIPv4, web[:1],
		Endpoint("10.12.0.1", "z-0")))
	return o
}

// Probe is one query of the conformance table. The drop-in must answer
// every probe as kubernetes alone; headless alone only those marked
// headless, the others being the documented differences of the plugin
// alone (see ConformanceProbes).
type Probe struct {
	Name     string
	Qtype    uint16
	Headless bool
	// NoEDNS sends the query without EDNS: over UDP, answers of more than
	// 512 bytes are truncated.
	NoEDNS bool
	// Passed marks a reverse name that the kubernetes plugin does not know
	// and passes on (fallthrough in-addr.arpa ip6.arpa, as in
	// deploy/Corefile), so that the answer comes from upstream: headless
	// alone must answer the same rcode and records, with its own SOA.
	Passed bool
}

// ConformanceProbes derives the queries from the objects: for every headless
// service its name, its endpoints' names, its _port._proto names, its zonal
// names and its addresses' PTR names in several types; with multicluster,
// the same for the imports in clusterset.local; then names around them.
//
// Alone, the plugin knows only headless services, so these differ from the
// kubernetes plugin's answers by design (README) and are left out of the
// comparison with headless alone, not with the drop-in:
//   - names that are not headless names: ClusterIP and ExternalName
//     services, pods, namespaces, ClusterSetIP imports, the apex NS;
//   - the PTR of an address that a service that is not headless, or a slice
//     of no service, also holds: the kubernetes plugin names them all;
//   - the PTR of an imported address: headless names it in clusterset.local,
//     the kubernetes plugin in cluster.local or, for a slice without the
//     kubernetes.io/service-name label, builds a name that does not pack and
//     sends nothing (so that address is not asked at all; see
//     checkImportedAddressPTR).
//
// One query has no stable answer from the kubernetes plugin, so none is
// asked: CNAME of the name of a service with an FQDN slice and another
// slice. The plugin answers with the first endpoint, and its slices come from
// a map, in any order; headless takes them in name order.
func ConformanceProbes(o Objects, clusterIPs []string, multicluster bool) []Probe {
	var ps []Probe
	add := func(headless bool, name string, types ...uint16) {
		for _, t := range types {
			ps = append(ps, Probe{Name: name, Qtype: t, Headless: headless})
		}
	}
	all := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypePTR, dns.TypeANY}
	headless := map[string]bool{}
	for _, s := range o.Services {
		if s.Spec.ClusterIP == core.ClusterIPNone {
			headless[s.Name] = true
		}
	}
	slicesOf, fqdn := map[string]int{}, map[string]bool{}
	for _, s := range o.Slices {
		svc := s.Labels[discovery.LabelServiceName]
		slicesOf[svc]++
		fqdn[svc] = fqdn[svc] || s.AddressType == discovery.AddressTypeFQDN
	}
	// Addresses the plugin alone does not name as the kubernetes plugin
	// does: those of other services, of slices of no service, imported ones.
	shadowed := map[string]bool{}
	for _, s := range o.Slices {
		if !headless[s.Labels[discovery.LabelServiceName]] || s.Labels[mcs.LabelServiceName] != "" {
			for _, e := range s.Endpoints {
				shadowed[e.Addresses[0]] = true
			}
		}
	}
	for _, s := range o.Services {
		name := s.Name + "." + s.Namespace + ".svc.cluster.local."
		if !headless[s.Name] {
			add(false, name, dns.TypeA, dns.TypeSRV, dns.TypeCNAME)
			continue
		}
		types := all
		if fqdn[s.Name] && slicesOf[s.Name] > 1 {
			types = slices.DeleteFunc(slices.Clone(all), func(t uint16) bool { return t == dns.TypeCNAME })
		}
		add(true, name, types...)
		add(true, CaseMix(name), dns.TypeA, dns.TypeSRV)
		add(true, "nobody."+name, dns.TypeA, dns.TypeSOA)
		add(true, "_http._tcp."+name, dns.TypeSRV, dns.TypeA)
		add(true, "_http._udp."+name, dns.TypeSRV)
		add(true, "a.b.c."+name, dns.TypeA)
	}
	for _, s := range o.Slices {
		svc := s.Labels[discovery.LabelServiceName]
		if !headless[svc] || s.Labels[mcs.LabelServiceName] != "" {
			continue
		}
		name := svc + "." + s.Namespace + ".svc.cluster.local."
		for _, p := range s.Ports {
			if p.Name != nil && p.Protocol != nil { // "_._tcp" is asked below
				add(true, "_"+*p.Name+"._"+strings.ToLower(string(*p.Protocol))+"."+name, dns.TypeSRV, dns.TypeA)
			}
		}
		for _, e := range s.Endpoints {
			add(true, Hostname(e)+"."+name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeCNAME)
			if rev, err := dns.ReverseAddr(e.Addresses[0]); err == nil {
				notReady := e.Conditions.Ready != nil && !*e.Conditions.Ready
				ps = append(ps, Probe{Name: rev, Qtype: dns.TypePTR, Headless: !shadowed[e.Addresses[0]], Passed: notReady})
			}
		}
	}
	// Zonal names, for a service with zones and one without.
	for _, svc := range []string{"zoned", "dual"} {
		name := svc + "." + Conf + ".svc.cluster.local."
		for _, z := range []string{"us-east-1a", "us-east-1b", "corp.example.com", "eu-west-1a"} {
			add(true, z+".pin._zone."+name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT)
			add(true, z+".prefer._zone."+name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
		}
		add(true, "US-East-1A.Pin._ZONE."+name, dns.TypeA)
		add(true, "us-east-1a.nearest._zone."+name, dns.TypeA, dns.TypeTXT)
		add(true, "pin._zone."+name, dns.TypeA)
		add(true, "x.us-east-1a.pin._zone."+name, dns.TypeA)
	}
	add(true, "missing.pin._zone.missing.conf.svc.cluster.local.", dns.TypeA)
	// A truncated answer: the same records, and the TC bit.
	for _, t := range []uint16{dns.TypeA, dns.TypeSRV} {
		ps = append(ps, Probe{Name: "many.conf.svc.cluster.local.", Qtype: t, Headless: true, NoEDNS: true})
	}
	for _, ip := range clusterIPs {
		rev, _ := dns.ReverseAddr(ip)
		add(false, rev, dns.TypePTR)
	}
	add(true, "_HTTP._TCP.Dual.Conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "http.tcp.dual.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "_._tcp.dns.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "_dns-udp._.dns.conf.svc.cluster.local.", dns.TypeSRV)
	add(true, "web-9.dual.conf.svc.cluster.local.", dns.TypeA, dns.TypeSRV)
	add(true, "cluster.local.", dns.TypeSOA, dns.TypeA)
	add(true, "dns-version.cluster.local.", dns.TypeTXT)
	// Not headless names: the kubernetes plugin answers the apex NS with
	// its own address, and TXT with NXDOMAIN.
	add(false, "cluster.local.", dns.TypeNS, dns.TypeTXT)
	add(false, "missing.conf.svc.cluster.local.", dns.TypeA, dns.TypeSRV)
	add(false, "conf.svc.cluster.local.", dns.TypeA)
	add(false, "missing.svc.cluster.local.", dns.TypeA)
	add(false, "db.conf.svc.cluster.local.", dns.TypeA, dns.TypeSRV)
	add(false, "10-1-0-1.conf.pod.cluster.local.", dns.TypeA)
	add(false, "1.0.0.127.in-addr.arpa.", dns.TypePTR)
	if multicluster {
		ps = append(ps, importProbes()...)
		// The edges of the zones, in any case; the full listeners serve
		// the reverse zone 10.in-addr.arpa too.
		for _, apex := range []string{"Cluster.local.", "CLUSTER.LOCAL.", "10.in-addr.arpa.", "10.In-Addr.Arpa."} {
			add(true, apex, dns.TypeSOA, dns.TypePTR, dns.TypeA, dns.TypeAAAA, dns.TypeSRV)
			// TXT at a reverse apex does not exist: kubernetes passes it on.
			ps = append(ps, Probe{Name: apex, Qtype: dns.TypeTXT, Headless: true, Passed: strings.HasSuffix(strings.ToLower(apex), ".in-addr.arpa.")})
		}
	}
	return ps
}

// importProbes asks the names of the imports in clusterset.local, and the
// PTR of their addresses.
func importProbes() []Probe {
	var ps []Probe
	add := func(headless bool, name string, types ...uint16) {
		for _, t := range types {
			ps = append(ps, Probe{Name: name, Qtype: t, Headless: headless})
		}
	}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeCNAME}
	for _, svc := range []string{"db", "lonely", "vip", "nothing"} {
		base := svc + "." + Conf + ".svc.clusterset.local."
		for _, name := range []string{base, "db-0.c1." + base, "db-0.c2." + base, "DB-0.C1." + base, "10-31-0-2.c1." + base,
			"db-1.c2." + base, "db-0." + base, "_pg._tcp." + base, "_pg._udp." + base, "pg.tcp." + base, "x.db-0.c1." + base,
			"us-east-1a.pin._zone." + base} {
			// A ClusterSetIP import is not headless.
			add(svc != "vip", name, types...)
		}
	}
	for _, ip := range []string{"10.31.0.1", "10.31.0.2", "fd00:31::1", "10.32.0.2", "10.31.1.1"} {
		rev, _ := dns.ReverseAddr(ip)
		add(false, rev, dns.TypePTR)
	}
	add(true, "clusterset.local.", dns.TypeSOA, dns.TypeA)
	add(false, "clusterset.local.", dns.TypeNS)
	add(true, "dns-version.clusterset.local.", dns.TypeTXT)
	return ps
}

// Hostname is the DNS label of an endpoint, as both plugins name it without
// endpoint_pod_names.
func Hostname(e discovery.Endpoint) string {
	if e.Hostname != nil {
		return *e.Hostname
	}
	host := strings.NewReplacer(".", "-", ":", "-").Replace(e.Addresses[0])
	if strings.HasSuffix(host, "-") {
		host += "0"
	}
	return host
}
