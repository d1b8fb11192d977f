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
		corefile string
		check    func(*Headless, clientConfig) string // what is wrong, or ""
	}{
		{"headless cluster.local in-addr.arpa ip6.arpa", func(h *Headless, cc clientConfig) string {
			if strings.Join(h.Zones, " ") != "cluster.local. in-addr.arpa. ip6.arpa." || h.primaryZone != 0 {
				return "zones"
			}
			if h.ttl != 5 || h.startupTimeout != 5*time.Second || h.negativeTTL != nil || h.stablePTR || h.watch.multicluster || h.watch.labels != nil || h.watch.transform != (transformOptions{}) {
				return "defaults"
			}
			if h.Fall.Through("x.cluster.local.") || cc.line != 1 {
				return "fallthrough or line"
			}
			return ""
		}},
		{`headless in-addr.arpa cluster.local {
			kubeconfig /etc/kube.conf ctx
			namespaces a b
			labels app=db,tier in (a,b)
			endpoint_pod_names
			ttl 0
			startup_timeout 30s
			fallthrough
		}`, func(h *Headless, cc clientConfig) string {
			if h.primaryZone != 1 || h.ttl != 0 || h.startupTimeout != 30*time.Second || !h.watch.transform.podNames {
				return "options"
			}
			if !h.watch.namespaces["a"] || !h.watch.namespaces["b"] || h.watch.labels.String() != "app=db,tier in (a,b)" {
				return "namespaces or labels"
			}
			if cc.kubeconfig != "/etc/kube.conf" || cc.context != "ctx" || cc.kubeconfigLine != 2 || !h.Fall.Through("x.cluster.local.") {
				return "kubeconfig or fallthrough"
			}
			return ""
		}},
		{`headless cluster.local clusterset.local {
			endpoint https://10.0.0.1:6443
			namespace_labels team=a
			multicluster clusterset.local
			zonal
			negative_ttl 5
			stable_ptr
			terminating_fallback
			fallthrough clusterset.local
		}`, func(h *Headless, cc clientConfig) string {
			if cc.endpoint != "https://10.0.0.1:6443" || h.watch.namespaceLabels.String() != "team=a" {
				return "endpoint or namespace_labels"
			}
			if strings.Join(h.multiclusterZones, " ") != "clusterset.local." || !h.watch.multicluster {
				return "multicluster"
			}
			if !h.watch.transform.zones || !h.watch.transform.terminating || !h.stablePTR || h.negativeTTL == nil || *h.negativeTTL != 5 {
				return "zonal, terminating_fallback, stable_ptr or negative_ttl"
			}
			if !h.Fall.Through("x.clusterset.local.") || h.Fall.Through("x.cluster.local.") {
				return "fallthrough"
			}
			return ""
		}},
		{"headless cluster.local {\n unready_names\n answer_limit 20\n extended_errors\n}", func(h *Headless, _ clientConfig) string {
			want := transformOptions{unready: true, policy: servicePolicy{unreadyNames: true, answerLimit: 20}, unreadyNamesSet: true, answerLimitSet: true}
			if h.watch.transform != want || !h.extendedErrors {
				return "unready_names, answer_limit or extended_errors"
			}
			return ""
		}},
		{"headless cluster.local {\n unready_names annotated\n answer_limit annotated\n}", func(h *Headless, _ clientConfig) string {
			want := transformOptions{unready: true, unreadyNamesSet: true, answerLimitSet: true}
			if h.watch.transform != want || h.extendedErrors {
				return "unready_names or answer_limit annotated"
			}
			return ""
		}},
	}
	for _, tc := range tests {
		h, cc, err := parse(newController(tc.corefile))
		if err != nil {
			t.Errorf("%q: %v", tc.corefile, err)
			continue
		}
		if what := tc.check(h, cc); what != "" {
			t.Errorf("%q: wrong %s: %+v %+v", tc.corefile, what, h, cc)
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

// TestSetupErrors lists every wrong Corefile the plugin refuses at start-up,
// with the exact message CoreDNS prints: the line and the reason.
func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.conf")
	if err := os.WriteFile(broken, []byte("not: [a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.conf")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	const at = "plugin/headless: Testfile:"
	tests := []struct {
		corefile string
		want     string
	}{
		{"headless cluster.local {\nbogus\n}", at + "2 - Error during parsing: unknown property 'bogus'"},
		{"headless cluster.local {\nttl\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'ttl'"},
		{"headless cluster.local {\nttl 3601\n}", at + "2 - Error during parsing: ttl must be an integer in range [0, 3600]: 3601"},
		{"headless cluster.local {\nttl -1\n}", at + "2 - Error during parsing: ttl must be an integer in range [0, 3600]: -1"},
		{"headless cluster.local {\nttl five\n}", at + "2 - Error during parsing: ttl must be an integer in range [0, 3600]: five"},
		{"headless cluster.local {\nnegative_ttl 1h\n}", at + "2 - Error during parsing: negative_ttl must be an integer in range [0, 3600]: 1h"},
		{"headless cluster.local {\nlabels a=b=c\n}", at + "2 - Error during parsing: unable to parse labels selector value 'a=b=c': couldn't parse the selector string \"a=b=c\": found '=', expected: ',' or 'end of string'"},
		{"headless cluster.local {\nnamespace_labels !\n}", at + "2 - Error during parsing: unable to parse namespace_labels selector value '!': couldn't parse the selector string \"!\": unable to parse requirement: found '', expected: identifier"},
		{"headless cluster.local {\nlabels\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'labels'"},
		{"headless cluster.local {\nnamespaces\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'namespaces'"},
		{"headless cluster.local {\nnamespaces a\nnamespace_labels team=a\n}", at + "4 - Error during parsing: namespaces and namespace_labels cannot both be set"},
		{"headless cluster.local {\nkubeconfig\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'kubeconfig'"},
		{"headless cluster.local {\nkubeconfig a b c\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'c'"},
		{"headless cluster.local {\nendpoint\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'endpoint'"},
		{"headless cluster.local {\nendpoint ftp://x\n}", at + "2 - Error during parsing: endpoint must be an http or https URL such as https://10.0.0.1:6443: ftp://x"},
		{"headless cluster.local {\nendpoint 10.0.0.1:6443\n}", at + "2 - Error during parsing: endpoint must be an http or https URL such as https://10.0.0.1:6443: 10.0.0.1:6443"},
		{"headless cluster.local {\nendpoint_pod_names yes\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'yes'"},
		{"headless cluster.local {\nzonal on\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'on'"},
		{"headless cluster.local {\nstartup_timeout soon\n}", at + "2 - Error during parsing: startup_timeout must be a non-negative duration: soon"},
		{"headless cluster.local {\nstartup_timeout\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'startup_timeout'"},
		{"headless cluster.local {\nfallthrough notazone..\n}", at + "2 - Error during parsing: fallthrough zone must be a domain name: notazone.."},
		{"headless cluster.local {\nmulticluster clusterset.local\n}", at + "2 - Error during parsing: is not authoritative for the multicluster zone clusterset.local. (authoritative zones: [cluster.local.])"},
		{"headless cluster.local {\nunready_names all\n}", at + "2 - Error during parsing: unready_names takes no argument, or annotated: all"},
		{"headless cluster.local {\nanswer_limit 0\n}", at + "2 - Error during parsing: answer_limit must be a number of records of at least 1, or annotated: 0"},
		{"headless cluster.local {\nanswer_limit\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'answer_limit'"},
		{"headless cluster.local {\nextended_errors on\n}", at + "2 - Error during parsing: Wrong argument count or unexpected line ending after 'on'"},
		{"headless in-addr.arpa", at + "1 - Error during parsing: non-reverse zone name must be used"},
		{"headless cluster.local\nheadless cluster.local", "plugin/headless: this plugin can only be used once per Server Block"},
		{"headless cluster.local {\nkubeconfig " + missing + "\n}", at + "2 - Error during parsing: kubeconfig " + missing + ": stat " + missing + ": no such file or directory"},
		{"headless cluster.local {\nkubeconfig " + broken + "\n}", at + "2 - Error during parsing: kubeconfig " + broken + ": error loading config file \"" + broken + "\": yaml: line 1: did not find expected ',' or ']'"},
		{"headless cluster.local {\nkubeconfig " + kubeconfig + " nosuchcontext\n}", at + "2 - Error during parsing: kubeconfig " + kubeconfig + `: context "nosuchcontext" does not exist`},
		{"headless cluster.local {\nttl 30\n}", at + "1 - Error during parsing: no kubeconfig and not running in a cluster (unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined): give the API server with kubeconfig, or endpoint"},
	}
	for _, tc := range tests {
		err := setup(newController(tc.corefile))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\nerror %v\nwant  %s", tc.corefile, err, tc.want)
		}
	}
}

func TestSetupEndpoint(t *testing.T) {
	c := newController("headless cluster.local {\nendpoint http://127.0.0.1:1\n}")
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
}
