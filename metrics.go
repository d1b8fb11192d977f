package headless

import (
	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
