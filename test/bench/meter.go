package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/headlessdns/headless/test/cluster"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// meter is a reverse proxy in front of the API server for one CoreDNS
// process: the process reaches the API server only through it, with the
// kubeconfig it writes, and it counts the bytes of the response bodies it
// passes on, as they come from the API server (compressed where the API
// server compressed them). It counts what the process's own lists and
// watches receive, streaming lists included, and nothing else.
type meter struct {
	kubeconfig string
	received   atomic.Int64 // bytes of response bodies
	requests   atomic.Int64
	lists      atomic.Int64 // full lists: plain, or watches that start with the whole state
	srv        *http.Server

	mu    sync.Mutex
	calls []string // the first requests, with the encoding of the response
}

// newMeter starts a meter for c and writes its kubeconfig to path.
func newMeter(c *cluster.Cluster, path string) (*meter, error) {
	target, err := url.Parse(c.Server)
	if err != nil {
		return nil, err
	}
	tr, err := rest.TransportFor(c.RESTConfig) // the admin token and TLS
	if err != nil {
		return nil, err
	}
	m := &meter{kubeconfig: path}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	proxy.FlushInterval = -1 // watch events as they come
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(r *http.Response) error {
		m.requests.Add(1)
		if q := r.Request.URL.Query(); isCollection(r.Request.URL.Path) && (q.Get("watch") != "true" || q.Get("sendInitialEvents") == "true") {
			m.lists.Add(1)
		}
		m.mu.Lock()
		if len(m.calls) < 10 {
			call := r.Request.Method + " " + r.Request.URL.RequestURI()
			if enc := r.Header.Get("Content-Encoding"); enc != "" {
				call += " (" + enc + ")"
			}
			m.calls = append(m.calls, call)
		}
		m.mu.Unlock()
		r.Body = &countingBody{ReadCloser: r.Body, n: &m.received}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.srv = &http.Server{Handler: proxy, ErrorLog: proxy.ErrorLog}
	go m.srv.Serve(ln)
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: http://%s
contexts:
- name: bench
  context:
    cluster: bench
    user: bench
users:
- name: bench
  user: {}
current-context: bench
`, ln.Addr())
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func (m *meter) close() { m.srv.Close() }

// requestsSoFar returns the first requests the meter passed on.
func (m *meter) requestsSoFar() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// isCollection reports whether path is that of a collection the plugins
// list: all services, EndpointSlices or namespaces.
func isCollection(path string) bool {
	for _, r := range []string{"/services", "/endpointslices", "/namespaces"} {
		if strings.HasSuffix(path, r) {
			return true
		}
	}
	return false
}

// countingBody adds what is read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// listed counts the objects each plugin's initial lists return: the lists
// the plugins issue at start (plugin/kubernetes/controller.go of CoreDNS, and
// watch.go), with the selectors they use, in protobuf as they ask for them.
func listed(ctx context.Context, c *cluster.Cluster) (map[string]int, error) {
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	items := func(l runtime.Object, err error) (int, error) {
		if err != nil {
			return 0, err
		}
		return apimeta.LenList(l), nil
	}
	all := meta.ListOptions{}
	lists := []struct {
		plugin string
		list   func() (int, error)
	}{
		{kubernetesKind, func() (int, error) { return items(client.CoreV1().Services("").List(ctx, all)) }},
		{kubernetesKind, func() (int, error) { return items(client.DiscoveryV1().EndpointSlices("").List(ctx, all)) }},
		{kubernetesKind, func() (int, error) { return items(client.CoreV1().Namespaces().List(ctx, all)) }},
		{headless, func() (int, error) {
			return items(client.CoreV1().Services("").List(ctx, meta.ListOptions{FieldSelector: "spec.clusterIP=None"}))
		}},
		{headless, func() (int, error) {
			return items(client.DiscoveryV1().EndpointSlices("").List(ctx, meta.ListOptions{
				LabelSelector: "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io,service.kubernetes.io/headless"}))
		}},
		{headless, func() (int, error) {
			return items(client.DiscoveryV1().EndpointSlices("").List(ctx, meta.ListOptions{
				LabelSelector: "endpointslice.kubernetes.io/managed-by!=endpointslice-controller.k8s.io"}))
		}},
	}
	count := map[string]int{}
	for _, l := range lists {
		n, err := l.list()
		if err != nil {
			return nil, err
		}
		count[l.plugin] += n
	}
	return count, nil
}
