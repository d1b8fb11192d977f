package headless

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// part is the immutable reduced form of one EndpointSlice of a headless
// service: its endpoints and, computed from them once per change of that
// slice, the lists of (endpoint, port) pairs that query names select. A
// service's snapshot is the list of its parts, so that a change of one slice
// rebuilds that slice's part only (docs/design.md). Each list is in the
// order the kubernetes plugin walks the slice, with each pair flagged with
// the records it yields first in that list.
type part struct {
	slice    *endpointSlice // the slice it is built from, which names the service
	hasReady bool           // the slice has an endpoint that is not terminating

	eps   []endpointRec // distinct (address, host) pairs, in order of first use
	ips   []byte        // their addresses, 4 or 16 bytes each
	ports []portRec     // distinct ports

	all    []entry    // every pair, in slice order
	hosts  []hostRec  // the endpoint labels, sorted without regard to case
	combos []comboRec // the pairs of each _port._protocol
	more   *partDetail
}

// partDetail is what few parts have.
type partDetail struct {
	fqdns  []string  // the addresses of FQDN endpoints
	byHost []entry   // the pairs of the labels whose pairs all does not hold as they are
	zones  []zoneRec // the pairs of each topology zone (zonal)
}

// endpointRec is one endpoint address with the label it is known by. The
// address is ips[off:off+4], ips[off:off+16] or, for an FQDN, fqdns[off].
type endpointRec struct {
	off, host int32
	kind      uint8
	same      int32 // the first endpoint with this address: duplicates are found by index
}

// Kinds of endpoint address.
const (
	kindV4 uint8 = iota
	kindV6
	kindFQDN
)

// portRec is one port, its name and protocol in lower case; port -1 stands
// for a slice without ports.
type portRec struct {
	name, protocol string
	port           int32
}

// hostRec is one endpoint label and where its pairs are: all[lo:hi] when
// they stand there in a row, flagged as they would be alone (the endpoint of
// a StatefulSet pod, whose address no other label has), else byHost[lo:hi].
type hostRec struct {
	name     string // as the EndpointSlice writes it, for SRV targets
	lo, hi   int32
	inAll    bool
	hostname bool // an endpoint's hostname (stable_ptr)
}

// comboRec holds the pairs that a _port._protocol name selects.
type comboRec struct {
	name, protocol string
	entries        []entry
}

// zoneRec holds the pairs of the endpoints of one topology zone.
type zoneRec struct {
	zone    string
	entries []entry
}

// entry is one (endpoint, port) pair, flagged with the records it yields
// first in its list.
type entry struct {
	ep    int32
	port  uint16
	flags uint8
}

const (
	firstAddr uint8 = 1 << iota // first with its address: an A or AAAA record
	firstSRV                    // first with its target and port number: an SRV record
	firstGlue                   // first with its target and address among those with a port: a glue record
)

// maxPorts bounds the distinct ports of a slice, so that an entry stays
// small. Kubernetes allows 100 ports a slice.
const maxPorts = 1 << 16

// newPart builds the part of the slice es. It holds the endpoints that are
// terminating or not as terminating says: a service without a ready
// endpoint serves its serving and terminating ones, which the slices hold
// with terminating_fallback only. zonal groups the endpoints by zone;
// multicluster names each endpoint HOST.CLUSTER, as the names of a
// ServiceImport's endpoints are.
func newPart(es *endpointSlice, terminating, zonal, multicluster bool) *part {
	p := &part{slice: es}
	n := 0
	for _, e := range es.endpoints {
		p.hasReady = p.hasReady || !e.terminating
		if e.terminating == terminating {
			n++
		}
	}
	if len(es.ports) > maxPorts {
		log.Warningf("Skipping EndpointSlice %s/%s: it has more than %d ports", es.namespace, es.name, maxPorts)
		return p
	}
	b := partBuilder{p: p, eps: make(map[epKey]int32, n), addrs: make(map[epKey]int32, n), hosts: make(map[string]int32, n)}
	p.eps, p.ips, p.all = make([]endpointRec, 0, n), make([]byte, 0, 4*n), make([]entry, 0, n*len(es.ports))
	ports := make([]uint16, len(es.ports))
	for i, sp := range es.ports {
		ports[i] = b.port(sp)
	}
	for _, e := range es.endpoints {
		if e.terminating != terminating {
			continue
		}
		host := e.host
		if multicluster {
			host += "." + es.cluster
		}
		ep := b.endpoint(e, host)
		for _, port := range ports {
			p.all = append(p.all, entry{ep: ep, port: port})
		}
	}
	f := newFlagger(p, len(b.hostNames))
	f.flag(p.all)
	p.groupHosts(f, b.hostNames, b.hostnames)
	p.groupCombos(f)
	if zonal {
		p.groupZones(f, b.zones)
	}
	return p
}

// partBuilder holds the maps that deduplicate while a part is built.
type partBuilder struct {
	p         *part
	eps       map[epKey]int32 // by address and label
	addrs     map[epKey]int32 // by address
	hosts     map[string]int32
	hostNames []string
	hostnames []bool // whether each label is an endpoint's hostname
	zones     []string
}

type epKey struct {
	addr netip.Addr
	fqdn string
	host int32
}

// endpoint adds e, known by host, unless it is there already.
func (b *partBuilder) endpoint(e sliceEndpoint, host string) int32 {
	lower := strings.ToLower(host)
	h, ok := b.hosts[lower]
	if !ok {
		h = int32(len(b.hostNames)) // #nosec G115 -- bounded by the endpoints of a slice
		b.hosts[lower] = h
		b.hostNames = append(b.hostNames, host)
		b.hostnames = append(b.hostnames, false)
	}
	b.hostnames[h] = b.hostnames[h] || e.hostname
	fqdn := e.fqdn()
	k := epKey{addr: e.addr, fqdn: fqdn, host: h}
	if i, ok := b.eps[k]; ok {
		return i
	}
	p := b.p
	i := int32(len(p.eps)) // #nosec G115
	b.eps[k] = i
	addrKey := epKey{addr: e.addr, fqdn: fqdn}
	same, ok := b.addrs[addrKey]
	if !ok {
		same, b.addrs[addrKey] = i, i
	}
	rec := endpointRec{host: h, same: same}
	switch {
	case fqdn != "":
		if p.more == nil {
			p.more = &partDetail{}
		}
		rec.kind, rec.off = kindFQDN, int32(len(p.more.fqdns)) // #nosec G115
		p.more.fqdns = append(p.more.fqdns, fqdn)
	case e.addr.Is4():
		rec.kind, rec.off = kindV4, int32(len(p.ips)) // #nosec G115
		p.ips = append(p.ips, e.addr.AsSlice()...)
	default:
		rec.kind, rec.off = kindV6, int32(len(p.ips)) // #nosec G115
		p.ips = append(p.ips, e.addr.AsSlice()...)
	}
	p.eps = append(p.eps, rec)
	b.zones = append(b.zones, e.zone())
	return i
}

// port returns the index of the port sp, added unless it is there already;
// a slice has few ports.
func (b *partBuilder) port(sp slicePort) uint16 {
	k := portRec{name: strings.ToLower(sp.name), protocol: strings.ToLower(sp.protocol), port: sp.port}
	if i := slices.Index(b.p.ports, k); i >= 0 {
		return uint16(i) // #nosec G115 -- see maxPorts
	}
	b.p.ports = append(b.p.ports, k)
	return uint16(len(b.p.ports) - 1) // #nosec G115
}

// flagger sets the first-occurrence flags of lists of pairs of one part. Its
// marks are cleared after each list, so that flagging a list costs what the
// list holds, not what the part holds.
type flagger struct {
	p        *part
	addr     []bool // by endpointRec.same
	glue     []bool // by endpoint
	srv      []bool // by label and port number
	numbers  []int  // the index of each port's number among the distinct ones
	nNumbers int
}

func newFlagger(p *part, hosts int) *flagger {
	f := &flagger{p: p, addr: make([]bool, len(p.eps)), glue: make([]bool, len(p.eps)), numbers: make([]int, len(p.ports))}
	var distinct []int32
	for i, port := range p.ports {
		j := slices.Index(distinct, port.port)
		if j < 0 {
			j = len(distinct)
			distinct = append(distinct, port.port)
		}
		f.numbers[i] = j
	}
	f.nNumbers = len(distinct)
	f.srv = make([]bool, hosts*f.nNumbers)
	return f
}

// flag sets the first-occurrence flags of the list es, in place.
func (f *flagger) flag(es []entry) {
	p := f.p
	for i, e := range es {
		e.flags = 0
		ep := p.eps[e.ep]
		if ep.kind != kindFQDN {
			if !f.addr[ep.same] {
				f.addr[ep.same] = true
				e.flags |= firstAddr
			}
			if p.ports[e.port].port != -1 {
				if k := int(ep.host)*f.nNumbers + f.numbers[e.port]; !f.srv[k] {
					f.srv[k] = true
					e.flags |= firstSRV
				}
				if !f.glue[e.ep] {
					f.glue[e.ep] = true
					e.flags |= firstGlue
				}
			}
		}
		es[i] = e
	}
	for _, e := range es {
		ep := p.eps[e.ep]
		f.addr[ep.same], f.glue[e.ep] = false, false
		f.srv[int(ep.host)*f.nNumbers+f.numbers[e.port]] = false
	}
}

// groupHosts sorts the labels and finds the pairs of each: a run of all, or
// a copy in byHost, flagged for the label alone.
func (p *part) groupHosts(f *flagger, names []string, hostnames []bool) {
	order := make([]int32, len(names)) // label indices, sorted
	for i := range order {
		order[i] = int32(i) // #nosec G115
	}
	slices.SortFunc(order, func(a, b int32) int { return compareFold(names[a], names[b]) })
	index := make([]int32, len(names)) // old label index to new
	for to, from := range order {
		index[from] = int32(to) // #nosec G115
	}
	for i := range p.eps {
		p.eps[i].host = index[p.eps[i].host]
	}
	first, last, count := make([]int, len(names)), make([]int, len(names)), make([]int, len(names))
	for i, e := range p.all {
		h := p.eps[e.ep].host
		if count[h] == 0 {
			first[h] = i
		}
		last[h] = i
		count[h]++
	}
	var byHost, alone []entry
	p.hosts = make([]hostRec, len(names))
	for h, from := range order {
		rec := hostRec{name: names[from], hostname: hostnames[from]}
		if count[h] == 0 {
			p.hosts[h] = rec
			continue
		}
		if run := p.all[first[h] : last[h]+1]; len(run) == count[h] {
			alone = append(alone[:0], run...)
			f.flag(alone)
			if slices.Equal(run, alone) {
				rec.lo, rec.hi, rec.inAll = int32(first[h]), int32(last[h]+1), true // #nosec G115
				p.hosts[h] = rec
				continue
			}
		}
		rec.lo = int32(len(byHost)) // #nosec G115
		for _, e := range p.all[first[h] : last[h]+1] {
			if p.eps[e.ep].host == int32(h) { // #nosec G115
				byHost = append(byHost, e)
			}
		}
		rec.hi = int32(len(byHost)) // #nosec G115
		f.flag(byHost[rec.lo:rec.hi])
		p.hosts[h] = rec
	}
	if len(byHost) > 0 {
		p.detail().byHost = slices.Clip(byHost)
	}
}

func (p *part) detail() *partDetail {
	if p.more == nil {
		p.more = &partDetail{}
	}
	return p.more
}

// compareFold compares a and b as cmp.Compare compares their lower-case
// forms; labels are ASCII.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if ca, cb := lowerASCII(a[i]), lowerASCII(b[i]); ca != cb {
			return cmp.Compare(ca, cb)
		}
	}
	return cmp.Compare(len(a), len(b))
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// groupCombos splits the pairs by port name and protocol.
func (p *part) groupCombos(f *flagger) {
	combo := make([]int, len(p.ports)) // of each port
	var sizes []int
	for i, port := range p.ports {
		combo[i] = slices.IndexFunc(p.combos, func(c comboRec) bool { return c.name == port.name && c.protocol == port.protocol })
		if combo[i] < 0 {
			combo[i] = len(p.combos)
			p.combos = append(p.combos, comboRec{name: port.name, protocol: port.protocol})
			sizes = append(sizes, 0)
		}
	}
	for _, e := range p.all {
		sizes[combo[e.port]]++
	}
	for i := range p.combos {
		p.combos[i].entries = make([]entry, 0, sizes[i])
	}
	for _, e := range p.all {
		c := &p.combos[combo[e.port]]
		c.entries = append(c.entries, e)
	}
	for i := range p.combos {
		f.flag(p.combos[i].entries)
	}
}

// groupZones splits the pairs by the topology zone of their endpoint;
// endpoints without a zone are in none.
func (p *part) groupZones(f *flagger, zones []string) {
	var recs []zoneRec
	for _, e := range p.all {
		z := zones[e.ep]
		if z == "" {
			continue
		}
		i := slices.IndexFunc(recs, func(r zoneRec) bool { return r.zone == z })
		if i < 0 {
			i = len(recs)
			recs = append(recs, zoneRec{zone: z})
		}
		recs[i].entries = append(recs[i].entries, e)
	}
	for i := range recs {
		f.flag(recs[i].entries)
	}
	if len(recs) > 0 {
		p.detail().zones = recs
	}
}

// ip returns the address of eps[ep]; appending to it cannot reach the next.
func (p *part) ip(ep int32) net.IP {
	e := p.eps[ep]
	n := int32(net.IPv4len)
	if e.kind == kindV6 {
		n = net.IPv6len
	}
	return p.ips[e.off : e.off+n : e.off+n]
}

// addr returns the address of eps[ep] as a netip.Addr.
func (p *part) addr(ep int32) netip.Addr {
	a, _ := netip.AddrFromSlice(p.ip(ep))
	return a
}

// fqdn returns the address of the FQDN endpoint eps[ep].
func (p *part) fqdn(ep int32) string { return p.more.fqdns[p.eps[ep].off] }

// target is the name of label h in zone: host.service.namespace.svc.zone.
func (p *part) target(h int32, zone string) string {
	var b strings.Builder
	b.Grow(p.targetLen(h, zone))
	p.writeTarget(&b, h, zone)
	return b.String()
}

// targetLen is the length of target(h, zone).
func (p *part) targetLen(h int32, zone string) int {
	return len(p.hosts[h].name) + len(p.slice.service) + len(p.slice.namespace) + len(zone) + len("..svc.")
}

// writeTarget writes target(h, zone) to b.
func (p *part) writeTarget(b *strings.Builder, h int32, zone string) {
	for _, s := range [...]string{p.hosts[h].name, ".", p.slice.service, ".", p.slice.namespace, ".svc.", zone} {
		b.WriteString(s)
	}
}

// targets returns, at the index of each host that an SRV record or its glue
// of entries names, that host's target, all in one string; other indexes
// are empty. It reuses the room of into.
func (p *part) targets(entries []entry, zone string, into []string) []string {
	into = slices.Grow(into[:0], len(p.hosts))[:len(p.hosts)]
	clear(into)
	size := 0
	for _, e := range entries {
		h := p.eps[e.ep].host
		if e.flags&(firstSRV|firstGlue) != 0 && into[h] == "" {
			into[h] = p.hosts[h].name // named; its target is written below
			size += p.targetLen(h, zone)
		}
	}
	var b strings.Builder
	b.Grow(size) // so that the strings taken from b share one buffer
	for h := range into {
		if into[h] == "" {
			continue
		}
		start := b.Len()
		p.writeTarget(&b, int32(h), zone) // #nosec G115 -- an index of hosts, which are int32
		into[h] = b.String()[start:]
	}
	return into
}

// host returns the index of the label host (in lower case) in hosts.
func (p *part) host(host string) (int, bool) {
	return slices.BinarySearchFunc(p.hosts, host, func(h hostRec, t string) int { return compareFold(h.name, t) })
}

// hostEntries returns the pairs of label h.
func (p *part) hostEntries(h int) []entry {
	rec := p.hosts[h]
	if rec.inAll {
		return p.all[rec.lo:rec.hi]
	}
	return p.more.byHost[rec.lo:rec.hi]
}

// zone returns the pairs of the endpoints in zone.
func (p *part) zone(zone string) []entry {
	if p.more == nil {
		return nil
	}
	for _, z := range p.more.zones {
		if z.zone == zone {
			return z.entries
		}
	}
	return nil
}

// combo returns the pairs of the port name and protocol.
func (p *part) combo(port, protocol string) []entry {
	for _, c := range p.combos {
		if c.name == port && c.protocol == protocol {
			return c.entries
		}
	}
	return nil
}

// addresses calls fn with each distinct address of the part.
func (p *part) addresses(fn func(netip.Addr)) {
	for i, ep := range p.eps {
		if ep.kind != kindFQDN && ep.same == int32(i) { // #nosec G115
			fn(p.addr(int32(i))) // #nosec G115
		}
	}
}
