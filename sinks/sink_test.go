package sinks

import (
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

func ch(n uint64, t string, op schema.Op, key int64) schema.Change {
	return schema.Change{Op: op, Table: schema.TableID{Name: t}, Pos: offsets.AppendUint(nil, n), Key: schema.Row{{Name: "id", Value: schema.Int(key)}}}
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
	var got []uint64
	for _, c := range CollapseByKey(in) {
		got = append(got, offsets.NewDecoder(c.Pos).Uint())
	}
	require.Equal(t, []uint64{5, 6, 7, 8}, got)
}
