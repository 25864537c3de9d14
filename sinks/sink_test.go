package sinks

import (
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func ch(n uint64, t string, op schema.Op, key int64) schema.Change {
	return schema.Change{Op: op, Table: schema.TableID{Name: t}, Pos: offsets.AppendUint(nil, n), Key: schema.Row{{Name: "id", Value: schema.Int(key)}}}
}

// positions are the changes' positions as ch numbered them.
func positions(cs []schema.Change) []uint64 {
	var out []uint64
	for _, c := range cs {
		out = append(out, offsets.NewDecoder(c.Pos).Uint())
	}
	return out
}

func TestCollapseByKey(t *testing.T) {
	t.Parallel()
	in := []schema.Change{
		ch(1, "a", schema.OpInsert, 1),
		ch(2, "a", schema.OpUpdate, 1),
		ch(3, "b", schema.OpInsert, 1),
		ch(4, "a", schema.OpDelete, 1),
		ch(5, "a", schema.OpInsert, 1), // insert–delete–reinsert: the reinsert wins
		ch(6, "b", schema.OpTruncate, 0),
		ch(7, "b", schema.OpInsert, 2),
		ch(8, "a", schema.OpInsert, 2),
	}
	require.Equal(t, []uint64{5, 6, 7, 8}, positions(CollapseByKey(in)))
}

func TestCollapseByKeyPutsSweepsLast(t *testing.T) {
	t.Parallel()
	in := []schema.Change{
		ch(1, "a", schema.OpSweep, 0),
		ch(2, "b", schema.OpSweep, 0), // before b's truncate: dropped with b's earlier changes
		ch(3, "b", schema.OpTruncate, 0),
		ch(4, "a", schema.OpSweep, 0),
		ch(5, "b", schema.OpInsert, 1),
		ch(6, "a", schema.OpInsert, 1),
	}
	require.Equal(t, []uint64{3, 5, 6, 1, 4}, positions(CollapseByKey(in)))
	rows, sweeps := SplitSweeps(CollapseByKey(in[3:]))
	require.Len(t, rows, 2)
	require.Len(t, sweeps, 1)
	require.Equal(t, schema.OpSweep, sweeps[0].Op)
}

func TestCollapseByKeyFillsUnchanged(t *testing.T) {
	t.Parallel()
	ins := ch(1, "a", schema.OpInsert, 1)
	ins.After = schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "doc", Value: schema.String("big")}, {Name: "n", Value: schema.Int(1)}}
	upd := ch(2, "a", schema.OpUpdate, 1)
	upd.After = schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "doc", Value: schema.Unchanged()}, {Name: "n", Value: schema.Int(2)}}
	upd2 := ch(3, "a", schema.OpUpdate, 1)
	upd2.After = schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "doc", Value: schema.Unchanged()}, {Name: "n", Value: schema.Int(3)}}
	lone := ch(4, "a", schema.OpUpdate, 2)
	lone.After = schema.Row{{Name: "id", Value: schema.Int(2)}, {Name: "doc", Value: schema.Unchanged()}}

	out := CollapseByKey([]schema.Change{ins, upd, upd2, lone})
	require.Len(t, out, 2)
	doc, _ := out[0].After.Get("doc")
	require.Equal(t, "big", doc.Text(), "the insert's value fills the later marker")
	n, _ := out[0].After.Get("n")
	require.Equal(t, int64(3), n.AsInt())
	doc, _ = out[1].After.Get("doc")
	require.Equal(t, schema.KindUnchanged, doc.Kind(), "no earlier value: the marker stays")
	d, _ := upd.After.Get("doc")
	require.Equal(t, schema.KindUnchanged, d.Kind(), "the input is not modified")

	// a delete in between: the reinsert carries every value; nothing leaks across
	del := ch(5, "a", schema.OpDelete, 1)
	re := ch(6, "a", schema.OpUpdate, 1)
	re.After = schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "doc", Value: schema.Unchanged()}}
	out = CollapseByKey([]schema.Change{ins, del, re})
	require.Len(t, out, 1)
	doc, _ = out[0].After.Get("doc")
	require.Equal(t, schema.KindUnchanged, doc.Kind())
}

func TestNulledValuesIsSharedOnARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, b := NulledValues(reg), NulledValues(reg)
	a.WithLabelValues("p", "t", "c").Inc()
	require.Equal(t, 1.0, testutil.ToFloat64(b.WithLabelValues("p", "t", "c")), "two sinks on one registry count together")
	n, err := testutil.GatherAndCount(reg, "cdcd_sink_values_nulled_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestAlteredValuesIsSharedOnARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	AlteredValues(reg).WithLabelValues("p", "t", "c").Inc()
	AlteredValues(reg).WithLabelValues("p", "t", "c").Inc()
	require.Equal(t, 2.0, testutil.ToFloat64(AlteredValues(reg).WithLabelValues("p", "t", "c")))
}

func TestJSONNull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    schema.Value
		want bool
	}{
		{schema.JSON("null"), true},
		{schema.JSON(" null\n"), true},
		{schema.JSON(`{"a": null}`), false}, // a member's null is kept inside its object
		{schema.JSON(`"null"`), false},
		{schema.Null(), false},
		{schema.String("null"), false},
		{schema.Array(schema.JSON("1"), schema.Null()), false}, // a NULL element is NULL either way
		{schema.Array(schema.JSON("1"), schema.JSON("null")), true},
		{schema.Array(schema.Array(schema.JSON("null"))), true},
	} {
		require.Equal(t, tc.want, JSONNull(tc.v), "%v", tc.v)
	}
}
