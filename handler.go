package headless

import (
	"context"
	"net/netip"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// ServeDNS implements the plugin.Handler interface.
func (h *Headless) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	zone := matchZone(h.Zones, qname)
	if zone == "" {
		countRequest(ctx, passed)
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	state.Zone = state.QName()[len(qname)-len(zone):] // the zone as the client wrote it

	var res reply
	switch {
	case state.QType() == dns.TypeAXFR || state.QType() == dns.TypeIXFR:
		// Zone transfers are the transfer plugin's (see xfr.go).
		if h.Fall.Through(qname) {
			countRequest(ctx, passed)
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
		countRequest(ctx, refused)
		return dns.RcodeRefused, nil
	case qname == nameServerLabel+zone && state.QType() != dns.TypePTR:
		res = h.nameServer(state)
	case state.QType() == dns.TypeNS && qname == zone:
		res = h.nameServers(state)
	case state.QType() == dns.TypeSOA && qname == zone:
		res = reply{rcode: dns.RcodeSuccess, answer: []dns.RR{h.soa(state.Zone, h.ttl)}}
	case dnsutil.IsReverse(qname) > 0:
		res = h.reverse(state, zone)
	default:
		res = h.forward(ctx, state, zone)
	}

	if res.rcode == dns.RcodeNameError || !res.ours {
		if h.Fall.Through(qname) && !(res.ours && (h.negativeTTL != nil || h.extendedErrors)) {
			countRequest(ctx, passed)
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
	}
	if res.rcode == dns.RcodeNameError && !h.Ready() {
		res.rcode, res.why = dns.RcodeServerFailure, noReason
	}

	m := new(dns.Msg)
	m.SetRcode(r, res.rcode)
	m.Authoritative = true
	m.Truncated = res.truncated
	m.Answer, m.Extra = res.answer, res.extra
	if len(m.Answer) == 0 {
		ttl := h.ttl
		if res.ours && h.negativeTTL != nil {
			ttl = *h.negativeTTL
		}
		m.Ns = []dns.RR{h.soa(state.Zone, ttl)}
	}
	if res.why != noReason {
		explain(m, r, res.why)
	}
	w.WriteMsg(m)
	countRequest(ctx, outcomeOf(m))
	return dns.RcodeSuccess, nil
}

// reply is what the plugin makes of a query: the rcode and records of its answer.
type reply struct {
	rcode         int
	answer, extra []dns.RR
	truncated     bool
	// ours is set for a name under a headless service the plugin knows,
	// and with stable_ptr for the address of one of its endpoints: the
	// plugin has the whole answer. Other names pass to the next plugin with
	// fallthrough; alone, the plugin answers them as the kubernetes plugin
	// would, as far as it knows.
	ours bool
	// why is, with extended_errors, why a name of ours has no records.
	why negativeReason
}

// forward answers a name below a forward zone (in lower case).
func (h *Headless) forward(ctx context.Context, state request.Request, zone string) reply {
	multicluster := matchZone(h.multiclusterZones, zone) != ""
	n, err := parseName(state.Name(), zone, multicluster, h.watch.transform.zones)
	var view *serviceView
	if n.kind == kubernetes.Svc && n.service != "" {
		var exposed bool
		if view, exposed = h.index.lookup(multicluster, n.service, n.namespace); view != nil && !exposed {
			res := h.other(state, zone, n, err)
			if h.extendedErrors {
				res.ours, res.why = true, namespaceHidden
			}
			return res
		}
	}
	if view == nil {
		return h.other(state, zone, n, err)
	}

	res := reply{rcode: dns.RcodeSuccess, ours: true}
	sel := selection{view: view, slices: view.slices}
	switch {
	case err != nil:
		sel.slices = nil
	case n.topoZone != "":
		sel.zone, sel.zonal = n.topoZone, true
		if n.prefer && !sel.selectsAny() {
			sel.zone = "" // no endpoint in the zone: prefer takes them all
		}
	case n.endpoint != "":
		sel.host = n.endpoint
		if multicluster {
			sel.host += "." + n.cluster
		}
		sel.slices = view.slicesOf(sel.host)
	default:
		sel.port, sel.protocol = n.port, n.protocol
	}
	if state.QType() == dns.TypeSOA {
		if h.extendedErrors {
			res.why = noRecordOfType
		}
		return res // the kubernetes plugin answers SOA at the apex only
	}
	if !sel.found() {
		res.rcode = dns.RcodeNameError
		if h.extendedErrors {
			res.why = whyNoName(&sel, n, err)
		}
		return res
	}
	switch state.QType() {
	case dns.TypeA:
		res.answer, res.truncated = h.addresses(ctx, state, &sel, false)
	case dns.TypeAAAA:
		res.answer, res.truncated = h.addresses(ctx, state, &sel, true)
	case dns.TypeSRV:
		res.answer, res.extra = h.srv(&sel, state.QName(), state.Zone)
	case dns.TypeCNAME:
		res.answer = h.cname(&sel, state.QName())
	}
	if len(res.answer) == 0 && h.extendedErrors {
		res.why = whyNoData(&sel)
	}
	return res
}

// other answers the names of a forward zone that are not headless names as
// the kubernetes plugin does, for when the plugin is alone.
func (h *Headless) other(state request.Request, zone string, n queryName, err error) reply {
	switch {
	case state.QType() == dns.TypeSOA:
		return reply{rcode: dns.RcodeSuccess}
	case state.QType() == dns.TypeTXT:
		// TXT names only dns-version.ZONE: other names without records
		// of any type do not exist, as in the kubernetes plugin.
		if base, _ := dnsutil.TrimZone(state.Name(), zone); base == "dns-version" {
			return reply{rcode: dns.RcodeSuccess, answer: []dns.RR{dnsVersion(state.QName())}}
		}
	case err != nil:
	case n.kind == "", n.kind == kubernetes.Svc && n.service == "" && h.index.namespaceExists(n.namespace):
		return reply{rcode: dns.RcodeSuccess} // svc.ZONE, pod.ZONE, a namespace
	}
	return reply{rcode: dns.RcodeNameError}
}

// reverse answers a name in a reverse zone (in lower case). Its apex exists,
// without records but its SOA, as in the kubernetes plugin, which answers
// NXDOMAIN for TXT only.
func (h *Headless) reverse(state request.Request, zone string) reply {
	switch {
	case state.Name() == zone && state.QType() != dns.TypeTXT:
		return reply{rcode: dns.RcodeSuccess}
	case state.QType() == dns.TypePTR:
	case state.QType() == dns.TypeSOA:
		return reply{rcode: dns.RcodeSuccess} // the kubernetes plugin answers SOA at the apex only
	default:
		return reply{rcode: dns.RcodeNameError}
	}
	addr, err := netip.ParseAddr(dnsutil.ExtractAddressFromReverse(state.Name()))
	if err != nil {
		return reply{rcode: dns.RcodeNameError}
	}
	refs, multicluster := h.index.ptr(addr)
	targetZone := h.Zones[h.primaryZone]
	if multicluster && len(h.multiclusterZones) > 0 {
		targetZone = h.multiclusterZones[0]
	}
	// The plugin does not know the addresses of services that are not
	// headless: unless stable_ptr asks for the stable names alone, the next
	// plugin, which knows every service, has the whole answer.
	if rrs := h.ptr(state.QName(), refs, targetZone); len(rrs) > 0 {
		return reply{rcode: dns.RcodeSuccess, answer: rrs, ours: h.stablePTR}
	}
	return reply{rcode: dns.RcodeNameError}
}
