package headless

import (
	"sync"

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

// gaugeReporter adds one plugin instance's share to the gauges, so that
// several instances (server blocks, or the old and new one during a reload)
// add up instead of overwriting each other.
type gaugeReporter struct {
	mu                  sync.Mutex
	services, endpoints int
}

// report sets the instance's share to what size returns. size is called
// under the lock: when several reflectors report at once, the last to report
// has read the index last, so a stale count never overwrites a newer one.
func (g *gaugeReporter) report(size func() (services, endpoints int)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	services, endpoints := size()
	servicesGauge.Add(float64(services - g.services))
	endpointsGauge.Add(float64(endpoints - g.endpoints))
	g.services, g.endpoints = services, endpoints
}

func (g *gaugeReporter) clear() { g.report(func() (int, int) { return 0, 0 }) }
