package testkit

import (
	"context"
	"fmt"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The fixtures: the Kubernetes objects that the tests, the demo and the
// benchmarks load, Services and the EndpointSlices the EndpointSlice
// controller would write for them.

// Objects is a set of Services and EndpointSlices.
type Objects struct {
	Services []*core.Service
	Slices   []*discovery.EndpointSlice
}

// Add appends the objects of o2 to o.
func (o *Objects) Add(o2 Objects) {
	o.Services = append(o.Services, o2.Services...)
	o.Slices = append(o.Slices, o2.Slices...)
}

// Headless returns a headless Service (clusterIP: None) with ports.
func Headless(namespace, name string, ports ...core.ServicePort) *core.Service {
	return &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec: core.ServiceSpec{
			ClusterIP: core.ClusterIPNone,
			Selector:  map[string]string{"app": name},
			Ports:     ports,
		},
	}
}

// ClusterIP returns a ClusterIP Service with ports; the API server allocates
// its address.
func ClusterIP(namespace, name string, ports ...core.ServicePort) *core.Service {
	return &core.Service{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       core.ServiceSpec{Selector: map[string]string{"app": name}, Ports: ports},
	}
}

// ServicePort returns a Service port.
func ServicePort(name string, port int32, protocol core.Protocol) core.ServicePort {
	return core.ServicePort{Name: name, Port: port, Protocol: protocol}
}

// Slice returns an EndpointSlice of service, labelled as the EndpointSlice
// controller labels them.
func Slice(namespace, service, name string, addressType discovery.AddressType, ports []discovery.EndpointPort, endpoints ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
			discovery.LabelServiceName: service,
			discovery.LabelManagedBy:   "endpointslice-controller.k8s.io",
		}},
		AddressType: addressType,
		Ports:       ports,
		Endpoints:   endpoints,
	}
}

// Port returns an EndpointSlice port; an empty name is an unnamed port.
func Port(name string, port int32, protocol core.Protocol) discovery.EndpointPort {
	return discovery.EndpointPort{Name: &name, Port: &port, Protocol: &protocol}
}

// Endpoint returns a ready endpoint with one address and, unless empty, a
// hostname.
func Endpoint(ip, hostname string) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{ip}}
	if hostname != "" {
		e.Hostname = &hostname
	}
	return e
}

// Ready returns e with its ready condition set.
func Ready(e discovery.Endpoint, ready bool) discovery.Endpoint {
	e.Conditions.Ready = &ready
	return e
}

// Pod returns e with a target reference to a pod.
func Pod(e discovery.Endpoint, pod string) discovery.Endpoint {
	e.TargetRef = &core.ObjectReference{Kind: "Pod", Name: pod, Namespace: ""}
	return e
}

// ConsulPorts are the eight ports of the seed document's consul-server.
var ConsulPorts = []struct {
	Name     string
	Port     int32
	Protocol core.Protocol
}{
	{"http", 8500, core.ProtocolTCP},
	{"serflan-tcp", 8301, core.ProtocolTCP},
	{"serflan-udp", 8301, core.ProtocolUDP},
	{"serfwan-tcp", 8302, core.ProtocolTCP},
	{"serfwan-udp", 8302, core.ProtocolUDP},
	{"server", 8300, core.ProtocolTCP},
	{"dns-tcp", 8600, core.ProtocolTCP},
	{"dns-udp", 8600, core.ProtocolUDP},
}

// ConsulIPs are the pod addresses of consul-server-0, -1 and -2.
var ConsulIPs = []string{"10.244.1.10", "10.244.2.11", "10.244.3.12"}

// Consul returns the seed scenario in namespace: the consul-server
// StatefulSet's headless Service and the EndpointSlice of its pods.
func Consul(namespace string) Objects {
	svc := Headless(namespace, "consul-server")
	var ports []discovery.EndpointPort
	for _, p := range ConsulPorts {
		svc.Spec.Ports = append(svc.Spec.Ports, ServicePort(p.Name, p.Port, p.Protocol))
		ports = append(ports, Port(p.Name, p.Port, p.Protocol))
	}
	var eps []discovery.Endpoint
	for i, ip := range ConsulIPs {
		eps = append(eps, Pod(Endpoint(ip, fmt.Sprintf("consul-server-%d", i)), fmt.Sprintf("consul-server-%d", i)))
	}
	slice := Slice(namespace, "consul-server", "consul-server-x7k2p", discovery.AddressTypeIPv4, ports, eps...)
	return Objects{Services: []*core.Service{svc}, Slices: []*discovery.EndpointSlice{slice}}
}

// Apply creates the namespaces and objects of o, or updates those that exist.
func Apply(ctx context.Context, client kubernetes.Interface, o Objects) error {
	for _, s := range o.Services {
		if err := ensureNamespace(ctx, client, s.Namespace); err != nil {
			return err
		}
		if err := applyService(ctx, client, s); err != nil {
			return fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	for _, s := range o.Slices {
		if err := ensureNamespace(ctx, client, s.Namespace); err != nil {
			return err
		}
		if err := applySlice(ctx, client, s); err != nil {
			return fmt.Errorf("endpointslice %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

func ensureNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &core.Namespace{ObjectMeta: meta.ObjectMeta{Name: name}}, meta.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func applyService(ctx context.Context, client kubernetes.Interface, s *core.Service) error {
	services := client.CoreV1().Services(s.Namespace)
	_, err := services.Create(ctx, s, meta.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	old, err := services.Get(ctx, s.Name, meta.GetOptions{})
	if err != nil {
		return err
	}
	s = s.DeepCopy()
	s.ResourceVersion = old.ResourceVersion
	s.Spec.ClusterIP, s.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
	_, err = services.Update(ctx, s, meta.UpdateOptions{})
	return err
}

func applySlice(ctx context.Context, client kubernetes.Interface, s *discovery.EndpointSlice) error {
	slices := client.DiscoveryV1().EndpointSlices(s.Namespace)
	_, err := slices.Create(ctx, s, meta.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	old, err := slices.Get(ctx, s.Name, meta.GetOptions{})
	if err != nil {
		return err
	}
	s = s.DeepCopy()
	s.ResourceVersion = old.ResourceVersion
	_, err = slices.Update(ctx, s, meta.UpdateOptions{})
	return err
}
