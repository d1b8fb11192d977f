package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

const (
	hugeNS        = "huge"
	hugeEndpoints = 1000
	// hugePerSlice is the EndpointSlice controller's default.
	hugePerSlice = 100
)

// hugeObjects returns a headless service of n endpoints, each with ports web
// 80 and metrics 9090, in slices of hugePerSlice.
func hugeObjects(name string, n int) testkit.Objects {
	ports := []discovery.EndpointPort{testkit.Port("web", 80, core.ProtocolTCP), testkit.Port("metrics", 9090, core.ProtocolTCP)}
	o := testkit.Objects{Services: []*core.Service{testkit.Headless(hugeNS, name)}}
	for lo := 0; lo < n; lo += hugePerSlice {
		var eps []discovery.Endpoint
		for i := lo; i < min(n, lo+hugePerSlice); i++ {
			eps = append(eps, testkit.Endpoint(fmt.Sprintf("10.100.%d.%d", i/250, i%250+1), fmt.Sprintf("%s-%d", name, i)))
		}
		o.Slices = append(o.Slices, testkit.Slice(hugeNS, name, fmt.Sprintf("%s-%d", name, lo/hugePerSlice), discovery.AddressTypeIPv4, ports, eps...))
	}
	return o
}

// exchangeSize sends m over network and returns the reply and its size.
func exchangeSize(t testing.TB, network, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	r, err := testkit.Exchange(network, addr, m)
	if err != nil {
		t.Fatalf("%s over %s: %v", m.Question[0].Name, network, err)
	}
	if err := testkit.WellFormed(r); err != nil {
		t.Fatalf("%s over %s: %v", m.Question[0].Name, network, err)
	}
	// The size on the wire: the server compresses what it truncates.
	c := r.Copy()
	c.Compress = true
	b, err := c.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return r, len(b)
}

// checkSRVPart checks that r, a part of the SRV answer of the huge
// service, has distinct records, glue only for its targets and at most once
// each, and returns the number of SRV and glue records.
func checkSRVPart(t testing.TB, what string, r *dns.Msg) (srvs, glue int) {
	t.Helper()
	seen := map[string]bool{}
	targets := map[string]bool{}
	for _, rr := range r.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok || seen[rr.String()] {
			t.Errorf("%s: unexpected or repeated record %s", what, rr)
			continue
		}
		seen[rr.String()] = true
		targets[srv.Target] = true
		srvs++
	}
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		if !targets[rr.Header().Name] || seen[rr.String()] {
			t.Errorf("%s: unexpected or repeated glue %s", what, rr)
		}
		seen[rr.String()] = true
		glue++
	}
	return srvs, glue
}

// TestHugeService serves a headless service of 1000 endpoints with 2 ports:
// over UDP the SRV answer comes truncated to what fits, with TC set; over
// TCP as much as fits in a DNS message. (make bench measures big services.)
func TestHugeService(t *testing.T) {
	t.Parallel()
	exclusive(t)
	ctx := context.Background()
	if err := testkit.Apply(ctx, shared.cluster.Client, hugeObjects("big", hugeEndpoints)); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{})
	big := "big." + hugeNS + ".svc.cluster.local."
	testkit.Eventually(t, time.Minute, "the huge service in DNS", func() (bool, string) {
		r, err := testkit.Exchange("tcp", s.addr, testkit.NewQuery(big, dns.TypeA))
		if err != nil {
			return false, err.Error()
		}
		return len(r.Answer) == hugeEndpoints, fmt.Sprintf("%d A records", len(r.Answer))
	})

	// A over TCP: the whole answer fits.
	a, size := exchangeSize(t, "tcp", s.addr, testkit.NewQuery(big, dns.TypeA))
	seen := map[string]bool{}
	for _, rr := range a.Answer {
		seen[rr.(*dns.A).A.String()] = true
	}
	if len(seen) != hugeEndpoints || a.Truncated {
		t.Errorf("A over TCP: %d distinct addresses in %d records, TC %v; want %d", len(seen), len(a.Answer), a.Truncated, hugeEndpoints)
	}
	t.Logf("A over TCP: %d records, %d bytes", len(a.Answer), size)

	// SRV over UDP without EDNS: 512 bytes at most, TC set.
	plain := new(dns.Msg).SetQuestion(big, dns.TypeSRV)
	r, size := exchangeSize(t, "udp", s.addr, plain)
	n, g := checkSRVPart(t, "SRV over UDP", r)
	t.Logf("SRV over UDP without EDNS: %d SRV, %d glue, %d bytes, TC %v", n, g, size, r.Truncated)
	if !r.Truncated || size > dns.MinMsgSize || r.Rcode != dns.RcodeSuccess {
		t.Errorf("SRV over UDP without EDNS: %d bytes, TC %v, rcode %s; want at most 512 and TC", size, r.Truncated, dns.RcodeToString[r.Rcode])
	}

	// With EDNS and a buffer of 1232 bytes: as much as fits, TC set.
	edns := new(dns.Msg).SetQuestion(big, dns.TypeSRV)
	edns.SetEdns0(1232, false)
	r, size = exchangeSize(t, "udp", s.addr, edns)
	n, g = checkSRVPart(t, "SRV over UDP with EDNS", r)
	t.Logf("SRV over UDP with EDNS 1232: %d SRV, %d glue, %d bytes, TC %v", n, g, size, r.Truncated)
	if !r.Truncated || size > 1232 || n < 10 || r.Rcode != dns.RcodeSuccess {
		t.Errorf("SRV over UDP with EDNS 1232: %d SRV in %d bytes, TC %v, rcode %s; want at most 1232 bytes, full, and TC", n, size, r.Truncated, dns.RcodeToString[r.Rcode])
	}

	// Over TCP the answer is 1000 targets x 2 ports = 2000 SRV records and
	// 1000 glue records, some 130 kB: more than a DNS message can hold
	// (65535 bytes). CoreDNS fills the message with as many SRV records as
	// fit and sets TC. One port alone, 1000 SRV and their glue, is some 60 kB.
	for _, c := range []struct {
		name     string
		srv, all int // in the whole answer
	}{
		{big, 2 * hugeEndpoints, 3 * hugeEndpoints},
		{"_web._tcp." + big, hugeEndpoints, 2 * hugeEndpoints},
	} {
		r, size := exchangeSize(t, "tcp", s.addr, testkit.NewQuery(c.name, dns.TypeSRV))
		n, g := checkSRVPart(t, "SRV over TCP", r)
		t.Logf("SRV %s over TCP: %d SRV, %d glue, %d bytes, TC %v", c.name, n, g, size, r.Truncated)
		switch {
		case r.Rcode != dns.RcodeSuccess:
			t.Errorf("SRV %s over TCP: rcode %s", c.name, dns.RcodeToString[r.Rcode])
		case n == c.srv && g == c.all-c.srv && !r.Truncated:
			// The whole answer.
		case r.Truncated && size <= dns.MaxMsgSize && size > dns.MaxMsgSize-1024 && n > 0:
			// As much as fits.
		default:
			t.Errorf("SRV %s over TCP: %d SRV and %d glue in %d bytes, TC %v; want %d and %d, or a full message with TC",
				c.name, n, g, size, r.Truncated, c.srv, c.all-c.srv)
		}
	}

	s.alive(t)
}
