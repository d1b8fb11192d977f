package headless

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

var (
	// programmingLatency is the time from the change of an EndpointSlice of a
	// headless service (its endpoints.kubernetes.io/last-change-trigger-time)
	// to the moment the index serves it.
	programmingLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace:                   plugin.Namespace,
		Subsystem:                   pluginName,
		Name:                        "dns_programming_duration_seconds",
		Buckets:                     prometheus.ExponentialBuckets(0.001, 2, 20), // as the kubernetes plugin's
		NativeHistogramBucketFactor: plugin.NativeHistogramBucketFactor,
		Help:                        "Histogram of the time (in seconds) it took to program a headless service change into DNS.",
	})

	// servicesGauge is the number of headless services indexed.
	servicesGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "services",
		Help:      "Number of headless services indexed.",
	})

	// endpointsGauge is the number of ready endpoint addresses indexed.
	endpointsGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "endpoints",
		Help:      "Number of ready endpoint addresses of headless services indexed.",
	})

	// syncedGauge is 1 once every watch has delivered its first list.
	syncedGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "synced",
		Help:      "Whether every watch of the plugin has delivered its first list (1) or not (0).",
	})

	// watchCurrent is 1 for a watch whose last request to the API server
	// succeeded, 0 from its first failure on.
	watchCurrent = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "watch_current",
		Help:      "Whether the watch is current (1): its last list, watch or event came from the API server without error.",
	}, []string{"watch"})

	// watchNotCurrentSince is when a watch stopped being current, 0 while it
	// is.
	watchNotCurrentSince = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "watch_not_current_since_timestamp_seconds",
		Help:      "Unix time at which the watch stopped being current, or 0 while it is current.",
	}, []string{"watch"})

	// watchLastHeard is when a watch last heard from the API server.
	watchLastHeard = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "watch_last_heard_timestamp_seconds",
		Help:      "Unix time at which the watch last heard from the API server: a list, an event or a bookmark.",
	}, []string{"watch"})

	// watchFailures counts the failed requests of a watch by their kind.
	watchFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "watch_failures_total",
		Help:      "Counter of the failed lists and watches of a watch, and of the errors its watch delivered, by kind of error.",
	}, []string{"watch", "kind"})

	// requestsTotal counts what the plugin did with each question.
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "requests_total",
		Help:      "Counter of the questions the plugin was asked, by what it did with them.",
	}, []string{"server", "outcome"})
)

// negativeAnswers counts, with extended_errors, the negative answers for
// names under a headless service by reason, one counter of the vector per
// reason made at start so that a query only adds to it.
var negativeAnswers = func() [negativeReasons]prometheus.Counter {
	v := promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "negative_answers_total",
		Help:      "Counter of NXDOMAIN and NODATA answers for names under a headless service, by reason (extended_errors).",
	}, []string{"reason"})
	var counters [negativeReasons]prometheus.Counter
	for r := noReason + 1; r < negativeReasons; r++ {
		counters[r] = v.WithLabelValues(r.label())
	}
	return counters
}()

// watchLabels are the values of the watch label, one a watchID.
var watchLabels = [...]string{
	services:         "services",
	controllerSlices: "endpointslices",
	otherSlices:      "other_endpointslices",
	serviceImports:   "serviceimports",
	importedSlices:   "imported_endpointslices",
	namespaces:       "namespaces",
}

// failure is a kind of error a watch meets.
type failure uint8

const (
	forbidden    failure = iota // RBAC refuses the plugin
	unauthorized                // its credentials are refused
	gone                        // its resource version is too old: it lists again
	connection                  // the API server is unreachable or unavailable
	otherFailure
	failureKinds
)

// failureLabels are the values of the kind label, one a failure.
var failureLabels = [failureKinds]string{"forbidden", "unauthorized", "gone", "connection", "other"}

// failureOf classifies err.
func failureOf(err error) failure {
	var netErr net.Error
	switch {
	case apierrors.IsForbidden(err):
		return forbidden
	case apierrors.IsUnauthorized(err):
		return unauthorized
	case apierrors.IsGone(err), apierrors.IsResourceExpired(err):
		return gone
	case apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err),
		apierrors.IsTooManyRequests(err), utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err),
		utilnet.IsProbableEOF(err), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &netErr):
		return connection
	}
	return otherFailure
}

// watchHealth is the state of one watch in its metrics, whose children are
// bound once. The reflector and the goroutine of its watch (observedWatch)
// both report, so a change of state is made under the lock.
type watchHealth struct {
	current, notCurrentSince, lastHeard prometheus.Gauge
	failures                            [failureKinds]prometheus.Counter

	mu        sync.Mutex
	isCurrent bool
}

// newWatchHealth binds the metrics of watch id.
func newWatchHealth(id watchID) *watchHealth {
	label := watchLabels[id]
	h := &watchHealth{
		current:         watchCurrent.WithLabelValues(label),
		notCurrentSince: watchNotCurrentSince.WithLabelValues(label),
		lastHeard:       watchLastHeard.WithLabelValues(label),
	}
	// Every kind exists from the start, so that the first failure is an
	// increase.
	for k := range h.failures {
		h.failures[k] = watchFailures.WithLabelValues(label, failureLabels[k])
	}
	return h
}

// reset sets the watch not current, as it is before it first hears from
// the API server.
func (h *watchHealth) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.isCurrent = false
	h.current.Set(0)
	h.notCurrentSince.Set(unixNow())
}

// heard records that the watch heard from the API server: it is current.
func (h *watchHealth) heard() {
	h.lastHeard.Set(unixNow())
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isCurrent {
		h.isCurrent = true
		h.current.Set(1)
		h.notCurrentSince.Set(0)
	}
}

// failed records that a request of the watch failed with err: it is not
// current from now on, unless it already was not.
func (h *watchHealth) failed(err error) {
	h.failures[failureOf(err)].Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isCurrent {
		h.isCurrent = false
		h.current.Set(0)
		h.notCurrentSince.Set(unixNow())
	}
}

func unixNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// outcome is what the plugin did with a question.
type outcome uint8

const (
	answered outcome = iota // records in the answer section
	negative                // NXDOMAIN or NODATA
	passed                  // to the next plugin: not its zone, fallthrough, a zone transfer
	servfail                // not synced: a name it does not know
	refused                 // a zone transfer without fallthrough, left to the transfer plugin
	outcomes
)

// outcomeLabels are the values of the outcome label, one an outcome.
var outcomeLabels = [outcomes]string{"answered", "negative", "passed", "servfail", "refused"}

// countRequest adds a question of ctx's server with outcome o. The vector
// finds the child by a hash of the labels, without allocating
// (TestRequestCountNoAllocation), as CoreDNS's own metrics do per request.
func countRequest(ctx context.Context, o outcome) {
	requestsTotal.WithLabelValues(serverOf(ctx), outcomeLabels[o]).Inc()
}

// serverOf is the server label of CoreDNS's metrics, as metrics.WithServer
// reads it; that package would bring the prometheus plugin's dependencies.
func serverOf(ctx context.Context) string {
	if s, ok := ctx.Value(dnsserver.Key{}).(*dnsserver.Server); ok {
		return s.Addr
	}
	return ""
}

// outcomeOf is the outcome of an answer the plugin wrote.
func outcomeOf(m *dns.Msg) outcome {
	switch {
	case m.Rcode == dns.RcodeServerFailure:
		return servfail
	case m.Rcode != dns.RcodeSuccess, len(m.Answer) == 0:
		return negative
	}
	return answered
}
