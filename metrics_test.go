package headless

import (
	"context"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	dto "github.com/prometheus/client_model/go"
	core "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
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
