package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/headlessdns/headless/internal/testkit"
)

// etcdQuota is etcd's --quota-backend-bytes, room for a million endpoints.
const etcdQuota = 8 << 30

// startEtcd starts etcd on free ports and waits until it is healthy.
func (c *Cluster) startEtcd(ctx context.Context) error {
	ports, err := testkit.FreePorts(2)
	if err != nil {
		return err
	}
	c.etcdURL = "http://" + testkit.Addr(ports[0])
	p, err := c.startProcess("etcd", c.etcdBin, c.etcdArgs(ports[1]))
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
	peer := "http://" + testkit.Addr(peerPort)
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

// startProcess starts bin with args, its output appended to the log file
// name.log of the work directory.
func (c *Cluster) startProcess(name, bin string, args []string) (*testkit.Process, error) {
	return testkit.StartProcess(name, c.path(name+".log"), "", append([]string{bin}, args...)...)
}

// errAddrInUse is returned when a process could not bind a port that was
// free when it was picked.
var errAddrInUse = errors.New("address already in use")

// poll calls check every 100ms until it succeeds. It fails, with the end of
// the process's log, if the process exits or ctx is done first.
func poll(ctx context.Context, p *testkit.Process, check func(context.Context) error) error {
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
		if exited, err := p.Exited(); exited {
			err = fmt.Errorf("exited: %v", err)
			if strings.Contains(p.Tail(30), "address already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return p.Failed(err, 30)
		}
		select {
		case <-ctx.Done():
			return p.Failed(fmt.Errorf("not ready: %w; last check: %v", ctx.Err(), last), 30)
		case <-p.Done():
		case <-t.C:
		}
	}
}
