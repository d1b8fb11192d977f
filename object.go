package headless

import (
	"net/netip"
	"slices"
	"strconv"
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

// service is a Service, or a ServiceImport, reduced to its name, whether
// it is headless, and what its annotations ask of its answers. Only
// headless ones reach the index.
type service struct {
	objectMeta
	headless bool
	policy   servicePolicy
}

// servicePolicy is what the options beyond the kubernetes plugin, with a
// Service's annotations, ask of the answers of one service.
type servicePolicy struct {
	unreadyNames bool  // unready_names: an endpoint's names answer before it is ready
	answerLimit  int32 // answer_limit: the most records an answer holds; 0 for all
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
	state    endpointState
}

// endpointState is the condition of an endpoint that says which answers
// hold it.
type endpointState uint8

const (
	// endpointReady is served.
	endpointReady endpointState = iota
	// endpointTerminating is terminating but serving, kept with
	// terminating_fallback: served when no endpoint is ready.
	endpointTerminating
	// endpointStarting is not ready and not terminating, kept with
	// unready_names (its own names answer) and extended_errors (which
	// says why they do not).
	endpointStarting
	// endpointStopping is terminating and not served, kept with
	// extended_errors.
	endpointStopping
)

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
	return e.addr == o.addr && e.host == o.host && e.hostname == o.hostname && e.state == o.state &&
		e.fqdn() == o.fqdn() && e.zone() == o.zone()
}

// equal reports whether s and o serve the same records. The trigger time is
// left out: it changes with every write, records or not.
func (s *endpointSlice) equal(o *endpointSlice) bool {
	return s.name == o.name && s.namespace == o.namespace && s.service == o.service && s.cluster == o.cluster &&
		slices.Equal(s.ports, o.ports) && slices.EqualFunc(s.endpoints, o.endpoints, sliceEndpoint.same)
}

// transformOptions say what the transforms keep.
type transformOptions struct {
	podNames    bool // endpoint_pod_names
	zones       bool // zonal
	terminating bool // terminating_fallback
	// unready keeps the endpoints that are not ready: unready_names and
	// extended_errors.
	unready bool
	// policy is the servicePolicy of a Service without annotations.
	policy servicePolicy
	// The options that a Service's annotations can change.
	unreadyNamesSet, answerLimitSet bool
}

// The annotations of a Service that change its servicePolicy, with the
// options unready_names and answer_limit.
const (
	unreadyNamesAnnotation = "headlessdns.io/unready-names" // "true" or "false"
	answerLimitAnnotation  = "headlessdns.io/answer-limit"  // the most records an answer holds, "0" for all
)

// serviceTransform returns the transform of Services and ServiceImports:
// their name, whether they are headless and their policy. One that is not
// headless is still returned, with headless false, so that the index drops
// it: a Service switched from headless to ClusterIP or ExternalName must
// leave the index.
func serviceTransform(opts transformOptions) func(any) any {
	return func(obj any) any {
		switch s := obj.(type) {
		case *core.Service:
			return &service{
				objectMeta: objectMeta{name: s.Name, namespace: s.Namespace},
				headless:   s.Spec.ClusterIP == core.ClusterIPNone && s.Spec.Type != core.ServiceTypeExternalName,
				policy:     opts.servicePolicy(s.Namespace, s.Name, s.Annotations),
			}
		case *mcs.ServiceImport:
			return &service{
				objectMeta: objectMeta{name: s.Name, namespace: s.Namespace},
				headless:   s.Spec.Type == mcs.Headless,
				policy:     opts.servicePolicy(s.Namespace, s.Name, s.Annotations),
			}
		}
		return obj // already transformed
	}
}

// servicePolicy returns the policy of the Service namespace/name with
// annotations. An annotation that does not parse is logged and left out.
func (opts transformOptions) servicePolicy(namespace, name string, annotations map[string]string) servicePolicy {
	p := opts.policy
	if v, ok := annotations[unreadyNamesAnnotation]; ok && opts.unreadyNamesSet {
		b, err := strconv.ParseBool(v)
		if err != nil {
			log.Warningf("Service %s/%s: annotation %s must be true or false: %q", namespace, name, unreadyNamesAnnotation, v)
		} else {
			p.unreadyNames = b
		}
	}
	if v, ok := annotations[answerLimitAnnotation]; ok && opts.answerLimitSet {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			log.Warningf("Service %s/%s: annotation %s must be a number of records, 0 for all: %q", namespace, name, answerLimitAnnotation, v)
		} else {
			p.answerLimit = int32(n) // #nosec G115 -- parsed as 32 bits
		}
	}
	return p
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
		state := endpointReady
		switch {
		case ready(e.Conditions):
		case opts.terminating && servingTerminating(e.Conditions):
			state = endpointTerminating
		case !opts.unready:
			continue
		case e.Conditions.Terminating != nil && *e.Conditions.Terminating:
			state = endpointStopping
		default:
			state = endpointStarting
		}
		zone := ""
		if opts.zones && e.Zone != nil {
			if zones == nil {
				zones = map[string]string{}
			}
			zone = intern(zones, strings.ToLower(*e.Zone))
		}
		for _, a := range e.Addresses {
			ep := sliceEndpoint{host: endpointHostname(e, a, opts.podNames), state: state}
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
