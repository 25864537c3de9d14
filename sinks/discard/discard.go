// Package discard is a sink that counts changes and drops them, for measuring
// what bounds a pipeline without a destination's cost (the benchmark's "discard"
// runs). It keeps nothing: a pipeline into it loses its data by design.
package discard

import (
	"context"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Config has no settings.
type Config struct{}

// Sink counts and drops.
type Sink struct {
	metric   *prometheus.CounterVec
	pipeline string
}

// Factory returns the discard sink's factory.
func Factory() sinks.Factory {
	return sinks.Factory{
		Spec: func() any { return Config{} },
		New: component.Decoded(func(_ Config, d sinks.Deps) (sinks.Sink, error) {
			return New(d), nil
		}),
	}
}

// New returns a discard sink.
func New(d sinks.Deps) *Sink {
	return &Sink{pipeline: d.Pipeline, metric: component.Register(d.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_sink_discard_changes_total", Help: "Changes the discard sink counted and dropped.",
	}, []string{"pipeline"}))}
}

// Open does nothing.
func (s *Sink) Open(context.Context) error { return nil }

// Apply accepts every schema change.
func (s *Sink) Apply(context.Context, []schema.Delta) error { return nil }

// Write counts the batch's changes.
func (s *Sink) Write(_ context.Context, b *schema.Batch) error {
	s.metric.WithLabelValues(s.pipeline).Add(float64(len(b.Changes)))
	return nil
}

// Close does nothing.
func (s *Sink) Close(context.Context) error { return nil }
