package testkit

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
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

// LiveHeap returns the bytes of the heap that a garbage collection leaves in
// the CoreDNS whose pprof plugin listens at addr (host:port), from its heap
// profile, which collects first.
func LiveHeap(addr string) (int, error) {
	url := "http://" + addr + "/debug/pprof/heap?debug=1&gc=1"
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "# HeapAlloc = %d", &n); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no HeapAlloc in %s (%s): %v", url, resp.Status, sc.Err())
}
