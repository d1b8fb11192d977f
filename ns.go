package headless

import (
	"net"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// The name servers of a zone, for when the plugin is alone: the kubernetes
// plugin names them ns.dns.ZONE with the addresses the server is bound to,
// unless it finds the server among the endpoints of a service, which the
// plugin, watching headless services only, cannot. In front of the
// kubernetes plugin these names are the next plugin's.

// nameServerLabel is the kubernetes plugin's name of the name servers of a
// zone, below it (defaultNSName).
const nameServerLabel = "ns.dns."

// boundIPs returns the addresses, other than loopback ones, that the server
// block of c listens on, or those of the host when it names none. It is the
// kubernetes plugin's boundIPs, which is not exported.
func boundIPs(c *caddy.Controller) (ips []net.IP) {
	hosts := dnsserver.GetConfig(c).ListenHosts
	if len(hosts) == 0 || hosts[0] == "" {
		hosts = nil
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil
		}
		for _, addr := range addrs {
			hosts = append(hosts, addr.String())
		}
	}
	for _, host := range hosts {
		ip, _, _ := net.ParseCIDR(host)
		if ip4 := ip.To4(); ip4 != nil && !ip4.IsLoopback() {
			ips = append(ips, ip4)
			continue
		}
		if ip6 := ip.To16(); ip6 != nil && !ip6.IsLoopback() {
			ips = append(ips, ip6)
		}
	}
	return ips
}

// nameServers answers the NS query of a zone's apex, as plugin.NS does: one
// NS record, and the addresses of its target as glue.
func (h *Headless) nameServers(state request.Request) reply {
	target := nameServerLabel + state.Zone
	res := reply{rcode: dns.RcodeSuccess, extra: h.nameServerAddresses(target, 0)}
	if len(res.extra) > 0 {
		res.answer = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: h.ttl}, Ns: target}}
	}
	return res
}

// nameServer answers a query for ns.dns.ZONE: its addresses of the query
// type; like every name that is not a service's, it has no TXT record.
func (h *Headless) nameServer(state request.Request) reply {
	switch state.QType() {
	case dns.TypeTXT:
		return reply{rcode: dns.RcodeNameError}
	case dns.TypeA, dns.TypeAAAA:
		return reply{rcode: dns.RcodeSuccess, answer: h.nameServerAddresses(state.QName(), state.QType())}
	}
	return reply{rcode: dns.RcodeSuccess}
}

// nameServerAddresses returns the records of the bound addresses owned by
// name, of type qtype or, with 0, of both types.
func (h *Headless) nameServerAddresses(name string, qtype uint16) []dns.RR {
	var rrs []dns.RR
	for _, ip := range h.localIPs {
		hdr := dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
		if ip.To4() == nil {
			hdr.Rrtype = dns.TypeAAAA
		}
		switch {
		case qtype != 0 && qtype != hdr.Rrtype:
		case hdr.Rrtype == dns.TypeA:
			rrs = append(rrs, &dns.A{Hdr: hdr, A: ip})
		default:
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	return rrs
}
