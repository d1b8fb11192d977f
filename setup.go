package headless

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"

	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	h, cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	restConfig, err := cfg.restConfig()
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	client, err := newClient(restConfig)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	if h.watcher, err = newWatcher(client, h.index, h.watch); err != nil {
		return plugin.Error(pluginName, err)
	}

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
		go h.watcher.reportSync()
	}
	return nil
}

func (h *Headless) onShutdown() error {
	h.watcher.stop()
	return nil
}

// newClient returns a clientset for cfg.
func newClient(cfg *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(cfg) }

// clientConfig says how to reach the API server.
type clientConfig struct {
	kubeconfig, context string
	endpoint            string
}

// restConfig returns the API client configuration: the kubeconfig file, the
// endpoint (which overrides the kubeconfig's server), or the in-cluster
// service account when neither is given.
func (cc clientConfig) restConfig() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if cc.kubeconfig == "" && cc.endpoint == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cc.kubeconfig}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cc.context}
		overrides.ClusterInfo.Server = cc.endpoint
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.UserAgent = fmt.Sprintf("%s/%s headless (%s/%s/%s)", coremain.CoreName, coremain.CoreVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return cfg, nil
}

// parse reads the headless stanza of the Corefile.
func parse(c *caddy.Controller) (*Headless, clientConfig, error) {
	var cc clientConfig
	h := &Headless{ttl: 5, startupTimeout: 5 * time.Second}
	if !c.Next() {
		return nil, cc, c.ArgErr()
	}
	h.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
	var forward []string
	for _, z := range h.Zones {
		if dnsutil.IsReverse("."+z) == 0 { // in-addr.arpa. itself is reverse too
			forward = append(forward, z)
		}
	}
	if len(forward) == 0 {
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
	h.index = newIndex(forward)
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
		cc.kubeconfig = args[0]
		if len(args) == 2 {
			cc.context = args[1]
		}
	case "endpoint":
		if len(args) != 1 {
			return c.ArgErr()
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
	case "labels":
		if len(args) == 0 {
			return c.ArgErr()
		}
		expr := strings.Join(args, " ")
		ls, err := meta.ParseToLabelSelector(expr)
		if err != nil {
			return c.Errf("unable to parse label selector value '%s': %v", expr, err)
		}
		sel, err := meta.LabelSelectorAsSelector(ls)
		if err != nil {
			return c.Errf("unable to parse label selector value '%s': %v", expr, err)
		}
		h.watch.labels = sel.String()
	case "endpoint_pod_names":
		if len(args) != 0 {
			return c.ArgErr()
		}
		h.watch.podNames = true
	case "ttl":
		if len(args) != 1 {
			return c.ArgErr()
		}
		t, err := strconv.Atoi(args[0])
		if err != nil || t < 0 || t > 3600 {
			return c.Errf("ttl must be an integer in range [0, 3600]: %s", args[0])
		}
		h.ttl = uint32(t)
	case "startup_timeout":
		if len(args) != 1 {
			return c.ArgErr()
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return c.Errf("startup_timeout must be a non-negative duration: %s", args[0])
		}
		h.startupTimeout = d
	case "fallthrough":
		h.Fall.SetZonesFromArgs(args)
	default:
		return c.Errf("unknown property '%s'", prop)
	}
	return nil
}
