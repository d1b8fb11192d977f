package cluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	authn "k8s.io/api/authentication/v1"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/mcs-api/config/crd"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
)

const (
	testNamespace = "e2e"
	testService   = "web"
)

func TestCluster(t *testing.T) {
	ctx := t.Context()
	begin := time.Now()
	c, err := Start(ctx, Options{Audit: true})
	testkit.Require(t, err)
	t.Cleanup(c.Stop)
	t.Logf("started in %v; logs %s", time.Since(begin).Round(time.Millisecond), c.Logs())

	for range 2 { // the second time it exists already
		if err := c.EnsureNamespace(ctx, testNamespace); err != nil {
			t.Fatal(err)
		}
	}
	createObjects(ctx, t, c.Client)
	checkObjects(ctx, t, c.Client)
	checkKubeconfig(ctx, t, c)
	checkServiceAccount(ctx, t, c)
	checkRestart(ctx, t, c)
	checkAudit(t, c, begin)
	checkCRDs(ctx, t, c)

	c.Stop()
	c.Stop()
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s after Stop: %v", c.Dir, err)
	}
}

// testObjects returns a headless Service and its EndpointSlice, with one
// ready endpoint.
func testObjects() (*core.Service, *discovery.EndpointSlice) {
	svc := testkit.Headless(testNamespace, testService, testkit.ServicePort("http", 80, core.ProtocolTCP))
	slice := testkit.Slice(testNamespace, testService, testService+"-abc", discovery.AddressTypeIPv4,
		[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, testkit.Ready(testkit.Endpoint("10.0.0.1", "pod-a"), true))
	return svc, slice
}

// createObjects creates the objects of testObjects.
func createObjects(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	t.Helper()
	svc, slice := testObjects()
	if _, err := client.CoreV1().Services(testNamespace).Create(ctx, svc, meta.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices(testNamespace).Create(ctx, slice, meta.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkObjects reads back what createObjects created.
func checkObjects(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	t.Helper()
	svc, err := client.CoreV1().Services(testNamespace).Get(ctx, testService, meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != core.ClusterIPNone || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 {
		t.Errorf("service: clusterIP %q, ports %+v", svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	checkSlice(ctx, t, client)
}

// checkSlice reads back the EndpointSlice of createObjects.
func checkSlice(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	t.Helper()
	_, want := testObjects()
	got, err := client.DiscoveryV1().EndpointSlices(testNamespace).Get(ctx, want.Name, meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want.Labels {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, got.Labels[k], v)
		}
	}
	if len(got.Endpoints) != 1 || len(got.Endpoints[0].Addresses) != 1 {
		t.Fatalf("endpoints %+v", got.Endpoints)
	}
	ep := got.Endpoints[0]
	if ep.Addresses[0] != "10.0.0.1" || ep.Hostname == nil || *ep.Hostname != "pod-a" {
		t.Errorf("endpoint %+v", ep)
	}
	if len(got.Ports) != 1 || *got.Ports[0].Port != 80 || *got.Ports[0].Name != "http" {
		t.Errorf("ports %+v", got.Ports)
	}
}

// checkKubeconfig checks that the admin kubeconfig file works.
func checkKubeconfig(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != c.Server {
		t.Errorf("kubeconfig server %q, want %q", cfg.Host, c.Server)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	if _, err := client.CoreV1().Namespaces().Get(ctx, testNamespace, meta.GetOptions{}); err != nil {
		t.Error(err)
	}
}

// checkServiceAccount checks that a service account kubeconfig authenticates
// as the account, which RBAC allows nothing.
func checkServiceAccount(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	path, err := c.ServiceAccountKubeconfig(ctx, "dns", "headless")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authn.SelfSubjectReview{}, meta.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u, want := review.Status.UserInfo.Username, "system:serviceaccount:dns:headless"; u != want {
		t.Errorf("user %q, want %q", u, want)
	}
	_, err = client.DiscoveryV1().EndpointSlices("").List(ctx, meta.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("list endpointslices as a service account: %v, want forbidden", err)
	}
}

// checkRestart checks that the API is down between StopAPIServer and
// StartAPIServer, and that the data survives.
func checkRestart(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	c.StopAPIServer()
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Get(down, testNamespace, meta.GetOptions{}); err == nil {
		t.Fatal("API server answers after StopAPIServer")
	}
	begin := time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(begin).Round(time.Millisecond))
	checkObjects(ctx, t, c.Client)
}

// checkAudit checks that the audit log has the creation of the test service.
func checkAudit(t *testing.T, c *Cluster, since time.Time) {
	t.Helper()
	events, err := c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Verb == "create" && e.ObjectRef.Resource == "services" && e.ObjectRef.Namespace == testNamespace && !e.Received.Before(since) {
			return
		}
	}
	t.Errorf("the creation of service %s/%s is not among the %d events of the audit log", testNamespace, testService, len(events))
}

// checkCRDs installs the definition of the ServiceImports of the
// Multi-Cluster Services API, twice, and creates one.
func checkCRDs(ctx context.Context, t *testing.T, c *Cluster) {
	t.Helper()
	for range 2 { // the second time it exists already
		if err := c.InstallCRDs(ctx, crd.ServiceImportCRD); err != nil {
			t.Fatal(err)
		}
	}
	client := mcsclient.NewForConfigOrDie(c.RESTConfig)
	si := &mcs.ServiceImport{
		ObjectMeta: meta.ObjectMeta{Name: testService, Namespace: testNamespace},
		Spec:       mcs.ServiceImportSpec{Type: mcs.Headless, Ports: []mcs.ServicePort{}},
	}
	if _, err := client.MulticlusterV1alpha1().ServiceImports(testNamespace).Create(ctx, si, meta.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := client.MulticlusterV1alpha1().ServiceImports(testNamespace).Get(ctx, testService, meta.GetOptions{})
	if err != nil || got.Spec.Type != mcs.Headless {
		t.Errorf("ServiceImport %+v: %v", got, err)
	}
}
