package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControllers starts a cluster with controllers and three fake nodes,
// and checks what they make of the seed's consul-server: pods on the nodes,
// with addresses from the pod CIDR, and the EndpointSlice controller's slice
// of the headless Service, with its labels, hostnames, node names and zones.
func TestControllers(t *testing.T) {
	ctx := t.Context()
	begin := time.Now()
	c, err := Start(ctx, Options{Controllers: true})
	testkit.Require(t, err)
	t.Cleanup(c.Stop)
	t.Logf("started with controllers and 3 nodes in %v; logs %s", time.Since(begin).Round(time.Millisecond), c.Logs())

	nodes, err := c.Client.CoreV1().Nodes().List(ctx, meta.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zoneOf := map[string]string{}
	for _, n := range nodes.Items {
		zoneOf[n.Name] = n.Labels[ZoneLabel]
	}
	if len(zoneOf) != 3 || zoneOf["node-0"] != Zones[0] || zoneOf["node-2"] != Zones[2] {
		t.Errorf("nodes and zones: %v", zoneOf)
	}

	begin = time.Now()
	if err := testkit.ConsulServer("default", 3).Create(ctx, c.Client); err != nil {
		t.Fatal(err)
	}
	s, err := testkit.WaitForEndpoints(ctx, c.Client, "default", "consul-server", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the slices of 3 ready pods in %v", time.Since(begin).Round(time.Millisecond))
	if len(s) != 1 {
		t.Fatalf("%d slices, want 1", len(s))
	}
	slice := s[0]
	for label, want := range map[string]string{
		discovery.LabelServiceName: "consul-server",
		discovery.LabelManagedBy:   "endpointslice-controller.k8s.io",
		core.IsHeadlessService:     "",
	} {
		if got, ok := slice.Labels[label]; !ok || got != want {
			t.Errorf("label %s of slice %s: %q (%v), want %q", label, slice.Name, got, ok, want)
		}
	}
	if len(slice.Ports) != 8 || slice.AddressType != discovery.AddressTypeIPv4 {
		t.Errorf("slice %s: %s, %d ports, want IPv4 and 8", slice.Name, slice.AddressType, len(slice.Ports))
	}
	var got []string
	addrs := map[string]bool{}
	for _, e := range slice.Endpoints {
		if e.Hostname == nil || e.NodeName == nil || e.Zone == nil || len(e.Addresses) != 1 {
			t.Fatalf("endpoint %+v: want a hostname, node, zone and address", e)
		}
		if !strings.HasPrefix(e.Addresses[0], "10.244.") {
			t.Errorf("endpoint %s: address %s outside the pod CIDR", *e.Hostname, e.Addresses[0])
		}
		if addrs[e.Addresses[0]] {
			t.Errorf("endpoint %s: address %s taken by another pod", *e.Hostname, e.Addresses[0])
		}
		addrs[e.Addresses[0]] = true
		if zoneOf[*e.NodeName] != *e.Zone {
			t.Errorf("endpoint %s on %s: zone %s, want the node's %s", *e.Hostname, *e.NodeName, *e.Zone, zoneOf[*e.NodeName])
		}
		got = append(got, *e.Hostname)
	}
	slices.Sort(got)
	if want := []string{"consul-server-0", "consul-server-1", "consul-server-2"}; !slices.Equal(got, want) {
		t.Errorf("hostnames %v, want %v", got, want)
	}

	c.Stop()
	c.Stop()
}
