package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets/memstore"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/datagen"
)

// discard is a sink that counts and drops, for measuring the engine alone.
type discard struct{ n int }

func (d *discard) Open(context.Context) error                  { return nil }
func (d *discard) Apply(context.Context, []schema.Delta) error { return nil }
func (d *discard) Write(_ context.Context, b *schema.Batch) error {
	d.n += len(b.Changes)
	return nil
}
func (d *discard) Close(context.Context) error { return nil }

const benchChanges = 200_000

func benchConfig() datagen.Config {
	return datagen.Config{Tables: 4, SnapshotRows: 1, Changes: benchChanges, TxnSize: 100}.WithDefaults()
}

// BenchmarkRunner_SourceOnly is the limit the engine is measured against: the
// generator producing the same changes with no engine around it.
func BenchmarkRunner_SourceOnly(b *testing.B) {
	for b.Loop() {
		src := datagen.New(benchConfig(), sources.Deps{MaxChanges: 10_000})
		if err := src.Open(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < benchChanges {
			batch, err := src.Read(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if len(batch.Changes) > 0 && batch.Changes[0].Op != schema.OpSnapshot {
				n += len(batch.Changes)
			}
		}
	}
	b.ReportMetric(float64(benchChanges*b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkRunner_Discard runs the same changes through all four stages (batching,
// tracker, offset commits) into a discarding sink.
func BenchmarkRunner_Discard(b *testing.B) {
	for b.Loop() {
		sink := &discard{}
		store := &memstore.Store{}
		epoch, _ := store.Acquire(context.Background(), "bench")
		r, err := NewRunner(RunnerConfig{Pipeline: "bench", Source: datagen.New(benchConfig(), sources.Deps{MaxChanges: 10_000}),
			Sink: sink, Offsets: store, Epoch: epoch, MaxChanges: 10_000, MaxWait: 50 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for r.Progress().ChangesWritten < benchChanges+4 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchChanges*b.N)/b.Elapsed().Seconds(), "changes/s")
}
