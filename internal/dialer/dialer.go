// Package dialer tracks the network connections a client library opens, so
// that a component whose Close must return by a deadline can cut them all.
// pgx, for one, closes a connection broken mid-query by dialling the server
// with a cancel request and waiting up to 15 s for its answer, whatever the
// caller's context: against a frozen server, pgxpool.Pool.Close blocks that
// long. Cutting the pool's connections, and refusing new dials, ends the wait.
package dialer

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrCut is the error of a dial after Cut.
var ErrCut = errors.New("connections cut: the component is closing")

// Tracker dials TCP connections and remembers the open ones. It is safe for
// concurrent use; the zero value is not ready: use New.
type Tracker struct {
	d     net.Dialer
	mu    sync.Mutex
	conns map[*conn]struct{}
	cut   bool
}

// New returns a Tracker whose connections send TCP keep-alives every 5
// minutes (pgx's default dialer's setting).
func New() *Tracker {
	return &Tracker{d: net.Dialer{KeepAlive: 5 * time.Minute}, conns: map[*conn]struct{}{}}
}

// DialContext dials addr, unless the Tracker is cut. Its signature is pgconn's
// DialFunc.
func (t *Tracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t.mu.Lock()
	cut := t.cut
	t.mu.Unlock()
	if cut {
		return nil, ErrCut
	}
	nc, err := t.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut { // cut while dialling
		nc.Close()
		return nil, ErrCut
	}
	t.conns[c] = struct{}{}
	return c, nil
}

// Cut closes every open connection and refuses new dials until Reset.
func (t *Tracker) Cut() {
	t.mu.Lock()
	t.cut = true
	conns := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Reset allows dials again after Cut.
func (t *Tracker) Reset() {
	t.mu.Lock()
	t.cut = false
	t.mu.Unlock()
}

// Open is the number of connections dialled and not closed yet.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// CloseWithin runs closeAll and returns when it has returned. When ctx ends
// first, it cuts every connection (and refuses new dials) so that closeAll
// returns promptly: a client waiting on a silent server sees its connection
// closed. Either way nothing is left running.
func (t *Tracker) CloseWithin(ctx context.Context, closeAll func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		closeAll()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Cut()
		<-done
	}
}

type conn struct {
	net.Conn
	t    *Tracker
	once sync.Once
}

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return err
}
