package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// rolloutResult is how one setup answered the peers during a rolling
// restart: see classify.
type rolloutResult struct {
	asked, answers int
	wrong          int             // answers with an address the name never held, or NXDOMAIN for the service
	missing        int             // no address for a pod the bench saw Ready for over the lag, or none at all for the service
	staleAnswers   int             // answers with a pod's previous address and not its current one, once the current was Ready
	stale          []time.Duration // per pod made again: from its Ready to the first answer with its address
	unresolved     int             // pods made again whose address was never answered; in stale as until the end
	shortLived     int             // pods made again that went before their address was answered; not in stale
	examples       []string        // the first wrong and missing answers and unanswered addresses, one a name, for the log
}

// maxExamples is how many wrong or missing answers a result describes.
const maxExamples = 5

// classify judges the answers of one setup during a rolling restart.
// Answer k with k < len(pods) is for the pod name pods[k], answer
// len(pods) for the service's name; timelines are the incarnations of each
// pod name as the bench's watch saw them, over the whole time asked; end is
// when the asking stopped.
//
//   - wrong: an answer for a pod name with an address that name never held
//     (no incarnation of it had that address), or for the service name with
//     an address of no incarnation of any pod, or NXDOMAIN for the service
//     name, which exists throughout.
//   - missing: an answer for a pod name without an address (NXDOMAIN or
//     empty) to a question sent while an incarnation of that pod had been
//     Ready for more than lag and was not gone; or an empty answer for the
//     service name.
//   - stale: for each incarnation after a pod name's first (made by the
//     restart) that was seen Ready, the time from that Ready to the receipt
//     of the first answer holding its address among those asked after the
//     incarnation before it was gone, 0 if it came before the Ready; and
//     the count of answers, to questions sent once an incarnation was
//     Ready, that hold an earlier incarnation's address and not its own. An
//     incarnation gone before any answer held its address (the controller
//     replaced the pod again) has no stale time: it counts as short-lived.
func classify(pods []string, timelines map[string][]incarnation, answers []answer, lag time.Duration, end time.Time) rolloutResult {
	r := rolloutResult{answers: len(answers)}
	everAddr := map[netip.Addr]bool{}
	for _, ins := range timelines {
		for _, in := range ins {
			if in.addr.IsValid() {
				everAddr[in.addr] = true
			}
		}
	}
	byName := make([][]answer, len(pods)+1)
	for _, a := range answers {
		if a.name >= 0 && a.name <= len(pods) {
			byName[a.name] = append(byName[a.name], a)
		}
	}
	noted := map[string]bool{} // one example a name
	note := func(name, format string, args ...any) {
		if len(r.examples) < maxExamples && !noted[name] {
			noted[name] = true
			r.examples = append(r.examples, name+": "+fmt.Sprintf(format, args...))
		}
	}
	for _, a := range byName[len(pods)] {
		switch {
		case a.rcode == dns.RcodeNameError:
			r.wrong++
			note("the service", "NXDOMAIN at %s", a.sent.Format(time.StampMilli))
		case len(a.addrs) == 0:
			r.missing++
			note("the service", "%s without an address at %s", dns.RcodeToString[a.rcode], a.sent.Format(time.StampMilli))
		default:
			for _, addr := range a.addrs {
				if !everAddr[addr] {
					r.wrong++
					note("the service", "%s, no pod's address, at %s", addr, a.sent.Format(time.StampMilli))
					break
				}
			}
		}
	}
	for k, pod := range pods {
		ins := timelines[pod]
		held := func(addr netip.Addr) int {
			return slices.IndexFunc(ins, func(in incarnation) bool { return in.addr == addr })
		}
		for _, a := range byName[k] {
			if len(a.addrs) == 0 {
				if i := slices.IndexFunc(ins, func(in incarnation) bool { return in.live(a.sent, lag) }); i >= 0 {
					r.missing++
					note(pod, "%s at %s, Ready since %s", dns.RcodeToString[a.rcode], a.sent.Format(time.StampMilli), ins[i].ready.Format(time.StampMilli))
				}
				continue
			}
			for _, addr := range a.addrs {
				if held(addr) < 0 {
					r.wrong++
					note(pod, "%s, never its address, at %s", addr, a.sent.Format(time.StampMilli))
					break
				}
			}
			cur := slices.IndexFunc(ins, func(in incarnation) bool { return in.live(a.sent, 0) })
			if cur > 0 && !slices.Contains(a.addrs, ins[cur].addr) &&
				slices.ContainsFunc(a.addrs, func(addr netip.Addr) bool { i := held(addr); return i >= 0 && i < cur }) {
				r.staleAnswers++
			}
		}
		for i := 1; i < len(ins); i++ {
			in := ins[i]
			if in.ready.IsZero() || !in.addr.IsValid() {
				continue
			}
			since := ins[i-1].gone
			if since.IsZero() {
				since = in.created
			}
			first := slices.IndexFunc(byName[k], func(a answer) bool { return !a.sent.Before(since) && slices.Contains(a.addrs, in.addr) })
			if first < 0 && !in.gone.IsZero() {
				// Made again and gone before its address was answered,
				// as when the controller replaces a pod twice.
				r.shortLived++
				note(pod, "%s gone at %s before it was answered, Ready since %s", in.addr, in.gone.Format(time.StampMilli), in.ready.Format(time.StampMilli))
				continue
			}
			if first < 0 {
				note(pod, "%s never answered, Ready since %s", in.addr, in.ready.Format(time.StampMilli))
				r.unresolved++
				r.stale = append(r.stale, end.Sub(in.ready))
				continue
			}
			r.stale = append(r.stale, max(0, byName[k][first].received.Sub(in.ready)))
		}
	}
	return r
}

// String is the result in one line, for the log.
func (r rolloutResult) String() string {
	s := fmt.Sprintf("%d answers to %d questions: %d wrong, %d missing, %d stale; new address p99 %s, max %s after Ready, %d never, %d pods gone first",
		r.answers, r.asked, r.wrong, r.missing, r.staleAnswers, short(percentile(r.stale, 0.99)), short(percentile(r.stale, 1)), r.unresolved, r.shortLived)
	if len(r.examples) > 0 {
		s += "; " + strings.Join(r.examples, "; ")
	}
	return s
}
