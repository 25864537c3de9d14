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

// initialize makes the series of a running pipeline exist at 0, so that
// rules and dashboards see them before the first stall, error or hold.
func (m *Metrics) initialize(pipeline string) {
	for _, stage := range []string{"transform", "write"} {
		m.stalls.WithLabelValues(pipeline, stage)
		m.queue.WithLabelValues(pipeline, stage)
	}
	for _, c := range []Class{ClassRetryable, ClassPermanent, ClassNeedsResync} {
		m.errors.WithLabelValues(pipeline, string(c))
	}
	m.held.WithLabelValues(pipeline)
	m.heldChanges.WithLabelValues(pipeline)
	m.writeSeconds.WithLabelValues(pipeline)
	m.batchChanges.WithLabelValues(pipeline)
	m.endToEnd.WithLabelValues(pipeline)
	m.commitSeconds.WithLabelValues(pipeline)
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
	seconds, bytes, caughtUp                     *prometheus.Desc
	tableChanges, tableLast, snapDone, snapTotal *prometheus.Desc
	snapshotting                                 *prometheus.Desc

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
		tableChanges: prometheus.NewDesc("cdcd_table_changes_total",
			"Source changes durable at the sink, by source table and op (r: snapshot rows, c, u, d, t); kept across restarts.",
			[]string{"pipeline", "table", "op"}, nil),
		tableLast: prometheus.NewDesc("cdcd_table_last_change_timestamp_seconds",
			"Source commit time of the newest change of the table durable at the sink.",
			[]string{"pipeline", "table"}, nil),
		snapDone: prometheus.NewDesc("cdcd_snapshot_rows_done",
			"Rows of the table the snapshot has copied.",
			[]string{"pipeline", "table"}, nil),
		snapTotal: prometheus.NewDesc("cdcd_snapshot_rows_estimated",
			"The source's estimate of the table's rows when its snapshot was planned; absent when it has none (a table never analyzed).",
			[]string{"pipeline", "table"}, nil),
		snapshotting: prometheus.NewDesc("cdcd_table_snapshotting",
			"1 while the table's snapshot runs.",
			[]string{"pipeline", "table"}, nil),
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
	ch <- c.tableChanges
	ch <- c.tableLast
	ch <- c.snapDone
	ch <- c.snapTotal
	ch <- c.snapshotting
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
		for _, t := range p.Tables {
			for op, n := range map[string]uint64{"r": t.SnapshotRows, "c": t.Inserts, "u": t.Updates, "d": t.Deletes, "t": t.Truncates} {
				ch <- prometheus.MustNewConstMetric(c.tableChanges, prometheus.CounterValue, float64(n), name, t.Table, op)
			}
			if !t.LastChange.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.tableLast, prometheus.GaugeValue, float64(t.LastChange.UnixMilli())/1000, name, t.Table)
			}
			reading := t.State == TableSnapshotting || t.State == TableResyncing
			if t.RowsDone > 0 || reading {
				ch <- prometheus.MustNewConstMetric(c.snapDone, prometheus.GaugeValue, float64(t.RowsDone), name, t.Table)
			}
			if t.RowsEstimated != nil {
				ch <- prometheus.MustNewConstMetric(c.snapTotal, prometheus.GaugeValue, float64(*t.RowsEstimated), name, t.Table)
			}
			snapshotting := 0.0
			if reading {
				snapshotting = 1
			}
			ch <- prometheus.MustNewConstMetric(c.snapshotting, prometheus.GaugeValue, snapshotting, name, t.Table)
		}
	}
}
