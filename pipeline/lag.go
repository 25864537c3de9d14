package pipeline

import (
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
)

// lagTracker follows the source batches read and not yet committed, so that
// the pipeline's lag is the age of the oldest change the destination does not
// durably hold, and 0 when the source says it is caught up and everything it
// read is durable (docs/observability.md defines it).
type lagTracker struct {
	mu        sync.Mutex
	inflight  []readBatch
	lastPos   offsets.Position // the highest position read
	committed offsets.Position // the offset store's position

	snapshotAt    time.Time      // the start of the last snapshot seen running
	durableNewest time.Time      // commit time of the newest durable change
	current       schema.Current // the newest durable caught-up evidence
	afterCurrent  bool           // a change was made durable after it
}

// readBatch is one source batch read and not yet committed.
type readBatch struct {
	pos      offsets.Position // committed when the offset store reaches it
	oldest   time.Time        // the earliest commit time among its changes (zero: none carries one)
	newest   time.Time
	snapshot bool // it holds changes without a commit time (snapshot rows)
	changes  bool
	current  schema.Current
	commits  []commitRun // its changes' commit times, for the end-to-end latency
}

// commitRun is n consecutive changes with one commit time.
type commitRun struct {
	at time.Time
	n  int
}

// read records a batch the source returned.
func (l *lagTracker) read(b *schema.Batch) {
	rb := readBatch{pos: highest(b), current: b.Current, changes: len(b.Changes) > 0}
	for i := range b.Changes {
		ts := b.Changes[i].CommitTS
		if ts.IsZero() {
			rb.snapshot = true
			continue
		}
		if rb.oldest.IsZero() || ts.Before(rb.oldest) {
			rb.oldest = ts
		}
		if ts.After(rb.newest) {
			rb.newest = ts
		}
		if n := len(rb.commits); n > 0 && rb.commits[n-1].at.Equal(ts) {
			rb.commits[n-1].n++
		} else {
			rb.commits = append(rb.commits, commitRun{at: ts, n: 1})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if rb.pos == nil {
		rb.pos = l.lastPos
	} else {
		l.lastPos = rb.pos
	}
	if rb.pos == nil && !rb.changes {
		// nothing read before it and nothing in it: durable already
		l.durable(rb)
		return
	}
	if len(l.inflight) == 0 && !rb.changes && rb.pos != nil && l.committed != nil && rb.pos.Compare(l.committed) <= 0 {
		l.durable(rb) // evidence for what is durable already
		return
	}
	l.inflight = append(l.inflight, rb)
}

// commit records that the offset store holds pos, and returns the batches it
// made durable.
func (l *lagTracker) commit(pos offsets.Position) []readBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed = pos
	n := 0
	for n < len(l.inflight) && l.inflight[n].pos.Compare(pos) <= 0 {
		l.durable(l.inflight[n])
		n++
	}
	done := l.inflight[:n:n]
	l.inflight = l.inflight[n:]
	return done
}

func (l *lagTracker) durable(rb readBatch) {
	if rb.newest.After(l.durableNewest) {
		l.durableNewest = rb.newest
	}
	switch {
	case !rb.current.IsZero():
		l.current, l.afterCurrent = rb.current, false
	case rb.changes:
		l.afterCurrent = true
	}
}

// Lag is a pipeline's lag as of an instant.
type Lag struct {
	Known    bool
	Seconds  float64
	CaughtUp bool
}

// lag computes the lag at now. snapshotAt is when the source's running
// snapshot began (zero: none runs).
func (l *lagTracker) lag(now, snapshotAt time.Time) Lag {
	l.mu.Lock()
	defer l.mu.Unlock()
	since := func(t time.Time) Lag { return Lag{Known: true, Seconds: max(0, now.Sub(t).Seconds())} }
	if !snapshotAt.IsZero() {
		// the replica is complete as of the snapshot's start until it ends
		l.snapshotAt = snapshotAt
		return since(snapshotAt)
	}
	for _, rb := range l.inflight {
		if rb.snapshot && !l.snapshotAt.IsZero() {
			return since(l.snapshotAt) // the snapshot's last rows are read, not yet durable
		}
		if !rb.oldest.IsZero() {
			return since(rb.oldest)
		}
	}
	if !l.current.IsZero() && !l.afterCurrent {
		if now.Before(l.current.Until) && !l.inflightChanges() {
			return Lag{Known: true, CaughtUp: true}
		}
		return since(l.current.At)
	}
	if !l.durableNewest.IsZero() {
		return since(l.durableNewest)
	}
	return Lag{}
}

func (l *lagTracker) inflightChanges() bool {
	for _, rb := range l.inflight {
		if rb.changes {
			return true
		}
	}
	return false
}
