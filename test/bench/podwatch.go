package main

import (
	"net/netip"
	"sync"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// incarnation is one pod of a name, as the bench's watch saw it: a pod
// name has a new incarnation each time its StatefulSet makes the pod again.
// The times are when the bench saw the change, at or after it happened.
type incarnation struct {
	uid     types.UID
	addr    netip.Addr // its IPv4 address, once it has one
	created time.Time
	ready   time.Time // first seen Ready; zero if never
	gone    time.Time // first seen terminating, deleted or no longer Ready after Ready; zero while it lives
	// published is when it was first seen as a ready endpoint of an
	// EndpointSlice: what the DNS servers serve from.
	published time.Time
	// listed is when it was first seen as an endpoint of an EndpointSlice,
	// ready or not: once its address is there.
	listed time.Time
}

// live reports whether the incarnation was Ready for longer than lag at t,
// and not gone.
func (in incarnation) live(t time.Time, lag time.Duration) bool {
	return !in.ready.IsZero() && in.ready.Add(lag).Before(t) && (in.gone.IsZero() || t.Before(in.gone))
}

// podWatch watches the pods and EndpointSlices of a namespace and keeps each
// pod name's incarnations.
type podWatch struct {
	quit chan struct{}

	mu   sync.Mutex
	pods map[string][]*incarnation // by pod name, oldest first
}

// watchPods starts watching the pods and EndpointSlices of namespace and
// returns once the watch has listed them.
func watchPods(client kubernetes.Interface, namespace string) *podWatch {
	w := &podWatch{quit: make(chan struct{}), pods: map[string][]*incarnation{}}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.saw(obj, false) },
		UpdateFunc: func(_, obj any) { w.saw(obj, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			w.saw(obj, true)
		},
	})
	slices := factory.Discovery().V1().EndpointSlices().Informer()
	_, _ = slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.published,
		UpdateFunc: func(_, obj any) { w.published(obj) },
	})
	factory.Start(w.quit)
	factory.WaitForCacheSync(w.quit)
	return w
}

// saw records the state of a pod seen now; deleted when it is gone.
func (w *podWatch) saw(obj any, deleted bool) {
	pod, ok := obj.(*core.Pod)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	ins := w.pods[pod.Name]
	var in *incarnation
	for _, i := range ins {
		if i.uid == pod.UID {
			in = i
		}
	}
	if in == nil {
		in = &incarnation{uid: pod.UID, created: now}
		w.pods[pod.Name] = append(ins, in)
	}
	if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.Is4() && !in.addr.IsValid() {
		in.addr = a
	}
	ready := testkit.PodReady(pod)
	if ready && in.ready.IsZero() && in.gone.IsZero() {
		in.ready = now
	}
	if in.gone.IsZero() && (deleted || pod.DeletionTimestamp != nil || !ready && !in.ready.IsZero()) {
		in.gone = now
	}
}

// published records the pods that obj, an EndpointSlice seen now, holds as
// endpoints with an address (listed), and as ready endpoints (published).
func (w *podWatch) published(obj any) {
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range s.Endpoints {
		if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || len(e.Addresses) == 0 {
			continue
		}
		ready := e.Conditions.Ready != nil && *e.Conditions.Ready
		for _, in := range w.pods[e.TargetRef.Name] {
			if in.uid != e.TargetRef.UID {
				continue
			}
			if in.listed.IsZero() {
				in.listed = now
			}
			if ready && in.published.IsZero() {
				in.published = now
			}
		}
	}
}

// timelines returns a copy of the incarnations of each pod name seen so far.
func (w *podWatch) timelines() map[string][]incarnation {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]incarnation, len(w.pods))
	for name, ins := range w.pods {
		for _, in := range ins {
			out[name] = append(out[name], *in)
		}
	}
	return out
}

// stop ends the watch.
func (w *podWatch) stop() { close(w.quit) }
