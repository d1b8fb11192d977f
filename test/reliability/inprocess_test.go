package reliability

import (
	"slices"
	"sync"
	"testing"

	_ "github.com/headlessdns/headless" // registers the plugin

	"github.com/coredns/caddy"
	_ "github.com/coredns/coredns/core" // the DNS server type
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
)

var inProcess sync.Mutex

// startInProcess runs corefile in this process, as CoreDNS's own test/
// package does, so that `go test -race` sees every access the plugin's
// informers and its ServeDNS make. The server stops when the test ends.
func startInProcess(t testing.TB, corefile string) {
	t.Helper()
	inProcess.Lock()
	defer inProcess.Unlock()
	if !slices.Contains(dnsserver.Directives, "headless") {
		// Where plugin.cfg puts it: before kubernetes.
		i := slices.Index(dnsserver.Directives, "kubernetes")
		dnsserver.Directives = slices.Insert(dnsserver.Directives, i, "headless")
	}
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(corefileInput(corefile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop() })
}

// corefileInput is a Corefile for caddy.Start.
type corefileInput string

func (c corefileInput) Body() []byte       { return []byte(c) }
func (c corefileInput) Path() string       { return "Corefile" }
func (c corefileInput) ServerType() string { return "dns" }
