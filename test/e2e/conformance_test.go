package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcs "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
)

const conf = testkit.Conf

// applyImports creates the ServiceImports, or updates those that exist.
func applyImports(ctx context.Context, imports []*mcs.ServiceImport) error {
	client, err := mcsclient.NewForConfig(shared.cluster.RESTConfig)
	if err != nil {
		return err
	}
	for _, si := range imports {
		api := client.MulticlusterV1alpha1().ServiceImports(si.Namespace)
		_, err := api.Create(ctx, si, meta.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var old *mcs.ServiceImport
			if old, err = api.Get(ctx, si.Name, meta.GetOptions{}); err == nil {
				si = si.DeepCopy()
				si.ResourceVersion = old.ResourceVersion
				_, err = api.Update(ctx, si, meta.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("serviceimport %s/%s: %w", si.Namespace, si.Name, err)
		}
	}
	return nil
}

// normalize prepares a response for comparison: records sorted in each
// section, the message id and the SOA serial zeroed. The kubernetes plugin
// keeps EndpointSlices in a map, so the order of records from several slices
// varies from one answer to the next; within one slice it is the slice's.
func normalize(m *dns.Msg) string {
	m = m.Copy()
	m.Id = 0
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Serial = 0
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", m.MsgHdr.String())
	if opt := m.IsEdns0(); opt != nil {
		fmt.Fprintf(&b, ";; EDNS %d do=%v rcode=%d\n", opt.UDPSize(), opt.Do(), opt.ExtendedRcode())
	}
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"ANSWER", m.Answer}, {"AUTHORITY", m.Ns}, {"ADDITIONAL", m.Extra}} {
		fmt.Fprintf(&b, ";; %s\n", sec.name)
		for _, s := range testkit.Records(sec.rrs) {
			fmt.Fprintln(&b, s)
		}
	}
	return b.String()
}

// ask sends p to addr over network.
func ask(t *testing.T, network, addr string, p testkit.Probe) *dns.Msg {
	t.Helper()
	m := testkit.NewQuery(p.Name, p.Qtype)
	if p.NoEDNS {
		m = new(dns.Msg).SetQuestion(p.Name, p.Qtype)
	}
	r, err := testkit.Exchange(network, addr, m)
	if err != nil {
		t.Fatalf("%s %s to %s over %s: %v", p.Name, dns.TypeToString[p.Qtype], listenerName(addr), network, err)
	}
	return r
}

// tally counts the comparisons of a conformance run.
type tally struct {
	same, different, excluded int
}

func (c *tally) add(same bool) {
	if same {
		c.same++
	} else {
		c.different++
	}
}

// compare asks the listeners of ls every probe over UDP and TCP and
// compares their answers with kubernetes alone's.
func compare(t *testing.T, ls listeners, probes []testkit.Probe, c *tally) {
	t.Helper()
	for _, p := range probes {
		for _, network := range []string{"udp", "tcp"} {
			want := ask(t, network, ls.kubernetes, p)
			// The probes without EDNS are meant to compare truncated
			// answers: check they do.
			if p.NoEDNS && network == "udp" && !want.Truncated {
				t.Errorf("%s %s over UDP without EDNS: the answer of %s is not truncated", p.Name, dns.TypeToString[p.Qtype], listenerName(ls.kubernetes))
			}
			targets := []string{ls.both}
			if p.Headless {
				targets = append(targets, ls.headless)
			} else {
				c.excluded++
			}
			for _, addr := range targets {
				got := ask(t, network, addr, p)
				same := normalize(got) == normalize(want)
				if p.Passed && addr == ls.headless {
					same = got.Rcode == want.Rcode && normalize(&dns.Msg{Answer: got.Answer}) == normalize(&dns.Msg{Answer: want.Answer})
				}
				c.add(same)
				if !same {
					t.Errorf("%s %s over %s%s: %s answers differently from %s\n--- %s:\n%s--- %s:\n%s",
						p.Name, dns.TypeToString[p.Qtype], network, map[bool]string{true: " without EDNS"}[p.NoEDNS],
						listenerName(addr), listenerName(ls.kubernetes), listenerName(ls.kubernetes), normalize(want), listenerName(addr), normalize(got))
				}
			}
		}
	}
}

// TestConformance compares the answers of the listeners: headless in front
// of kubernetes must answer every query as kubernetes alone does, and
// headless alone every headless query, over UDP and TCP, in the drop-in
// Corefile and with every option the two plugins share. (Zone transfers and
// the metadata the plugins publish are compared in process: TestTransfer,
// TestParseNameAsUpstream.)
func TestConformance(t *testing.T) {
	ctx := context.Background()
	objs := testkit.ConformanceObjects()
	if err := testkit.Apply(ctx, shared.cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	if err := applyImports(ctx, testkit.ServiceImports(conf)); err != nil {
		t.Fatal(err)
	}
	var clusterIPs []string
	for _, name := range []string{"frontend", "backend"} {
		svc, err := shared.cluster.Client.CoreV1().Services(conf).Get(ctx, name, meta.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clusterIPs = append(clusterIPs, svc.Spec.ClusterIP)
	}
	waitForObjects(t)

	var c tally
	deploy := testkit.ConformanceProbes(objs, clusterIPs, false)
	full := testkit.ConformanceProbes(objs, clusterIPs, true)
	compare(t, shared.listeners, deploy, &c)
	compare(t, shared.full, full, &c)
	checkImportedAddressPTR(t)

	services := 0
	for _, s := range objs.Services {
		if s.Spec.ClusterIP == core.ClusterIPNone {
			services++
		}
	}
	imports := len(testkit.ServiceImports(conf))
	summary := fmt.Sprintf("conformance: %d queries over %d headless services and %d imports, drop-in and alone, all shared options, UDP and TCP; "+
		"%d comparisons: %d identical, %d different, %d left out by design\n",
		len(deploy)+len(full), services, imports, c.same+c.different, c.same, c.different, c.excluded)
	t.Log(summary)
	if root, err := testkit.Root(); err == nil {
		_ = os.MkdirAll(filepath.Join(root, "build"), 0o755)
		_ = os.WriteFile(filepath.Join(root, "build", "conformance.txt"), []byte(summary), 0o644)
	}
	if len(deploy)+len(full) < 1000 || services < 16 {
		t.Errorf("the table has %d queries over %d headless services; want at least 1000 and 16", len(deploy)+len(full), services)
	}
}

// checkImportedAddressPTR checks the PTR names headless alone gives the
// addresses of imported endpoints: with multicluster, their names in the
// first multicluster zone; without, none, as none is a Service's. The
// kubernetes plugin names them in cluster.local after the
// kubernetes.io/service-name label, or, without it, sends no answer.
func checkImportedAddressPTR(t *testing.T) {
	for _, c := range []struct {
		ip, want string
	}{
		{"10.31.0.1", "db-0.c1.db.conf.svc.clusterset.local."},
		{"10.31.0.2", "10-31-0-2.c1.db.conf.svc.clusterset.local."},
		{"fd00:31::1", "db-0.c1.db.conf.svc.clusterset.local."},
		{"10.32.0.1", "db-0.c2.db.conf.svc.clusterset.local."},
	} {
		rev, _ := dns.ReverseAddr(c.ip)
		for _, network := range []string{"udp", "tcp"} {
			r := testkit.Query(t, network, shared.full.headless, rev, dns.TypePTR)
			sameRecords(t, "PTR of imported "+c.ip+" over "+network+" at full headless", r.Answer, rev+" 30 IN PTR "+c.want)
			r = testkit.Query(t, network, shared.headless, rev, dns.TypePTR)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) > 0 {
				t.Errorf("PTR of imported %s over %s at headless, without multicluster: %s, want NXDOMAIN", c.ip, network, r)
			}
		}
	}
}

// waitForObjects waits until the last objects applied are served on every
// listener: the last slice, the imported addresses of both clusters.
func waitForObjects(t *testing.T) {
	for _, w := range []struct {
		name    string
		answers int
		addrs   []string
	}{
		{"z-0.last.conf.svc.cluster.local.", 1, []string{shared.kubernetes, shared.both, shared.headless, shared.full.kubernetes, shared.full.both, shared.full.headless}},
		{"db.conf.svc.clusterset.local.", 3, []string{shared.full.kubernetes, shared.full.both, shared.full.headless}},
	} {
		for _, addr := range w.addrs {
			testkit.Eventually(t, 15*time.Second, w.name+" at "+listenerName(addr), func() (bool, string) {
				r := testkit.Query(t, "udp", addr, w.name, dns.TypeA)
				return r.Rcode == dns.RcodeSuccess && len(r.Answer) == w.answers, r.String()
			})
		}
	}
}

// named are the servers of other control planes than the shared one, whose
// listeners listenerName names too.
var named []*env

// listenerName names the listener of the shared server, or of a server of
// named, at addr.
func listenerName(addr string) string {
	type prefixed struct {
		ls     listeners
		prefix string
	}
	all := []prefixed{{shared.listeners, ""}, {shared.full, "full "}}
	for _, e := range named {
		all = append(all, prefixed{e.listeners, ""}, prefixed{e.full, "full "})
	}
	for _, l := range all {
		switch addr {
		case l.ls.both:
			return l.prefix + "headless+kubernetes"
		case l.ls.kubernetes:
			return l.prefix + "kubernetes"
		case l.ls.headless:
			return l.prefix + "headless"
		}
	}
	return addr
}
