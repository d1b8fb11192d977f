// Package headless is a CoreDNS plugin that serves the headless Services of a
// Kubernetes cluster: A, AAAA, SRV and PTR records from an index that keeps
// only what DNS needs, answered exactly as the kubernetes plugin answers them.
package headless

import (
	"net"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/plugin/pkg/upstream"
)

const (
	pluginName = "headless"
	defaultTTL = 5
)

// Headless is the plugin: the zones it serves, its options, the index and the
// watcher that fills it.
type Headless struct {
	Next  plugin.Handler
	Zones []string
	Fall  fall.F

	primaryZone       int      // index in Zones of the first forward zone, which names PTR targets
	multiclusterZones []string // multicluster: the zones served from ServiceImports
	ttl               uint32
	negativeTTL       *uint32 // negative_ttl; nil without
	stablePTR         bool
	extendedErrors    bool     // extended_errors
	localIPs          []net.IP // the addresses the server is bound to, for NS records
	startupTimeout    time.Duration
	watch             watchOptions

	index    *index
	watcher  *watcher
	upstream *upstream.Upstream // resolves the targets of FQDN endpoints
}

// Name implements the plugin.Handler interface.
func (h *Headless) Name() string { return pluginName }

// Ready implements the ready.Readiness interface: true once the objects that
// existed at start-up have all reached the index.
func (h *Headless) Ready() bool { return h.watcher != nil && h.watcher.synced() }
