package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestClassify judges synthetic answers against a synthetic rollout: pod
// gang-0 restarts from 10.0.0.1 to 10.0.0.2, gang-1 keeps 10.0.0.3.
func TestClassify(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	a1, a2, a3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	stranger := netip.MustParseAddr("10.9.9.9")
	pods := []string{"gang-0", "gang-1"}
	timelines := map[string][]incarnation{
		"gang-0": {
			{uid: "a", addr: a1, created: at(0), ready: at(1), gone: at(10)},
			{uid: "b", addr: a2, created: at(10.5), ready: at(12)},
		},
		"gang-1": {{uid: "c", addr: a3, created: at(0), ready: at(1)}},
	}
	const lag = time.Second
	ans := func(name int, sent float64, rcode int, addrs ...netip.Addr) answer {
		return answer{name: name, sent: at(sent), received: at(sent).Add(time.Millisecond), rcode: rcode, addrs: addrs}
	}
	ok, nx := dns.RcodeSuccess, dns.RcodeNameError
	service := len(pods)
	for _, tc := range []struct {
		name                         string
		timelines                    map[string][]incarnation // the default's when nil
		answers                      []answer
		wrong, missing, staleAnswers int
		staleMax                     time.Duration
		unresolved, shortLived       int
		example                      string // in the examples, when not empty
	}{{
		name: "clean: NXDOMAIN in the gap and within the lag, the new address at once",
		answers: []answer{
			ans(0, 5, ok, a1), ans(0, 10.2, nx), ans(0, 12.5, nx), ans(0, 12.9, ok, a2),
			ans(1, 5, ok, a3), ans(service, 5, ok, a1, a3), ans(service, 11, ok, a3),
		},
		staleMax: 901 * time.Millisecond,
	}, {
		name:       "an address the pod never held, and one of no pod for the service",
		answers:    []answer{ans(0, 5, ok, a3), ans(service, 5, ok, stranger), ans(0, 13, ok, a2)},
		wrong:      2,
		example:    "gang-0: 10.0.0.3, never its address",
		staleMax:   1001 * time.Millisecond,
		unresolved: 0,
	}, {
		name:     "NXDOMAIN for the service",
		answers:  []answer{ans(service, 5, nx), ans(0, 12, ok, a2)},
		wrong:    1,
		staleMax: time.Millisecond,
	}, {
		name:     "NXDOMAIN for a pod Ready for longer than the lag, and an empty answer for the service",
		answers:  []answer{ans(1, 2.5, nx), ans(0, 13.5, nx), ans(service, 5, ok), ans(0, 14, ok, a2)},
		missing:  3,
		staleMax: 2001 * time.Millisecond,
	}, {
		name:         "the old address after the new pod is Ready: stale, not wrong",
		answers:      []answer{ans(0, 12.5, ok, a1), ans(0, 20, ok, a1), ans(0, 25, ok, a2)},
		staleAnswers: 2,
		staleMax:     13001 * time.Millisecond,
	}, {
		name:         "the new address never answered",
		answers:      []answer{ans(0, 20, ok, a1)},
		staleAnswers: 1,
		staleMax:     18 * time.Second,
		unresolved:   1,
	}, {
		name: "a pod made again twice, the middle one gone before it was answered: no stale time for it",
		timelines: map[string][]incarnation{
			"gang-0": {
				{uid: "a", addr: a1, created: at(0), ready: at(1), gone: at(10)},
				{uid: "b", addr: a2, created: at(10.5), ready: at(11), gone: at(11.3)},
				{uid: "d", addr: a1, created: at(11.5), ready: at(12)},
			},
			"gang-1": timelines["gang-1"],
		},
		answers:      []answer{ans(0, 11.125, ok, a1), ans(0, 12.25, ok, a1)},
		staleAnswers: 1,
		staleMax:     251 * time.Millisecond,
		shortLived:   1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tl := tc.timelines
			if tl == nil {
				tl = timelines
			}
			r := classify(pods, tl, tc.answers, lag, at(30))
			if r.wrong != tc.wrong || r.missing != tc.missing || r.staleAnswers != tc.staleAnswers || r.unresolved != tc.unresolved || r.shortLived != tc.shortLived {
				t.Errorf("wrong %d, missing %d, stale answers %d, never %d, gone first %d; want %d, %d, %d, %d, %d\n%s",
					r.wrong, r.missing, r.staleAnswers, r.unresolved, r.shortLived, tc.wrong, tc.missing, tc.staleAnswers, tc.unresolved, tc.shortLived, r)
			}
			if tc.example != "" && !slices.ContainsFunc(r.examples, func(e string) bool { return strings.Contains(e, tc.example) }) {
				t.Errorf("no example %q in %q", tc.example, r.examples)
			}
			if got := percentile(r.stale, 1); got != tc.staleMax {
				t.Errorf("stale max %s, want %s", got, tc.staleMax)
			}
		})
	}
}
