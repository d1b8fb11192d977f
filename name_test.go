package headless

import (
	"bytes"
	"context"
	"flag"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

var updateUpstream = flag.Bool("update-upstream", false, "write the kubernetes plugin's parseRequest to testdata/parseRequest.go.txt")

// TestParseNameAsUpstream checks parseName against the kubernetes plugin's
// parseRequest, which it copies, through what both publish as metadata: for
// every branch of the grammar, in and out of multicluster zones, with and
// without zonal, both read a name into the same parts or both reject it.
// Upstream's parseRequest is reached through its exported Metadata, so that
// an upgrade of CoreDNS that changes it fails here.
func TestParseNameAsUpstream(t *testing.T) {
	names := []string{
		"cluster.local.", "svc.cluster.local.", "pod.cluster.local.", "clusterset.local.",
		"ns.svc.cluster.local.", "ns.pod.cluster.local.", "other.cluster.local.", "a.other.cluster.local.",
		"web.ns.svc.cluster.local.", "web-0.web.ns.svc.cluster.local.", "Web-0.Web.NS.SVC.Cluster.Local.",
		"10-0-0-1.ns.pod.cluster.local.", "_http._tcp.web.ns.svc.cluster.local.", "http.tcp.web.ns.svc.cluster.local.",
		"_http.tcp.web.ns.svc.cluster.local.", "http._tcp.web.ns.svc.cluster.local.", "_._.web.ns.svc.cluster.local.",
		"a.b.c.web.ns.svc.cluster.local.", "us-east-1a.pin._zone.web.ns.svc.cluster.local.",
		"us-east-1a.prefer._zone.web.ns.svc.cluster.local.", "us.east.1a.pin._zone.web.ns.svc.cluster.local.",
		"us-east-1a.other._zone.web.ns.svc.cluster.local.", "us-east-1a.pin._zone.web.ns.pod.cluster.local.",
		"us-east-1a.pin.zone.web.ns.svc.cluster.local.", "pin._zone.web.ns.svc.cluster.local.",
		"db-0.c1.db.ns.svc.clusterset.local.", "_http._tcp.db.ns.svc.clusterset.local.", "_db-0.c1.db.ns.svc.clusterset.local.",
		"db-0._c1.db.ns.svc.clusterset.local.", "us-east-1a.pin._zone.db.ns.svc.clusterset.local.",
		"db.ns.svc.clusterset.local.", "a.b.c.db.ns.svc.clusterset.local.", "example.org.", "local.",
	}
	for _, options := range []string{"", "zonal", "multicluster clusterset.local", "multicluster clusterset.local\nzonal"} {
		corefile := "kubernetes cluster.local clusterset.local {\n" + options + "\n}"
		k := newReference(t, corefile)
		h, _, err := parse(newController(strings.Replace(corefile, "kubernetes", "headless", 1)))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			// Metadata is collected before the server sets the request's
			// zone; a plugin that asks again once it is set gets the
			// multicluster reading. Both are compared.
			for _, zone := range []string{"", plugin.Zones(h.Zones).Matches(strings.ToLower(name))} {
				want, got := metadataOf(k, name, zone), metadataOf(h, name, zone)
				if !maps.Equal(got, want) {
					t.Errorf("%q, %s in zone %q: parsed as %v, the kubernetes plugin %v", options, name, zone, got, want)
				}
			}
		}
	}
}

// metadataOf returns the metadata p publishes for qname, the request's zone
// set to zone.
func metadataOf(p metadata.Provider, qname, zone string) map[string]string {
	ctx := metadata.ContextWithMetadata(context.Background())
	state := request.Request{W: &test.ResponseWriter{}, Req: new(dns.Msg).SetQuestion(qname, dns.TypeA), Zone: zone}
	ctx = p.Metadata(ctx, state)
	out := map[string]string{}
	for label, f := range metadata.ValueFuncs(ctx) {
		out[label] = f()
	}
	return out
}

// TestParseRequestUnchanged checks that the kubernetes plugin's
// parseRequest, in the CoreDNS module this one builds with, is the one
// parseName copies, kept in testdata/parseRequest.go.txt: what metadata does
// not show (pin or prefer) changes there. When it fails, bring parseName in
// line with upstream, then run the test with -update-upstream.
func TestParseRequestUnchanged(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/coredns/coredns").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(out)), "plugin", "kubernetes", "parse.go")
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0) // without comments: only the code counts
	if err != nil {
		t.Fatal(err)
	}
	var upstream bytes.Buffer
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "parseRequest" {
			if err := printer.Fprint(&upstream, fset, fn); err != nil {
				t.Fatal(err)
			}
			upstream.WriteByte('\n')
		}
	}
	if upstream.Len() == 0 {
		t.Fatalf("no parseRequest in %s: see how the kubernetes plugin reads names now", file)
	}
	const copied = "testdata/parseRequest.go.txt"
	if *updateUpstream {
		if err := os.WriteFile(copied, upstream.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(upstream.Bytes(), want) {
		t.Errorf("the kubernetes plugin's parseRequest (%s) is no longer the one name.go copies (%s):\n--- upstream:\n%s--- copied:\n%s",
			file, copied, upstream.Bytes(), want)
	}
}
