package headless

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// published returns the metadata a provider publishes for qname.
func published(p metadata.Provider, qname string) map[string]string {
	ctx := metadata.ContextWithMetadata(context.Background())
	state := request.Request{W: &test.ResponseWriter{}, Req: new(dns.Msg).SetQuestion(qname, dns.TypeA)}
	ctx = p.Metadata(ctx, state)
	out := map[string]string{}
	for label, f := range metadata.ValueFuncs(ctx) {
		out[label] = f()
	}
	return out
}

// TestMetadata compares the metadata the plugin publishes with the
// kubernetes plugin's, for the names of every grammar.
func TestMetadata(t *testing.T) {
	objs := referenceObjects()
	names := []string{
		"consul-server.ref.svc.cluster.local.",
		"consul-server-0.consul-server.ref.svc.cluster.local.",
		"_http._tcp.consul-server.ref.svc.cluster.local.",
		"Web-0.Dual.Ref.svc.cluster.local.",
		"us-east-1a.pin._zone.zoned.ref.svc.cluster.local.",
		"a.b.c.dual.ref.svc.cluster.local.",
		"db-0.c1.db.ref.svc.clusterset.local.",
		"ref.svc.cluster.local.",
		"10-1-0-1.ref.pod.cluster.local.",
		"cluster.local.",
		"nothing.cluster.local.",
		"example.org.",
	}
	for _, options := range []string{"", "zonal", "multicluster clusterset.local"} {
		corefile := "kubernetes cluster.local clusterset.local {\n" + options + "\n}"
		k := newReference(t, corefile, objs...)
		h, _ := newTestHeadless(t, strings.Replace(corefile, "kubernetes", "headless", 1), objs...)
		for _, name := range names {
			want, got := published(k, name), published(h, name)
			if !maps.Equal(got, want) {
				t.Errorf("%q, %s: metadata %v, want the kubernetes plugin's %v", options, name, got, want)
			}
		}
		if got := published(h, names[1]); fmt.Sprint(got) != "map[kubernetes/endpoint:consul-server-0 kubernetes/kind:svc kubernetes/namespace:ref kubernetes/port-name: kubernetes/protocol: kubernetes/service:consul-server"+
			map[string]string{"zonal": " kubernetes/zone:"}[options]+"]" {
			t.Errorf("%q: metadata of an endpoint name %v", options, got)
		}
	}
}
