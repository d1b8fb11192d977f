// Package headless is a CoreDNS plugin that serves the headless Services of a
// Kubernetes cluster: A, AAAA, SRV and PTR records from an index that keeps
// only what DNS needs, answered exactly as the kubernetes plugin answers them.
package headless

import (
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"
)

const pluginName = "headless"

var log = clog.NewWithPlugin(pluginName)

// Headless is the plugin: the zones it serves, its options, the index and the
// watcher that fills it.
type Headless struct {
	Next  plugin.Handler
	Zones []string
	Fall  fall.F

	ttl            uint32
	startupTimeout time.Duration
	watch          watchOptions

	index   *index
	watcher *watcher
}

// Name implements the plugin.Handler interface.
func (h *Headless) Name() string { return pluginName }

// Ready implements the ready.Readiness interface: true once the Services and
// EndpointSlices known at start have all reached the index.
func (h *Headless) Ready() bool { return h.watcher != nil && h.watcher.synced() }
