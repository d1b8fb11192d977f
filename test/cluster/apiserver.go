package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// StartAPIServer starts kube-apiserver, on the same port and etcd as before,
// after StopAPIServer, and waits until it is ready. It is a no-op if the API
// server is running.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	return c.startAPIServer(ctx)
}

// StopAPIServer stops kube-apiserver, leaving etcd and its data. See
// StartAPIServer.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiserver.Stop()
}

// startAPIServer starts kube-apiserver and waits until /readyz is ok.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	p, err := c.spawnAPIServer()
	if p == nil || err != nil {
		return err
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // self-signed, on loopback
		DisableKeepAlives: true,
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	return poll(ctx, p, func(ctx context.Context) error { return c.ready(ctx, hc) })
}

// spawnAPIServer starts the kube-apiserver process. It returns nil, nil if it
// is running already.
func (c *Cluster) spawnAPIServer() (*testkit.Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("cluster stopped")
	}
	if c.apiserver != nil {
		if exited, _ := c.apiserver.Exited(); !exited {
			return nil, nil
		}
	}
	args, err := c.apiserverArgs()
	if err != nil {
		return nil, err
	}
	p, err := c.startProcess("kube-apiserver", c.apiserverBin, args)
	if err != nil {
		return nil, err
	}
	c.apiserver = p
	return p, nil
}

// apiserverArgs returns the flags of kube-apiserver: loopback only, no
// controllers to depend on, and nothing a test does not need.
func (c *Cluster) apiserverArgs() ([]string, error) {
	authz := "RBAC"
	if c.opts.AlwaysAllow {
		authz = "AlwaysAllow"
	}
	key := c.path("sa.key")
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--cert-dir=" + c.path("certs"),
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=" + authz,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + key,
		"--service-account-signing-key-file=" + key,
		"--service-cluster-ip-range=" + c.opts.ServiceCIDR,
		"--endpoint-reconciler-type=none",
		// Without a controller manager no namespace gets a default
		// ServiceAccount, which the admission plugin requires of a Pod.
		"--disable-admission-plugins=ServiceAccount",
		// Leaner: no request queuing, profiling or periodic etcd polls.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--etcd-count-metric-poll-period=0",
		"--etcd-db-metric-poll-interval=0",
	}
	if c.opts.Audit {
		audit, err := c.auditArgs()
		if err != nil {
			return nil, err
		}
		args = append(args, audit...)
	}
	return append(args, c.opts.ExtraAPIServerArgs...), nil
}

// ready returns nil if the API server's /readyz is ok.
func (c *Cluster) ready(ctx context.Context, hc *http.Client) error {
	return getOK(ctx, hc, c.Server+"/readyz", c.Token)
}

// getOK returns nil if a GET of url, with the bearer token if any, answers
// 200 "ok", as /readyz and /healthz do.
func getOK(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}
