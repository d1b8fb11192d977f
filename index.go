package headless

import (
	"cmp"
	"encoding/binary"
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
// receives. The watcher is the one writer; any number of queries read.
// Snapshots are never modified once published, so readers use them without
// holding the lock.
type index struct {
	mu      sync.RWMutex
	cluster view
	multi   view
	// reverse finds the labelled endpoints that hold an address in the
	// cluster view; mcReverse does the same for the multicluster view.
	reverse, mcReverse reverseMap
	// exposed holds the namespaces that match namespace_labels; nil without.
	exposed map[string]bool

	zonal    bool         // keep the zones of endpoints (zonal)
	modified atomic.Int64 // Unix time of the last change, the SOA serial
}

// view is one set of headless services and their slices.
type view struct {
	services map[string]*serviceState // by object.ServiceKey
	owners   map[string]sliceOwner    // the service of each slice, by "namespace/name"
	// namespaces counts the headless services of each namespace.
	namespaces map[string]int
	// published and endpoints count the snapshots and their addresses, for
	// the gauges.
	published, endpoints int
}

// serviceState is one service name: whether a headless Service of that name
// exists, the slices that name it, and the snapshot it serves.
type serviceState struct {
	headless bool
	slices   []*endpointSlice // sorted by name; a new array on each change, which the snapshot shares
	snap     *snapshot        // nil unless headless
}

// sliceOwner says which service key a slice belongs to and which watch
// delivered it, so that a relist of one watch removes only its own slices.
type sliceOwner struct {
	service string
	source  uint8
}

// ptrRef names one labelled endpoint of a snapshot.
type ptrRef struct {
	snap *snapshot
	host int32
}

func newIndex(zonal bool) *index {
	return &index{
		cluster: newView(), multi: newView(),
		reverse: newReverseMap(), mcReverse: newReverseMap(),
		zonal: zonal,
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

// namespaceExposed reports whether namespace_labels lets namespace be seen.
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
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.setServiceLocked(multicluster, object.ServiceKey(svc.name, svc.namespace), svc.headless)
}

// removeService records that the service with that name is gone.
func (ix *index) removeService(multicluster bool, svc *service) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.setServiceLocked(multicluster, object.ServiceKey(svc.name, svc.namespace), false)
}

func (ix *index) setServiceLocked(multicluster bool, key string, headless bool) bool {
	v := ix.view(multicluster)
	st := v.services[key]
	if st == nil {
		if !headless {
			return false
		}
		st = &serviceState{}
		v.services[key] = st
	}
	if st.headless == headless {
		return false
	}
	st.headless = headless
	return ix.publish(multicluster, key, st)
}

// replaceServices makes svcs the only services of a view, as a relist says.
func (ix *index) replaceServices(multicluster bool, svcs []*service) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	v := ix.view(multicluster)
	keep := make(map[string]bool, len(svcs))
	for _, s := range svcs {
		key := object.ServiceKey(s.name, s.namespace)
		if s.headless {
			keep[key] = true
		}
		ix.setServiceLocked(multicluster, key, s.headless)
	}
	for key, st := range v.services {
		if st.headless && !keep[key] {
			ix.setServiceLocked(multicluster, key, false)
		}
	}
}

// setSlice records the slice s from source. It reports whether the snapshot
// of a headless service changed.
func (ix *index) setSlice(multicluster bool, source uint8, s *endpointSlice) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.setSliceLocked(multicluster, source, s)
}

// removeSlice records that the slice is gone.
func (ix *index) removeSlice(multicluster bool, s *endpointSlice) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.removeSliceLocked(multicluster, s.namespace+"/"+s.name)
}

func (ix *index) setSliceLocked(multicluster bool, source uint8, s *endpointSlice) bool {
	if s.service == "" {
		// No service names it: DNS cannot serve it. Forget an earlier version.
		return ix.removeSliceLocked(multicluster, s.namespace+"/"+s.name)
	}
	v := ix.view(multicluster)
	sliceKey, key := s.namespace+"/"+s.name, object.ServiceKey(s.service, s.namespace)
	changed := false
	if owner, ok := v.owners[sliceKey]; ok && owner.service != key {
		changed = ix.removeSliceLocked(multicluster, sliceKey) // the slice now names another service
	}
	st := v.services[key]
	if st == nil {
		st = &serviceState{}
		v.services[key] = st
	}
	i, found := slices.BinarySearchFunc(st.slices, s.name, func(o *endpointSlice, name string) int { return cmp.Compare(o.name, name) })
	if found && st.slices[i].equal(s) {
		v.owners[sliceKey] = sliceOwner{service: key, source: source}
		return changed
	}
	if found {
		st.slices = slices.Clone(st.slices)
		st.slices[i] = s
	} else {
		st.slices = slices.Insert(slices.Clip(st.slices), i, s)
	}
	v.owners[sliceKey] = sliceOwner{service: key, source: source}
	return ix.publish(multicluster, key, st) || changed
}

func (ix *index) removeSliceLocked(multicluster bool, sliceKey string) bool {
	v := ix.view(multicluster)
	owner, ok := v.owners[sliceKey]
	if !ok {
		return false
	}
	delete(v.owners, sliceKey)
	st := v.services[owner.service]
	if st == nil {
		return false
	}
	_, name, _ := strings.Cut(sliceKey, "/")
	st.slices = slices.DeleteFunc(slices.Clone(st.slices), func(o *endpointSlice) bool { return o.name == name })
	return ix.publish(multicluster, owner.service, st)
}

// replaceSlices makes ess the only slices from source in a view.
func (ix *index) replaceSlices(multicluster bool, source uint8, ess []*endpointSlice) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	v := ix.view(multicluster)
	keep := make(map[string]bool, len(ess))
	for _, s := range ess {
		keep[s.namespace+"/"+s.name] = true
		ix.setSliceLocked(multicluster, source, s)
	}
	for sliceKey, owner := range v.owners {
		if owner.source == source && !keep[sliceKey] {
			ix.removeSliceLocked(multicluster, sliceKey)
		}
	}
}

// setNamespaces records the namespaces that match namespace_labels.
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

// publish rebuilds the snapshot of the service key from st, replaces the
// published one and keeps the reverse map and the counters in step. It
// reports whether anything was published.
func (ix *index) publish(multicluster bool, key string, st *serviceState) bool {
	v := ix.view(multicluster)
	old := st.snap
	var snap *snapshot
	if st.headless {
		name, namespace := cutServiceKey(key)
		snap = newSnapshot(name, namespace, st.slices, ix.zonal && !multicluster, multicluster)
	}
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
	if old != nil {
		v.published--
		v.endpoints -= len(old.eps)
		reverse.remove(old)
		if v.namespaces[old.namespace]--; v.namespaces[old.namespace] <= 0 {
			delete(v.namespaces, old.namespace)
		}
	}
	if snap != nil {
		v.published++
		v.endpoints += len(snap.eps)
		reverse.add(snap)
		v.namespaces[snap.namespace]++
	}
	st.snap = snap
	ix.modified.Store(time.Now().Unix())
	return true
}

// reverseMap finds the labelled endpoints that hold an address. An IPv4
// address is keyed by its 4 bytes, so that each costs one small map entry.
//
// This, the runs of all that hostRec points into and endpointDetail are for
// memory: together they took BenchmarkIndexMemory from 548 to 292 B an
// endpoint, and the drop-in's live heap in the production shape of make
// bench from 1.08x stock to 1.04x (BENCHMARKS.md), under its 1.05x target.
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

// add adds the addresses of s.
func (r reverseMap) add(s *snapshot) {
	for i, ep := range s.eps {
		ref := ptrRef{snap: s, host: ep.host}
		switch ep.kind {
		case kindV4:
			r.v4.add(v4Key(s.addr(int32(i))), ref) // #nosec G115
		case kindV6:
			r.v6.add(s.addr(int32(i)).As16(), ref) // #nosec G115
		}
	}
}

// remove removes the addresses of s.
func (r reverseMap) remove(s *snapshot) {
	for i, ep := range s.eps {
		switch ep.kind {
		case kindV4:
			r.v4.remove(v4Key(s.addr(int32(i))), s) // #nosec G115
		case kindV6:
			r.v6.remove(s.addr(int32(i)).As16(), s) // #nosec G115
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

// remove removes the endpoints of s that hold key.
func (t reverseTable[K]) remove(key K, s *snapshot) {
	more := slices.DeleteFunc(slices.Clone(t.more[key]), func(ref ptrRef) bool { return ref.snap == s })
	if first, ok := t.first[key]; ok && first.snap == s {
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
