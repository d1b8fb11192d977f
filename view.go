package headless

import (
	"cmp"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
)

// serviceView is what queries read of one headless service: its
// EndpointSlices in name order, the order in which the kubernetes plugin
// lists their records. It is never modified once published: a change of one
// slice makes a new view that shares the other slices, so that an update
// costs what the changed slice holds (BenchmarkIndexUpdate).
type serviceView struct {
	name, namespace string
	policy          servicePolicy
	slices          []*endpointSlice // sorted by name
	// terminating is set when no endpoint is ready: the view then serves the
	// serving and terminating endpoints that terminating_fallback keeps.
	terminating bool
	// ready and serving count the endpoint addresses that are ready and
	// that are terminating but serving.
	ready, serving int
	hosts          *hostIndex // nil for fewer than index.indexedSlices slices
}

// newView returns the view of the service name.namespace with slices, and
// the slices it drops from old and adds to it. Its hostIndex is old's,
// changed by those slices only.
func newView(name, namespace string, policy servicePolicy, slices []*endpointSlice, old *serviceView, seed maphash.Seed, indexedSlices int) (v *serviceView, gone, added []*endpointSlice) {
	v = &serviceView{name: name, namespace: namespace, policy: policy, slices: slices}
	var oldSlices []*endpointSlice
	if old != nil {
		oldSlices, v.ready, v.serving = old.slices, old.ready, old.serving
	}
	gone, added = diffSlices(oldSlices, slices)
	for _, s := range gone {
		for _, e := range s.endpoints {
			v.count(e, -1)
		}
	}
	for _, s := range added {
		for _, e := range s.endpoints {
			v.count(e, 1)
		}
	}
	v.terminating = v.ready == 0
	if len(slices) >= indexedSlices {
		var prev *hostIndex
		if old != nil {
			prev = old.hosts
		}
		v.hosts = nextHostIndex(prev, seed, slices, gone, added)
	}
	return v, gone, added
}

func (v *serviceView) count(e sliceEndpoint, d int) {
	switch e.state {
	case endpointReady:
		v.ready += d
	case endpointTerminating:
		v.serving += d
	}
}

// serves reports whether the service's own names answer an endpoint in
// state s: the ready ones or, when none is, the terminating ones kept.
func (v *serviceView) serves(s endpointState) bool {
	if v.terminating {
		return s == endpointTerminating
	}
	return s == endpointReady
}

// servesName reports whether the names of an endpoint in state s answer
// it: those the service serves and, with unready_names, those starting.
func (v *serviceView) servesName(s endpointState) bool {
	return v.serves(s) || (s == endpointStarting && v.policy.unreadyNames)
}

// endpoints returns the number of endpoint addresses the view serves.
func (v *serviceView) endpoints() int {
	if v.terminating {
		return v.serving
	}
	return v.ready
}

// diffSlices returns the slices of old that new does not hold and those of
// new that old does not hold, both sorted by name; a new version of a slice
// is in both.
func diffSlices(old, new []*endpointSlice) (gone, added []*endpointSlice) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i].name < new[j].name):
			gone = append(gone, old[i])
			i++
		case i == len(old) || new[j].name < old[i].name:
			added = append(added, new[j])
			j++
		default:
			if old[i] != new[j] {
				gone, added = append(gone, old[i]), append(added, new[j])
			}
			i, j = i+1, j+1
		}
	}
	return gone, added
}

// slicesOf returns the slices that may hold an endpoint labelled host (in
// lower case): through the hostIndex, the one slice that does, else all.
func (v *serviceView) slicesOf(host string) []*endpointSlice {
	if v.hosts == nil {
		return v.slices
	}
	e, ok := v.hosts.get(host)
	switch {
	case !ok:
		return nil
	case e.slices > 1:
		return v.slices
	}
	i, ok := slices.BinarySearchFunc(v.slices, e.slice, func(s *endpointSlice, name string) int { return cmp.Compare(s.name, name) })
	if !ok {
		return nil
	}
	return v.slices[i : i+1]
}

// selection is the endpoints, and their ports, that a query name selects in
// a view: an empty field selects any.
type selection struct {
	view           *serviceView
	slices         []*endpointSlice
	host           string // an endpoint's label, in lower case
	port, protocol string // without underscores, in lower case
	zone           string // a topology zone, in lower case
	// zonal is set for a zonal name, which exists even when it selects
	// nothing.
	zonal bool
}

// endpoints calls yield with each endpoint of the selection that has a
// selected port, in the order the kubernetes plugin lists them.
func (sel *selection) endpoints(yield func(*endpointSlice, *sliceEndpoint) bool) {
	for _, s := range sel.slices {
		if !slices.ContainsFunc(s.ports, sel.holdsPort) {
			continue
		}
		for i := range s.endpoints {
			e := &s.endpoints[i]
			if (sel.host == "" && sel.view.serves(e.state) || sel.host != "" && equalFoldASCII(e.host, sel.host) && sel.view.servesName(e.state)) &&
				(sel.zone == "" || e.zone() == sel.zone) && !yield(s, e) {
				return
			}
		}
	}
}

func (sel *selection) holdsPort(p slicePort) bool {
	return (sel.port == "" || equalFoldASCII(p.name, sel.port)) && (sel.protocol == "" || equalFoldASCII(p.protocol, sel.protocol))
}

// found reports whether the name exists: the kubernetes plugin answers
// NXDOMAIN for a name that selects no endpoint.
func (sel *selection) found() bool { return sel.zonal || sel.selectsAny() }

// selectsAny reports whether the selection holds an endpoint.
func (sel *selection) selectsAny() bool {
	for range sel.endpoints {
		return true
	}
	return false
}

// hostIndex finds the slice that holds an endpoint label in a service of
// many slices, so that a pod's name costs a map lookup rather than a search
// of every slice (big services in make bench, pod names at the wire). Its
// maps are shards by hash, copied on write, so that a view shares those that
// a change leaves alone and an update copies only the shards of the labels
// that came or went (BenchmarkIndexUpdate).
type hostIndex struct {
	seed   maphash.Seed
	shards [hostShards]map[string]hostEntry
}

// hostEntry says where a label (in lower case) is: in how many slices, and
// the name of the slice when there is one.
type hostEntry struct {
	slice  string
	slices int32
}

const (
	hostShards = 64
	// minIndexedSlices is the number of slices from which a service has a
	// hostIndex (index.indexedSlices but in tests): searching fewer costs
	// less than the map.
	minIndexedSlices = 8
)

func (x *hostIndex) shard(label string) int {
	return int(maphash.String(x.seed, label) % hostShards)
}

func (x *hostIndex) get(label string) (hostEntry, bool) {
	e, ok := x.shards[x.shard(label)][label]
	return e, ok
}

// nextHostIndex returns the hostIndex of slices from prev, the index of the
// slices before gone left and added joined; without prev it indexes them all.
func nextHostIndex(prev *hostIndex, seed maphash.Seed, slices, gone, added []*endpointSlice) *hostIndex {
	next := &hostIndex{seed: seed}
	if prev != nil {
		next.shards = prev.shards
		gone, added = changedLabels(gone, added)
	} else {
		gone, added = nil, slices
	}
	// How the number of slices that hold each label changes, and an added
	// slice that holds it.
	delta, gained := map[string]int32{}, map[string]string{}
	for _, s := range gone {
		for _, label := range s.labels() {
			delta[label]--
		}
	}
	for _, s := range added {
		for _, label := range s.labels() {
			delta[label]++
			gained[label] = s.name
		}
	}
	var copied [hostShards]bool
	for label, d := range delta {
		i := next.shard(label)
		old := next.shards[i][label]
		e := hostEntry{slices: old.slices + d}
		if e.slices == 1 {
			name, ok := gained[label]
			switch {
			case ok:
			case old.slices == 1 && !sliceNamed(gone, old.slice):
				name = old.slice
			default:
				name = holder(label, slices) // left to a slice that did not change
			}
			e.slice = name
		}
		if e == old {
			continue
		}
		if !copied[i] {
			next.shards[i] = maps.Clone(next.shards[i])
			if next.shards[i] == nil {
				next.shards[i] = map[string]hostEntry{}
			}
			copied[i] = true
		}
		if e.slices <= 0 {
			delete(next.shards[i], label)
		} else {
			next.shards[i][label] = e
		}
	}
	return next
}

// changedLabels leaves out of gone and added the versions of a slice whose
// endpoints have the same labels in both, as most updates do: the index
// does not change for them (BenchmarkIndexUpdate).
func changedLabels(gone, added []*endpointSlice) (changedGone, changedAdded []*endpointSlice) {
	same := map[string]bool{}
	for _, g := range gone {
		i := slices.IndexFunc(added, func(a *endpointSlice) bool { return a.name == g.name })
		same[g.name] = i >= 0 && slices.EqualFunc(g.endpoints, added[i].endpoints, func(a, b sliceEndpoint) bool { return a.host == b.host })
	}
	unchanged := func(s *endpointSlice) bool { return same[s.name] }
	// Copies: the caller still needs gone and added whole.
	return slices.DeleteFunc(slices.Clone(gone), unchanged), slices.DeleteFunc(slices.Clone(added), unchanged)
}

// holder returns the name of the slice that holds label.
func holder(label string, list []*endpointSlice) string {
	for _, s := range list {
		if slices.ContainsFunc(s.endpoints, func(e sliceEndpoint) bool { return equalFoldASCII(e.host, label) }) {
			return s.name
		}
	}
	return ""
}

func sliceNamed(list []*endpointSlice, name string) bool {
	return slices.ContainsFunc(list, func(s *endpointSlice) bool { return s.name == name })
}

// labels returns the distinct labels of s's endpoints, in lower case.
func (s *endpointSlice) labels() []string {
	labels := make([]string, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		labels = append(labels, strings.ToLower(e.host))
	}
	slices.Sort(labels)
	return slices.Compact(labels)
}
