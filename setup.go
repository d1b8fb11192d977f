package headless

import (
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/plugin/pkg/upstream"

	"github.com/miekg/dns"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned/typed/apis/v1alpha1"
)

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	h, cc, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	cfg, err := cc.restConfig()
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	var mcsClient mcsclient.MulticlusterV1alpha1Interface
	if h.watch.multicluster {
		if mcsClient, err = mcsclient.NewForConfig(cfg); err != nil {
			return plugin.Error(pluginName, err)
		}
	}
	h.watcher = newWatcher(client, mcsClient, h.index, h.watch)
	h.localIPs = boundIPs(c)

	c.OnStartup(h.onStartup)
	c.OnShutdown(h.onShutdown)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		h.Next = next
		return h
	})
	return nil
}

// onStartup starts watching and waits up to startup_timeout for the first
// full view of the cluster; after that it serves with what it has, as the
// kubernetes plugin does.
func (h *Headless) onStartup() error {
	h.watcher.start()
	if !h.watcher.waitForSync(h.startupTimeout) {
		log.Warningf("Starting server with unsynced Kubernetes API after %s: queries for unknown names get SERVFAIL until it syncs", h.startupTimeout)
		go h.reportSync()
	}
	return nil
}

func (h *Headless) onShutdown() error {
	h.watcher.stop()
	return nil
}

// reportSync logs every 30s that the API is still not synced, and once when
// it is, so that an operator sees why the plugin is not ready.
func (h *Headless) reportSync() {
	for !h.watcher.waitForSync(30 * time.Second) {
		if h.watcher.stopped() {
			return
		}
		log.Warning("Kubernetes API still not synced: not ready; queries for unknown names get SERVFAIL")
	}
	log.Info("Kubernetes API synced: ready")
}

// clientConfig says how to reach the API server, and on which Corefile lines.
type clientConfig struct {
	file                string
	line                int // of the plugin's name, for in-cluster configuration
	kubeconfig, context string
	kubeconfigLine      int
	endpoint            string
}

// restConfig returns the API client configuration: the kubeconfig file, the
// endpoint (which overrides the kubeconfig's server), or the in-cluster
// service account when neither is given. An error names the Corefile line.
func (cc clientConfig) restConfig() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if cc.kubeconfig == "" && cc.endpoint == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, cc.errorAt(cc.line, "no kubeconfig and not running in a cluster (%v): give the API server with kubeconfig, or endpoint", err)
		}
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cc.kubeconfig}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cc.context}
		overrides.ClusterInfo.Server = cc.endpoint
		if cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig(); err != nil {
			return nil, cc.errorAt(cc.kubeconfigLine, "kubeconfig %s: %v", cc.kubeconfig, err)
		}
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.UserAgent = fmt.Sprintf("%s/%s headless (%s/%s/%s)", coremain.CoreName, coremain.CoreVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return cfg, nil
}

// errorAt formats an error as caddy does, with the file and line.
func (cc clientConfig) errorAt(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d - Error during parsing: %s", cc.file, line, fmt.Sprintf(format, args...))
}

// parse reads the headless stanza of the Corefile.
func parse(c *caddy.Controller) (*Headless, clientConfig, error) {
	cc := clientConfig{file: c.File()}
	h := &Headless{ttl: defaultTTL, startupTimeout: 5 * time.Second, upstream: upstream.New()}
	if !c.Next() {
		return nil, cc, c.ArgErr()
	}
	cc.line = c.Line()
	h.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
	// in-addr.arpa. and ip6.arpa. themselves are reverse zones too.
	h.primaryZone = slices.IndexFunc(h.Zones, func(z string) bool { return dnsutil.IsReverse("."+z) == 0 })
	if h.primaryZone < 0 {
		return nil, cc, c.Errf("non-reverse zone name must be used")
	}
	for c.NextBlock() {
		if err := h.parseProperty(c, &cc); err != nil {
			return nil, cc, err
		}
	}
	if c.Next() {
		return nil, cc, plugin.ErrOnce
	}
	if len(h.watch.namespaces) > 0 && h.watch.namespaceLabels != nil {
		return nil, cc, c.Errf("namespaces and namespace_labels cannot both be set")
	}
	h.index = newIndex()
	return h, cc, nil
}

func (h *Headless) parseProperty(c *caddy.Controller, cc *clientConfig) error {
	prop := c.Val()
	args := c.RemainingArgs()
	switch prop {
	case "kubeconfig":
		if len(args) != 1 && len(args) != 2 {
			return c.ArgErr()
		}
		cc.kubeconfig, cc.kubeconfigLine = args[0], c.Line()
		if len(args) == 2 {
			cc.context = args[1]
		}
	case "endpoint":
		if len(args) != 1 {
			return c.ArgErr()
		}
		u, err := url.Parse(args[0])
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c.Errf("endpoint must be an http or https URL such as https://10.0.0.1:6443: %s", args[0])
		}
		cc.endpoint = args[0]
	case "namespaces":
		if len(args) == 0 {
			return c.ArgErr()
		}
		h.watch.namespaces = make(map[string]bool, len(args))
		for _, n := range args {
			h.watch.namespaces[n] = true
		}
	case "labels", "namespace_labels":
		if len(args) == 0 {
			return c.ArgErr()
		}
		sel, err := labelSelector(strings.Join(args, " "))
		if err != nil {
			return c.Errf("unable to parse %s selector value '%s': %v", prop, strings.Join(args, " "), err)
		}
		if prop == "labels" {
			h.watch.labels = sel
		} else {
			h.watch.namespaceLabels = sel
		}
	case "endpoint_pod_names", "zonal", "stable_ptr", "terminating_fallback":
		if len(args) != 0 {
			return c.ArgErr()
		}
		switch prop {
		case "endpoint_pod_names":
			h.watch.transform.podNames = true
		case "zonal":
			h.watch.transform.zones = true
		case "stable_ptr":
			h.stablePTR = true
		default:
			h.watch.transform.terminating = true
		}
	case "ttl", "negative_ttl":
		if len(args) != 1 {
			return c.ArgErr()
		}
		t, err := strconv.Atoi(args[0])
		if err != nil || t < 0 || t > 3600 {
			return c.Errf("%s must be an integer in range [0, 3600]: %s", prop, args[0])
		}
		ttl := uint32(t)
		if prop == "ttl" {
			h.ttl = ttl
		} else {
			h.negativeTTL = &ttl
		}
	case "startup_timeout":
		if len(args) != 1 {
			return c.ArgErr()
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return c.Errf("startup_timeout must be a non-negative duration: %s", args[0])
		}
		h.startupTimeout = d
	case "unready_names":
		switch {
		case len(args) == 0:
			h.watch.transform.policy.unreadyNames = true
		case len(args) != 1 || args[0] != "annotated":
			return c.Errf("unready_names takes no argument, or annotated: %s", strings.Join(args, " "))
		}
		h.watch.transform.unreadyNamesSet, h.watch.transform.unready = true, true
	case "answer_limit":
		if len(args) != 1 {
			return c.ArgErr()
		}
		if args[0] != "annotated" {
			n, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil || n < 1 {
				return c.Errf("answer_limit must be a number of records of at least 1, or annotated: %s", args[0])
			}
			h.watch.transform.policy.answerLimit = int32(n) // #nosec G115 -- parsed as 32 bits
		}
		h.watch.transform.answerLimitSet = true
	case "extended_errors":
		if len(args) != 0 {
			return c.ArgErr()
		}
		h.extendedErrors, h.watch.transform.unready = true, true
	case "fallthrough":
		for _, z := range args {
			if _, ok := dns.IsDomainName(z); !ok || strings.Contains(z, "..") {
				return c.Errf("fallthrough zone must be a domain name: %s", z)
			}
		}
		h.Fall.SetZonesFromArgs(args)
	case "multicluster":
		zones := plugin.OriginsFromArgsOrServerBlock(args, nil)
		for _, z := range zones {
			if !slices.Contains(h.Zones, z) {
				return c.Errf("is not authoritative for the multicluster zone %s (authoritative zones: %v)", z, h.Zones)
			}
		}
		h.multiclusterZones = zones
		h.watch.multicluster = len(zones) > 0
	default:
		return c.Errf("unknown property '%s'", prop)
	}
	return nil
}

// labelSelector parses a label selector as kubectl writes it.
func labelSelector(expr string) (labels.Selector, error) {
	ls, err := meta.ParseToLabelSelector(expr)
	if err != nil {
		return nil, err
	}
	sel, err := meta.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, err
	}
	if sel.Empty() {
		return nil, errors.New("empty selector")
	}
	return sel, nil
}
