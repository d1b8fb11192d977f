package headless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		corefile   string
		zones      []string
		ttl        uint32
		timeout    time.Duration
		watch      watchOptions
		client     clientConfig
		fallsFor   string // a name fallthrough must cover, if any
		forwardLen int
	}{
		{
			corefile: "headless cluster.local in-addr.arpa ip6.arpa",
			zones:    []string{"cluster.local.", "in-addr.arpa.", "ip6.arpa."}, ttl: 5, timeout: 5 * time.Second, forwardLen: 1,
		},
		{
			corefile: `headless cluster.local {
				kubeconfig /etc/kube.conf ctx
				namespaces a b
				labels app=db,tier in (a,b)
				endpoint_pod_names
				ttl 0
				startup_timeout 30s
				fallthrough
			}`,
			zones: []string{"cluster.local."}, ttl: 0, timeout: 30 * time.Second, forwardLen: 1,
			watch:    watchOptions{namespaces: map[string]bool{"a": true, "b": true}, labels: "app=db,tier in (a,b)", podNames: true},
			client:   clientConfig{kubeconfig: "/etc/kube.conf", context: "ctx"},
			fallsFor: "x.cluster.local.",
		},
		{
			corefile: "headless cluster.local other.local {\nendpoint https://10.0.0.1:6443\nttl 3600\nfallthrough other.local\n}",
			zones:    []string{"cluster.local.", "other.local."}, ttl: 3600, timeout: 5 * time.Second, forwardLen: 2,
			client:   clientConfig{endpoint: "https://10.0.0.1:6443"},
			fallsFor: "x.other.local.",
		},
	}
	for _, tc := range tests {
		h, cc, err := parse(newController(tc.corefile))
		if err != nil {
			t.Errorf("%q: %v", tc.corefile, err)
			continue
		}
		if strings.Join(h.Zones, " ") != strings.Join(tc.zones, " ") {
			t.Errorf("%q: zones %v, want %v", tc.corefile, h.Zones, tc.zones)
		}
		if h.ttl != tc.ttl || h.startupTimeout != tc.timeout {
			t.Errorf("%q: ttl %d timeout %s, want %d %s", tc.corefile, h.ttl, h.startupTimeout, tc.ttl, tc.timeout)
		}
		if len(h.index.zones) != tc.forwardLen {
			t.Errorf("%q: forward zones %v, want %d", tc.corefile, h.index.zones, tc.forwardLen)
		}
		if h.watch.labels != tc.watch.labels || h.watch.podNames != tc.watch.podNames || len(h.watch.namespaces) != len(tc.watch.namespaces) {
			t.Errorf("%q: watch options %+v, want %+v", tc.corefile, h.watch, tc.watch)
		}
		for n := range tc.watch.namespaces {
			if !h.watch.namespaces[n] {
				t.Errorf("%q: namespace %s not watched", tc.corefile, n)
			}
		}
		if cc != tc.client {
			t.Errorf("%q: client %+v, want %+v", tc.corefile, cc, tc.client)
		}
		if tc.fallsFor != "" && !h.Fall.Through(tc.fallsFor) {
			t.Errorf("%q: fallthrough does not cover %s", tc.corefile, tc.fallsFor)
		}
		if tc.fallsFor == "" && h.Fall.Through("x.cluster.local.") {
			t.Errorf("%q: fallthrough without the option", tc.corefile)
		}
	}
}

func TestParseServerBlockZones(t *testing.T) {
	c := newController("headless")
	c.ServerBlockKeys = []string{"cluster.local:53"}
	h, _, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Zones) != 1 || h.Zones[0] != "cluster.local." {
		t.Errorf("zones %v, want the server block's [cluster.local.]", h.Zones)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		corefile string
		want     string // in the error, with the Corefile line
	}{
		{"headless cluster.local {\nbogus\n}", "Testfile:2 - Error during parsing: unknown property 'bogus'"},
		{"headless cluster.local {\nttl\n}", "Testfile:2 - Error during parsing: Wrong argument count"},
		{"headless cluster.local {\nttl 3601\n}", "Testfile:2 - Error during parsing: ttl must be an integer in range [0, 3600]: 3601"},
		{"headless cluster.local {\nttl -1\n}", "ttl must be an integer in range [0, 3600]: -1"},
		{"headless cluster.local {\nttl five\n}", "ttl must be an integer in range [0, 3600]: five"},
		{"headless cluster.local {\nlabels a=b=c\n}", "Testfile:2 - Error during parsing: unable to parse label selector value 'a=b=c'"},
		{"headless cluster.local {\nlabels\n}", "Wrong argument count"},
		{"headless cluster.local {\nnamespaces\n}", "Wrong argument count"},
		{"headless cluster.local {\nkubeconfig\n}", "Wrong argument count"},
		{"headless cluster.local {\nkubeconfig a b c\n}", "Wrong argument count"},
		{"headless cluster.local {\nendpoint\n}", "Wrong argument count"},
		{"headless cluster.local {\nendpoint_pod_names yes\n}", "Wrong argument count"},
		{"headless cluster.local {\nstartup_timeout soon\n}", "Testfile:2 - Error during parsing: startup_timeout must be a non-negative duration: soon"},
		{"headless cluster.local {\nstartup_timeout\n}", "Wrong argument count"},
		{"headless in-addr.arpa", "non-reverse zone name must be used"},
		{"headless cluster.local\nheadless cluster.local", "this plugin can only be used once per Server Block"},
	}
	for _, tc := range tests {
		_, _, err := parse(newController(tc.corefile))
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.corefile, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want it to contain %q", tc.corefile, err, tc.want)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.conf")
	if err := os.WriteFile(broken, []byte("not: [a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		corefile string
		want     string
	}{
		{"headless cluster.local {\nkubeconfig " + filepath.Join(dir, "missing.conf") + "\n}", "plugin/headless: kubernetes client configuration"},
		{"headless cluster.local {\nkubeconfig " + broken + "\n}", "plugin/headless: kubernetes client configuration"},
		{"headless cluster.local {\nunknown\n}", "plugin/headless: Testfile:2 - Error during parsing: unknown property 'unknown'"},
	}
	for _, tc := range tests {
		err := setup(newController(tc.corefile))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.corefile, err, tc.want)
		}
	}
}

func TestSetupEndpoint(t *testing.T) {
	c := newController("headless cluster.local {\nendpoint http://127.0.0.1:1\n}")
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
}
