package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func (r *report) addBigLoad(size bigSize, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bigLoad[size.String()] = d
}

func (r *report) addBig(size bigSize, kind string, res bigResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.big[size.String()] == nil {
		r.big[size.String()] = map[string]bigResult{}
		r.bigSizes = append(r.bigSizes, size)
	}
	r.big[size.String()][kind] = res
}

// The slack of the big-service targets: measured one after the other on a
// shared machine, headless's figure may exceed kubernetes's by this factor
// or, for times, this much, whichever is larger.
const (
	slackFactor = 1.2
	slackTime   = 50 * time.Millisecond
)

// bigTargets are the targets of issue 17 at each size: headless's
// programming latency (p50, p99), peak memory and other-name p99 within the
// slack of kubernetes's.
func (r *report) bigTargets() []target {
	var ts []target
	for _, size := range r.bigSizes {
		h, k := r.big[size.String()][headless], r.big[size.String()][kubernetesKind]
		prefix := fmt.Sprintf("big service, %d endpoints at %d writes/s: ", size.endpoints, size.rate)
		for _, p := range []float64{0.5, 0.99} {
			t := withSlack(fmt.Sprintf("%sprogramming latency p%.0f", prefix, p*100), percentile(h.latency, p), percentile(k.latency, p))
			if h.unanswered > 0 || k.unanswered > 0 {
				t.measured += fmt.Sprintf(" (%d vs %d writes unanswered after %s)", h.unanswered, k.unanswered, writeTimeout)
			}
			t.met = t.met && h.unanswered == 0 && len(h.latency) > 0
			ts = append(ts, t)
		}
		hp, kp := float64(h.peakRSSKB)/1024, float64(k.peakRSSKB)/1024
		ts = append(ts, atMost(prefix+"peak memory (VmRSS) during the writes", fmt.Sprintf("<= %gx kubernetes", slackFactor),
			fmt.Sprintf("%.1f vs %.1f MB", hp, kp), hp, kp, slackFactor))
		t := withSlack(prefix+"p99 of another service's A during the writes", percentile(h.other, 0.99), percentile(k.other, 0.99))
		if h.otherLost > 0 || k.otherLost > 0 {
			t.measured += fmt.Sprintf(" (%d vs %d lost)", h.otherLost, k.otherLost)
		}
		t.met = t.met && len(h.other) > 0
		ts = append(ts, t)
	}
	return ts
}

// withSlack is a target on headless's time h against kubernetes's k: at most
// slackFactor times k or k plus slackTime, whichever is larger.
func withSlack(name string, h, k time.Duration) target {
	goal := slackFactor
	if k > 0 {
		goal = max(goal, float64(k+slackTime)/float64(k))
	}
	t := atMost(name, fmt.Sprintf("<= %gx kubernetes or +%s", slackFactor, slackTime),
		fmt.Sprintf("%s vs %s", short(h), short(k)), float64(h), float64(k), goal)
	t.met = t.met && k > 0
	return t
}

// short rounds d to 3 significant digits.
func short(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit)
}

// indexUpdateLine is a line of BenchmarkIndexUpdate in go test's output: the
// endpoints, the time and the bytes allocated per update.
var indexUpdateLine = regexp.MustCompile(`(?m)^BenchmarkIndexUpdate/endpoints-([0-9]+)(?:-[0-9]+)?\s+[0-9]+\s+([0-9.]+) ns/op\s+([0-9.]+) B/op`)

// inProcessTargets are the in-process targets of issue 17, read from the Go
// benchmark output when there is one: one slice update in a service of
// 10000 endpoints (100 slices) costs at most 3x the time and bytes of one in
// a service of 100 (1 slice), and in one of 50000 (500 slices) at most 10x.
func (r *report) inProcessTargets() []target {
	if r.goBench == "" {
		return nil
	}
	ns, bytes := map[int]float64{}, map[int]float64{}
	for _, m := range indexUpdateLine.FindAllStringSubmatch(r.goBench, -1) {
		n, _ := strconv.Atoi(m[1])
		ns[n], _ = strconv.ParseFloat(m[2], 64)
		bytes[n], _ = strconv.ParseFloat(m[3], 64)
	}
	const small = 100
	var ts []target
	for _, row := range []struct {
		endpoints int
		goal      float64
	}{{10000, 3}, {50000, 10}} {
		name := fmt.Sprintf("in process: one slice update, %d endpoints (%d slices)", row.endpoints, row.endpoints/bigSliceLen)
		want := fmt.Sprintf("<= %gx %d endpoints (1 slice)", row.goal, small)
		for _, f := range []struct {
			what   string
			values map[int]float64
			format func(float64) string
		}{
			{"time", ns, func(v float64) string { return short(time.Duration(v)).String() }},
			{"bytes allocated", bytes, megabytes},
		} {
			big, base := f.values[row.endpoints], f.values[small]
			t := atMost(name+", "+f.what, want, fmt.Sprintf("%s vs %s", f.format(big), f.format(base)), big, base, row.goal)
			if big == 0 || base == 0 {
				t.measured, t.met = fmt.Sprintf("not in the Go benchmark output (BenchmarkIndexUpdate/endpoints-%d and -%d)", row.endpoints, small), false
			}
			ts = append(ts, t)
		}
	}
	return append(ts, r.queryPathTargets()...)
}

// serveDNSAllocsLine is a line of BenchmarkServeDNS for headless in go
// test's output: the case and the allocations per query.
var serveDNSAllocsLine = regexp.MustCompile(`(?m)^BenchmarkServeDNS/([a-zA-Z0-9-]+)/headless(?:-[0-9]+)?\s+[0-9]+\s+[0-9.]+ ns/op\s+[0-9.]+ B/op\s+([0-9]+) allocs/op`)

// indexMemoryLine is BenchmarkIndexMemory's line: the heap per endpoint.
var indexMemoryLine = regexp.MustCompile(`(?m)^BenchmarkIndexMemory(?:-[0-9]+)?\s.*?([0-9.]+) B/endpoint`)

// queryPathTargets are the in-process targets of issue 17 on queries and
// memory: the seed's A question and a pod's A question with at most 3
// allocations each, and the index at most 292 bytes an endpoint.
func (r *report) queryPathTargets() []target {
	allocs := map[string]float64{}
	for _, m := range serveDNSAllocsLine.FindAllStringSubmatch(r.goBench, -1) {
		allocs[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	var ts []target
	for _, c := range []struct{ name, what string }{{"seed-A", "the seed's A question"}, {"pod-A", "a pod's A question"}} {
		n, ok := allocs[c.name]
		ts = append(ts, goBenchAtMost("in process: allocations of "+c.what, "<= 3", fmt.Sprintf("%.0f vs 3", n),
			"BenchmarkServeDNS/"+c.name+"/headless", n, 3, ok))
	}
	m := indexMemoryLine.FindStringSubmatch(r.goBench)
	var perEndpoint float64
	if m != nil {
		perEndpoint, _ = strconv.ParseFloat(m[1], 64)
	}
	return append(ts, goBenchAtMost("in process: index memory an endpoint", "<= 292 B", fmt.Sprintf("%.0f B vs 292 B", perEndpoint),
		"BenchmarkIndexMemory", perEndpoint, 292, m != nil))
}

// goBenchAtMost is the target of at most limit on a figure of the Go
// benchmark output, unmet when the benchmark's line is missing from it.
func goBenchAtMost(name, want, measured, benchmark string, v, limit float64, found bool) target {
	t := atMost(name, want, measured, v, limit, 1)
	if !found {
		t.measured, t.met = "not in the Go benchmark output ("+benchmark+")", false
	}
	return t
}

// writeBig writes the section of the big-service scenario.
func (r *report) writeBig(b *strings.Builder) {
	b.WriteString("\n## Big services\n\n")
	fmt.Fprintf(b, "A control plane of its own with the seed's consul-server and, one size at a time, one headless service with 2 ports whose endpoints have hostnames (`pod-0`, `pod-1`, ...), in EndpointSlices of %d written as the EndpointSlice controller writes them for a StatefulSet: named as it names them, labelled `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, `kubernetes.io/service-name` and `service.kubernetes.io/headless`, each endpoint with its conditions, pod, node and zone. ", bigSliceLen)
	fmt.Fprintf(b, "Each plugin alone (a server block with only `kubernetes` or only `headless`, the same binary, pinned to CPU 0), one after the other on the same objects: once it answers for the last endpoint, a collection has run and %s have passed, %d writes each change one endpoint's address in one slice, at the size's rate and on a fixed schedule (a write does not wait for the one before to be answered); no endpoint is written twice and the slices come in no order. ", r.cfg.settle, r.cfg.bigWrites)
	fmt.Fprintf(b, "Programming latency is the time from the API server's acknowledgement of a write (the update's response) until the pod's name (`pod-K.SERVICE.%s.svc.cluster.local A`) answers the new address over UDP, asked every millisecond and, once the wait passes 20 ms, every twentieth of the wait so far (so at most 5%% late), for up to %s; a write not answered by then counts as unanswered, and as that long. ", bigNamespace, writeTimeout)
	fmt.Fprintf(b, "The peak is the highest VmRSS read every 50 ms from the first write until the last is answered. Meanwhile a client asks for another service's name (`%s A`, 3 addresses) %d times a second over UDP, on a fixed schedule that does not wait for answers, and times each answer from when its question was sent; one not answered within %s counts as lost, and as %s. ", strings.TrimSuffix(otherName, "."), otherRate, otherTimeout, otherTimeout)
	fmt.Fprintf(b, "Before the writes, dnsperf asks for 1000 of the pods' names (`pod-K... A`) for %s: the pod names column. ", r.cfg.duration)
	fmt.Fprintf(b, "The targets allow headless %gx kubernetes's figure or, for times, %s more, whichever is larger.\n\n", slackFactor, slackTime)
	b.WriteString("| service | plugin | loaded in | start to serving | settled VmRSS | pod names | peak VmRSS | writes | written in | p50 | p99 | max | unanswered | other-name questions | p50 | p99 | lost |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, size := range r.bigSizes {
		for _, kind := range []string{kubernetesKind, headless} {
			res := r.big[size.String()][kind]
			fmt.Fprintf(b, "| %s | %s | %s | %s | %.1f MB | %.0f qps | %.1f MB | %d | %s | %s | %s | %s | %d | %d | %s | %s | %d |\n",
				size, kind, r.bigLoad[size.String()].Round(10*time.Millisecond), res.ready.Round(time.Millisecond),
				float64(res.baseRSSKB)/1024, res.podQPS, float64(res.peakRSSKB)/1024,
				len(res.latency), res.writeSpan.Round(10*time.Millisecond),
				short(percentile(res.latency, 0.5)), short(percentile(res.latency, 0.99)), short(percentile(res.latency, 1)), res.unanswered,
				len(res.other), short(percentile(res.other, 0.5)), short(percentile(res.other, 0.99)), res.otherLost)
		}
	}
}
