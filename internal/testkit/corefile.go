package testkit

import (
	"fmt"
	"strings"
)

// DefaultZones are the zones of the headless and kubernetes blocks of a
// Block that names none.
const DefaultZones = "cluster.local in-addr.arpa ip6.arpa"

// Block is one server block of a Corefile, listening on 127.0.0.1:Port.
type Block struct {
	Port int
	// Ready, Pprof and Metrics are the ports of the ready, pprof and
	// prometheus plugins, on 127.0.0.1; 0 leaves the plugin out.
	Ready, Pprof, Metrics int
	// Whoami adds the whoami plugin.
	Whoami bool
	// Headless and Kubernetes add the plugins; with both, headless falls
	// through to kubernetes, as in Corefile.example.
	Headless, Kubernetes bool

	// The options of both headless and kubernetes. Zones is by default
	// DefaultZones; the others are left out when empty.
	Zones          string
	Kubeconfig     string
	StartupTimeout string // such as "10s"
	// HeadlessOptions are more lines of the headless block, such as "ttl
	// 30"; Plugins lines of other plugins, such as "cache 30".
	HeadlessOptions, Plugins []string
}

// Addr is the address the block listens on.
func (b Block) Addr() string { return Addr(b.Port) }

// String returns the block in Corefile syntax.
func (b Block) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, ".:%d {\n    bind 127.0.0.1\n", b.Port)
	if b.Ready != 0 {
		fmt.Fprintf(&s, "    ready %s\n", Addr(b.Ready))
	}
	if b.Pprof != 0 {
		fmt.Fprintf(&s, "    pprof %s\n", Addr(b.Pprof))
	}
	if b.Metrics != 0 {
		fmt.Fprintf(&s, "    prometheus %s\n", Addr(b.Metrics))
	}
	if b.Whoami {
		s.WriteString("    whoami\n")
	}
	for _, p := range b.Plugins {
		fmt.Fprintf(&s, "    %s\n", p)
	}
	if b.Headless {
		b.plugin(&s, "headless", b.HeadlessOptions, b.Kubernetes)
	}
	if b.Kubernetes {
		b.plugin(&s, "kubernetes", nil, false)
	}
	s.WriteString("}\n")
	return s.String()
}

// plugin writes the block of the headless or the kubernetes plugin.
func (b Block) plugin(s *strings.Builder, name string, options []string, falls bool) {
	zones := b.Zones
	if zones == "" {
		zones = DefaultZones
	}
	fmt.Fprintf(s, "    %s %s {\n", name, zones)
	for _, o := range []struct{ key, value string }{
		{"kubeconfig", b.Kubeconfig}, {"startup_timeout", b.StartupTimeout},
	} {
		if o.value != "" {
			fmt.Fprintf(s, "        %s %s\n", o.key, o.value)
		}
	}
	for _, o := range options {
		fmt.Fprintf(s, "        %s\n", o)
	}
	if falls {
		s.WriteString("        fallthrough\n")
	}
	s.WriteString("    }\n")
}
