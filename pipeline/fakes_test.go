package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/offsets/memstore"
	"github.com/cdcd-dev/cdcd/schema"
)

var errInjected = errors.New("injected fault")

// faults decides, per call site, whether to fail. The zero value never fails.
type faults struct {
	mu   sync.Mutex
	rng  *rand.Rand
	rate float64
	hits map[string]int
}

func (f *faults) fail(site string) bool {
	if f == nil || f.rng == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.rate {
		if f.hits == nil {
			f.hits = map[string]int{}
		}
		f.hits[site]++
		return true
	}
	return false
}

func (f *faults) intn(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

type txn struct {
	changes []schema.Change
	commit  offsets.Position
}

// workload makes n deterministic transactions over a few keys of two tables.
func workload(seed uint64, n int) []txn {
	rng := rand.New(rand.NewPCG(seed, 7))
	tables := []schema.TableID{{Namespace: "s", Name: "a"}, {Namespace: "s", Name: "b"}}
	var out []txn
	seq := uint64(0)
	for i := range n {
		commit := offsets.AppendUint(nil, uint64(i+1))
		size := 1 + rng.IntN(7)
		if rng.IntN(20) == 0 {
			size = 25 // larger than the test batch limit: split mid-transaction
		}
		var t txn
		for j := range size {
			seq++
			tbl := tables[rng.IntN(len(tables))]
			key := schema.Row{{Name: "id", Value: schema.Int(int64(rng.IntN(15)))}}
			op := []schema.Op{schema.OpInsert, schema.OpUpdate, schema.OpDelete}[rng.IntN(3)]
			c := schema.Change{Op: op, Table: tbl, Version: 1, Key: key,
				Pos:      offsets.AppendUint(offsets.AppendUint(nil, uint64(i+1)), uint64(j)),
				CommitTS: time.Unix(int64(i), 0)}
			if op != schema.OpDelete {
				c.After = append(key.Clone(), schema.Field{Name: "v", Value: schema.Int(int64(seq))})
			}
			t.changes = append(t.changes, c)
		}
		t.commit = commit
		out = append(out, t)
	}
	return out
}

// memSource serves a fixed list of transactions. It checks that it is never acked
// beyond what the offset store holds.
type memSource struct {
	t        testing.TB
	txns     []txn
	store    offsets.Store
	pipeline string
	f        *faults
	max      int

	mu       sync.Mutex
	next     int // next transaction
	part     int // next change within it
	acked    offsets.Position
	reads    int
	finished chan struct{} // closed when everything was served (nil: never)
	open     bool
}

func (s *memSource) Open(ctx context.Context, from offsets.Position) error {
	if s.f.fail("source.open") {
		return errInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next, s.part, s.open = 0, 0, true
	for s.next < len(s.txns) && s.txns[s.next].commit.Compare(from) <= 0 {
		s.next++
	}
	return nil
}

func (s *memSource) Read(ctx context.Context) (schema.Batch, error) {
	if s.f.fail("source.read") {
		return schema.Batch{}, errInjected
	}
	s.mu.Lock()
	if s.next >= len(s.txns) {
		s.mu.Unlock()
		if s.finished != nil {
			select {
			case <-s.finished:
			default:
				close(s.finished)
			}
		}
		<-ctx.Done()
		return schema.Batch{}, ctx.Err()
	}
	defer s.mu.Unlock()
	s.reads++
	t := s.txns[s.next]
	end := min(s.part+s.max, len(t.changes))
	b := schema.Batch{Changes: append([]schema.Change(nil), t.changes[s.part:end]...)}
	if end == len(t.changes) {
		b.Checkpoint = t.commit
		s.next++
		s.part = 0
	} else {
		s.part = end
	}
	return b, nil
}

func (s *memSource) Ack(ctx context.Context, upTo offsets.Position) error {
	stored, err := s.store.Load(context.Background(), s.pipeline)
	if err != nil {
		s.t.Errorf("ack %s with no stored offset: %v", upTo, err)
	} else if upTo.Compare(stored) > 0 {
		s.t.Errorf("invariant: source acked %s ahead of the offset store %s", upTo, stored)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if upTo.Compare(s.acked) < 0 {
		s.t.Errorf("ack moved back from %s to %s", s.acked, upTo)
	}
	s.acked = upTo
	if s.f.fail("source.ack") {
		return errInjected
	}
	return nil
}

func (s *memSource) Close(context.Context) error {
	s.mu.Lock()
	s.open = false
	s.mu.Unlock()
	return nil
}

type rowKey struct {
	t schema.TableID
	k string
}

type rowState struct {
	pos     offsets.Position
	deleted bool
	after   string
}

// memSink is a versioned key-value destination: a change applies only if it is
// newer than what the row holds, as the real sinks do.
type memSink struct {
	f     *faults
	block chan struct{} // when non-nil, Write waits on it

	mu      sync.Mutex
	rows    map[rowKey]rowState
	durable offsets.Position // highest change position ever applied
	order   []offsets.Position
	writes  int
}

func (s *memSink) Open(context.Context) error {
	if s.f.fail("sink.open") {
		return errInjected
	}
	s.mu.Lock()
	if s.rows == nil {
		s.rows = map[rowKey]rowState{}
	}
	s.mu.Unlock()
	return nil
}

func (s *memSink) Apply(context.Context, []schema.Delta) error { return nil }

func (s *memSink) Write(ctx context.Context, b *schema.Batch) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.f.fail("sink.write") {
		return errInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	n := len(b.Changes)
	partial := s.f.fail("sink.write.partial")
	if partial {
		n = s.f.intn(n + 1) // a non-atomic sink that died half way
	}
	for _, c := range b.Changes[:n] {
		s.order = append(s.order, c.Pos)
		k := rowKey{c.Table, string(c.Key.AppendJSON(nil))}
		if cur, ok := s.rows[k]; ok && cur.pos.Compare(c.Pos) >= 0 {
			continue
		}
		s.rows[k] = rowState{pos: c.Pos.Clone(), deleted: c.Op == schema.OpDelete, after: string(c.After.AppendJSON(nil))}
		s.durable = offsets.Max(s.durable, c.Pos)
	}
	if partial {
		return errInjected
	}
	return nil
}

func (s *memSink) Close(context.Context) error { return nil }

func (s *memSink) snapshot() map[rowKey]rowState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[rowKey]rowState, len(s.rows))
	for k, v := range s.rows {
		out[k] = v
	}
	return out
}

// checkedStore wraps memstore and checks, on every commit, that the sink holds
// everything up to the committed position.
type checkedStore struct {
	memstore.Store
	t    testing.TB
	sink *memSink
	txns []txn
	f    *faults
	keep func(schema.Change) bool // the changes a chain lets through (nil: all)
}

func (s *checkedStore) Commit(ctx context.Context, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	if s.f.fail("offsets.commit.before") {
		return errInjected
	}
	// every change of every transaction committed at or before p must be applied
	s.sink.mu.Lock()
	for _, t := range s.txns {
		if t.commit.Compare(p) > 0 {
			break
		}
		var last offsets.Position
		for _, c := range t.changes {
			if s.keep == nil || s.keep(c) {
				last = c.Pos
			}
		}
		if s.sink.durable.Compare(last) < 0 {
			s.t.Errorf("invariant: offset %s committed ahead of the sink (durable %s)", p, s.sink.durable)
			break
		}
	}
	s.sink.mu.Unlock()
	if err := s.Store.Commit(ctx, pipeline, epoch, p); err != nil {
		return err
	}
	if s.f.fail("offsets.commit.after") {
		return errInjected
	}
	return nil
}

// expected applies txns to a fresh memSink without faults.
func expected(txns []txn) map[rowKey]rowState {
	s := &memSink{rows: map[rowKey]rowState{}}
	for _, t := range txns {
		b := schema.Batch{Changes: t.changes}
		_ = s.Write(context.Background(), &b)
	}
	return s.snapshot()
}

// memStats is a StatsStore in memory that fails its saves at times.
type memStats struct {
	f  *faults
	mu sync.Mutex
	st Stats
}

func (m *memStats) LoadStats(context.Context) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Clone(), nil
}

func (m *memStats) SaveStats(_ context.Context, st Stats) error {
	if m.f.fail("stats.save") {
		return errInjected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = st.Clone()
	return nil
}

type bundle struct {
	src   *memSource
	sink  *memSink
	store *checkedStore
	txns  []txn
}

func newBundle(t testing.TB, seed uint64, n int, f *faults) *bundle {
	txns := workload(seed, n)
	sink := &memSink{f: f}
	store := &checkedStore{t: t, sink: sink, txns: txns, f: f}
	src := &memSource{t: t, txns: txns, store: store, pipeline: "p", f: f, max: 10}
	return &bundle{src: src, sink: sink, store: store, txns: txns}
}

func (b *bundle) config(t testing.TB, epoch offsets.Epoch) RunnerConfig {
	return RunnerConfig{Pipeline: "p", Source: b.src, Sink: b.sink, Offsets: b.store, Epoch: epoch,
		MaxChanges: 20, MaxWait: time.Millisecond}
}

func (b *bundle) acquire(t testing.TB) offsets.Epoch {
	e, err := b.store.Acquire(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// runUntilDone runs a runner until the source has served everything and the
// offset store holds the last commit, then stops it gracefully.
func (b *bundle) runUntilDone(t testing.TB, cfg RunnerConfig) error {
	r, err := NewRunner(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	last := b.txns[len(b.txns)-1].commit
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			if p, err := b.store.Load(context.Background(), "p"); err == nil && p.Compare(last) == 0 {
				cancel()
				return <-errc
			}
		}
	}
}
