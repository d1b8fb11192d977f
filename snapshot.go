package headless

import (
	"net/netip"
	"strings"
)

// snapshot is the immutable view of one headless service: the parts of its
// EndpointSlices, sorted by slice name. Records come in that order: slice
// name, then the order of the endpoints in the slice (README). A change of
// one slice makes a new snapshot that shares every other part.
type snapshot struct {
	name, namespace string
	terminating     bool    // no endpoint is ready: the parts hold the terminating ones
	parts           []*part // sorted by slice name
	// allRest are the pairs of the parts after the first that have any:
	// with the first part's, the pairs of the service's name.
	allRest []segment
	// shared holds the keys of records that several parts yield, which an
	// answer from several parts must deduplicate; nil when there are none,
	// as in a service of one slice or of a StatefulSet.
	shared *sharedKeys
	// hosts finds the part of a label in a service of many parts; nil for
	// fewer than minIndexedParts.
	hosts *hostIndex
}

// sharedKeys are the addresses and the labels (in lower case) that more
// than one part of a service holds.
type sharedKeys struct {
	addrs map[netip.Addr]bool
	hosts map[string]bool
}

func newSnapshot(name, namespace string, parts []*part, terminating bool, shared *sharedKeys, hosts *hostIndex) *snapshot {
	s := &snapshot{name: name, namespace: namespace, terminating: terminating, parts: parts, shared: shared, hosts: hosts}
	for i, p := range parts {
		if i > 0 && len(p.all) > 0 {
			s.allRest = append(s.allRest, segment{part: p, entries: p.all})
		}
	}
	return s
}

// selection is the list of pairs that one query name selects, in segments
// of one part each.
type selection struct {
	snap  *snapshot
	first segment
	rest  []segment // non-empty, and only when first is
	// exists is set for a name that exists even when it selects nothing: a
	// zonal name.
	exists bool
}

// segment is the pairs of one part that a name selects, flagged within the
// segment: a record that several parts yield is deduplicated in the answer
// (dedup).
type segment struct {
	part    *part
	entries []entry
}

// found reports whether the name exists: the kubernetes plugin answers
// NXDOMAIN for a name that selects no pair.
func (sel *selection) found() bool { return sel.exists || len(sel.first.entries) > 0 }

// add appends the pairs es of p, unless there are none.
func (sel *selection) add(p *part, es []entry) {
	switch {
	case len(es) == 0:
	case len(sel.first.entries) == 0:
		sel.first = segment{part: p, entries: es}
	default:
		sel.rest = append(sel.rest, segment{part: p, entries: es})
	}
}

// segments returns the number of segments.
func (sel *selection) segments() int {
	if len(sel.first.entries) == 0 {
		return 0
	}
	return 1 + len(sel.rest)
}

// segment returns segment i.
func (sel *selection) segment(i int) segment {
	if i == 0 {
		return sel.first
	}
	return sel.rest[i-1]
}

// selectAll selects every pair: the service's name.
func (s *snapshot) selectAll() selection {
	sel := selection{snap: s}
	switch {
	case len(s.parts) > 0 && len(s.parts[0].all) > 0:
		sel.first, sel.rest = segment{part: s.parts[0], entries: s.parts[0].all}, s.allRest
	case len(s.allRest) > 0:
		sel.first, sel.rest = s.allRest[0], s.allRest[1:]
	}
	return sel
}

// selectHost selects the pairs of one endpoint label, in lower case.
func (s *snapshot) selectHost(host string) selection {
	sel := selection{snap: s}
	if s.hosts != nil && (s.shared == nil || !s.shared.hosts[host]) {
		name, ok := s.hosts.part(host)
		if p := partNamed(s.parts, name); ok && p != nil {
			if h, ok := p.host(host); ok {
				sel.add(p, p.hostEntries(h))
			}
		}
		return sel
	}
	for _, p := range s.parts {
		if h, ok := p.host(host); ok {
			sel.add(p, p.hostEntries(h))
		}
	}
	return sel
}

// selectPort selects the pairs of _port._protocol (both in lower case, the
// underscores stripped). An empty port or protocol matches any, as in the
// kubernetes plugin.
func (s *snapshot) selectPort(port, protocol string) selection {
	sel := selection{snap: s}
	for _, p := range s.parts {
		if port != "" && protocol != "" {
			sel.add(p, p.combo(port, protocol))
			continue
		}
		var es []entry
		for _, e := range p.all {
			pr := p.ports[e.port]
			if (port == "" || pr.name == port) && (protocol == "" || pr.protocol == protocol) {
				es = append(es, e)
			}
		}
		if len(es) > 0 {
			newFlagger(p, len(p.hosts)).flag(es)
		}
		sel.add(p, es)
	}
	return sel
}

// selectZone selects the pairs of the endpoints in zone (lower case): the
// zonal names. With prefer, a zone without endpoints selects them all.
func (s *snapshot) selectZone(zone string, prefer bool) selection {
	sel := selection{snap: s, exists: true}
	for _, p := range s.parts {
		sel.add(p, p.zone(zone))
	}
	if len(sel.first.entries) == 0 && prefer {
		sel = s.selectAll()
		sel.exists = true
	}
	return sel
}

// dedup drops, across the segments of one answer, the records that several
// parts yield: the flags of a segment hold within it, and a key that only one
// part holds is first in the answer when it is first in its segment.
type dedup struct {
	shared    *sharedKeys // nil: nothing to drop
	seenAddrs map[netip.Addr]bool
	seenSRV   map[hostPort]bool
	seenGlue  map[hostAddr]bool
}

type hostPort struct {
	host string
	port int32
}

type hostAddr struct {
	host string
	addr netip.Addr
}

// newDedup returns what deduplicates the answer to sel.
func newDedup(sel *selection) dedup {
	if sel.snap == nil || sel.snap.shared == nil || len(sel.rest) == 0 {
		return dedup{}
	}
	return dedup{shared: sel.snap.shared}
}

// addr reports whether the pair e of p, flagged firstAddr in its segment,
// yields the first record of its address in the answer.
func (d *dedup) addr(p *part, e entry) bool {
	if d.shared == nil {
		return true
	}
	a := p.addr(e.ep)
	if !d.shared.addrs[a] {
		return true
	}
	if d.seenAddrs == nil {
		d.seenAddrs = map[netip.Addr]bool{}
	}
	if d.seenAddrs[a] {
		return false
	}
	d.seenAddrs[a] = true
	return true
}

// srv reports whether the pair e of p, flagged firstSRV in its segment,
// yields the first SRV record of its target and port in the answer.
func (d *dedup) srv(p *part, e entry) bool {
	if d.shared == nil {
		return true
	}
	host := strings.ToLower(p.hosts[p.eps[e.ep].host].name)
	if !d.shared.hosts[host] {
		return true
	}
	if d.seenSRV == nil {
		d.seenSRV = map[hostPort]bool{}
	}
	k := hostPort{host: host, port: p.ports[e.port].port}
	if d.seenSRV[k] {
		return false
	}
	d.seenSRV[k] = true
	return true
}

// glue reports whether the pair e of p, flagged firstGlue in its segment,
// yields the first glue record of its target and address in the answer.
func (d *dedup) glue(p *part, e entry) bool {
	if d.shared == nil {
		return true
	}
	host, a := strings.ToLower(p.hosts[p.eps[e.ep].host].name), p.addr(e.ep)
	if !d.shared.hosts[host] || !d.shared.addrs[a] {
		return true
	}
	if d.seenGlue == nil {
		d.seenGlue = map[hostAddr]bool{}
	}
	k := hostAddr{host: host, addr: a}
	if d.seenGlue[k] {
		return false
	}
	d.seenGlue[k] = true
	return true
}
