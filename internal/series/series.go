// Package series keeps each pipeline's recent history for charts: a sample
// every Fine interval in memory for the last FineKeep, and a coarse one every
// Coarse interval in the metadata store for the last CoarseKeep, so a restart
// does not blank the charts. Points are rates (changes read and written per
// second) and gauges (lag in seconds and bytes, retained WAL).
package series

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/pipeline"
)

// Sample is what was seen of one pipeline at an instant: cumulative counters
// and gauges.
type Sample struct {
	At            time.Time `json:"at"`
	Read          uint64    `json:"read"`
	Written       uint64    `json:"written"`
	LagSeconds    *float64  `json:"lag_seconds,omitempty"`
	LagBytes      *int64    `json:"lag_bytes,omitempty"`
	RetainedBytes *int64    `json:"retained_bytes,omitempty"`
}

// Point is one point of a chart: the rates over the interval that ends at At
// and the gauges at At (the worst lag over the interval, for coarse points).
type Point struct {
	At            time.Time `json:"at"`
	ReadPerSec    float64   `json:"read_per_sec"`
	WrittenPerSec float64   `json:"written_per_sec"`
	LagSeconds    *float64  `json:"lag_seconds"`
	LagBytes      *int64    `json:"lag_bytes"`
	RetainedBytes *int64    `json:"retained_bytes"`
}

// Store keeps the coarse samples.
type Store interface {
	AppendSamples(ctx context.Context, pipeline string, s []Sample, keep time.Duration) error
	LoadSamples(ctx context.Context, pipeline string, since time.Time) ([]Sample, error)
}

// Config configures a Recorder.
type Config struct {
	Statuses func() []pipeline.Status
	Store    Store // nil: in memory only
	Logger   *slog.Logger
	// Fine and Coarse are the sampling intervals (default 10s and 5m);
	// FineKeep and CoarseKeep how long each is kept (default 1h and 7 days).
	Fine, Coarse, FineKeep, CoarseKeep time.Duration
}

// Recorder samples every pipeline's status. Start it with Run.
type Recorder struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	fine    map[string][]Sample
	pending map[string]*Sample // the coarse sample being built: counters last, gauges worst
}

// New returns a recorder.
func New(cfg Config) *Recorder {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Fine, 10*time.Second)
	def(&cfg.Coarse, 5*time.Minute)
	def(&cfg.FineKeep, time.Hour)
	def(&cfg.CoarseKeep, 7*24*time.Hour)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{cfg: cfg, log: cfg.Logger.With("component", "series"), fine: map[string][]Sample{}, pending: map[string]*Sample{}}
}

// Run samples until ctx ends.
func (r *Recorder) Run(ctx context.Context) error {
	fine := time.NewTicker(r.cfg.Fine)
	defer fine.Stop()
	coarse := time.NewTicker(r.cfg.Coarse)
	defer coarse.Stop()
	r.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-fine.C:
			r.sample(now)
		case <-coarse.C:
			r.flush(ctx)
		}
	}
}

func (r *Recorder) sample(now time.Time) {
	statuses := r.cfg.Statuses()
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, st := range statuses {
		seen[st.Name] = true
		s := Sample{At: now.UTC(), Read: st.Progress.ChangesRead, Written: st.Progress.ChangesWritten,
			LagSeconds: st.Progress.LagSeconds, LagBytes: st.Progress.LagBytes}
		if st.Progress.Source != nil {
			if v, ok := st.Progress.Source.Detail["retained_wal_bytes"].(int64); ok {
				s.RetainedBytes = &v
			}
		}
		list := append(r.fine[st.Name], s)
		cut := 0
		for cut < len(list) && now.Sub(list[cut].At) > r.cfg.FineKeep {
			cut++
		}
		r.fine[st.Name] = list[cut:]
		p := r.pending[st.Name]
		if p == nil {
			c := s
			r.pending[st.Name] = &c
			continue
		}
		p.At, p.Read, p.Written = s.At, s.Read, s.Written
		p.LagSeconds, p.LagBytes, p.RetainedBytes = worse(p.LagSeconds, s.LagSeconds), worse(p.LagBytes, s.LagBytes), worse(p.RetainedBytes, s.RetainedBytes)
	}
	for name := range r.fine {
		if !seen[name] { // deleted
			delete(r.fine, name)
			delete(r.pending, name)
		}
	}
}

// flush stores the coarse samples built since the last flush.
func (r *Recorder) flush(ctx context.Context) {
	r.mu.Lock()
	pending := r.pending
	r.pending = map[string]*Sample{}
	r.mu.Unlock()
	if r.cfg.Store == nil {
		return
	}
	for name, s := range pending {
		if err := r.cfg.Store.AppendSamples(ctx, name, []Sample{*s}, r.cfg.CoarseKeep); err != nil && ctx.Err() == nil {
			r.log.Warn("keep a pipeline's history", "pipeline", name, "error", err)
		}
	}
}

// Series returns a pipeline's points over the last window, oldest first: the
// fine ones when the window is within FineKeep, else the coarse ones (with
// the fine ones after the last coarse one).
func (r *Recorder) Series(ctx context.Context, name string, window time.Duration, now time.Time) ([]Point, error) {
	since := now.Add(-window)
	var samples []Sample
	if window > r.cfg.FineKeep && r.cfg.Store != nil {
		coarse, err := r.cfg.Store.LoadSamples(ctx, name, since)
		if err != nil {
			return nil, err
		}
		samples = coarse
	}
	r.mu.Lock()
	for _, s := range r.fine[name] {
		if s.At.Before(since) || (len(samples) > 0 && !s.At.After(samples[len(samples)-1].At)) {
			continue
		}
		if window > r.cfg.FineKeep && len(samples) > 0 && s.At.Sub(samples[len(samples)-1].At) < r.cfg.Coarse {
			continue // keep the coarse resolution
		}
		samples = append(samples, s)
	}
	r.mu.Unlock()
	return points(samples), nil
}

// points turns samples into rates and gauges; a counter that went down (a
// new run counting from its own start) counts from 0.
func points(samples []Sample) []Point {
	out := make([]Point, 0, len(samples))
	for i, s := range samples {
		p := Point{At: s.At, LagSeconds: s.LagSeconds, LagBytes: s.LagBytes, RetainedBytes: s.RetainedBytes}
		if i > 0 {
			prev := samples[i-1]
			if dt := s.At.Sub(prev.At).Seconds(); dt > 0 {
				p.ReadPerSec = float64(delta(prev.Read, s.Read)) / dt
				p.WrittenPerSec = float64(delta(prev.Written, s.Written)) / dt
			}
		}
		out = append(out, p)
	}
	return out
}

func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func worse[T int64 | float64](a, b *T) *T {
	switch {
	case a == nil:
		return b
	case b == nil || *a >= *b:
		return a
	default:
		return b
	}
}
