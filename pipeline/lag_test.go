package pipeline

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/offsets/memstore"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func pos(n uint64) offsets.Position { return offsets.AppendUint(nil, n) }

func changeAt(n uint64, at time.Time) schema.Change {
	return schema.Change{Op: schema.OpInsert, Table: schema.TableID{Name: "t"}, Pos: pos(n), CommitTS: at,
		Key: schema.Row{{Name: "id", Value: schema.Int(int64(n))}}}
}

func TestLagTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var l lagTracker
	require.Equal(t, Lag{}, l.lag(t0, time.Time{}), "nothing read: unknown, not 0")

	// read, not durable: the age of its oldest change
	l.read(&schema.Batch{Changes: []schema.Change{changeAt(1, t0), changeAt(2, t0.Add(time.Second))}, Checkpoint: pos(2)})
	require.Equal(t, Lag{Known: true, Seconds: 5}, l.lag(t0.Add(5*time.Second), time.Time{}))
	l.read(&schema.Batch{Changes: []schema.Change{changeAt(3, t0.Add(3*time.Second))}, Checkpoint: pos(3)})
	require.Equal(t, Lag{Known: true, Seconds: 9}, l.lag(t0.Add(9*time.Second), time.Time{}), "still the oldest in flight")

	// the first batch durable: the second's change is the oldest not durable
	done, _ := l.commit(pos(2), t0)
	require.Len(t, done, 1)
	require.Equal(t, []commitRun{{t0, 1}, {t0.Add(time.Second), 1}}, done[0].commits)
	require.Equal(t, Lag{Known: true, Seconds: 7}, l.lag(t0.Add(10*time.Second), time.Time{}))

	// all durable, no word from the source: the newest durable change's age
	l.commit(pos(3), t0)
	require.Equal(t, Lag{Known: true, Seconds: 8}, l.lag(t0.Add(11*time.Second), time.Time{}))

	// the source is caught up (nothing new to checkpoint): 0 until its word expires
	at := t0.Add(20 * time.Second)
	l.read(&schema.Batch{Current: schema.Current{At: at, Until: at.Add(25 * time.Second)}})
	require.Equal(t, Lag{Known: true, CaughtUp: true}, l.lag(at.Add(24*time.Second), time.Time{}))
	require.Equal(t, Lag{Known: true, Seconds: 30}, l.lag(at.Add(30*time.Second), time.Time{}), "no newer word: the replica is known complete only up to At")

	// a word that rides on a checkpoint counts once the checkpoint is durable
	at2 := at.Add(30 * time.Second)
	l.read(&schema.Batch{Checkpoint: pos(4), Current: schema.Current{At: at2, Until: at2.Add(25 * time.Second)}})
	require.Equal(t, Lag{Known: true, Seconds: 31}, l.lag(at2.Add(time.Second), time.Time{}))
	l.commit(pos(4), t0)
	require.Equal(t, Lag{Known: true, CaughtUp: true}, l.lag(at2.Add(time.Second), time.Time{}))

	// a change read after it: its age, durable or not, until the next word
	l.read(&schema.Batch{Changes: []schema.Change{changeAt(5, at2.Add(2*time.Second))}, Checkpoint: pos(5)})
	require.Equal(t, Lag{Known: true, Seconds: 3}, l.lag(at2.Add(5*time.Second), time.Time{}))
	l.commit(pos(5), t0)
	require.Equal(t, Lag{Known: true, Seconds: 4}, l.lag(at2.Add(6*time.Second), time.Time{}))

	// a word behind changes in flight waits for them
	l.read(&schema.Batch{Changes: []schema.Change{changeAt(6, at2.Add(7*time.Second))}, Checkpoint: pos(6)})
	l.read(&schema.Batch{Current: schema.Current{At: at2.Add(8 * time.Second), Until: at2.Add(time.Minute)}})
	require.Equal(t, Lag{Known: true, Seconds: 2}, l.lag(at2.Add(9*time.Second), time.Time{}))
	l.commit(pos(6), t0)
	require.Equal(t, Lag{Known: true, CaughtUp: true}, l.lag(at2.Add(9*time.Second), time.Time{}))

	// a snapshot: the replica is complete as of its start, until it ends
	require.Equal(t, Lag{Known: true, Seconds: 60}, l.lag(at2.Add(9*time.Second), at2.Add(-51*time.Second)))
}

// chanSource hands out the batches sent on it.
type chanSource struct {
	batches chan schema.Batch
}

func (s *chanSource) Open(context.Context, offsets.Position) error { return nil }
func (s *chanSource) Read(ctx context.Context) (schema.Batch, error) {
	select {
	case b := <-s.batches:
		return b, nil
	case <-ctx.Done():
		return schema.Batch{}, ctx.Err()
	}
}
func (s *chanSource) Ack(context.Context, offsets.Position) error { return nil }
func (s *chanSource) Close(context.Context) error                 { return nil }

// The lag a scrape reads rises while the sink holds a batch, reads 0 once the
// source says it is caught up and all is durable, and is gone when the
// pipeline stops; the end-to-end latency counts each change once.
func TestLagOfARunningPipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		src := &chanSource{batches: make(chan schema.Batch)}
		sink := &memSink{block: make(chan struct{})}
		store := &memstore.Store{}
		epoch, err := store.Acquire(t.Context(), "p")
		require.NoError(t, err)
		r, err := NewRunner(RunnerConfig{Pipeline: "p", Source: src, Sink: sink, Offsets: store, Epoch: epoch,
			MaxWait: time.Millisecond, Metrics: NewMetrics(reg)})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		lag := func() (float64, bool) { return gauge(t, reg, "cdcd_source_lag_seconds") }
		_, known := lag()
		require.False(t, known, "unknown before the source said anything")

		start := time.Now()
		src.batches <- schema.Batch{Changes: []schema.Change{changeAt(1, start), changeAt(2, start)}, Checkpoint: pos(2)}
		time.Sleep(30 * time.Second) // the sink is paused
		synctest.Wait()
		v, known := lag()
		require.True(t, known)
		require.InDelta(t, 30, v, 0.01, "the age of the change the sink holds")

		close(sink.block)
		synctest.Wait()
		now := time.Now()
		src.batches <- schema.Batch{Current: schema.Current{At: now, Until: now.Add(20 * time.Second)}}
		synctest.Wait()
		v, known = lag()
		require.True(t, known)
		require.Zero(t, v, "caught up")
		up, ok := gauge(t, reg, "cdcd_source_caught_up")
		require.True(t, ok)
		require.Equal(t, 1.0, up)
		p := r.Progress()
		require.True(t, p.CaughtUp)
		require.NotNil(t, p.LagSeconds)

		n, err := testutil.GatherAndCount(reg, "cdcd_end_to_end_latency_seconds")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, uint64(2), histogramCount(t, reg, "cdcd_end_to_end_latency_seconds"), "one observation per change")

		cancel()
		require.NoError(t, <-done)
		_, known = lag()
		require.False(t, known, "a stopped pipeline has no lag to report")
	})
}

// gauge reads the one series of a gauge, if it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			require.Len(t, mf.GetMetric(), 1)
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// histogramCount sums a histogram's observations over its series.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// A batch that ends on a checkpoint is written as soon as the source has
// nothing more and the sink is idle, not after max_wait; one whose
// transaction goes on waits for the rest; min_wait holds it back (the
// warehouse sinks' fewer, larger batches); while the sink writes, the next
// batches coalesce into one.
func TestBatchesGoWhenTheSourceIsIdle(t *testing.T) {
	run := func(t *testing.T, minWait time.Duration) (*chanSource, *memSink, func()) {
		src := &chanSource{batches: make(chan schema.Batch)}
		sink := &memSink{}
		store := &memstore.Store{}
		epoch, err := store.Acquire(t.Context(), "p")
		require.NoError(t, err)
		r, err := NewRunner(RunnerConfig{Pipeline: "p", Source: src, Sink: sink, Offsets: store, Epoch: epoch, MaxWait: time.Hour, MinWait: minWait})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		return src, sink, func() { cancel(); require.NoError(t, <-done) }
	}
	writes := func(s *memSink) int { s.mu.Lock(); defer s.mu.Unlock(); return s.writes }
	synctest.Test(t, func(t *testing.T) {
		src, sink, stop := run(t, 0)
		defer stop()
		now := time.Now()
		src.batches <- schema.Batch{Changes: []schema.Change{changeAt(1, now)}} // inside a transaction
		synctest.Wait()
		require.Zero(t, writes(sink), "the rest of its transaction is awaited")
		src.batches <- schema.Batch{Changes: []schema.Change{changeAt(2, now)}, Checkpoint: pos(2)}
		synctest.Wait()
		require.Equal(t, 1, writes(sink), "written at once, no max_wait (1h) waited for")

		// the sink busy: what comes meanwhile is one batch
		sink.mu.Lock()
		sink.block = make(chan struct{})
		block := sink.block
		sink.mu.Unlock()
		src.batches <- schema.Batch{Changes: []schema.Change{changeAt(3, now)}, Checkpoint: pos(3)}
		synctest.Wait()
		for i := uint64(4); i <= 9; i++ {
			src.batches <- schema.Batch{Changes: []schema.Change{changeAt(i, now)}, Checkpoint: pos(i)}
		}
		synctest.Wait()
		sink.mu.Lock()
		sink.block = nil
		sink.mu.Unlock()
		close(block)
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 3, writes(sink), "the six batches that came while the sink wrote went as one")
	})
	synctest.Test(t, func(t *testing.T) {
		src, sink, stop := run(t, 30*time.Second)
		defer stop()
		src.batches <- schema.Batch{Changes: []schema.Change{changeAt(1, time.Now())}, Checkpoint: pos(1)}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		require.Zero(t, writes(sink), "min_wait holds it back")
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 1, writes(sink))
	})
}
