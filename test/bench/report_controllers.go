package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/headlessdns/headless/test/cluster"
)

// controllersFigures holds the figures of the controllers scenario.
type controllersFigures struct {
	gang               map[shape]map[string]gangResult    // by shape and setup
	rollout            map[shape]map[string]rolloutResult // by shape and setup
	rolloutTook        map[shape]time.Duration
	maxUnavailableKept bool          // the API server kept the StatefulSet's maxUnavailable
	took               time.Duration // the whole scenario
	// The unready names case, by row (unreadyCases); empty when it did
	// not run.
	unready     map[string]unreadyResult
	unreadyTook time.Duration // from the create to the end of the asking
}

func newControllersFigures() controllersFigures {
	return controllersFigures{
		gang: map[shape]map[string]gangResult{}, rollout: map[shape]map[string]rolloutResult{}, rolloutTook: map[shape]time.Duration{},
		unready: map[string]unreadyResult{},
	}
}

func (r *report) addUnready(row string, res unreadyResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctl.unready[row] = res
}

func (r *report) setUnreadyTook(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctl.unreadyTook = d
}

// The unready names case's target from issue 26: the drop-in's p99 from a
// pod's address in a slice to its name's answer at most unreadyRatio times
// stock's with publishNotReadyAddresses, or at most unreadySlack more.
const (
	unreadyRatio = 1.2
	unreadySlack = 50 * time.Millisecond
)

// unreadyTargets are the unready names case's targets, when it ran: its
// pod names answer as soon as with publishNotReadyAddresses, and its
// Service's name holds no unready pod.
func (c *controllersFigures) unreadyTargets() []target {
	if len(c.unready) == 0 {
		return nil
	}
	d, s := c.unready[dropInUnready], c.unready[stockPublished]
	dp, sp := percentile(d.fromSlice, 0.99), percentile(s.fromSlice, 0.99)
	names := atMost(fmt.Sprintf("unready pod names, %s: p99 address in a slice to answer", unreadyShape),
		fmt.Sprintf("<= %gx or %s over stock", unreadyRatio, short(unreadySlack)),
		fmt.Sprintf("%s vs %s", short(dp), short(sp)), float64(dp), float64(sp), unreadyRatio)
	if d.unanswered > 0 || s.unanswered > 0 {
		names.measured += fmt.Sprintf(" (%d vs %d names unanswered)", d.unanswered, s.unanswered)
	}
	names.met = len(d.fromSlice) > 0 && d.unanswered == 0 && (float64(dp) <= unreadyRatio*float64(sp) || dp <= sp+unreadySlack)
	service := atMost(fmt.Sprintf("unready pod names, %s: Service name answers holding an unready pod", unreadyShape), "0",
		fmt.Sprintf("%d vs %d of %d vs %d answers", d.serviceUnready, s.serviceUnready, d.serviceAnswers, s.serviceAnswers),
		float64(d.serviceUnready), float64(s.serviceUnready), 0)
	service.met = d.serviceAnswers > 0 && d.serviceUnready == 0
	return []target{names, service}
}

func (r *report) addGang(sh shape, setup string, g gangResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctl.gang[sh] == nil {
		r.ctl.gang[sh] = map[string]gangResult{}
	}
	r.ctl.gang[sh][setup] = g
}

func (r *report) addRollout(sh shape, setup string, res rolloutResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctl.rollout[sh] == nil {
		r.ctl.rollout[sh] = map[string]rolloutResult{}
	}
	r.ctl.rollout[sh][setup] = res
}

func (r *report) addRolloutTime(sh shape, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctl.rolloutTook[sh] = d
}

func (r *report) setMaxUnavailableKept(kept bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctl.maxUnavailableKept = kept
}

// gangGoal is the drop-in's p99 from Ready to answer wanted in shape sh,
// from issue 18: 1s in kubeadm's shape, 6s behind a cache.
func gangGoal(sh shape) time.Duration {
	if sh == kubeadmShape {
		return time.Second
	}
	return 6 * time.Second
}

// targets are the drop-in's targets of issue 18 in each shape, stock's
// figure beside: the p99 from a pod's Ready to its name's answer while the
// StatefulSet starts, with no pod name left unanswered, and no wrong answer
// in the rolling restart.
func (c *controllersFigures) targets() []target {
	var ts []target
	for _, sh := range shapes {
		d, s := c.gang[sh][dropIn], c.gang[sh][stock]
		dp, sp := percentile(d.lag, 0.99), percentile(s.lag, 0.99)
		t := atMost(fmt.Sprintf("gang start, %s: p99 Ready to answer", sh), fmt.Sprintf("<= %s", gangGoal(sh)),
			fmt.Sprintf("%s vs %s", short(dp), short(sp)), float64(dp), float64(sp), 0)
		if d.unanswered > 0 || s.unanswered > 0 {
			t.measured += fmt.Sprintf(" (%d vs %d names unanswered)", d.unanswered, s.unanswered)
		}
		t.met = len(d.lag) > 0 && d.unanswered == 0 && dp <= gangGoal(sh)
		ts = append(ts, t)
	}
	for _, sh := range shapes {
		d, s := c.rollout[sh][dropIn], c.rollout[sh][stock]
		t := atMost(fmt.Sprintf("rolling restart, %s: wrong answers", sh), "0",
			fmt.Sprintf("%d vs %d of %d vs %d answers", d.wrong, s.wrong, d.answers, s.answers), float64(d.wrong), float64(s.wrong), 0)
		t.met = d.answers > 0 && d.wrong == 0
		ts = append(ts, t)
	}
	return append(ts, c.unreadyTargets()...)
}

// write writes the controllers scenario's section of the report.
func (c *controllersFigures) write(b *strings.Builder, cfg config, ts []target) {
	b.WriteString("\n## Controllers\n\n")
	fmt.Fprintf(b, "A control plane of its own with the controllers (kube-controller-manager, kube-scheduler) and kwok's fake nodes, which make pods Ready with an address and no container; one headless Service (`%s`, `publishNotReadyAddresses` false) and a StatefulSet of %d pods under it, `podManagementPolicy: Parallel`, `updateStrategy.rollingUpdate.maxUnavailable: %s`. ", serviceFQDN, cfg.gangPods, cfg.gangMaxUnavailable)
	if !c.maxUnavailableKept {
		b.WriteString("**The API server dropped `maxUnavailable` (the MaxUnavailableStatefulSet feature gate is off), so the rollout went one pod at a time.** ")
	}
	b.WriteString("For each shape in turn, **kubeadm**'s (`deploy/Corefile` as it is, whose cache keeps nothing of cluster.local), the **Helm chart**'s (a plain `cache 30` instead) and **NodeLocal DNSCache** (kubeadm's behind the node cache, `success 9984 30`, `denial 9984 5`, which the peers ask), as in the production shape, stock and drop-in run at once, unpinned, and the StatefulSet is created, restarted and deleted; the whole scenario took " + c.took.Round(time.Second).String() + ".\n\n")
	fmt.Fprintf(b, "**Gang start.** For each setup, a simulated peer asks, over UDP as pods do, for every pod's name (`%s-K.%s A`), each every %s on a fixed schedule spread over the interval, from just before the StatefulSet is created until the name answers with an address, then no more; for up to %s. ", gangName, strings.TrimSuffix(serviceFQDN, "."), peerInterval, cfg.gangWait)
	b.WriteString("One peer stands for the job: the cache in front is shared, so more peers asking the same names would find the same answers there. ")
	b.WriteString("A pod's Ready time is when the bench's watch of the pods first saw its Ready condition True: at or after the condition's transition. Ready to answer is the time from then to the first answer with an address, 0 when the name answered before the bench saw the pod Ready; it includes up to one interval of asking. Ready to EndpointSlice is the time from then to when the bench's watch of the EndpointSlices first saw the pod as a ready endpoint: the EndpointSlice controller's share, which no DNS server can beat. EndpointSlice to answer is the time from when the bench saw the pod as a ready endpoint to the first answer with an address, 0 if that came first: the DNS server's share, with up to one interval of asking. ")
	b.WriteString("The NXDOMAIN answers are those the peer received; the queries per second and CPU are the cluster DNS's (in NodeLocal DNSCache's shape, the server behind the node cache): its `coredns_dns_requests_total` and its user and system CPU time from `/proc/PID/stat`, read before the create and after the last answer, over the time from the create to the last answer.\n\n")
	fmt.Fprintf(b, "**Rolling restart.** Once every pod is Ready, the StatefulSet's pod template gets the `kubectl.kubernetes.io/restartedAt` annotation, as `kubectl rollout restart` does; a peer for each setup asks for every pod's name and the service's name, each every %s, from 2 s before until the rollout is done and the setup answers every pod's new address, for at most %s after the rollout. The bench watches the pods and keeps, for each pod name, each pod it had (an incarnation): its address, when it was first seen Ready, and when first seen terminating, deleted, or not Ready after Ready (gone). Each answer is judged against those timelines once the asking has stopped, so that a server ahead of the bench's watch is not blamed:\n\n", peerInterval, cfg.staleWait)
	b.WriteString("- **wrong**: for a pod name, an address that name never held (no incarnation of it had it); for the service name, an address of no pod of the set, current or past, or NXDOMAIN;\n")
	b.WriteString("- **missing**: for a pod name, NXDOMAIN or no address, to a question sent while an incarnation of that pod had been seen Ready, and not gone, for longer than the shape's allowed lag (1 s in kubeadm's shape, 6 s with a cache in front); for the service name, an answer without an address;\n")
	b.WriteString("- **stale**: answers holding a pod's previous address and not its current one, to questions sent after the current one was seen Ready; and, per pod the restart made again, the time from its Ready to the first answer holding its address (among answers to questions sent once the pod before it was gone), 0 if that came first. A pod whose address was never answered counts as the time until the asking stopped, and under never; a pod made again that went before its address was answered (the controller replaced it twice) has no such time, and counts under gone first.\n\n")
	b.WriteString("| figure | wanted | drop-in vs stock | ratio | met |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range ts {
		fmt.Fprintf(b, "| %s | %s | %s | %.2fx | %s |\n", t.name, t.want, t.measured, t.ratio, yes(t.met))
	}
	b.WriteString("\n| gang start | setup | p50 | p99 | max | Ready to EndpointSlice p50 | p99 | EndpointSlice to answer p50 | p99 | unanswered | NXDOMAIN answers | questions | all answered after | cluster DNS qps | cluster DNS CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, sh := range shapes {
		for _, s := range []string{stock, dropIn} {
			g := c.gang[sh][s]
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %s | %.0f | %.2f s |\n", sh, s,
				short(percentile(g.lag, 0.5)), short(percentile(g.lag, 0.99)), short(percentile(g.lag, 1)),
				short(percentile(g.published, 0.5)), short(percentile(g.published, 0.99)),
				short(percentile(g.fromSlice, 0.5)), short(percentile(g.fromSlice, 0.99)),
				g.unanswered, g.nxdomain, g.asked, g.took.Round(10*time.Millisecond), g.qps, g.cpu.Seconds())
		}
	}
	b.WriteString("\n| rolling restart | setup | rollout took | questions | answers | wrong | missing | stale answers | new address p50 | p99 | max | never | gone first |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, sh := range shapes {
		for _, s := range []string{stock, dropIn} {
			r := c.rollout[sh][s]
			fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %d | %d | %d | %s | %s | %s | %d | %d |\n", sh, s, c.rolloutTook[sh].Round(100*time.Millisecond),
				r.asked, r.answers, r.wrong, r.missing, r.staleAnswers,
				short(percentile(r.stale, 0.5)), short(percentile(r.stale, 0.99)), short(percentile(r.stale, 1)), r.unresolved, r.shortLived)
		}
	}
	var examples []string
	for _, sh := range shapes {
		for _, s := range []string{stock, dropIn} {
			for _, e := range c.rollout[sh][s].examples {
				examples = append(examples, fmt.Sprintf("%s, %s: %s", sh, s, e))
			}
		}
	}
	if len(examples) > 0 {
		fmt.Fprintf(b, "\nThe first wrong or missing answers and never answered addresses of each setup (up to %d):\n\n```\n%s\n```\n", maxExamples, strings.Join(examples, "\n"))
	}
	if len(c.unready) > 0 {
		c.writeUnready(b, cfg)
	}
}

// writeUnready writes the unready names case's paragraph and table.
func (c *controllersFigures) writeUnready(b *strings.Builder, cfg config) {
	fmt.Fprintf(b, "\n**Unready names.** Pods that have their addresses and stay unready for a while, as the members of a StatefulSet or a training job do while they find each other: two StatefulSets of %d pods each, `podManagementPolicy: Parallel`, created at once, their pods labelled `%s: \"true\"`, which kwok's stages for them make Running with an address and `Ready=False` at once, and `Ready=True` %s to %s later (uniformly at random). ", cfg.gangPods, cluster.SlowReadyLabel, cfg.unreadyFor, cfg.unreadyFor*6/5)
	fmt.Fprintf(b, "`%s` is under a headless Service with `publishNotReadyAddresses` false and the annotation `%s: \"true\"`; `%s` under one with `publishNotReadyAddresses: true`, the stock workaround, which the EndpointSlice controller lists as ready endpoints from the start. ", unreadySet, unreadyNamesAnnotation, publishedSet)
	fmt.Fprintf(b, "Each row has a process of its own, all running at once in %s's shape, whose cache keeps nothing of cluster.local: stock (`deploy/Corefile` without the headless block) asked for the names of `%s`; the drop-in (with `unready_names annotated` added to its headless block) asked for those of `%s`; and another stock asked for those of `%s` (neither: the names wait for Ready). ", unreadyShape, publishedSet, unreadySet, unreadySet)
	fmt.Fprintf(b, "For each row a peer asks for every pod's name every %s, as in the gang start, until it answers with an address, and another asks for the Service's own name every %s over TCP, so that every address of the answer is seen; from just before the create until every name answered and the bench saw every pod Ready, which took %s. ", peerInterval, serviceEvery, c.unreadyTook.Round(100*time.Millisecond))
	b.WriteString("Address in a slice to answer is, per pod, the time from when the bench's watch of the EndpointSlices first saw the pod as an endpoint, ready or not, to the first answer with an address, 0 if that came first; answered before Ready counts the names whose first address came before the bench saw the pod Ready; slice to Ready is the time from the first to when the bench saw the pod Ready, the time its name waits without the option. ")
	b.WriteString("An answer for the Service's name holds an unready pod when it holds the address of a pod of the set that the bench had not seen Ready when the answer came.\n\n")
	b.WriteString("| unready names | Service | answered before Ready | address in a slice to answer p50 | p99 | max | unanswered | slice to Ready p50 | NXDOMAIN answers | questions | Service name answers | holding an unready pod | unready pods in them |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, row := range unreadyCases {
		r := c.unready[row.name]
		fmt.Fprintf(b, "| %s | `%s` | %d of %d | %s | %s | %s | %d | %s | %d | %d | %d | %d | %d |\n", row.name, strings.TrimSuffix(setService(row.set), "."),
			r.beforeReady, cfg.gangPods, short(percentile(r.fromSlice, 0.5)), short(percentile(r.fromSlice, 0.99)), short(percentile(r.fromSlice, 1)),
			r.unanswered, short(percentile(r.toReady, 0.5)), r.nxdomain, r.asked, r.serviceAnswers, r.serviceUnready, r.unreadyPods)
	}
}
