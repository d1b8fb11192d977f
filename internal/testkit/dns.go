package testkit

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// NewQuery returns a query for name and qtype with EDNS0 and a 4096 byte
// buffer, as dig sends.
func NewQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	return m
}

// Exchange sends m to addr over network ("udp" or "tcp") and returns the
// reply, trying three times in all on a network error: UDP under load can
// lose a datagram.
func Exchange(network, addr string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	var err error
	for range 3 {
		var r *dns.Msg
		if r, _, err = c.Exchange(m, addr); err == nil {
			return r, nil
		}
	}
	return nil, err
}

// Query asks addr for name and qtype over network with NewQuery and
// Exchange, and fails the test when no reply comes.
func Query(t testing.TB, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := Exchange(network, addr, NewQuery(name, qtype))
	if err != nil {
		t.Fatalf("%s %s to %s over %s: %v", name, dns.TypeToString[qtype], addr, network, err)
	}
	return r
}

// Records returns rrs as zone file lines, sorted, without the OPT
// pseudo-record: a form in which two answers compare.
func Records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// CaseMix writes every other letter of name in upper case: DNS names match
// without regard to case, and answers keep the query's.
func CaseMix(name string) string {
	b := []byte(name)
	for i := 0; i < len(b); i += 2 {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// WellFormed returns an error if m does not pack, or if one of its names is
// not a valid domain name of at most 255 bytes.
func WellFormed(m *dns.Msg) error {
	if _, err := m.Copy().Pack(); err != nil {
		return fmt.Errorf("does not pack: %w", err)
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			names := []string{rr.Header().Name}
			switch rr := rr.(type) {
			case *dns.OPT:
				continue
			case *dns.SRV:
				names = append(names, rr.Target)
			case *dns.PTR:
				names = append(names, rr.Ptr)
			}
			for _, name := range names {
				if _, ok := dns.IsDomainName(name); !ok || len(name) > 255 || !dns.IsFqdn(name) {
					return fmt.Errorf("%q in %s is not a valid domain name", name, rr)
				}
			}
		}
	}
	return nil
}
