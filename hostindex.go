package headless

import (
	"cmp"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
)

// hostIndex finds the part that holds a label in a service of many parts,
// so that a pod's name costs one map lookup rather than a search of every
// part: 10,000 endpoints come in 100 slices, and a training job's pods ask
// for each other's names. It maps each label (in lower case) that one part
// alone holds to that part's slice name; a label of several parts is a
// shared key, found by searching the parts.
//
// Its maps are shards by hash, copied on write, so that a snapshot shares
// those that a change leaves alone: an update of one slice copies the few
// shards of the labels that came or went, not the service's whole map.
//
// At the wire (make bench, big services: dnsperf on 1000 pod names, each
// plugin alone), it took headless from 23.5k to 27.8k qps on a service of
// 10,000 endpoints and from 9.7k to 43.9k qps on one of 50,000, for 2 MB and
// 4.4 MB more resident memory; the kubernetes plugin served 6.4k and 0.7k.
type hostIndex struct {
	seed   maphash.Seed
	shards [hostShards]map[string]string
}

const (
	hostShards = 64
	// minIndexedParts is the number of parts from which a service has a
	// hostIndex by default (index.indexedParts); searching fewer parts
	// costs less than the map.
	minIndexedParts = 8
)

func (x *hostIndex) shard(label string) int {
	return int(maphash.String(x.seed, label) % hostShards)
}

// part returns the slice name of the part that alone holds label.
func (x *hostIndex) part(label string) (string, bool) {
	name, ok := x.shards[x.shard(label)][label]
	return name, ok
}

// nextHostIndex returns the hostIndex of parts, or nil for fewer than
// least, from prev, the index of the parts before gone left and added
// joined, and counts, the number of parts that hold each label now. Without
// prev it indexes every part.
func nextHostIndex(prev *hostIndex, seed maphash.Seed, least int, parts, gone, added []*part, counts map[string]int32) *hostIndex {
	if len(parts) < least {
		return nil
	}
	next := &hostIndex{seed: seed}
	if prev != nil {
		next.shards = prev.shards
	} else {
		gone, added = nil, parts
	}
	copied := [hostShards]bool{}
	set := func(label, name string) {
		i := next.shard(label)
		if old, ok := next.shards[i][label]; ok == (name != "") && old == name {
			return
		}
		if !copied[i] {
			next.shards[i] = maps.Clone(next.shards[i])
			if next.shards[i] == nil {
				next.shards[i] = map[string]string{}
			}
			copied[i] = true
		}
		if name == "" {
			delete(next.shards[i], label)
		} else {
			next.shards[i][label] = name
		}
	}
	for _, p := range gone {
		for _, h := range p.hosts {
			label := strings.ToLower(h.name)
			switch counts[label] {
			case 0:
				set(label, "")
			case 1:
				if name, ok := next.part(label); ok && holds(partNamed(parts, name), label) {
					continue // the new version of its slice holds it still
				}
				// Shared before, it is left to one part, which may be one
				// that did not change: search them, as a query would.
				if i := slices.IndexFunc(parts, func(q *part) bool { return holds(q, label) }); i >= 0 {
					set(label, parts[i].slice.name)
				}
			default:
				set(label, "")
			}
		}
	}
	for _, p := range added {
		for _, h := range p.hosts {
			label := strings.ToLower(h.name)
			if counts[label] == 1 {
				set(label, p.slice.name)
			} else {
				set(label, "")
			}
		}
	}
	return next
}

// partNamed returns the part of the slice name among parts, sorted by name.
func partNamed(parts []*part, name string) *part {
	i, ok := slices.BinarySearchFunc(parts, name, func(p *part, n string) int { return cmp.Compare(p.slice.name, n) })
	if !ok {
		return nil
	}
	return parts[i]
}

// holds reports whether p, which may be nil, holds label.
func holds(p *part, label string) bool {
	if p == nil {
		return false
	}
	_, ok := p.host(label)
	return ok
}
