package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunnerDeliversInOrder(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 1, 200, nil)
	require.NoError(t, b.runUntilDone(t, b.config(t, b.acquire(t))))

	require.Equal(t, expected(b.txns), b.sink.snapshot())
	for i := 1; i < len(b.sink.order); i++ {
		require.Equal(t, 1, b.sink.order[i].Compare(b.sink.order[i-1]), "change %d written out of order", i)
	}
	var total int
	for _, tx := range b.txns {
		total += len(tx.changes)
	}
	require.Len(t, b.sink.order, total, "a clean run writes each change exactly once")
	require.Equal(t, b.txns[len(b.txns)-1].commit, b.src.acked)
}

func TestRunnerStaleEpochCannotCommit(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 2, 20, nil)
	stale := b.acquire(t)
	b.acquire(t) // another runner took the pipeline over
	err := b.runUntilDone(t, b.config(t, stale))
	require.ErrorIs(t, err, offsets.ErrFenced)
	_, err = b.store.Load(context.Background(), "p")
	require.ErrorIs(t, err, offsets.ErrNotFound, "nothing was committed under the stale epoch")
	require.Nil(t, b.src.acked, "nothing was acked under the stale epoch")
}

func TestRunnerSinkFailureThenRestartConverges(t *testing.T) {
	t.Parallel()
	f := &faults{rng: rand.New(rand.NewPCG(3, 3)), rate: 0}
	b := newBundle(t, 3, 150, f)
	// First run: the sink dies half way through a batch after a while.
	var once bool
	b.sink.f = &faults{}
	cfg := b.config(t, b.acquire(t))
	cfg.Sink = &failAfter{memSink: b.sink, after: 10, once: &once}
	err := b.runUntilDone(t, cfg)
	require.ErrorIs(t, err, errInjected)
	require.NotEqual(t, expected(b.txns), b.sink.snapshot(), "the failure must strike before the end")

	// Restart from the checkpoint: replay, then the same state as a clean run.
	require.NoError(t, b.runUntilDone(t, b.config(t, b.acquire(t))))
	require.Equal(t, expected(b.txns), b.sink.snapshot())
}

// failAfter applies half of the n-th batch and then fails.
type failAfter struct {
	*memSink
	after int
	once  *bool
}

func (f *failAfter) Write(ctx context.Context, b *schema.Batch) error {
	if f.memSink.writes >= f.after && !*f.once {
		*f.once = true
		half := schema.Batch{Changes: b.Changes[:len(b.Changes)/2]}
		_ = f.memSink.Write(ctx, &half)
		return errInjected
	}
	return f.memSink.Write(ctx, b)
}

func TestRunnerBackpressureBoundsReads(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 4, 500, nil)
	b.sink.block = make(chan struct{})
	cfg := b.config(t, b.acquire(t))
	cfg.MaxChanges = 1 // one source batch per write batch
	r, err := NewRunner(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()

	// With the sink stuck, the reader fills the queues and the tracker, then stops.
	bound := 2*cfg.WithDefaults().QueueDepth + 2 + 3
	require.Eventually(t, func() bool {
		b.src.mu.Lock()
		defer b.src.mu.Unlock()
		return b.src.reads >= bound-3
	}, 5*time.Second, time.Millisecond)
	// Give the reader ample opportunity to overrun; it must stay bounded.
	for range 50 {
		time.Sleep(time.Millisecond) // waiting for something NOT to happen has no event to wait on
		b.src.mu.Lock()
		reads := b.src.reads
		b.src.mu.Unlock()
		require.LessOrEqual(t, reads, bound, "reader ran ahead of a blocked sink")
	}
	close(b.sink.block)
	cancel()
	require.NoError(t, <-errc)
}

func TestRunnerShutdownDrains(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 5, 300, nil)
	b.src.finished = make(chan struct{})
	b.sink.block = make(chan struct{})
	r, err := NewRunner(b.config(t, b.acquire(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return r.Progress().ChangesRead > 0 }, 5*time.Second, time.Millisecond)
	cancel() // stop while batches are in flight and the sink is held
	close(b.sink.block)
	require.NoError(t, <-errc)

	p := r.Progress()
	require.Equal(t, p.ChangesRead, p.ChangesWritten, "every change read was written before stopping")
	require.NotNil(t, p.CommittedPos)
	stored, err := b.store.Load(context.Background(), "p")
	require.NoError(t, err)
	require.Equal(t, p.CommittedPos, stored)
}

func TestRunnerDrainTimeout(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 6, 50, nil)
	b.sink.block = make(chan struct{}) // never released
	cfg := b.config(t, b.acquire(t))
	cfg.DrainTimeout = 20 * time.Millisecond
	r, err := NewRunner(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return r.Progress().ChangesRead > 0 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, ErrDrainTimeout)
}

// dropOdd is a transform that drops changes whose key is odd.
type dropOdd struct{}

func (dropOdd) Schema(t schema.Table) (schema.Table, error) { return t, nil }
func (dropOdd) Apply(c *schema.Change) (bool, error) {
	v, _ := c.Key.Get("id")
	return v.AsInt()%2 == 0, nil
}

func TestRunnerAppliesChain(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 7, 100, nil)
	cfg := b.config(t, b.acquire(t))
	cfg.Chain = transforms.NewChain(transforms.Step{Name: "drop_odd", Transform: dropOdd{}})
	b.store.keep = func(c schema.Change) bool { ok, _ := dropOdd{}.Apply(&c); return ok }
	require.NoError(t, b.runUntilDone(t, cfg))
	for k := range b.sink.snapshot() {
		require.NotContains(t, []string{`{"id":1}`, `{"id":3}`}, k.k)
	}
	require.NotEmpty(t, b.sink.snapshot())
}

// TestRunnerRandomFaults injects failures at every step — source open, read and
// ack; sink open, write and partial write; offset commit before and after the
// write — restarts after each, and checks the invariants throughout (the fakes
// fail the test on any violation) and the final state against a clean run.
func TestRunnerRandomFaults(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run("seed", func(t *testing.T) {
			t.Parallel()
			f := &faults{rng: rand.New(rand.NewPCG(seed, 99)), rate: 0.02}
			b := newBundle(t, seed+100, 120, f)
			stats := &memStats{f: f}
			var attempts int
			for {
				attempts++
				require.Less(t, attempts, 500, "no convergence (seed %d)", seed)
				cfg := b.config(t, b.acquire(t))
				cfg.Stats = stats
				err := b.runUntilDone(t, cfg)
				if err == nil {
					break
				}
				require.ErrorIs(t, err, errInjected, "seed %d", seed)
			}
			require.Equal(t, expected(b.txns), b.sink.snapshot(), "seed %d after %d attempts, faults %v", seed, attempts, f.hits)
			// the counts are exact however often the runs failed and replayed
			want := map[string]*TableStats{}
			var n uint64
			for _, tx := range b.txns {
				for _, c := range tx.changes {
					ts := want[c.Table.String()]
					if ts == nil {
						ts = &TableStats{}
						want[c.Table.String()] = ts
					}
					ts.count(&c)
					n++
				}
			}
			got, _ := stats.LoadStats(context.Background())
			require.Equal(t, n, got.Written, "changes written, seed %d, faults %v", seed, f.hits)
			for name, w := range want {
				g := got.Tables[name]
				require.NotNil(t, g, name)
				g.LastWritten = time.Time{}
				require.Equal(t, *w, *g, "%s, seed %d, faults %v", name, seed, f.hits)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	require.Equal(t, ClassRetryable, Classify(errors.New("x")))
	require.Equal(t, ClassPermanent, Classify(component.Permanent(errors.New("x"))))
	require.Equal(t, ClassNeedsResync, Classify(resyncErr{}))
	require.Equal(t, ClassPermanent, Classify(&offsets.RegressionError{}))
}

type resyncErr struct{}

func (resyncErr) Error() string     { return "slot lost" }
func (resyncErr) NeedsResync() bool { return true }

// TestRunnerStoppedWhileStarting: a stop (pause, update, delete) that comes
// while the runner loads its state is a stop, not a failed attempt (found:
// "load held tables: context canceled" counted as a failure and retried).
func TestRunnerStoppedWhileStarting(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 1, 5, &faults{})
	cfg := b.config(t, b.acquire(t))
	loading := make(chan struct{})
	cfg.Holds = blockingHolds{loading: loading}
	r, err := NewRunner(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-loading
	cancel()
	require.NoError(t, <-done)
}

// blockingHolds blocks LoadHolds until its context ends.
type blockingHolds struct {
	HoldStore
	loading chan struct{}
}

func (h blockingHolds) LoadHolds(ctx context.Context) ([]Hold, error) {
	close(h.loading)
	<-ctx.Done()
	return nil, fmt.Errorf("list held tables: %w", ctx.Err())
}
