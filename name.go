package headless

import (
	"errors"
	"strings"

	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"

	"github.com/miekg/dns"
)

// queryName is a query name in the grammar of the Kubernetes DNS specification,
// read as the kubernetes plugin reads it (its parseRequest), so that both
// agree on which names exist and on the metadata they publish:
//
//	_PORT._PROTOCOL.SERVICE.NAMESPACE.svc.ZONE
//	ENDPOINT.SERVICE.NAMESPACE.svc.ZONE
//	ENDPOINT.CLUSTER.SERVICE.NAMESPACE.svc.ZONE    (multicluster zones)
//	TOPOZONE.pin|prefer._zone.SERVICE.NAMESPACE.svc.ZONE    (zonal)
//	SERVICE.NAMESPACE.svc.ZONE
type queryName struct {
	port, protocol    string // without their underscores; empty matches any
	endpoint, cluster string
	topoZone          string // the topology zone of a zonal name
	prefer            bool   // prefer rather than pin
	service           string
	namespace         string
	kind              string // "svc", "pod", or empty for the zone, svc.ZONE and pod.ZONE
}

// errInvalidName is the error of a name outside the grammar: NXDOMAIN.
var errInvalidName = errors.New("invalid query name")

// zonalLabel anchors a zonal name; pin and prefer are its directives.
const zonalLabel = "_zone"

// parseName reads qname (in lower case) in zone. The fields read before an
// error stay set, so that the service of a name too long still shows.
//
// It is a copy of the kubernetes plugin's parseRequest (plugin/kubernetes/
// parse.go), which CoreDNS does not export, with its fields renamed.
// TestParseNameAsUpstream compares the two through the metadata both
// plugins publish, and TestParseRequestUnchanged fails when a CoreDNS
// upgrade changes parseRequest, so that the copy follows it.
func parseName(qname, zone string, multicluster, zonal bool) (n queryName, err error) {
	base, _ := dnsutil.TrimZone(qname, zone)
	if base == "" || base == kubernetes.Svc || base == kubernetes.Pod {
		return n, nil
	}
	var labels [8]string
	segs := splitLabels(base, labels[:0])
	last := len(segs) - 1
	if last < 0 {
		return n, nil
	}
	n.kind = segs[last]
	if n.kind != kubernetes.Pod && n.kind != kubernetes.Svc {
		return n, errInvalidName
	}
	if last--; last < 0 {
		return n, nil
	}
	n.namespace = segs[last]
	if last--; last < 0 {
		return n, nil
	}
	n.service = segs[last]
	if last--; last < 0 {
		return n, nil
	}
	switch last {
	case 0:
		n.endpoint = segs[0]
	case 1:
		if !multicluster || strings.HasPrefix(segs[1], "_") || strings.HasPrefix(segs[0], "_") {
			n.protocol, n.port = strings.TrimPrefix(segs[1], "_"), strings.TrimPrefix(segs[0], "_")
		} else {
			n.cluster, n.endpoint = segs[1], segs[0]
		}
	default:
		// A zonal name; its zone may hold dots. Anything else is too long.
		if !zonal || multicluster || segs[last] != zonalLabel || n.kind != kubernetes.Svc {
			return n, errInvalidName
		}
		switch segs[last-1] {
		case "pin":
		case "prefer":
			n.prefer = true
		default:
			return n, errInvalidName
		}
		n.topoZone = strings.Join(segs[:last-1], ".")
	}
	return n, nil
}

// splitLabels appends the labels of name, which is not fully qualified, to
// segs, as dns.SplitDomainName splits it; a name of few labels, as query
// names are, fits in segs without an allocation.
func splitLabels(name string, segs []string) []string {
	if name == "" || name[len(name)-1] == '.' || strings.IndexByte(name, '\\') >= 0 {
		return dns.SplitDomainName(name) // the root, a fully qualified name, escaped dots
	}
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return append(segs, name)
		}
		segs = append(segs, name[:i])
		name = name[i+1:]
	}
}

// matchZone returns the longest of zones that qname is in, or "", as
// plugin.Zones(zones).Matches(qname) does, without splitting either name
// into labels, which allocates for each zone and query (BenchmarkServeDNS,
// seed-A; make bench, seed A at the wire). FuzzMatchZone compares the two.
func matchZone(zones []string, qname string) string {
	zone := ""
	for _, z := range zones {
		if len(z) > len(zone) && inZone(qname, z) {
			zone = z
		}
	}
	return zone
}

// inZone reports whether the fully qualified name is zone or under it, as
// dns.IsSubDomain(zone, name) does: the case of ASCII letters does not
// count, and the dot before zone must not be escaped.
func inZone(name, zone string) bool {
	switch {
	case zone == ".":
		return true
	case name == "." || len(name) < len(zone) || !equalFoldASCII(name[len(name)-len(zone):], zone):
		return false
	case len(name) == len(zone):
		return true
	}
	dot := len(name) - len(zone) - 1
	if name[dot] != '.' {
		return false
	}
	escapes := 0
	for i := dot - 1; i >= 0 && name[i] == '\\'; i-- {
		escapes++
	}
	return escapes%2 == 0
}

// equalFoldASCII reports whether a and b are equal but for the case of ASCII
// letters, as names compare in DNS; strings.EqualFold folds Unicode too.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
