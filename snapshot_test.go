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

// snapshotOf returns the snapshot an index builds of the service svc.ns
// with the slices ess, named in order.
func snapshotOf(zonal, multicluster bool, ess ...*endpointSlice) *snapshot {
	ix := newIndex(zonal)
	ix.setService(multicluster, &service{objectMeta: objectMeta{name: "svc", namespace: "ns"}, headless: true})
	for _, es := range ess {
		es.namespace, es.service = "ns", "svc"
	}
	ix.replaceSlices(multicluster, controllerSlices, ess)
	return ix.lookup(multicluster, "svc.ns")
}

// flat is a selection's pairs as address and port, and how many of them are
// first with their address, SRV record and glue record in the answer.
type flat struct {
	pairs           []string
	addr, srv, glue int
}

func flatten(sel selection) flat {
	var f flat
	d := newDedup(&sel)
	for i := range sel.segments() {
		seg := sel.segment(i)
		p := seg.part
		for _, e := range seg.entries {
			f.pairs = append(f.pairs, p.addr(e.ep).String())
			if e.flags&firstAddr != 0 && d.addr(p, e) {
				f.addr++
			}
			if e.flags&firstSRV != 0 && d.srv(p, e) {
				f.srv++
			}
			if e.flags&firstGlue != 0 && d.glue(p, e) {
				f.glue++
			}
		}
	}
	return f
}

func TestNewSnapshot(t *testing.T) {
	a := &endpointSlice{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{name: "http", protocol: "TCP", port: 80}, {name: "alt", protocol: "UDP", port: 80}},
		endpoints: []sliceEndpoint{endpoint("10.0.0.1", "b-host"), endpoint("10.0.0.2", "a-host")}}
	b := &endpointSlice{objectMeta: objectMeta{name: "b"}, ports: []slicePort{{port: -1}},
		endpoints: []sliceEndpoint{endpoint("10.0.0.2", "a-host")}}
	s := snapshotOf(false, false, b, a)

	if len(s.parts) != 2 || s.parts[0].slice != a || s.parts[1].slice != b {
		t.Fatalf("parts %+v, want a and b in name order", s.parts)
	}
	if pa := s.parts[0]; len(pa.eps) != 2 || len(pa.hosts) != 2 || len(pa.all) != 4 {
		t.Fatalf("a: eps %d hosts %d pairs %d, want 2 2 4", len(pa.eps), len(pa.hosts), len(pa.all))
	}
	// Slices in name order, endpoints and ports in slice order, as the
	// kubernetes plugin lists them.
	all := flatten(s.selectAll())
	if want := []string{"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.2"}; !slices.Equal(all.pairs, want) {
		t.Errorf("pairs in order %v, want %v", all.pairs, want)
	}
	if pa := s.parts[0]; pa.hosts[0].name != "a-host" || pa.hosts[1].name != "b-host" {
		t.Errorf("labels not sorted: %+v", pa.hosts)
	}
	// a-host: 10.0.0.2 x (80/TCP, 80/UDP) from a, x (-1) from b.
	if n := len(flatten(s.selectHost("a-host")).pairs); n != 3 {
		t.Errorf("a-host has %d pairs, want 3", n)
	}
	// 10.0.0.2 and a-host are in both slices: once each in an answer.
	if all.addr != 2 || all.srv != 2 || all.glue != 2 { // SRV: one per label, port 80 twice
		t.Errorf("%d address, %d SRV, %d glue records, want 2 2 2", all.addr, all.srv, all.glue)
	}
	if s.shared == nil || !s.shared.addrs[netip.MustParseAddr("10.0.0.2")] || !s.shared.hosts["a-host"] || len(s.shared.addrs)+len(s.shared.hosts) != 2 {
		t.Errorf("shared keys %+v, want 10.0.0.2 and a-host", s.shared)
	}
	if got := s.parts[0].target(0, "Cluster.Local."); got != "a-host.svc.ns.svc.Cluster.Local." {
		t.Errorf("target = %q", got)
	}
	if n := len(s.parts[0].combos) + len(s.parts[1].combos); n != 3 { // http/tcp, alt/udp and the portless ""/""
		t.Errorf("%d combos, want 3", n)
	}
	if sel := flatten(s.selectPort("alt", "udp")); len(sel.pairs) != 2 || sel.srv != 2 {
		t.Errorf("_alt._udp selects %+v, want 2 pairs with 2 SRV", sel)
	}
	if sel := s.selectHost("nobody"); sel.found() {
		t.Error("an unknown label exists")
	}
}

func TestNewSnapshotZones(t *testing.T) {
	in := func(e sliceEndpoint, zone string) sliceEndpoint { e.more = &endpointDetail{zone: zone}; return e }
	s := snapshotOf(true, false, &endpointSlice{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{
		in(endpoint("10.0.0.1", "a"), "z1"), in(endpoint("10.0.0.2", "b"), "z2"), in(endpoint("10.0.0.3", "c"), "z1"), endpoint("10.0.0.4", "d"),
	}}, &endpointSlice{objectMeta: objectMeta{name: "b"}, ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{in(endpoint("10.0.0.5", "e"), "z1")}})
	if sel := flatten(s.selectZone("z1", false)); !slices.Equal(sel.pairs, []string{"10.0.0.1", "10.0.0.3", "10.0.0.5"}) {
		t.Errorf("pin z1 selects %v, want 10.0.0.1, 10.0.0.3 and 10.0.0.5", sel.pairs)
	}
	if sel := s.selectZone("z3", false); !sel.found() || sel.segments() != 0 {
		t.Errorf("pin of an empty zone: found %v, %d segments; want a name without records", sel.found(), sel.segments())
	}
	if sel := flatten(s.selectZone("z3", true)); len(sel.pairs) != 5 {
		t.Errorf("prefer of an empty zone selects %d, want all 5", len(sel.pairs))
	}
}

func TestNewSnapshotTerminating(t *testing.T) {
	terminating := func(e sliceEndpoint) sliceEndpoint { e.terminating = true; return e }
	ready := endpoint("10.0.0.1", "a")
	leaving := terminating(endpoint("10.0.0.2", "b"))
	one := func(eps ...sliceEndpoint) *snapshot {
		return snapshotOf(false, false, &endpointSlice{objectMeta: objectMeta{name: "a"}, ports: []slicePort{{port: -1}}, endpoints: eps},
			&endpointSlice{objectMeta: objectMeta{name: "b"}, ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{terminating(endpoint("10.0.0.3", "c"))}})
	}
	if s := one(ready, leaving); !slices.Equal(flatten(s.selectAll()).pairs, []string{"10.0.0.1"}) || s.terminating {
		t.Errorf("with a ready endpoint the terminating ones are served: %v", flatten(s.selectAll()).pairs)
	}
	if s := one(leaving); !slices.Equal(flatten(s.selectAll()).pairs, []string{"10.0.0.2", "10.0.0.3"}) || !s.terminating {
		t.Errorf("without a ready endpoint the terminating ones are not served: %v", flatten(s.selectAll()).pairs)
	}
}

func TestNewSnapshotMulticluster(t *testing.T) {
	s := snapshotOf(false, true,
		&endpointSlice{objectMeta: objectMeta{name: "c1"}, cluster: "c1", ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{endpoint("10.0.0.1", "db-0")}},
		&endpointSlice{objectMeta: objectMeta{name: "c2"}, cluster: "c2", ports: []slicePort{{port: -1}}, endpoints: []sliceEndpoint{endpoint("10.0.1.1", "db-0")}},
	)
	if sel := flatten(s.selectHost("db-0.c2")); !slices.Equal(sel.pairs, []string{"10.0.1.1"}) {
		t.Errorf("db-0.c2 selects %v", sel.pairs)
	}
	if sel := s.selectHost("db-0"); sel.found() {
		t.Error("a name without the cluster exists")
	}
}
