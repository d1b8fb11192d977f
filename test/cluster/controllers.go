package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	core "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The controllers a cluster with Options.Controllers runs: those that DNS
// depends on, those that make the workloads that feed them, and what they
// need. Left out: the endpoints controller, whose Endpoints nothing here
// reads (the mirroring controller mirrors only those of Services without a
// selector, which their owner writes), node IPAM (the nodes get their pod
// CIDRs when created), the cloud, volumes, certificates, quotas.
var controllers = []string{
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"statefulset-controller",
	"replicaset-controller",
	"deployment-controller",
	"job-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"node-lifecycle-controller",
}

// Zones are the topology.kubernetes.io/zone labels of the fake nodes, given
// in turn, by default.
var Zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// Node annotations and labels that kwok and the controllers read.
const (
	// KwokNodeAnnotation marks the nodes whose pods kwok runs.
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	// ZoneLabel is the zone of a node, which the EndpointSlice controller
	// copies into the endpoints of its pods.
	ZoneLabel = "topology.kubernetes.io/zone"
)

// startControllers starts kube-controller-manager, kube-scheduler and kwok,
// creates the fake nodes and waits until they are Ready and schedulable and
// kwok gives pods addresses.
func (c *Cluster) startControllers(ctx context.Context) error {
	bins, err := controllerBins()
	if err != nil {
		return err
	}
	ports, err := testkit.FreePorts(3)
	if err != nil {
		return err
	}
	if err := c.startControllerManager(ctx, bins.controllerManager, ports[0]); err != nil {
		return err
	}
	if err := c.startScheduler(ctx, bins.scheduler, ports[1]); err != nil {
		return err
	}
	stages, err := c.writeKwokStages(bins.kwokStages)
	if err != nil {
		return err
	}
	if err := c.startKwok(bins.kwok, stages, ports[2]); err != nil {
		return err
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}
	if err := c.waitForNodes(ctx); err != nil {
		return err
	}
	return c.warmUpPodIPs(ctx)
}

// warmUpPodIPs has kwok give an address to a first pod, alone, and deletes
// it. kwok v0.8.0 makes its pool of pod addresses on first use without a
// lock (PodController.ipPool loads, then stores), so pods that get the first
// addresses at once, as a Parallel StatefulSet's do, can draw from two pools
// and get the same address.
//
// With a pod CIDR per family, each node has subnets of its own, each a pool:
// a first pod on each node then.
func (c *Cluster) warmUpPodIPs(ctx context.Context) error {
	nodes := 1
	if strings.Contains(c.opts.PodCIDR, ",") {
		nodes = c.opts.Nodes
	}
	for i := range nodes {
		if err := c.warmUpNode(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// warmUpNode has kwok give an address to a first pod on node i, and deletes
// it.
func (c *Cluster) warmUpNode(ctx context.Context, i int) error {
	grace := int64(0)
	pod := &core.Pod{
		ObjectMeta: meta.ObjectMeta{Name: "kwok-warm-up-" + strconv.Itoa(i), Namespace: meta.NamespaceSystem},
		Spec: core.PodSpec{
			NodeName:                      NodeName(i),
			Containers:                    []core.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
			TerminationGracePeriodSeconds: &grace,
		},
	}
	pods := c.Client.CoreV1().Pods(meta.NamespaceSystem)
	if _, err := pods.Create(ctx, pod, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.mu.Lock()
	kwok := c.kwok
	c.mu.Unlock()
	err := poll(ctx, kwok, func(ctx context.Context) error {
		p, err := pods.Get(ctx, pod.Name, meta.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.PodIP == "" {
			return fmt.Errorf("pod %s/%s has no address", p.Namespace, p.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return pods.Delete(ctx, pod.Name, meta.DeleteOptions{GracePeriodSeconds: &grace})
}

// startControllerManager starts kube-controller-manager with the
// controllers, as the admin, and waits until its /healthz is ok.
func (c *Cluster) startControllerManager(ctx context.Context, bin string, port int) error {
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + c.path("certs-kcm"),
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + c.path("sa.key"),
		"--use-service-account-credentials=false",
		// The 50 default lets a StatefulSet of a thousand pods wait on
		// the controllers' own rate limit rather than on the workload.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
	}
	p, err := c.startProcess("kube-controller-manager", bin, args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.controllerManager = p
	c.mu.Unlock()
	return poll(ctx, p, func(ctx context.Context) error { return healthz(ctx, port) })
}

// schedulerConfig is kube-scheduler's configuration: the admin kubeconfig,
// no rate limit to speak of, no leader election.
const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
`

// startScheduler starts kube-scheduler and waits until its /healthz is ok.
func (c *Cluster) startScheduler(ctx context.Context, bin string, port int) error {
	config := c.path("kube-scheduler.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(schedulerConfig, c.Kubeconfig)), 0o600); err != nil {
		return err
	}
	args := []string{
		"--config=" + config,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + c.path("certs-scheduler"),
	}
	p, err := c.startProcess("kube-scheduler", bin, args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.scheduler = p
	c.mu.Unlock()
	return poll(ctx, p, func(ctx context.Context) error { return healthz(ctx, port) })
}

// startKwok starts kwok for the nodes annotated kwok.x-k8s.io/node: fake,
// playing the stages file stages (see kwokStages), with pod addresses from Options.PodCIDR. Whether it runs
// shows in the nodes: waitForNodes.
func (c *Cluster) startKwok(bin, stages string, port int) error {
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--config=" + stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--cidr=" + strings.Split(c.opts.PodCIDR, ",")[0],
		"--node-ip=127.0.0.1",
		"--server-address=" + testkit.Addr(port),
	}
	p, err := c.startProcess("kwok", bin, args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.kwok = p
	c.mu.Unlock()
	return nil
}

// NodeName is the name of the fake node i.
func NodeName(i int) string { return "node-" + strconv.Itoa(i) }

// createNodes creates Options.Nodes fake nodes, node-0 and on, in the zones
// of Options.Zones in turn. kwok gives them their status.
func (c *Cluster) createNodes(ctx context.Context) error {
	for i := range c.opts.Nodes {
		name := NodeName(i)
		node := &core.Node{ObjectMeta: meta.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				ZoneLabel:                c.opts.Zones[i%len(c.opts.Zones)],
			},
		}}
		if cidrs := strings.Split(c.opts.PodCIDR, ","); len(cidrs) > 1 {
			for _, cidr := range cidrs {
				sub, err := nodeSubnet(cidr, i)
				if err != nil {
					return err
				}
				node.Spec.PodCIDRs = append(node.Spec.PodCIDRs, sub)
			}
			node.Spec.PodCIDR = node.Spec.PodCIDRs[0]
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

// nodeSubnet returns the subnet of node i in cidr: its i-th /24 for IPv4,
// its i-th /64 for IPv6, as node IPAM would give them.
func nodeSubnet(cidr string, i int) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		return "", err
	}
	bits := 64
	if p.Addr().Is4() {
		bits = 24
	}
	if p.Bits() > bits || bits-p.Bits() < 31 && i >= 1<<(bits-p.Bits()) {
		return "", fmt.Errorf("pod CIDR %s has no /%d subnet for node %d", cidr, bits, i)
	}
	b := p.Masked().Addr().AsSlice()
	// Add i to the address's first bits/8 bytes, as a big-endian number.
	carry := uint(i)
	for k := bits/8 - 1; k >= 0 && carry > 0; k-- {
		sum := uint(b[k]) + carry
		b[k] = byte(sum)
		carry = sum >> 8
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits).String(), nil
}

// waitForNodes waits until every fake node is Ready, which kwok does, and
// bears no taint, which the node-lifecycle controller removes once it sees
// it Ready: then the scheduler places pods on it.
func (c *Cluster) waitForNodes(ctx context.Context) error {
	check := func(ctx context.Context) error {
		for i := range c.opts.Nodes {
			n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName(i), meta.GetOptions{})
			if err != nil {
				return err
			}
			if !nodeReady(n) {
				return fmt.Errorf("node %s is not Ready", n.Name)
			}
			if len(n.Spec.Taints) > 0 {
				return fmt.Errorf("node %s has taints %v", n.Name, n.Spec.Taints)
			}
		}
		return nil
	}
	c.mu.Lock()
	kwok := c.kwok
	c.mu.Unlock()
	return poll(ctx, kwok, check)
}

// nodeReady reports whether n's Ready condition is True.
func nodeReady(n *core.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == core.NodeReady {
			return cond.Status == core.ConditionTrue
		}
	}
	return false
}

// healthz returns nil if https://127.0.0.1:port/healthz is ok, as
// kube-controller-manager and kube-scheduler serve it, with a self-signed
// certificate.
func healthz(ctx context.Context, port int) error {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // self-signed, on loopback
		DisableKeepAlives: true,
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	return getOK(ctx, hc, "https://"+testkit.Addr(port)+"/healthz", "")
}
