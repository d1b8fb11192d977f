package cluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	authn "k8s.io/api/authentication/v1"
	core "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/mcs-api/config/crd"
)

// TestCluster checks what the tests take from the harness without checking
// it themselves: the kubeconfig files, an account that RBAC allows nothing,
// an API server that is down between StopAPIServer and StartAPIServer and
// keeps its data, the audit log, the CRDs, and a Stop that cleans up. The
// rest (objects, controllers, nodes and zones) the e2e tests check.
func TestCluster(t *testing.T) {
	ctx := t.Context()
	begin := time.Now()
	c, err := Start(ctx, Options{Audit: true})
	testkit.Require(t, err)
	t.Cleanup(c.Stop)
	t.Logf("started in %v; logs %s", time.Since(begin).Round(time.Millisecond), c.Logs())
	for range 2 { // the second time they exist already
		if err := c.EnsureNamespace(ctx, "e2e"); err != nil {
			t.Fatal(err)
		}
		if err := c.InstallCRDs(ctx, crd.ServiceImportCRD); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Client.CoreV1().Services("e2e").Create(ctx, testkit.Headless("e2e", "web"), meta.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := func(kubeconfig string) kubernetes.Interface {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	if _, err := client(c.Kubeconfig).CoreV1().Services("e2e").Get(ctx, "web", meta.GetOptions{}); err != nil {
		t.Errorf("with the admin kubeconfig: %v", err)
	}
	path, err := c.ServiceAccountKubeconfig(ctx, "dns", "headless")
	if err != nil {
		t.Fatal(err)
	}
	sa := client(path)
	review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authn.SelfSubjectReview{}, meta.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username != "system:serviceaccount:dns:headless" {
		t.Errorf("the service account kubeconfig: %+v, %v", review, err)
	}
	if _, err = sa.DiscoveryV1().EndpointSlices("").List(ctx, meta.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list endpointslices as a service account: %v, want forbidden", err)
	}

	c.StopAPIServer()
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Get(down, "e2e", meta.GetOptions{}); err == nil {
		t.Fatal("API server answers after StopAPIServer")
	}
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if svc, err := c.Client.CoreV1().Services("e2e").Get(ctx, "web", meta.GetOptions{}); err != nil || svc.Spec.ClusterIP != core.ClusterIPNone {
		t.Errorf("after a restart: %+v, %v", svc, err)
	}
	events, err := c.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	created := false
	for _, e := range events {
		created = created || e.Verb == "create" && e.ObjectRef.Resource == "services" && e.ObjectRef.Namespace == "e2e"
	}
	if !created {
		t.Errorf("the creation of service e2e/web is not among the %d events of the audit log", len(events))
	}

	c.Stop()
	c.Stop()
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s after Stop: %v", c.Dir, err)
	}
}
