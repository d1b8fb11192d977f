package headless

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/headlessdns/headless/internal/testkit"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
)

func TestToService(t *testing.T) {
	external := &core.Service{ObjectMeta: meta.ObjectMeta{Name: "x"}, Spec: core.ServiceSpec{Type: core.ServiceTypeExternalName, ClusterIP: core.ClusterIPNone}}
	tests := []struct {
		obj      any
		name     string
		headless bool
	}{
		{testkit.Headless("ns", "h"), "h", true},
		{clusterIPService("ns", "c", "10.96.0.1"), "c", false},
		{external, "x", false},
		{&mcs.ServiceImport{ObjectMeta: meta.ObjectMeta{Name: "i"}, Spec: mcs.ServiceImportSpec{Type: mcs.Headless}}, "i", true},
		{&mcs.ServiceImport{ObjectMeta: meta.ObjectMeta{Name: "v"}, Spec: mcs.ServiceImportSpec{Type: mcs.ClusterSetIP}}, "v", false},
	}
	for _, tc := range tests {
		s := serviceTransform(transformOptions{})(tc.obj).(*service)
		if s.name != tc.name || s.headless != tc.headless {
			t.Errorf("%s: got %+v, want headless %v", tc.name, s, tc.headless)
		}
		if again := serviceTransform(transformOptions{})(s); again != s {
			t.Errorf("%s: the transform is not idempotent", tc.name)
		}
	}
}

func TestToEndpointSlice(t *testing.T) {
	bad := "not a label"
	serving, terminating := true, true
	leaving := testkit.Ready(testkit.Endpoint("10.0.0.7", "web-7"), false)
	leaving.Conditions.Serving, leaving.Conditions.Terminating = &serving, &terminating
	zone := "US-East-1a"
	zoned := testkit.Endpoint("10.0.0.8", "web-8")
	zoned.Zone = &zone
	s := sliceOf("ns", "svc", "svc-a", []discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP), {}},
		testkit.Endpoint("10.0.0.1", "web-0"),
		testkit.Ready(testkit.Endpoint("10.0.0.2", "web-1"), false),
		testkit.Endpoint("10.0.0.3", ""),
		testkit.Pod(testkit.Endpoint("10.0.0.4", ""), "pod-a"),
		testkit.Endpoint("not-an-ip", ""),
		testkit.Endpoint("10.0.0.5", bad),
		testkit.Pod(testkit.Endpoint("10.0.0.6", ""), "pod.with.dots"),
		leaving, zoned,
	)
	s.Annotations = map[string]string{core.EndpointsLastChangeTriggerTime: "2026-11-27T12:00:00.5Z"}
	ip := netip.MustParseAddr
	got := toEndpointSlice(s, transformOptions{podNames: true})
	want := []sliceEndpoint{
		{addr: ip("10.0.0.1"), host: "web-0", hostname: true},
		{addr: ip("10.0.0.3"), host: "10-0-0-3"},
		{addr: ip("10.0.0.4"), host: "pod-a"},
		{addr: ip("10.0.0.6"), host: "pod.with.dots"}, // kept, as the kubernetes plugin keeps it
		{addr: ip("10.0.0.8"), host: "web-8", hostname: true},
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

	// zonal keeps the zone in lower case, terminating_fallback the serving
	// and terminating endpoint, marked.
	got = toEndpointSlice(s, transformOptions{zones: true, terminating: true})
	if e := got.endpoints[len(got.endpoints)-1]; e.zone() != "us-east-1a" {
		t.Errorf("zone %q, want us-east-1a", e.zone())
	}
	if e := got.endpoints[len(got.endpoints)-2]; e.addr != ip("10.0.0.7") || e.state != endpointTerminating {
		t.Errorf("the terminating endpoint is %+v", e)
	}

	if noPorts := toEndpointSlice(sliceOf("ns", "svc", "b", nil), transformOptions{}); !reflect.DeepEqual(noPorts.ports, []slicePort{{port: -1}}) {
		t.Errorf("a slice without ports has ports %+v, want the -1 sentinel", noPorts.ports)
	}
	fqdn := sliceOf("ns", "svc", "c", nil, testkit.Endpoint("db.example.org", ""))
	fqdn.AddressType = discovery.AddressTypeFQDN
	if got := toEndpointSlice(fqdn, transformOptions{}); len(got.endpoints) != 1 || got.endpoints[0].fqdn() != "db.example.org." || got.endpoints[0].host != "db-example-org" {
		t.Errorf("FQDN slice: %+v", got.endpoints)
	}

	imported := sliceOf("ns", "svc", "d", nil)
	imported.Labels[mcs.LabelServiceName], imported.Labels[mcs.LabelSourceCluster] = "db", "c1"
	if got := sliceTransform(transformOptions{}, true)(imported).(*endpointSlice); got.service != "db" || got.cluster != "c1" {
		t.Errorf("an imported slice names service %q cluster %q, want db c1", got.service, got.cluster)
	}
}

// TestObjectsKeyed checks that what the transforms keep can be keyed as
// client-go keys the objects of a streaming list.
func TestObjectsKeyed(t *testing.T) {
	ns := &core.Namespace{ObjectMeta: meta.ObjectMeta{Name: "team-a"}}
	for obj, want := range map[any]string{
		serviceTransform(transformOptions{})(testkit.Headless("ns", "db")): "ns/db",
		toNamespace(ns): "team-a",
		sliceTransform(transformOptions{}, false)(sliceOf("ns", "db", "db-1", nil)): "ns/db-1",
	} {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err != nil || key != want {
			t.Errorf("%T keyed %q, %v; want %q", obj, key, err, want)
		}
		if _, ok := obj.(runtime.Object); !ok {
			t.Errorf("%T is not a runtime.Object", obj)
		}
	}
}

// TestServicePolicy checks how a Service's annotations change the policy of
// the options that read them, and that they count only with those options.
func TestServicePolicy(t *testing.T) {
	all := transformOptions{policy: servicePolicy{unreadyNames: true, answerLimit: 20}, unreadyNamesSet: true, answerLimitSet: true}
	annotatedOnly := transformOptions{unreadyNamesSet: true, answerLimitSet: true}
	for _, tc := range []struct {
		opts        transformOptions
		annotations map[string]string
		want        servicePolicy
	}{
		{all, nil, servicePolicy{unreadyNames: true, answerLimit: 20}},
		{all, map[string]string{unreadyNamesAnnotation: "false", answerLimitAnnotation: "0"}, servicePolicy{}},
		{annotatedOnly, nil, servicePolicy{}},
		{annotatedOnly, map[string]string{unreadyNamesAnnotation: "true", answerLimitAnnotation: "3"}, servicePolicy{unreadyNames: true, answerLimit: 3}},
		// Values that do not parse are left out.
		{all, map[string]string{unreadyNamesAnnotation: "maybe", answerLimitAnnotation: "-1"}, servicePolicy{unreadyNames: true, answerLimit: 20}},
		{annotatedOnly, map[string]string{answerLimitAnnotation: "9999999999"}, servicePolicy{}},
		// Without the options, annotations do nothing.
		{transformOptions{}, map[string]string{unreadyNamesAnnotation: "true", answerLimitAnnotation: "3"}, servicePolicy{}},
	} {
		svc := testkit.Headless("ns", "db")
		svc.Annotations = tc.annotations
		if got := serviceTransform(tc.opts)(svc).(*service).policy; got != tc.want {
			t.Errorf("options %+v, annotations %v: policy %+v, want %+v", tc.opts, tc.annotations, got, tc.want)
		}
	}
}
