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
// view built from them. It is the only copy of the objects the watches
// receive.
//
// The reflectors, one goroutine each, write one at a time under write. A
// writer builds a service's new view outside mu and takes mu only to swap it
// in; views are never modified once published, so a query holds mu only to
// find one.
type index struct {
	write sync.Mutex // serializes the writers
	mu    sync.RWMutex
	// Under mu: what readers use.
	cluster, multicluster serviceTable
	// reverse finds the endpoints that hold an address in the cluster view;
	// mcReverse does the same for the multicluster view.
	reverse, mcReverse reverseMap
	// exposed holds the namespaces that match namespace_labels; nil until
	// they are listed, when none is.
	exposed map[string]bool

	hostSeed      maphash.Seed // of the hostIndexes
	indexedSlices int          // from which a service has a hostIndex: minIndexedSlices, but in tests
	modified      atomic.Int64 // Unix time of the last change, the SOA serial
}

// serviceTable is one set of services and their slices.
type serviceTable struct {
	services map[string]*serviceEntry // by object.ServiceKey
	// owners is the service and the watch of each slice, by
	// "namespace/name"; only writers use it.
	owners map[string]sliceOwner
	// namespaces counts the headless services of each namespace.
	namespaces map[string]int
	// published and endpoints count the views and their endpoint
	// addresses, for the gauges.
	published, endpoints int
	// pending holds the services changed since their views were last
	// published; only writers use it.
	pending map[string]bool
}

// serviceEntry is one service name: whether a headless Service of that name
// exists, the slices that name it, and the view it serves. Only view is read
// by queries, under index.mu; the rest is the writers'.
type serviceEntry struct {
	headless bool
	policy   servicePolicy
	slices   []*endpointSlice // sorted by name
	view     *serviceView     // nil unless headless
}

// sliceOwner says which service a slice belongs to and which watch
// delivered it, so that a relist of one watch removes only its own slices,
// and a slice that moves between watches is removed by neither.
type sliceOwner struct {
	service string
	watch   watchID
}

// ptrRef names one endpoint of a slice, for PTR answers.
type ptrRef struct {
	slice    *endpointSlice
	endpoint int32
}

func newIndex() *index {
	return &index{
		cluster: newServiceTable(), multicluster: newServiceTable(),
		reverse: newReverseMap(), mcReverse: newReverseMap(),
		hostSeed: maphash.MakeSeed(), indexedSlices: minIndexedSlices,
	}
}

func newServiceTable() serviceTable {
	return serviceTable{services: map[string]*serviceEntry{}, owners: map[string]sliceOwner{}, namespaces: map[string]int{}, pending: map[string]bool{}}
}

func (ix *index) table(multicluster bool) *serviceTable {
	if multicluster {
		return &ix.multicluster
	}
	return &ix.cluster
}

// lookup returns the view of the headless service name.namespace, or nil,
// and whether namespace_labels lets the namespace be seen: with it, no
// namespace is until the namespaces are listed, as in the kubernetes plugin.
// The view of a namespace not seen is returned too, so that
// extended_errors can say why its names do not exist.
func (ix *index) lookup(multicluster bool, name, namespace string) (v *serviceView, exposed bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	exposed = ix.exposed == nil || ix.exposed[namespace]
	if e := ix.table(multicluster).services[name+"."+namespace]; e != nil {
		return e.view, exposed
	}
	return nil, exposed
}

// namespaceExists reports whether namespace holds a headless service and
// namespace_labels lets it be seen.
func (ix *index) namespaceExists(namespace string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.cluster.namespaces[namespace] > 0 && (ix.exposed == nil || ix.exposed[namespace])
}

// ptr returns the endpoints that hold addr: those of the cluster view or,
// when it has none, those of the multicluster view.
func (ix *index) ptr(addr netip.Addr) (refs []ptrRef, multicluster bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if refs = ix.served(&ix.cluster, ix.reverse.get(addr)); len(refs) > 0 {
		return refs, false
	}
	return ix.served(&ix.multicluster, ix.mcReverse.get(addr)), true
}

// served returns the refs whose endpoint their service's view serves.
func (ix *index) served(t *serviceTable, refs []ptrRef) []ptrRef {
	return slices.DeleteFunc(refs, func(r ptrRef) bool {
		e := t.services[object.ServiceKey(r.slice.service, r.slice.namespace)]
		return e == nil || e.view == nil || !e.view.servesName(r.slice.endpoints[r.endpoint].state)
	})
}

// views returns the published views of a table whose namespace can be seen,
// for zone transfers.
func (ix *index) views(multicluster bool) []*serviceView {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []*serviceView
	for _, e := range ix.table(multicluster).services {
		if e.view != nil && (ix.exposed == nil || ix.exposed[e.view.namespace]) {
			out = append(out, e.view)
		}
	}
	return out
}

// serial returns the SOA serial: the time of the last change.
func (ix *index) serial() uint32 { return uint32(ix.modified.Load()) } // #nosec G115 -- Unix time as SOA serial

// size returns the number of headless services of the cluster view and of
// their endpoint addresses.
func (ix *index) size() (services, endpoints int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.cluster.published, ix.cluster.endpoints
}

// apply records obj, which watch w delivered: a Service, a ServiceImport,
// an EndpointSlice or a Namespace, reduced. It reports whether a view
// changed.
func (ix *index) apply(w watchID, obj any) bool {
	ix.stage(w, obj, false)
	return ix.flush(w.multicluster())
}

// remove records that obj is gone from watch w, and reports whether a view
// changed.
func (ix *index) remove(w watchID, obj any) bool {
	ix.stage(w, obj, true)
	return ix.flush(w.multicluster())
}

// stage records obj, or that it is gone, as apply and remove do, but leaves
// the views it changes to flush, so that the reflectors' stores can publish
// a burst of changes at once. It reports whether obj changes a view. A
// slice that another watch holds now (its managed-by label changed) stays
// when gone: the watches tell of the move in either order.
func (ix *index) stage(w watchID, obj any, gone bool) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	changed := map[string]bool{}
	switch o := obj.(type) {
	case *service:
		ix.markService(w.multicluster(), o, o.headless && !gone, changed)
	case *endpointSlice:
		key := o.namespace + "/" + o.name
		switch owner, ok := ix.table(w.multicluster()).owners[key]; {
		case !gone:
			ix.putSlice(w, o, changed)
		case ok && owner.watch == w:
			ix.dropSlice(w.multicluster(), key, changed)
		}
	case *objectMeta:
		ix.setNamespace(o.name, !gone)
	}
	maps.Copy(ix.table(w.multicluster()).pending, changed)
	return len(changed) > 0
}

// flush publishes the views of the services changed since they were last
// published, and reports whether any was.
func (ix *index) flush(multicluster bool) bool {
	ix.write.Lock()
	defer ix.write.Unlock()
	t := ix.table(multicluster)
	published := ix.refresh(multicluster, t.pending)
	clear(t.pending)
	return published
}

// replace makes objs the only objects of watch w, as a list says. Each
// service that changed, or that a change staged before, is published once.
func (ix *index) replace(w watchID, objs []any) {
	ix.write.Lock()
	defer ix.write.Unlock()
	t := ix.table(w.multicluster())
	changed := t.pending
	switch w {
	case namespaces:
		exposed := make(map[string]bool, len(objs))
		for _, o := range objs {
			exposed[o.(*objectMeta).name] = true
		}
		ix.mu.Lock()
		ix.exposed = exposed
		ix.mu.Unlock()
	case services, serviceImports:
		listed := make(map[string]bool, len(objs))
		for _, o := range objs {
			s := o.(*service)
			listed[object.ServiceKey(s.name, s.namespace)] = s.headless
			ix.markService(w.multicluster(), s, s.headless, changed)
		}
		for key, e := range t.services {
			if e.headless && !listed[key] {
				name, namespace := cutServiceKey(key)
				ix.markService(w.multicluster(), &service{objectMeta: objectMeta{name: name, namespace: namespace}}, false, changed)
			}
		}
	default:
		listed := make(map[string]bool, len(objs))
		for _, o := range objs {
			s := o.(*endpointSlice)
			listed[s.namespace+"/"+s.name] = true
			ix.putSlice(w, s, changed)
		}
		for key, owner := range t.owners {
			if owner.watch == w && !listed[key] {
				ix.dropSlice(w.multicluster(), key, changed)
			}
		}
	}
	ix.refresh(w.multicluster(), changed)
	clear(changed)
}

// markService records whether the service s is headless, and its policy,
// and adds its key to changed when either changed.
func (ix *index) markService(multicluster bool, s *service, headless bool, changed map[string]bool) {
	key := object.ServiceKey(s.name, s.namespace)
	e := ix.entry(multicluster, key, headless)
	if e != nil && (e.headless != headless || e.policy != s.policy) {
		e.headless, e.policy = headless, s.policy
		changed[key] = true
	}
}

// entry returns the entry of the service key, made when create is set.
func (ix *index) entry(multicluster bool, key string, create bool) *serviceEntry {
	t := ix.table(multicluster)
	e := t.services[key]
	if e == nil && create {
		e = &serviceEntry{}
		ix.mu.Lock()
		t.services[key] = e
		ix.mu.Unlock()
	}
	return e
}

// putSlice puts s among the slices of its service, and adds the keys of
// the services whose slices changed to changed.
func (ix *index) putSlice(w watchID, s *endpointSlice, changed map[string]bool) {
	multicluster := w.multicluster()
	sliceKey := s.namespace + "/" + s.name
	if s.service == "" {
		// No service names it: DNS cannot serve it. Forget an earlier version.
		ix.dropSlice(multicluster, sliceKey, changed)
		return
	}
	t := ix.table(multicluster)
	key := object.ServiceKey(s.service, s.namespace)
	if owner, ok := t.owners[sliceKey]; ok && owner.service != key {
		ix.dropSlice(multicluster, sliceKey, changed) // the slice now names another service
	}
	t.owners[sliceKey] = sliceOwner{service: key, watch: w}
	e := ix.entry(multicluster, key, true)
	i, found := slices.BinarySearchFunc(e.slices, s.name, func(o *endpointSlice, name string) int { return cmp.Compare(o.name, name) })
	switch {
	case found && e.slices[i].equal(s):
		return
	case found:
		e.slices = slices.Clone(e.slices) // a published view holds the old list
		e.slices[i] = s
	default:
		e.slices = slices.Insert(slices.Clip(e.slices), i, s)
	}
	changed[key] = true
}

// dropSlice removes the slice sliceKey from its service, and adds the
// service's key to changed.
func (ix *index) dropSlice(multicluster bool, sliceKey string, changed map[string]bool) {
	t := ix.table(multicluster)
	owner, ok := t.owners[sliceKey]
	if !ok {
		return
	}
	delete(t.owners, sliceKey)
	e := t.services[owner.service]
	if e == nil {
		return
	}
	_, name, _ := strings.Cut(sliceKey, "/")
	e.slices = slices.DeleteFunc(slices.Clone(e.slices), func(o *endpointSlice) bool { return o.name == name })
	changed[owner.service] = true
}

// setNamespace records whether a namespace matches namespace_labels.
func (ix *index) setNamespace(name string, exposed bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.exposed == nil {
		ix.exposed = map[string]bool{}
	}
	if exposed {
		ix.exposed[name] = true
	} else {
		delete(ix.exposed, name)
	}
}

// hideNamespaces makes every namespace hidden until the namespaces that
// match namespace_labels are listed: namespace_labels fails closed.
func (ix *index) hideNamespaces() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.exposed = map[string]bool{}
}

// refresh publishes the view of each service in changed from its slices,
// and reports whether any was published.
func (ix *index) refresh(multicluster bool, changed map[string]bool) bool {
	published := false
	for key := range changed {
		published = ix.publish(multicluster, key) || published
	}
	return published
}

// publish builds and swaps in the view of the service key.
func (ix *index) publish(multicluster bool, key string) bool {
	t := ix.table(multicluster)
	e := t.services[key]
	if e == nil {
		return false
	}
	old := e.view
	var v *serviceView
	var gone, added []*endpointSlice
	if e.headless {
		name, namespace := cutServiceKey(key)
		v, gone, added = newView(name, namespace, e.policy, e.slices, old, ix.hostSeed, ix.indexedSlices)
	} else if old != nil {
		gone = old.slices
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !e.headless && len(e.slices) == 0 {
		delete(t.services, key)
	}
	if old == nil && v == nil {
		return false
	}
	reverse := ix.reverse
	if multicluster {
		reverse = ix.mcReverse
	}
	for _, s := range gone {
		reverse.remove(s)
	}
	for _, s := range added {
		reverse.add(s)
	}
	services, endpoints := 0, 0
	if old != nil {
		services, endpoints = -1, -old.endpoints()
		if t.namespaces[old.namespace]--; t.namespaces[old.namespace] <= 0 {
			delete(t.namespaces, old.namespace)
		}
	}
	if v != nil {
		services, endpoints = services+1, endpoints+v.endpoints()
		t.namespaces[v.namespace]++
	}
	t.published += services
	t.endpoints += endpoints
	if !multicluster {
		servicesGauge.Add(float64(services))
		endpointsGauge.Add(float64(endpoints))
	}
	e.view = v
	ix.modified.Store(time.Now().Unix())
	return true
}

// clearGauges takes the index's share out of the gauges, which add up the
// shares of every instance: server blocks, or the old and new one during a
// reload.
func (ix *index) clearGauges() {
	ix.write.Lock()
	defer ix.write.Unlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	servicesGauge.Sub(float64(ix.cluster.published))
	endpointsGauge.Sub(float64(ix.cluster.endpoints))
	ix.cluster.published, ix.cluster.endpoints = 0, 0
}

// reverseMap finds the endpoints that hold an address. An IPv4 address is
// keyed by its 4 bytes, so that each costs one small map entry (the index
// memory an endpoint, BenchmarkIndexMemory).
type reverseMap struct {
	v4 reverseTable[uint32]
	v6 reverseTable[[16]byte]
}

func newReverseMap() reverseMap {
	return reverseMap{v4: newReverseTable[uint32](), v6: newReverseTable[[16]byte]()}
}

// get returns the endpoints that hold addr, in a new slice.
func (r reverseMap) get(addr netip.Addr) []ptrRef {
	if addr = addr.Unmap(); addr.Is4() {
		return r.v4.get(v4Key(addr))
	}
	return r.v6.get(addr.As16())
}

// add adds the addresses of s.
func (r reverseMap) add(s *endpointSlice) {
	for i, e := range s.endpoints {
		ref := ptrRef{slice: s, endpoint: int32(i)} // #nosec G115 -- bounded by the endpoints of a slice
		switch {
		case e.addr.Is4():
			r.v4.add(v4Key(e.addr), ref)
		case e.addr.Is6():
			r.v6.add(e.addr.As16(), ref)
		}
	}
}

// remove removes the addresses of s.
func (r reverseMap) remove(s *endpointSlice) {
	for _, e := range s.endpoints {
		switch {
		case e.addr.Is4():
			r.v4.remove(v4Key(e.addr), s)
		case e.addr.Is6():
			r.v6.remove(e.addr.As16(), s)
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
	more  map[K][]ptrRef
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
	t.more[key] = append(t.more[key], ref)
}

// remove removes the endpoints of s that hold key.
func (t reverseTable[K]) remove(key K, s *endpointSlice) {
	more := slices.DeleteFunc(t.more[key], func(ref ptrRef) bool { return ref.slice == s })
	if first, ok := t.first[key]; ok && first.slice == s {
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
