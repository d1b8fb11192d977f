package headless

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSRVWeight(t *testing.T) {
	// The kubernetes plugin's weights: floor(100/n), never 0.
	for n, want := range map[int]uint16{1: 100, 2: 50, 3: 33, 4: 25, 5: 20, 10: 10, 24: 4, 100: 1, 101: 1, 1000: 1} {
		if got := srvWeight(n); got != want {
			t.Errorf("srvWeight(%d) = %d, want %d", n, got, want)
		}
	}
}

func endpoint(addr, host string) sliceEndpoint {
	return sliceEndpoint{addr: netip.MustParseAddr(addr), host: host, hostname: true}
}

func TestNewSnapshot(t *testing.T) {
	a := &endpointSlice{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{name: "http", protocol: "TCP", port: 80}, {name: "alt", protocol: "UDP", port: 80}},
		endpoints: []sliceEndpoint{endpoint("10.0.0.1", "b-host"), endpoint("10.0.0.2", "a-host")}}
	b := &endpointSlice{objectMeta: objectMeta{name: "b"}, ports: []slicePort{{port: -1}},
		endpoints: []sliceEndpoint{endpoint("10.0.0.2", "a-host")}}
	s := newSnapshot("svc", "ns", []*endpointSlice{a, b}, false, false) // sorted by name, as the index keeps them

	if len(s.eps) != 2 || len(s.hosts) != 2 || len(s.all) != 5 {
		t.Fatalf("eps %d hosts %d pairs %d, want 2 2 5", len(s.eps), len(s.hosts), len(s.all))
	}
	// Slices in name order, endpoints and ports in slice order, as the
	// kubernetes plugin lists them.
	var order []string
	for _, e := range s.all {
		order = append(order, s.addr(e.ep).String())
	}
	if want := []string{"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.2"}; !slices.Equal(order, want) {
		t.Errorf("pairs in order %v, want %v", order, want)
	}
	if s.hosts[0].name != "a-host" || s.hosts[1].name != "b-host" {
		t.Errorf("labels not sorted: %+v", s.hosts)
	}
	// a-host: 10.0.0.2 x (80/TCP, 80/UDP) from a, x (-1) from b.
	if n := len(s.selectHost("a-host").entries); n != 3 {
		t.Errorf("a-host has %d pairs, want 3", n)
	}
	count := func(es []entry, flag uint8) (n int) {
		for _, e := range es {
			if e.flags&flag != 0 {
				n++
			}
		}
		return n
	}
	if n := count(s.all, firstAddr); n != 2 {
		t.Errorf("%d address records, want 2", n)
	}
	if n := count(s.all, firstSRV); n != 2 { // one per label: port 80 twice
		t.Errorf("%d SRV records, want 2", n)
	}
	if n := count(s.all, firstGlue); n != 2 {
		t.Errorf("%d glue records, want 2", n)
	}
	if got := s.target(0, "Cluster.Local."); got != "a-host.svc.ns.svc.Cluster.Local." {
		t.Errorf("target = %q", got)
	}
	if len(s.combos) != 3 { // http/tcp, alt/udp and the portless ""/""
		t.Errorf("combos %+v, want 3", s.combos)
	}
	if sel := s.selectPort("alt", "udp"); len(sel.entries) != 2 || count(sel.entries, firstSRV) != 2 {
		t.Errorf("_alt._udp selects %+v, want 2 pairs with 2 SRV", sel.entries)
	}
	if sel := s.selectHost("nobody"); sel.found() {
		t.Error("an unknown label exists")
	}
}

func TestNewSnapshotZones(t *testing.T) {
	in := func(e sliceEndpoint, zone string) sliceEndpoint { e.more = &endpointDetail{zone: zone}; return e }
	s := newSnapshot("svc", "ns", []*endpointSlice{{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{
		in(endpoint("10.0.0.1", "a"), "z1"), in(endpoint("10.0.0.2", "b"), "z2"), in(endpoint("10.0.0.3", "c"), "z1"), endpoint("10.0.0.4", "d"),
	}}}, true, false)
	if sel := s.selectZone("z1", false); len(sel.entries) != 2 {
		t.Errorf("pin z1 selects %d, want 2", len(sel.entries))
	}
	if sel := s.selectZone("z3", false); !sel.found() || len(sel.entries) != 0 {
		t.Errorf("pin of an empty zone: found %v, %d pairs; want a name without records", sel.found(), len(sel.entries))
	}
	if sel := s.selectZone("z3", true); len(sel.entries) != 4 {
		t.Errorf("prefer of an empty zone selects %d, want all 4", len(sel.entries))
	}
}

func TestNewSnapshotTerminating(t *testing.T) {
	terminating := func(e sliceEndpoint) sliceEndpoint { e.terminating = true; return e }
	ready := endpoint("10.0.0.1", "a")
	leaving := terminating(endpoint("10.0.0.2", "b"))
	one := func(eps ...sliceEndpoint) *snapshot {
		return newSnapshot("svc", "ns", []*endpointSlice{{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{port: -1}}, endpoints: eps}}, false, false)
	}
	if s := one(ready, leaving); len(s.all) != 1 || s.addr(s.all[0].ep).String() != "10.0.0.1" || s.terminating {
		t.Errorf("with a ready endpoint the terminating one is served: %+v", s.all)
	}
	if s := one(leaving); len(s.all) != 1 || s.addr(s.all[0].ep).String() != "10.0.0.2" || !s.terminating {
		t.Errorf("without a ready endpoint the terminating one is not served: %+v", s.all)
	}
}

func TestNewSnapshotMulticluster(t *testing.T) {
	s := newSnapshot("db", "ns", []*endpointSlice{
		{objectMeta: objectMeta{name: "c1"}, cluster: "c1", ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{endpoint("10.0.0.1", "db-0")}},
		{objectMeta: objectMeta{name: "c2"}, cluster: "c2", ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{endpoint("10.0.1.1", "db-0")}},
	}, false, true)
	if sel := s.selectHost("db-0.c2"); len(sel.entries) != 1 || s.addr(sel.entries[0].ep).String() != "10.0.1.1" {
		t.Errorf("db-0.c2 selects %+v", sel.entries)
	}
	if sel := s.selectHost("db-0"); sel.found() {
		t.Error("a name without the cluster exists")
	}
}
