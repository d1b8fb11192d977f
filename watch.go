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

// Sources of EndpointSlices, so that a relist replaces only its own.
const (
	controllerSlices uint8 = iota // the EndpointSlice controller's, for headless services
	otherSlices                   // every slice it does not manage: hand-written, mirrored, imported
	importedSlices                // the multicluster view's
)

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
	stores     []*store
	logger     klog.Logger
	gauges     gaugeReporter

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

	slices := client.DiscoveryV1().EndpointSlices(meta.NamespaceAll)
	w.add(w.serviceStore("headless Services", false), &core.Service{}, headlessServiceOnly,
		listWatch(client, client.CoreV1().Services(meta.NamespaceAll), w.labels()))
	w.add(w.sliceStore("EndpointSlices of headless Services", false, controllerSlices), &discovery.EndpointSlice{}, "",
		listWatch(client, slices, w.labels(isHeadless, byController)))
	w.add(w.sliceStore("EndpointSlices not managed by the EndpointSlice controller", false, otherSlices), &discovery.EndpointSlice{}, "",
		listWatch(client, slices, w.labels(notByController)))

	if opts.multicluster {
		// As the kubernetes plugin does: ServiceImports are selected with
		// namespace_labels, their slices with labels.
		w.add(w.serviceStore("headless ServiceImports", true), &mcs.ServiceImport{}, "",
			listWatch(client, mcsClient.ServiceImports(meta.NamespaceAll), selectorString(opts.namespaceLabels)))
		w.add(w.sliceStore("EndpointSlices of ServiceImports", true, importedSlices), &discovery.EndpointSlice{}, "",
			listWatch(client, slices, w.labels(imported)))
	}
	if opts.namespaceLabels != nil {
		ix.hideNamespaces()
		w.add(w.namespaceStore(), &core.Namespace{}, "",
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

// wanted reports whether the namespaces option lets namespace be served.
func (w *watcher) wanted(namespace string) bool {
	return len(w.opts.namespaces) == 0 || w.opts.namespaces[namespace]
}

// serviceStore feeds the Services (or ServiceImports) of a view to the index.
func (w *watcher) serviceStore(name string, multicluster bool) *store {
	headless := func(obj any) *service {
		s := obj.(*service)
		s.headless = s.headless && w.wanted(s.namespace)
		return s
	}
	return &store{
		name:      name,
		transform: toService,
		apply:     func(obj any, _ bool) { w.index.setService(multicluster, headless(obj)) },
		remove:    func(obj any) { w.index.removeService(multicluster, obj.(*service)) },
		replace: func(objs []any) {
			svcs := make([]*service, 0, len(objs))
			for _, o := range objs {
				svcs = append(svcs, headless(o))
			}
			w.index.replaceServices(multicluster, svcs)
		},
	}
}

// sliceStore feeds the EndpointSlices of one watch to the index, and records
// how long each live change took to reach it.
func (w *watcher) sliceStore(name string, multicluster bool, source uint8) *store {
	wanted := func(obj any) *endpointSlice {
		s := obj.(*endpointSlice)
		if !w.wanted(s.namespace) {
			s.service = "" // not kept
		}
		return s
	}
	return &store{
		name:      name,
		transform: sliceTransform(w.opts.transform, multicluster),
		apply: func(obj any, live bool) {
			if s := wanted(obj); w.index.setSlice(multicluster, source, s) && live {
				observeLatency(s)
			}
		},
		remove: func(obj any) {
			if s := obj.(*endpointSlice); w.index.removeSlice(multicluster, source, s) {
				observeLatency(s)
			}
		},
		replace: func(objs []any) {
			ess := make([]*endpointSlice, 0, len(objs))
			for _, o := range objs {
				ess = append(ess, wanted(o))
			}
			w.index.replaceSlices(multicluster, source, ess)
		},
	}
}

// namespaceStore feeds the namespaces that match namespace_labels.
func (w *watcher) namespaceStore() *store {
	return &store{
		name:      "Namespaces",
		transform: toNamespace,
		apply:     func(obj any, _ bool) { w.index.setNamespace(obj.(*namespace).name, true) },
		remove:    func(obj any) { w.index.setNamespace(obj.(*namespace).name, false) },
		replace: func(objs []any) {
			names := make([]string, 0, len(objs))
			for _, o := range objs {
				names = append(names, o.(*namespace).name)
			}
			w.index.replaceNamespaces(names)
		},
	}
}

func must[T any](v *T, err error) T {
	if err != nil {
		panic(err) // only for requirements built from constants
	}
	return *v
}

// add creates the reflector that feeds st from lw, with the field selector
// field unless empty.
func (w *watcher) add(st *store, example runtime.Object, field string, lw cache.ListerWatcher) {
	st.synced = make(chan struct{})
	st.changed = func() { w.gauges.report(w.index.size) }
	logger := w.logger
	w.stores = append(w.stores, st)
	w.reflectors = append(w.reflectors, newReflector(&apiListWatch{what: st.name, field: field, lw: lw}, example, st, cache.ReflectorOptions{
		Name:            st.name,
		TypeDescription: st.name,
		Backoff:         &backoff,
		Logger:          &logger,
	}))
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

// start runs the reflectors until stop.
func (w *watcher) start() {
	for _, r := range w.reflectors {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			r.RunWithContext(w.ctx)
		}()
	}
}

// stop stops the reflectors and waits until they have returned.
func (w *watcher) stop() {
	w.cancel()
	w.done.Wait()
	w.gauges.clear()
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

// store is where a reflector puts what it receives: it reduces each object to
// what DNS needs and hands it to the index. Events from the watch are live
// changes; a list, at start or after the watch broke, replaces everything.
// It implements cache.ReflectorStore, cache.TransformingStore (so that a
// streaming list keeps only reduced objects) and cache.DoneChecker (done
// once the first list is in).
type store struct {
	name      string
	transform func(any) any
	apply     func(obj any, live bool)
	remove    func(obj any)
	replace   func(objs []any)
	changed   func() // after each of the above

	synced chan struct{}
	once   sync.Once
}

// Add implements cache.ReflectorStore.
func (s *store) Add(obj any) error { return s.Update(obj) }

// Update implements cache.ReflectorStore.
func (s *store) Update(obj any) error {
	s.apply(s.transform(obj), true)
	s.changed()
	return nil
}

// Delete implements cache.ReflectorStore.
func (s *store) Delete(obj any) error {
	s.remove(s.transform(obj))
	s.changed()
	return nil
}

// Replace implements cache.ReflectorStore.
func (s *store) Replace(objs []any, _ string) error {
	for i, o := range objs {
		objs[i] = s.transform(o)
	}
	s.replace(objs)
	s.changed()
	s.once.Do(func() { close(s.synced) })
	return nil
}

// Resync implements cache.ReflectorStore; there is nothing to resync.
func (s *store) Resync() error { return nil }

// Transformer implements cache.TransformingStore.
func (s *store) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) { return s.transform(obj), nil }
}

// Name implements cache.DoneChecker.
func (s *store) Name() string { return s.name }

// Done implements cache.DoneChecker.
func (s *store) Done() <-chan struct{} { return s.synced }

// apiListWatch is how the reflectors reach the API server. It lists and
// watches with a field selector, and without it once the API server says it
// does not support it (before Kubernetes 1.31 for spec.clusterIP), the store
// then dropping what the selector would have. When the API server refuses, it
// logs the permission the plugin lacks.
type apiListWatch struct {
	what, field string
	lw          cache.ListerWatcher
	noField     atomic.Bool
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
	return w, err
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

// observeLatency records how long a live change of s took to reach DNS.
func observeLatency(s *endpointSlice) {
	if s.triggered != 0 {
		programmingLatency.Observe(time.Since(time.Unix(0, s.triggered)).Seconds())
	}
}
