package reliability

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections from a loopback port to target, and can cut
// them: see cut.
type proxy struct {
	addr   string // 127.0.0.1:port
	target string

	mu    sync.Mutex
	ln    net.Listener // nil while refusing
	mode  cutMode
	conns map[net.Conn]struct{}
	done  sync.WaitGroup
}

// cutMode is how the proxy treats connections.
type cutMode int

const (
	open   cutMode = iota // forward
	reset                 // accept new connections and close them at once
	refuse                // no listener: connections are refused
)

// startProxy starts a proxy to target, stopped when the test ends.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.ln = ln
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(c)
		}
	}()
}

// handle forwards c, or closes it when the proxy is cut.
func (p *proxy) handle(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != open {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	pipe := func(dst, src net.Conn) {
		defer p.done.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}
	p.done.Add(2)
	go pipe(up, c)
	go pipe(c, up)
}

// cut closes every proxied connection; then, in mode reset, the proxy
// accepts connections and closes them at once, and in mode refuse it stops
// listening, so that connecting fails. restore ends the cut.
func (p *proxy) cut(t testing.TB, mode cutMode) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for c := range p.conns {
		c.Close()
	}
	if mode == refuse && p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// restore listens again, on the same port, and forwards new connections.
func (p *proxy) restore(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = open
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			t.Fatalf("listen again on %s: %v", p.addr, err)
		}
		p.serve(ln)
	}
}

func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.mode = reset
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.done.Wait()
}
