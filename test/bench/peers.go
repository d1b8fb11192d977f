package main

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// answer is one response a peer received.
type answer struct {
	name     int       // the index of the name asked
	sent     time.Time // when the question it answers was last sent
	received time.Time
	rcode    int
	addrs    []netip.Addr // of the A records
}

// peers simulates the pods of a job that look up their peers' names: it asks
// one server for each of names over one UDP socket, as pods do, each name
// once every interval on a fixed schedule spread evenly over the interval,
// without waiting for answers. With untilAnswered it stops asking for a name
// once an answer holds an address; otherwise it asks for every name until
// stop, and keeps every answer.
type peers struct {
	conn          *net.UDPConn
	wires         [][]byte // the question for each name, its ID the name's index
	every         time.Duration
	untilAnswered bool
	quit          chan struct{}
	sender        sync.WaitGroup
	reader        sync.WaitGroup

	mu       sync.Mutex
	sent     []time.Time    // by name, when last asked
	answered []time.Time    // by name, the first answer with an address
	latest   [][]netip.Addr // by name, the addresses of the latest answer
	pending  int            // names not answered yet
	asked    int            // questions sent
	nxdomain int            // NXDOMAIN answers
	answers  []answer       // every answer, unless untilAnswered
}

// startPeers starts asking addr for the A records of names (at most 65536,
// each asked with its index as the message ID), each once every interval.
func startPeers(addr string, names []string, every time.Duration, untilAnswered bool) (*peers, error) {
	if len(names) > 1<<16 {
		return nil, errors.New("peers: more than 65536 names")
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	// A burst of answers must not overflow the socket's buffer.
	_ = conn.SetReadBuffer(4 << 20)
	p := &peers{
		conn: conn, every: every, untilAnswered: untilAnswered, quit: make(chan struct{}),
		sent: make([]time.Time, len(names)), answered: make([]time.Time, len(names)), latest: make([][]netip.Addr, len(names)),
		pending: len(names),
	}
	for i, name := range names {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.Id = uint16(i)
		wire, err := m.Pack()
		if err != nil {
			conn.Close()
			return nil, err
		}
		p.wires = append(p.wires, wire)
	}
	p.sender.Add(1)
	go p.send()
	p.reader.Add(1)
	go p.read()
	return p, nil
}

// send asks for the n-th name of the schedule, name n mod len(names), at
// start + n * every / len(names), skipping the names answered when
// untilAnswered, until quit.
func (p *peers) send() {
	defer p.sender.Done()
	start := time.Now()
	n := len(p.wires)
	for k := 0; ; {
		for now := time.Now(); start.Add(time.Duration(k) * p.every / time.Duration(n)).Before(now); k++ {
			i := k % n
			p.mu.Lock()
			skip := p.untilAnswered && !p.answered[i].IsZero()
			if !skip {
				p.sent[i] = now
				p.asked++
			}
			p.mu.Unlock()
			if !skip {
				_, _ = p.conn.Write(p.wires[i])
			}
		}
		select {
		case <-p.quit:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// read records the answers until the socket closes.
func (p *peers) read() {
	defer p.reader.Done()
	buf := make([]byte, 64*1024)
	for {
		n, err := p.conn.Read(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // such as a refused port, read as an error
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) != nil || int(m.Id) >= len(p.wires) {
			continue
		}
		a := answer{name: int(m.Id), received: now, rcode: m.Rcode}
		for _, rr := range m.Answer {
			if rec, ok := rr.(*dns.A); ok {
				if addr, ok := netip.AddrFromSlice(rec.A.To4()); ok {
					a.addrs = append(a.addrs, addr)
				}
			}
		}
		p.mu.Lock()
		a.sent = p.sent[a.name]
		if a.rcode == dns.RcodeNameError {
			p.nxdomain++
		}
		if len(a.addrs) > 0 && p.answered[a.name].IsZero() {
			p.answered[a.name] = now
			p.pending--
		}
		p.latest[a.name] = a.addrs
		if !p.untilAnswered {
			p.answers = append(p.answers, a)
		}
		p.mu.Unlock()
	}
}

// allAnswered reports whether every name has had an answer with an address.
func (p *peers) allAnswered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending == 0
}

// firstAddress returns when name i first had an answer with an address, or
// the zero time.
func (p *peers) firstAddress(i int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered[i]
}

// holds reports whether the latest answer for name i holds addr.
func (p *peers) holds(i int, addr netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.latest[i], addr)
}

// stopPeers stops the peers asking, all at once, waits a second for the
// answers still due, and closes their sockets. Their figures stay readable.
func stopPeers(ps ...*peers) {
	for _, p := range ps {
		close(p.quit)
	}
	for _, p := range ps {
		p.sender.Wait()
	}
	time.Sleep(time.Second)
	for _, p := range ps {
		p.conn.Close()
		p.reader.Wait()
	}
}
