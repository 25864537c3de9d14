package pipeline

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's collectors. One Metrics serves every pipeline of a
// process; series carry a pipeline label.
type Metrics struct {
	changes       *prometheus.CounterVec
	lag           *lagCollector
	endToEnd      *prometheus.HistogramVec
	commitSeconds *prometheus.HistogramVec
	queue         *prometheus.GaugeVec
	writeSeconds  *prometheus.HistogramVec
	batchChanges  *prometheus.HistogramVec
	commitTS      *prometheus.GaugeVec
	state         *prometheus.GaugeVec
	degraded      *prometheus.GaugeVec
	errors        *prometheus.CounterVec
	stalls        *prometheus.CounterVec
	held          *prometheus.GaugeVec
	heldChanges   *prometheus.CounterVec
	skipped       *prometheus.CounterVec
}

// NewMetrics registers the engine's collectors on reg. A nil reg makes collectors
// that are not exported (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_source_changes_total", Help: "Changes read from the source.",
		}, []string{"pipeline", "op"}),
		lag: newLagCollector(),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdcd_end_to_end_latency_seconds", Help: "Time from a change's commit at the source to its offset being committed (durable at the sink).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14), // 10 ms to about 10 min
		}, []string{"pipeline"}),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdcd_offset_commit_seconds", Help: "Time to write one offset checkpoint to the offset store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"pipeline"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_stage_queue_batches", Help: "Batches waiting in front of a stage.",
		}, []string{"pipeline", "stage"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdcd_sink_write_seconds", Help: "Time to apply one batch at the sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"pipeline"}),
		batchChanges: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cdcd_sink_batch_changes", Help: "Changes per batch written.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"pipeline"}),
		commitTS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_offset_commit_timestamp_seconds", Help: "Unix time of the last offset commit.",
		}, []string{"pipeline"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_pipeline_state", Help: "1 for the pipeline's current state, 0 for the others.",
		}, []string{"pipeline", "state"}),
		degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_pipeline_degraded", Help: "1 while a pipeline runs with tables held by its schema-change policy or retries failed attempts (the API's reasons say which).",
		}, []string{"pipeline"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_errors_total", Help: "Runner failures by class.",
		}, []string{"pipeline", "class"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_stage_stalls_total", Help: "Sends that waited more than 10s for a full queue (back-pressure).",
		}, []string{"pipeline", "stage"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_schema_held_tables", Help: "Tables held by a schema-change policy, waiting for a decision.",
		}, []string{"pipeline"}),
		heldChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_schema_held_changes_total", Help: "Changes of held tables kept aside for replay.",
		}, []string{"pipeline"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_transform_skipped_total", Help: "Changes a transform failed on, dropped per on_transform_error: skip.",
		}, []string{"pipeline", "transform"}),
	}
	if reg != nil {
		reg.MustRegister(m.changes, m.lag, m.endToEnd, m.commitSeconds, m.queue, m.writeSeconds, m.batchChanges, m.commitTS, m.state, m.degraded, m.errors, m.stalls, m.held, m.heldChanges, m.skipped)
	}
	return m
}

func (m *Metrics) setState(pipeline string, s State) {
	for _, st := range States {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(pipeline, string(st)).Set(v)
	}
}

func (m *Metrics) forget(pipeline string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.changes, m.endToEnd, m.commitSeconds, m.queue, m.writeSeconds, m.batchChanges, m.commitTS, m.state, m.degraded, m.errors, m.stalls, m.held, m.heldChanges, m.skipped} {
		v.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
	}
}

// lagCollector reports, at each scrape, the lag of every running pipeline as
// of that instant: a gauge set on commit would freeze when nothing commits.
type lagCollector struct {
	seconds, bytes, caughtUp *prometheus.Desc

	mu      sync.Mutex
	runners map[string]*Runner
}

func newLagCollector() *lagCollector {
	return &lagCollector{
		seconds: prometheus.NewDesc("cdcd_source_lag_seconds",
			"Age of the oldest change read from the source and not yet durable at the sink; 0 when the source is caught up and all it read is durable; absent when unknown or not running.",
			[]string{"pipeline"}, nil),
		bytes: prometheus.NewDesc("cdcd_source_lag_bytes",
			"How far the source server's log is ahead of the position durable downstream (Postgres WAL bytes, MySQL binlog bytes).",
			[]string{"pipeline"}, nil),
		caughtUp: prometheus.NewDesc("cdcd_source_caught_up",
			"1 when the source says it has read everything its server committed and all of it is durable at the sink.",
			[]string{"pipeline"}, nil),
		runners: map[string]*Runner{},
	}
}

func (c *lagCollector) add(pipeline string, r *Runner) {
	c.mu.Lock()
	c.runners[pipeline] = r
	c.mu.Unlock()
}

// remove forgets r, unless another runner of the pipeline took its place.
func (c *lagCollector) remove(pipeline string, r *Runner) {
	c.mu.Lock()
	if c.runners[pipeline] == r {
		delete(c.runners, pipeline)
	}
	c.mu.Unlock()
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.seconds
	ch <- c.bytes
	ch <- c.caughtUp
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	runners := make(map[string]*Runner, len(c.runners))
	for k, v := range c.runners {
		runners[k] = v
	}
	c.mu.Unlock()
	for name, r := range runners {
		p := r.Progress()
		if p.LagSeconds != nil {
			ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, *p.LagSeconds, name)
			up := 0.0
			if p.CaughtUp {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.caughtUp, prometheus.GaugeValue, up, name)
		}
		if p.LagBytes != nil {
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(*p.LagBytes), name)
		}
	}
}
