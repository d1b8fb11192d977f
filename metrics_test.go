package headless

import (
	"context"
	"testing"
	"time"

	"github.com/headlessdns/headless/test/fixtures"

	dto "github.com/prometheus/client_model/go"
	core "k8s.io/api/core/v1"
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
	s.Endpoints = append(s.Endpoints, fixtures.Endpoint("10.244.4.13", "consul-server-3"))
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
