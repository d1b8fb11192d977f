package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

func portFree(port int) bool {
	for _, network := range []string{"tcp", "udp"} {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if network == "tcp" {
			l, err := net.Listen(network, addr)
			if err != nil {
				return false
			}
			l.Close()
			continue
		}
		l, err := net.ListenPacket(network, addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// waitReady waits until the ready plugin on port says 200, for up to 30s.
func waitReady(ctx context.Context, port int) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("CoreDNS is not ready after 30s (%s)", url)
}
