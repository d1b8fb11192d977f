package headless

import (
	"cmp"
	"hash/maphash"
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
// many slices, so that a pod's name costs a search of a few labels rather
// than of every slice (big services in make bench, pod names at the wire).
// Its shards, by hash, are sorted lists copied on write, so that a view
// shares those that a change leaves alone and an update copies only the
// shards of the labels that came or went (BenchmarkIndexUpdate). They are
// more as the service grows, so that a slice of new labels copies a few
// short lists rather than most of the index (BenchmarkGangStart, the gang
// start of make bench's largest clusters).
type hostIndex struct {
	seed   maphash.Seed
	shards [][]hostLabel // a power of two of them, each sorted by label
	labels int
}

// hostLabel says where a label (in lower case) is: in how many slices, and
// the name of the slice when there is one.
type hostLabel struct {
	label, slice string
	slices       int32
}

const (
	// minIndexedSlices is the number of slices from which a service has a
	// hostIndex (index.indexedSlices but in tests): searching fewer costs
	// less than the index.
	minIndexedSlices = 8
	// A hostIndex has at least minHostShards shards, and about
	// labelsPerShard labels in each: it is made again with more shards
	// when they hold twice as many, and with fewer when they hold a
	// quarter.
	minHostShards  = 64
	labelsPerShard = 16
)

// hostShards is the number of shards for labels.
func hostShards(labels int) int {
	n := minHostShards
	for n*labelsPerShard < labels {
		n *= 2
	}
	return n
}

func (x *hostIndex) shard(label string) int {
	return int(maphash.String(x.seed, label) & uint64(len(x.shards)-1))
}

// find returns the position of label in its shard i, or where it would go.
func (x *hostIndex) find(i int, label string) (int, bool) {
	return slices.BinarySearchFunc(x.shards[i], label, func(h hostLabel, label string) int { return strings.Compare(h.label, label) })
}

func (x *hostIndex) get(label string) (hostLabel, bool) {
	i := x.shard(label)
	if j, ok := x.find(i, label); ok {
		return x.shards[i][j], true
	}
	return hostLabel{}, false
}

// indexHosts returns the hostIndex of all. Its shards share one array,
// filled shard by shard.
func indexHosts(seed maphash.Seed, all []*endpointSlice) *hostIndex {
	endpoints := 0
	for _, s := range all {
		endpoints += len(s.endpoints)
	}
	x := &hostIndex{seed: seed, shards: make([][]hostLabel, hostShards(endpoints))}
	type placed struct {
		shard int
		hostLabel
	}
	labels := make([]placed, 0, endpoints)
	ends := make([]int, len(x.shards)+1) // ends[i+1]: where shard i ends
	for _, s := range all {
		for _, label := range s.labels() {
			i := x.shard(label)
			labels = append(labels, placed{i, hostLabel{label, s.name, 1}})
			ends[i+1]++
		}
	}
	for i := range x.shards {
		ends[i+1] += ends[i]
	}
	backing := make([]hostLabel, len(labels))
	next := slices.Clone(ends[:len(x.shards)])
	for _, p := range labels {
		backing[next[p.shard]] = p.hostLabel
		next[p.shard]++
	}
	for i := range x.shards {
		shard := backing[ends[i]:ends[i+1]:ends[i+1]]
		slices.SortFunc(shard, func(a, b hostLabel) int { return strings.Compare(a.label, b.label) })
		// A label of several slices is kept once, with their number.
		kept := shard[:0]
		for _, h := range shard {
			if n := len(kept); n > 0 && kept[n-1].label == h.label {
				kept[n-1].slice, kept[n-1].slices = "", kept[n-1].slices+1
				continue
			}
			kept = append(kept, h)
		}
		x.shards[i] = kept
		x.labels += len(kept)
	}
	return x
}

// nextHostIndex returns the hostIndex of all from prev, the index of the
// slices before gone left and added joined; without prev it indexes them all.
func nextHostIndex(prev *hostIndex, seed maphash.Seed, all, gone, added []*endpointSlice) *hostIndex {
	if prev == nil {
		return indexHosts(seed, all)
	}
	gone, added = changedLabels(gone, added)
	if len(gone) == 0 && len(added) == 0 {
		return prev
	}
	next := &hostIndex{seed: seed, shards: slices.Clone(prev.shards), labels: prev.labels}
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
	copied := map[int]bool{}
	for label, d := range delta {
		i := next.shard(label)
		j, found := next.find(i, label)
		old := hostLabel{label: label}
		if found {
			old = next.shards[i][j]
		}
		e := hostLabel{label: label, slices: old.slices + d}
		if e.slices == 1 {
			name, ok := gained[label]
			switch {
			case ok:
			case old.slices == 1 && !sliceNamed(gone, old.slice):
				name = old.slice
			default:
				name = holder(label, all) // left to a slice that did not change
			}
			e.slice = name
		}
		if e == old {
			continue
		}
		if !copied[i] {
			next.shards[i] = slices.Clone(next.shards[i])
			copied[i] = true
		}
		switch {
		case e.slices <= 0:
			next.shards[i] = slices.Delete(next.shards[i], j, j+1)
			next.labels--
		case found:
			next.shards[i][j] = e
		default:
			next.shards[i] = slices.Insert(next.shards[i], j, e)
			next.labels++
		}
	}
	if n := len(next.shards); next.labels > 2*n*labelsPerShard || (n > minHostShards && 4*next.labels < n*labelsPerShard) {
		return indexHosts(seed, all)
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
