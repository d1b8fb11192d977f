package headless

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin/kubernetes/object"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
)

// The objects below are what the plugin keeps of the API objects it watches:
// only what DNS needs.

// objectMeta is the name and namespace of a kept object. Its accessors make
// the objects meta.Objects, object.Empty doing the rest, so that client-go
// can key them during a streaming list.
type objectMeta struct {
	name, namespace string

	*object.Empty
}

// service is a Service, or a ServiceImport, reduced to its name and whether
// it is headless. Only headless ones reach the index.
type service struct {
	objectMeta
	headless bool
}

// endpointSlice is an EndpointSlice reduced to the endpoints DNS serves, their
// names and its ports.
type endpointSlice struct {
	objectMeta
	service   string // the kubernetes.io/service-name (or, multicluster, multicluster.kubernetes.io/service-name) label
	cluster   string // the multicluster.kubernetes.io/source-cluster label
	ports     []slicePort
	endpoints []sliceEndpoint
	// triggered is the endpoints.kubernetes.io/last-change-trigger-time
	// annotation in Unix nanoseconds, 0 when absent.
	triggered int64
}

// slicePort is one port of an EndpointSlice; port -1 stands for a slice
// without ports, as in the kubernetes plugin.
type slicePort struct {
	name, protocol string
	port           int32
}

// sliceEndpoint is one address of an endpoint and the DNS label it is known by.
// It is kept small: there is one for each address the plugin serves.
type sliceEndpoint struct {
	addr netip.Addr // invalid for an FQDN slice
	host string
	more *endpointDetail // nil but for FQDN slices and, with zonal, zones
	// hostname is set when host is the endpoint's hostname, the stable name
	// of a StatefulSet pod, rather than its pod name or address.
	hostname bool
	// terminating marks a serving but terminating endpoint, kept with
	// terminating_fallback only: it is served when no endpoint is ready.
	terminating bool
}

// endpointDetail is what few endpoints have.
type endpointDetail struct {
	fqdn string // the address of an FQDN slice, fully qualified
	zone string // topology zone in lower case, kept with zonal only
}

// fqdn returns the address of an endpoint of an FQDN slice, or "".
func (e sliceEndpoint) fqdn() string {
	if e.more == nil {
		return ""
	}
	return e.more.fqdn
}

// zone returns the topology zone of the endpoint, with zonal, or "".
func (e sliceEndpoint) zone() string {
	if e.more == nil {
		return ""
	}
	return e.more.zone
}

// same reports whether e and o serve the same records.
func (e sliceEndpoint) same(o sliceEndpoint) bool {
	return e.addr == o.addr && e.host == o.host && e.hostname == o.hostname && e.terminating == o.terminating &&
		e.fqdn() == o.fqdn() && e.zone() == o.zone()
}

// equal reports whether s and o serve the same records. The trigger time is
// left out: it changes with every write, records or not.
func (s *endpointSlice) equal(o *endpointSlice) bool {
	return s.name == o.name && s.namespace == o.namespace && s.service == o.service && s.cluster == o.cluster &&
		slices.Equal(s.ports, o.ports) && slices.EqualFunc(s.endpoints, o.endpoints, sliceEndpoint.same)
}

// transformOptions say what the slice transform keeps.
type transformOptions struct {
	podNames    bool // endpoint_pod_names
	zones       bool // zonal
	terminating bool // terminating_fallback
}

// toService is the transform of Services and ServiceImports: their name and
// whether they are headless. One that is not headless is still returned,
// with headless false, so that the index drops it: a Service switched from
// headless to ClusterIP or ExternalName must leave the index.
func toService(obj any) any {
	switch s := obj.(type) {
	case *core.Service:
		return &service{
			objectMeta: objectMeta{name: s.Name, namespace: s.Namespace},
			headless:   s.Spec.ClusterIP == core.ClusterIPNone && s.Spec.Type != core.ServiceTypeExternalName,
		}
	case *mcs.ServiceImport:
		return &service{objectMeta: objectMeta{name: s.Name, namespace: s.Namespace}, headless: s.Spec.Type == mcs.Headless}
	}
	return obj // already transformed
}

// toNamespace is the transform of Namespaces, for namespace_labels: their
// name.
func toNamespace(obj any) any {
	if n, ok := obj.(*core.Namespace); ok {
		return &objectMeta{name: n.Name}
	}
	return obj
}

// sliceTransform returns the transform of EndpointSlices; multicluster
// selects the labels of the Multi-Cluster Services API.
func sliceTransform(opts transformOptions, multicluster bool) func(any) any {
	return func(obj any) any {
		s, ok := obj.(*discovery.EndpointSlice)
		if !ok {
			return obj
		}
		es := toEndpointSlice(s, opts)
		if multicluster {
			// The endpoints of a ServiceImport are named HOST.CLUSTER.
			es.service, es.cluster = s.Labels[mcs.LabelServiceName], s.Labels[mcs.LabelSourceCluster]
			for i := range es.endpoints {
				es.endpoints[i].host += "." + es.cluster
			}
		}
		return es
	}
}

func toEndpointSlice(s *discovery.EndpointSlice, opts transformOptions) *endpointSlice {
	es := &endpointSlice{
		objectMeta: objectMeta{name: s.Name, namespace: s.Namespace},
		service:    s.Labels[discovery.LabelServiceName],
		ports:      slicePorts(s.Ports),
		triggered:  triggerTime(s.Annotations[core.EndpointsLastChangeTriggerTime]),
	}
	n := 0
	for _, e := range s.Endpoints {
		n += len(e.Addresses)
	}
	es.endpoints = make([]sliceEndpoint, 0, n)
	var zones map[string]string // one string per zone, not one per endpoint
	for _, e := range s.Endpoints {
		terminating := false
		if !ready(e.Conditions) {
			if !opts.terminating || !servingTerminating(e.Conditions) {
				continue
			}
			terminating = true
		}
		zone := ""
		if opts.zones && e.Zone != nil {
			if zones == nil {
				zones = map[string]string{}
			}
			zone = intern(zones, strings.ToLower(*e.Zone))
		}
		for _, a := range e.Addresses {
			ep := sliceEndpoint{host: endpointHostname(e, a, opts.podNames), terminating: terminating}
			ep.hostname = e.Hostname != nil && *e.Hostname != ""
			if zone != "" {
				ep.more = &endpointDetail{zone: zone}
			}
			if s.AddressType == discovery.AddressTypeFQDN {
				if ep.more == nil {
					ep.more = &endpointDetail{}
				}
				ep.more.fqdn = strings.TrimSuffix(a, ".") + "."
			} else {
				addr, err := netip.ParseAddr(a)
				if err != nil || addr.Zone() != "" {
					log.Warningf("Skipping address %q of EndpointSlice %s/%s: not an IP address", a, s.Namespace, s.Name)
					continue
				}
				ep.addr = addr.Unmap()
			}
			if !validHost(ep.host) {
				log.Warningf("Skipping address %q of EndpointSlice %s/%s: %q cannot stand in a DNS name", a, s.Namespace, s.Name, ep.host)
				continue
			}
			es.endpoints = append(es.endpoints, ep)
		}
	}
	return es
}

func intern(m map[string]string, s string) string {
	if v, ok := m[s]; ok {
		return v
	}
	m[s] = s
	return s
}

// ready reports whether an endpoint is ready: an unset condition counts as
// ready, as the API documents.
func ready(c discovery.EndpointConditions) bool { return c.Ready == nil || *c.Ready }

// servingTerminating reports whether an endpoint is terminating but still
// serving, the endpoints kube-proxy falls back to when none is ready.
func servingTerminating(c discovery.EndpointConditions) bool {
	return c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating
}

func slicePorts(ports []discovery.EndpointPort) []slicePort {
	if len(ports) == 0 {
		return []slicePort{{port: -1}}
	}
	sp := make([]slicePort, len(ports))
	for i, p := range ports {
		sp[i].port = -1
		if p.Port != nil {
			sp[i].port = *p.Port
		}
		if p.Name != nil {
			sp[i].name = *p.Name
		}
		if p.Protocol != nil {
			sp[i].protocol = string(*p.Protocol)
		}
	}
	return sp
}

// endpointHostname is the DNS label of an endpoint address: its hostname,
// else its pod name when podNames is set, else the address as written in the
// slice with its dots or colons turned into dashes, as the kubernetes plugin
// names it.
func endpointHostname(e discovery.Endpoint, addr string, podNames bool) string {
	if e.Hostname != nil && *e.Hostname != "" {
		return *e.Hostname
	}
	if podNames && e.TargetRef != nil && e.TargetRef.Name != "" && len(e.TargetRef.Name) < 64 {
		return e.TargetRef.Name
	}
	if strings.Contains(addr, ".") {
		return strings.ReplaceAll(addr, ".", "-")
	}
	h := strings.ReplaceAll(addr, ":", "-")
	if strings.HasSuffix(h, "-") {
		h += "0" // a label may not end in a dash
	}
	return h
}

// validHost reports whether s can stand at the front of a name we serve: one
// label, or several for a pod name with dots (endpoint_pod_names), which the
// kubernetes plugin keeps in its answers although no query can name it.
func validHost(s string) bool {
	if len(s) > 200 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; c == '\\' || c < '!' || c > '~' {
				return false
			}
		}
	}
	return true
}

func triggerTime(v string) int64 {
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

// GetNamespace implements the metav1.Object interface.
func (m *objectMeta) GetNamespace() string { return m.namespace }

// SetNamespace implements the metav1.Object interface.
func (m *objectMeta) SetNamespace(namespace string) { m.namespace = namespace }

// GetName implements the metav1.Object interface.
func (m *objectMeta) GetName() string { return m.name }

// SetName implements the metav1.Object interface.
func (m *objectMeta) SetName(name string) { m.name = name }

// GetResourceVersion implements the metav1.Object interface.
func (m *objectMeta) GetResourceVersion() string { return "" }

// SetResourceVersion implements the metav1.Object interface.
func (m *objectMeta) SetResourceVersion(string) {}

// DeepCopyObject implements the runtime.Object interface. The objects are
// never modified, so a copy of the top level is enough.
func (s *service) DeepCopyObject() runtime.Object { c := *s; return &c }

// DeepCopyObject implements the runtime.Object interface, for a reduced
// Namespace.
func (m *objectMeta) DeepCopyObject() runtime.Object { c := *m; return &c }

// DeepCopyObject implements the runtime.Object interface.
func (s *endpointSlice) DeepCopyObject() runtime.Object { c := *s; return &c }
