package headless

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// snapshot is the immutable view of one headless service: its EndpointSlices
// and, computed from them once per change, the selections that query names
// make. A selection is the list of (endpoint, port) pairs that the kubernetes
// plugin walks for a name, in its order, with each pair flagged with the
// records it yields first, so that an answer is one walk without sets.
type snapshot struct {
	name, namespace string
	slices          []*endpointSlice // sorted by name; everything below comes from them
	terminating     bool             // no endpoint is ready: those below are the terminating ones

	eps   []endpointRec // distinct (address, host) pairs, in order of first use
	ips   []byte        // their addresses, 4 or 16 bytes each
	fqdns []string      // the addresses of FQDN endpoints
	ports []portRec     // distinct ports

	all    []entry    // every pair, in slice order: the service's name
	hosts  []hostRec  // the endpoint labels, sorted without regard to case
	byHost []entry    // the pairs of the labels whose pairs all does not hold as they are
	combos []comboRec // the pairs of each _port._protocol
	zones  []zoneRec  // the pairs of each topology zone (zonal)
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

// maxPorts bounds the distinct ports of a service, so that an entry stays
// small. Kubernetes allows 100 ports a slice.
const maxPorts = 1 << 16

// newSnapshot builds the snapshot of a headless service from its slices,
// sorted by name, which it keeps. A service without a ready endpoint serves
// its serving and terminating ones, which the slices hold with
// terminating_fallback only. zonal groups the endpoints by zone;
// multicluster names each endpoint HOST.CLUSTER, as the names of a
// ServiceImport's endpoints are.
func newSnapshot(name, namespace string, ess []*endpointSlice, zonal, multicluster bool) *snapshot {
	s := &snapshot{name: name, namespace: namespace, slices: ess}
	s.terminating = !slices.ContainsFunc(ess, func(es *endpointSlice) bool {
		return slices.ContainsFunc(es.endpoints, func(e sliceEndpoint) bool { return !e.terminating })
	})

	endpoints, pairs := 0, 0
	for _, es := range ess {
		endpoints += len(es.endpoints)
		pairs += len(es.endpoints) * len(es.ports)
	}
	b := builder{s: s, eps: make(map[epKey]int32, endpoints), addrs: make(map[epKey]int32, endpoints),
		hosts: make(map[string]int32, endpoints), ports: map[portRec]uint16{}}
	s.eps, s.ips, s.all = make([]endpointRec, 0, endpoints), make([]byte, 0, 4*endpoints), make([]entry, 0, pairs)
	for _, es := range ess {
		if len(b.ports)+len(es.ports) > maxPorts {
			log.Warningf("Skipping EndpointSlice %s/%s: service %s has more than %d distinct ports", es.namespace, es.name, name, maxPorts)
			continue
		}
		for _, e := range es.endpoints {
			if e.terminating != s.terminating {
				continue
			}
			host := e.host
			if multicluster {
				host += "." + es.cluster
			}
			ep := b.endpoint(e, host)
			for _, p := range es.ports {
				s.all = append(s.all, entry{ep: ep, port: b.port(p)})
			}
		}
	}
	s.flag(s.all)
	s.groupHosts(b.hostNames, b.hostnames)
	s.groupCombos()
	if zonal {
		s.groupZones(b.zones)
	}
	return s
}

// builder holds the maps that deduplicate while a snapshot is built.
type builder struct {
	s         *snapshot
	eps       map[epKey]int32 // by address and label
	addrs     map[epKey]int32 // by address
	hosts     map[string]int32
	hostNames []string
	hostnames []bool // whether each label is an endpoint's hostname
	ports     map[portRec]uint16
	zones     []string // of each endpoint
}

type epKey struct {
	addr netip.Addr
	fqdn string
	host int32
}

// endpoint adds e, known by host, unless it is there already.
func (b *builder) endpoint(e sliceEndpoint, host string) int32 {
	lower := strings.ToLower(host)
	h, ok := b.hosts[lower]
	if !ok {
		h = int32(len(b.hostNames)) // #nosec G115 -- bounded by the endpoints of a service
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
	s := b.s
	i := int32(len(s.eps)) // #nosec G115
	b.eps[k] = i
	addrKey := epKey{addr: e.addr, fqdn: fqdn}
	same, ok := b.addrs[addrKey]
	if !ok {
		same, b.addrs[addrKey] = i, i
	}
	rec := endpointRec{host: h, same: same}
	switch {
	case fqdn != "":
		rec.kind, rec.off = kindFQDN, int32(len(s.fqdns)) // #nosec G115
		s.fqdns = append(s.fqdns, fqdn)
	case e.addr.Is4():
		rec.kind, rec.off = kindV4, int32(len(s.ips)) // #nosec G115
		s.ips = append(s.ips, e.addr.AsSlice()...)
	default:
		rec.kind, rec.off = kindV6, int32(len(s.ips)) // #nosec G115
		s.ips = append(s.ips, e.addr.AsSlice()...)
	}
	s.eps = append(s.eps, rec)
	b.zones = append(b.zones, e.zone())
	return i
}

func (b *builder) port(p slicePort) uint16 {
	k := portRec{name: strings.ToLower(p.name), protocol: strings.ToLower(p.protocol), port: p.port}
	if i, ok := b.ports[k]; ok {
		return i
	}
	i := uint16(len(b.s.ports)) // #nosec G115 -- see maxPorts
	b.ports[k] = i
	b.s.ports = append(b.s.ports, k)
	return i
}

// flag sets the first-occurrence flags of the list es, in place.
func (s *snapshot) flag(es []entry) {
	seenAddr := make([]bool, len(s.eps)) // by endpointRec.same
	seenGlue := make([]bool, len(s.eps))
	srvPorts := map[int32][]int32{} // port numbers with an SRV record, by host
	for i, e := range es {
		e.flags = 0
		ep := s.eps[e.ep]
		if ep.kind != kindFQDN {
			if !seenAddr[ep.same] {
				seenAddr[ep.same] = true
				e.flags |= firstAddr
			}
			if port := s.ports[e.port].port; port != -1 {
				if ports := srvPorts[ep.host]; !slices.Contains(ports, port) {
					srvPorts[ep.host] = append(ports, port)
					e.flags |= firstSRV
				}
				if !seenGlue[e.ep] {
					seenGlue[e.ep] = true
					e.flags |= firstGlue
				}
			}
		}
		es[i] = e
	}
}

// groupHosts sorts the labels and finds the pairs of each: a run of all, or
// a copy in byHost, flagged for the label alone.
func (s *snapshot) groupHosts(names []string, hostnames []bool) {
	order := make([]int32, len(names)) // label indices, sorted
	for i := range order {
		order[i] = int32(i) // #nosec G115
	}
	slices.SortFunc(order, func(a, b int32) int { return compareFold(names[a], names[b]) })
	index := make([]int32, len(names)) // old label index to new
	for to, from := range order {
		index[from] = int32(to) // #nosec G115
	}
	for i := range s.eps {
		s.eps[i].host = index[s.eps[i].host]
	}
	first, last, count := make([]int, len(names)), make([]int, len(names)), make([]int, len(names))
	for i, e := range s.all {
		h := s.eps[e.ep].host
		if count[h] == 0 {
			first[h] = i
		}
		last[h] = i
		count[h]++
	}
	s.hosts = make([]hostRec, len(names))
	for h, from := range order {
		rec := hostRec{name: names[from], hostname: hostnames[from]}
		if run := s.all[first[h] : last[h]+1]; len(run) == count[h] {
			alone := slices.Clone(run)
			s.flag(alone)
			if slices.Equal(run, alone) {
				rec.lo, rec.hi, rec.inAll = int32(first[h]), int32(last[h]+1), true // #nosec G115
				s.hosts[h] = rec
				continue
			}
		}
		rec.lo = int32(len(s.byHost)) // #nosec G115
		for _, e := range s.all[first[h] : last[h]+1] {
			if s.eps[e.ep].host == int32(h) { // #nosec G115
				s.byHost = append(s.byHost, e)
			}
		}
		rec.hi = int32(len(s.byHost)) // #nosec G115
		s.flag(s.byHost[rec.lo:rec.hi])
		s.hosts[h] = rec
	}
	s.byHost = slices.Clip(s.byHost)
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
func (s *snapshot) groupCombos() {
	combo := make([]int, len(s.ports)) // of each port
	var sizes []int
	for i, p := range s.ports {
		combo[i] = slices.IndexFunc(s.combos, func(c comboRec) bool { return c.name == p.name && c.protocol == p.protocol })
		if combo[i] < 0 {
			combo[i] = len(s.combos)
			s.combos = append(s.combos, comboRec{name: p.name, protocol: p.protocol})
			sizes = append(sizes, 0)
		}
	}
	for _, e := range s.all {
		sizes[combo[e.port]]++
	}
	for i := range s.combos {
		s.combos[i].entries = make([]entry, 0, sizes[i])
	}
	for _, e := range s.all {
		c := &s.combos[combo[e.port]]
		c.entries = append(c.entries, e)
	}
	for i := range s.combos {
		s.flag(s.combos[i].entries)
	}
}

// groupZones splits the pairs by the topology zone of their endpoint;
// endpoints without a zone are in none.
func (s *snapshot) groupZones(zones []string) {
	for _, e := range s.all {
		z := zones[e.ep]
		if z == "" {
			continue
		}
		i := slices.IndexFunc(s.zones, func(r zoneRec) bool { return r.zone == z })
		if i < 0 {
			i = len(s.zones)
			s.zones = append(s.zones, zoneRec{zone: z})
		}
		s.zones[i].entries = append(s.zones[i].entries, e)
	}
	for i := range s.zones {
		s.flag(s.zones[i].entries)
	}
}

// ip returns the address of eps[ep]; appending to it cannot reach the next.
func (s *snapshot) ip(ep int32) net.IP {
	e := s.eps[ep]
	n := int32(net.IPv4len)
	if e.kind == kindV6 {
		n = net.IPv6len
	}
	return s.ips[e.off : e.off+n : e.off+n]
}

// addr returns the address of eps[ep] as a netip.Addr.
func (s *snapshot) addr(ep int32) netip.Addr {
	a, _ := netip.AddrFromSlice(s.ip(ep))
	return a
}

// target is the name of label h in zone: host.service.namespace.svc.zone.
func (s *snapshot) target(h int32, zone string) string {
	return s.hosts[h].name + "." + s.name + "." + s.namespace + ".svc." + zone
}

// selection is the list of pairs that one query name selects.
type selection struct {
	snap    *snapshot
	entries []entry
	// exists is set for a name that exists even when it selects nothing: a
	// zonal name.
	exists bool
}

// found reports whether the name exists: the kubernetes plugin answers
// NXDOMAIN for a name that selects no pair.
func (sel selection) found() bool { return sel.exists || len(sel.entries) > 0 }

// selectAll selects every pair: the service's name.
func (s *snapshot) selectAll() selection { return selection{snap: s, entries: s.all} }

// selectHost selects the pairs of one endpoint label, in lower case.
func (s *snapshot) selectHost(host string) selection {
	i, ok := slices.BinarySearchFunc(s.hosts, host, func(h hostRec, t string) int { return compareFold(h.name, t) })
	if !ok {
		return selection{snap: s}
	}
	h, entries := s.hosts[i], s.byHost
	if h.inAll {
		entries = s.all
	}
	return selection{snap: s, entries: entries[h.lo:h.hi]}
}

// selectPort selects the pairs of _port._protocol (both in lower case, the
// underscores stripped). An empty port or protocol matches any, as in the
// kubernetes plugin.
func (s *snapshot) selectPort(port, protocol string) selection {
	if port != "" && protocol != "" {
		for _, c := range s.combos {
			if c.name == port && c.protocol == protocol {
				return selection{snap: s, entries: c.entries}
			}
		}
		return selection{snap: s}
	}
	var es []entry
	for _, e := range s.all {
		p := s.ports[e.port]
		if (port == "" || p.name == port) && (protocol == "" || p.protocol == protocol) {
			es = append(es, e)
		}
	}
	s.flag(es)
	return selection{snap: s, entries: es}
}

// selectZone selects the pairs of the endpoints in zone (lower case): the
// zonal names. With prefer, a zone without endpoints selects them all.
func (s *snapshot) selectZone(zone string, prefer bool) selection {
	for _, z := range s.zones {
		if z.zone == zone {
			return selection{snap: s, entries: z.entries, exists: true}
		}
	}
	if prefer {
		return selection{snap: s, entries: s.all, exists: true}
	}
	return selection{snap: s, exists: true}
}
