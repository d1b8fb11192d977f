package main

import (
	"fmt"
	"strings"
	"time"
)

// The production shape's figures over whoami, in MB.
func (p *production) rssOver(setup string) float64 {
	return float64(p.procs[setup].rssKB-p.procs[whoami].rssKB) / 1024
}

func (p *production) heapOver(setup string) float64 {
	return float64(p.procs[setup].heapKB-p.procs[whoami].heapKB) / 1024
}

func (p *production) peakOver(setup string) float64 {
	return float64(p.relist[setup].peakKB-p.procs[whoami].rssKB) / 1024
}

// targets are the targets of issue 9 on the cluster mix, and the timings of
// recovery and negative caching.
func (p *production) targets() []target {
	mb := func(a, b float64) string { return fmt.Sprintf("%.1f vs %.1f MB", a, b) }
	qps := func(a, b float64) string { return fmt.Sprintf("%.0f vs %.0f qps", a, b) }
	ts := []target{
		atMost("drop-in: live heap over whoami", "<= 1.05x stock", mb(p.heapOver(dropIn), p.heapOver(stock)), p.heapOver(dropIn), p.heapOver(stock), 1.05),
		atMost("drop-in: memory over whoami", "<= 1.10x stock", mb(p.rssOver(dropIn), p.rssOver(stock)), p.rssOver(dropIn), p.rssOver(stock), 1.10),
		atMost("headless alone: live heap over whoami", "<= 0.10x kubernetes alone",
			mb(p.heapOver(headlessAlone), p.heapOver(kubernetesAlone)), p.heapOver(headlessAlone), p.heapOver(kubernetesAlone), 0.10),
	}
	peak := atMost("drop-in: peak memory in a relist, over whoami", "<= 1.05x stock", mb(p.peakOver(dropIn), p.peakOver(stock)), p.peakOver(dropIn), p.peakOver(stock), 1.05)
	if !p.relist[dropIn].relisted || !p.relist[stock].relisted {
		peak.measured += " (no full relist seen)"
		peak.met = false
	}
	hb, kb := float64(p.received[headlessAlone].bytes), float64(p.received[kubernetesAlone].bytes)
	ts = append(ts, peak,
		atMost("headless alone: bytes of its initial lists", "<= 0.12x kubernetes alone", fmt.Sprintf("%s vs %s", megabytes(hb), megabytes(kb)), hb, kb, 0.12))
	for _, sh := range shapes {
		d, s := p.shapes[sh][dropIn], p.shapes[sh][stock]
		ts = append(ts,
			atLeast(fmt.Sprintf("%s: drop-in QPS, headless names", sh), ">= stock", qps(d.qps, s.qps), d.qps, s.qps, 1),
			atMost(fmt.Sprintf("%s: drop-in memory after the queries", sh), "<= 1.10x stock",
				mb(float64(d.rssKB)/1024, float64(s.rssKB)/1024), float64(d.rssKB), float64(s.rssKB), 1.10))
	}
	hr, kr := percentile(p.recovery[headlessAlone], 1), percentile(p.recovery[kubernetesAlone], 1)
	rec := atMost(fmt.Sprintf("headless: new service answered after a restart, max of %d", len(p.recovery[headlessAlone])),
		"<= 5s after /readyz", fmt.Sprintf("%s vs %s", hr.Round(time.Millisecond), kr.Round(time.Millisecond)), float64(hr), float64(kr), 0)
	rec.met = len(p.recovery[headlessAlone]) > 0 && hr <= 5*time.Second
	dn, sn := percentile(p.negative[dropIn], 1), percentile(p.negative[stock], 1)
	neg := atMost(fmt.Sprintf("drop-in: a pod's name answered once ready, max of %d", len(p.negative[dropIn])),
		"<= 6s (negative_ttl 5)", fmt.Sprintf("%s vs %s", dn.Round(time.Millisecond), sn.Round(time.Millisecond)), float64(dn), float64(sn), 0)
	neg.met = len(p.negative[dropIn]) > 0 && dn <= 6*time.Second
	return append(ts, rec, neg)
}

// megabytes writes a count of bytes in MB, or kB below a megabyte, of 1024
// as the memory figures.
func megabytes(b float64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.1f kB", b/(1<<10))
	}
	return fmt.Sprintf("%.1f MB", b/(1<<20))
}

// write writes the production shape's section of the report.
func (p *production) write(b *strings.Builder, cfg config, ts []target) {
	endpoints := cfg.mixServices * cfg.mixEndpoints
	headlessServices := (cfg.mixServices + cfg.headlessEvery - 1) / cfg.headlessEvery
	fmt.Fprintf(b, "\n## Production shape\n\n")
	fmt.Fprintf(b, "A control plane of its own with the cluster mix: %d services x %d endpoints x 2 ports in one namespace, one in %d (%d) headless with hostnames as a StatefulSet's, the others ClusterIP services; each service has one EndpointSlice written as the EndpointSlice controller writes it (its labels, `service.kubernetes.io/headless` on those of headless services, endpoint conditions, pod reference, node and zone). Loading it took %s.\n\n",
		cfg.mixServices, cfg.mixEndpoints, cfg.headlessEvery, headlessServices, p.loadTime.Round(time.Second))
	b.WriteString("Four setups of the same binary: **stock** is `deploy/Corefile` without the headless block, **drop-in** is `deploy/Corefile` as shipped, **headless alone** and **kubernetes alone** are a server block with one plugin. Stock and drop-in run in the three shapes clusters run: **kubeadm**'s is `deploy/Corefile` as it is (kubeadm v1.37's Corefile, whose cache block keeps nothing of cluster.local); the **Helm chart**'s has the chart's plain `cache 30` in place of that block; **NodeLocal DNSCache** is kubeadm's behind NodeLocal DNSCache's caching server for the cluster's zones (`cache` with `success 9984 30` and `denial 9984 5`, `forward` to the cluster DNS with `force_tcp`; its prometheus, health and the block for other names left out), which the clients ask. Memory, the relist and negative caching are measured in the Helm chart's shape. ")
	b.WriteString("`deploy/Corefile` is run with only what must change to run here: it listens on 127.0.0.1 on a port picked at run time; health, ready and prometheus listen on loopback ports; both plugins get a kubeconfig; `forward` goes to a loopback port where nothing listens instead of `/etc/resolv.conf` (no query leaves the machine: the only one it gets is the loop plugin's probe); and the pprof plugin is added, for the live heap. `errors`, `health` with its lameduck, `ready`, `prometheus`, `cache`, `loop`, `reload` and `loadbalance` stay. The drop-in as run in kubeadm's shape, with sample ports (the bench picks free ones) and KUBECONFIG for the path of its kubeconfig:\n\n```\n")
	b.WriteString(p.corefile)
	b.WriteString("```\n\n")
	fmt.Fprintf(b, "Memory is read as in the all-headless workload: each setup alone, pinned to CPU 0, once it answers for the last headless and ClusterIP services, after a collection and %s, against a process serving only `whoami`. ", cfg.settle)
	b.WriteString("The bytes a plugin receives are counted on the client side, on the process's own connection: each process reaches the API server through a reverse proxy in the bench binary that counts the bytes of the response bodies it passes on (as sent, so compressed where the API server compressed them) until the process answers for the last services; the objects are those the plugin's initial lists return, counted by listing with the same selectors (kubernetes: Services, EndpointSlices and Namespaces, unfiltered; headless: Services with `spec.clusterIP=None`, the controller's EndpointSlices labelled `service.kubernetes.io/headless`, and the EndpointSlices the controller does not manage). ")
	fmt.Fprintf(b, "In each shape, QPS is dnsperf on CPU 1 against stock and drop-in, each alone with its processes (and the node cache) on CPU 0, best of %d runs of %s, on a random mix of A, per-pod A, `_http._tcp` SRV and bare SRV questions over the headless services; the memory of each shape is the cluster DNS's, read as above after those runs, with what they left in its cache. ", cfg.rounds, cfg.duration)
	fmt.Fprintf(b, "The relist: stock and drop-in run at once, unpinned, each through its proxy; the API server stops for %s and starts again, and their resident memory is sampled every 100 ms until each has received as many bytes again as its initial lists took, and 3 s more. ", cfg.outage)
	fmt.Fprintf(b, "Recovery: headless alone and kubernetes alone run at once, unpinned; the API server stops for %s and starts, a new headless service is created as soon as `/readyz` answers, and each is asked for its pod's name every millisecond; the time is from `/readyz` to the answer. ", cfg.outage)
	b.WriteString("Negative caching: stock and drop-in run at once, unpinned; a headless service has a ready pod and a pod that is not ready; a client asks both for the not-ready pod's name (NXDOMAIN, which the cache keeps: 30 s from kubernetes's SOA, 5 s with headless's `negative_ttl 5`), the pod turns ready, and the client asks again every 100 ms; the time is from the API server acknowledging the update to the address.\n\n")

	b.WriteString("| figure | wanted | ours vs reference | ratio | met |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range ts {
		fmt.Fprintf(b, "| %s | %s | %s | %.2fx | %s |\n", t.name, t.want, t.measured, t.ratio, yes(t.met))
	}

	b.WriteString("\n| setup | VmRSS | over whoami | live heap | over whoami | received until serving | responses | start to serving |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range setups {
		r, tr := p.procs[s], p.received[s]
		fmt.Fprintf(b, "| %s | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %s | %d | %s |\n", s, float64(r.rssKB)/1024, p.rssOver(s),
			float64(r.heapKB)/1024, p.heapOver(s), megabytes(float64(tr.bytes)), tr.requests, r.ready.Round(time.Millisecond))
	}

	b.WriteString("\nPer object, for [docs/design.md](docs/design.md#at-cluster-scale): the live heap over whoami of each plugin alone divided by the endpoints it keeps (its services included), and the bytes it received divided by the objects its lists return and by the endpoints.\n\n")
	b.WriteString("| plugin | objects listed | endpoints kept | live heap per endpoint | bytes received per object | bytes received per endpoint |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, row := range []struct {
		plugin, setup string
		endpoints     int
	}{{kubernetesKind, kubernetesAlone, endpoints}, {headless, headlessAlone, headlessServices * cfg.mixEndpoints}} {
		objects := p.objects[row.plugin]
		received := float64(p.received[row.setup].bytes)
		fmt.Fprintf(b, "| %s | %d | %d | %.0f B | %.0f B | %.0f B |\n", row.plugin, objects, row.endpoints,
			perUnit(p.heapOver(row.setup)*1024*1024, row.endpoints), perUnit(received, objects), perUnit(received, row.endpoints))
	}

	p.writeClusterScale(b, cfg)

	for _, s := range []string{kubernetesAlone, headlessAlone} {
		fmt.Fprintf(b, "\nThe requests of %s until it served:\n\n```\n%s\n```\n", s, strings.Join(p.received[s].calls, "\n"))
	}

	b.WriteString("\n| shape | stock qps | drop-in qps | ratio | stock VmRSS | drop-in VmRSS | ratio | stock live heap | drop-in live heap |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, sh := range shapes {
		s, d := p.shapes[sh][stock], p.shapes[sh][dropIn]
		fmt.Fprintf(b, "| %s | %.0f | %.0f | %.2fx | %.1f MB | %.1f MB | %.2fx | %.1f MB | %.1f MB |\n", sh, s.qps, d.qps, ratio(d.qps, s.qps),
			float64(s.rssKB)/1024, float64(d.rssKB)/1024, ratio(float64(d.rssKB), float64(s.rssKB)), float64(s.heapKB)/1024, float64(d.heapKB)/1024)
	}

	b.WriteString("\n| relist | VmRSS before | peak | peak over whoami | received after the stop | relisted within |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range []string{stock, dropIn} {
		r := p.relist[s]
		within := "no full relist seen"
		if r.relisted {
			within = r.took.Round(100*time.Millisecond).String() + " of the stop"
		}
		fmt.Fprintf(b, "| %s | %.1f MB | %.1f MB | %.1f MB | %s | %s |\n", s, float64(r.beforeKB)/1024, float64(r.peakKB)/1024, p.peakOver(s),
			megabytes(float64(r.bytes)), within)
	}

	b.WriteString("\n| timing | setup | runs | median | max | each |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, row := range []struct {
		what, setup string
		times       []time.Duration
	}{
		{"recovery after a restart", headlessAlone, p.recovery[headlessAlone]},
		{"recovery after a restart", kubernetesAlone, p.recovery[kubernetesAlone]},
		{"not-ready pod answered once ready", dropIn, p.negative[dropIn]},
		{"not-ready pod answered once ready", stock, p.negative[stock]},
	} {
		var each []string
		for _, d := range row.times {
			each = append(each, d.Round(10*time.Millisecond).String())
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s |\n", row.what, row.setup, len(row.times),
			percentile(row.times, 0.5).Round(10*time.Millisecond), percentile(row.times, 1).Round(10*time.Millisecond), strings.Join(each, ", "))
	}
}

// The cluster that docs/design.md ("At cluster scale") works out: 5000
// nodes, 150k pods, each an endpoint of one of 10k services, 5% of them
// headless, and one CoreDNS replica for every 16 nodes, as the
// cluster-proportional autoscaler's usual kube-dns parameters have it.
const (
	scaleNodes      = 5000
	scalePods       = 150000
	scaleServices   = 10000
	scaleHeadless   = 500 // 5%
	nodesPerReplica = 16
)

// writeClusterScale projects the per-endpoint costs of the cluster mix onto
// that cluster: the memory of one replica and the bytes that N replicas
// receive in a relist, for stock, the drop-in and headless alone.
func (p *production) writeClusterScale(b *strings.Builder, cfg config) {
	mixEndpoints := cfg.mixServices * cfg.mixEndpoints
	headlessEndpoints := (cfg.mixServices + cfg.headlessEvery - 1) / cfg.headlessEvery * cfg.mixEndpoints
	kHeap := perUnit(p.heapOver(kubernetesAlone)*1024*1024, mixEndpoints)
	hHeap := perUnit(p.heapOver(headlessAlone)*1024*1024, headlessEndpoints)
	kRSS := perUnit(p.rssOver(kubernetesAlone)*1024*1024, mixEndpoints)
	hRSS := perUnit(p.rssOver(headlessAlone)*1024*1024, headlessEndpoints)
	kRecv := perUnit(float64(p.received[kubernetesAlone].bytes), mixEndpoints)
	hRecv := perUnit(float64(p.received[headlessAlone].bytes), headlessEndpoints)

	all, headlessEps := float64(scalePods), float64(scalePods*scaleHeadless/scaleServices)
	replicas := (scaleNodes + nodesPerReplica - 1) / nodesPerReplica
	mb := func(bytes float64) string { return fmt.Sprintf("%.1f MB", bytes/(1<<20)) }
	fmt.Fprintf(b, "\nAt cluster scale, for [docs/design.md](docs/design.md#at-cluster-scale): the costs per endpoint above (live heap, VmRSS and bytes received, each over whoami and divided by the endpoints the plugin keeps) times the endpoints of a cluster of %d nodes and %d pods, each an endpoint of one of %d services of which %d are headless (%.0f endpoints), with %d replicas (one every %d nodes):\n\n",
		scaleNodes, scalePods, scaleServices, scaleHeadless, headlessEps, replicas, nodesPerReplica)
	b.WriteString("| setup | live heap a replica | VmRSS a replica | received in a relist, one replica | all replicas |\n| --- | --- | --- | --- | --- |\n")
	for _, row := range []struct {
		setup            string
		heap, rss, bytes float64
	}{
		{stock, all * kHeap, all * kRSS, all * kRecv},
		{dropIn, all*kHeap + headlessEps*hHeap, all*kRSS + headlessEps*hRSS, all*kRecv + headlessEps*hRecv},
		{headlessAlone, headlessEps * hHeap, headlessEps * hRSS, headlessEps * hRecv},
	} {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", row.setup, mb(row.heap), mb(row.rss), mb(row.bytes), mb(row.bytes*float64(replicas)))
	}
	fmt.Fprintf(b, "\nThe drop-in against stock at that scale: live heap %.2fx, VmRSS %.2fx, bytes %.2fx.\n",
		1+headlessEps*hHeap/(all*kHeap), 1+headlessEps*hRSS/(all*kRSS), 1+headlessEps*hRecv/(all*kRecv))
}

func perUnit(total float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return total / float64(n)
}
