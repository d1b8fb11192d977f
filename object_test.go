package headless

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/headlessdns/headless/test/fixtures"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestToService(t *testing.T) {
	tests := []struct {
		svc      *core.Service
		headless bool
		ips      []netip.Addr
	}{
		{fixtures.Headless("ns", "h"), true, nil},
		{clusterIPService("ns", "c", "10.96.0.1"), false, []netip.Addr{netip.MustParseAddr("10.96.0.1")}},
		{&core.Service{ObjectMeta: meta.ObjectMeta{Name: "x"}, Spec: core.ServiceSpec{Type: core.ServiceTypeExternalName, ClusterIP: core.ClusterIPNone}}, false, nil},
	}
	for _, tc := range tests {
		obj, err := toService(tc.svc)
		if err != nil {
			t.Fatal(err)
		}
		s := obj.(*service)
		if s.name != tc.svc.Name || s.headless != tc.headless || !reflect.DeepEqual(s.clusterIPs, tc.ips) {
			t.Errorf("%s: got %+v, want headless %v ips %v", tc.svc.Name, s, tc.headless, tc.ips)
		}
		if again, _ := toService(s); again != s {
			t.Errorf("%s: transform is not idempotent", tc.svc.Name)
		}
	}
}

func TestToEndpointSlice(t *testing.T) {
	bad := "not a label"
	s := sliceOf("ns", "svc", "svc-a", []discovery.EndpointPort{fixtures.Port("http", 80, core.ProtocolTCP), {}},
		fixtures.Endpoint("10.0.0.1", "web-0"),
		fixtures.Ready(fixtures.Endpoint("10.0.0.2", "web-1"), false),
		fixtures.Endpoint("10.0.0.3", ""),
		fixtures.Pod(fixtures.Endpoint("10.0.0.4", ""), "pod-a"),
		fixtures.Endpoint("not-an-ip", ""),
		fixtures.Endpoint("10.0.0.5", bad),
		fixtures.Pod(fixtures.Endpoint("10.0.0.6", ""), "pod.with.dots"),
	)
	s.Annotations = map[string]string{core.EndpointsLastChangeTriggerTime: "2026-11-27T12:00:00.5Z"}
	got := toEndpointSlice(s, true)
	want := []sliceEndpoint{
		{netip.MustParseAddr("10.0.0.1"), "web-0"},
		{netip.MustParseAddr("10.0.0.3"), "10-0-0-3"},
		{netip.MustParseAddr("10.0.0.4"), "pod-a"},
		{netip.MustParseAddr("10.0.0.6"), "pod.with.dots"}, // kept, as the kubernetes plugin keeps it
	}
	if !reflect.DeepEqual(got.endpoints, want) {
		t.Errorf("endpoints %+v, want %+v", got.endpoints, want)
	}
	wantPorts := []slicePort{{name: "http", protocol: "TCP", port: 80}, {port: -1}}
	if !reflect.DeepEqual(got.ports, wantPorts) {
		t.Errorf("ports %+v, want %+v", got.ports, wantPorts)
	}
	if got.service != "svc" || got.triggered != 1795780800500000000 {
		t.Errorf("service %q triggered %d", got.service, got.triggered)
	}
	if noPorts := toEndpointSlice(sliceOf("ns", "svc", "b", nil), false); !reflect.DeepEqual(noPorts.ports, []slicePort{{port: -1}}) {
		t.Errorf("a slice without ports has ports %+v, want the -1 sentinel", noPorts.ports)
	}
	fqdn := sliceOf("ns", "svc", "c", nil, fixtures.Endpoint("example.com", ""))
	fqdn.AddressType = discovery.AddressTypeFQDN
	if got := toEndpointSlice(fqdn, false); len(got.endpoints) != 0 {
		t.Errorf("FQDN slice kept %+v", got.endpoints)
	}
}

func TestEndpointHostname(t *testing.T) {
	tests := []struct {
		e        discovery.Endpoint
		addr     string
		podNames bool
		want     string
	}{
		{fixtures.Endpoint("10.0.0.1", "web-0"), "10.0.0.1", true, "web-0"},
		{fixtures.Pod(fixtures.Endpoint("10.0.0.1", ""), "pod-a"), "10.0.0.1", true, "pod-a"},
		{fixtures.Pod(fixtures.Endpoint("10.0.0.1", ""), "pod-a"), "10.0.0.1", false, "10-0-0-1"},
		{fixtures.Pod(fixtures.Endpoint("10.0.0.1", ""), string(make([]byte, 64))), "10.0.0.1", true, "10-0-0-1"},
		{fixtures.Endpoint("fd00::1", ""), "fd00::1", false, "fd00--1"},
		{fixtures.Endpoint("fd00::", ""), "fd00::", false, "fd00--0"},
	}
	for _, tc := range tests {
		if got := endpointHostname(tc.e, tc.addr, tc.podNames); got != tc.want {
			t.Errorf("endpointHostname(%s, %v) = %q, want %q", tc.addr, tc.podNames, got, tc.want)
		}
	}
}
