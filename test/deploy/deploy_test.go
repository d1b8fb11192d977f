// Package deploy tests the manifests of deploy/: kubectl applies them to a
// real kube-apiserver, and the CoreDNS binary runs their Corefile as their
// ServiceAccount, so that the ClusterRole is what authorizes it.
package deploy

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	rbac "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const (
	image     = "headlessdns/coredns:v1.15.0-headless"
	namespace = "kube-system"
)

// applied are the objects of deploy/ as `kubectl apply -o name` names them.
var applied = []string{
	"clusterrole.rbac.authorization.k8s.io/system:coredns",
	"clusterrolebinding.rbac.authorization.k8s.io/system:coredns",
	"configmap/coredns",
	"deployment.apps/coredns",
	"service/kube-dns",
	"serviceaccount/coredns",
}

// allowed is what the ClusterRole grants, as group/resource/verb: what the
// headless and kubernetes plugins of the Corefile need, and nothing more.
var allowed = []string{
	"/namespaces/list", "/namespaces/watch",
	"/services/list", "/services/watch",
	"discovery.k8s.io/endpointslices/list", "discovery.k8s.io/endpointslices/watch",
}

// TestDeploy applies deploy/ to a fresh cluster, runs its Corefile as its
// ServiceAccount, and migrates a stock kubeadm CoreDNS to deploy/ and back.
// (An account without a role: TestLeastPrivilege, test/reliability.)
func TestDeploy(t *testing.T) {
	testkit.Require(t, testkit.Supported())
	if !strings.Contains(stock, "clusterIP: "+stockIP+"\n") {
		t.Fatalf("kube-dns of testdata/kubeadm-coredns.yaml is not at %s", stockIP)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin, err := testkit.Binary()
	if err != nil {
		t.Fatal(err)
	}
	c, k, dir := startCluster(ctx, t)

	t.Run("Kustomize", func(t *testing.T) { testKustomize(t, k, dir) })
	if !t.Run("Apply", func(t *testing.T) { testApply(ctx, t, c, k, dir) }) {
		t.FailNow()
	}
	t.Run("ServeAsServiceAccount", func(t *testing.T) { testServe(ctx, t, c, bin) })
	t.Run("MigrateAndRollBack", func(t *testing.T) { testMigrate(ctx, t, c, k, dir) })
}

// testKustomize checks what needs no cluster: the image can be set with
// kustomize images:, and headless answers with the TTL of kubernetes.
func testKustomize(t *testing.T, k *kubectl, dir string) {
	overlay := t.TempDir()
	base, err := filepath.Rel(overlay, dir) // kustomize takes no absolute path
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`resources:
- %s
images:
- name: headlessdns/coredns
  newName: registry.example.com/dns/coredns
  newTag: v9.9.9
`, base)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := k.run(nil, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "image: "+image+"\n") {
		t.Errorf("the base does not run %s:\n%s", image, out)
	}
	out, err = k.run(nil, "kustomize", overlay)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "image: registry.example.com/dns/coredns:v9.9.9\n") || strings.Contains(out, image) {
		t.Errorf("kustomize images: does not set the image:\n%s", out)
	}

	corefile, err := os.ReadFile(filepath.Join(dir, "Corefile"))
	if err != nil {
		t.Fatal(err)
	}
	h, kube := ttl(t, string(corefile), "headless"), ttl(t, string(corefile), "kubernetes")
	if h != kube {
		t.Errorf("headless answers with ttl %s and kubernetes with ttl %s: the answers differ", h, kube)
	}
}

// testApply applies deploy/ with --dry-run=server, then for real, and checks
// the objects.
func testApply(ctx context.Context, t *testing.T, c *cluster.Cluster, k *kubectl, dir string) {
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	out, err := k.run(nil, "apply", "-k", dir, "--dry-run=server", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "apply --dry-run=server", out)
	if _, err := c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, "coredns", meta.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after a dry run, the ConfigMap: %v, want not found", err)
	}
	out, err = k.run(nil, "apply", "-k", dir, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "apply", out)
	checkObjects(ctx, t, c, dir)
}

// checkNames compares the names kubectl printed with applied.
func checkNames(t *testing.T, what, out string) {
	t.Helper()
	got := strings.Fields(out)
	slices.Sort(got)
	if !slices.Equal(got, applied) {
		t.Fatalf("%s: objects\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(applied, "\n"))
	}
}

// checkObjects reads back the applied objects and checks what makes them a
// working cluster DNS.
func checkObjects(ctx context.Context, t *testing.T, c *cluster.Cluster, dir string) {
	t.Helper()
	client := c.Client
	if _, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, "coredns", meta.GetOptions{}); err != nil {
		t.Error(err)
	}

	role, err := client.RbacV1().ClusterRoles().Get(ctx, "system:coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := grants(role.Rules); !slices.Equal(got, allowed) {
		t.Errorf("ClusterRole grants\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(allowed, "\n"))
	}
	binding, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "system:coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := rbac.Subject{Kind: "ServiceAccount", Name: "coredns", Namespace: namespace}
	if binding.RoleRef != (rbac.RoleRef{APIGroup: rbac.GroupName, Kind: "ClusterRole", Name: role.Name}) ||
		len(binding.Subjects) != 1 || binding.Subjects[0] != wantSubject {
		t.Errorf("ClusterRoleBinding binds %+v to %+v", binding.RoleRef, binding.Subjects)
	}

	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	corefile, err := os.ReadFile(filepath.Join(dir, "Corefile"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["Corefile"] != string(corefile) {
		t.Errorf("ConfigMap Corefile:\n%s\nwant deploy/Corefile:\n%s", cm.Data["Corefile"], corefile)
	}

	d, err := client.AppsV1().Deployments(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	check := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf("Deployment: "+format, args...)
		}
	}
	check(d.Spec.Replicas != nil && *d.Spec.Replicas == 2, "replicas %v, want 2", d.Spec.Replicas)
	check(d.Spec.Selector != nil && len(d.Spec.Selector.MatchExpressions) == 0 &&
		labels.Equals(d.Spec.Selector.MatchLabels, map[string]string{"k8s-app": "kube-dns"}),
		"selector %v, want the stock k8s-app=kube-dns (a selector cannot change)", d.Spec.Selector)
	check(pod.ServiceAccountName == "coredns", "serviceAccountName %q", pod.ServiceAccountName)
	check(pod.PriorityClassName == "system-cluster-critical", "priorityClassName %q", pod.PriorityClassName)
	check(pod.DNSPolicy == core.DNSDefault, "dnsPolicy %q, want Default", pod.DNSPolicy)
	check(spreads(pod), "replicas are not spread across nodes (kubernetes.io/hostname)")
	psc := pod.SecurityContext
	check(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser != nil && *psc.RunAsUser > 0,
		"the pod does not run as a numeric non-root user: %+v", psc)
	var volume string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			volume = v.Name
		}
	}
	check(volume != "", "no volume of the ConfigMap %s", cm.Name)
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	check(ctr.Image == image, "image %q, want %q", ctr.Image, image)
	check(slices.Equal(ctr.Args, []string{"-conf", "/etc/coredns/Corefile"}), "args %q", ctr.Args)
	check(slices.ContainsFunc(ctr.VolumeMounts, func(m core.VolumeMount) bool {
		return m.Name == volume && m.MountPath == "/etc/coredns"
	}), "the Corefile is not mounted at /etc/coredns: %+v", ctr.VolumeMounts)
	check(probes(ctr.ReadinessProbe, "/ready", 8181), "readiness probe %+v, want GET :8181/ready", ctr.ReadinessProbe)
	check(probes(ctr.LivenessProbe, "/health", 8080), "liveness probe %+v, want GET :8080/health", ctr.LivenessProbe)
	req, limit := ctr.Resources.Requests[core.ResourceMemory], ctr.Resources.Limits[core.ResourceMemory]
	check(!req.IsZero() && !limit.IsZero() && req.Cmp(limit) <= 0, "memory request %s and limit %s", &req, &limit)
	check(ctr.Resources.Requests.Cpu().Cmp(resource.MustParse("1m")) >= 0, "no cpu request")
	sc := ctr.SecurityContext
	check(sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem &&
		sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && sc.Capabilities != nil &&
		slices.Equal(sc.Capabilities.Drop, []core.Capability{"ALL"}) &&
		slices.Equal(sc.Capabilities.Add, []core.Capability{"NET_BIND_SERVICE"}),
		"container securityContext %+v", sc)

	svc, err := client.CoreV1().Services(namespace).Get(ctx, "kube-dns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkService(t, svc)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the pods, labelled %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
}

// checkService checks the kube-dns Service: the stock labels and ports, and an
// address.
func checkService(t *testing.T, svc *core.Service) {
	t.Helper()
	for k, v := range map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"} {
		if svc.Labels[k] != v {
			t.Errorf("Service label %s=%q, want %q", k, svc.Labels[k], v)
		}
	}
	if !labels.Equals(svc.Spec.Selector, map[string]string{"k8s-app": "kube-dns"}) {
		t.Errorf("Service selector %v", svc.Spec.Selector)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s %d/%s->%s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	want := []string{"dns 53/UDP->53", "dns-tcp 53/TCP->53", "metrics 9153/TCP->9153"}
	if !slices.Equal(ports, want) {
		t.Errorf("Service ports %q, want %q", ports, want)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == core.ClusterIPNone {
		t.Errorf("Service clusterIP %q", svc.Spec.ClusterIP)
	}
}

// grants returns what rules allow as sorted group/resource/verb strings.
func grants(rules []rbac.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			out = append(out, fmt.Sprintf("unexpected rule %+v", r))
			continue
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+"/"+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// spreads reports whether the pod spec keeps replicas on different nodes.
func spreads(pod core.PodSpec) bool {
	for _, c := range pod.TopologySpreadConstraints {
		if c.TopologyKey == core.LabelHostname {
			return true
		}
	}
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == core.LabelHostname {
				return true
			}
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if w.PodAffinityTerm.TopologyKey == core.LabelHostname {
				return true
			}
		}
	}
	return false
}

// probes reports whether p is an HTTP GET of path on port.
func probes(p *core.Probe, path string, port int) bool {
	return p != nil && p.HTTPGet != nil && p.HTTPGet.Path == path && p.HTTPGet.Port.IntValue() == port
}

// testServe runs the Corefile of the applied ConfigMap, rewritten to listen on
// loopback and to reach the test cluster as the ServiceAccount of deploy/, and
// checks that it serves the seed objects: the ClusterRole is enough.
func testServe(ctx context.Context, t *testing.T, c *cluster.Cluster, bin string) {
	// consul-ui selects consul-server-0 too, which stable_ptr leaves out of
	// its PTR.
	o := testkit.Consul("default")
	o.Add(testkit.Objects{
		Services: []*core.Service{testkit.ClusterIP("default", "consul-ui", testkit.ServicePort("http", 8500, core.ProtocolTCP))},
		Slices: []*discovery.EndpointSlice{testkit.Slice("default", "consul-ui", "consul-ui-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{testkit.Port("http", 8500, core.ProtocolTCP)}, testkit.Endpoint(testkit.ConsulIPs[0], ""))},
	})
	if err := testkit.Apply(ctx, c.Client, o); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := c.ServiceAccountKubeconfig(ctx, namespace, "coredns")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := testkit.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr, healthAddr, readyAddr, metricsAddr := testkit.Addr(ports[0]), testkit.Addr(ports[1]), testkit.Addr(ports[2]), testkit.Addr(ports[3])
	cf := cm.Data["Corefile"]
	cf = replaceOnce(t, cf, ".:53 {", fmt.Sprintf(".:%d {\n    bind 127.0.0.1", ports[0]))
	cf = replaceOnce(t, cf, "    health {", "    health "+healthAddr+" {")
	cf = replaceOnce(t, cf, "\n    ready\n", "\n    ready "+readyAddr+"\n")
	cf = replaceOnce(t, cf, "prometheus :9153", "prometheus "+metricsAddr)
	for _, p := range []string{"headless", "kubernetes"} {
		block := p + " cluster.local in-addr.arpa ip6.arpa {"
		cf = replaceOnce(t, cf, block, block+"\n        kubeconfig "+kubeconfig)
	}
	t.Logf("Corefile:\n%s", cf)

	srv, err := testkit.Start(ctx, bin, cf, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	const name = "consul-server.default.svc.cluster.local."
	want := slices.Sorted(slices.Values(testkit.ConsulIPs))
	srv.Eventually(t, 20*time.Second, "the seed objects in DNS", func() (bool, string) {
		r, err := testkit.Exchange("udp", dnsAddr, testkit.NewQuery(name, dns.TypeA))
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(addresses(r), want), r.String()
	})
	for _, network := range []string{"udp", "tcp"} {
		r, err := testkit.Exchange(network, dnsAddr, testkit.NewQuery(name, dns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		if got := addresses(r); r.Rcode != dns.RcodeSuccess || !r.Authoritative || !slices.Equal(got, want) {
			t.Errorf("%s A over %s: rcode %s, aa %v, addresses %v, want NOERROR, aa, %v",
				name, network, dns.RcodeToString[r.Rcode], r.Authoritative, got, want)
		}
		for _, rr := range r.Answer {
			if rr.Header().Ttl > 30 {
				t.Errorf("%s over %s: ttl %d above the Corefile's 30", name, network, rr.Header().Ttl)
			}
		}
		// negative_ttl 5: a pod not there yet is denied for 5 s, not 30.
		if r = testkit.Query(t, network, dnsAddr, "consul-server-9."+name, dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 5 {
			t.Errorf("consul-server-9.%s over %s: %s, want NXDOMAIN with the SOA for negative_ttl 5", name, network, r)
		}
	}
	// The kubernetes plugin, behind headless, answers for the kube-dns
	// Service of deploy/ as the same ServiceAccount.
	svc, err := c.Client.CoreV1().Services(namespace).Get(ctx, "kube-dns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Eventually(t, 20*time.Second, "kube-dns in DNS through the kubernetes plugin", func() (bool, string) {
		r, err := testkit.Exchange("udp", dnsAddr, testkit.NewQuery("kube-dns.kube-system.svc.cluster.local.", dns.TypeA))
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(addresses(r), []string{svc.Spec.ClusterIP}), r.String()
	})
	rev, _ := dns.ReverseAddr(testkit.ConsulIPs[0])
	for _, network := range []string{"udp", "tcp"} {
		if r := testkit.Query(t, network, dnsAddr, rev, dns.TypePTR); len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\tconsul-server-0."+name) {
			t.Errorf("PTR of consul-server-0 over %s: %v, want its stable name alone (stable_ptr)", network, r.Answer)
		}
	}

	srv.Eventually(t, 20*time.Second, "/ready to answer 200", func() (bool, string) {
		code, body := testkit.Get("http://" + readyAddr + "/ready")
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := testkit.Get("http://" + healthAddr + "/health"); code != 200 {
		t.Errorf("/health: %d %s", code, body)
	}
	metrics := map[string]string{}
	srv.Eventually(t, 20*time.Second, "the headless gauges in /metrics", func() (bool, string) {
		code, body := testkit.Get("http://" + metricsAddr + "/metrics")
		for _, l := range strings.Split(body, "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "coredns_headless_") {
				metrics[f[0]] = f[1]
			}
		}
		return code == 200 && metrics["coredns_headless_services"] != "", fmt.Sprintf("%d %v", code, metrics)
	})
	if metrics["coredns_headless_services"] != "1" || metrics["coredns_headless_endpoints"] != "3" {
		t.Errorf("gauges %v, want coredns_headless_services 1 (consul-server) and coredns_headless_endpoints 3", metrics)
	}
	if lines := srv.Lines("forbidden"); len(lines) > 0 {
		t.Errorf("the ClusterRole of deploy/ is not enough:\n%s", strings.Join(lines, "\n"))
	}
}

// stockIP is the kube-dns address of the stock install, the tenth of the
// Service range as kubeadm picks it.
const stockIP = "10.96.0.10"

// stock is the CoreDNS that kubeadm installs, with stockIP for kube-dns.
//
//go:embed testdata/kubeadm-coredns.yaml
var stock string

// testMigrate replaces the applied objects with those of a stock kubeadm
// CoreDNS, then does what docs/operators.md tells an operator: back the stock
// objects up, apply deploy/ over them (the result must be deploy/ with the
// cluster's kube-dns address kept), and roll back from the backup.
func testMigrate(ctx context.Context, t *testing.T, c *cluster.Cluster, k *kubectl, dir string) {
	if _, err := k.run(nil, "delete", "-k", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := k.run(strings.NewReader(stock), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	backup, err := k.run(nil, "-n", namespace, "get", "-o", "json", "deployment/coredns", "configmap/coredns",
		"service/kube-dns", "serviceaccount/coredns", "clusterrole/system:coredns", "clusterrolebinding/system:coredns")
	if err != nil {
		t.Fatal(err)
	}

	out, err := k.run(nil, "apply", "-k", dir, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "apply over stock", out)
	checkObjects(ctx, t, c, dir)
	svc, err := c.Client.CoreV1().Services(namespace).Get(ctx, "kube-dns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != stockIP {
		t.Errorf("kube-dns clusterIP %s after apply, want the stock %s kept", svc.Spec.ClusterIP, stockIP)
	}
	d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		ports = append(ports, fmt.Sprintf("%s %d/%s", p.Name, p.ContainerPort, p.Protocol))
	}
	for _, p := range []string{"dns 53/UDP", "dns-tcp 53/TCP", "metrics 9153/TCP"} {
		if !slices.Contains(ports, p) {
			t.Errorf("Deployment ports after apply over stock %q, missing %s", ports, p)
		}
	}

	// Roll back: the backup without what would make kubectl apply a stale
	// update, the ConfigMap first.
	restore, err := forRestore(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.run(strings.NewReader(restore), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	cm, err := c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, "coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err = c.Client.AppsV1().Deployments(namespace).Get(ctx, "coredns", meta.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	role, err := c.Client.RbacV1().ClusterRoles().Get(ctx, "system:coredns", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc, err = c.Client.CoreV1().Services(namespace).Get(ctx, "kube-dns", meta.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if strings.Contains(cm.Data["Corefile"], "headless") || pod.Containers[0].Image != "registry.k8s.io/coredns/coredns:v1.14.6" ||
		len(pod.TopologySpreadConstraints) > 0 || !slices.Contains(grants(role.Rules), "/pods/watch") || svc.Spec.ClusterIP != stockIP {
		t.Errorf("after the roll back: image %s, spread %v, role %v, kube-dns %s, Corefile:\n%s",
			pod.Containers[0].Image, pod.TopologySpreadConstraints, grants(role.Rules), svc.Spec.ClusterIP, cm.Data["Corefile"])
	}
}

// forRestore returns the List that `kubectl get -o json` printed without the
// fields the jq of docs/operators.md deletes, ConfigMaps first.
func forRestore(list string) (string, error) {
	var l struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(list), &l); err != nil {
		return "", err
	}
	for _, item := range l.Items {
		m, _ := item["metadata"].(map[string]any)
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields"} {
			delete(m, f)
		}
		delete(item, "status")
	}
	rank := func(item map[string]any) int {
		if item["kind"] == "ConfigMap" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(l.Items, func(a, b map[string]any) int { return rank(a) - rank(b) })
	b, err := json.Marshal(l)
	return string(b), err
}
