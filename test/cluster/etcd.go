package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// etcdQuota is etcd's --quota-backend-bytes, room for a million endpoints.
const etcdQuota = 8 << 30

// startEtcd starts etcd on free ports and waits until it is healthy.
func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
	p, err := startProcess("etcd", c.etcdBin, c.path("etcd.log"), c.etcdArgs(peer))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return poll(ctx, p, func(ctx context.Context) error { return etcdHealthy(ctx, hc, c.etcdURL) })
}

// etcdArgs returns the flags of a single-member etcd that trades durability
// for speed.
func (c *Cluster) etcdArgs(peerPort int) []string {
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return []string{
		"--name=default",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + c.etcdURL,
		"--advertise-client-urls=" + c.etcdURL,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--log-level=error",
		"--quota-backend-bytes=" + strconv.Itoa(etcdQuota),
		"--unsafe-no-fsync",
	}
}

// etcdHealthy returns nil if etcd's /health says it is healthy.
func etcdHealthy(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var health struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		return fmt.Errorf("etcd /health: %s: %w", resp.Status, err)
	}
	if health.Health != "true" {
		return fmt.Errorf("etcd /health: %s %q", health.Health, health.Reason)
	}
	return nil
}

// poll calls check every 100ms until it succeeds. It fails, with the end of
// the process's log, if the process exits or ctx is done first.
func poll(ctx context.Context, p *process, check func(context.Context) error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error // of a check that ctx did not cut short
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			last = err
		}
		if exit := p.exited(); exit != nil {
			if p.bindFailed() {
				exit = fmt.Errorf("%w: %w", errAddrInUse, exit)
			}
			return p.failed(exit)
		}
		select {
		case <-ctx.Done():
			return p.failed(fmt.Errorf("%s not ready: %w; last check: %v", p.name, ctx.Err(), last))
		case <-p.done:
		case <-t.C:
		}
	}
}
