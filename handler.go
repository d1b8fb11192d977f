package headless

import (
	"context"
	"net/netip"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// ServeDNS implements the plugin.Handler interface.
func (h *Headless) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) == 0 {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	zone := plugin.Zones(h.Zones).Matches(qname)
	if zone == "" {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}

	res := h.resolve(state, zone)
	if res.rcode == dns.RcodeRefused {
		if res.passes && h.Fall.Through(qname) {
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
		return dns.RcodeRefused, nil
	}
	if (res.passes || res.rcode == dns.RcodeNameError) && h.Fall.Through(qname) {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	if res.rcode == dns.RcodeNameError && !h.Ready() {
		res.rcode = dns.RcodeServerFailure
	}

	m := new(dns.Msg)
	m.SetRcode(r, res.rcode)
	m.Authoritative = true
	m.Answer, m.Extra = res.answer, res.extra
	if len(m.Answer) == 0 {
		// The zone as the client wrote it, as the kubernetes plugin keeps it.
		m.Ns = []dns.RR{h.soa(state.QName()[len(qname)-len(zone):])}
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// result is what the index says of a query.
type result struct {
	rcode         int
	answer, extra []dns.RR
	// passes is set when the name is not a headless name: with fallthrough
	// it is the next plugin's, else rcode holds the answer of the plugin alone.
	passes bool
}

var (
	nodata   = result{rcode: dns.RcodeSuccess}
	nxdomain = result{rcode: dns.RcodeNameError}
)

func (h *Headless) resolve(state request.Request, zone string) result {
	switch qtype := state.QType(); {
	case qtype == dns.TypeAXFR || qtype == dns.TypeIXFR:
		return result{rcode: dns.RcodeRefused, passes: true}
	case dnsutil.IsReverse(state.Name()) > 0:
		return h.resolveReverse(state)
	default:
		return h.resolveForward(state, zone)
	}
}

func (h *Headless) resolveReverse(state request.Request) result {
	if state.QType() != dns.TypePTR {
		return passing(nxdomain)
	}
	addr, err := netip.ParseAddr(dnsutil.ExtractAddressFromReverse(state.Name()))
	if err != nil {
		return passing(nxdomain)
	}
	refs, shadowed := h.index.ptr(addr)
	if len(refs) == 0 {
		return passing(nxdomain)
	}
	res := result{rcode: dns.RcodeSuccess, answer: ptrRecords(state.QName(), refs, h.ttl)}
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
func (h *Headless) resolveForward(state request.Request, zone string) result {
	qname := state.Name()
	base := strings.TrimSuffix(strings.TrimSuffix(qname, zone), ".")
	rest, kind := cutLast(base)
	if kind != "svc" {
		return passing(h.resolveOther(state, base))
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
	return h.answerFor(state, zone, sel)
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
func (h *Headless) answerFor(state request.Request, zone string, sel selection) result {
	res := result{rcode: dns.RcodeSuccess}
	switch state.QType() {
	case dns.TypeA:
		res.answer = sel.addresses(state.QName(), false, h.ttl)
	case dns.TypeAAAA:
		res.answer = sel.addresses(state.QName(), true, h.ttl)
	case dns.TypeSRV:
		res.answer, res.extra = sel.srv(state.QName(), h.targets(state, zone, sel.recs), h.ttl)
	}
	return res
}

// targets returns the SRV targets of recs in the zone as the query wrote it:
// the prepared ones when it is written in lower case.
func (h *Headless) targets(state request.Request, zone string, recs *records) []string {
	qzone := state.QName()[len(state.QName())-len(zone):]
	for i, z := range h.index.zones {
		if z == qzone {
			return recs.zoneTargets(i)
		}
	}
	targets := make([]string, len(recs.hosts))
	for i, host := range recs.hosts {
		targets[i] = recs.target(host.name, qzone)
	}
	return targets
}

// resolveOther answers the names in a zone that are not service names the
// way the kubernetes plugin does, for when the plugin is used alone.
func (h *Headless) resolveOther(state request.Request, base string) result {
	switch base {
	case "":
		if state.QType() == dns.TypeSOA {
			zone := state.QName()
			return result{rcode: dns.RcodeSuccess, answer: []dns.RR{h.soa(zone)}}
		}
		return nodata
	case "dns-version":
		if state.QType() == dns.TypeTXT {
			return result{rcode: dns.RcodeSuccess, answer: []dns.RR{dnsVersion(state.QName())}}
		}
		return nodata
	case "pod":
		return nodata
	}
	return nxdomain
}

// cutLast splits the last label off name.
func cutLast(name string) (rest, last string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}
