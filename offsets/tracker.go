package offsets

import (
	"context"
	"fmt"
	"sync"
)

// Ticket identifies one in-flight batch in a Tracker.
type Ticket uint64

// Tracker follows in-flight batches in the order they were read and yields the
// highest position up to which every batch is durable. Batches may complete in any
// order (parallel sink writes); the resolved position only ever covers a contiguous
// prefix, so a checkpoint never jumps over a batch that is still being written.
//
// A batch whose checkpoint is nil (it ended inside a transaction) holds its place
// in the order but contributes no position of its own.
//
// The zero Tracker is not usable; call NewTracker.
type Tracker struct {
	mu       sync.Mutex
	capacity int
	next     Ticket          // ticket of the next Begin
	head     Ticket          // oldest ticket not yet resolved
	pending  map[Ticket]slot // tickets in [head, next)
	resolved Position        // highest contiguous checkpoint reached
	dirty    bool            // resolved moved since the last Resolve
	space    chan struct{}   // signalled when capacity frees up
}

type slot struct {
	pos  Position
	done bool
}

// NewTracker returns a Tracker that admits at most capacity batches in flight.
func NewTracker(capacity int) *Tracker {
	if capacity < 1 {
		capacity = 1
	}
	return &Tracker{capacity: capacity, pending: make(map[Ticket]slot, capacity), space: make(chan struct{}, 1)}
}

// Begin registers a batch whose effects, once durable, make checkpoint safe to
// commit (nil: nothing new is safe). It blocks while capacity batches are in flight,
// and returns ctx's error if ctx ends first.
func (t *Tracker) Begin(ctx context.Context, checkpoint Position) (Ticket, error) {
	for {
		t.mu.Lock()
		if int(t.next-t.head) < t.capacity {
			tk := t.next
			t.next++
			t.pending[tk] = slot{pos: checkpoint.Clone()}
			t.mu.Unlock()
			return tk, nil
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		case <-t.space:
		}
	}
}

// Done marks a batch durable. Marking an unknown or already resolved ticket is a
// programming error and returns an error.
func (t *Tracker) Done(tk Ticket) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.pending[tk]
	if !ok || s.done {
		return fmt.Errorf("tracker: ticket %d is not in flight", tk)
	}
	s.done = true
	t.pending[tk] = s
	freed := false
	for {
		h, ok := t.pending[t.head]
		if !ok || !h.done {
			break
		}
		if h.pos != nil && h.pos.Compare(t.resolved) > 0 {
			t.resolved = h.pos
			t.dirty = true
		}
		delete(t.pending, t.head)
		t.head++
		freed = true
	}
	if freed {
		select {
		case t.space <- struct{}{}:
		default:
		}
	}
	return nil
}

// Resolve returns the highest contiguous durable checkpoint and true if it moved
// since the last call to Resolve.
func (t *Tracker) Resolve() (Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty {
		return t.resolved, false
	}
	t.dirty = false
	return t.resolved, true
}

// InFlight returns the number of batches begun and not yet resolved.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.next - t.head)
}
