package headless

import (
	"context"
	"net/netip"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"

	"github.com/miekg/dns"
)

// ServeDNS implements the plugin.Handler interface.
func (h *Headless) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) == 0 {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	q := newQuery(r.Question[0])
	zone := matchZone(h.Zones, q.name)
	if zone == "" {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}

	res := h.resolve(q, zone)
	if res.rcode == dns.RcodeRefused {
		if res.passes && h.Fall.Through(q.name) {
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
		return dns.RcodeRefused, nil
	}
	if (res.passes || res.rcode == dns.RcodeNameError) && h.Fall.Through(q.name) {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	if res.rcode == dns.RcodeNameError && !h.Ready() {
		res.rcode = dns.RcodeServerFailure
	}

	if res.reply == nil {
		res.reply = new(reply)
	}
	m := res.reply.to(r, res.rcode)
	m.Authoritative = true
	m.Answer, m.Extra = res.answer, res.extra
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{h.soa(q.zoneAsWritten(zone))}
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// smallAnswer is how many A records a reply holds without allocating more.
const smallAnswer = 4

// reply is a response message with room for a few A records, so that the
// most common answer costs one allocation. It cannot be recycled: the writers after
// the plugin (cache, log) keep the message and its sections.
type reply struct {
	msg      dns.Msg
	question [1]dns.Question
	rrs      [smallAnswer]dns.RR
	a        [smallAnswer]dns.A
}

// to returns the message as a reply to r with rcode: dns.Msg.SetRcode without
// allocating the question section.
func (rep *reply) to(r *dns.Msg, rcode int) *dns.Msg {
	m := &rep.msg
	m.Id, m.Response, m.Opcode, m.Rcode = r.Id, true, r.Opcode, rcode
	if r.Opcode == dns.OpcodeQuery {
		m.RecursionDesired, m.CheckingDisabled = r.RecursionDesired, r.CheckingDisabled
	}
	rep.question[0] = r.Question[0]
	m.Question = rep.question[:]
	return m
}

// query is the question of a request: the name as the client wrote it (for
// the owner names of the answer, as the kubernetes plugin keeps them) and in
// lower case (for lookups).
type query struct {
	qname, name string
	qtype       uint16
}

func newQuery(q dns.Question) query {
	return query{qname: q.Name, name: strings.ToLower(q.Name), qtype: q.Qtype}
}

// zoneAsWritten returns zone, the tail of the name, in the client's case.
func (q query) zoneAsWritten(zone string) string { return q.qname[len(q.qname)-len(zone):] }

// result is what the index says of a query.
type result struct {
	rcode         int
	answer, extra []dns.RR
	// passes is set when the name is not a headless name: with fallthrough
	// it is the next plugin's, else rcode holds the answer of the plugin alone.
	passes bool
	// reply, when set, holds the answer records; the message is built in it.
	reply *reply
}

var (
	nodata   = result{rcode: dns.RcodeSuccess}
	nxdomain = result{rcode: dns.RcodeNameError}
)

func (h *Headless) resolve(q query, zone string) result {
	switch {
	case q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR:
		return result{rcode: dns.RcodeRefused, passes: true}
	case dnsutil.IsReverse(q.name) > 0:
		return h.resolveReverse(q)
	default:
		return h.resolveForward(q, zone)
	}
}

func (h *Headless) resolveReverse(q query) result {
	if q.qtype != dns.TypePTR {
		return passing(nxdomain)
	}
	addr, err := netip.ParseAddr(dnsutil.ExtractAddressFromReverse(q.name))
	if err != nil {
		return passing(nxdomain)
	}
	refs, shadowed := h.index.ptr(addr)
	if len(refs) == 0 {
		return passing(nxdomain)
	}
	// Named in the first forward zone, as the kubernetes plugin does.
	res := result{rcode: dns.RcodeSuccess, answer: ptrRecords(q.qname, refs, h.index.zones[0], h.ttl)}
	// The kubernetes plugin also names this address after a service that is
	// not headless: it has the whole answer.
	res.passes = shadowed
	return res
}

func passing(r result) result {
	r.passes = true
	return r
}

// resolveForward answers names of the form [ENDPOINT.]SERVICE.NAMESPACE.svc.ZONE
// and _PORT._PROTO.SERVICE.NAMESPACE.svc.ZONE.
func (h *Headless) resolveForward(q query, zone string) result {
	base := strings.TrimSuffix(strings.TrimSuffix(q.name, zone), ".")
	rest, kind := cutLast(base)
	if kind != "svc" {
		return passing(h.resolveOther(q, base))
	}
	rest, namespace := cutLast(rest)
	if namespace == "" {
		return passing(nodata) // svc.ZONE: an empty non-terminal
	}
	rest, service := cutLast(rest)
	if service == "" {
		if h.index.hasNamespace(namespace) {
			return passing(nodata)
		}
		return passing(nxdomain)
	}
	// SERVICE.NAMESPACE is one substring of the query name: no allocation.
	start := len(rest)
	if start > 0 {
		start++
	}
	recs := h.index.lookup(base[start : start+len(service)+1+len(namespace)])
	if recs == nil {
		return passing(nxdomain)
	}
	sel, ok := selectFor(recs, rest)
	if !ok || !sel.exists() {
		return nxdomain
	}
	return h.answerFor(q, zone, sel)
}

// selectFor maps the labels left of SERVICE to the entries they select.
func selectFor(recs *records, rest string) (selection, bool) {
	if rest == "" {
		return recs.selectAll(), true
	}
	first, second, two := strings.Cut(rest, ".")
	switch {
	case !two:
		return recs.selectHost(first), true
	case strings.Contains(second, "."):
		return selection{}, false // too long: no such name
	default:
		return recs.selectPort(strings.TrimPrefix(first, "_"), strings.TrimPrefix(second, "_")), true
	}
}

// answerFor builds the answer for an existing name.
func (h *Headless) answerFor(q query, zone string, sel selection) result {
	// Allocated here, not in ServeDNS: names passed to the next plugin need none.
	rep := new(reply)
	res := result{rcode: dns.RcodeSuccess, reply: rep}
	switch q.qtype {
	case dns.TypeA:
		res.answer = sel.addresses(q.qname, false, h.ttl, rep)
	case dns.TypeAAAA:
		res.answer = sel.addresses(q.qname, true, h.ttl, rep)
	case dns.TypeSRV:
		res.answer, res.extra = sel.srv(q.qname, q.zoneAsWritten(zone), h.ttl)
	}
	return res
}

// resolveOther answers the names in a zone that are not service names the
// way the kubernetes plugin does, for when the plugin is used alone.
func (h *Headless) resolveOther(q query, base string) result {
	switch base {
	case "":
		if q.qtype == dns.TypeSOA {
			return result{rcode: dns.RcodeSuccess, answer: []dns.RR{h.soa(q.qname)}}
		}
		return nodata
	case "dns-version":
		if q.qtype == dns.TypeTXT {
			return result{rcode: dns.RcodeSuccess, answer: []dns.RR{dnsVersion(q.qname)}}
		}
		return nodata
	case "pod":
		return nodata
	}
	return nxdomain
}

// matchZone returns the longest of zones that qname is in, or "". It is
// plugin.Zones.Matches for names already in lower case, without the
// allocations of dns.IsSubDomain on the path of every query.
func matchZone(zones []string, qname string) string {
	zone := ""
	for _, z := range zones {
		if len(z) > len(zone) && inZone(qname, z) {
			zone = z
		}
	}
	return zone
}

func inZone(name, zone string) bool {
	switch {
	case zone == ".":
		return true
	case len(name) == len(zone):
		return name == zone
	default:
		i := len(name) - len(zone) - 1
		return len(name) > len(zone) && strings.HasSuffix(name, zone) && name[i] == '.' && !escaped(name, i)
	}
}

// escaped reports whether the byte at i of name is escaped: preceded by an
// odd number of backslashes. An escaped dot is part of a label (`a\.b` is one
// label), as dns.IsSubDomain has it.
func escaped(name string, i int) bool {
	n := 0
	for i--; i >= 0 && name[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// cutLast splits the last label off name.
func cutLast(name string) (rest, last string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}
