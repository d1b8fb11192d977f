package headless

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// index is the DNS-only view of the headless services that one plugin
// instance serves. One writer (the watcher) replaces whole per-service
// snapshots; any number of readers look them up. A snapshot is never modified
// once published, so readers use it without holding the lock.
type index struct {
	zones []string // forward zones, each fully qualified and lower case

	mu         sync.RWMutex
	services   map[string]*records     // by "service.namespace"
	namespaces map[string]int          // headless services per namespace
	reverse    map[netip.Addr]ptrRef   // the first endpoint with each address
	more       map[netip.Addr][]ptrRef // the others, for an address in several services
	// shadow counts, per address, the Services and EndpointSlices that are not
	// headless but claim it: a PTR for it is the kubernetes plugin's to answer.
	shadow  map[netip.Addr]int32
	shadows map[string][]netip.Addr // what each non-headless service put in shadow

	endpoints int          // ready addresses indexed, for the gauge
	modified  atomic.Int64 // Unix time of the last change, the SOA serial
}

// ptrRef names one endpoint whose address a PTR query asks for.
type ptrRef struct {
	recs *records
	host int32
}

func newIndex(zones []string) *index {
	return &index{
		zones:      zones,
		services:   make(map[string]*records),
		namespaces: make(map[string]int),
		reverse:    make(map[netip.Addr]ptrRef),
		more:       make(map[netip.Addr][]ptrRef),
		shadow:     make(map[netip.Addr]int32),
		shadows:    make(map[string][]netip.Addr),
	}
}

// serviceKey is the index key of a service, the way it appears in a query
// name: "service.namespace".
func serviceKey(name, namespace string) string { return name + "." + namespace }

// lookup returns the snapshot of the headless service with key, or nil.
func (ix *index) lookup(key string) *records {
	ix.mu.RLock()
	r := ix.services[key]
	ix.mu.RUnlock()
	return r
}

// hasNamespace reports whether a headless service exists in namespace.
func (ix *index) hasNamespace(namespace string) bool {
	ix.mu.RLock()
	n := ix.namespaces[namespace]
	ix.mu.RUnlock()
	return n > 0
}

// ptr returns the endpoints that own addr and whether a service that is not
// headless claims it too.
func (ix *index) ptr(addr netip.Addr) (refs []ptrRef, shadowed bool) {
	ix.mu.RLock()
	first, ok := ix.reverse[addr]
	more, shadowed := ix.more[addr], ix.shadow[addr] > 0
	ix.mu.RUnlock()
	if !ok {
		return nil, shadowed
	}
	return append([]ptrRef{first}, more...), shadowed
}

// serial returns the SOA serial: the time of the last change.
func (ix *index) serial() uint32 { return uint32(ix.modified.Load()) } // #nosec G115 -- Unix time as SOA serial

// size returns the number of headless services and of their ready addresses.
func (ix *index) size() (services, endpoints int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.services), ix.endpoints
}

// update recomputes everything the index holds for the service with the
// given name and namespace from its current Service (nil when there is none)
// and EndpointSlices. It is the only writer.
func (ix *index) update(name, namespace string, svc *service, ess []*endpointSlice) {
	key := serviceKey(name, namespace)
	var recs *records
	var shadow []netip.Addr
	if svc != nil && svc.headless {
		recs = buildRecords(name, namespace, ess)
	} else {
		shadow = shadowAddrs(svc, ess)
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	changed := ix.setRecords(key, namespace, recs)
	changed = ix.setShadow(key, shadow) || changed
	if changed {
		ix.modified.Store(time.Now().Unix())
	}
}

// setRecords publishes recs (nil removes the service) and keeps the reverse
// map and the counters in step. It reports whether anything changed.
func (ix *index) setRecords(key, namespace string, recs *records) bool {
	old := ix.services[key]
	if old == nil && recs == nil {
		return false
	}
	if old != nil {
		ix.endpoints -= len(old.eps)
		ix.removeReverse(old)
		ix.namespaces[namespace]--
		if ix.namespaces[namespace] <= 0 {
			delete(ix.namespaces, namespace)
		}
		delete(ix.services, key)
	}
	if recs != nil {
		ix.endpoints += len(recs.eps)
		ix.addReverse(recs)
		ix.namespaces[namespace]++
		ix.services[key] = recs
	}
	return true
}

// addReverse and removeReverse keep one map entry an address, and put the
// rare address that several endpoints share in a second map. Slices in it are
// copied on write: readers may hold the old ones.
func (ix *index) addReverse(recs *records) {
	for i, ep := range recs.eps {
		addr := recs.addr(int32(i)) // #nosec G115
		ref := ptrRef{recs: recs, host: ep.host}
		if _, ok := ix.reverse[addr]; !ok {
			ix.reverse[addr] = ref
			continue
		}
		more := ix.more[addr]
		ix.more[addr] = append(more[:len(more):len(more)], ref)
	}
}

func (ix *index) removeReverse(recs *records) {
	for i, ep := range recs.eps {
		addr := recs.addr(int32(i)) // #nosec G115
		ref := ptrRef{recs: recs, host: ep.host}
		more := ix.more[addr]
		if ix.reverse[addr] == ref {
			if len(more) == 0 {
				delete(ix.reverse, addr)
				continue
			}
			ix.reverse[addr], more = more[0], more[1:]
		} else {
			more = slices.DeleteFunc(slices.Clone(more), func(r ptrRef) bool { return r == ref })
		}
		if len(more) == 0 {
			delete(ix.more, addr)
		} else {
			ix.more[addr] = more
		}
	}
}

func (ix *index) setShadow(key string, addrs []netip.Addr) bool {
	old := ix.shadows[key]
	if len(old) == 0 && len(addrs) == 0 {
		return false
	}
	for _, a := range old {
		if ix.shadow[a]--; ix.shadow[a] <= 0 {
			delete(ix.shadow, a)
		}
	}
	for _, a := range addrs {
		ix.shadow[a]++
	}
	if len(addrs) == 0 {
		delete(ix.shadows, key)
	} else {
		ix.shadows[key] = addrs
	}
	return true
}

// shadowAddrs returns the addresses that a service that is not headless (or
// EndpointSlices without a known Service) give a PTR record in the kubernetes
// plugin.
func shadowAddrs(svc *service, ess []*endpointSlice) []netip.Addr {
	var addrs []netip.Addr
	if svc != nil {
		addrs = append(addrs, svc.clusterIPs...)
	}
	for _, s := range ess {
		for _, e := range s.endpoints {
			addrs = append(addrs, e.addr)
		}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(addrs)
}
