package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/testkit"

	"github.com/miekg/dns"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The annotations of a Service that the options read (the root package's
// unreadyNamesAnnotation and answerLimitAnnotation).
const (
	unreadyNamesAnnotation = "headlessdns.io/unready-names"
	answerLimitAnnotation  = "headlessdns.io/answer-limit"
)

// optionsOnControllers proves unready_names, answer_limit and
// extended_errors on the slices the controllers made for the Services of
// TestControllers, over UDP and TCP, in front of kubernetes as deploy/Corefile
// has it: for the whole server block, and per Service through the
// annotations. The names the options leave alone answer as kubernetes does.
// The rules of each option are the root package's (options_test.go).
func optionsOnControllers(t *testing.T, e *env) {
	cached := dropIn("extended_errors")
	cached.Plugins = []string{"cache 30"}
	addrs := serveOn(t, e, dropIn("unready_names", "answer_limit 3", "extended_errors", "stable_ptr"),
		dropIn("unready_names annotated", "answer_limit annotated", "extended_errors"), cached)
	all, annotated, behindCache := addrs[0], addrs[1], addrs[2]
	const web0, web, workers = "web-0.web.scale.svc.cluster.local.", "web.scale.svc.cluster.local.", "workers.training.svc.cluster.local."

	// answer_limit: 3 of the 8 workers in each answer, without TC, and
	// every worker in some answer; the SRV answer's glue is its targets'.
	seen := map[string]bool{}
	for _, net := range []string{"udp", "tcp"} {
		for range 40 {
			a := testkit.Query(t, net, all, workers, dns.TypeA)
			if len(a.Answer) != 3 || a.Truncated {
				t.Fatalf("%s A over %s with answer_limit 3: %d records, truncated %v", workers, net, len(a.Answer), a.Truncated)
			}
			for _, rr := range a.Answer {
				seen[rr.(*dns.A).A.String()] = true
			}
		}
		srv := testkit.Query(t, net, all, "_nccl._tcp."+workers, dns.TypeSRV)
		targets := map[string]bool{}
		for _, rr := range srv.Answer {
			targets[rr.(*dns.SRV).Target] = true
		}
		glued := map[string]bool{}
		for _, rr := range srv.Extra {
			if _, ok := rr.(*dns.A); ok {
				glued[rr.Header().Name] = true
			}
		}
		if len(srv.Answer) != 3 || fmt.Sprint(targets) != fmt.Sprint(glued) {
			t.Errorf("_nccl._tcp.%s SRV over %s with answer_limit 3: %d records, targets %v, glue for %v", workers, net, len(srv.Answer), targets, glued)
		}
	}
	if len(seen) != 8 {
		t.Errorf("%s: %d workers in 80 answers of 3, want all 8", workers, len(seen))
	}
	annotate(t, e, "training", "workers", answerLimitAnnotation, "2")
	eventuallyAnswers(t, annotated, workers, dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 2 && !r.Truncated })

	// unready_names and extended_errors: web-0, the one pod of web, not
	// ready. Its name answers with unready_names, and with the annotation;
	// otherwise NXDOMAIN says why. The service's own name stays as
	// kubernetes answers it, its reason added.
	setReady(t, e, "scale", "web-0", false)
	defer setReady(t, e, "scale", "web-0", true)
	var addr string
	testkit.Eventually(t, time.Minute, "web-0 not ready in the slices", func() (bool, string) {
		s, err := testkit.ServiceSlices(t.Context(), e.cluster.Client, "scale", "web")
		for _, sl := range s {
			for _, ep := range sl.Endpoints {
				if deref(ep.Hostname, "") == "web-0" && !deref(ep.Conditions.Ready, true) {
					addr = ep.Addresses[0]
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%s %v", describe(s), err)
	})
	eventuallyAnswers(t, all, web0, dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == addr })
	rev, _ := dns.ReverseAddr(addr)
	for _, net := range []string{"udp", "tcp"} {
		checkReason(t, net, annotated, web0, dns.TypeA, dns.RcodeNameError, "endpoint not ready")
		checkReason(t, net, all, web, dns.TypeA, dns.RcodeNameError, "no ready endpoint")
		if k := testkit.Query(t, net, e.kubernetes, web, dns.TypeA); k.Rcode != dns.RcodeNameError {
			t.Errorf("%s over %s at kubernetes: %s, the test wants NXDOMAIN", web, net, dns.RcodeToString[k.Rcode])
		}
		checkReason(t, net, all, "_grpc._tcp.workers.training.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, "no such port")
		if r := testkit.Query(t, net, all, rev, dns.TypePTR); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != web0 {
			t.Errorf("PTR of %s over %s with unready_names and stable_ptr: %v, want %s", addr, net, r, web0)
		}
	}
	annotate(t, e, "scale", "web", unreadyNamesAnnotation, "true")
	eventuallyAnswers(t, annotated, web0, dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == addr })

	// Behind the cache plugin, which drops the OPT record of every answer
	// it passes on (coredns/coredns#5761), no reason reaches the client,
	// neither on a miss nor on a hit, as README says.
	for _, net := range []string{"udp", "tcp", "udp"} {
		checkReason(t, net, behindCache, "web-9.web.scale.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, "")
	}
}

// checkReason asks addr for name over net, with EDNS, and fails the test
// unless the answer has rcode, no records, and an Extended DNS Error of
// text want ("": none).
func checkReason(t *testing.T, net, addr, name string, qtype uint16, rcode int, want string) {
	t.Helper()
	m := testkit.NewQuery(name, qtype)
	m.SetEdns0(1232, false)
	r, err := testkit.Exchange(net, addr, m)
	if err != nil {
		t.Fatalf("%s over %s: %v", name, net, err)
	}
	got := ""
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				got = ede.ExtraText
			}
		}
	}
	if r.Rcode != rcode || len(r.Answer) != 0 || got != want {
		t.Errorf("%s %s over %s at %s: %s, extended error %q; want %s, %q", name, dns.TypeToString[qtype], net, listenerName(addr), dns.RcodeToString[r.Rcode], got, dns.RcodeToString[rcode], want)
	}
}

// eventuallyAnswers waits until addr's answer to name over UDP and TCP
// satisfies ok.
func eventuallyAnswers(t *testing.T, addr, name string, qtype uint16, ok func(*dns.Msg) bool) {
	t.Helper()
	for _, net := range []string{"udp", "tcp"} {
		testkit.Eventually(t, 15*time.Second, fmt.Sprintf("%s %s over %s", name, dns.TypeToString[qtype], net), func() (bool, string) {
			r := testkit.Query(t, net, addr, name, qtype)
			return ok(r), r.String()
		})
	}
}

// annotate sets an annotation of the Service namespace/name.
func annotate(t *testing.T, e *env, namespace, name, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	if _, err := e.cluster.Client.CoreV1().Services(namespace).Patch(t.Context(), name, types.MergePatchType, []byte(patch), meta.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
