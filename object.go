package headless

import (
	"net/netip"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin/kubernetes/object"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// service is a Service reduced to what DNS needs. It is what the informer stores.
type service struct {
	name, namespace, version string
	headless                 bool
	// clusterIPs of a service that is not headless: a PTR for one of them is
	// the kubernetes plugin's to answer, so the index must know them.
	clusterIPs []netip.Addr

	*object.Empty
}

// endpointSlice is an EndpointSlice reduced to its ready addresses, their DNS
// labels and its ports. It is what the informer stores.
type endpointSlice struct {
	name, namespace, version string
	service                  string // the kubernetes.io/service-name label
	ports                    []slicePort
	endpoints                []sliceEndpoint
	// triggered is the endpoints.kubernetes.io/last-change-trigger-time
	// annotation in Unix nanoseconds, 0 when absent.
	triggered int64

	*object.Empty
}

// slicePort is one port of an EndpointSlice; port -1 stands for a slice
// without ports, as in the kubernetes plugin.
type slicePort struct {
	name, protocol string
	port           int32
}

// sliceEndpoint is one ready address and the DNS label it is known by.
type sliceEndpoint struct {
	addr netip.Addr
	host string
}

// toService is the informer transform for Services.
func toService(obj any) (any, error) {
	s, ok := obj.(*core.Service)
	if !ok {
		return obj, nil // already transformed, or a tombstone
	}
	svc := &service{
		name:      s.Name,
		namespace: s.Namespace,
		version:   s.ResourceVersion,
		headless:  s.Spec.ClusterIP == core.ClusterIPNone && s.Spec.Type != core.ServiceTypeExternalName,
	}
	if !svc.headless {
		for _, ip := range s.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				svc.clusterIPs = append(svc.clusterIPs, a)
			}
		}
	}
	return svc, nil
}

// sliceTransform returns the informer transform for EndpointSlices. podNames
// selects the pod name as the label of an endpoint without hostname, as the
// endpoint_pod_names option does.
func sliceTransform(podNames bool) func(any) (any, error) {
	return func(obj any) (any, error) {
		s, ok := obj.(*discovery.EndpointSlice)
		if !ok {
			return obj, nil
		}
		return toEndpointSlice(s, podNames), nil
	}
}

func toEndpointSlice(s *discovery.EndpointSlice, podNames bool) *endpointSlice {
	es := &endpointSlice{
		name:      s.Name,
		namespace: s.Namespace,
		version:   s.ResourceVersion,
		service:   s.Labels[discovery.LabelServiceName],
		triggered: triggerTime(s.Annotations[core.EndpointsLastChangeTriggerTime]),
	}
	if s.AddressType == discovery.AddressTypeFQDN {
		return es // no addresses DNS can serve
	}
	es.ports = slicePorts(s.Ports)
	for _, e := range s.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		for _, a := range e.Addresses {
			addr, err := netip.ParseAddr(a)
			if err != nil || addr.Zone() != "" {
				log.Warningf("Skipping address %q of EndpointSlice %s/%s: not an IP address", a, s.Namespace, s.Name)
				continue
			}
			host := endpointHostname(e, a, podNames)
			if !validHost(host) {
				log.Warningf("Skipping address %q of EndpointSlice %s/%s: %q cannot stand in a DNS name", a, s.Namespace, s.Name, host)
				continue
			}
			es.endpoints = append(es.endpoints, sliceEndpoint{addr: addr, host: host})
		}
	}
	return es
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
// slice with its dots or colons turned into dashes (as the kubernetes plugin
// names it).
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
func (s *service) GetNamespace() string { return s.namespace }

// SetNamespace implements the metav1.Object interface.
func (s *service) SetNamespace(namespace string) { s.namespace = namespace }

// GetName implements the metav1.Object interface.
func (s *service) GetName() string { return s.name }

// SetName implements the metav1.Object interface.
func (s *service) SetName(name string) { s.name = name }

// GetResourceVersion implements the metav1.Object interface.
func (s *service) GetResourceVersion() string { return s.version }

// SetResourceVersion implements the metav1.Object interface.
func (s *service) SetResourceVersion(version string) { s.version = version }

// DeepCopyObject implements the runtime.Object interface. Stored objects are
// never modified, so a copy of the top level is enough.
func (s *service) DeepCopyObject() runtime.Object { c := *s; return &c }

// GetNamespace implements the metav1.Object interface.
func (s *endpointSlice) GetNamespace() string { return s.namespace }

// SetNamespace implements the metav1.Object interface.
func (s *endpointSlice) SetNamespace(namespace string) { s.namespace = namespace }

// GetName implements the metav1.Object interface.
func (s *endpointSlice) GetName() string { return s.name }

// SetName implements the metav1.Object interface.
func (s *endpointSlice) SetName(name string) { s.name = name }

// GetResourceVersion implements the metav1.Object interface.
func (s *endpointSlice) GetResourceVersion() string { return s.version }

// SetResourceVersion implements the metav1.Object interface.
func (s *endpointSlice) SetResourceVersion(version string) { s.version = version }

// DeepCopyObject implements the runtime.Object interface.
func (s *endpointSlice) DeepCopyObject() runtime.Object { c := *s; return &c }
