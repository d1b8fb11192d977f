package headless

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

func histogramCount(t *testing.T) uint64 {
	t.Helper()
	var m dto.Metric
	if err := programmingLatency.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func gaugeValue(t *testing.T, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestMetrics checks that a change of a headless service's EndpointSlice
// carrying a trigger time is observed as programming latency, and that the
// gauges count what the index holds.
func TestMetrics(t *testing.T) {
	services, endpoints := gaugeValue(t, servicesGauge), gaugeValue(t, endpointsGauge)
	h, client := newTestHeadless(t, "headless cluster.local", consul()...)
	if got := gaugeValue(t, servicesGauge) - services; got != 1 {
		t.Errorf("services gauge grew by %v, want 1", got)
	}
	if got := gaugeValue(t, endpointsGauge) - endpoints; got != 3 {
		t.Errorf("endpoints gauge grew by %v, want 3", got)
	}

	before := histogramCount(t)
	ctx := context.Background()
	slices := client.DiscoveryV1().EndpointSlices("default")
	s, err := slices.Get(ctx, "consul-server-x7k2p", getOptions)
	if err != nil {
		t.Fatal(err)
	}
	s.Annotations = map[string]string{core.EndpointsLastChangeTriggerTime: time.Now().Add(-time.Second).Format(time.RFC3339Nano)}
	s.Endpoints = append(s.Endpoints, testkit.Endpoint("10.244.4.13", "consul-server-3"))
	if _, err := slices.Update(ctx, s, updateOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change observed", func() bool { return histogramCount(t) == before+1 })
	if _, eps := h.index.size(); eps != 4 {
		t.Errorf("index holds %d endpoints, want 4", eps)
	}

	h.watcher.stop()
	if got := gaugeValue(t, servicesGauge); got != services {
		t.Errorf("services gauge is %v after stop, want it back at %v", got, services)
	}
}

// TestMetricsOnlyRealChanges checks that the programming latency counts only
// changes of records: not a relist, not the same slice delivered again, not
// a change the plugin does not serve.
func TestMetricsOnlyRealChanges(t *testing.T) {
	h, _ := newTestHeadless(t, "headless cluster.local", consul()...)
	var st *reflectorStore
	for _, s := range h.watcher.stores {
		if s.name == "EndpointSlices of headless Services" {
			st = s
		}
	}
	slice := func(mutate func(*discovery.EndpointSlice)) *discovery.EndpointSlice {
		s := testkit.HeadlessLabel(testkit.Consul("default").Slices[0])
		s.Annotations = map[string]string{core.EndpointsLastChangeTriggerTime: time.Now().Add(-time.Second).Format(time.RFC3339Nano)}
		mutate(s)
		return s
	}
	same := func(*discovery.EndpointSlice) {}
	before := histogramCount(t)
	st.Replace([]any{slice(same)}, "")
	st.Update(slice(same))
	st.Update(slice(func(s *discovery.EndpointSlice) { s.Labels["unrelated"] = "x" }))
	st.Update(slice(func(s *discovery.EndpointSlice) {
		s.Endpoints = append(s.Endpoints, testkit.Ready(testkit.Endpoint("10.244.9.9", "not-ready"), false))
	}))
	if got := histogramCount(t); got != before {
		t.Errorf("%d latency samples for changes that change no record, want 0", got-before)
	}
	st.Update(slice(func(s *discovery.EndpointSlice) { s.Endpoints = s.Endpoints[:2] }))
	if got := histogramCount(t); got != before+1 {
		t.Errorf("%d latency samples for a removed endpoint, want 1", got-before)
	}
}

// TestWatchFailureKinds checks that each error the API server gives a list
// or a watch is counted under its kind, makes the watch not current from
// then on, and that the next answer makes it current again.
func TestWatchFailureKinds(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api/v1/services", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	resource := schema.GroupResource{Resource: "services"}
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{apierrors.NewForbidden(resource, "", errors.New("RBAC: access denied")), "forbidden"},
		{apierrors.NewUnauthorized("Unauthorized"), "unauthorized"},
		{apierrors.NewResourceExpired("too old resource version: 1 (2)"), "gone"},
		{apierrors.NewGone("gone"), "gone"},
		{refused, "connection"},
		{apierrors.NewServiceUnavailable("etcd is down"), "connection"},
		{apierrors.NewTooManyRequests("slow down", 1), "connection"},
		{io.ErrUnexpectedEOF, "connection"},
		{apierrors.NewInternalError(errors.New("boom")), "other"},
	} {
		t.Run(tc.kind+" "+tc.err.Error(), func(t *testing.T) {
			var fail error
			lw := &apiListWatch{what: "headless Services", health: newWatchHealth(services), lw: &cache.ListWatch{
				ListWithContextFunc: func(context.Context, meta.ListOptions) (runtime.Object, error) {
					return &core.ServiceList{}, fail
				},
				WatchFuncWithContext: func(context.Context, meta.ListOptions) (watch.Interface, error) {
					return watch.NewEmptyWatch(), fail
				},
			}}
			lw.health.reset()
			ctx := context.Background()
			if _, err := lw.ListWithContext(ctx, meta.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(watchCurrent.WithLabelValues("services")); got != 1 {
				t.Errorf("current after a list is %v, want 1", got)
			}
			if got := testutil.ToFloat64(watchNotCurrentSince.WithLabelValues("services")); got != 0 {
				t.Errorf("not current since %v while current, want 0", got)
			}

			counter := watchFailures.WithLabelValues("services", tc.kind)
			before := testutil.ToFloat64(counter)
			start := unixNow()
			fail = tc.err
			lw.ListWithContext(ctx, meta.ListOptions{})
			lw.WatchWithContext(ctx, meta.ListOptions{})
			if got := testutil.ToFloat64(counter) - before; got != 2 {
				t.Errorf("failures{kind=%q} grew by %v after a failed list and watch, want 2", tc.kind, got)
			}
			if got := testutil.ToFloat64(watchCurrent.WithLabelValues("services")); got != 0 {
				t.Errorf("current after %v is %v, want 0", tc.err, got)
			}
			if since := testutil.ToFloat64(watchNotCurrentSince.WithLabelValues("services")); since < start || since > unixNow() {
				t.Errorf("not current since %v, want the time of the first failure, after %v", since, start)
			}

			fail = nil
			w, err := lw.WatchWithContext(ctx, meta.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w.Stop()
			if got := testutil.ToFloat64(watchCurrent.WithLabelValues("services")); got != 1 {
				t.Errorf("current after a watch is %v, want 1", got)
			}
		})
	}
}

// TestWatchCanceledIsNoFailure checks that the error of a request that stop
// canceled is not counted as the API server's.
func TestWatchCanceledIsNoFailure(t *testing.T) {
	lw := &apiListWatch{what: "headless Services", health: newWatchHealth(services), lw: &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ meta.ListOptions) (runtime.Object, error) {
			return nil, ctx.Err()
		},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := testutil.ToFloat64(watchFailures.WithLabelValues("services", "other"))
	lw.ListWithContext(ctx, meta.ListOptions{})
	if got := testutil.ToFloat64(watchFailures.WithLabelValues("services", "other")) - before; got != 0 {
		t.Errorf("a canceled list counted as %v failures", got)
	}
}

// TestWatchHeardAndGone runs the real reflectors on a fake clientset whose
// watch of Services the test drives: a bookmark, with no change, counts as
// hearing from the API server, and an expired resource version delivered on
// the watch counts as gone, before the reflector lists again.
func TestWatchHeardAndGone(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(labelled(consul())...)
	watches := make(chan *watch.FakeWatcher, 10)
	client.PrependWatchReactor("services", func(k8stesting.Action) (bool, watch.Interface, error) {
		w := watch.NewFake()
		watches <- w
		return true, w, nil
	})
	h.watcher = newWatcher(client, nil, h.index, h.watch)
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(10 * time.Second) {
		t.Fatal("the watches did not sync")
	}
	eventually(t, "synced to be 1", func() bool { return testutil.ToFloat64(syncedGauge) == 1 })
	var w *watch.FakeWatcher
	select {
	case w = <-watches:
	case <-time.After(10 * time.Second):
		t.Fatal("the Services were never watched")
	}

	heard := watchLastHeard.WithLabelValues("services")
	heard.Set(0)
	bookmark := &core.Service{ObjectMeta: meta.ObjectMeta{ResourceVersion: "1000"}}
	w.Action(watch.Bookmark, bookmark)
	eventually(t, "the bookmark heard", func() bool { return testutil.ToFloat64(heard) > 0 })
	if got := testutil.ToFloat64(heard); got < unixNow()-60 {
		t.Errorf("last heard at %v, a minute before now", got)
	}

	gone := watchFailures.WithLabelValues("services", "gone")
	before := testutil.ToFloat64(gone)
	w.Error(&meta.Status{Status: meta.StatusFailure, Code: http.StatusGone, Reason: meta.StatusReasonExpired, Message: "too old resource version: 1 (1000)"})
	eventually(t, "the expired watch counted", func() bool { return testutil.ToFloat64(gone) == before+1 })
	eventually(t, "the relist to make it current again", func() bool {
		return testutil.ToFloat64(watchCurrent.WithLabelValues("services")) == 1
	})
}

// TestSyncedGauge checks that synced stays 0 while a watch has not
// delivered its first list.
func TestSyncedGauge(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("RBAC"))
	})
	h.watcher = newWatcher(client, nil, h.index, h.watch)
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	forbidden := watchFailures.WithLabelValues("services", "forbidden")
	before := testutil.ToFloat64(forbidden)
	eventually(t, "a refused list", func() bool { return testutil.ToFloat64(forbidden) > before })
	if got := testutil.ToFloat64(syncedGauge); got != 0 {
		t.Errorf("synced is %v with the Services refused, want 0", got)
	}
	if got := testutil.ToFloat64(watchCurrent.WithLabelValues("services")); got != 0 {
		t.Errorf("the refused watch is current: %v", got)
	}
	eventually(t, "the other watches current", func() bool {
		return testutil.ToFloat64(watchCurrent.WithLabelValues("endpointslices")) == 1 &&
			testutil.ToFloat64(watchCurrent.WithLabelValues("other_endpointslices")) == 1
	})
}

// TestRequestOutcomes checks what each question is counted as, by server.
func TestRequestOutcomes(t *testing.T) {
	alone, _ := newTestHeadless(t, "headless cluster.local in-addr.arpa", consul()...)
	falls, _ := newTestHeadless(t, "headless cluster.local {\nfallthrough\n}", consul()...)
	unsynced, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	unsynced.watcher = newWatcher(fake.NewClientset(), nil, unsynced.index, unsynced.watch) // never started
	unsynced.Next = nextHandler()
	const seed = "consul-server.default.svc.cluster.local."
	for _, tc := range []struct {
		name    string
		h       *Headless
		qname   string
		qtype   uint16
		outcome string
	}{
		{"A", alone, seed, dns.TypeA, "answered"},
		{"SRV", alone, seed, dns.TypeSRV, "answered"},
		{"PTR", alone, "10.1.244.10.in-addr.arpa.", dns.TypePTR, "answered"},
		{"NODATA", alone, seed, dns.TypeMX, "negative"},
		{"NXDOMAIN", alone, "nobody." + seed, dns.TypeA, "negative"},
		{"another zone", alone, "example.org.", dns.TypeA, "passed"},
		{"fallthrough", falls, "nobody." + seed, dns.TypeA, "passed"},
		{"AXFR", alone, "cluster.local.", dns.TypeAXFR, "refused"},
		{"AXFR fallthrough", falls, "cluster.local.", dns.TypeAXFR, "passed"},
		{"unsynced", unsynced, seed, dns.TypeA, "servfail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, server := range []string{"", "dns://:53"} {
				ctx := context.Background()
				if server != "" {
					ctx = context.WithValue(ctx, dnsserver.Key{}, &dnsserver.Server{Addr: server})
				}
				all := map[string]float64{}
				for _, o := range outcomeLabels {
					all[o] = testutil.ToFloat64(requestsTotal.WithLabelValues(server, o))
				}
				w := dnstest.NewRecorder(&test.ResponseWriter{})
				tc.h.ServeDNS(ctx, w, new(dns.Msg).SetQuestion(tc.qname, tc.qtype))
				for _, o := range outcomeLabels {
					want := 0.0
					if o == tc.outcome {
						want = 1
					}
					if got := testutil.ToFloat64(requestsTotal.WithLabelValues(server, o)) - all[o]; got != want {
						t.Errorf("server %q: %s grew by %v, want %v", server, o, got, want)
					}
				}
			}
		})
	}
}

// TestRequestCountNoAllocation checks that counting a question allocates
// nothing once its server's counters exist, so that the query path costs
// what it did.
func TestRequestCountNoAllocation(t *testing.T) {
	ctxs := []context.Context{
		context.Background(),
		context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: "dns://:53"}),
		context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: "dns://:1053"}),
	}
	for _, ctx := range ctxs {
		countRequest(ctx, answered)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, ctx := range ctxs {
			countRequest(ctx, answered)
			countRequest(ctx, negative)
		}
	})
	if allocs != 0 {
		t.Errorf("counting a question allocates %v times, want 0", allocs)
	}
}
