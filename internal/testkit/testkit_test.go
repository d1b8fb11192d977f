package testkit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// script writes an executable shell script of body and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	Require(t, Supported())
	path := filepath.Join(t.TempDir(), "fake-coredns")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStartFailureKeepsLog checks that the error of a server that does not
// come up has its log, for one that exits and for one that never answers,
// and that its folder is gone.
func TestStartFailureKeepsLog(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, body string }{
		{"exits", `echo "plugin/headless: Corefile:3 - Error during parsing: $*"; exit 1`},
		{"never answers", `echo "plugin/headless: Corefile:3 - Error during parsing: $*"; trap 'echo stopped by SIGTERM; exit 0' TERM; while :; do sleep 0.1; done`},
	} {
		t.Run(c.what, func(t *testing.T) {
			_, err := Start(context.Background(), script(t, c.body), "# the Corefile\n", time.Second, Addr(port))
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range []string{"Error during parsing: -conf ", "# the Corefile"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not have %q:\n%v", want, err)
				}
			}
			if c.what == "never answers" && !strings.Contains(err.Error(), "stopped by SIGTERM") {
				t.Errorf("the error does not have what the server logged as it stopped:\n%v", err)
			}
			dir := strings.TrimSuffix(strings.Fields(err.Error()[strings.Index(err.Error(), "-conf ")+6:])[0], "/Corefile")
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Errorf("the server's folder %s is left: %v", dir, serr)
			}
		})
	}
}

// TestCorefile checks the server blocks that Block writes.
func TestCorefile(t *testing.T) {
	got := Block{Port: 1053, Headless: true, Kubernetes: true, Kubeconfig: "/k", StartupTimeout: "10s"}.String() +
		Block{Port: 1054, Ready: 8181, Pprof: 6060, Metrics: 9153, Headless: true, Zones: "cluster.local", HeadlessOptions: []string{"ttl 30"}}.String() +
		Block{Port: 1055, Whoami: true, Plugins: []string{"cache 30"}, Kubernetes: true}.String()
	want := `.:1053 {
    bind 127.0.0.1
    headless cluster.local in-addr.arpa ip6.arpa {
        kubeconfig /k
        startup_timeout 10s
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig /k
        startup_timeout 10s
    }
}
.:1054 {
    bind 127.0.0.1
    ready 127.0.0.1:8181
    pprof 127.0.0.1:6060
    prometheus 127.0.0.1:9153
    headless cluster.local {
        ttl 30
    }
}
.:1055 {
    bind 127.0.0.1
    whoami
    cache 30
    kubernetes cluster.local in-addr.arpa ip6.arpa {
    }
}
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] || !PortFree(ports[0]) {
		t.Errorf("ports %v", ports)
	}
}

func TestRecords(t *testing.T) {
	a, _ := dns.NewRR("b.example. 5 IN A 10.0.0.2")
	b, _ := dns.NewRR("a.example. 5 IN A 10.0.0.1")
	got := Records([]dns.RR{NewQuery("a.example.", dns.TypeA).IsEdns0(), a, b})
	if len(got) != 2 || !strings.HasPrefix(got[0], "a.example.") {
		t.Errorf("Records: %q", got)
	}
}

func TestRSS(t *testing.T) {
	kb, err := RSS(os.Getpid())
	Require(t, err)
	if kb < 1024 {
		t.Errorf("RSS of the test process %d KiB", kb)
	}
}
