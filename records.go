package headless

import (
	"context"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// The records of an answer, made from a selection as the kubernetes plugin
// makes them from its list of services (plugin.A, plugin.SRV, ...): same
// records, same order, same duplicates dropped.

// addresses returns the A (or, with v6, AAAA) records of the selection,
// owned by the query name, one an address. An FQDN endpoint yields a CNAME
// to its name followed by what that name resolves to.
func (h *Headless) addresses(ctx context.Context, state request.Request, sel *selection, v6 bool) (rrs []dns.RR, truncated bool) {
	var room [smallKeys]netip.Addr
	var addrs distinct[netip.Addr]
	var c chaser
	for s, e := range sel.endpoints {
		switch {
		case e.fqdn() != "":
			for _, p := range s.ports { // plugin.A follows it for each port
				if sel.holdsPort(p) {
					c.follow(ctx, h, state, e.fqdn(), len(addrs.keys(room[:])))
				}
			}
		case e.addr.Is6() == v6:
			addrs.add(room[:], e.addr)
		}
	}
	keys := addrs.keys(room[:])
	if limit := int(sel.view.policy.answerLimit); limit > 0 && len(keys) > limit && len(c.chains) == 0 {
		keys = window(keys, limit)
	}
	hdr := dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
	if v6 {
		hdr.Rrtype = dns.TypeAAAA
		rrs = addressRecords(keys, func(r *dns.AAAA, ip net.IP) { *r = dns.AAAA{Hdr: hdr, AAAA: ip} })
	} else {
		rrs = addressRecords(keys, func(r *dns.A, ip net.IP) { *r = dns.A{Hdr: hdr, A: ip} })
	}
	return c.interleave(rrs)
}

// window returns n of keys, consecutive from a random one and wrapping
// around, in a new slice: with answer_limit, each query gets another part of
// a large answer, and every key is as likely to be in it.
func window[K any](keys []K, n int) []K {
	start := rand.IntN(len(keys)) // #nosec G404 -- spreads answers, no secret
	out := make([]K, 0, n)
	out = append(out, keys[start:min(len(keys), start+n)]...)
	return append(out, keys[:n-len(out)]...)
}

// smallAnswer is the most records that addressRecords allocates at once
// with the answer that holds them: a StatefulSet's service of a few pods,
// and a pod's name.
const smallAnswer = 4

// addressRecords returns an address record of type T for each of addrs,
// made by set. The records and their addresses are new for each
// query: the cache plugin sets the TTLs of the records it is given and the
// rewrite plugin their names, so records kept in the index could not be
// shared between answers. A small answer takes one allocation, a larger one
// three (BenchmarkServeDNS, seed-A and pod-A).
func addressRecords[T any](addrs []netip.Addr, set func(*T, net.IP)) []dns.RR {
	n := len(addrs)
	if n == 0 {
		return nil
	}
	var rrs []dns.RR
	var records []T
	var ips []byte
	if n <= smallAnswer {
		room := new(struct {
			answer  [smallAnswer]dns.RR
			records [smallAnswer]T
			ips     [smallAnswer * net.IPv6len]byte
		})
		rrs, records, ips = room.answer[:0], room.records[:n], room.ips[:0]
	} else {
		rrs, records, ips = make([]dns.RR, 0, n), make([]T, n), make([]byte, 0, n*net.IPv6len)
	}
	for i, a := range addrs {
		start := len(ips)
		ips = appendAddr(ips, a)
		set(&records[i], ips[start:len(ips):len(ips)])
		rrs = append(rrs, any(&records[i]).(dns.RR))
	}
	return rrs
}

// appendAddr appends the 4 or 16 bytes of a to ips.
func appendAddr(ips []byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(ips, b[:]...)
	}
	b := a.As16()
	return append(ips, b[:]...)
}

// distinct keeps the keys of an answer's records in the order they first
// come, each once, as plugin.A and plugin.SRV drop the records they already
// hold. The first keys are kept in room, which the caller has on the stack
// and hands each call, and are searched in order; past room, keys are kept
// on the heap and found in a map. Room is never stored through d, so that
// it stays on the stack (BenchmarkServeDNS, seed-A and seed-SRV).
type distinct[K comparable] struct {
	n     int // the keys in room
	more  []K // every key, once past room
	index map[K]int
}

// add adds k, unless it is there already, and returns its position.
func (d *distinct[K]) add(room []K, k K) int { return d.insert(room, k, false) }

// insert adds k and returns its position. A key the caller knows is new
// is not searched for.
func (d *distinct[K]) insert(room []K, k K, isNew bool) int {
	if !isNew {
		if i := d.find(room, k); i >= 0 {
			return i
		}
	}
	switch {
	case d.index == nil && d.n < len(room):
		room[d.n] = k
		d.n++
		return d.n - 1
	case d.index == nil:
		d.more = append(make([]K, 0, 4*len(room)), room...)
		d.index = make(map[K]int, 4*len(room))
		for i, key := range d.more {
			d.index[key] = i
		}
	}
	d.index[k] = len(d.more)
	d.more = append(d.more, k)
	return len(d.more) - 1
}

// find returns the position of k among the keys, or -1.
func (d *distinct[K]) find(room []K, k K) int {
	if d.index == nil {
		return slices.Index(room[:d.n], k)
	}
	if i, ok := d.index[k]; ok {
		return i
	}
	return -1
}

// len returns the number of keys.
func (d *distinct[K]) len() int {
	if d.index != nil {
		return len(d.more)
	}
	return d.n
}

// keys returns the keys, in order.
func (d *distinct[K]) keys(room []K) []K {
	if d.index != nil {
		return d.more
	}
	return room[:d.n]
}

// smallKeys is the room for keys that distinct searches in order.
const smallKeys = 32

// maxCNAMEChain bounds the CNAMEs to FQDN endpoints that one query follows
// through the server, as plugin.A bounds its chains (maxCnameChainLength).
const maxCNAMEChain = 10

// chainKey holds, in the context of a lookup that follows a CNAME, the
// CNAMEs followed so far.
type chainKey struct{}

// chaser follows the FQDN endpoints of one answer: each target once, however
// many endpoints and ports name it, its records placed where the endpoint
// stands among the address records.
type chaser struct {
	done   map[string]chain
	chains []chain // in the order of the endpoints
}

// chain is what one FQDN endpoint adds to an answer, after the first at
// address records.
type chain struct {
	rrs       []dns.RR
	truncated bool
	at        int
}

// follow records the chain of target, after the first at address records.
func (c *chaser) follow(ctx context.Context, h *Headless, state request.Request, target string, at int) {
	r, ok := c.done[target]
	if !ok {
		r.rrs, r.truncated = h.follow(ctx, state, target)
		if c.done == nil {
			c.done = map[string]chain{}
		}
		c.done[target] = r
	}
	r.at = at
	c.chains = append(c.chains, r)
}

// interleave returns the address records rrs with the chains placed among
// them, and whether a chain was truncated.
func (c *chaser) interleave(rrs []dns.RR) ([]dns.RR, bool) {
	if len(c.chains) == 0 {
		return rrs, false
	}
	var out []dns.RR
	truncated, next := false, 0
	for _, ch := range c.chains {
		out = append(append(out, rrs[next:ch.at]...), ch.rrs...)
		next, truncated = ch.at, truncated || ch.truncated
	}
	return append(out, rrs[next:]...), truncated
}

func (h *Headless) follow(ctx context.Context, state request.Request, target string) ([]dns.RR, bool) {
	if plugin.Name(state.Name()).Matches(target) {
		return nil, false // a loop: x CNAME x
	}
	chain, _ := ctx.Value(chainKey{}).([]dns.RR)
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl}, Target: target}
	if len(chain) > maxCNAMEChain || dnsutil.DuplicateCNAME(cname, chain) {
		return nil, false
	}
	ctx = context.WithValue(ctx, chainKey{}, append(chain[:len(chain):len(chain)], cname))
	m, err := h.upstream.Lookup(ctx, state, target, state.QType())
	if err != nil || m == nil {
		return nil, false
	}
	if dns.IsSubDomain(state.Zone, target) && (m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0) {
		return nil, m.Truncated
	}
	return append([]dns.RR{cname}, m.Answer...), m.Truncated
}

// srvKey is what makes an SRV record distinct: its target's label, in the
// high half, and its port. One integer compares fastest (BenchmarkServeDNS,
// seed-SRV).
type srvKey uint64

func newSRVKey(label, port int32) srvKey { return srvKey(uint64(label)<<32 | uint64(uint32(port))) } // #nosec G115

func (k srvKey) label() int32 { return int32(k >> 32) } // #nosec G115
func (k srvKey) port() uint16 { return uint16(k) }      // #nosec G115

// glueKey is what makes a glue record distinct: its owner and address.
type glueKey struct {
	label int32
	addr  netip.Addr
}

// srv returns the SRV records of the selection, owned by the query name,
// with targets in zone, and the targets' addresses as glue: a record for
// each (endpoint, port) pair, in the order of the selection, but those that
// repeat one already there. The weight of each is 100 over the pairs, before
// duplicates are dropped, as in plugin.SRV. FQDN endpoints and slices
// without ports have no SRV record.
func (h *Headless) srv(sel *selection, qname, zone string) (answer, extra []dns.RR) {
	var labelRoom [smallKeys]string
	var srvRoom [smallKeys]srvKey
	var glueRoom [smallKeys]glueKey
	var numberRoom [smallKeys]int32
	var labels distinct[string]
	var srvs distinct[srvKey]
	var glue distinct[glueKey]
	n := 0
	var slice *endpointSlice
	var numbers []int32 // the numbers of the slice's selected ports, each once
	selected := 0       // the slice's selected ports
	for s, e := range sel.endpoints {
		if s != slice {
			slice, numbers, selected = s, numberRoom[:0], 0
			for _, p := range s.ports {
				if sel.holdsPort(p) {
					selected++
					if p.port != -1 && !slices.Contains(numbers, p.port) {
						numbers = append(numbers, p.port)
					}
				}
			}
		}
		if e.fqdn() != "" {
			continue
		}
		n += selected
		if len(numbers) == 0 {
			continue
		}
		// A key of a label not seen before is new: only those of a label
		// seen before are searched (BenchmarkServeDNS, seed-SRV).
		count := labels.len()
		label := labels.add(labelRoom[:], e.host)
		fresh := label == count
		l := int32(label) // #nosec G115 -- bounded by the endpoints of a service
		for _, port := range numbers {
			srvs.insert(srvRoom[:], newSRVKey(l, port), fresh)
		}
		glue.insert(glueRoom[:], glueKey{label: l, addr: e.addr}, fresh)
	}
	srvKeys, glueKeys, labelKeys := srvs.keys(srvRoom[:]), glue.keys(glueRoom[:]), labels.keys(labelRoom[:])
	if len(srvKeys) == 0 {
		return nil, nil
	}
	weight := srvWeight(n)
	var answered map[int32]bool // with answer_limit, the labels of the records answered
	if limit := int(sel.view.policy.answerLimit); limit > 0 && len(srvKeys) > limit {
		srvKeys, weight = window(srvKeys, limit), srvWeight(limit)
		answered = make(map[int32]bool, limit)
		for _, k := range srvKeys {
			answered[k.label()] = true
		}
		glueKeys = slices.DeleteFunc(slices.Clone(glueKeys), func(k glueKey) bool { return !answered[k.label] })
	}
	// The targets of one answer in one string.
	suffix := "." + sel.view.name + "." + sel.view.namespace + ".svc." + zone
	size := 0
	for i, l := range labelKeys {
		if answered == nil || answered[int32(i)] { // #nosec G115 -- bounded by the endpoints of a service
			size += len(l) + len(suffix)
		}
	}
	var b strings.Builder
	b.Grow(size)
	var targetRoom [smallKeys]string
	targets := targetRoom[:0]
	for i, l := range labelKeys {
		if answered != nil && !answered[int32(i)] { // #nosec G115 -- bounded by the endpoints of a service
			targets = append(targets, "")
			continue
		}
		start := b.Len()
		b.WriteString(l)
		b.WriteString(suffix)
		targets = append(targets, b.String()[start:])
	}

	answer, records := make([]dns.RR, len(srvKeys)), make([]dns.SRV, len(srvKeys))
	for i, k := range srvKeys {
		records[i] = dns.SRV{
			Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: h.ttl},
			Weight: weight, Port: k.port(), Target: targets[k.label()],
		}
		answer[i] = &records[i]
	}
	v4 := 0
	for _, k := range glueKeys {
		if k.addr.Is4() {
			v4++
		}
	}
	extra = make([]dns.RR, len(glueKeys))
	as, aaaas := make([]dns.A, 0, v4), make([]dns.AAAA, 0, len(glueKeys)-v4)
	ips := make([]byte, 0, net.IPv4len*v4+net.IPv6len*(len(glueKeys)-v4))
	for i, k := range glueKeys {
		hdr := dns.RR_Header{Name: targets[k.label], Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: h.ttl}
		start := len(ips)
		ips = appendAddr(ips, k.addr)
		ip := net.IP(ips[start:len(ips):len(ips)])
		if k.addr.Is4() {
			as = append(as, dns.A{Hdr: hdr, A: ip})
			extra[i] = &as[len(as)-1]
		} else {
			hdr.Rrtype = dns.TypeAAAA
			aaaas = append(aaaas, dns.AAAA{Hdr: hdr, AAAA: ip})
			extra[i] = &aaaas[len(aaaas)-1]
		}
	}
	return answer, extra
}

// srvWeight is the weight the kubernetes plugin gives each of n SRV records
// of priority 0 (plugin.SRV), computed the same way so that both agree to
// the unit.
func srvWeight(n int) uint16 {
	w := uint16(math.Floor(100.0 / float64(100*n) * 100))
	return max(w, 1)
}

// cname returns the CNAME record of a name whose first endpoint is an FQDN,
// as plugin.CNAME answers.
func (h *Headless) cname(sel *selection, qname string) []dns.RR {
	for _, e := range sel.endpoints {
		if e.fqdn() == "" {
			return nil
		}
		return []dns.RR{&dns.CNAME{
			Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.ttl},
			Target: e.fqdn(),
		}}
	}
	return nil
}

// ptr returns one PTR record, owned by qname, per distinct name of refs in
// zone.
func (h *Headless) ptr(qname string, refs []ptrRef, zone string) []dns.RR {
	var names []string
	for _, ref := range refs {
		e := ref.slice.endpoints[ref.endpoint]
		if h.stablePTR && !e.hostname {
			continue
		}
		if name := strings.Join([]string{e.host, ref.slice.service, ref.slice.namespace, "svc", zone}, "."); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	rrs := make([]dns.RR, len(names))
	for i, name := range names {
		rrs[i] = &dns.PTR{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: h.ttl}, Ptr: name}
	}
	return rrs
}

// soa returns the SOA record of zone, as the kubernetes plugin writes it
// (plugin.SOA), with minimum ttl. It restates plugin.SOA, which needs a
// whole plugin.ServiceBackend for the serial and the ttl.
func (h *Headless) soa(zone string, ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: min(ttl, 300)},
		Ns:      dnsutil.Join("ns.dns", zone),
		Mbox:    dnsutil.Join("hostmaster", zone),
		Serial:  h.index.serial(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// dnsVersion is the record that names the version of the Kubernetes DNS
// specification served.
func dnsVersion(qname string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800}, Txt: []string{kubernetes.DNSSchemaVersion}}
}
