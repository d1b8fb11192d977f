package headless

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin/kubernetes/object"
)

// index is what one plugin instance knows: the headless services of the
// cluster view (Services, zone cluster.local) and of the multicluster view
// (ServiceImports, clusterset zones), each with its EndpointSlices and the
// snapshot built from them. It is the only copy of the objects the watcher
// receives.
//
// The reflectors, one goroutine each, write one at a time under write. They
// build a new snapshot outside mu, from the parts of the slices that did not
// change and a new part for each slice that did, and take mu only to swap it
// in with the maps that readers use. Snapshots and parts are never modified
// once published, so a query holds mu only to find them.
type index struct {
	write sync.Mutex // serializes the writers
	mu    sync.RWMutex
	// Under mu: what readers use.
	cluster view
	multi   view
	// reverse finds the labelled endpoints that hold an address in the
	// cluster view; mcReverse does the same for the multicluster view.
	reverse, mcReverse reverseMap
	// exposed holds the namespaces that match namespace_labels; nil until
	// they are listed, when none is.
	exposed map[string]bool

	zonal    bool         // keep the zones of endpoints (zonal)
	hostSeed maphash.Seed // of the hostIndexes
	// indexedParts is the number of parts from which a service has a
	// hostIndex: minIndexedParts, but in tests.
	indexedParts int
	modified     atomic.Int64 // Unix time of the last change, the SOA serial
}

// view is one set of headless services and their slices.
type view struct {
	services map[string]*serviceState // by object.ServiceKey
	// owners is the service and the watch of each slice, by
	// "namespace/name"; only writers use it.
	owners map[string]sliceOwner
	// namespaces counts the headless services of each namespace.
	namespaces map[string]int
	// published and endpoints count the snapshots and their addresses, for
	// the gauges.
	published, endpoints int
}

// serviceState is one service name: whether a headless Service of that name
// exists, the slices that name it, and the snapshot it serves. Only snap is
// read by queries, under index.mu; the rest is the writers'.
type serviceState struct {
	headless bool
	slices   []*endpointSlice // sorted by name
	snap     *snapshot        // nil unless headless
	// counts holds, for a snapshot of several parts, how many parts hold
	// each address and label, to find its shared keys; nil otherwise.
	counts *keyCounts
}

// keyCounts counts the parts that hold each address and label (in lower
// case) of a service.
type keyCounts struct {
	addrs map[netip.Addr]int32
	hosts map[string]int32
}

// sliceOwner says which service key a slice belongs to and which watch
// delivered it, so that a relist of one watch removes only its own slices,
// and a slice that moves between watches is removed by neither.
type sliceOwner struct {
	service string
	source  uint8
}

// ptrRef names one labelled endpoint of a part.
type ptrRef struct {
	part *part
	host int32
}

func newIndex(zonal bool) *index {
	return &index{
		cluster: newView(), multi: newView(),
		reverse: newReverseMap(), mcReverse: newReverseMap(),
		zonal: zonal, hostSeed: maphash.MakeSeed(), indexedParts: minIndexedParts,
	}
}

func newView() view {
	return view{services: map[string]*serviceState{}, owners: map[string]sliceOwner{}, namespaces: map[string]int{}}
}

// lookup returns the snapshot of the headless service with key, or nil.
func (ix *index) lookup(multicluster bool, key string) *snapshot {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	v := &ix.cluster
	if multicluster {
		v = &ix.multi
	}
	if st := v.services[key]; st != nil {
		return st.snap
	}
	return nil
}

// hasNamespace reports whether a headless service exists in namespace.
func (ix *index) hasNamespace(namespace string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.cluster.namespaces[namespace] > 0
}

// namespaceExposed reports whether namespace_labels lets namespace be seen:
// with it, no namespace is until the namespaces are listed, as in the
// kubernetes plugin.
func (ix *index) namespaceExposed(namespace string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.exposed == nil || ix.exposed[namespace]
}

// ptr returns the labelled endpoints that hold addr: those of the cluster view
// or, when it has none, those of the multicluster view.
func (ix *index) ptr(addr netip.Addr) (refs []ptrRef, multicluster bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if refs := ix.reverse.get(addr); len(refs) > 0 {
		return refs, false
	}
	return ix.mcReverse.get(addr), true
}

// snapshots returns the published snapshots of a view, for zone transfers.
func (ix *index) snapshots(multicluster bool) []*snapshot {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	v := &ix.cluster
	if multicluster {
		v = &ix.multi
	}
	var out []*snapshot
	for _, st := range v.services {
		if st.snap != nil {
			out = append(out, st.snap)
		}
	}
	return out
}

// serial returns the SOA serial: the time of the last change.
func (ix *index) serial() uint32 { return uint32(ix.modified.Load()) } // #nosec G115 -- Unix time as SOA serial

// size returns the number of headless services of the cluster view and of
// their addresses.
func (ix *index) size() (services, endpoints int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.cluster.published, ix.cluster.endpoints
}

// setService records that the Service (or ServiceImport) svc exists; a
// service that is not headless counts as absent. It reports whether a
// snapshot changed.
func (ix *index) setService(multicluster bool, svc *service) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	key := object.ServiceKey(svc.name, svc.namespace)
	return ix.markService(multicluster, key, svc.headless) && ix.refresh(multicluster, key)
}

// removeService records that the service with that name is gone.
func (ix *index) removeService(multicluster bool, svc *service) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	key := object.ServiceKey(svc.name, svc.namespace)
	return ix.markService(multicluster, key, false) && ix.refresh(multicluster, key)
}

// replaceServices makes svcs the only services of a view, as a relist says.
func (ix *index) replaceServices(multicluster bool, svcs []*service) {
	ix.write.Lock()
	defer ix.write.Unlock()
	v := ix.view(multicluster)
	keep := make(map[string]bool, len(svcs))
	changed := map[string]bool{}
	for _, s := range svcs {
		key := object.ServiceKey(s.name, s.namespace)
		if s.headless {
			keep[key] = true
		}
		if ix.markService(multicluster, key, s.headless) {
			changed[key] = true
		}
	}
	for key, st := range v.services {
		if st.headless && !keep[key] && ix.markService(multicluster, key, false) {
			changed[key] = true
		}
	}
	for key := range changed {
		ix.refresh(multicluster, key)
	}
}

// markService records whether the service key is headless, and reports
// whether that changed; the caller refreshes it.
func (ix *index) markService(multicluster bool, key string, headless bool) bool {
	st := ix.state(multicluster, key, headless)
	if st == nil || st.headless == headless {
		return false
	}
	st.headless = headless
	return true
}

// state returns the state of the service key, made when create is set.
func (ix *index) state(multicluster bool, key string, create bool) *serviceState {
	v := ix.view(multicluster)
	st := v.services[key]
	if st == nil && create {
		st = &serviceState{}
		ix.mu.Lock()
		v.services[key] = st
		ix.mu.Unlock()
	}
	return st
}

// setSlice records the slice s from source. It reports whether the snapshot
// of a headless service changed.
func (ix *index) setSlice(multicluster bool, source uint8, s *endpointSlice) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	changed := map[string]bool{}
	ix.putSlice(multicluster, source, s, changed)
	return ix.refreshAll(multicluster, changed)
}

// removeSlice records that the slice is gone from source. A slice that
// another watch holds now (its managed-by label changed) stays: the watches
// tell of the move in either order.
func (ix *index) removeSlice(multicluster bool, source uint8, s *endpointSlice) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	sliceKey := s.namespace + "/" + s.name
	if owner, ok := ix.view(multicluster).owners[sliceKey]; !ok || owner.source != source {
		return false
	}
	changed := map[string]bool{}
	ix.dropSlice(multicluster, sliceKey, changed)
	return ix.refreshAll(multicluster, changed)
}

// replaceSlices makes ess the only slices from source in a view. Each
// service that changed is published once.
func (ix *index) replaceSlices(multicluster bool, source uint8, ess []*endpointSlice) {
	ix.write.Lock()
	defer ix.write.Unlock()
	v := ix.view(multicluster)
	keep := make(map[string]bool, len(ess))
	changed := map[string]bool{}
	for _, s := range ess {
		keep[s.namespace+"/"+s.name] = true
		ix.putSlice(multicluster, source, s, changed)
	}
	for sliceKey, owner := range v.owners {
		if owner.source == source && !keep[sliceKey] {
			ix.dropSlice(multicluster, sliceKey, changed)
		}
	}
	ix.refreshAll(multicluster, changed)
}

// putSlice puts s among the slices of its service, and adds the keys of
// the services whose slices changed to changed.
func (ix *index) putSlice(multicluster bool, source uint8, s *endpointSlice, changed map[string]bool) {
	sliceKey := s.namespace + "/" + s.name
	if s.service == "" {
		// No service names it: DNS cannot serve it. Forget an earlier version.
		ix.dropSlice(multicluster, sliceKey, changed)
		return
	}
	v := ix.view(multicluster)
	key := object.ServiceKey(s.service, s.namespace)
	if owner, ok := v.owners[sliceKey]; ok && owner.service != key {
		ix.dropSlice(multicluster, sliceKey, changed) // the slice now names another service
	}
	v.owners[sliceKey] = sliceOwner{service: key, source: source}
	st := ix.state(multicluster, key, true)
	i, found := slices.BinarySearchFunc(st.slices, s.name, func(o *endpointSlice, name string) int { return cmp.Compare(o.name, name) })
	switch {
	case found && st.slices[i].equal(s):
		return
	case found:
		st.slices[i] = s
	default:
		st.slices = slices.Insert(st.slices, i, s)
	}
	changed[key] = true
}

// dropSlice removes the slice sliceKey from its service, and adds the
// service's key to changed.
func (ix *index) dropSlice(multicluster bool, sliceKey string, changed map[string]bool) {
	v := ix.view(multicluster)
	owner, ok := v.owners[sliceKey]
	if !ok {
		return
	}
	delete(v.owners, sliceKey)
	st := v.services[owner.service]
	if st == nil {
		return
	}
	_, name, _ := strings.Cut(sliceKey, "/")
	st.slices = slices.DeleteFunc(st.slices, func(o *endpointSlice) bool { return o.name == name })
	changed[owner.service] = true
}

func (ix *index) refreshAll(multicluster bool, changed map[string]bool) bool {
	published := false
	for key := range changed {
		published = ix.refresh(multicluster, key) || published
	}
	return published
}

// hideNamespaces makes every namespace hidden until setNamespace or
// replaceNamespaces exposes it: namespace_labels fails closed.
func (ix *index) hideNamespaces() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.exposed = map[string]bool{}
}

// setNamespace records whether a namespace matches namespace_labels.
func (ix *index) setNamespace(name string, present bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.exposed == nil {
		ix.exposed = map[string]bool{}
	}
	if present {
		ix.exposed[name] = true
	} else {
		delete(ix.exposed, name)
	}
}

// replaceNamespaces makes names the namespaces that match namespace_labels.
func (ix *index) replaceNamespaces(names []string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.exposed = make(map[string]bool, len(names))
	for _, n := range names {
		ix.exposed[n] = true
	}
}

func (ix *index) view(multicluster bool) *view {
	if multicluster {
		return &ix.multi
	}
	return &ix.cluster
}

// refresh publishes the snapshot of the service key from its slices. It
// keeps the part of each slice that did not change and builds one for each
// slice that did, unless the service starts or stops having a ready
// endpoint, when every part changes. It reports whether anything was
// published.
func (ix *index) refresh(multicluster bool, key string) bool {
	v := ix.view(multicluster)
	st := v.services[key]
	if st == nil {
		return false
	}
	old := st.snap
	var snap *snapshot
	var gone, added []*part
	if st.headless {
		snap, gone, added = ix.build(multicluster, key, st)
	} else if old != nil {
		gone = old.parts
		st.counts = nil
	}
	if snap == old && (st.headless || len(st.slices) > 0) {
		return false // nothing changed, or nothing to serve
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !st.headless && len(st.slices) == 0 {
		delete(v.services, key)
	}
	if old == nil && snap == nil {
		return false
	}
	reverse := ix.reverse
	if multicluster {
		reverse = ix.mcReverse
	}
	for _, p := range gone {
		v.endpoints -= len(p.eps)
		reverse.remove(p)
	}
	for _, p := range added {
		v.endpoints += len(p.eps)
		reverse.add(p)
	}
	if old != nil {
		v.published--
		if v.namespaces[old.namespace]--; v.namespaces[old.namespace] <= 0 {
			delete(v.namespaces, old.namespace)
		}
	}
	if snap != nil {
		v.published++
		v.namespaces[snap.namespace]++
	}
	st.snap = snap
	ix.modified.Store(time.Now().Unix())
	return true
}

// build returns the new snapshot of the headless service key, the parts of
// the published one it drops and the parts it adds.
func (ix *index) build(multicluster bool, key string, st *serviceState) (snap *snapshot, gone, added []*part) {
	old := st.snap
	var oldParts []*part
	terminating := false
	if old != nil {
		oldParts, terminating = old.parts, old.terminating
	} else {
		terminating = !slices.ContainsFunc(st.slices, func(es *endpointSlice) bool {
			return slices.ContainsFunc(es.endpoints, func(e sliceEndpoint) bool { return !e.terminating })
		})
	}
	zonal := ix.zonal && !multicluster
	parts := make([]*part, len(st.slices))
	j := 0
	for i, es := range st.slices {
		for j < len(oldParts) && oldParts[j].slice.name < es.name {
			gone = append(gone, oldParts[j])
			j++
		}
		if j < len(oldParts) && oldParts[j].slice == es {
			parts[i] = oldParts[j]
			j++
			continue
		}
		if j < len(oldParts) && oldParts[j].slice.name == es.name {
			gone = append(gone, oldParts[j])
			j++
		}
		parts[i] = newPart(es, terminating, zonal, multicluster)
		added = append(added, parts[i])
	}
	gone = append(gone, oldParts[j:]...)

	if t := !slices.ContainsFunc(parts, func(p *part) bool { return p.hasReady }); t != terminating {
		// Every endpoint the service serves changes: rebuild every part.
		terminating, gone, added = t, oldParts, nil
		for i, es := range st.slices {
			parts[i] = newPart(es, terminating, zonal, multicluster)
		}
		added = parts
	}
	if len(gone) == 0 && len(added) == 0 && old != nil {
		return old, nil, nil
	}
	name, namespace := cutServiceKey(key)
	shared, hosts := st.keys(ix.hostSeed, ix.indexedParts, parts, gone, added)
	return newSnapshot(name, namespace, parts, terminating, shared, hosts), gone, added
}

// keys returns the keys that several of parts hold and the index of the
// labels, given the parts that left and joined the service since its last
// snapshot, and keeps the counts that find them in step.
func (st *serviceState) keys(seed maphash.Seed, indexedParts int, parts, gone, added []*part) (*sharedKeys, *hostIndex) {
	if len(parts) < 2 {
		st.counts = nil
		return nil, nil
	}
	var prev *sharedKeys
	var prevHosts *hostIndex
	if st.snap != nil {
		prev, prevHosts = st.snap.shared, st.snap.hosts
	}
	if st.counts == nil {
		// From one part to several, or a service that comes back: count
		// them all.
		st.counts = &keyCounts{addrs: map[netip.Addr]int32{}, hosts: map[string]int32{}}
		prev, prevHosts, gone, added = nil, nil, nil, parts
	}
	shared := st.shared(prev, gone, added)
	return shared, nextHostIndex(prevHosts, seed, indexedParts, parts, gone, added, st.counts.hosts)
}

// shared returns the keys that several parts hold, from prev, those before
// gone left and added joined, and counts them.
func (st *serviceState) shared(prev *sharedKeys, gone, added []*part) *sharedKeys {
	c := st.counts
	// The keys whose count crosses 2 either way.
	var addrs []netip.Addr
	var hosts []string
	count := func(p *part, d int32) {
		p.addresses(func(a netip.Addr) { addrs = countKey(c.addrs, a, d, addrs) })
		for _, h := range p.hosts {
			hosts = countKey(c.hosts, strings.ToLower(h.name), d, hosts)
		}
	}
	for _, p := range gone {
		count(p, -1)
	}
	for _, p := range added {
		count(p, 1)
	}
	if len(addrs) == 0 && len(hosts) == 0 {
		return prev
	}
	next := &sharedKeys{addrs: map[netip.Addr]bool{}, hosts: map[string]bool{}}
	if prev != nil {
		maps.Copy(next.addrs, prev.addrs)
		maps.Copy(next.hosts, prev.hosts)
	}
	markShared(next.addrs, c.addrs, addrs)
	markShared(next.hosts, c.hosts, hosts)
	if len(next.addrs) == 0 && len(next.hosts) == 0 {
		return nil
	}
	return next
}

// countKey adds d to the count of key and appends key to crossed when the
// count crosses 2, either way.
func countKey[K comparable](counts map[K]int32, key K, d int32, crossed []K) []K {
	n := counts[key] + d
	if n == 0 {
		delete(counts, key)
	} else {
		counts[key] = n
	}
	if (d > 0 && n == 2) || (d < 0 && n == 1) {
		crossed = append(crossed, key)
	}
	return crossed
}

// markShared puts each of keys that counts has twice or more in shared,
// and takes the others out.
func markShared[K comparable](shared map[K]bool, counts map[K]int32, keys []K) {
	for _, k := range keys {
		if counts[k] >= 2 {
			shared[k] = true
		} else {
			delete(shared, k)
		}
	}
}

// reverseMap finds the labelled endpoints that hold an address. An IPv4
// address is keyed by its 4 bytes, so that each costs one small map entry.
//
// This, the runs of all that hostRec points into and endpointDetail are for
// memory: without them the drop-in's live heap in the production shape of
// make bench was 1.08x stock's, over its 1.05x target (BENCHMARKS.md).
type reverseMap struct {
	v4 reverseTable[uint32]
	v6 reverseTable[[16]byte]
}

func newReverseMap() reverseMap {
	return reverseMap{v4: newReverseTable[uint32](), v6: newReverseTable[[16]byte]()}
}

// get returns the endpoints that hold addr.
func (r reverseMap) get(addr netip.Addr) []ptrRef {
	if addr = addr.Unmap(); addr.Is4() {
		return r.v4.get(v4Key(addr))
	}
	return r.v6.get(addr.As16())
}

// add adds the addresses of p.
func (r reverseMap) add(p *part) {
	for i, ep := range p.eps {
		ref := ptrRef{part: p, host: ep.host}
		switch ep.kind {
		case kindV4:
			r.v4.add(v4Key(p.addr(int32(i))), ref) // #nosec G115
		case kindV6:
			r.v6.add(p.addr(int32(i)).As16(), ref) // #nosec G115
		}
	}
}

// remove removes the addresses of p.
func (r reverseMap) remove(p *part) {
	for i, ep := range p.eps {
		switch ep.kind {
		case kindV4:
			r.v4.remove(v4Key(p.addr(int32(i))), p) // #nosec G115
		case kindV6:
			r.v6.remove(p.addr(int32(i)).As16(), p) // #nosec G115
		}
	}
}

func v4Key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// reverseTable keeps the first endpoint of each address in one map and the
// others, for the rare address that several endpoints share, in a second.
type reverseTable[K comparable] struct {
	first map[K]ptrRef
	more  map[K][]ptrRef // copied on write: readers may hold the old ones
}

func newReverseTable[K comparable]() reverseTable[K] {
	return reverseTable[K]{first: map[K]ptrRef{}, more: map[K][]ptrRef{}}
}

func (t reverseTable[K]) get(key K) []ptrRef {
	first, ok := t.first[key]
	if !ok {
		return nil
	}
	return append([]ptrRef{first}, t.more[key]...)
}

func (t reverseTable[K]) add(key K, ref ptrRef) {
	if _, ok := t.first[key]; !ok {
		t.first[key] = ref
		return
	}
	more := t.more[key]
	t.more[key] = append(more[:len(more):len(more)], ref)
}

// remove removes the endpoints of p that hold key.
func (t reverseTable[K]) remove(key K, p *part) {
	more := slices.DeleteFunc(slices.Clone(t.more[key]), func(ref ptrRef) bool { return ref.part == p })
	if first, ok := t.first[key]; ok && first.part == p {
		if len(more) == 0 {
			delete(t.first, key)
		} else {
			t.first[key], more = more[0], more[1:]
		}
	}
	if len(more) == 0 {
		delete(t.more, key)
	} else {
		t.more[key] = more
	}
}

// cutServiceKey splits object.ServiceKey's "name.namespace"; neither part
// can hold a dot.
func cutServiceKey(key string) (name, namespace string) {
	name, namespace, _ = strings.Cut(key, ".")
	return name, namespace
}
