package reliability

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// rawUDP sends b to addr and returns the reply, or nil when none comes
// within wait.
func rawUDP(t testing.TB, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// hostileCase is a packet and what the server must do with it.
type hostileCase struct {
	what   string
	packet []byte
	// query is set when packet is a query the server must answer: then
	// some reply must come, and it must not be SERVFAIL unless the name is
	// outside the zones of the plugin, which has no next plugin to pass it
	// to (CoreDNS answers SERVFAIL then).
	query bool
}

// inZones reports whether the question of the DNS message b, if any, is in
// the zones of the plugin.
func inZones(b []byte) bool {
	m := new(dns.Msg)
	if m.Unpack(b) != nil || len(m.Question) == 0 {
		return false
	}
	name := strings.ToLower(m.Question[0].Name)
	for _, z := range []string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."} {
		if dns.IsSubDomain(z, name) {
			return true
		}
	}
	return false
}

// packed packs m, failing the test if it cannot.
func packed(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// label returns a label of n characters c.
func label(c byte, n int) string { return strings.Repeat(string(c), n) }

// TestHostileQueries sends the running server what a hostile or broken
// client would: random bytes, truncated packets, several questions, the
// CHAOS class, ANY, names of the longest length and labels, and every type
// of question for a headless name. Every reply must be a well-formed
// message, the server must stay up, and it must answer normally afterwards.
func TestHostileQueries(t *testing.T) {
	t.Parallel()
	exclusive(t)
	ctx := context.Background()
	if err := testkit.Apply(ctx, shared.cluster.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{})
	const consul = "consul-server.default.svc.cluster.local."
	testkit.Eventually(t, 30*time.Second, "the seed in DNS", func() (bool, string) {
		r := testkit.Query(t, "udp", s.addr, consul, dns.TypeA)
		return len(r.Answer) == 3, r.String()
	})

	var cases []hostileCase
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		b := make([]byte, r.IntN(600))
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		if i%3 == 0 && len(b) >= 12 {
			// A header that looks like a query: one question, no answers.
			copy(b[2:], []byte{0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})
		}
		cases = append(cases, hostileCase{what: fmt.Sprintf("random %d bytes", len(b)), packet: b})
	}
	full := testkit.NewQuery("_http._tcp."+consul, dns.TypeSRV)
	wire := packed(t, full)
	for n := range len(wire) {
		cases = append(cases, hostileCase{what: fmt.Sprintf("query truncated to %d of %d bytes", n, len(wire)), packet: wire[:n]})
	}
	// Bytes after a query.
	cases = append(cases, hostileCase{what: "query and trailing garbage", packet: append(packed(t, testkit.NewQuery(consul, dns.TypeA)), 0xde, 0xad, 0xbe, 0xef)})

	several := new(dns.Msg)
	several.Id = dns.Id()
	several.Question = []dns.Question{
		{Name: consul, Qtype: dns.TypeA, Qclass: dns.ClassINET},
		{Name: consul, Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
		{Name: "consul-server-0." + consul, Qtype: dns.TypeA, Qclass: dns.ClassINET},
	}
	cases = append(cases, hostileCase{what: "three questions", packet: packed(t, several)})
	none := new(dns.Msg)
	none.Id = dns.Id()
	cases = append(cases, hostileCase{what: "no question", packet: packed(t, none)})

	chaos := new(dns.Msg).SetQuestion(consul, dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	cases = append(cases, hostileCase{what: "CHAOS class", packet: packed(t, chaos), query: true})
	version := new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
	version.Question[0].Qclass = dns.ClassCHAOS
	cases = append(cases, hostileCase{what: "CHAOS version.bind", packet: packed(t, version), query: true})
	for _, class := range []uint16{dns.ClassANY, dns.ClassNONE, dns.ClassHESIOD, 12345} {
		m := new(dns.Msg).SetQuestion(consul, dns.TypeA)
		m.Question[0].Qclass = class
		cases = append(cases, hostileCase{what: fmt.Sprintf("class %d", class), packet: packed(t, m), query: true})
	}
	for _, name := range []string{consul, "consul-server-0." + consul, "_http._tcp." + consul, "default.svc.cluster.local.", "cluster.local."} {
		cases = append(cases, hostileCase{what: "ANY " + name, packet: packed(t, testkit.NewQuery(name, dns.TypeANY)), query: true})
	}
	// The longest names: 255 bytes in wire format, labels of 63, under the
	// zone, in each position a name of the plugin has.
	zone := "svc.cluster.local."
	l63 := label('a', 63)
	pad := func(suffix string) string {
		// Fill with labels up to 255 bytes in wire format (len+1 for the
		// text form with its final dot).
		name := suffix
		for len(name)+1 < 255 {
			n := min(63, 255-(len(name)+1)-1)
			name = label('x', n) + "." + name
		}
		return name
	}
	for _, name := range []string{
		pad(zone), pad(l63 + "." + zone), pad(l63 + "." + l63 + "." + zone),
		pad("consul-server.default." + zone), pad("_http._tcp.consul-server.default." + zone),
		l63 + "." + l63 + "." + l63 + "." + zone, "_" + label('p', 62) + "._" + label('t', 62) + ".consul-server.default." + zone,
		pad("in-addr.arpa."), pad("ip6.arpa."), "255.255.255.255.in-addr.arpa.", "1.2.3.4.5.in-addr.arpa.", "x.10.in-addr.arpa.",
		strings.Repeat("f.", 33) + "ip6.arpa.", strings.Repeat("0.", 32) + "ip6.arpa.",
		`a\.b.consul-server.default.` + zone, `\000.consul-server.default.` + zone, `CONSUL-SERVER.Default.SVC.Cluster.Local.`,
		`\255\254.` + zone, `*.consul-server.default.` + zone, `..`[1:],
	} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypePTR, dns.TypeAAAA} {
			m := testkit.NewQuery(name, qtype)
			b, err := m.Pack()
			if err != nil {
				t.Logf("%q does not pack (%v): sent raw", name, err)
				continue
			}
			cases = append(cases, hostileCase{what: fmt.Sprintf("%s %q (%d)", dns.TypeToString[qtype], name, len(name)), packet: b, query: true})
		}
	}
	// Every type under a headless name, a host name and a port name.
	for _, name := range []string{consul, "consul-server-1." + consul, "_http._tcp." + consul, reverse(t, testkit.ConsulIPs[1])} {
		for qtype := 1; qtype <= 260; qtype++ {
			cases = append(cases, hostileCase{what: fmt.Sprintf("type %d %s", qtype, name), packet: packed(t, testkit.NewQuery(name, uint16(qtype))), query: true})
		}
		cases = append(cases, hostileCase{what: "type 65535 " + name, packet: packed(t, testkit.NewQuery(name, 65535)), query: true})
	}
	// Header flags: a response, other opcodes, a bad EDNS version.
	resp := testkit.NewQuery(consul, dns.TypeA)
	resp.Response = true
	cases = append(cases, hostileCase{what: "a response", packet: packed(t, resp)})
	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate, 15} {
		m := testkit.NewQuery(consul, dns.TypeA)
		m.Opcode = op
		cases = append(cases, hostileCase{what: fmt.Sprintf("opcode %d", op), packet: packed(t, m), query: op != dns.OpcodeIQuery && op != 15})
	}
	badEDNS := testkit.NewQuery(consul, dns.TypeA)
	badEDNS.IsEdns0().SetVersion(1)
	cases = append(cases, hostileCase{what: "EDNS version 1", packet: packed(t, badEDNS), query: true})
	tiny := new(dns.Msg).SetQuestion(consul, dns.TypeSRV)
	tiny.SetEdns0(1, false)
	cases = append(cases, hostileCase{what: "EDNS buffer of 1 byte", packet: packed(t, tiny), query: true})

	rcodes := map[string]int{}
	replies := 0
	for _, c := range cases {
		reply := rawUDP(t, s.addr, c.packet, 100*time.Millisecond)
		if reply == nil {
			if c.query {
				// One retry: UDP.
				if reply = rawUDP(t, s.addr, c.packet, 2*time.Second); reply == nil {
					t.Errorf("%s: no reply", c.what)
				}
			}
			if reply == nil {
				continue
			}
		}
		replies++
		m := new(dns.Msg)
		if err := m.Unpack(reply); err != nil {
			t.Errorf("%s: the reply does not unpack: %v", c.what, err)
			continue
		}
		rcodes[dns.RcodeToString[m.Rcode]]++
		if err := testkit.WellFormed(m); err != nil {
			t.Errorf("%s: %v\n%s", c.what, err, m)
		}
		if len(reply) > 512 && m.IsEdns0() == nil {
			t.Errorf("%s: %d bytes over UDP without EDNS", c.what, len(reply))
		}
		if c.query && m.Rcode == dns.RcodeServerFailure && inZones(c.packet) {
			t.Errorf("%s: SERVFAIL\n%s", c.what, m)
		}
	}
	t.Logf("%d packets, %d replies; rcodes %v", len(cases), replies, rcodes)

	// Over TCP: garbage, a length larger than what follows, a message cut
	// short, and several queries on one connection.
	for _, b := range [][]byte{
		{0xff, 0xff, 1, 2, 3},
		{0x00, 0x00},
		append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire[:len(wire)/2]...),
		append(binary.BigEndian.AppendUint16(nil, 5), []byte{1, 2, 3, 4, 5}...),
	} {
		c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(b)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		if n, err := c.Read(buf); err == nil && n >= 2 {
			m := new(dns.Msg)
			if err := m.Unpack(buf[2:n]); err != nil {
				t.Errorf("TCP %x: the reply does not unpack: %v", b, err)
			}
		}
		c.Close()
	}
	conn, err := dns.DialTimeout("tcp", s.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := conn.WriteMsg(testkit.NewQuery(consul, dns.TypeSRV)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("pipelined TCP query %d: %v", i, err)
		}
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 15 {
			t.Fatalf("pipelined TCP query %d: %s", i, m)
		}
	}
	conn.Close()

	s.alive(t)
	if r := testkit.Query(t, "udp", s.addr, consul, dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
		t.Errorf("a normal query afterwards: %s", r)
	}
	if l := s.Lines("panic"); len(l) > 0 {
		t.Errorf("the log has a panic: %s", l[0])
	}
}

// TestHostileObjects loads objects at the edges of what the API server
// accepts: names of 63 characters, hostnames that are not DNS labels,
// duplicate addresses, ports without name, number or protocol, SCTP, a
// pod name with dots with endpoint_pod_names, FQDN slices. The server must
// not crash, every answer must be well formed, and the endpoints it skips
// must be logged.
func TestHostileObjects(t *testing.T) {
	t.Parallel()
	exclusive(t)
	ctx := context.Background()
	client := shared.cluster.Client
	ns := "n" + label('s', 62)      // a namespace of 63 characters
	svcName := "s" + label('v', 62) // a service of 63 characters
	host63 := "h" + label('o', 62)
	s := startServer(t, serverOptions{PodNames: true})

	name := func(v string) *string { return &v }
	num := func(v int32) *int32 { return &v }
	proto := func(p core.Protocol) *core.Protocol { return &p }
	ports := []discovery.EndpointPort{
		{Name: name(""), Port: num(7000), Protocol: proto(core.ProtocolTCP)}, // unnamed
		{Name: name("sctp"), Port: num(7001), Protocol: proto(core.ProtocolSCTP)},
		{Name: name("noport"), Protocol: proto(core.ProtocolUDP)}, // no number: all ports
		{Name: name("noproto"), Port: num(7003)},
		{Name: name(label('p', 15)), Port: num(65535), Protocol: proto(core.ProtocolTCP)},
	}
	eps := []discovery.Endpoint{
		testkit.Endpoint("10.110.0.1", host63),
		testkit.Endpoint("10.110.0.2", "dup-a"),
		testkit.Endpoint("10.110.0.2", "dup-b"), // one address, two hostnames
		testkit.Endpoint("10.110.0.3", "same"),
		testkit.Endpoint("10.110.0.3", "same"),            // the same twice
		{Addresses: []string{"10.110.0.4", "10.110.0.5"}}, // two addresses, no hostname
	}
	svc := testkit.Headless(ns, svcName)
	svc.Spec.Selector = nil
	if err := testkit.Apply(ctx, client, testkit.Objects{Services: []*core.Service{svc}}); err != nil {
		t.Fatal(err)
	}
	// Each slice alone: what the API server refuses is no threat, but log it.
	accepted := map[string]bool{}
	for _, sl := range []*discovery.EndpointSlice{
		testkit.Slice(ns, svcName, "main", discovery.AddressTypeIPv4, ports, eps...),
		testkit.Slice(ns, svcName, "pods", discovery.AddressTypeIPv4, ports[:1],
			testkit.Pod(testkit.Endpoint("10.110.0.6", ""), "pod.with.dots"),
			testkit.Pod(testkit.Endpoint("10.110.0.8", ""), "p"+label('o', 70))), // too long: the address names it
		testkit.Slice(ns, svcName, "upper", discovery.AddressTypeIPv4, ports[:1],
			testkit.Pod(testkit.Endpoint("10.110.0.7", ""), "Pod-Upper")),
		// The same endpoint in a second slice.
		testkit.Slice(ns, svcName, "again", discovery.AddressTypeIPv4, ports[:1], testkit.Endpoint("10.110.0.3", "same")),
		testkit.Slice(ns, svcName, "v6", discovery.AddressTypeIPv6, ports[:2],
			testkit.Endpoint("fd00::1", "six"), testkit.Endpoint("fd00::", "")),
		testkit.Slice(ns, svcName, "mapped", discovery.AddressTypeIPv6, ports[:2], testkit.Endpoint("::ffff:10.110.0.9", "mapped")),
		testkit.Slice(ns, svcName, "fqdn", discovery.AddressTypeFQDN, ports[:1], testkit.Endpoint("example.com", "fqdn")),
		testkit.Slice(ns, svcName, "noports", discovery.AddressTypeIPv4, nil, testkit.Endpoint("10.110.0.10", "bare")),
	} {
		// The service has no selector: its slices are hand-written, not
		// the EndpointSlice controller's.
		sl.Labels[discovery.LabelManagedBy] = "hostile.example.com"
		if err := testkit.Apply(ctx, client, testkit.Objects{Slices: []*discovery.EndpointSlice{sl}}); err != nil {
			t.Logf("the API server refuses slice %s: %v", sl.Name, err)
			continue
		}
		accepted[sl.Name] = true
	}
	if !accepted["main"] || !accepted["noports"] {
		t.Fatal("the API server refuses the main slices")
	}
	base := svcName + "." + ns + ".svc.cluster.local."
	testkit.Eventually(t, 30*time.Second, "the objects in DNS", func() (bool, string) {
		r := testkit.Query(t, "udp", s.addr, "bare."+base, dns.TypeA)
		return len(r.Answer) == 1, r.String()
	})
	names := []string{base, ns + ".svc.cluster.local."}
	for _, h := range []string{host63, "dup-a", "dup-b", "same", "10-110-0-4", "10-110-0-5", "pod.with.dots", "Pod-Upper", "pod-upper",
		"10-110-0-8", "six", "fd00--0", "mapped", "fqdn", "bare"} {
		names = append(names, h+"."+base)
	}
	for _, p := range []string{"_tcp", "_sctp", "_udp", "_", "_noport._udp", "_noproto._tcp", "_noproto", "_sctp._sctp", "_" + label('p', 15) + "._tcp", "_" + label('p', 15) + "._" + label('p', 15)} {
		names = append(names, strings.TrimPrefix(p+"."+base, "."))
	}
	for i := 1; i <= 10; i++ {
		names = append(names, reverse(t, fmt.Sprintf("10.110.0.%d", i)))
	}
	names = append(names, reverse(t, "fd00::1"), reverse(t, "fd00::"), reverse(t, "::ffff:10.110.0.9"))
	for _, n := range names {
		if _, ok := dns.IsDomainName(n); !ok {
			t.Logf("not a name: %q", n)
			continue
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeANY} {
			for _, network := range []string{"udp", "tcp"} {
				m, err := testkit.Exchange(network, s.addr, testkit.NewQuery(n, qtype))
				if err != nil {
					t.Fatalf("%s %s over %s: %v", n, dns.TypeToString[qtype], network, err)
				}
				if err := testkit.WellFormed(m); err != nil {
					t.Errorf("%s %s: %v\n%s", n, dns.TypeToString[qtype], err, m)
				}
				if m.Rcode == dns.RcodeServerFailure {
					t.Errorf("%s %s: SERVFAIL", n, dns.TypeToString[qtype])
				}
			}
		}
	}
	srv, err := testkit.Exchange("tcp", s.addr, testkit.NewQuery(base, dns.TypeSRV))
	if err != nil {
		t.Fatal(err)
	}
	a := testkit.Query(t, "udp", s.addr, base, dns.TypeA)
	t.Logf("%s: %d A, %d SRV, %d glue (over TCP)", base, len(a.Answer), len(srv.Answer), len(srv.Extra)-1)
	// Every target has glue, and resolves to the address of its glue.
	glue := map[string][]string{}
	for _, rr := range srv.Extra {
		switch rr := rr.(type) {
		case *dns.A:
			glue[rr.Hdr.Name] = append(glue[rr.Hdr.Name], rr.A.String())
		case *dns.AAAA:
			glue[rr.Hdr.Name] = append(glue[rr.Hdr.Name], rr.AAAA.String())
		}
	}
	for target, addrs := range glue {
		if strings.HasPrefix(target, "pod.with.dots.") {
			// Named after a pod with dots: the kubernetes plugin gives it as a
			// target too, and neither can answer for it.
			continue
		}
		var resolved []string
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			for _, rr := range testkit.Query(t, "udp", s.addr, target, qtype).Answer {
				switch rr := rr.(type) {
				case *dns.A:
					resolved = append(resolved, rr.A.String())
				case *dns.AAAA:
					resolved = append(resolved, rr.AAAA.String())
				}
			}
		}
		for _, a := range addrs {
			if !slices.Contains(resolved, a) {
				t.Errorf("SRV target %s with glue %s resolves to %v", target, a, resolved)
			}
		}
	}
	for _, rr := range srv.Answer {
		if target := rr.(*dns.SRV).Target; glue[target] == nil {
			t.Errorf("no glue for %s", target)
		}
	}
	seen := map[string]bool{}
	for _, rr := range a.Answer {
		if seen[rr.String()] {
			t.Errorf("A record twice: %s", rr)
		}
		seen[rr.String()] = true
	}
	for _, rr := range srv.Answer {
		if seen[rr.String()] {
			t.Errorf("SRV record twice: %s", rr)
		}
		seen[rr.String()] = true
	}
	if r := testkit.Query(t, "udp", s.addr, "pod.with.dots."+base, dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("the endpoint named by a pod with dots: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// A pod name with dots names no endpoint, but its address stays in the
	// service's answers, as in the kubernetes plugin.
	if !accepted["pods"] {
		t.Log("the API server refuses a pod name with dots")
	} else if !slices.ContainsFunc(a.Answer, func(rr dns.RR) bool { return strings.HasSuffix(rr.String(), "10.110.0.6") }) {
		t.Errorf("the address of the pod with dots is missing from %s A:\n%s", base, a)
	}
	s.alive(t)
	if l := s.Lines("panic"); len(l) > 0 {
		t.Errorf("the log has a panic: %s", l[0])
	}
}
