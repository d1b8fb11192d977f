package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/monitoring"
	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	rbac "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// shortened are the thresholds and for durations of the shipped alert rules
// that TestOnCall makes short, by alert: each old text must occur once in
// the alert's rule, and nothing else of the rule changes.
var shortened = map[string][][2]string{
	"HeadlessDNSDataStale":              {{"> 300", "> 5"}, {"for: 1m", "for: 3s"}},
	"HeadlessDNSWatchFailing":           {{"for: 2m", "for: 3s"}},
	"HeadlessDNSNotSynced":              {{"for: 5m", "for: 3s"}},
	"HeadlessDNSProgrammingLatencyHigh": {{"[5m]))) > 5", "[5m]))) > 0"}, {"for: 10m", "for: 3s"}},
	"HeadlessDNSServfail":               {{"for: 2m", "for: 3s"}},
}

// shortRules returns the rules file with the substitutions of shortened.
func shortRules(t testing.TB, rules string) string {
	t.Helper()
	const head = "      - alert: "
	parts := strings.Split(rules, head)
	seen := 0
	for i, p := range parts[1:] {
		name, _, _ := strings.Cut(p, "\n")
		subs, ok := shortened[name]
		if !ok {
			t.Fatalf("alert %s has no shortened thresholds", name)
		}
		seen++
		for _, s := range subs {
			if n := strings.Count(p, s[0]); n != 1 {
				t.Fatalf("alert %s: %q occurs %d times, want once", name, s[0], n)
			}
			p = strings.Replace(p, s[0], s[1], 1)
		}
		parts[i+1] = p
	}
	if seen != len(shortened) {
		t.Fatalf("%d alerts in the rules file, %d shortened", seen, len(shortened))
	}
	return strings.Join(parts, head)
}

// TestOnCall runs Debian's Prometheus on two real CoreDNS servers with the
// shipped alert rules, their thresholds and for durations shortened, and
// checks what an operator on call would see. The first server is allowed
// everything; with the API server stopped, the staleness alert goes pending,
// then fires, while the server still answers over UDP and TCP; with the API
// server back, it resolves. The second is denied the Namespaces its
// namespace_labels needs: the watch-failure alert names that watch and the
// kind forbidden, and it is not synced and answers SERVFAIL, which fire
// their alerts too. Every query of the dashboard returns data.
func TestOnCall(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed: .ci/run installs Debian's prometheus")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	c := ownCluster(t, cluster.Options{})
	ctx := context.Background()
	if err := testkit.Apply(ctx, c.Client, testkit.Consul("default")); err != nil {
		t.Fatal(err)
	}
	ch := newChurn(t, c.Client)
	t.Cleanup(ch.stop) // before the control plane stops

	// A ServiceAccount that may list and watch Services and EndpointSlices,
	// not Namespaces.
	denied := deniedNamespaces(ctx, t, c)

	ports, err := testkit.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	start := func(block testkit.Block) *testkit.Server {
		s, err := testkit.Start(ctx, shared.bin, block.String(), time.Minute, block.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("coredns log:\n%s", s.Tail(100))
			}
			s.Stop()
		})
		return s
	}
	fresh := testkit.Block{Port: ports[0], Metrics: ports[1], Headless: true, Kubeconfig: c.Kubeconfig, StartupTimeout: "10s",
		Plugins: []string{"cache 5"}}
	start(fresh)
	refused := testkit.Block{Port: ports[2], Metrics: ports[3], Headless: true, Kubeconfig: denied, StartupTimeout: "1s",
		HeadlessOptions: []string{"namespace_labels team=dns"}}
	start(refused)
	freshInstance, refusedInstance := testkit.Addr(fresh.Metrics), testkit.Addr(refused.Metrics)

	p := startPrometheus(t, promBin, ports[4], []string{freshInstance, refusedInstance})

	// Questions to both, all along: answers, misses and hits of the cache,
	// SERVFAIL from the one that cannot sync.
	asking, stopAsking := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopAsking(); wg.Wait() })
	wg.Go(func() {
		for asking.Err() == nil {
			for _, n := range []string{"consul-server.default.svc.cluster.local.", "consul-server-1.consul-server.default.svc.cluster.local."} {
				testkit.Exchange("udp", fresh.Addr(), testkit.NewQuery(n, dns.TypeA))
				testkit.Exchange("udp", refused.Addr(), testkit.NewQuery(n, dns.TypeA))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	ch.start()
	p.waitAlert(t, "HeadlessDNSWatchFailing", map[string]string{"instance": refusedInstance, "watch": "namespaces", "kind": "forbidden"}, "firing")
	p.waitAlert(t, "HeadlessDNSNotSynced", map[string]string{"instance": refusedInstance}, "firing")
	p.waitAlert(t, "HeadlessDNSServfail", map[string]string{"instance": refusedInstance}, "firing")
	p.waitAlert(t, "HeadlessDNSProgrammingLatencyHigh", map[string]string{"job": "coredns"}, "firing")
	if a := p.alerts(t, "", map[string]string{"instance": freshInstance}); len(a) > 0 {
		t.Errorf("alerts for the server that is allowed everything, while its watches hear changes: %v", a)
	}
	p.dashboardHasData(t)

	// The API server stops: the data ages, the alert fires, the answers stay.
	// The states are recorded from before the stop, which takes the API
	// server a few seconds. What the server answers then is what the API
	// server held when the changes stopped.
	ch.stop()
	want := consulAddresses(ctx, t, c.Client)
	testkit.Eventually(t, liveness, "the last change served", func() (bool, string) {
		got := addresses(testkit.Query(t, "udp", fresh.Addr(), "consul-server.default.svc.cluster.local.", dns.TypeA))
		return slices.Equal(got, want), fmt.Sprintf("%q, want %q", got, want)
	})
	stale := map[string]string{"instance": freshInstance, "watch": "services"}
	states := p.recordStates(t, "HeadlessDNSDataStale", stale)
	c.StopAPIServer()
	p.waitAlert(t, "HeadlessDNSDataStale", stale, "firing")
	if got := states(); !slices.Equal(got, []string{"", "pending", "firing"}) {
		t.Errorf("HeadlessDNSDataStale went through %q, want none, pending, firing", got)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := testkit.Query(t, network, fresh.Addr(), "consul-server.default.svc.cluster.local.", dns.TypeA)
		if got := addresses(r); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("over %s with the API server stopped: %s %q, want %q", network, dns.RcodeToString[r.Rcode], got, want)
		}
	}
	screenshotting := os.Getenv("HEADLESS_DASHBOARD_PNG") != ""
	if screenshotting {
		time.Sleep(30 * time.Second) // a longer outage to draw, not a wait for a result
	}

	// Back: the watches hear from it again, the alert resolves.
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	ch.start()
	testkit.Eventually(t, liveness, "HeadlessDNSDataStale to resolve", func() (bool, string) {
		a := p.alerts(t, "HeadlessDNSDataStale", map[string]string{"instance": freshInstance})
		return len(a) == 0, fmt.Sprint(a)
	})

	if screenshotting {
		time.Sleep(30 * time.Second) // the recovery to draw
		screenshot(t, p, os.Getenv("HEADLESS_DASHBOARD_PNG"))
	}
}

// consulAddresses returns the ready addresses of the seed's slice in the API.
func consulAddresses(ctx context.Context, t testing.TB, client kubernetes.Interface) []string {
	t.Helper()
	s, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "consul-server-x7k2p", meta.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range s.Endpoints {
		out = append(out, e.Addresses...)
	}
	slices.Sort(out)
	return out
}

// addresses returns the addresses of the A records of r, sorted.
func addresses(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// leastPrivilege is the ClusterRole the plugin needs without
// namespace_labels: list and watch of services and EndpointSlices (the root
// package's TestWatchSelectors).
var leastPrivilege = []rbac.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// deniedNamespaces returns a kubeconfig of a ServiceAccount that may list
// and watch Services and EndpointSlices, not Namespaces, once RBAC says so.
func deniedNamespaces(ctx context.Context, t testing.TB, c *cluster.Cluster) string {
	t.Helper()
	const saNS, name = "dns-system", "headless-oncall"
	kubeconfig, err := c.ServiceAccountKubeconfig(ctx, saNS, name)
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbac.ClusterRole{ObjectMeta: meta.ObjectMeta{Name: name}, Rules: leastPrivilege}
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, cr, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	crb := &rbac.ClusterRoleBinding{
		ObjectMeta: meta.ObjectMeta{Name: name},
		RoleRef:    rbac.RoleRef{APIGroup: rbac.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbac.Subject{{Kind: rbac.ServiceAccountKind, Namespace: saNS, Name: name}},
	}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the role to take effect", func() (bool, string) {
		_, err := sa.CoreV1().Services("").List(ctx, meta.ListOptions{Limit: 1})
		return err == nil, fmt.Sprint(err)
	})
	return kubeconfig
}

// churn changes an object of each watch of the plugin every half second, so
// that every watch hears from the API server faster than the shortened
// staleness threshold, and the programming latency has samples: the
// EndpointSlice controller's slice gains and loses a ready endpoint, with
// the trigger time the controller would write.
type churn struct {
	t      testing.TB
	client kubernetes.Interface
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newChurn(t testing.TB, client kubernetes.Interface) *churn {
	ctx := context.Background()
	o := testkit.Objects{
		Services: []*core.Service{testkit.Selectorless("default", "manual")},
		Slices: []*discovery.EndpointSlice{testkit.ManagedBy(testkit.Slice("default", "manual", "manual-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{testkit.Port("http", 80, core.ProtocolTCP)}, testkit.Endpoint("10.130.0.1", "db-0")), "operator.example.com")},
	}
	if err := testkit.Apply(ctx, client, o); err != nil {
		t.Fatal(err)
	}
	return &churn{t: t, client: client}
}

func (c *churn) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			stamp := time.Now().Format(time.RFC3339Nano)
			c.touch(ctx, func(ctx context.Context) error {
				s, err := c.client.CoreV1().Services("default").Get(ctx, "manual", meta.GetOptions{})
				if err == nil {
					meta.SetMetaDataAnnotation(&s.ObjectMeta, "oncall.example.com/touched", stamp)
					_, err = c.client.CoreV1().Services("default").Update(ctx, s, meta.UpdateOptions{})
				}
				return err
			})
			c.touch(ctx, func(ctx context.Context) error {
				s, err := c.client.DiscoveryV1().EndpointSlices("default").Get(ctx, "manual-1", meta.GetOptions{})
				if err == nil {
					meta.SetMetaDataAnnotation(&s.ObjectMeta, "oncall.example.com/touched", stamp)
					_, err = c.client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, meta.UpdateOptions{})
				}
				return err
			})
			c.touch(ctx, func(ctx context.Context) error {
				s, err := c.client.DiscoveryV1().EndpointSlices("default").Get(ctx, "consul-server-x7k2p", meta.GetOptions{})
				if err == nil {
					meta.SetMetaDataAnnotation(&s.ObjectMeta, core.EndpointsLastChangeTriggerTime, stamp)
					s.Endpoints = s.Endpoints[:len(testkit.ConsulIPs)]
					if i%2 == 0 {
						s.Endpoints = append(s.Endpoints, testkit.Endpoint("10.244.9.9", "consul-server-9"))
					}
					_, err = c.client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, meta.UpdateOptions{})
				}
				return err
			})
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
}

// touch runs change, which fails the test unless stop canceled it.
func (c *churn) touch(ctx context.Context, change func(context.Context) error) {
	if err := change(ctx); err != nil && ctx.Err() == nil {
		c.t.Errorf("churn: %v", err)
	}
}

func (c *churn) stop() {
	if c.cancel != nil {
		c.cancel()
		c.done.Wait()
		c.cancel = nil
	}
}

// prometheus is a running Prometheus server.
type prometheus struct {
	url     string
	proc    *testkit.Process
	started time.Time
}

// startPrometheus runs Debian's prometheus on 127.0.0.1:port, scraping
// targets every second as job coredns and evaluating the shipped rules,
// shortened, every second; its data goes to a folder of the test.
func startPrometheus(t testing.TB, bin string, port int, targets []string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", monitoring.RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(shortRules(t, string(rules))), 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: coredns
    static_configs:
      - targets: [%s]
`, strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testkit.Addr(port)
	proc, err := testkit.StartProcess("prometheus", filepath.Join(dir, "prometheus.log"), dir, bin,
		"--config.file=prometheus.yml", "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &prometheus{url: "http://" + addr, proc: proc, started: time.Now()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus log:\n%s", proc.Tail(40))
		}
		proc.Stop()
	})
	testkit.Eventually(t, time.Minute, "prometheus to be ready", func() (bool, string) {
		if exited, err := proc.Exited(); exited {
			t.Fatalf("prometheus exited: %v\n%s", err, proc.Tail(40))
		}
		code, body := testkit.Get(p.url + "/-/ready")
		return code == http.StatusOK, body
	})
	return p
}

// api GETs path of the HTTP API and decodes its data into v.
func (p *prometheus) api(t testing.TB, path string, v any) {
	t.Helper()
	if err := p.get(path, v); err != nil {
		t.Fatal(err)
	}
}

func (p *prometheus) get(path string, v any) error {
	code, body := testkit.Get(p.url + path)
	var r struct {
		Status string
		Data   json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || r.Status != "success" {
		return fmt.Errorf("GET %s: %d %s %v", path, code, body, err)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		return fmt.Errorf("GET %s: %v", path, err)
	}
	return nil
}

// alert is an alert of Prometheus's /api/v1/alerts.
type alert struct {
	Labels map[string]string
	State  string
}

func (a alert) String() string {
	return fmt.Sprintf("%s %s %v", a.Labels["alertname"], a.State, a.Labels)
}

// alerts returns the pending and firing alerts named name (any if empty)
// whose labels include labels.
func (p *prometheus) alerts(t testing.TB, name string, labels map[string]string) []alert {
	t.Helper()
	a, err := p.alertList(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (p *prometheus) alertList(name string, labels map[string]string) ([]alert, error) {
	var data struct{ Alerts []alert }
	if err := p.get("/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	var out []alert
	for _, a := range data.Alerts {
		match := name == "" || a.Labels["alertname"] == name
		for k, v := range labels {
			match = match && a.Labels[k] == v
		}
		if match {
			out = append(out, a)
		}
	}
	return out, nil
}

// waitAlert waits until the alert named name with labels is in state.
func (p *prometheus) waitAlert(t testing.TB, name string, labels map[string]string, state string) {
	t.Helper()
	testkit.Eventually(t, liveness, fmt.Sprintf("%s %v %s", name, labels, state), func() (bool, string) {
		for _, a := range p.alerts(t, name, labels) {
			if a.State == state {
				t.Logf("%s", a)
				return true, ""
			}
		}
		return false, fmt.Sprintf("all alerts: %v", p.alerts(t, "", nil))
	})
}

// recordStates polls the state of the alert named name with labels ("" for
// none) until it fires, and returns a function that waits for that and
// returns the states it went through.
func (p *prometheus) recordStates(t testing.TB, name string, labels map[string]string) func() []string {
	t.Helper()
	var states []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for deadline := time.Now().Add(liveness); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			state := ""
			a, err := p.alertList(name, labels)
			if err != nil {
				state = err.Error()
			} else if len(a) > 0 {
				state = a[0].State
			}
			if len(states) == 0 || states[len(states)-1] != state {
				states = append(states, state)
			}
			if state == "firing" {
				return
			}
		}
	}()
	return func() []string {
		<-done
		return states
	}
}

// dashboardExpr is a query of the dashboard as Prometheus takes it: every
// variable all its values, and the rate interval given.
func dashboardExpr(expr, rateInterval string) string {
	return strings.NewReplacer(`"$job"`, `".*"`, `"$instance"`, `".*"`, `"$server"`, `".*"`, "$__rate_interval", rateInterval).Replace(expr)
}

// dashboardHasData checks that every query of the dashboard's panels, and
// those of its variables, return data.
func (p *prometheus) dashboardHasData(t testing.TB) {
	t.Helper()
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", monitoring.DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	panels, variables, err := monitoring.Queries(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{}
	for title, exprs := range panels {
		for i, e := range exprs {
			queries[fmt.Sprintf("panel %q query %d", title, i)] = dashboardExpr(e, "1m")
		}
	}
	for name, exprs := range variables {
		for _, e := range exprs {
			// label_values(METRIC, LABEL) is Grafana's: its values are those
			// of count by (LABEL) (METRIC).
			inner := strings.TrimSuffix(strings.TrimPrefix(e, "label_values("), ")")
			i := strings.LastIndex(inner, ",")
			queries["variable "+name] = dashboardExpr(fmt.Sprintf("count by (%s) (%s)", strings.TrimSpace(inner[i+1:]), inner[:i]), "1m")
		}
	}
	if len(panels) < 10 {
		t.Fatalf("%d panels with queries, want the dashboard's", len(panels))
	}
	for what, q := range queries {
		testkit.Eventually(t, liveness, what+" to return data", func() (bool, string) {
			var data struct {
				Result []struct{ Value [2]any }
			}
			p.api(t, "/api/v1/query?query="+url.QueryEscape(q), &data)
			for _, r := range data.Result {
				if v, ok := r.Value[1].(string); ok && v != "NaN" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%s: %v", q, data.Result)
		})
	}
}
