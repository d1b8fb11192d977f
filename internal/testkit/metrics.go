package testkit

import (
	"fmt"
	"strconv"
	"strings"
)

// NoResponse is the code of APIRequests for requests that got no response:
// the API server unreachable.
const NoResponse = "<error>"

// APIRequests returns how many requests a CoreDNS has sent the API server,
// by the HTTP status of the response (as a string, or NoResponse), from the
// /metrics of its prometheus plugin at url. They are client-go's counts,
// which the kubernetes plugin exports as
// coredns_kubernetes_rest_client_requests_total for every client of the
// process, the headless plugin's included: a test waits on them for the
// plugin to have retried, not for time to pass.
func APIRequests(url string) (map[string]int, error) {
	code, body := Get(url)
	if code != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", url, code, body)
	}
	const metric = "coredns_kubernetes_rest_client_requests_total{"
	counts := map[string]int{}
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, metric) {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", l, err)
		}
		_, rest, _ := strings.Cut(l, `code="`)
		status, _, _ := strings.Cut(rest, `"`)
		counts[status] += int(v)
	}
	return counts, nil
}
