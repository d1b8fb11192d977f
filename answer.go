package headless

import (
	"context"
	"math"
	"slices"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// The records of an answer, built from a selection as the kubernetes plugin
// builds them from its list of services (plugin.A, plugin.SRV, ...): same
// records, same order, same duplicates dropped.

// addresses returns the A (or, with v6, AAAA) records of the selection,
// owned by the query name, in the order of the selection. An FQDN endpoint
// yields a CNAME to its name followed by what that name resolves to.
func (h *Headless) addresses(ctx context.Context, state request.Request, sel selection, v6 bool) (rrs []dns.RR, truncated bool) {
	s := sel.snap
	hdr := dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
	want := kindV4
	if v6 {
		hdr.Rrtype, want = dns.TypeAAAA, kindV6
	}
	n := 0
	for _, e := range sel.entries {
		if e.flags&firstAddr != 0 && s.eps[e.ep].kind == want {
			n++
		}
	}
	// The records of one answer in one allocation of each kind.
	rrs = make([]dns.RR, 0, n)
	var as []dns.A
	var aaaas []dns.AAAA
	if v6 {
		aaaas = make([]dns.AAAA, 0, n)
	} else {
		as = make([]dns.A, 0, n)
	}
	for _, e := range sel.entries {
		ep := s.eps[e.ep]
		switch {
		case ep.kind == kindFQDN:
			cname, tc := h.follow(ctx, state, s.fqdns[ep.off])
			rrs, truncated = append(rrs, cname...), truncated || tc
		case e.flags&firstAddr == 0 || ep.kind != want:
		case v6:
			aaaas = append(aaaas, dns.AAAA{Hdr: hdr, AAAA: s.ip(e.ep)})
			rrs = append(rrs, &aaaas[len(aaaas)-1])
		default:
			as = append(as, dns.A{Hdr: hdr, A: s.ip(e.ep)})
			rrs = append(rrs, &as[len(as)-1])
		}
	}
	return rrs, truncated
}

// maxCNAMEDepth bounds the lookups that CNAMEs to FQDN endpoints start
// through the server, as plugin.A bounds its chains.
const maxCNAMEDepth = 10

type depthKey struct{}

// follow returns the CNAME of the query name to target and the records target
// has for the query type, looked up through the server itself, as plugin.A
// does for a name outside the zone. A target in the zone is looked up the
// same way, so that a target that is not headless gets the next plugin's
// answer; the CNAME is then kept only when the target has records.
func (h *Headless) follow(ctx context.Context, state request.Request, target string) ([]dns.RR, bool) {
	if plugin.Name(state.Name()).Matches(target) {
		return nil, false // a loop: x CNAME x
	}
	depth, _ := ctx.Value(depthKey{}).(int)
	if depth >= maxCNAMEDepth {
		return nil, false
	}
	ctx = context.WithValue(ctx, depthKey{}, depth+1)
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl}, Target: target}
	m, err := h.upstream.Lookup(ctx, state, target, state.QType())
	if err != nil || m == nil {
		return nil, false
	}
	if dns.IsSubDomain(state.Zone, target) && (m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0) {
		return nil, m.Truncated
	}
	return append([]dns.RR{cname}, m.Answer...), m.Truncated
}

// srv returns the SRV records of the selection, owned by the query name,
// with targets in zone, and the targets' addresses as glue. FQDN endpoints
// have no SRV record, as in the kubernetes plugin.
func (h *Headless) srv(sel selection, qname, zone string) (answer, extra []dns.RR) {
	s := sel.snap
	n := 0
	for _, e := range sel.entries {
		if s.eps[e.ep].kind != kindFQDN {
			n++
		}
	}
	weight := srvWeight(n)
	targets := make([]string, len(s.hosts)) // built once a label
	for _, e := range sel.entries {
		ep := s.eps[e.ep]
		if e.flags&(firstSRV|firstGlue) == 0 {
			continue
		}
		if targets[ep.host] == "" {
			targets[ep.host] = s.target(ep.host, zone)
		}
		target := targets[ep.host]
		if e.flags&firstSRV != 0 {
			answer = append(answer, &dns.SRV{
				Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: h.ttl},
				Weight: weight, Port: uint16(s.ports[e.port].port), Target: target, // #nosec G115 -- a port number
			})
		}
		if e.flags&firstGlue == 0 {
			continue
		}
		hdr := dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
		if ep.kind == kindV6 {
			hdr.Rrtype = dns.TypeAAAA
			extra = append(extra, &dns.AAAA{Hdr: hdr, AAAA: s.ip(e.ep)})
		} else {
			extra = append(extra, &dns.A{Hdr: hdr, A: s.ip(e.ep)})
		}
	}
	return answer, extra
}

// srvWeight is the weight the kubernetes plugin gives each of n SRV records
// of priority 0 (plugin.SRV), computed the same way so that both agree to
// the unit.
func srvWeight(n int) uint16 {
	w := uint16(math.Floor(100.0 / float64(100*n) * 100))
	return max(w, 1)
}

// cname returns the CNAME record of a name whose first endpoint is an FQDN,
// as plugin.CNAME answers.
func (h *Headless) cname(sel selection, qname string) []dns.RR {
	if len(sel.entries) == 0 {
		return nil
	}
	ep := sel.snap.eps[sel.entries[0].ep]
	if ep.kind != kindFQDN {
		return nil
	}
	return []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl},
		Target: sel.snap.fqdns[ep.off],
	}}
}

// ptr returns one PTR record, owned by qname, per distinct name of refs in
// zone.
func (h *Headless) ptr(qname string, refs []ptrRef, zone string) []dns.RR {
	var names []string
	for _, ref := range refs {
		if h.stablePTR && !ref.snap.hosts[ref.host].hostname {
			continue
		}
		if name := ref.snap.target(ref.host, zone); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	rrs := make([]dns.RR, len(names))
	for i, name := range names {
		rrs[i] = &dns.PTR{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: h.ttl}, Ptr: name}
	}
	return rrs
}

// soa returns the SOA record of zone, as the kubernetes plugin writes it
// (plugin.SOA), with minimum ttl.
func (h *Headless) soa(zone string, ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: min(ttl, 300)},
		Ns:      dnsutil.Join("ns.dns", zone),
		Mbox:    dnsutil.Join("hostmaster", zone),
		Serial:  h.index.serial(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// dnsVersion is the record that names the version of the Kubernetes DNS
// specification served.
func dnsVersion(qname string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800}, Txt: []string{kubernetes.DNSSchemaVersion}}
}
