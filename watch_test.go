package headless

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	mcsfake "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned/fake"
)

// lists returns the label and field selectors of the lists client received,
// by resource.
func lists(client *fake.Clientset) map[string][]string {
	out := map[string][]string{}
	for _, a := range client.Actions() {
		if l, ok := a.(k8stesting.ListAction); ok {
			r := l.GetListRestrictions()
			out[a.GetResource().Resource] = append(out[a.GetResource().Resource], r.Labels.String()+" | "+r.Fields.String())
		}
	}
	return out
}

// TestWatchSelectors checks what the plugin asks the API server for: headless
// Services only, the slices the EndpointSlice controller labels headless,
// and every slice it does not manage; labels narrows them all.
func TestWatchSelectors(t *testing.T) {
	_, client := newTestHeadless(t, "headless cluster.local")
	got := lists(client)
	want := map[string][]string{
		"services": {" | spec.clusterIP=None"},
		"endpointslices": {
			"endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io,service.kubernetes.io/headless | ",
			"endpointslice.kubernetes.io/managed-by!=endpointslice-controller.k8s.io | ",
		},
	}
	for r, sels := range want {
		if !slices.Equal(sorted(got[r]), sorted(sels)) {
			t.Errorf("%s listed with %q, want %q", r, got[r], sels)
		}
	}
	if len(got) != len(want) {
		t.Errorf("lists %v, want only services and endpointslices", got)
	}

	_, client = newTestHeadless(t, "headless cluster.local {\nlabels app=db\nnamespace_labels team=a\n}")
	got = lists(client)
	if !slices.Contains(got["services"], "app=db | spec.clusterIP=None") ||
		!slices.Contains(got["endpointslices"], "app=db,endpointslice.kubernetes.io/managed-by!=endpointslice-controller.k8s.io | ") ||
		!slices.Equal(got["namespaces"], []string{"team=a | "}) {
		t.Errorf("with labels and namespace_labels: %v", got)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestWatchOnlyHeadless checks that nothing of a ClusterIP or ExternalName
// Service, nor of their slices, reaches the index, and that a hand-written
// slice of a selectorless headless Service does.
func TestWatchOnlyHeadless(t *testing.T) {
	external := &core.Service{Spec: core.ServiceSpec{Type: core.ServiceTypeExternalName, ExternalName: "example.org"}}
	external.Name, external.Namespace = "ext", "ns"
	manual := sliceOf("ns", "manual", "manual-1", nil, testkit.Endpoint("10.0.1.1", "db-0"))
	manual.Labels[discovery.LabelManagedBy] = "operator.example.com"
	h, _ := newTestHeadless(t, "headless cluster.local",
		clusterIPService("ns", "web", "10.96.0.10"), sliceOf("ns", "web", "web-1", nil, testkit.Endpoint("10.0.0.1", "")),
		external, testkit.Headless("ns", "manual"), manual,
	)
	if _, ok := h.index.cluster.services["web.ns"]; ok {
		t.Error("the ClusterIP service or its slice reached the index")
	}
	if _, ok := h.index.cluster.services["ext.ns"]; ok {
		t.Error("the ExternalName service reached the index")
	}
	if v, _ := h.index.lookup(false, "manual", "ns"); v == nil || len(v.slices) != 1 {
		t.Error("the hand-written slice of a headless service is not served")
	}
}

// TestWatchLeavesSelection checks that a Service that stops being headless
// leaves the index, as does a slice that stops naming it.
func TestWatchLeavesSelection(t *testing.T) {
	h, client := newTestHeadless(t, "headless cluster.local", consul()...)
	ctx := context.Background()
	svc, err := client.CoreV1().Services("default").Get(ctx, "consul-server", getOptions)
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type, svc.Spec.ClusterIP, svc.Spec.ExternalName = core.ServiceTypeExternalName, "", "example.org"
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, updateOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the service made ExternalName to leave", func() bool {
		v, _ := h.index.lookup(false, "consul-server", "default")
		return v == nil
	})

	h, client = newTestHeadless(t, "headless cluster.local", consul()...)
	slice, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "consul-server-x7k2p", getOptions)
	if err != nil {
		t.Fatal(err)
	}
	delete(slice.Labels, discovery.LabelServiceName)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, slice, updateOptions); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the slice without service label to leave", func() bool {
		v, _ := h.index.lookup(false, "consul-server", "default")
		return v != nil && len(v.slices) == 0 && len(h.index.cluster.owners) == 0
	})
}

// TestWatchFieldSelectorUnsupported checks that against an API server older
// than 1.31, which refuses the field selector, the plugin watches every
// Service and keeps the headless ones.
func TestWatchFieldSelectorUnsupported(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(labelled(append(consul(), clusterIPService("ns", "web", "10.96.0.10")))...)
	refused := 0
	refuse := func(a k8stesting.Action) (bool, runtime.Object, error) {
		r, ok := a.(interface {
			GetListRestrictions() k8stesting.ListRestrictions
		})
		if ok && !r.GetListRestrictions().Fields.Empty() {
			refused++
			return true, nil, apierrors.NewBadRequest(`Unable to find "/v1, Resource=services" that match label selector "", field selector "spec.clusterIP=None": field label not supported: spec.clusterIP`)
		}
		return false, nil, nil
	}
	client.PrependReactor("list", "services", refuse)
	client.PrependWatchReactor("services", func(a k8stesting.Action) (bool, watch.Interface, error) {
		handled, _, err := refuse(a)
		return handled, nil, err
	})
	h.watcher = newWatcher(client, nil, h.index, h.watch)
	h.watcher.start()
	t.Cleanup(h.watcher.stop)
	if !h.watcher.waitForSync(10 * time.Second) {
		t.Fatal("the watches did not sync without the field selector")
	}
	if refused == 0 {
		t.Fatal("the field selector was never sent")
	}
	runCases(t, h, []test.Case{
		{Qname: "consul-server-0.consul-server.default.svc.cluster.local.", Qtype: dns.TypeA, Answer: []dns.RR{
			test.A("consul-server-0.consul-server.default.svc.cluster.local. 5 IN A 10.244.1.10"),
		}},
	})
	if _, ok := h.index.cluster.services["web.ns"]; ok {
		t.Error("the ClusterIP service reached the index")
	}
}

// TestBackoff checks that every reflector the watcher creates is given the
// plugin's backoff, not client-go's default (which grows to 30s and resets
// only after 2 minutes), and that this backoff retries often enough for a
// change made after the API server returns to be served within 5 seconds.
func TestBackoff(t *testing.T) {
	var given []cache.ReflectorOptions
	create := newReflector
	t.Cleanup(func() { newReflector = create })
	newReflector = func(lw cache.ListerWatcher, example any, st cache.ReflectorStore, o cache.ReflectorOptions) *cache.Reflector {
		given = append(given, o)
		return create(lw, example, st, o)
	}
	// Every watch there is: multicluster and namespace_labels add theirs.
	h, _, err := parse(newController("headless cluster.local clusterset.local {\nmulticluster clusterset.local\nnamespace_labels team=a\n}"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWatcher(fake.NewClientset(), mcsfake.NewSimpleClientset().MulticlusterV1alpha1(), h.index, h.watch)
	if len(given) != len(w.reflectors) || len(given) != 6 {
		t.Fatalf("%d reflectors created, %d kept; want 6", len(given), len(w.reflectors))
	}
	for _, o := range given {
		if o.Backoff == nil {
			t.Errorf("reflector %q has client-go's default backoff", o.Name)
			continue
		}
		b := *o.Backoff
		if b != backoff {
			t.Errorf("reflector %q has backoff %+v, want %+v", o.Name, b, backoff)
		}
		b.Jitter = 0
		longest := time.Duration(0)
		for range 100 {
			longest = max(longest, b.Step())
		}
		if worst := time.Duration(float64(longest) * (1 + o.Backoff.Jitter)); worst > 4*time.Second {
			t.Errorf("reflector %q: the longest retry delay is %s, want at most 4s", o.Name, worst)
		}
		if o.Backoff.Duration < 100*time.Millisecond || o.Backoff.Jitter == 0 {
			t.Errorf("reflector %q: backoff %+v retries too fast or in step", o.Name, *o.Backoff)
		}
	}
}

// TestWatchNamespaceLabelsFailClosed checks that with namespace_labels no
// namespace is exposed until the Namespaces are listed, as in the kubernetes
// plugin, which answers NXDOMAIN then.
func TestWatchNamespaceLabelsFailClosed(t *testing.T) {
	h, _, err := parse(newController("headless cluster.local {\n namespace_labels team=a\n}"))
	if err != nil {
		t.Fatal(err)
	}
	newWatcher(fake.NewClientset(), nil, h.index, h.watch) // never started: the list never comes
	h.index.apply(services, headlessService("web"))
	h.index.apply(controllerSlices, slim("web", "pod", "10.0.0.1"))
	exposed := func(namespace string) bool {
		_, ok := h.index.lookup(false, "web", namespace)
		return ok
	}
	if exposed("ns") {
		t.Error("before the Namespaces are listed, a namespace is exposed")
	}
	h.index.replace(namespaces, []any{&objectMeta{name: "ns"}})
	if !exposed("ns") || exposed("other") {
		t.Error("after the list, the namespaces exposed are not those listed")
	}
}

// TestStoreStagesBursts checks that the changes of a burst of events are
// published together once no event waits behind them, and that a burst
// that goes on is published after maxStaged all the same.
func TestStoreStagesBursts(t *testing.T) {
	ix := newIndex()
	ix.apply(services, headlessService("svc"))
	api := &apiListWatch{health: newWatchHealth(controllerSlices)}
	st := &reflectorStore{watch: controllerSlices, transform: func(o any) any { return o }, index: ix, health: api.health, backlog: api.backlog}
	api.stopped = st.flush
	events := watch.NewFakeWithChanSize(10, false)
	w := observe(events, api.health, api.stopped)
	api.watching.Store(w)
	defer w.Stop()
	published := func() int {
		v, _ := ix.lookup(false, "svc", "ns")
		if v == nil {
			return 0
		}
		return len(v.slices)
	}
	slice := func(i int) runtime.Object {
		s := slim("svc", fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.0.%d", i))
		s.name = fmt.Sprintf("svc-%d", i)
		return s
	}
	// next receives the next event as the reflector does, once the one
	// after it, if any, has come.
	next := func(more bool) runtime.Object {
		e := <-w.ResultChan()
		for more && len(w.events) == 0 {
			time.Sleep(time.Millisecond)
		}
		return e.Object
	}
	for i := range 3 {
		events.Add(slice(i))
	}
	for i := range 3 {
		st.Add(next(i < 2))
		want := 0
		if i == 2 {
			want = 3 // the last of the burst publishes them all
		}
		if got := published(); got != want {
			t.Fatalf("after event %d of 3, %d slices published, want %d", i+1, got, want)
		}
	}
	// A burst that goes on: one event waits behind the change.
	events.Add(slice(3))
	events.Add(slice(4))
	start := time.Now()
	st.Add(next(true))
	if got := published(); got != 3 {
		t.Fatalf("with an event waiting, %d slices published, want 3", got)
	}
	for published() != 4 {
		if time.Since(start) > time.Second {
			t.Fatalf("the change staged behind a waiting event was not published within a second")
		}
		time.Sleep(time.Millisecond)
	}
}
