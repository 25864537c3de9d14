package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's collectors. One Metrics serves every pipeline of a
// process; series carry a pipeline label.
type Metrics struct {
	changes      *prometheus.CounterVec
	lag          *prometheus.GaugeVec
	queue        *prometheus.GaugeVec
	writeSeconds *prometheus.HistogramVec
	batchChanges *prometheus.HistogramVec
	commitTS     *prometheus.GaugeVec
	state        *prometheus.GaugeVec
	errors       *prometheus.CounterVec
	stalls       *prometheus.CounterVec
	held         *prometheus.GaugeVec
	heldChanges  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
}

// NewMetrics registers the engine's collectors on reg. A nil reg makes collectors
// that are not exported (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_source_changes_total", Help: "Changes read from the source.",
		}, []string{"pipeline", "op"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_source_lag_seconds", Help: "Now minus the source commit time of the newest durable change.",
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
		reg.MustRegister(m.changes, m.lag, m.queue, m.writeSeconds, m.batchChanges, m.commitTS, m.state, m.errors, m.stalls, m.held, m.heldChanges, m.skipped)
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
	}{m.changes, m.lag, m.queue, m.writeSeconds, m.batchChanges, m.commitTS, m.state, m.errors, m.stalls, m.held, m.heldChanges, m.skipped} {
		v.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
	}
}
