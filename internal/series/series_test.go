package series

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

type memStore struct {
	mu sync.Mutex
	s  map[string][]Sample
}

func (m *memStore) AppendSamples(_ context.Context, p string, s []Sample, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s[p] = append(m.s[p], s...)
	return nil
}

func (m *memStore) LoadSamples(_ context.Context, p string, since time.Time) ([]Sample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Sample
	for _, x := range m.s[p] {
		if !x.At.Before(since) {
			out = append(out, x)
		}
	}
	return out, nil
}

// Rates from cumulative counters at the fine resolution, the worst lag of
// each coarse interval kept in the store, and a restart that keeps the
// coarse history (and a counter that starts again from 0 counted as such).
func TestRecorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		read, written, lag := uint64(0), uint64(0), 0.0
		retained := int64(1000)
		statuses := func() []pipeline.Status {
			mu.Lock()
			defer mu.Unlock()
			l := lag
			return []pipeline.Status{{Name: "p", Running: true, Progress: pipeline.Progress{ChangesRead: read, ChangesWritten: written, LagSeconds: &l,
				Source: &sources.Status{Detail: map[string]any{"retained_wal_bytes": retained}}}}}
		}
		st := &memStore{s: map[string][]Sample{}}
		r := New(Config{Statuses: statuses, Store: st, Fine: 10 * time.Second, Coarse: time.Minute, FineKeep: 5 * time.Minute, CoarseKeep: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		start := time.Now()
		time.Sleep(5 * time.Second) // the changes land between samples
		for i := range 30 {         // 5 minutes: 100 changes a second, a lag spike at 2m
			time.Sleep(10 * time.Second)
			mu.Lock()
			read += 1000
			written += 1000
			lag = map[bool]float64{true: 42}[i == 12]
			mu.Unlock()
		}
		synctest.Wait()
		ps, err := r.Series(ctx, "p", 5*time.Minute, time.Now())
		require.NoError(t, err)
		require.Len(t, ps, 30, "a point every 10s over the last 5 minutes")
		for _, p := range ps[1:] {
			require.InDelta(t, 100, p.ReadPerSec, 0.001)
		}
		require.InDelta(t, 100, ps[len(ps)-1].ReadPerSec, 0.001)
		require.InDelta(t, 100, ps[len(ps)-1].WrittenPerSec, 0.001)
		require.Equal(t, int64(1000), *ps[0].RetainedBytes)
		coarse, err := st.LoadSamples(ctx, "p", start)
		require.NoError(t, err)
		require.Len(t, coarse, 5, "one a minute")
		worst := 0.0
		for _, c := range coarse {
			worst = max(worst, *c.LagSeconds)
		}
		require.Zero(t, *coarse[len(coarse)-1].LagSeconds)
		require.Equal(t, 42.0, worst, "a coarse point keeps the worst lag of its minute, not the last")
		cancel()
		require.NoError(t, <-done)

		// a restart: the coarse history stays; the new run counts from 0
		mu.Lock()
		read = 0
		mu.Unlock()
		r = New(Config{Statuses: statuses, Store: st, Fine: 10 * time.Second, Coarse: time.Minute, FineKeep: 5 * time.Minute, CoarseKeep: time.Hour})
		ctx, cancel = context.WithCancel(t.Context())
		go func() { done <- r.Run(ctx) }()
		time.Sleep(5 * time.Second) // the changes land between samples
		for range 6 {
			time.Sleep(10 * time.Second)
			mu.Lock()
			read += 500
			mu.Unlock()
		}
		synctest.Wait()
		ps, err = r.Series(ctx, "p", time.Hour, time.Now())
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(ps), 6, "the coarse history and the new fine points")
		for i := 1; i < len(ps); i++ {
			require.True(t, ps[i].At.After(ps[i-1].At))
			require.GreaterOrEqual(t, ps[i].ReadPerSec, 0.0)
		}
		fine, err := r.Series(ctx, "p", 5*time.Minute, time.Now())
		require.NoError(t, err)
		require.InDelta(t, 50, fine[len(fine)-1].ReadPerSec, 0.001, "500 changes in 10 s, counted from the new run's 0")
		cancel()
		require.NoError(t, <-done)
	})
}
