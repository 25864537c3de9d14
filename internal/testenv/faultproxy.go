package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy between cdcd and a test server that delays, hangs
// and cuts the traffic on command. Every command takes effect at once on the
// connections already open, and none of them can block: the chaos tests used
// toxiproxy before, whose toxic add and reset wait for every link's pipe
// goroutines and deadlock when one is stuck sending to a slow peer
// (Shopify/toxiproxy#558).
type FaultProxy struct {
	upstream string
	addr     string

	mu      sync.Mutex
	ln      net.Listener // nil while cut
	conns   map[net.Conn]struct{}
	latency time.Duration // added to each chunk the server sends back
	hung    bool          // no byte moves, in either direction
	changed chan struct{} // closed and replaced on every change of latency or hung
	closed  bool

	wg sync.WaitGroup // the accept loop and every pipe
}

// NewFaultProxy listens on a free 127.0.0.1 port and forwards each connection to
// upstream. The test's cleanup closes it and waits for its goroutines.
func NewFaultProxy(t testing.TB, upstream string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: listen: %v", err)
	}
	p := &FaultProxy{
		upstream: upstream,
		addr:     ln.Addr().String(),
		ln:       ln,
		conns:    map[net.Conn]struct{}{},
		changed:  make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr is the address clients connect to.
func (p *FaultProxy) Addr() string { return p.addr }

// SetLatency delays every chunk the server sends back by d (0 removes it).
func (p *FaultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	p.changedLocked()
}

// Hang stops every byte in both directions, keeping the connections open and
// accepting new ones that hang too: only the client's timeouts notice.
func (p *FaultProxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
	p.changedLocked()
}

// Heal ends a hang and removes the latency; held bytes move on in order.
func (p *FaultProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung, p.latency = false, 0
	p.changedLocked()
}

// Cut closes every connection and refuses new ones for d.
func (p *FaultProxy) Cut(d time.Duration) error {
	p.Down()
	time.Sleep(d)
	return p.Up()
}

// Down closes every connection and refuses new ones until Up.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.closeConnsLocked()
}

// Up accepts connections again after Down.
func (p *FaultProxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Close stops the proxy and waits for its goroutines.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		p.closeConnsLocked()
		p.changedLocked()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *FaultProxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *FaultProxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *FaultProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return // closed by Cut or Close
		}
		server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed || p.ln != ln {
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		done := make(chan struct{})
		var once sync.Once
		stop := func() {
			once.Do(func() {
				close(done)
				client.Close()
				server.Close()
				p.mu.Lock()
				delete(p.conns, client)
				delete(p.conns, server)
				p.mu.Unlock()
			})
		}
		go p.pipe(server, client, false, done, stop)
		go p.pipe(client, server, true, done, stop)
	}
}

// pipe copies src to dst until either side closes, holding each chunk while the
// proxy hangs and, for the server's replies, for the latency.
func (p *FaultProxy) pipe(dst, src net.Conn, reply bool, done <-chan struct{}, stop func()) {
	defer p.wg.Done()
	defer stop()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.hold(time.Now(), reply, done) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits while the proxy hangs and until a reply read at got has aged by
// the latency. It reports false when the connection or the proxy closes.
func (p *FaultProxy) hold(got time.Time, reply bool, done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		closed, hung, latency, changed := p.closed, p.hung, p.latency, p.changed
		p.mu.Unlock()
		if closed {
			return false
		}
		var timer *time.Timer
		var wait <-chan time.Time
		switch {
		case hung:
		case reply && time.Until(got.Add(latency)) > 0:
			timer = time.NewTimer(time.Until(got.Add(latency)))
			wait = timer.C
		default:
			return true
		}
		select {
		case <-done:
			return false
		case <-changed:
		case <-wait:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
