package headless

import (
	"cmp"
	"slices"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/transfer"

	"github.com/miekg/dns"
)

// Transfer implements the transfer.Transferer interface: the records of the
// headless services, as the kubernetes plugin writes them in its own
// transfer (xfr.go): for each address of each slice an address record for the
// service and one for the endpoint, and an SRV record for each named port.
// Zonal names are not transferred, as there.
//
// With fallthrough the plugin holds only part of the zone, so it leaves the
// transfer to the next plugin that can do it, the kubernetes plugin in the
// drop-in Corefile.
func (h *Headless) Transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	if !plugin.Zones(h.Zones).Contains(zone) || h.Fall.Through(zone) {
		return nil, transfer.ErrNotAuthoritative
	}
	soa := []dns.RR{h.soa(zone, h.ttl)}
	multicluster := plugin.Zones(h.multiclusterZones).Contains(zone)
	views := h.index.views(multicluster)
	slices.SortFunc(views, func(a, b *serviceView) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.namespace, b.namespace))
	})

	ch := make(chan []dns.RR)
	go func() {
		defer close(ch)
		ch <- soa
		if serial != 0 && serial == soa[0].(*dns.SOA).Serial {
			return // IXFR: up to date
		}
		for _, v := range views {
			h.transferService(ch, v, zone)
		}
		ch <- soa
	}()
	return ch, nil
}

func (h *Headless) transferService(ch chan<- []dns.RR, v *serviceView, zone string) {
	base := v.name + "." + v.namespace + ".svc." + zone
	for _, es := range v.slices {
		var eps []sliceEndpoint
		for _, e := range es.endpoints {
			if v.serves(e.state) {
				eps = append(eps, e)
			}
		}
		weight := srvWeight(len(eps))
		for _, e := range eps {
			// An FQDN endpoint has no address record and, as in the
			// kubernetes plugin, SRV records with the root as target.
			target := "."
			if e.fqdn() == "" {
				// The names of a ServiceImport's endpoints leave their
				// cluster out, as the kubernetes plugin writes them.
				target = strings.TrimSuffix(e.host, "."+es.cluster) + "." + base
				ch <- []dns.RR{h.address(base, e), h.address(target, e)}
			}
			for _, p := range es.ports {
				if p.name == "" {
					continue // the specification gives unnamed ports no SRV record
				}
				ch <- []dns.RR{&dns.SRV{
					Hdr:    dns.RR_Header{Name: "_" + strings.ToLower(p.name) + "._" + strings.ToLower(p.protocol) + "." + base, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: h.ttl},
					Weight: weight, Port: uint16(p.port), Target: target, // #nosec G115 -- a port number
				}}
			}
		}
	}
}

// address returns the A or AAAA record of e owned by name.
func (h *Headless) address(name string, e sliceEndpoint) dns.RR {
	hdr := dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
	if e.addr.Is4() {
		return &dns.A{Hdr: hdr, A: e.addr.AsSlice()}
	}
	hdr.Rrtype = dns.TypeAAAA
	return &dns.AAAA{Hdr: hdr, AAAA: e.addr.AsSlice()}
}
