package snowflake

import (
	"context"
	"errors"
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/stretchr/testify/require"
)

// TestCrashAfterCopy: a Write that copied a table's rows into the raw table
// and died before merging them; the restarted pipeline writes the same batch
// again, whose file COPY then skips (load history), so the rows it merges must
// be the ones the first attempt left in the raw table.
func TestCrashAfterCopy(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	crashing := New(h.cfg, sinks.Deps{Pipeline: "p"}, WithFault(func(step string) error {
		if step == "after_copy" {
			return errors.New("crash after copy")
		}
		return nil
	}))
	require.NoError(t, crashing.Open(ctx))
	require.NoError(t, crashing.Apply(ctx, []schema.Delta{{Table: sinktest.Items, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	var cs []schema.Change
	for i := range int64(3) {
		cs = append(cs, schema.Change{Op: schema.OpInsert, Table: sinktest.Items.ID, Version: 1, Pos: offsets.AppendUint(nil, uint64(i+1)),
			Key:   schema.Row{{Name: "id", Value: schema.Int(i)}},
			After: schema.Row{{Name: "id", Value: schema.Int(i)}, {Name: "v", Value: schema.Int(10 * i)}, {Name: "doc", Value: schema.String("x")}}})
	}
	b := &schema.Batch{Changes: cs, Checkpoint: cs[2].Pos}
	require.ErrorContains(t, crashing.Write(ctx, b), "crash after copy")
	require.NoError(t, crashing.Close(ctx))
	require.Empty(t, h.State(t, sinktest.Items), "nothing was merged")

	s := New(h.cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Write(ctx, b))
	require.Len(t, h.State(t, sinktest.Items), 3, "the rows of the first attempt's copy were merged")
}
