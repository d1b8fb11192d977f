package headless

import (
	"net/netip"
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

func TestBuildRecords(t *testing.T) {
	a := &endpointSlice{name: "a", ports: []slicePort{{name: "http", protocol: "TCP", port: 80}, {name: "alt", protocol: "UDP", port: 80}},
		endpoints: []sliceEndpoint{{netip.MustParseAddr("10.0.0.1"), "b-host"}, {netip.MustParseAddr("10.0.0.2"), "a-host"}}}
	b := &endpointSlice{name: "b", ports: []slicePort{{port: -1}},
		endpoints: []sliceEndpoint{{netip.MustParseAddr("10.0.0.2"), "a-host"}}}
	r := buildRecords("svc", "ns", []*endpointSlice{b, a})

	if len(r.eps) != 2 || len(r.hosts) != 2 || len(r.entries) != 5 {
		t.Fatalf("eps %d hosts %d entries %d, want 2 2 5", len(r.eps), len(r.hosts), len(r.entries))
	}
	if r.hosts[0].lower != "a-host" || r.hosts[1].lower != "b-host" {
		t.Errorf("hosts not sorted: %+v", r.hosts)
	}
	// a-host: 10.0.0.2 x (80/TCP, 80/UDP) from a, x (-1) from b.
	if h := r.hosts[0]; h.hi-h.lo != 3 {
		t.Errorf("a-host has %d entries, want 3", h.hi-h.lo)
	}
	count := func(es []entry, flag uint8) (n int) {
		for _, e := range es {
			if e.flags&flag != 0 {
				n++
			}
		}
		return n
	}
	if n := count(r.entries, firstAddr); n != 2 {
		t.Errorf("%d address records, want 2", n)
	}
	if n := count(r.entries, firstSRV); n != 2 { // one per host: port 80 twice
		t.Errorf("%d SRV records, want 2", n)
	}
	if n := count(r.entries, firstGlue); n != 2 {
		t.Errorf("%d glue records, want 2", n)
	}
	if got := r.target(0, "other."); got != "a-host.svc.ns.svc.other." {
		t.Errorf("target in another zone = %q", got)
	}
	targets := r.targets(r.entries, firstGlue, "Cluster.Local.")
	if targets[0] != "a-host.svc.ns.svc.Cluster.Local." || targets[1] != "b-host.svc.ns.svc.Cluster.Local." {
		t.Errorf("targets = %q", targets)
	}
	if targets := r.targets(r.entries[:1], firstGlue, "z."); targets[0] != "a-host.svc.ns.svc.z." || targets[1] != "" {
		t.Errorf("targets of the first entry = %q", targets)
	}
	if len(r.combos) != 3 { // alt/udp, http/tcp and the portless ""/""
		t.Errorf("combos %+v, want 3", r.combos)
	}
	if s := r.selectPort("alt", "udp"); len(s.entries) != 2 || count(s.entries, firstSRV) != 2 {
		t.Errorf("_alt._udp selects %+v, want 2 entries with 2 SRV", s.entries)
	}
	if s := r.selectHost("nobody"); s.exists() {
		t.Error("an unknown host exists")
	}
}
