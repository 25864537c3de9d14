package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/stretchr/testify/require"
)

type recordedStates struct {
	mu sync.Mutex
	m  map[string][]State
}

func (r *recordedStates) SavePipelineState(_ context.Context, p string, s State, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]State{}
	}
	r.m[p] = append(r.m[p], s)
	return nil
}

func startSupervisor(t *testing.T, cfg SupervisorConfig) *Supervisor {
	t.Helper()
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	s := NewSupervisor(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s
}

func waitState(t *testing.T, s *Supervisor, name string, want State) Status {
	t.Helper()
	var st Status
	require.Eventually(t, func() bool {
		var err error
		st, err = s.Status(name)
		return err == nil && st.State == want
	}, 10*time.Second, time.Millisecond, "pipeline %s never reached %s (last %+v)", name, want, st)
	return st
}

// flaky builds runners over a shared bundle whose source fails on open the first
// n attempts.
func flakySpec(t *testing.T, name string, b *bundle, failOpens int, permanent bool) (Spec, *atomic.Int32) {
	var builds atomic.Int32
	return Spec{Name: name, Build: func(ctx context.Context) (RunnerConfig, error) {
		n := builds.Add(1)
		e, err := b.store.Acquire(ctx, "p")
		if err != nil {
			return RunnerConfig{}, err
		}
		cfg := b.config(t, e)
		cfg.Pipeline = "p"
		if int(n) <= failOpens {
			err := errors.New("connection refused")
			if permanent {
				err = component.Permanent(errors.New("password authentication failed"))
			}
			cfg.Source = &failingOpen{memSource: b.src, err: err}
		}
		return cfg, nil
	}}, &builds
}

type failingOpen struct {
	*memSource
	err error
}

func (f *failingOpen) Open(context.Context, offsets.Position) error { return f.err }

func TestSupervisorRetriesThenStreams(t *testing.T) {
	t.Parallel()
	states := &recordedStates{}
	s := startSupervisor(t, SupervisorConfig{States: states})
	b := newBundle(t, 10, 30, nil)
	spec, builds := flakySpec(t, "a", b, 3, false)
	require.NoError(t, s.Upsert(context.Background(), spec))
	waitState(t, s, "a", StateStreaming)
	require.GreaterOrEqual(t, builds.Load(), int32(4), "three failed attempts, then a good one")
	require.Eventually(t, func() bool {
		p, err := b.store.Load(context.Background(), "p")
		return err == nil && p.Compare(b.txns[len(b.txns)-1].commit) == 0
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, expected(b.txns), b.sink.snapshot())
}

func TestSupervisorParksPermanentAndKeepsOthers(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{})
	bad := newBundle(t, 11, 10, nil)
	good := newBundle(t, 12, 30, nil)
	badSpec, badBuilds := flakySpec(t, "bad", bad, 1000, true)
	goodSpec, _ := flakySpec(t, "good", good, 0, false)
	require.NoError(t, s.Upsert(context.Background(), badSpec))
	require.NoError(t, s.Upsert(context.Background(), goodSpec))

	st := waitState(t, s, "bad", StateFailed)
	require.Contains(t, st.LastError, "password authentication failed")
	require.Equal(t, int32(1), badBuilds.Load(), "a permanent error is not retried")
	waitState(t, s, "good", StateStreaming)
	require.Eventually(t, func() bool { return len(good.sink.snapshot()) > 0 }, 10*time.Second, time.Millisecond)

	// Resume retries a failed pipeline.
	require.NoError(t, s.Resume("bad"))
	require.Eventually(t, func() bool { return badBuilds.Load() == 2 }, 10*time.Second, time.Millisecond)
	waitState(t, s, "bad", StateFailed)
}

func TestSupervisorEscalatesAfterMaxFailures(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{MaxFailures: 3})
	b := newBundle(t, 13, 10, nil)
	spec, builds := flakySpec(t, "x", b, 1000, false)
	require.NoError(t, s.Upsert(context.Background(), spec))
	st := waitState(t, s, "x", StateFailed)
	require.Contains(t, st.LastError, "gave up after 3 consecutive failures")
	require.Equal(t, int32(3), builds.Load())
}

// TestSupervisorRetriesForAsLongAsItTakes: with no attempt limit, a
// pipeline retries through any number of failures, says retrying (attempts,
// next retry, last error) meanwhile, and its first commit ends the streak:
// state, count and error clear.
func TestSupervisorRetriesForAsLongAsItTakes(t *testing.T) {
	t.Parallel()
	states := &recordedStates{}
	s := startSupervisor(t, SupervisorConfig{States: states})
	b := newBundle(t, 16, 30, nil)
	spec, builds := flakySpec(t, "r", b, 40, false)
	require.NoError(t, s.Upsert(context.Background(), spec))
	var seen Status
	require.Eventually(t, func() bool {
		st, err := s.Status("r")
		if err == nil && st.State == StateRetrying && !st.NextRetry.IsZero() && st.Attempts >= 2 {
			seen = st
			return true
		}
		return false
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, "open source: connection refused", seen.LastError)
	require.True(t, seen.Degraded)
	require.Contains(t, seen.Reasons[0], "consecutive failed attempt(s), retrying at")

	st := waitState(t, s, "r", StateStreaming)
	require.GreaterOrEqual(t, builds.Load(), int32(41), "forty failed attempts, then a good one")
	require.Empty(t, st.LastError, "the last error clears on recovery")
	require.Zero(t, st.Attempts)
	require.True(t, st.NextRetry.IsZero())
	require.False(t, st.Degraded)
	states.mu.Lock()
	require.Contains(t, states.m["r"], StateRetrying)
	require.Equal(t, StateCreated, states.m["r"][len(states.m["r"])-1], "the stored state leaves retrying")
	states.mu.Unlock()
}

// TestSupervisorRetryPolicyOfTheSpec: a pipeline's attempt limit overrides
// the supervisor's (none).
func TestSupervisorRetryPolicyOfTheSpec(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{})
	b := newBundle(t, 17, 10, nil)
	spec, builds := flakySpec(t, "m", b, 1000, false)
	spec.Retry = RetryPolicy{MaxAttempts: 4}
	require.NoError(t, s.Upsert(context.Background(), spec))
	st := waitState(t, s, "m", StateFailed)
	require.Contains(t, st.LastError, "gave up after 4 consecutive failures (retry.max_attempts): open source: connection refused")
	require.Equal(t, int32(4), builds.Load())
}

func TestBackoffIsCapped(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Backoff: time.Second, MaxBackoff: 5 * time.Minute}
	for attempt, want := range map[int]time.Duration{1: time.Second, 3: 4 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 1000: 5 * time.Minute} {
		d := backoff(p, attempt)
		require.True(t, d >= want/2 && d <= want, "attempt %d: %s not in [%s, %s]", attempt, d, want/2, want)
	}
}

func TestSupervisorNeedsResync(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{})
	b := newBundle(t, 14, 10, nil)
	require.NoError(t, s.Upsert(context.Background(), Spec{Name: "r", Build: func(ctx context.Context) (RunnerConfig, error) {
		cfg := b.config(t, b.acquire(t))
		cfg.Source = &failingOpen{memSource: b.src, err: resyncErr{}}
		return cfg, nil
	}}))
	st := waitState(t, s, "r", StateNeedsResync)
	require.Equal(t, "open source: slot lost (recover with: cdcd pipelines resync r)", st.LastError, "the state says the command that recovers it")
}

// TestSupervisorResyncsLostTables: a run that ends with a ResyncTablesError
// has the tables' resync requested and starts again at once; with no way to
// request it, the pipeline needs a resync and says which tables.
func TestSupervisorResyncsLostTables(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{})
	b := newBundle(t, 14, 10, nil)
	acct := schema.TableID{Namespace: "public", Name: "acct"}
	lost := &ResyncTablesError{Tables: []schema.TableID{acct}, Err: errors.New("destination table gone")}
	var builds atomic.Int32
	requested := make(chan []schema.TableID, 1)
	require.NoError(t, s.Upsert(context.Background(), Spec{Name: "r",
		Build: func(ctx context.Context) (RunnerConfig, error) {
			cfg := b.config(t, b.acquire(t))
			if builds.Add(1) == 1 {
				cfg.Source = &failingOpen{memSource: b.src, err: lost}
			}
			return cfg, nil
		},
		ResyncTables: func(_ context.Context, tables []schema.TableID) error {
			requested <- tables
			return nil
		}}))
	require.Equal(t, []schema.TableID{acct}, <-requested)
	st := waitState(t, s, "r", StateStreaming)
	require.Zero(t, st.Attempts, "a resync is no failed attempt")
	require.EqualValues(t, 2, builds.Load())

	require.NoError(t, s.Upsert(context.Background(), Spec{Name: "n", Build: func(ctx context.Context) (RunnerConfig, error) {
		cfg := b.config(t, b.acquire(t))
		cfg.Source = &failingOpen{memSource: b.src, err: lost}
		return cfg, nil
	}}))
	st = waitState(t, s, "n", StateNeedsResync)
	require.Contains(t, st.LastError, "recover with: cdcd pipelines resync n --tables public.acct")
}

func TestSupervisorPauseResumeRemove(t *testing.T) {
	t.Parallel()
	states := &recordedStates{}
	s := startSupervisor(t, SupervisorConfig{States: states})
	b := newBundle(t, 15, 2000, nil)
	spec, builds := flakySpec(t, "p", b, 0, false)
	spec.Paused = true
	require.NoError(t, s.Upsert(context.Background(), spec))
	waitState(t, s, "p", StatePaused)
	require.Equal(t, int32(0), builds.Load(), "a pipeline created paused does not start")

	require.NoError(t, s.Resume("p"))
	waitState(t, s, "p", StateStreaming)
	require.NoError(t, s.Pause("p"))
	st := waitState(t, s, "p", StatePaused)
	require.False(t, st.Running)

	// Pausing drained: the committed offset covers everything written.
	stored, err := b.store.Load(context.Background(), "p")
	if err == nil {
		require.LessOrEqual(t, stored.Compare(b.sink.durable), 1)
	}
	require.NoError(t, s.Remove(context.Background(), "p"))
	_, err = s.Status("p")
	require.ErrorIs(t, err, ErrUnknownPipeline)
	require.ErrorIs(t, s.Pause("p"), ErrUnknownPipeline)

	states.mu.Lock()
	require.Contains(t, states.m["p"], StatePaused)
	states.mu.Unlock()
}

func TestSupervisorNotRunning(t *testing.T) {
	t.Parallel()
	s := NewSupervisor(SupervisorConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, s.Run(ctx))
	err := s.Upsert(context.Background(), Spec{Name: "x", Build: func(context.Context) (RunnerConfig, error) { return RunnerConfig{}, nil }})
	require.ErrorIs(t, err, ErrNotRunning)
}

// warningSource is a source with a warning that fails after opening, so that
// the supervisor retries it.
type warningSource struct {
	*memSource
	fail bool
}

func (w *warningSource) Warnings() []string {
	return []string{"table t has TOAST-able columns without REPLICA IDENTITY FULL"}
}

func (w *warningSource) Read(ctx context.Context) (schema.Batch, error) {
	if w.fail {
		return schema.Batch{}, errors.New("connection reset")
	}
	return w.memSource.Read(ctx)
}

// TestSupervisorLogsASourceWarningOnce: a source's warning is logged once per
// pipeline, not at every attempt (found: 77 lines in one crash test), and
// shows in its status.
func TestSupervisorLogsASourceWarningOnce(t *testing.T) {
	t.Parallel()
	var logs syncBuf
	s := startSupervisor(t, SupervisorConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), MaxFailures: 1000})
	b := newBundle(t, 21, 20, nil)
	var builds atomic.Int32
	require.NoError(t, s.Upsert(context.Background(), Spec{Name: "w", Build: func(ctx context.Context) (RunnerConfig, error) {
		n := builds.Add(1)
		cfg := b.config(t, b.acquire(t))
		cfg.Source = &warningSource{memSource: b.src, fail: n <= 5}
		return cfg, nil
	}}))
	require.Eventually(t, func() bool { return builds.Load() > 5 }, 10*time.Second, time.Millisecond)
	waitState(t, s, "w", StateStreaming)
	require.Equal(t, 1, strings.Count(logs.String(), "REPLICA IDENTITY FULL"), "logged once over %d attempts:\n%s", builds.Load(), logs.String())
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tableFailingSink fails every write, while fail is set, with an error that
// names the batch's first table, as a sink does for a value it cannot hold.
type tableFailingSink struct {
	*memSink
	fail atomic.Bool
}

func (s *tableFailingSink) Write(ctx context.Context, b *schema.Batch) error {
	if s.fail.Load() && len(b.Changes) > 0 {
		return sinks.ForTable(b.Changes[0].Table, component.Permanent(errors.New("column n: the value is out of range for NUMERIC(38,10)")))
	}
	return s.memSink.Write(ctx, b)
}

// TestSupervisorShowsTheFailedTable: a permanent error a sink names a table
// in shows that table failed, with the error, while the pipeline is failed;
// a resume that commits clears it.
func TestSupervisorShowsTheFailedTable(t *testing.T) {
	t.Parallel()
	s := startSupervisor(t, SupervisorConfig{})
	b := newBundle(t, 21, 200, nil)
	sink := &tableFailingSink{memSink: b.sink}
	sink.fail.Store(true)
	require.NoError(t, s.Upsert(context.Background(), Spec{Name: "f", Build: func(ctx context.Context) (RunnerConfig, error) {
		cfg := b.config(t, b.acquire(t))
		cfg.Sink = sink
		return cfg, nil
	}}))
	st := waitState(t, s, "f", StateFailed)
	var failed []TableProgress
	for _, tp := range st.Progress.Tables {
		if tp.State == TableFailed {
			failed = append(failed, tp)
		}
	}
	require.Len(t, failed, 1, "tables: %+v", st.Progress.Tables)
	require.Contains(t, failed[0].Error, "out of range for NUMERIC(38,10)")
	require.Contains(t, st.LastError, failed[0].Error)

	sink.fail.Store(false)
	require.NoError(t, s.Resume("f"))
	require.Eventually(t, func() bool {
		st, err := s.Status("f")
		return err == nil && st.State == StateStreaming && st.LastError == "" &&
			!slices.ContainsFunc(st.Progress.Tables, func(tp TableProgress) bool { return tp.State == TableFailed })
	}, 10*time.Second, time.Millisecond, "the failed table never cleared after a resume")
}
