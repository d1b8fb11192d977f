package headless

import (
	"context"
	"fmt"
	"sync"
	"time"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watchOptions says what the watcher watches.
type watchOptions struct {
	namespaces map[string]bool // empty: all
	labels     string          // a label selector for Services and EndpointSlices
	podNames   bool            // endpoint_pod_names
}

// watcher keeps the index in step with the Services and EndpointSlices of
// the cluster through two informers that store only slim objects.
type watcher struct {
	index    *index
	opts     watchOptions
	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	synced   func() bool
	gauges   gaugeReporter

	mu     sync.Mutex // serializes index updates from the two informers
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup
}

const byService = "service"

func newWatcher(client kubernetes.Interface, ix *index, opts watchOptions) (*watcher, error) {
	w := &watcher{index: ix, opts: opts}
	w.services = newInformer(serviceListWatch(client, opts.labels), &core.Service{}, toService, nil)
	w.slices = newInformer(sliceListWatch(client, opts.labels), &discovery.EndpointSlice{},
		sliceTransform(opts.podNames), cache.Indexers{byService: sliceServiceIndex})

	svcReg, err := w.services.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, _ bool) { w.serviceChanged(obj) },
		UpdateFunc: func(_, obj any) { w.serviceChanged(obj) },
		DeleteFunc: func(obj any) { w.serviceChanged(obj) },
	})
	if err != nil {
		return nil, err
	}
	sliceReg, err := w.slices.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, initial bool) { w.sliceChanged(nil, obj, !initial) },
		UpdateFunc: func(old, obj any) { w.sliceChanged(old, obj, true) },
		DeleteFunc: func(obj any) { w.sliceChanged(nil, obj, false) },
	})
	if err != nil {
		return nil, err
	}
	w.synced = func() bool { return svcReg.HasSynced() && sliceReg.HasSynced() }
	return w, nil
}

func newInformer(lw cache.ListerWatcher, example runtime.Object, transform cache.TransformFunc, indexers cache.Indexers) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{Indexers: indexers})
	_ = inf.SetTransform(transform) // fails only once started
	_ = inf.SetWatchErrorHandler(func(r *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) {
			log.Errorf("Watching %s: %v (the plugin needs list and watch on services and endpointslices.discovery.k8s.io)", r.TypeDescription(), err)
			return
		}
		log.Errorf("Watching %s: %v", r.TypeDescription(), err)
	})
	return inf
}

func serviceListWatch(client kubernetes.Interface, labels string) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o meta.ListOptions) (runtime.Object, error) {
			o.LabelSelector = labels
			return client.CoreV1().Services(meta.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o meta.ListOptions) (watch.Interface, error) {
			o.LabelSelector = labels
			return client.CoreV1().Services(meta.NamespaceAll).Watch(ctx, o)
		},
	}, client)
}

func sliceListWatch(client kubernetes.Interface, labels string) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o meta.ListOptions) (runtime.Object, error) {
			o.LabelSelector = labels
			return client.DiscoveryV1().EndpointSlices(meta.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o meta.ListOptions) (watch.Interface, error) {
			o.LabelSelector = labels
			return client.DiscoveryV1().EndpointSlices(meta.NamespaceAll).Watch(ctx, o)
		},
	}, client)
}

// sliceServiceIndex indexes EndpointSlices by "namespace/service".
func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*endpointSlice)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	return []string{s.namespace + "/" + s.service}, nil
}

// start runs the informers until stop.
func (w *watcher) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.ctx, w.cancel = ctx, cancel
	for _, inf := range []cache.SharedIndexInformer{w.services, w.slices} {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			inf.RunWithContext(ctx)
		}()
	}
}

// stop stops the informers and waits until they have returned.
func (w *watcher) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.done.Wait()
	w.gauges.clear()
}

// waitForSync waits up to timeout for the informers to sync and reports
// whether they did.
func (w *watcher) waitForSync(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !w.synced() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// reportSync logs every 30s that the API is still not synced, and once
// when it is, so that an operator sees why the plugin is not ready.
func (w *watcher) reportSync() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 1; !w.synced(); n++ {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
		}
		if n%30 == 0 {
			log.Warning("Kubernetes API still not synced: not ready; queries for unknown names get SERVFAIL")
		}
	}
	log.Info("Kubernetes API synced: ready")
}

func (w *watcher) serviceChanged(obj any) {
	if s, ok := final(obj).(*service); ok {
		w.refresh(s.name, s.namespace)
	}
}

// sliceChanged refreshes the service of a slice (both, when the slice moved
// from one service to another) and, for a change made while running, records
// how long it took to reach DNS.
func (w *watcher) sliceChanged(old, obj any, live bool) {
	s, ok := final(obj).(*endpointSlice)
	if !ok {
		return
	}
	if o, ok := final(old).(*endpointSlice); ok && o.service != s.service {
		w.refresh(o.service, o.namespace)
	}
	headless := w.refresh(s.service, s.namespace)
	if live && headless && s.triggered != 0 {
		programmingLatency.Observe(time.Since(time.Unix(0, s.triggered)).Seconds())
	}
}

// final unwraps the last known state of a deleted object.
func final(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// refresh recomputes the index entry of one service from the informers'
// stores and reports whether the service is headless.
func (w *watcher) refresh(name, namespace string) bool {
	if name == "" || (len(w.opts.namespaces) > 0 && !w.opts.namespaces[namespace]) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	svc := w.service(namespace + "/" + name)
	objs, _ := w.slices.GetIndexer().ByIndex(byService, namespace+"/"+name)
	ess := make([]*endpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*endpointSlice); ok {
			ess = append(ess, s)
		}
	}
	w.index.update(name, namespace, svc, ess)
	w.gauges.report(w.index.size())
	return svc != nil && svc.headless
}

func (w *watcher) service(key string) *service {
	obj, ok, _ := w.services.GetStore().GetByKey(key)
	if !ok {
		return nil
	}
	s, _ := obj.(*service)
	return s
}
