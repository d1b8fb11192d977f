package headless

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	labelselection "k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned/typed/apis/v1alpha1"
)

// watchOptions say what the watcher watches.
type watchOptions struct {
	namespaces      map[string]bool // empty: all
	labels          labels.Selector // labels: narrows Services and EndpointSlices; nil for all
	namespaceLabels labels.Selector // namespace_labels; nil without
	multicluster    bool            // watch ServiceImports and their slices
	transform       transformOptions
}

// Label values of the EndpointSlice controller (k8s.io/endpointslice): it
// labels the slices it manages, and those of headless services.
const (
	managedBy           = discovery.LabelManagedBy
	sliceController     = "endpointslice-controller.k8s.io"
	headlessServiceOnly = "spec.clusterIP=" + core.ClusterIPNone
)

// watchID names each watch, so that a list replaces only what that watch
// delivered.
type watchID uint8

const (
	services         watchID = iota // headless Services
	controllerSlices                // the EndpointSlice controller's slices of headless services
	otherSlices                     // every slice it does not manage: hand-written, mirrored
	serviceImports                  // multicluster: headless ServiceImports
	importedSlices                  // multicluster: the slices of ServiceImports
	namespaces                      // namespace_labels: the namespaces it selects
)

// multicluster reports whether the watch feeds the multicluster view.
func (w watchID) multicluster() bool { return w == serviceImports || w == importedSlices }

// backoff is how the reflectors retry while the API server is unreachable.
// client-go's default grows to 30s and resets only after 2 minutes, which
// kept names unanswered for up to 30s after the API server came back. This
// retries at most every 2.5s, plus up to half of that in jitter, so that a
// change made once the server is back is served within 5s; see
// docs/design.md for what it costs the API server.
var backoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 1 << 30, Cap: 2500 * time.Millisecond}

// watcher keeps the index in step with the cluster: one client-go reflector
// per watch, each feeding the index through a store, so that the objects are
// kept once, in the index, and not also in an informer's cache.
type watcher struct {
	index      *index
	opts       watchOptions
	reflectors []*cache.Reflector
	stores     []*reflectorStore
	logger     klog.Logger

	ctx    context.Context // canceled by stop
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// The label requirements of the watches of EndpointSlices.
var (
	isHeadless      = must(labels.NewRequirement(core.IsHeadlessService, labelselection.Exists, nil))
	byController    = must(labels.NewRequirement(managedBy, labelselection.Equals, []string{sliceController}))
	notByController = must(labels.NewRequirement(managedBy, labelselection.NotEquals, []string{sliceController}))
	imported        = must(labels.NewRequirement(mcs.LabelServiceName, labelselection.Exists, nil))
)

func newWatcher(client kubernetes.Interface, mcsClient mcsclient.MulticlusterV1alpha1Interface, ix *index, opts watchOptions) *watcher {
	w := &watcher{index: ix, opts: opts, logger: newLogger()}
	w.ctx, w.cancel = context.WithCancel(klog.NewContext(context.Background(), w.logger))

	endpointSlices := client.DiscoveryV1().EndpointSlices(meta.NamespaceAll)
	w.add(services, "headless Services", w.wanted(serviceTransform(opts.transform)), headlessServiceOnly,
		listWatch(client, client.CoreV1().Services(meta.NamespaceAll), w.labels()))
	w.add(controllerSlices, "EndpointSlices of headless Services", w.wanted(sliceTransform(opts.transform, false)), "",
		listWatch(client, endpointSlices, w.labels(isHeadless, byController)))
	w.add(otherSlices, "EndpointSlices not managed by the EndpointSlice controller", w.wanted(sliceTransform(opts.transform, false)), "",
		listWatch(client, endpointSlices, w.labels(notByController)))
	if opts.multicluster {
		// As the kubernetes plugin does: ServiceImports are selected with
		// namespace_labels, their slices with labels.
		w.add(serviceImports, "headless ServiceImports", w.wanted(serviceTransform(opts.transform)), "",
			listWatch(client, mcsClient.ServiceImports(meta.NamespaceAll), selectorString(opts.namespaceLabels)))
		w.add(importedSlices, "EndpointSlices of ServiceImports", w.wanted(sliceTransform(opts.transform, true)), "",
			listWatch(client, endpointSlices, w.labels(imported)))
	}
	if opts.namespaceLabels != nil {
		ix.hideNamespaces()
		w.add(namespaces, "Namespaces", toNamespace, "",
			listWatch(client, client.CoreV1().Namespaces(), opts.namespaceLabels.String()))
	}
	return w
}

// labels returns the selector of the labels option with reqs added.
func (w *watcher) labels(reqs ...labels.Requirement) string {
	s := labels.NewSelector()
	if w.opts.labels != nil {
		s = w.opts.labels
	}
	return s.Add(reqs...).String()
}

func selectorString(s labels.Selector) string {
	if s == nil {
		return ""
	}
	return s.String()
}

// wanted returns transform followed by the namespaces option: a Service
// of another namespace is not headless, a slice names no service.
func (w *watcher) wanted(transform func(any) any) func(any) any {
	return func(obj any) any {
		obj = transform(obj)
		if len(w.opts.namespaces) == 0 {
			return obj
		}
		switch o := obj.(type) {
		case *service:
			o.headless = o.headless && w.opts.namespaces[o.namespace]
		case *endpointSlice:
			if !w.opts.namespaces[o.namespace] {
				o.service = ""
			}
		}
		return obj
	}
}

func must[T any](v *T, err error) T {
	if err != nil {
		panic(err) // only for requirements built from constants
	}
	return *v
}

// add creates the reflector of watch id, which feeds the index through
// transform from lw, with the field selector field unless empty.
func (w *watcher) add(id watchID, name string, transform func(any) any, field string, lw cache.ListerWatcher) {
	health := newWatchHealth(id)
	api := &apiListWatch{what: name, field: field, lw: lw, health: health}
	st := &reflectorStore{name: name, watch: id, transform: transform, index: w.index, health: health, backlog: api.backlog, synced: make(chan struct{})}
	api.stopped = st.flush
	logger := w.logger
	w.stores = append(w.stores, st)
	w.reflectors = append(w.reflectors, newReflector(api, exampleObject(id), st, cache.ReflectorOptions{
		Name:            name,
		TypeDescription: name,
		Backoff:         &backoff,
		Logger:          &logger,
	}))
}

// exampleObject is the type of the objects of watch id.
func exampleObject(id watchID) runtime.Object {
	switch id {
	case services:
		return &core.Service{}
	case serviceImports:
		return &mcs.ServiceImport{}
	case namespaces:
		return &core.Namespace{}
	}
	return &discovery.EndpointSlice{}
}

// newReflector is client-go's constructor of reflectors; a test sees through
// it what the watcher gives them.
var newReflector = cache.NewReflectorWithOptions

// api is what a typed client of client-go offers for one resource.
type api[L runtime.Object] interface {
	List(context.Context, meta.ListOptions) (L, error)
	Watch(context.Context, meta.ListOptions) (watch.Interface, error)
}

// listWatch lists and watches with selector, with watch-list semantics where
// the client supports them.
func listWatch[L runtime.Object](client kubernetes.Interface, a api[L], selector string) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o meta.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return a.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o meta.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return a.Watch(ctx, o)
		},
	}, client)
}

// start runs the reflectors until stop. It sets the metrics of the watches
// here, not when they are made, so that a reload's new instance takes them
// over when it starts.
func (w *watcher) start() {
	syncedGauge.Set(0)
	checkers := make([]cache.DoneChecker, len(w.stores))
	for i, st := range w.stores {
		st.health.reset()
		checkers[i] = st
	}
	for _, r := range w.reflectors {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			r.RunWithContext(w.ctx)
		}()
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		if cache.WaitFor(w.ctx, "", checkers...) {
			syncedGauge.Set(1)
		}
	}()
}

// stop stops the reflectors and waits until they have returned.
func (w *watcher) stop() {
	w.cancel()
	w.done.Wait()
	for _, st := range w.stores {
		st.flush() // and its timer
	}
	w.index.clearGauges()
}

// stopped reports whether stop was called.
func (w *watcher) stopped() bool { return w.ctx.Err() != nil }

// synced reports whether every watch has delivered its first full list.
func (w *watcher) synced() bool {
	for _, st := range w.stores {
		if !cache.IsDone(st) {
			return false
		}
	}
	return true
}

// waitForSync waits up to timeout for every watch's first list and reports
// whether they all came.
func (w *watcher) waitForSync(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	checkers := make([]cache.DoneChecker, len(w.stores))
	for i, st := range w.stores {
		checkers[i] = st
	}
	return cache.WaitFor(ctx, "", checkers...)
}

// reflectorStore is where a reflector puts what it receives: it reduces each object to
// what DNS needs and hands it to the index. Events from the watch are live
// changes; a list, at start or after the watch broke, replaces everything
// the watch delivered. It implements cache.ReflectorStore,
// cache.TransformingStore (so that a streaming list keeps only reduced
// objects) and cache.DoneChecker (done once the first list is in).
//
// A live change is published at once unless more events have arrived
// behind it: the changes of a burst are then published together once the
// burst is through, or maxStaged after the first, so that a service of many
// slices builds its view a few times for the burst rather than once a slice
// (the gang start of make bench's largest clusters).
type reflectorStore struct {
	name      string
	watch     watchID
	transform func(any) any
	index     *index
	health    *watchHealth
	backlog   func() int // events received and not yet delivered

	mu     sync.Mutex
	staged []any       // changes not yet published
	timer  *time.Timer // publishes them maxStaged after the first if the burst goes on

	synced chan struct{}
	once   sync.Once
}

// maxStaged is how long a change may wait for the rest of its burst.
const maxStaged = 20 * time.Millisecond

// Add implements cache.ReflectorStore.
func (s *reflectorStore) Add(obj any) error { return s.Update(obj) }

// Update implements cache.ReflectorStore.
func (s *reflectorStore) Update(obj any) error {
	s.stage(obj, false)
	return nil
}

// Delete implements cache.ReflectorStore.
func (s *reflectorStore) Delete(obj any) error {
	s.stage(obj, true)
	return nil
}

// stage hands obj to the index, and publishes what is staged unless more
// events wait behind it; then a timer publishes it at the latest maxStaged
// after the first change staged.
func (s *reflectorStore) stage(obj any, gone bool) {
	obj = s.transform(obj)
	changed := s.index.stage(s.watch, obj, gone)
	s.mu.Lock()
	if changed {
		s.staged = append(s.staged, obj)
	}
	due := len(s.staged) > 0 && s.backlog() == 0
	if len(s.staged) > 0 && !due && s.timer == nil {
		s.timer = time.AfterFunc(maxStaged, s.flush)
	}
	s.mu.Unlock()
	if due {
		s.flush()
	}
}

// flush publishes the staged changes.
func (s *reflectorStore) flush() {
	s.mu.Lock()
	staged := s.staged
	s.staged = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	if s.index.flush(s.watch.multicluster()) {
		for _, obj := range staged {
			observeLatency(obj)
		}
	}
}

// Replace implements cache.ReflectorStore.
func (s *reflectorStore) Replace(objs []any, _ string) error {
	for i, o := range objs {
		objs[i] = s.transform(o)
	}
	s.index.replace(s.watch, objs)
	s.flush()
	s.health.heard()
	s.once.Do(func() { close(s.synced) })
	return nil
}

// UpdateResourceVersion implements cache.ResourceVersionUpdater: the
// reflector calls it after each event and bookmark of the watch, so that a
// quiet cluster is still heard from.
func (s *reflectorStore) UpdateResourceVersion(string) { s.health.heard() }

// Resync implements cache.ReflectorStore; there is nothing to resync.
func (s *reflectorStore) Resync() error { return nil }

// Transformer implements cache.TransformingStore.
func (s *reflectorStore) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) { return s.transform(obj), nil }
}

// Name implements cache.DoneChecker.
func (s *reflectorStore) Name() string { return s.name }

// Done implements cache.DoneChecker.
func (s *reflectorStore) Done() <-chan struct{} { return s.synced }

// apiListWatch is how the reflectors reach the API server. It lists and
// watches with a field selector, and without it once the API server says it
// does not support it (before Kubernetes 1.31 for spec.clusterIP), the store
// then dropping what the selector would have. When the API server refuses, it
// logs the permission the plugin lacks. Every answer and error of the API
// server, and every error its watch delivers, goes into the watch's health.
type apiListWatch struct {
	what, field string
	lw          cache.ListerWatcher
	noField     atomic.Bool
	health      *watchHealth
	watching    atomic.Pointer[observedWatch] // the last watch started
	stopped     func()                        // called when a watch stops
}

// backlog is the number of events the last watch has received and not yet
// delivered.
func (a *apiListWatch) backlog() int {
	if o := a.watching.Load(); o != nil {
		return len(o.events)
	}
	return 0
}

// List implements cache.Lister.
func (a *apiListWatch) List(o meta.ListOptions) (runtime.Object, error) {
	return a.ListWithContext(context.Background(), o)
}

// Watch implements cache.Watcher.
func (a *apiListWatch) Watch(o meta.ListOptions) (watch.Interface, error) {
	return a.WatchWithContext(context.Background(), o)
}

// ListWithContext implements cache.ListerWithContext.
func (a *apiListWatch) ListWithContext(ctx context.Context, o meta.ListOptions) (runtime.Object, error) {
	lw := cache.ToListerWatcherWithContext(a.lw)
	obj, err := lw.ListWithContext(ctx, a.options(o))
	if a.fieldUnsupported(err) {
		obj, err = lw.ListWithContext(ctx, o)
	}
	a.hint(err)
	a.record(ctx, err)
	return obj, err
}

// WatchWithContext implements cache.WatcherWithContext.
func (a *apiListWatch) WatchWithContext(ctx context.Context, o meta.ListOptions) (watch.Interface, error) {
	lw := cache.ToListerWatcherWithContext(a.lw)
	w, err := lw.WatchWithContext(ctx, a.options(o))
	if a.fieldUnsupported(err) {
		w, err = lw.WatchWithContext(ctx, o)
	}
	a.hint(err)
	a.record(ctx, err)
	if err != nil {
		return w, err
	}
	ow := observe(w, a.health, a.stopped)
	a.watching.Store(ow)
	return ow, nil
}

// record puts the outcome of a request in the watch's health. The errors
// of a request canceled by stop are not the API server's.
func (a *apiListWatch) record(ctx context.Context, err error) {
	switch {
	case err == nil:
		a.health.heard()
	case ctx.Err() == nil:
		a.health.failed(err)
	}
}

// observedWatch passes on the events of a watch, holding the next one ready
// so that the store can tell whether another event has come, and records
// the errors it delivers, such as the 410 Gone of a resource version that
// is too old.
type observedWatch struct {
	watch.Interface
	events  chan watch.Event
	stopped chan struct{}
	stop    sync.Once
	onStop  func()
}

func observe(w watch.Interface, health *watchHealth, onStop func()) *observedWatch {
	o := &observedWatch{Interface: w, events: make(chan watch.Event, 1), stopped: make(chan struct{}), onStop: onStop}
	go func() {
		defer close(o.events)
		for e := range w.ResultChan() {
			if e.Type == watch.Error {
				health.failed(apierrors.FromObject(e.Object))
			}
			select {
			case o.events <- e:
			case <-o.stopped:
				return
			}
		}
	}()
	return o
}

// ResultChan implements watch.Interface.
func (o *observedWatch) ResultChan() <-chan watch.Event { return o.events }

// Stop implements watch.Interface; what the store staged from the watch is
// published.
func (o *observedWatch) Stop() {
	o.stop.Do(func() { close(o.stopped) })
	o.Interface.Stop()
	if o.onStop != nil {
		o.onStop()
	}
}

// IsWatchListSemanticsUnSupported passes on what the wrapped ListerWatcher
// says of streaming lists.
func (a *apiListWatch) IsWatchListSemanticsUnSupported() bool {
	u, ok := a.lw.(interface{ IsWatchListSemanticsUnSupported() bool })
	return ok && u.IsWatchListSemanticsUnSupported()
}

func (a *apiListWatch) options(o meta.ListOptions) meta.ListOptions {
	if a.field != "" && !a.noField.Load() {
		o.FieldSelector = a.field
	}
	return o
}

// fieldUnsupported reports whether err says the field selector is not
// supported, and from then on leaves it out.
func (a *apiListWatch) fieldUnsupported(err error) bool {
	if a.field == "" || !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported") {
		return false
	}
	if !a.noField.Swap(true) {
		log.Warningf("The API server cannot select %s by %q (Kubernetes 1.31 can): watching all of them and keeping the headless ones", a.what, a.field)
	}
	return true
}

func (a *apiListWatch) hint(err error) {
	if apierrors.IsForbidden(err) {
		log.Errorf("Listing %s: %v (the plugin needs list and watch on services, endpointslices.discovery.k8s.io and, with the options that use them, namespaces and serviceimports.multicluster.x-k8s.io)", a.what, err)
	}
}

// observeLatency records how long a live change of an EndpointSlice took
// to reach DNS.
func observeLatency(obj any) {
	if s, ok := obj.(*endpointSlice); ok && s.triggered != 0 {
		programmingLatency.Observe(time.Since(time.Unix(0, s.triggered)).Seconds())
	}
}
