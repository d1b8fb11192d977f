package reliability

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	rbac "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// leastPrivilege is the ClusterRole the plugin needs: list and watch of
// services and EndpointSlices, nothing else.
var leastPrivilege = []rbac.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// TestLeastPrivilege runs the server as a ServiceAccount that may only list
// and watch services and EndpointSlices: it must serve the seed and another
// namespace. As an account without any binding it must say in its log that
// it is forbidden, and not become ready.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	exclusive(t)
	ctx := context.Background()
	c := shared.cluster
	const saNS, role = "dns-system", "headless-dns-reliability"

	o := testkit.Consul("default")
	o.Add(testkit.Objects{
		Services: []*core.Service{testkit.Headless("rbac-other", "web")},
		Slices: []*discovery.EndpointSlice{testkit.Slice("rbac-other", "web", "web-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, testkit.Endpoint("10.120.0.1", "web-0"))},
	})
	if err := testkit.Apply(ctx, c.Client, o); err != nil {
		t.Fatal(err)
	}
	allowed, err := c.ServiceAccountKubeconfig(ctx, saNS, "headless")
	if err != nil {
		t.Fatal(err)
	}
	denied, err := c.ServiceAccountKubeconfig(ctx, saNS, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbac.ClusterRole{ObjectMeta: meta.ObjectMeta{Name: role}, Rules: leastPrivilege}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, cr, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	crb := &rbac.ClusterRoleBinding{
		ObjectMeta: meta.ObjectMeta{Name: role},
		RoleRef:    rbac.RoleRef{APIGroup: rbac.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbac.Subject{{Kind: rbac.ServiceAccountKind, Namespace: saNS, Name: "headless"}},
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	// RBAC takes effect within a moment: wait for it, so that the server
	// does not start forbidden.
	saConfig, err := clientcmd.BuildConfigFromFlags("", allowed)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the role to take effect", func() (bool, string) {
		if _, err := sa.CoreV1().Services("").List(ctx, meta.ListOptions{Limit: 1}); err != nil {
			return false, err.Error()
		}
		_, err := sa.DiscoveryV1().EndpointSlices("").List(ctx, meta.ListOptions{Limit: 1})
		return err == nil, fmt.Sprint(err)
	})

	const consul = "consul-server.default.svc.cluster.local."
	const other = "web.rbac-other.svc.cluster.local."
	seed := func(s *server) func() (bool, string) {
		return func() (bool, string) {
			for _, q := range []struct {
				n    named
				want int
			}{
				{named{consul, dns.TypeA}, 3}, {named{consul, dns.TypeSRV}, 15},
				{named{"consul-server-2." + consul, dns.TypeA}, 1}, {named{reverse(t, testkit.ConsulIPs[2]), dns.TypePTR}, 1},
			} {
				r := testkit.Query(t, "udp", s.addr, q.n.name, q.n.qtype)
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != q.want {
					return false, fmt.Sprintf("%s: %s", q.n, r)
				}
			}
			return true, ""
		}
	}

	t.Run("allowed", func(t *testing.T) {
		s := startServer(t, serverOptions{Kubeconfig: allowed, Ready: true})
		testkit.Eventually(t, 30*time.Second, "the seed", seed(s))
		testkit.Eventually(t, 30*time.Second, "/ready 200", func() (bool, string) {
			code := s.readyStatus()
			return code == http.StatusOK, fmt.Sprint(code)
		})
		if r := testkit.Query(t, "udp", s.addr, other, dns.TypeA); len(r.Answer) != 1 {
			t.Errorf("%s: %s", other, r)
		}
		if l := s.Lines("forbidden"); len(l) > 0 {
			t.Errorf("forbidden with list and watch: %s", l[0])
		}
	})

	t.Run("denied", func(t *testing.T) {
		s := startServer(t, serverOptions{Kubeconfig: denied, Ready: true, Metrics: true, StartupTimeout: "2s"})
		var forbidden []string
		s.Eventually(t, liveness, "a forbidden error in the log", func() (bool, string) {
			forbidden = s.Lines("forbidden")
			return len(forbidden) > 0, s.Tail(10)
		})
		t.Logf("logged: %s", strings.TrimSpace(forbidden[0]))
		if !strings.Contains(forbidden[0], "plugin/headless") || !strings.Contains(forbidden[0], "list") {
			t.Errorf("the error does not name the plugin and what it needs: %s", forbidden[0])
		}
		// Refused again and again, it is never ready: two more rounds of
		// its watches, each attempt refused twice (the watch list, then the
		// list it falls back to).
		s.awaitRequests(t, "403", s.requests(t, "403"), 2*2*watches, func() {
			if code := s.readyStatus(); code == http.StatusOK {
				t.Fatal("/ready is 200 without permission to list")
			}
		})
		if code, body := testkit.Get(s.ready); code == http.StatusOK || !strings.Contains(body, "headless") {
			t.Errorf("/ready: %d %q, want an error naming headless", code, body)
		}
		// Unsynced, it does not deny names it cannot know.
		if r := testkit.Query(t, "udp", s.addr, consul, dns.TypeA); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s without permission: %s, want SERVFAIL", consul, dns.RcodeToString[r.Rcode])
		}
		s.alive(t)
	})
}
