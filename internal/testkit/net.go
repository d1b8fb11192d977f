package testkit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// Addr returns the loopback address of port, 127.0.0.1:port.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// FreePort returns a port that is free on 127.0.0.1 for both UDP and TCP.
func FreePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", Addr(port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// FreePorts returns n different ports of FreePort.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// PortFree reports whether port is free on 127.0.0.1 for both TCP and UDP.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", Addr(port))
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", Addr(port))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Get returns the status code and body of an HTTP GET of url, or 0 and the
// error, within 2 seconds.
func Get(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
