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
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	state.Zone = state.QName()[len(qname)-len(zone):] // the zone as the client wrote it

	var res result
	switch {
	case state.QType() == dns.TypeAXFR || state.QType() == dns.TypeIXFR:
		// Zone transfers are the transfer plugin's (see xfr.go).
		if h.Fall.Through(qname) {
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
		return dns.RcodeRefused, nil
	case qname == nameServerLabel+zone && state.QType() != dns.TypePTR:
		res = h.nameServer(state)
	case state.QType() == dns.TypeNS && qname == zone:
		res = h.nameServers(state)
	case dnsutil.IsReverse(qname) > 0:
		res = h.reverse(state)
	default:
		res = h.forward(ctx, state)
	}

	if res.rcode == dns.RcodeNameError || !res.ours {
		if h.Fall.Through(qname) && !(res.ours && h.negativeTTL != nil) {
			return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
		}
	}
	if res.rcode == dns.RcodeNameError && !h.Ready() {
		res.rcode = dns.RcodeServerFailure
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
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// result is what the plugin makes of a query.
type result struct {
	rcode         int
	answer, extra []dns.RR
	truncated     bool
	// ours is set for a name under a headless service the plugin knows,
	// and with stable_ptr for the address of one of its endpoints: the
	// plugin has the whole answer. Other names pass to the next plugin with
	// fallthrough; alone, the plugin answers them as the kubernetes plugin
	// would, as far as it knows.
	ours bool
}

// forward answers a name in a forward zone.
func (h *Headless) forward(ctx context.Context, state request.Request) result {
	multicluster := matchZone(h.multiclusterZones, state.Zone) != ""
	n, err := parseName(state.Name(), state.Zone, multicluster, h.watch.transform.zones)
	var snap *snapshot
	if n.kind == kubernetes.Svc && n.service != "" && h.index.namespaceExposed(n.namespace) {
		snap = h.index.lookup(multicluster, n.service+"."+n.namespace)
	}
	if snap == nil {
		return h.other(state, n, err)
	}

	res := result{rcode: dns.RcodeSuccess, ours: true}
	var sel selection
	switch {
	case err != nil:
	case n.topoZone != "":
		sel = snap.selectZone(n.topoZone, n.prefer)
	case n.endpoint != "" && multicluster:
		sel = snap.selectHost(n.endpoint + "." + n.cluster)
	case n.endpoint != "":
		sel = snap.selectHost(n.endpoint)
	case n.port != "" || n.protocol != "":
		sel = snap.selectPort(n.port, n.protocol)
	default:
		sel = snap.selectAll()
	}
	if state.QType() == dns.TypeSOA {
		return res // the kubernetes plugin answers SOA at the apex only
	}
	if !sel.found() {
		res.rcode = dns.RcodeNameError
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
	return res
}

// other answers the names of a forward zone that are not headless names as
// the kubernetes plugin does, for when the plugin is alone.
func (h *Headless) other(state request.Request, n name, err error) result {
	switch {
	case state.QType() == dns.TypeSOA && state.Name() == state.Zone:
		return result{rcode: dns.RcodeSuccess, answer: []dns.RR{h.soa(state.Zone, h.ttl)}}
	case state.QType() == dns.TypeSOA:
		return result{rcode: dns.RcodeSuccess}
	case state.QType() == dns.TypeTXT:
		// TXT names only dns-version.ZONE: other names without records
		// of any type do not exist, as in the kubernetes plugin.
		if base, _ := dnsutil.TrimZone(state.Name(), state.Zone); base == "dns-version" {
			return result{rcode: dns.RcodeSuccess, answer: []dns.RR{dnsVersion(state.QName())}}
		}
	case err != nil:
	case n.kind == "", n.kind == kubernetes.Svc && n.service == "" && h.index.hasNamespace(n.namespace) && h.index.namespaceExposed(n.namespace):
		return result{rcode: dns.RcodeSuccess} // the zone, svc.ZONE, pod.ZONE, a namespace
	}
	return result{rcode: dns.RcodeNameError}
}

// reverse answers a name in a reverse zone.
func (h *Headless) reverse(state request.Request) result {
	switch state.QType() {
	case dns.TypePTR:
	case dns.TypeSOA:
		return result{rcode: dns.RcodeSuccess} // the kubernetes plugin answers SOA at the apex only
	default:
		return result{rcode: dns.RcodeNameError}
	}
	addr, err := netip.ParseAddr(dnsutil.ExtractAddressFromReverse(state.Name()))
	if err != nil {
		return result{rcode: dns.RcodeNameError}
	}
	refs, multicluster := h.index.ptr(addr)
	zone := h.Zones[h.primaryZone]
	if multicluster && len(h.multiclusterZones) > 0 {
		zone = h.multiclusterZones[0]
	}
	// The plugin does not know the addresses of services that are not
	// headless: unless stable_ptr asks for the stable names alone, the next
	// plugin, which knows every service, has the whole answer.
	if rrs := h.ptr(state.QName(), refs, zone); len(rrs) > 0 {
		return result{rcode: dns.RcodeSuccess, answer: rrs, ours: h.stablePTR}
	}
	return result{rcode: dns.RcodeNameError}
}
