package alerts

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

// fakes: the pipelines' statuses, a channel that records (and fails when
// told), a store in memory.
type world struct {
	mu       sync.Mutex
	statuses []pipeline.Status
	sent     []notify.Notification
	fail     []error // the next deliveries' errors
	firing   []Active
	history  []HistoryEntry
	verified map[string]Verified // each pipeline's latest verify
	verr     error               // LastVerify's error, when set
}

func (w *world) LastVerify(_ context.Context, name string) (Verified, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.verified[name]
	return v, ok, w.verr
}

func (w *world) set(st ...pipeline.Status) {
	w.mu.Lock()
	w.statuses = st
	w.mu.Unlock()
}

func (w *world) Notify(_ context.Context, n notify.Notification) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.fail) > 0 {
		err := w.fail[0]
		w.fail = w.fail[1:]
		if err != nil {
			return err
		}
	}
	w.sent = append(w.sent, n)
	return nil
}

func (w *world) LoadFiring(context.Context) ([]Active, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Active(nil), w.firing...), nil
}

func (w *world) SaveFiring(_ context.Context, f []Active) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.firing = f
	return nil
}

func (w *world) AppendAlertHistory(_ context.Context, h HistoryEntry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.history = append(w.history, h)
	return nil
}

func (w *world) notes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, n := range w.sent {
		out = append(out, string(n.Status)+" "+n.ID)
	}
	return out
}

func (w *world) engine() *Engine {
	return New(Config{
		Statuses: func() []pipeline.Status {
			w.mu.Lock()
			defer w.mu.Unlock()
			return append([]pipeline.Status(nil), w.statuses...)
		},
		Channel: func(_ context.Context, name string) (notify.Notifier, error) {
			if name != "ops" {
				return nil, component.Permanent(ErrNoChannel)
			}
			return w, nil
		},
		Store:      w,
		LastVerify: w.LastVerify,
	})
}

func lagging(name string, secs float64) pipeline.Status {
	return pipeline.Status{Name: name, State: pipeline.StateStreaming, Running: true, Progress: pipeline.Progress{LagSeconds: &secs}}
}

func start(t *testing.T, e *Engine) func() {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

func rules(r ...config.AlertRule) config.Alerts {
	return config.Alerts{EvaluationInterval: config.Duration(10 * time.Second), Rules: r}
}

// An alert fires once after its condition held for `for`, not again while it
// keeps firing, and resolves once; a condition that clears before `for` says
// nothing.
func TestFiresOnceAndResolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{}
		w.set(lagging("a", 400), lagging("b", 1))
		e := w.engine()
		e.SetRules(rules(config.AlertRule{Name: "lag", Condition: "lag_seconds", Threshold: 300, For: config.Duration(time.Minute), Channels: []string{"ops"}}))
		stop := start(t, e)
		defer stop()
		time.Sleep(55 * time.Second)
		synctest.Wait()
		require.Empty(t, w.notes(), "pending for a minute first")
		require.Equal(t, "pending", e.Active()[0].State)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a"}, w.notes())
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a"}, w.notes(), "once while it keeps firing")
		require.Len(t, w.firing, 1, "kept in the store")

		w.set(lagging("a", 0), lagging("b", 1))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a", "resolved lag/a"}, w.notes())
		require.Empty(t, e.Active())
		require.Empty(t, w.firing)

		// a blip shorter than `for`
		w.set(lagging("a", 999))
		time.Sleep(30 * time.Second)
		w.set(lagging("a", 0))
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, w.notes(), 2)
		require.Len(t, w.history, 2)
		require.True(t, w.history[0].Delivered)
	})
}

// A delivery that fails is retried with backoff until it is taken; a
// permanent failure is not retried; both are in the history.
func TestDeliveryRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{fail: []error{errors.New("502"), errors.New("timeout")}}
		w.set(pipeline.Status{Name: "a", State: pipeline.StateFailed, LastError: "password authentication failed"})
		e := w.engine()
		e.SetRules(rules(config.AlertRule{Name: "failed", Condition: "pipeline_failed", Channels: []string{"ops", "gone"}, Severity: "critical"}))
		stop := start(t, e)
		defer stop()
		synctest.Wait()
		require.Empty(t, w.notes())
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Empty(t, w.notes(), "second attempt failed too")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"firing failed/a"}, w.notes(), "third attempt, after 10s and 30s")
		require.Contains(t, w.sent[0].Detail, "password authentication failed")
		require.Equal(t, "critical", w.sent[0].Severity)
		var ok, failed HistoryEntry
		for _, h := range w.history {
			if h.Delivered {
				ok = h
			} else {
				failed = h
			}
		}
		require.Equal(t, 3, ok.Attempts)
		require.Equal(t, "gone", failed.Channel)
		require.Equal(t, 1, failed.Attempts, "a channel that does not exist is not retried")
		require.Contains(t, failed.Error, "no such alert channel")

		w.mu.Lock()
		w.fail = []error{component.Permanent(errors.New("404"))}
		w.mu.Unlock()
		w.set(pipeline.Status{Name: "a", State: pipeline.StateStreaming, Running: true})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		last := w.history[len(w.history)-1]
		require.False(t, last.Delivered)
		require.Equal(t, 1, last.Attempts, "a permanent failure is not retried")
		require.Equal(t, notify.Resolved, last.Status)
	})
}

// After a restart a firing alert is neither fired again nor forgotten.
func TestFiringSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{}
		w.set(lagging("a", 400))
		r := rules(config.AlertRule{Name: "lag", Condition: "lag_seconds", Threshold: 300, Channels: []string{"ops"}})
		e := w.engine()
		e.SetRules(r)
		stop := start(t, e)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a"}, w.notes())
		stop()

		e = w.engine()
		e.SetRules(r)
		stop = start(t, e)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a"}, w.notes(), "still firing: not again")
		w.set(lagging("a", 0))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"firing lag/a", "resolved lag/a"}, w.notes())
		stop()
	})
}

// repeat_interval notifies again while an alert keeps firing.
func TestRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{}
		w.set(pipeline.Status{Name: "a", State: pipeline.StateStreaming, Running: true, Attempts: 2, LastError: "connection refused"})
		e := w.engine()
		e.SetRules(rules(config.AlertRule{Name: "retry", Condition: "retrying", Channels: []string{"ops"}, RepeatInterval: config.Duration(time.Hour)}))
		stop := start(t, e)
		defer stop()
		time.Sleep(150 * time.Minute)
		synctest.Wait()
		require.Equal(t, []string{"firing retry/a", "firing retry/a", "firing retry/a"}, w.notes())
	})
}

// Each condition holds on the statuses it is about and not on a healthy one.
func TestConditions(t *testing.T) {
	t.Parallel()
	lag := 500.0
	healthy := pipeline.Status{Name: "p", State: pipeline.StateStreaming, Running: true, Progress: pipeline.Progress{CaughtUp: true, LagSeconds: new(float64),
		CommittedPos: offsets.AppendUint(nil, 5), Source: &sources.Status{Detail: map[string]any{"retained_wal_bytes": int64(1000), "wal_status": "reserved"}}}}
	behind := healthy
	behind.Progress.CaughtUp, behind.Progress.LagSeconds = false, &lag
	for _, tc := range []struct {
		rule config.AlertRule
		bad  pipeline.Status
		want string
	}{
		{config.AlertRule{Condition: "lag_seconds", Threshold: 300}, behind, "pipeline p is 8m20s behind its source"},
		{config.AlertRule{Condition: "retained_wal_bytes", Threshold: 1 << 30}, func() pipeline.Status {
			s := healthy
			s.Progress.Source = &sources.Status{Detail: map[string]any{"retained_wal_bytes": int64(5 << 30)}}
			return s
		}(), "the replication slot of pipeline p retains 5.0 GiB of WAL"},
		{config.AlertRule{Condition: "wal_status"}, func() pipeline.Status {
			s := healthy
			s.Progress.Source = &sources.Status{Detail: map[string]any{"wal_status": "unreserved"}}
			return s
		}(), "the replication slot of pipeline p is unreserved"},
		{config.AlertRule{Condition: "not_advancing"}, behind, "pipeline p is behind and its position does not advance"},
		{config.AlertRule{Condition: "not_advancing"}, pipeline.Status{Name: "p", State: pipeline.StatePaused}, "pipeline p is not running (paused)"},
		{config.AlertRule{Condition: "pipeline_failed"}, pipeline.Status{Name: "p", State: pipeline.StateNeedsResync}, "pipeline p is needs_resync"},
		{config.AlertRule{Condition: "schema_change_held"}, func() pipeline.Status {
			s := healthy
			s.Progress.HeldTables = []string{"public.users"}
			return s
		}(), "pipeline p holds 1 table(s) for a schema-change decision"},
		{config.AlertRule{Condition: "retrying"}, pipeline.Status{Name: "p", State: pipeline.StateCreated, Attempts: 3}, "pipeline p keeps failing and retrying (3 attempts)"},
	} {
		last := map[string]offsets.Position{"p": offsets.AppendUint(nil, 5)}
		_, ok := check(tc.rule, &healthy, last, nil)
		require.False(t, ok, "%s holds on a healthy pipeline", tc.rule.Condition)
		o, ok := check(tc.rule, &tc.bad, last, nil)
		require.True(t, ok, tc.rule.Condition)
		require.Equal(t, tc.want, o.summary)
		require.NotEmpty(t, o.detail)
	}
	for c := range config.AlertConditions {
		require.NotPanics(t, func() { check(config.AlertRule{Condition: c}, &pipeline.Status{}, nil, nil) })
	}
}

// verify_mismatch fires when the latest verify found more differing rows than
// the threshold, stays as it is while the outcome cannot be read, and
// resolves when a later verify finds the tables equal.
func TestVerifyMismatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{verified: map[string]Verified{"a": {At: time.Now()}}}
		w.set(lagging("a", 0), lagging("b", 0))
		e := w.engine()
		e.SetRules(rules(config.AlertRule{Name: "diff", Condition: "verify_mismatch", Threshold: 2, Channels: []string{"ops"}}))
		stop := start(t, e)
		defer stop()
		step := func(v map[string]Verified, err error) {
			w.mu.Lock()
			w.verified, w.verr = v, err
			w.mu.Unlock()
			time.Sleep(config.DefaultEvaluationInterval + time.Second)
			synctest.Wait()
		}
		step(map[string]Verified{"a": {Missing: 1, Extra: 1}}, nil)
		require.Empty(t, w.notes(), "2 rows is not over the threshold")
		step(map[string]Verified{"a": {At: time.Now(), Missing: 1, Extra: 1, Different: 1, Tables: []string{"public.users"}}}, nil)
		require.Equal(t, []string{"firing diff/a"}, w.notes())
		act := e.Active()
		require.Len(t, act, 1)
		require.Equal(t, "3 rows", act[0].Value)
		require.Contains(t, act[0].Detail, "1 missing, 1 extra and 1 different rows in public.users")
		require.Contains(t, act[0].Detail, "cdcd pipelines verify a --repair")
		step(nil, errors.New("store unreachable"))
		require.Equal(t, []string{"firing diff/a"}, w.notes(), "an outcome that cannot be read resolves nothing")
		require.Len(t, e.Active(), 1)
		step(map[string]Verified{"a": {At: time.Now()}}, nil)
		require.Equal(t, []string{"firing diff/a", "resolved diff/a"}, w.notes())
	})
}
