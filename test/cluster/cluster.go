// Package cluster starts a local Kubernetes control plane, etcd and
// kube-apiserver, for end-to-end tests. Without controllers or nodes by
// default, so that tests write every object the plugin reads; with
// Options.Controllers, kube-controller-manager, kube-scheduler and kwok,
// which runs the pods of fake nodes without a container runtime: the
// EndpointSlices are then the controllers'.
//
// Everything listens on 127.0.0.1, on ports picked at run time, so that
// several clusters can run at once. The API server authenticates a static
// admin token and serves a self-signed certificate.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configures a Cluster. The zero value is a single-stack IPv4
// cluster with RBAC authorization.
type Options struct {
	// AlwaysAllow authorizes every request, --authorization-mode=AlwaysAllow,
	// instead of RBAC.
	AlwaysAllow bool
	// ServiceCIDR is --service-cluster-ip-range, by default 10.96.0.0/16; a
	// dual-stack cluster has two, such as "10.96.0.0/16,fd00:10:96::/112".
	ServiceCIDR string
	// StartTimeout bounds Start and StartAPIServer, by default 60s.
	StartTimeout time.Duration
	// KeepDir keeps the work directory, with the logs, after Stop.
	KeepDir bool
	// Audit has the API server log the requests for services, namespaces,
	// EndpointSlices and ServiceImports, which AuditEvents reads.
	Audit bool
	// ExtraAPIServerArgs are appended to the kube-apiserver flags, so they
	// override the defaults.
	ExtraAPIServerArgs []string

	// Controllers runs kube-controller-manager (the EndpointSlice,
	// mirroring, StatefulSet, ReplicaSet, Deployment, Job, garbage
	// collector, namespace, service account and node lifecycle
	// controllers), kube-scheduler and kwok, with Nodes fake nodes; Start
	// returns once the nodes are Ready and schedulable. The first Start
	// builds them (see ControllerBinaries).
	Controllers bool
	// Nodes is how many fake nodes, node-0 and on, kwok runs the pods of:
	// by default 3 with Controllers. Nodes above 0 implies Controllers.
	Nodes int
	// Zones are the nodes' topology.kubernetes.io/zone labels, given in
	// turn; by default the three of the package's Zones.
	Zones []string
	// PodCIDR is where kwok takes pod addresses from, by default
	// 10.244.0.0/16, and 10.244.0.0/16,fd00:10:244::/56 when ServiceCIDR
	// is dual-stack. Nothing connects to them. With two, each node gets a
	// subnet of each (a /24, a /64) and its pods an address of each family.
	PodCIDR string
}

// withDefaults returns o with its zero fields defaulted.
func (o Options) withDefaults() Options {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/16"
	}
	if o.Nodes > 0 {
		o.Controllers = true
	}
	if o.Controllers && o.Nodes == 0 {
		o.Nodes = 3
	}
	if len(o.Zones) == 0 {
		o.Zones = Zones
	}
	if o.PodCIDR == "" {
		o.PodCIDR = "10.244.0.0/16"
		if strings.Contains(o.ServiceCIDR, ",") {
			o.PodCIDR = "10.244.0.0/16,fd00:10:244::/56"
		}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
		if o.Controllers {
			o.StartTimeout = 2 * time.Minute
		}
	}
	return o
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig file for the cluster.
	Kubeconfig string
	// Server is the URL of the API server, https://127.0.0.1:port.
	Server string
	// Token is the admin bearer token, in the group system:masters.
	Token string
	// Dir is the work directory: etcd data, certificates, keys, logs.
	Dir string
	// Client is an admin clientset built from RESTConfig.
	Client kubernetes.Interface
	// RESTConfig is the admin client configuration; it does not rate limit.
	RESTConfig *rest.Config

	opts                  Options
	etcdBin, apiserverBin string
	etcdURL               string
	port                  int // of the API server

	mu                           sync.Mutex
	etcd                         *testkit.Process
	apiserver                    *testkit.Process
	controllerManager, scheduler *testkit.Process
	kwok                         *testkit.Process
	stopped                      bool
}

// Start starts etcd and kube-apiserver, building them first if needed (see
// Binaries), and returns once the API server is ready. Call Stop when done.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := testkit.Supported(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	etcdBin, apiserverBin, err := Binaries()
	if err != nil {
		return nil, err
	}
	if opts.Controllers {
		if _, err := controllerBins(); err != nil {
			return nil, err
		}
	}
	// A port picked free can be taken before the server binds it: retry.
	for range 3 {
		var c *Cluster
		c, err = start(ctx, opts, etcdBin, apiserverBin)
		if !errors.Is(err, errAddrInUse) {
			return c, err
		}
	}
	return nil, err
}

// start starts a cluster in a new work directory, cleaning up on failure.
func start(ctx context.Context, opts Options, etcdBin, apiserverBin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "headless-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, opts: opts, etcdBin: etcdBin, apiserverBin: apiserverBin}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// start writes the files the servers need, starts them and builds the
// clients.
func (c *Cluster) start(ctx context.Context) error {
	if err := c.prepare(); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	if c.opts.Controllers {
		return c.startControllers(ctx)
	}
	return nil
}

// prepare picks the API server's port and writes its token and key files.
func (c *Cluster) prepare() error {
	var err error
	if c.port, err = testkit.FreePort(); err != nil {
		return err
	}
	c.Server = "https://" + testkit.Addr(c.port)
	if c.Token, err = newToken(); err != nil {
		return err
	}
	if err := writeTokenFile(c.path("tokens.csv"), c.Token); err != nil {
		return err
	}
	return writeServiceAccountKey(c.path("sa.key"))
}

// connect writes the admin kubeconfig and builds the admin clients.
func (c *Cluster) connect() error {
	c.Kubeconfig = c.path("kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, "admin", c.Token); err != nil {
		return err
	}
	c.RESTConfig = &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             -1, // no client-side rate limit
		UserAgent:       "headless-e2e",
	}
	client, err := kubernetes.NewForConfig(c.RESTConfig)
	c.Client = client
	return err
}

// Stop stops kwok, the scheduler and the controller manager if they run,
// the API server, then etcd, and removes the work directory
// unless Options.KeepDir. It can be called more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.kwok.Stop()
	c.scheduler.Stop()
	c.controllerManager.Stop()
	c.apiserver.Stop()
	c.etcd.Stop()
	if !c.opts.KeepDir {
		os.RemoveAll(c.Dir)
	}
}

// Logs returns the paths of the etcd and kube-apiserver log files, and
// those of the controllers with Options.Controllers.
func (c *Cluster) Logs() string {
	s := fmt.Sprintf("etcd: %s, kube-apiserver: %s", c.path("etcd.log"), c.path("kube-apiserver.log"))
	if c.opts.Controllers {
		for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kwok"} {
			s += fmt.Sprintf(", %s: %s", name, c.path(name+".log"))
		}
	}
	return s
}

// path returns the path of name in the work directory.
func (c *Cluster) path(name string) string {
	return filepath.Join(c.Dir, name)
}
