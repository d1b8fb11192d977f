package main

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
	"github.com/headlessdns/headless/test/cluster"

	"github.com/miekg/dns"
	core "k8s.io/api/core/v1"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The controllers scenario's unready names case (issue 26): pods that have
// their addresses and stay unready for a while, as members of a StatefulSet
// or a training job do while they find each other. Two StatefulSets of
// cfg.gangPods pods start at once, Parallel, their pods labelled for
// kwok's slow-ready stages (cluster.SlowReadyLabel), each under a headless
// Service of its own: unreadySet's with publishNotReadyAddresses false,
// annotated for unready_names, and publishedSet's with
// publishNotReadyAddresses true, the stock workaround.
const (
	unreadySet   = "unready"
	publishedSet = "published"
	// unreadyNamesAnnotation turns unready_names on for one Service under
	// `unready_names annotated`.
	unreadyNamesAnnotation = "headlessdns.io/unready-names"
	// unreadyShape is the shape the case runs in: kubeadm's, whose cache
	// keeps nothing of cluster.local, so that the answers are the servers'.
	unreadyShape = kubeadmShape
	// serviceEvery is how often the Service's own name is asked, over TCP,
	// so that every address of the answer is seen.
	serviceEvery = 100 * time.Millisecond
)

// The rows of the case: which setup the peers ask, for the names of which
// set.
const (
	stockPublished = "stock, publishNotReadyAddresses"
	dropInUnready  = "drop-in, unready_names"
	stockNeither   = "stock, neither"
)

// unreadyCase is a row of the case: setup asked for the names of set.
type unreadyCase struct {
	name, setup, set string
}

var unreadyCases = []unreadyCase{
	{stockPublished, stock, publishedSet},
	{dropInUnready, dropIn, unreadySet},
	{stockNeither, stock, unreadySet},
}

// unreadyResult is what one row measured.
type unreadyResult struct {
	fromSlice   []time.Duration // per pod answered: from the bench seeing its address in a slice to its name's first address, 0 if before
	toReady     []time.Duration // per pod: from the bench seeing its address in a slice to seeing it Ready
	beforeReady int             // pod names whose first address came before the bench saw the pod Ready
	unanswered  int             // pod names without an address by the end
	unlisted    int             // pod names answered whose pod the bench never saw in a slice
	asked       int             // questions for the pod names
	nxdomain    int             // NXDOMAIN answers to them
	// The Service's own name, asked over TCP: its answers, those holding
	// an address of a pod the bench had not seen Ready when the answer
	// came, and how many pods those were.
	serviceAnswers, serviceUnready, unreadyPods int
	serviceFailed                               int // questions for it without an answer
}

// setPod is the name of the i-th pod of set, and setFQDN its DNS name;
// setService is the set's Service's name.
func setPod(set string, i int) string { return set + "-" + strconv.Itoa(i) }

func setFQDN(set string, i int) string {
	return fmt.Sprintf("%s.%s.%s.svc.cluster.local.", setPod(set, i), set, gangNamespace)
}

func setService(set string) string { return set + "." + gangNamespace + ".svc.cluster.local." }

// measureUnreadyNames runs the unready names case: a process for each row,
// stock as shipped or the drop-in with `unready_names annotated`, in
// unreadyShape; for each row a
// peer asks for every pod name of its set every peerInterval until it has
// an address, and another for the set's Service name every serviceEvery
// over TCP, from before the StatefulSets are created until every pod name
// answered and every pod was seen Ready, for up to cfg.gangWait.
func (b *bench) measureUnreadyNames(ctx context.Context) error {
	n, sh, client := b.cfg.gangPods, unreadyShape, b.cluster.Client
	port := testkit.ServicePort("http", 80, core.ProtocolTCP)
	unready, published := testkit.Headless(gangNamespace, unreadySet, port), testkit.Headless(gangNamespace, publishedSet, port)
	unready.Annotations = map[string]string{unreadyNamesAnnotation: "true"}
	published.Spec.PublishNotReadyAddresses = true
	if err := (testkit.Workload{Services: []*core.Service{unready, published}}).Create(ctx, client); err != nil {
		return err
	}
	// A process for each row, so that no row's questions wait behind
	// another's.
	setupOf := map[string]string{}
	var rows []string
	for _, c := range unreadyCases {
		setupOf[c.name] = c.setup
		rows = append(rows, c.name)
	}
	procs, err := startEach(rows, func(row string) (*prodProc, error) {
		p, err := b.startShapeWith(ctx, setupOf[row], -1, sh, false, "unready_names annotated")
		if err != nil {
			return nil, err
		}
		if err := answered(ctx, p.addr, "kubernetes.default.svc.cluster.local.", 100*time.Millisecond, time.Minute); err != nil {
			p.stop()
			return nil, fmt.Errorf("%s: %w", row, err)
		}
		return p, nil
	})
	if err != nil {
		return err
	}
	defer procs.stop()
	watch := watchPods(client, gangNamespace)
	defer watch.stop()

	askers, services := map[string]*peers{}, map[string]*serviceAsker{}
	defer func() {
		stopPeers(slices.Collect(maps.Values(askers))...)
		for _, a := range services {
			a.stop()
		}
	}()
	for _, c := range unreadyCases {
		names := make([]string, n)
		for i := range names {
			names[i] = setFQDN(c.set, i)
		}
		a, err := startPeers(procs[c.name].addr, names, peerInterval, true)
		if err != nil {
			return err
		}
		askers[c.name] = a
		services[c.name] = askService(procs[c.name].addr, setService(c.set), serviceEvery)
	}
	within := b.cfg.unreadyFor * 6 / 5
	fmt.Fprintf(b.log, "controllers: %s: creating 2 StatefulSets of %d pods (Parallel) that stay unready %s to %s ...\n", sh, n, b.cfg.unreadyFor, within)
	created := time.Now()
	for _, set := range []string{unreadySet, publishedSet} {
		sts := testkit.StatefulSet(gangNamespace, set, set, int32(n), true)
		t := &sts.Spec.Template
		t.Labels[cluster.SlowReadyLabel] = "true"
		t.Annotations = map[string]string{cluster.ReadyAfterAnnotation: b.cfg.unreadyFor.String(), cluster.ReadyWithinAnnotation: within.String()}
		if _, err := client.AppsV1().StatefulSets(gangNamespace).Create(ctx, sts, meta.CreateOptions{}); err != nil {
			return err
		}
	}
	deadline := created.Add(b.cfg.gangWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		all := true
		for _, a := range askers {
			all = all && a.allAnswered()
		}
		tl := watch.timelines()
		if all && setReady(tl, unreadySet, n) == n && setReady(tl, publishedSet, n) == n {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	took := time.Since(created)
	stopPeers(slices.Collect(maps.Values(askers))...)
	for _, a := range services {
		a.stop()
	}
	stopped, asked := askers, services
	askers, services = nil, nil
	b.rep.setUnreadyTook(took)
	timelines := watch.timelines()
	for _, c := range unreadyCases {
		r := judgeUnready(timelines, c.set, n, stopped[c.name], asked[c.name].answers)
		r.serviceFailed = asked[c.name].failed
		b.rep.addUnready(c.name, r)
		fmt.Fprintf(b.log, "controllers: %s: %s: address in a slice to answer p50 %s, p99 %s, max %s; %d of %d names answered before Ready, %d unanswered; slice to Ready p50 %s; the Service's name: %d of %d answers held an unready pod (%d pods), %d unanswered; %d NXDOMAIN of %d questions, over %s\n",
			sh, c.name, short(percentile(r.fromSlice, 0.5)), short(percentile(r.fromSlice, 0.99)), short(percentile(r.fromSlice, 1)),
			r.beforeReady, n, r.unanswered, short(percentile(r.toReady, 0.5)), r.serviceUnready, r.serviceAnswers, r.unreadyPods, r.serviceFailed,
			r.nxdomain, r.asked, took.Round(time.Millisecond))
	}
	// The next scenario has a control plane of its own: the pods go in the
	// background.
	background := meta.DeletePropagationBackground
	for _, set := range []string{unreadySet, publishedSet} {
		if err := client.AppsV1().StatefulSets(gangNamespace).Delete(ctx, set, meta.DeleteOptions{PropagationPolicy: &background}); err != nil {
			return err
		}
	}
	return nil
}

// setReady counts the pods of set, of n, that the bench saw Ready.
func setReady(timelines map[string][]incarnation, set string, n int) int {
	ready := 0
	for i := range n {
		if ins := timelines[setPod(set, i)]; len(ins) > 0 && !ins[0].ready.IsZero() {
			ready++
		}
	}
	return ready
}

// judgeUnready reads one row's figures: the pod names of set, of n, asked
// by a, against the first pod of each name in timelines, and the answers
// for the Service's name, each against the pods of the set the bench had
// seen Ready by the time it came.
func judgeUnready(timelines map[string][]incarnation, set string, n int, a *peers, service []answer) unreadyResult {
	r := unreadyResult{asked: a.asked, nxdomain: a.nxdomain}
	byAddr := map[netip.Addr]incarnation{}
	for i := range n {
		var in incarnation
		if ins := timelines[setPod(set, i)]; len(ins) > 0 {
			in = ins[0]
		}
		if in.addr.IsValid() {
			byAddr[in.addr] = in
		}
		if !in.listed.IsZero() && !in.ready.IsZero() {
			r.toReady = append(r.toReady, max(0, in.ready.Sub(in.listed)))
		}
		at := a.firstAddress(i)
		switch {
		case at.IsZero():
			r.unanswered++
			continue
		case in.ready.IsZero() || at.Before(in.ready):
			r.beforeReady++
		}
		if in.listed.IsZero() {
			r.unlisted++
			continue
		}
		r.fromSlice = append(r.fromSlice, max(0, at.Sub(in.listed)))
	}
	unready := map[netip.Addr]bool{}
	for _, ans := range service {
		r.serviceAnswers++
		held := false
		for _, addr := range ans.addrs {
			if in, ok := byAddr[addr]; ok && (in.ready.IsZero() || in.ready.After(ans.received)) {
				held, unready[addr] = true, true
			}
		}
		if held {
			r.serviceUnready++
		}
	}
	r.unreadyPods = len(unready)
	return r
}

// serviceAsker asks one server for a name's A records over one TCP
// connection, dialled again after an error, once every interval, each
// question after the answer to the one before, and keeps the answers.
type serviceAsker struct {
	quit, done chan struct{}
	answers    []answer // readable after stop
	failed     int      // questions without an answer
}

func askService(addr, name string, every time.Duration) *serviceAsker {
	a := &serviceAsker{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		var conn *dns.Conn
		defer func() {
			if conn != nil {
				conn.Close()
			}
		}()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-a.quit:
				return
			case <-tick.C:
			}
			if conn == nil {
				c, err := dns.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					a.failed++
					continue
				}
				conn = c
			}
			sent := time.Now()
			_ = conn.SetDeadline(sent.Add(2 * time.Second))
			var r *dns.Msg
			err := conn.WriteMsg(m)
			if err == nil {
				r, err = conn.ReadMsg()
			}
			if err != nil {
				a.failed++
				conn.Close()
				conn = nil
				continue
			}
			ans := answer{sent: sent, received: time.Now(), rcode: r.Rcode}
			for _, rr := range r.Answer {
				if rec, ok := rr.(*dns.A); ok {
					if addr, ok := netip.AddrFromSlice(rec.A.To4()); ok {
						ans.addrs = append(ans.addrs, addr)
					}
				}
			}
			a.answers = append(a.answers, ans)
		}
	}()
	return a
}

// stop stops the asking and waits for the question in flight.
func (a *serviceAsker) stop() {
	close(a.quit)
	<-a.done
}
