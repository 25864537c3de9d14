package snowflake

import (
	"context"
	"errors"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
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

// TestEncodeChecksSemiStructuredValues: a value an ARRAY or VARIANT column
// cannot take is caught while the batch file is written, not by PARSE_JSON in
// the MERGE (found by the type matrix: the checks ran on the raw column's
// type, TEXT, so an array's text with bounds failed every MERGE and the
// batch was retried forever; JSON with duplicate keys went through to a
// PARSE_JSON that real Snowflake refuses).
func TestEncodeChecksSemiStructuredValues(t *testing.T) {
	t.Parallel()
	c := Config{Account: "a", User: "u", Database: "D", Schema: "S", PrivateKey: "k", SpoolDir: t.TempDir()}.WithDefaults()
	s := New(c, sinks.Deps{Pipeline: "p"})
	tbl := &sfTable{name: "D.S.t"}
	for _, tc := range []struct {
		col sfCol
		v   schema.Value
	}{
		{sfCol{"a", colType{base: "ARRAY"}}, schema.Unknown("_int4", "[0:2]={1,2,3}")},
		{sfCol{"j", colType{base: "VARIANT"}}, schema.JSON(`{"a": 1, "a": 2}`)},
	} {
		l := &warehouse.Load{Rows: []warehouse.Row{{C: &schema.Change{Op: schema.OpInsert, Pos: offsets.AppendUint(nil, 1),
			After: schema.Row{{Name: tc.col.name, Value: tc.v}}}, Version: "v"}}}
		_, _, err := s.encode(t.TempDir(), "load", "batch", tbl, []sfCol{tc.col}, l)
		require.Error(t, err, "%s into %s", tc.v.AppendJSON(nil), tc.col.typ.sql())
		require.True(t, component.IsPermanent(err))
		require.ErrorContains(t, err, "table D.S.t column "+tc.col.name)
	}
}
