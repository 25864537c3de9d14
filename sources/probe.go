package sources

import (
	"sync"
	"time"
)

// Probe is how a source tells that it is caught up (schema.Current): it
// samples its server's log end (Offer) at an instant, and when its stream,
// between transactions, has reached that position, every transaction
// committed before the instant has been read (Pending, then Reached). One
// sample is pending at a time. Safe for concurrent use: the sampling and the
// stream run in different goroutines.
type Probe[P comparable] struct {
	mu   sync.Mutex
	at   time.Time
	pos  P
	some bool
}

// Offer records the log end pos sampled no earlier than at, unless a sample
// is pending already.
func (p *Probe[P]) Offer(at time.Time, pos P) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.some {
		p.at, p.pos, p.some = at, pos, true
	}
}

// Pending returns the sample the stream has not reached yet.
func (p *Probe[P]) Pending() (at time.Time, pos P, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at, p.pos, p.some
}

// Reached clears the sample taken at at: the stream reached it.
func (p *Probe[P]) Reached(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.some && p.at.Equal(at) {
		var zero P
		p.at, p.pos, p.some = time.Time{}, zero, false
	}
}

// Reset forgets any sample (a new run of the source).
func (p *Probe[P]) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var zero P
	p.at, p.pos, p.some = time.Time{}, zero, false
}
