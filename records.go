package headless

import (
	"cmp"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/coredns/coredns/plugin/pkg/dnsutil"

	"github.com/miekg/dns"
)

// records is the immutable snapshot of one headless service. It keeps the
// kubernetes plugin's view of the service, one entry per ready address and
// port of every EndpointSlice, already deduplicated and grouped, so that an
// answer is a walk over a few entries that builds records from shared data.
type records struct {
	name, namespace string

	eps     []epRec    // distinct (address, host) pairs
	ips     []byte     // their addresses, 4 or 16 bytes each, shared by every record built from them
	hosts   []hostRec  // distinct endpoint labels, sorted by lower case label
	ports   []portRec  // distinct ports
	entries []entry    // every address x port, grouped by host in hosts order
	combos  []comboRec // the entries of each (port name, protocol)
}

// epRec is one endpoint address, at ips[off:off+4] or ips[off:off+16], with
// the label it is known by; same is the first endpoint with that address.
type epRec struct {
	off, host, same int32
	v6              bool
}

// hostRec is one endpoint label and its run of entries.
type hostRec struct {
	name   string // as the EndpointSlice gives it, used in SRV targets
	lower  string // for matching query names
	lo, hi int32  // its entries: entries[lo:hi]
}

// portRec is one port; port -1 stands for a slice without ports.
type portRec struct {
	name, protocol string // lower case
	port           int32
}

// comboRec holds the entries that a _port._protocol name selects.
type comboRec struct {
	name, protocol string
	entries        []entry
}

// entry is one (endpoint address, port) pair. Its flags mark the first
// occurrence of each record it yields, so duplicates are skipped without a
// set at query time.
type entry struct {
	ep    int32
	port  uint16
	flags uint8
}

const (
	firstAddr uint8 = 1 << iota // first with this address: one A or AAAA record
	firstEP                     // first with this address and host: one A or AAAA for a host name
	firstSRV                    // first with this host and port number: one SRV record
	firstGlue                   // first with this address and host among those with a port: one glue record
)

// buildRecords reduces the EndpointSlices of a headless service to records.
func buildRecords(name, namespace string, ess []*endpointSlice) *records {
	r := &records{name: name, namespace: namespace}
	ess = slices.SortedFunc(slices.Values(ess), func(a, b *endpointSlice) int { return cmp.Compare(a.name, b.name) })

	n := 0
	for _, s := range ess {
		n += len(s.endpoints)
	}
	hostIdx := r.indexHosts(ess, n)
	epIdx := make(map[epKey]int32, n)
	addrIdx := make(map[netip.Addr]int32, n)
	r.eps, r.ips = make([]epRec, 0, n), make([]byte, 0, 4*n)
	portIdx := make(map[portRec]uint16)
	for _, s := range ess {
		if len(portIdx)+len(s.ports) > maxPorts {
			log.Warningf("Skipping EndpointSlice %s/%s: service %s has more than %d distinct ports", s.namespace, s.name, name, maxPorts)
			continue
		}
		for _, e := range s.endpoints {
			h := hostIdx[strings.ToLower(e.host)]
			ep := r.addEndpoint(epIdx, addrIdx, e.addr, h)
			for _, p := range s.ports {
				r.entries = append(r.entries, entry{ep: ep, port: r.addPort(portIdx, p)})
			}
		}
	}
	slices.SortStableFunc(r.entries, func(a, b entry) int { return cmp.Compare(r.eps[a.ep].host, r.eps[b.ep].host) })
	r.entries = r.flag(r.entries)
	r.rangeHosts()
	r.groupCombos()
	return r
}

// maxPorts bounds the distinct ports of a service, so that an entry stays
// small. Kubernetes allows 100 ports a slice.
const maxPorts = 1 << 16

type epKey struct {
	addr netip.Addr
	host int32
}

// indexHosts fills r.hosts with the distinct labels in sorted order.
func (r *records) indexHosts(ess []*endpointSlice, n int) map[string]int32 {
	names := make(map[string]string, n)
	for _, s := range ess {
		for _, e := range s.endpoints {
			l := strings.ToLower(e.host)
			if _, ok := names[l]; !ok {
				names[l] = e.host
			}
		}
	}
	lowers := slices.Sorted(func(yield func(string) bool) {
		for l := range names {
			if !yield(l) {
				return
			}
		}
	})
	idx := make(map[string]int32, len(lowers))
	r.hosts = make([]hostRec, len(lowers))
	for i, l := range lowers {
		r.hosts[i] = hostRec{name: names[l], lower: l}
		idx[l] = int32(i) // #nosec G115 -- bounded by the slice's length
	}
	return idx
}

func (r *records) addEndpoint(idx map[epKey]int32, addrIdx map[netip.Addr]int32, addr netip.Addr, host int32) int32 {
	k := epKey{addr, host}
	if i, ok := idx[k]; ok {
		return i
	}
	i := int32(len(r.eps)) // #nosec G115
	idx[k] = i
	same, ok := addrIdx[addr]
	if !ok {
		same, addrIdx[addr] = i, i
	}
	r.eps = append(r.eps, epRec{off: int32(len(r.ips)), host: host, same: same, v6: !addr.Is4()}) // #nosec G115
	r.ips = append(r.ips, addr.AsSlice()...)
	return i
}

// ip returns the address of eps[ep]; appending to it cannot reach the next.
func (r *records) ip(ep int32) net.IP {
	e := r.eps[ep]
	n := int32(net.IPv4len)
	if e.v6 {
		n = net.IPv6len
	}
	return r.ips[e.off : e.off+n : e.off+n]
}

func (r *records) addPort(idx map[portRec]uint16, p slicePort) uint16 {
	k := portRec{name: strings.ToLower(p.name), protocol: strings.ToLower(p.protocol), port: p.port}
	if i, ok := idx[k]; ok {
		return i
	}
	i := uint16(len(r.ports)) // #nosec G115 -- see maxPorts
	idx[k] = i
	r.ports = append(r.ports, k)
	return i
}

// flag returns a copy of entries, which are grouped by host, with the
// first-occurrence flags set for that sequence.
func (r *records) flag(entries []entry) []entry {
	out := make([]entry, len(entries))
	seen := make([]uint8, len(r.eps)) // firstAddr, firstEP and firstGlue already given, by endpoint
	var hostPorts []int32             // port numbers with an SRV record in the current host's run
	host := int32(-1)
	for i, e := range entries {
		ep := r.eps[e.ep]
		if ep.host != host {
			host, hostPorts = ep.host, hostPorts[:0]
		}
		e.flags = 0
		if seen[ep.same]&firstAddr == 0 {
			seen[ep.same] |= firstAddr
			e.flags |= firstAddr
		}
		if seen[e.ep]&firstEP == 0 {
			seen[e.ep] |= firstEP
			e.flags |= firstEP
		}
		if port := r.ports[e.port].port; port != -1 {
			if !slices.Contains(hostPorts, port) {
				hostPorts = append(hostPorts, port)
				e.flags |= firstSRV
			}
			if seen[e.ep]&firstGlue == 0 {
				seen[e.ep] |= firstGlue
				e.flags |= firstGlue
			}
		}
		out[i] = e
	}
	return out
}

func (r *records) addr(ep int32) netip.Addr {
	a, _ := netip.AddrFromSlice(r.ip(ep))
	return a
}

// rangeHosts records where each host's run of entries lies.
func (r *records) rangeHosts() {
	for i, e := range r.entries {
		h := &r.hosts[r.eps[e.ep].host]
		if h.hi == 0 {
			h.lo = int32(i) // #nosec G115
		}
		h.hi = int32(i + 1) // #nosec G115
	}
}

// groupCombos splits the entries by port name and protocol.
func (r *records) groupCombos() {
	type key struct{ name, protocol string }
	groups := make(map[key][]entry)
	for _, e := range r.entries {
		p := r.ports[e.port]
		k := key{p.name, p.protocol}
		groups[k] = append(groups[k], e)
	}
	for k, es := range groups {
		r.combos = append(r.combos, comboRec{name: k.name, protocol: k.protocol, entries: r.flag(es)})
	}
	slices.SortFunc(r.combos, func(a, b comboRec) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.protocol, b.protocol))
	})
}

// target is the name of host h: host.service.namespace.svc.zone.
func (r *records) target(h int32, zone string) string {
	return r.hosts[h].name + "." + r.name + "." + r.namespace + ".svc." + zone
}

// targets returns the names, in zone, of the hosts whose entries among es
// have flag set, indexed by host. They share one allocation: names are not
// kept in the index, where they would cost more than building them.
func (r *records) targets(es []entry, flag uint8, zone string) []string {
	suffix := len(r.name) + len(r.namespace) + len(".svc.") + 2 + len(zone)
	used := make([]bool, len(r.hosts))
	size := 0
	for _, e := range es {
		if h := r.eps[e.ep].host; e.flags&flag != 0 && !used[h] {
			used[h] = true
			size += len(r.hosts[h].name) + suffix
		}
	}
	var b strings.Builder
	b.Grow(size)
	ends := make([]int, len(r.hosts))
	for h, u := range used {
		if u {
			for _, part := range []string{r.hosts[h].name, ".", r.name, ".", r.namespace, ".svc.", zone} {
				b.WriteString(part)
			}
			ends[h] = b.Len()
		}
	}
	all := b.String()
	names := make([]string, len(r.hosts))
	start := 0
	for h, end := range ends {
		if used[h] {
			names[h] = all[start:end]
			start = end
		}
	}
	return names
}

// selection is the set of entries that one query name selects.
type selection struct {
	recs     *records
	entries  []entry
	addrFlag uint8 // firstAddr, or firstEP when the name is a host's
}

// exists reports whether the name exists: the kubernetes plugin answers
// NXDOMAIN for a name that selects no entry.
func (s selection) exists() bool { return len(s.entries) > 0 }

// selectAll selects every entry: the service name.
func (r *records) selectAll() selection {
	return selection{recs: r, entries: r.entries, addrFlag: firstAddr}
}

// selectHost selects the entries of one endpoint label (lower case).
func (r *records) selectHost(host string) selection {
	i, ok := slices.BinarySearchFunc(r.hosts, host, func(h hostRec, t string) int { return cmp.Compare(h.lower, t) })
	if !ok {
		return selection{recs: r}
	}
	h := r.hosts[i]
	return selection{recs: r, entries: r.entries[h.lo:h.hi], addrFlag: firstEP}
}

// selectPort selects the entries of _port._protocol (both lower case, the
// underscores stripped). An empty port or protocol matches any, as in the
// kubernetes plugin.
func (r *records) selectPort(port, protocol string) selection {
	if port != "" && protocol != "" {
		for _, c := range r.combos {
			if c.name == port && c.protocol == protocol {
				return selection{recs: r, entries: c.entries, addrFlag: firstAddr}
			}
		}
		return selection{recs: r}
	}
	var es []entry
	for _, e := range r.entries {
		p := r.ports[e.port]
		if (port == "" || p.name == port) && (protocol == "" || p.protocol == protocol) {
			es = append(es, e)
		}
	}
	return selection{recs: r, entries: r.flag(es), addrFlag: firstAddr}
}

// addresses returns the A (or, with v6, AAAA) records of the selection, owned
// by qname, in rep's room when they are A records and fit.
func (s selection) addresses(qname string, v6 bool, ttl uint32, rep *reply) []dns.RR {
	n := 0
	for _, e := range s.entries {
		if e.flags&s.addrFlag != 0 && s.isV6(e) == v6 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	var (
		rrs  []dns.RR
		a    []dns.A
		aaaa []dns.AAAA
	)
	if n <= smallAnswer && !v6 {
		rrs, a = rep.rrs[:0:n], rep.a[:n]
	} else if v6 {
		rrs, aaaa = make([]dns.RR, 0, n), make([]dns.AAAA, n)
	} else {
		rrs, a = make([]dns.RR, 0, n), make([]dns.A, n)
	}
	hdr := dns.RR_Header{Name: qname, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}
	if v6 {
		hdr.Rrtype = dns.TypeAAAA
		for _, e := range s.entries {
			if e.flags&s.addrFlag != 0 && s.isV6(e) {
				rr := &aaaa[len(rrs)]
				rr.Hdr, rr.AAAA = hdr, s.recs.ip(e.ep)
				rrs = append(rrs, rr)
			}
		}
		return rrs
	}
	for _, e := range s.entries {
		if e.flags&s.addrFlag != 0 && !s.isV6(e) {
			rr := &a[len(rrs)]
			rr.Hdr, rr.A = hdr, s.recs.ip(e.ep)
			rrs = append(rrs, rr)
		}
	}
	return rrs
}

func (s selection) isV6(e entry) bool { return s.recs.eps[e.ep].v6 }

// srv returns the SRV records of the selection, owned by qname, with targets
// in zone (as the query wrote it), and their address records as glue.
func (s selection) srv(qname, zone string, ttl uint32) (answer, extra []dns.RR) {
	nsrv, n4, n6 := 0, 0, 0
	for _, e := range s.entries {
		if e.flags&firstSRV != 0 {
			nsrv++
		}
		if e.flags&firstGlue != 0 {
			if s.isV6(e) {
				n6++
			} else {
				n4++
			}
		}
	}
	if nsrv == 0 {
		return nil, nil
	}
	weight := srvWeight(len(s.entries))
	targets := s.recs.targets(s.entries, firstSRV|firstGlue, zone)
	srvs := make([]dns.SRV, 0, nsrv)
	a := make([]dns.A, 0, n4)
	aaaa := make([]dns.AAAA, 0, n6)
	answer = make([]dns.RR, 0, nsrv)
	extra = make([]dns.RR, 0, n4+n6)
	for _, e := range s.entries {
		ep := s.recs.eps[e.ep]
		ip := s.recs.ip(e.ep)
		target := targets[ep.host]
		if e.flags&firstSRV != 0 {
			srvs = append(srvs, dns.SRV{
				Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
				Weight: weight, Port: uint16(s.recs.ports[e.port].port), Target: target, // #nosec G115 -- a port number
			})
			answer = append(answer, &srvs[len(srvs)-1])
		}
		if e.flags&firstGlue == 0 {
			continue
		}
		if s.isV6(e) {
			aaaa = append(aaaa, dns.AAAA{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: ip})
			extra = append(extra, &aaaa[len(aaaa)-1])
			continue
		}
		a = append(a, dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ip})
		extra = append(extra, &a[len(a)-1])
	}
	return answer, extra
}

// srvWeight is the weight the kubernetes plugin gives each of n SRV records
// of priority 0, computed the way it does so that both agree to the unit.
func srvWeight(n int) uint16 {
	w := uint16(math.Floor(100.0 / float64(100*n) * 100))
	return max(w, 1)
}

// ptrRecords returns one PTR record, owned by qname, per distinct name of
// refs in zone.
func ptrRecords(qname string, refs []ptrRef, zone string, ttl uint32) []dns.RR {
	rrs := make([]dns.RR, 0, len(refs))
	ptrs := make([]dns.PTR, 0, len(refs))
	for _, ref := range refs {
		name := ref.recs.target(ref.host, zone)
		if slices.ContainsFunc(ptrs, func(p dns.PTR) bool { return p.Ptr == name }) {
			continue
		}
		ptrs = append(ptrs, dns.PTR{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: name})
		rrs = append(rrs, &ptrs[len(ptrs)-1])
	}
	return rrs
}

// soa returns the SOA record of zone, as the kubernetes plugin writes it.
func (h *Headless) soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: min(h.ttl, 300)},
		Ns:      dnsutil.Join("ns.dns", zone),
		Mbox:    dnsutil.Join("hostmaster", zone),
		Serial:  h.index.serial(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  h.ttl,
	}
}

// dnsSchemaVersion is the version of the Kubernetes DNS specification served.
const dnsSchemaVersion = "1.1.0"

// dnsVersion is the record that names the version of the Kubernetes DNS
// specification served.
func dnsVersion(qname string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800}, Txt: []string{dnsSchemaVersion}}
}
