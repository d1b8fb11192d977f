package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
)

const conf = "conf"

// conformanceObjects covers every rule of the plugin: dual stack,
// hostname-less endpoints, ready, not ready and unset, slices that overlap, a
// service without ready endpoints, one without selector with a hand-written
// slice (TestControllers has one whose slice the mirroring controller
// writes), unnamed ports, TCP and UDP ports of one name, a slice without
// ports, zones (one with dots, one in upper case, an endpoint without), FQDN
// slices (to a name another server block answers, to one that does not
// exist, to a headless name), 40 endpoints in one slice, and ClusterIP and
// ExternalName services beside headless ones, one of them sharing an
// address with a headless one.
func conformanceObjects() testkit.Objects {
	tcp, udp := core.ProtocolTCP, core.ProtocolUDP
	web := []discovery.EndpointPort{testkit.Port("http", 80, tcp), testkit.Port("metrics", 9090, tcp)}
	zoned := func(e discovery.Endpoint, zone string) discovery.Endpoint { e.Zone = &zone; return e }
	externalName := &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: "extname", Namespace: conf},
		Spec:       core.ServiceSpec{Type: core.ServiceTypeExternalName, ExternalName: "db.example.org"},
	}
	var many []discovery.Endpoint
	for i := range 40 {
		many = append(many, testkit.Endpoint(fmt.Sprintf("10.20.0.%d", 40-i), fmt.Sprintf("m-%02d", (i*7)%40)))
	}
	o := testkit.Consul(conf)
	o.Add(testkit.Objects{
		Services: []*core.Service{
			testkit.Headless(conf, "dual"), testkit.Headless(conf, "nohost"), testkit.Headless(conf, "ready"),
			testkit.Headless(conf, "overlap"), testkit.Headless(conf, "empty"), testkit.Selectorless(conf, "external"),
			testkit.Headless(conf, "unnamed"), testkit.Headless(conf, "dns"),
			testkit.Headless(conf, "noports"), testkit.Headless(conf, "seven"), testkit.Headless(conf, "zoned"),
			testkit.Headless(conf, "mixed"), testkit.Headless(conf, "alias"), testkit.Headless(conf, "many"),
			testkit.Headless(conf, "last"),
			testkit.ClusterIP(conf, "frontend", testkit.ServicePort("http", 80, tcp)),
			testkit.ClusterIP(conf, "backend", testkit.ServicePort("http", 80, tcp)),
			externalName,
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
			testkit.ManagedBy(testkit.Slice(conf, "external", "external-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{testkit.Port("pg", 5432, tcp)},
				testkit.Endpoint("192.0.2.10", "db-a"), testkit.Endpoint("192.0.2.11", "")), "operator.example.com"),
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
			testkit.Slice(conf, "zoned", "zoned-1", discovery.AddressTypeIPv4, web,
				zoned(testkit.Endpoint("10.13.0.1", "z-0"), "us-east-1a"), zoned(testkit.Endpoint("10.13.0.2", "z-1"), "US-East-1b"),
				zoned(testkit.Endpoint("10.13.0.3", "z-2"), "corp.example.com"), testkit.Endpoint("10.13.0.4", "z-3"),
				testkit.Ready(zoned(testkit.Endpoint("10.13.0.5", "z-4"), "us-east-1a"), false)),
			testkit.Slice(conf, "zoned", "zoned-2", discovery.AddressTypeIPv6, web,
				zoned(testkit.Endpoint("fd00:13::1", "z-0"), "us-east-1a")),
			testkit.Slice(conf, "mixed", "mixed-v4", discovery.AddressTypeIPv4, web[:1], testkit.Endpoint("10.10.0.1", "int")),
			testkit.Slice(conf, "mixed", "mixed-fqdn", discovery.AddressTypeFQDN, web[:1], testkit.Endpoint("db.example.org", "ext")),
			testkit.Slice(conf, "alias", "alias-1", discovery.AddressTypeFQDN, web[:1],
				testkit.Endpoint("cache.example.org", "cache"), testkit.Endpoint("nothing.example.org", "nothing"),
				testkit.Endpoint("consul-server.conf.svc.cluster.local", "consul")),
			// Not in hostname order, in one slice: the kubernetes plugin
			// keeps its order, so a truncated answer keeps the same records.
			testkit.Slice(conf, "many", "many-1", discovery.AddressTypeIPv4, web[:1], many...),
			// The frontend selects a pod of nohost: its PTR names both.
			testkit.Slice(conf, "frontend", "frontend-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.2.0.1", ""), testkit.Endpoint("10.10.0.1", "")),
			testkit.Slice(conf, "backend", "backend-1", discovery.AddressTypeIPv4, web[:1],
				testkit.Endpoint("10.11.0.1", "")),
		},
	})
	o.Slices = append(o.Slices, testkit.ImportedSlices(conf)...)
	// Applied last: once every listener serves it, all came through.
	o.Slices = append(o.Slices, testkit.Slice(conf, "last", "last-1", discovery.AddressTypeIPv4, web[:1],
		testkit.Endpoint("10.12.0.1", "z-0")))
	return o
}

// applyImports creates the ServiceImports, or updates those that exist.
func applyImports(ctx context.Context, imports []*mcs.ServiceImport) error {
	client, err := mcsclient.NewForConfig(shared.cluster.RESTConfig)
	if err != nil {
		return err
	}
	for _, si := range imports {
		api := client.MulticlusterV1alpha1().ServiceImports(si.Namespace)
		_, err := api.Create(ctx, si, meta.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var old *mcs.ServiceImport
			if old, err = api.Get(ctx, si.Name, meta.GetOptions{}); err == nil {
				si = si.DeepCopy()
				si.ResourceVersion = old.ResourceVersion
				_, err = api.Update(ctx, si, meta.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("serviceimport %s/%s: %w", si.Namespace, si.Name, err)
		}
	}
	return nil
}

// probe is one query of the conformance table. The drop-in must answer
// every probe as kubernetes alone; headless alone only those marked
// headless, the others being the documented differences of the plugin
// alone (see conformanceProbes).
type probe struct {
	name     string
	qtype    uint16
	headless bool
	// noEDNS sends the query without EDNS: over UDP, answers of more than
	// 512 bytes are truncated.
	noEDNS bool
	// passed marks a reverse name that the kubernetes plugin does not know
	// and passes on (fallthrough in-addr.arpa ip6.arpa, as in
	// deploy/Corefile), so that the answer comes from upstream: headless
	// alone must answer the same rcode and records, with its own SOA.
	passed bool
}

// conformanceProbes derives the queries from the objects: for every headless
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
func conformanceProbes(o testkit.Objects, clusterIPs []string, multicluster bool) []probe {
	var ps []probe
	add := func(headless bool, name string, types ...uint16) {
		for _, t := range types {
			ps = append(ps, probe{name: name, qtype: t, headless: headless})
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
		add(true, testkit.CaseMix(name), dns.TypeA, dns.TypeSRV)
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
			add(true, "_"+*p.Name+"._"+strings.ToLower(string(*p.Protocol))+"."+name, dns.TypeSRV, dns.TypeA)
		}
		for _, e := range s.Endpoints {
			add(true, hostname(e)+"."+name, dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeCNAME)
			if rev, err := dns.ReverseAddr(e.Addresses[0]); err == nil {
				notReady := e.Conditions.Ready != nil && !*e.Conditions.Ready
				ps = append(ps, probe{name: rev, qtype: dns.TypePTR, headless: !shadowed[e.Addresses[0]], passed: notReady})
			}
		}
	}
	// Zonal names, for a service with zones and one without.
	for _, svc := range []string{"zoned", "dual"} {
		name := svc + "." + conf + ".svc.cluster.local."
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
		ps = append(ps, probe{name: "many.conf.svc.cluster.local.", qtype: t, headless: true, noEDNS: true})
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
			ps = append(ps, probe{name: apex, qtype: dns.TypeTXT, headless: true, passed: strings.HasSuffix(strings.ToLower(apex), ".in-addr.arpa.")})
		}
	}
	return ps
}

// importProbes asks the names of the imports in clusterset.local, and the
// PTR of their addresses.
func importProbes() []probe {
	var ps []probe
	add := func(headless bool, name string, types ...uint16) {
		for _, t := range types {
			ps = append(ps, probe{name: name, qtype: t, headless: headless})
		}
	}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeCNAME}
	for _, svc := range []string{"db", "lonely", "vip", "nothing"} {
		base := svc + "." + conf + ".svc.clusterset.local."
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

// hostname is the DNS label of an endpoint, as both plugins name it without
// endpoint_pod_names.
func hostname(e discovery.Endpoint) string {
	if e.Hostname != nil {
		return *e.Hostname
	}
	host := strings.NewReplacer(".", "-", ":", "-").Replace(e.Addresses[0])
	if strings.HasSuffix(host, "-") {
		host += "0"
	}
	return host
}

// normalize prepares a response for comparison: records sorted in each
// section, the message id and the SOA serial zeroed. The kubernetes plugin
// keeps EndpointSlices in a map, so the order of records from several slices
// varies from one answer to the next; within one slice it is the slice's.
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

// ask sends p to addr over network.
func ask(t *testing.T, network, addr string, p probe) *dns.Msg {
	t.Helper()
	m := testkit.NewQuery(p.name, p.qtype)
	if p.noEDNS {
		m = new(dns.Msg).SetQuestion(p.name, p.qtype)
	}
	r, err := testkit.Exchange(network, addr, m)
	if err != nil {
		t.Fatalf("%s %s to %s over %s: %v", p.name, dns.TypeToString[p.qtype], listenerName(addr), network, err)
	}
	return r
}

// tally counts the comparisons of a conformance run.
type tally struct {
	same, different, excluded int
}

func (c *tally) add(same bool) {
	if same {
		c.same++
	} else {
		c.different++
	}
}

// compare asks the listeners of ls every probe over UDP and TCP and
// compares their answers with kubernetes alone's.
func compare(t *testing.T, ls listeners, probes []probe, c *tally) {
	t.Helper()
	for _, p := range probes {
		for _, network := range []string{"udp", "tcp"} {
			want := ask(t, network, ls.kubernetes, p)
			// The probes without EDNS are meant to compare truncated
			// answers: check they do.
			if p.noEDNS && network == "udp" && !want.Truncated {
				t.Errorf("%s %s over UDP without EDNS: the answer of %s is not truncated", p.name, dns.TypeToString[p.qtype], listenerName(ls.kubernetes))
			}
			targets := []string{ls.both}
			if p.headless {
				targets = append(targets, ls.headless)
			} else {
				c.excluded++
			}
			for _, addr := range targets {
				got := ask(t, network, addr, p)
				same := normalize(got) == normalize(want)
				if p.passed && addr == ls.headless {
					same = got.Rcode == want.Rcode && normalize(&dns.Msg{Answer: got.Answer}) == normalize(&dns.Msg{Answer: want.Answer})
				}
				c.add(same)
				if !same {
					t.Errorf("%s %s over %s%s: %s answers differently from %s\n--- %s:\n%s--- %s:\n%s",
						p.name, dns.TypeToString[p.qtype], network, map[bool]string{true: " without EDNS"}[p.noEDNS],
						listenerName(addr), listenerName(ls.kubernetes), listenerName(ls.kubernetes), normalize(want), listenerName(addr), normalize(got))
				}
			}
		}
	}
}

// TestConformance compares the answers of the listeners: headless in front
// of kubernetes must answer every query as kubernetes alone does, and
// headless alone every headless query, over UDP and TCP, in the drop-in
// Corefile and with every option the two plugins share. (Zone transfers and
// the metadata the plugins publish are compared in process: TestTransfer,
// TestParseNameAsUpstream.)
func TestConformance(t *testing.T) {
	ctx := context.Background()
	objs := conformanceObjects()
	if err := testkit.Apply(ctx, shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	if err := applyImports(ctx, testkit.ServiceImports(conf)); err != nil {
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

	var c tally
	deploy := conformanceProbes(objs, clusterIPs, false)
	full := conformanceProbes(objs, clusterIPs, true)
	compare(t, shared.listeners, deploy, &c)
	compare(t, shared.full, full, &c)
	checkImportedAddressPTR(t)

	services := 0
	for _, s := range objs.Services {
		if s.Spec.ClusterIP == core.ClusterIPNone {
			services++
		}
	}
	imports := len(testkit.ServiceImports(conf))
	summary := fmt.Sprintf("conformance: %d queries over %d headless services and %d imports, drop-in and alone, all shared options, UDP and TCP; "+
		"%d comparisons: %d identical, %d different, %d left out by design\n",
		len(deploy)+len(full), services, imports, c.same+c.different, c.same, c.different, c.excluded)
	t.Log(summary)
	if root, err := testkit.Root(); err == nil {
		_ = os.MkdirAll(filepath.Join(root, "build"), 0o755)
		_ = os.WriteFile(filepath.Join(root, "build", "conformance.txt"), []byte(summary), 0o644)
	}
	if len(deploy)+len(full) < 1000 || services < 16 {
		t.Errorf("the table has %d queries over %d headless services; want at least 1000 and 16", len(deploy)+len(full), services)
	}
}

// checkImportedAddressPTR checks the PTR names headless alone gives the
// addresses of imported endpoints: with multicluster, their names in the
// first multicluster zone; without, none, as none is a Service's. The
// kubernetes plugin names them in cluster.local after the
// kubernetes.io/service-name label, or, without it, sends no answer.
func checkImportedAddressPTR(t *testing.T) {
	for _, c := range []struct {
		ip, want string
	}{
		{"10.31.0.1", "db-0.c1.db.conf.svc.clusterset.local."},
		{"10.31.0.2", "10-31-0-2.c1.db.conf.svc.clusterset.local."},
		{"fd00:31::1", "db-0.c1.db.conf.svc.clusterset.local."},
		{"10.32.0.1", "db-0.c2.db.conf.svc.clusterset.local."},
	} {
		rev, _ := dns.ReverseAddr(c.ip)
		for _, network := range []string{"udp", "tcp"} {
			r := testkit.Query(t, network, shared.full.headless, rev, dns.TypePTR)
			sameRecords(t, "PTR of imported "+c.ip+" over "+network+" at full headless", r.Answer, rev+" 30 IN PTR "+c.want)
			r = testkit.Query(t, network, shared.headless, rev, dns.TypePTR)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) > 0 {
				t.Errorf("PTR of imported %s over %s at headless, without multicluster: %s, want NXDOMAIN", c.ip, network, r)
			}
		}
	}
}

// waitForObjects waits until the last objects applied are served on every
// listener: the last slice, the imported addresses of both clusters.
func waitForObjects(t *testing.T) {
	for _, w := range []struct {
		name    string
		answers int
		addrs   []string
	}{
		{"z-0.last.conf.svc.cluster.local.", 1, []string{shared.kubernetes, shared.both, shared.headless, shared.full.kubernetes, shared.full.both, shared.full.headless}},
		{"db.conf.svc.clusterset.local.", 3, []string{shared.full.kubernetes, shared.full.both, shared.full.headless}},
	} {
		for _, addr := range w.addrs {
			testkit.Eventually(t, 15*time.Second, w.name+" at "+listenerName(addr), func() (bool, string) {
				r := testkit.Query(t, "udp", addr, w.name, dns.TypeA)
				return r.Rcode == dns.RcodeSuccess && len(r.Answer) == w.answers, r.String()
			})
		}
	}
}

// named are the servers of other control planes than the shared one, whose
// listeners listenerName names too.
var named []*env

// listenerName names the listener of the shared server, or of a server of
// named, at addr.
func listenerName(addr string) string {
	type prefixed struct {
		ls     listeners
		prefix string
	}
	all := []prefixed{{shared.listeners, ""}, {shared.full, "full "}}
	for _, e := range named {
		all = append(all, prefixed{e.listeners, ""}, prefixed{e.full, "full "})
	}
	for _, l := range all {
		switch addr {
		case l.ls.both:
			return l.prefix + "headless+kubernetes"
		case l.ls.kubernetes:
			return l.prefix + "kubernetes"
		case l.ls.headless:
			return l.prefix + "headless"
		}
	}
	return addr
}
