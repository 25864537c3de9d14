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
	committed offsets.Position // the offset store's position

	snapshotAt    time.Time      // the start of the last snapshot seen running
	durableNewest time.Time      // commit time of the newest durable change
	current       schema.Current // the newest durable caught-up evidence
	afterCurrent  bool           // a change was made durable after it

	// stats are the durable counts; changes made durable by a checkpoint at or
	// below counted (the stats' AsOf when the run began) were counted by an
	// earlier run
	stats   Stats
	counted offsets.Position
	writes  []writtenBatch
}

// writtenBatch is the part of a written batch that came from one source
// batch, not yet committed.
type writtenBatch struct {
	pos offsets.Position
	n   int
}

// readBatch is one source batch read and not yet committed.
type readBatch struct {
	pos      offsets.Position // its checkpoint: durable when the offset store reaches it (nil: with the next)
	oldest   time.Time        // the earliest commit time among its changes (zero: none carries one)
	newest   time.Time
	snapshot bool // it holds changes without a commit time (snapshot rows)
	changes  bool
	current  schema.Current
	commits  []commitRun                    // its changes' commit times, for the end-to-end latency
	tables   map[schema.TableID]*TableStats // keyed by id: no string built per change
}

// commitRun is n consecutive changes with one commit time.
type commitRun struct {
	at time.Time
	n  int
}

// read records a batch the source returned.
func (l *lagTracker) read(b *schema.Batch) {
	rb := readBatch{pos: b.Checkpoint, current: b.Current, changes: len(b.Changes) > 0}
	for i := range b.Changes {
		c := &b.Changes[i]
		if rb.tables == nil {
			rb.tables = map[schema.TableID]*TableStats{}
		}
		t := rb.tables[c.Table]
		if t == nil {
			t = &TableStats{}
			rb.tables[c.Table] = t
		}
		t.count(c)
		ts := c.CommitTS
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
	if len(l.inflight) == 0 && !rb.changes && (rb.pos == nil || (l.committed != nil && rb.pos.Compare(l.committed) <= 0)) {
		l.durable(rb, time.Time{}) // nothing in flight, nothing to commit: a word about what is durable already
		return
	}
	l.inflight = append(l.inflight, rb)
}

// durableUpTo is how many of a queue's first entries the offset store holding
// pos makes durable: up to the last whose checkpoint is at or below pos (one
// without a checkpoint, part of a transaction, goes with the next that has one).
func durableUpTo(n int, checkpoint func(i int) offsets.Position, pos offsets.Position) int {
	k := 0
	for i := range n {
		cp := checkpoint(i)
		if cp == nil {
			continue
		}
		if cp.Compare(pos) > 0 {
			break
		}
		k = i + 1
	}
	return k
}

// wrote records that the sink wrote a batch: per source batch in it, its
// checkpoint and how many of its changes the transforms passed on.
func (l *lagTracker) wrote(parts []writtenBatch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, parts...)
}

// groups returns, for each of the first n entries of a queue, the checkpoint
// that makes it durable (its own, or the next entry's that has one).
func groups(n int, checkpoint func(i int) offsets.Position) []offsets.Position {
	out := make([]offsets.Position, n)
	var cur offsets.Position
	for i := n - 1; i >= 0; i-- {
		if cp := checkpoint(i); cp != nil {
			cur = cp
		}
		out[i] = cur
	}
	return out
}

// fresh reports whether changes made durable by checkpoint cp are not counted
// yet: an earlier run counted those at or below the stats' AsOf it saved.
func (l *lagTracker) fresh(cp offsets.Position) bool {
	return l.counted == nil || cp.Compare(l.counted) > 0
}

// commit records that the offset store is about to hold pos: it returns the
// batches that makes durable and the stats as of pos, to save first.
func (l *lagTracker) commit(pos offsets.Position, now time.Time) ([]readBatch, Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed = pos
	rcp := func(i int) offsets.Position { return l.inflight[i].pos }
	n := durableUpTo(len(l.inflight), rcp, pos)
	for i, cp := range groups(n, rcp) {
		rb := l.inflight[i]
		if !l.fresh(cp) {
			rb.tables = nil
		}
		l.durable(rb, now)
	}
	for n < len(l.inflight) && l.inflight[n].pos == nil && !l.inflight[n].changes {
		l.durable(l.inflight[n], now) // a word with nothing to commit, behind what just became durable
		n++
	}
	done := l.inflight[:n:n]
	l.inflight = l.inflight[n:]
	wcp := func(i int) offsets.Position { return l.writes[i].pos }
	w := durableUpTo(len(l.writes), wcp, pos)
	for i, cp := range groups(w, wcp) {
		if l.fresh(cp) {
			l.stats.Written += uint64(l.writes[i].n)
		}
	}
	l.writes = l.writes[w:]
	// never lower: a run that resumed below AsOf has counted nothing up to it
	l.stats.AsOf = offsets.Max(l.stats.AsOf, pos)
	return done, l.stats.Clone()
}

// start sets the stats an earlier run saved and the position the run resumes
// from.
func (l *lagTracker) start(st Stats, from offsets.Position) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.Tables == nil {
		st.Tables = map[string]*TableStats{}
	}
	l.stats, l.counted = st, st.AsOf
	l.committed = from
}

// durableStats returns a copy of the durable counts.
func (l *lagTracker) durableStats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats.Clone()
}

func (l *lagTracker) durable(rb readBatch, now time.Time) {
	if l.stats.Tables == nil {
		l.stats.Tables = map[string]*TableStats{}
	}
	for id, t := range rb.tables {
		name := id.String()
		cur := l.stats.Tables[name]
		if cur == nil {
			cur = &TableStats{}
			l.stats.Tables[name] = cur
		}
		cur.add(*t)
		cur.LastWritten = now
	}
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
