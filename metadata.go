package headless

import (
	"context"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/request"
)

// Metadata implements the metadata.Provider interface: the labels the
// kubernetes plugin publishes for a query name, read the same way, so that a
// Corefile that logs or routes on them works the same with either plugin.
// The client-* labels need the kubernetes plugin's pod watch: the plugin
// does not publish them.
func (h *Headless) Metadata(ctx context.Context, state request.Request) context.Context {
	zone := matchZone(h.Zones, state.Name())
	if zone == "" {
		return ctx
	}
	// state.Zone is not set yet when metadata is collected, so names are
	// never read as multicluster here: the kubernetes plugin reads them the
	// same way.
	multicluster := matchZone(h.multiclusterZones, state.Zone) != ""
	n, err := parseName(state.Name(), zone, multicluster, h.watch.transform.zones)
	if err != nil {
		metadata.SetValueFunc(ctx, "kubernetes/parse-error", func() string { return err.Error() })
		return ctx
	}
	set := func(label, value string) {
		metadata.SetValueFunc(ctx, "kubernetes/"+label, func() string { return value })
	}
	set("port-name", n.port)
	set("protocol", n.protocol)
	set("endpoint", n.endpoint)
	if multicluster {
		set("cluster", n.cluster)
	}
	if h.watch.transform.zones {
		set("zone", n.topoZone)
	}
	set("service", n.service)
	set("namespace", n.namespace)
	set("kind", n.kind)
	return ctx
}
