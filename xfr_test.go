package headless

import (
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/transfer"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
)

// transferred returns the records a Transferer sends for zone, as text.
func transferred(t *testing.T, x transfer.Transferer, zone string) []string {
	t.Helper()
	ch, err := x.Transfer(zone, 0)
	if err != nil {
		t.Fatalf("transfer of %s: %v", zone, err)
	}
	var out []string
	for rrs := range ch {
		for _, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Serial = 0
			}
			out = append(out, rr.String())
		}
	}
	return out
}

// headlessNames keeps the records owned by a name of a headless Service or
// ServiceImport of objs, whatever the zone, and the SOA records.
func headlessNames(rrs []string, objs []runtime.Object, zone string) []string {
	var suffixes []string
	for _, obj := range objs {
		if s, ok := obj.(*core.Service); ok && s.Spec.ClusterIP == core.ClusterIPNone {
			suffixes = append(suffixes, s.Name+"."+s.Namespace+".svc."+zone)
		}
		if s, ok := obj.(*mcs.ServiceImport); ok && s.Spec.Type == mcs.Headless {
			suffixes = append(suffixes, s.Name+"."+s.Namespace+".svc."+zone)
		}
	}
	var out []string
	for _, rr := range rrs {
		owner := strings.Fields(rr)[0]
		if strings.Contains(rr, "\tSOA\t") || slices.ContainsFunc(suffixes, func(s string) bool { return owner == s || strings.HasSuffix(owner, "."+s) }) {
			out = append(out, rr)
		}
	}
	return out
}

// TestTransfer compares the zone transfer of the plugin alone with the
// kubernetes plugin's, restricted to the names of headless services.
func TestTransfer(t *testing.T) {
	objs := referenceObjects()
	for _, options := range []string{"", "ttl 30\nendpoint_pod_names", "multicluster clusterset.local"} {
		corefile := "kubernetes cluster.local clusterset.local {\n" + options + "\n}"
		k := newReference(t, corefile, objs...)
		h, _ := newTestHeadless(t, strings.Replace(corefile, "kubernetes", "headless", 1), objs...)
		for _, zone := range []string{"cluster.local.", "clusterset.local."} {
			want := headlessNames(transferred(t, k, zone), objs, zone)
			got := transferred(t, h, zone)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) || len(got) < 10 && zone == "cluster.local." {
				t.Errorf("%q, zone %s: transfer differs:\n--- kubernetes (headless names):\n%s\n--- headless:\n%s",
					options, zone, strings.Join(want, "\n"), strings.Join(got, "\n"))
			}
		}
	}

	h, _ := newTestHeadless(t, "headless cluster.local {\nfallthrough\n}", objs...)
	if _, err := h.Transfer("cluster.local.", 0); err != transfer.ErrNotAuthoritative {
		t.Errorf("with fallthrough, Transfer returns %v, want ErrNotAuthoritative so that the next plugin transfers the zone", err)
	}
	if _, err := h.Transfer("example.org.", 0); err != transfer.ErrNotAuthoritative {
		t.Errorf("Transfer of another zone returns %v", err)
	}
}
