package file

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/stretchr/testify/require"
)

// BenchmarkWriteManyTables writes batches of 10,000 changes spread over 1 or
// 1,000 tables. Reported: changes/s and the heap in use after the run (the
// sink's buffers), which should not grow with the number of tables.
func BenchmarkWriteManyTables(b *testing.B) {
	for _, tables := range []int{1, 1000} {
		b.Run(fmt.Sprintf("tables=%d", tables), func(b *testing.B) {
			ctx := context.Background()
			s := New(Config{Dir: b.TempDir()}, sinks.Deps{Pipeline: "bench"})
			require.NoError(b, s.Open(ctx))
			defer s.Close(ctx)
			ids := make([]schema.TableID, tables)
			for i := range ids {
				ids[i] = schema.TableID{Namespace: "public", Name: fmt.Sprintf("t%04d", i)}
			}
			const batch = 10_000
			var seq uint64
			changes := 0
			start := time.Now()
			for b.Loop() {
				cs := make([]schema.Change, batch)
				for i := range cs {
					seq++
					id := int64(seq)
					row := schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "doc", Value: schema.String("some text of a row")}}
					cs[i] = schema.Change{Op: schema.OpInsert, Table: ids[i%tables], Version: 1, Pos: offsets.AppendUint(nil, seq), Key: row[:1], After: row}
				}
				require.NoError(b, s.Write(ctx, &schema.Batch{Changes: cs, Checkpoint: cs[batch-1].Pos}))
				changes += batch
			}
			el := time.Since(start)
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.ReportMetric(float64(changes)/el.Seconds(), "changes/s")
			b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap_MiB")
		})
	}
}
