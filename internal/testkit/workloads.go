package testkit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apps "k8s.io/api/apps/v1"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The workloads: objects that the controllers of a cluster with controllers
// (test/cluster Options.Controllers) turn into pods and EndpointSlices, as in
// a real cluster, where the fixtures write the slices by hand.

// Image is the container image of the workloads' pods. kwok runs no
// container, so it is never pulled.
const Image = "registry.k8s.io/pause:3.10"

// Workload is a set of objects that the controllers act on.
type Workload struct {
	Services     []*core.Service
	StatefulSets []*apps.StatefulSet
	Deployments  []*apps.Deployment
	// Endpoints are written by hand, for Services without a selector: the
	// mirroring controller turns them into EndpointSlices.
	Endpoints []*core.Endpoints
}

// ConsulServer is the seed document's consul-server as the consul Helm
// chart makes it: a headless Service with the seed's 8 ports that publishes
// the addresses of pods that are not ready (publishNotReadyAddresses, which
// the chart sets so that the servers find each other before they are
// ready), and a StatefulSet of replicas pods, started in parallel as the
// chart starts them.
func ConsulServer(namespace string, replicas int32) Workload {
	svc := Headless(namespace, "consul-server")
	svc.Labels = map[string]string{"app": "consul", "component": "server"}
	svc.Spec.Selector = map[string]string{"app": "consul", "component": "server"}
	svc.Spec.PublishNotReadyAddresses = true
	var ports []core.ContainerPort
	for _, p := range ConsulPorts {
		svc.Spec.Ports = append(svc.Spec.Ports, ServicePort(p.Name, p.Port, p.Protocol))
		ports = append(ports, core.ContainerPort{Name: p.Name, ContainerPort: p.Port, Protocol: p.Protocol})
	}
	sts := StatefulSet(namespace, "consul-server", "consul-server", replicas, true)
	sts.Spec.Selector.MatchLabels = svc.Spec.Selector
	sts.Spec.Template.Labels = svc.Spec.Selector
	sts.Spec.Template.Spec.Containers[0].Name = "consul"
	sts.Spec.Template.Spec.Containers[0].Image = "hashicorp/consul:1.21"
	sts.Spec.Template.Spec.Containers[0].Ports = ports
	return Workload{Services: []*core.Service{svc}, StatefulSets: []*apps.StatefulSet{sts}}
}

// StatefulSet returns a StatefulSet of replicas pods labelled app: name,
// named by the headless Service service; parallel starts and stops them all
// at once (podManagementPolicy: Parallel) instead of one by one.
func StatefulSet(namespace, name, service string, replicas int32, parallel bool) *apps.StatefulSet {
	labels := map[string]string{"app": name}
	policy := apps.OrderedReadyPodManagement
	if parallel {
		policy = apps.ParallelPodManagement
	}
	return &apps.StatefulSet{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec: apps.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         service,
			PodManagementPolicy: policy,
			Selector:            &meta.LabelSelector{MatchLabels: labels},
			Template:            podTemplate(labels),
		},
	}
}

// Deployment returns a Deployment of replicas pods labelled app: name whose
// pods all take hostname and the subdomain of the headless Service
// subdomain: each pod answers hostname.subdomain, as the DNS specification
// has it.
func Deployment(namespace, name, hostname, subdomain string, replicas int32) *apps.Deployment {
	labels := map[string]string{"app": name}
	t := podTemplate(labels)
	t.Spec.Hostname, t.Spec.Subdomain = hostname, subdomain
	return &apps.Deployment{
		ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace},
		Spec: apps.DeploymentSpec{
			Replicas: &replicas,
			Selector: &meta.LabelSelector{MatchLabels: labels},
			Template: t,
		},
	}
}

// podTemplate is a pod of one container that kwok pretends to run.
func podTemplate(labels map[string]string) core.PodTemplateSpec {
	grace := int64(0)
	return core.PodTemplateSpec{
		ObjectMeta: meta.ObjectMeta{Labels: labels},
		Spec: core.PodSpec{
			Containers:                    []core.Container{{Name: "main", Image: Image}},
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// Create creates the namespaces and objects of w.
func (w Workload) Create(ctx context.Context, client kubernetes.Interface) error {
	for _, s := range w.Services {
		if err := ensureNamespace(ctx, client, s.Namespace); err != nil {
			return err
		}
		if _, err := client.CoreV1().Services(s.Namespace).Create(ctx, s, meta.CreateOptions{}); err != nil {
			return fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	for _, e := range w.Endpoints {
		if err := ensureNamespace(ctx, client, e.Namespace); err != nil {
			return err
		}
		if _, err := client.CoreV1().Endpoints(e.Namespace).Create(ctx, e, meta.CreateOptions{}); err != nil {
			return fmt.Errorf("endpoints %s/%s: %w", e.Namespace, e.Name, err)
		}
	}
	for _, s := range w.StatefulSets {
		if err := ensureNamespace(ctx, client, s.Namespace); err != nil {
			return err
		}
		if _, err := client.AppsV1().StatefulSets(s.Namespace).Create(ctx, s, meta.CreateOptions{}); err != nil {
			return fmt.Errorf("statefulset %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	for _, d := range w.Deployments {
		if err := ensureNamespace(ctx, client, d.Namespace); err != nil {
			return err
		}
		if _, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, meta.CreateOptions{}); err != nil {
			return fmt.Errorf("deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	return nil
}

// ServiceSlices returns the EndpointSlices of the Service namespace/name,
// sorted by name.
func ServiceSlices(ctx context.Context, client kubernetes.Interface, namespace, name string) ([]discovery.EndpointSlice, error) {
	list, err := client.DiscoveryV1().EndpointSlices(namespace).List(ctx, meta.ListOptions{LabelSelector: discovery.LabelServiceName + "=" + name})
	if err != nil {
		return nil, err
	}
	s := list.Items
	slices.SortFunc(s, func(a, b discovery.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

// ReadyEndpoints returns the hostnames, or the addresses of endpoints
// without one, of the ready endpoints of es, sorted.
func ReadyEndpoints(es []discovery.EndpointSlice) []string {
	var names []string
	for _, s := range es {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.Hostname != nil {
				names = append(names, *e.Hostname)
			} else {
				names = append(names, e.Addresses...)
			}
		}
	}
	slices.Sort(names)
	return names
}

// WaitForEndpoints waits, up to timeout, until the slices of the Service
// namespace/name hold n ready endpoints, all of pods that are Running and
// Ready, and returns the slices.
func WaitForEndpoints(ctx context.Context, client kubernetes.Interface, namespace, name string, n int, timeout time.Duration) ([]discovery.EndpointSlice, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		s, err := ServiceSlices(ctx, client, namespace, name)
		if err == nil {
			ready := ReadyEndpoints(s)
			last = fmt.Sprintf("%d slices, ready endpoints %v", len(s), ready)
			if len(ready) == n && podsReady(ctx, client, s) {
				return s, nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d ready endpoints of %s/%s: %w; last: %s", n, namespace, name, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podsReady reports whether the pods of the endpoints of slices are Ready:
// a Service that publishes the addresses of pods that are not ready has
// every endpoint ready.
func podsReady(ctx context.Context, client kubernetes.Interface, s []discovery.EndpointSlice) bool {
	for _, sl := range s {
		for _, e := range sl.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
				continue
			}
			pod, err := client.CoreV1().Pods(sl.Namespace).Get(ctx, e.TargetRef.Name, meta.GetOptions{})
			if err != nil || !PodReady(pod) {
				return false
			}
		}
	}
	return true
}

// PodReady reports whether pod's Ready condition is True.
func PodReady(pod *core.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == core.PodReady {
			return c.Status == core.ConditionTrue
		}
	}
	return false
}
