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
func (h *Headless) addresses(ctx context.Context, state request.Request, sel *selection, v6 bool) (rrs []dns.RR, truncated bool) {
	hdr := dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
	want := kindV4
	if v6 {
		hdr.Rrtype, want = dns.TypeAAAA, kindV6
	}
	n := 0
	for i := range sel.segments() {
		seg := sel.segment(i)
		for _, e := range seg.entries {
			if e.flags&firstAddr != 0 && seg.part.eps[e.ep].kind == want {
				n++
			}
		}
	}
	var as []dns.A
	var aaaas []dns.AAAA
	if v6 {
		rrs, aaaas = newRecords[dns.AAAA](n)
	} else {
		rrs, as = newRecords[dns.A](n)
	}
	d := newDedup(sel)
	var c chaser
	for i := range sel.segments() {
		seg := sel.segment(i)
		p := seg.part
		for _, e := range seg.entries {
			ep := p.eps[e.ep]
			switch {
			case ep.kind == kindFQDN:
				cname, tc := c.follow(ctx, h, state, p.fqdn(e.ep))
				rrs, truncated = append(rrs, cname...), truncated || tc
			case e.flags&firstAddr == 0 || ep.kind != want || !d.addr(p, e):
			case v6:
				aaaas = append(aaaas, dns.AAAA{Hdr: hdr, AAAA: p.ip(e.ep)})
				rrs = append(rrs, &aaaas[len(aaaas)-1])
			default:
				as = append(as, dns.A{Hdr: hdr, A: p.ip(e.ep)})
				rrs = append(rrs, &as[len(as)-1])
			}
		}
	}
	return rrs, truncated
}

// smallAnswer is the most records that newRecords allocates at once with
// the answer that holds them: a StatefulSet's service of a few pods, and a
// pod's name.
const smallAnswer = 4

// newRecords returns an empty answer and room for n records of type T that
// it holds, in one allocation when n is at most smallAnswer and in one a
// slice otherwise. The records are new for each query: the cache plugin sets
// the TTLs of the records it is given and the rewrite plugin their names, so
// records kept in the index could not be shared between answers. With
// matchZone, it took the seed's A question at the wire from about 55k to
// about 64k qps (see matchZone).
func newRecords[T any](n int) ([]dns.RR, []T) {
	if n <= smallAnswer {
		room := new(struct {
			answer  [smallAnswer]dns.RR
			records [smallAnswer]T
		})
		return room.answer[:0], room.records[:0:n]
	}
	return make([]dns.RR, 0, n), make([]T, 0, n)
}

// maxCNAMEChain bounds the CNAMEs to FQDN endpoints that one query follows
// through the server, as plugin.A bounds its chains (maxCnameChainLength).
const maxCNAMEChain = 10

// chainKey holds, in the context of a lookup that follows a CNAME, the
// CNAMEs followed so far.
type chainKey struct{}

// chaser follows the FQDN endpoints of one answer: each target once, however
// many endpoints and ports name it.
type chaser struct {
	done map[string]chased
}

type chased struct {
	rrs       []dns.RR
	truncated bool
}

// follow returns the CNAME of the query name to target and the records target
// has for the query type, looked up through the server itself, as plugin.A
// does for a name outside the zone. A target in the zone is looked up the
// same way, so that a target that is not headless gets the next plugin's
// answer; the CNAME is then kept only when the target has records. As in
// plugin.A, a CNAME already in the chain that led here, or one past
// maxCNAMEChain, is not followed.
func (c *chaser) follow(ctx context.Context, h *Headless, state request.Request, target string) ([]dns.RR, bool) {
	if r, ok := c.done[target]; ok {
		return r.rrs, r.truncated
	}
	rrs, tc := h.follow(ctx, state, target)
	if c.done == nil {
		c.done = map[string]chased{}
	}
	c.done[target] = chased{rrs: rrs, truncated: tc}
	return rrs, tc
}

func (h *Headless) follow(ctx context.Context, state request.Request, target string) ([]dns.RR, bool) {
	if plugin.Name(state.Name()).Matches(target) {
		return nil, false // a loop: x CNAME x
	}
	chain, _ := ctx.Value(chainKey{}).([]dns.RR)
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl}, Target: target}
	if len(chain) > maxCNAMEChain || dnsutil.DuplicateCNAME(cname, chain) {
		return nil, false
	}
	ctx = context.WithValue(ctx, chainKey{}, append(chain[:len(chain):len(chain)], cname))
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
func (h *Headless) srv(sel *selection, qname, zone string) (answer, extra []dns.RR) {
	n, srvs, glue4, glue6 := 0, 0, 0, 0
	for i := range sel.segments() {
		seg := sel.segment(i)
		for _, e := range seg.entries {
			kind := seg.part.eps[e.ep].kind
			if kind != kindFQDN {
				n++
			}
			if e.flags&firstSRV != 0 {
				srvs++
			}
			if e.flags&firstGlue != 0 {
				if kind == kindV6 {
					glue6++
				} else {
					glue4++
				}
			}
		}
	}
	// The records of one answer in one allocation of each kind, as many as
	// the flags allow before duplicates are dropped: with part.targets, 8
	// allocations for any SRV answer instead of 3 a record. The mix of
	// `go run ./test/bench -only headless -services 2000`, half of it SRV,
	// went from 25000 and 35808 qps to 42000 and 40121 at the wire.
	answer, extra = make([]dns.RR, 0, srvs), make([]dns.RR, 0, glue4+glue6)
	records := make([]dns.SRV, 0, srvs)
	as, aaaas := make([]dns.A, 0, glue4), make([]dns.AAAA, 0, glue6)
	weight := srvWeight(n)
	d := newDedup(sel)
	var targets []string
	for i := range sel.segments() {
		seg := sel.segment(i)
		p := seg.part
		targets = p.targets(seg.entries, zone, targets)
		for _, e := range seg.entries {
			ep := p.eps[e.ep]
			if e.flags&(firstSRV|firstGlue) == 0 {
				continue
			}
			target := targets[ep.host]
			if e.flags&firstSRV != 0 && d.srv(p, e) {
				records = append(records, dns.SRV{
					Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: h.ttl},
					Weight: weight, Port: uint16(p.ports[e.port].port), Target: target, // #nosec G115 -- a port number
				})
				answer = append(answer, &records[len(records)-1])
			}
			if e.flags&firstGlue == 0 || !d.glue(p, e) {
				continue
			}
			hdr := dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
			if ep.kind == kindV6 {
				hdr.Rrtype = dns.TypeAAAA
				aaaas = append(aaaas, dns.AAAA{Hdr: hdr, AAAA: p.ip(e.ep)})
				extra = append(extra, &aaaas[len(aaaas)-1])
			} else {
				as = append(as, dns.A{Hdr: hdr, A: p.ip(e.ep)})
				extra = append(extra, &as[len(as)-1])
			}
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
func (h *Headless) cname(sel *selection, qname string) []dns.RR {
	if len(sel.first.entries) == 0 {
		return nil
	}
	p, first := sel.first.part, sel.first.entries[0]
	if p.eps[first.ep].kind != kindFQDN {
		return nil
	}
	return []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl},
		Target: p.fqdn(first.ep),
	}}
}

// ptr returns one PTR record, owned by qname, per distinct name of refs in
// zone.
func (h *Headless) ptr(qname string, refs []ptrRef, zone string) []dns.RR {
	var names []string
	for _, ref := range refs {
		if h.stablePTR && !ref.part.hosts[ref.host].hostname {
			continue
		}
		if name := ref.part.target(ref.host, zone); !slices.Contains(names, name) {
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
// (plugin.SOA), with minimum ttl. It restates plugin.SOA, which needs a
// whole plugin.ServiceBackend for the serial and the ttl.
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
