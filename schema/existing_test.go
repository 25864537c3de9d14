package schema

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/stretchr/testify/require"
)

// TestExistingJSONIsExact: table versions and held deltas are stored as JSON,
// and an added column's value for the older rows must come back exactly.
func TestExistingJSONIsExact(t *testing.T) {
	for _, v := range []Value{
		Int(-9223372036854775808), Uint(18446744073709551615), Float(5e-324), MustDecimal("-0.00000000000000000001"),
		String("tab\t\"q\" ✓"), Bytes([]byte{0, 0xff, 0}), Timestamp(time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)),
		Date(-43, 3, 15), TimeOfDay(86399999999), JSON(`{"k": 1, "k": 2}`), Array(Int(1), Null(), Array(String("x"))),
		Unknown("interval", "1 day"),
	} {
		c := Column{Name: "c", Type: Type{Kind: v.Kind()}, Existing: &Existing{Value: v}}
		b, err := json.Marshal(c)
		require.NoError(t, err)
		var back Column
		require.NoError(t, json.Unmarshal(b, &back))
		require.True(t, back.Existing.Value.Equal(v), "%s: %s", b, back.Existing.Value.AppendJSON(nil))
		require.Equal(t, v.TypeName(), back.Existing.Value.TypeName())
	}
	b, err := json.Marshal(Column{Name: "u", Existing: &Existing{Unknown: "volatile"}})
	require.NoError(t, err)
	var back Column
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, "volatile", back.Existing.Unknown)
	require.False(t, back.Existing.Known())
	require.Error(t, json.Unmarshal([]byte(`{"name":"c","existing":{"encoded":"/w=="}}`), &back), "a corrupt value is an error")
}

// TestRegistryDeltaPosition: a delta says where its version came into force,
// also when a replay gets it again, and its added columns carry their
// Existing values.
func TestRegistryDeltaPosition(t *testing.T) {
	ctx := context.Background()
	reg, err := NewRegistry(ctx, &MemoryVersions{}, "p")
	require.NoError(t, err)
	v1 := Table{ID: TableID{Name: "t"}, Columns: []Column{{Name: "id", Type: Type{Kind: KindInt}}}, PrimaryKey: []string{"id"}}
	_, d, err := reg.Observe(ctx, v1, offsets.AppendUint(nil, 1))
	require.NoError(t, err)
	require.Equal(t, offsets.Position(offsets.AppendUint(nil, 1)), d.Pos)
	v2 := v1.Clone()
	v2.Columns = append(v2.Columns, Column{Name: "n", Type: Type{Kind: KindInt}, Nullable: true, Existing: &Existing{Value: Int(7)}})
	at := offsets.Position(offsets.AppendUint(nil, 5))
	_, d, err = reg.Observe(ctx, v2, at)
	require.NoError(t, err)
	require.Equal(t, at, d.Pos)
	fill, ok := d.Changes[0].Fill()
	require.True(t, ok)
	require.Equal(t, Int(7), fill)

	// the same shape without the value is the same version (Existing is not shape)
	v2b := v2.Clone()
	v2b.Columns[1].Existing = nil
	_, d, err = reg.Observe(ctx, v2b, offsets.AppendUint(nil, 9))
	require.NoError(t, err)
	require.Nil(t, d)
	// a replay at the recorded position gets the delta again, fill and position included
	_, d, err = reg.Observe(ctx, v2b, at)
	require.NoError(t, err)
	require.Equal(t, at, d.Pos)
	fill, ok = d.Changes[0].Fill()
	require.True(t, ok)
	require.Equal(t, Int(7), fill)
}

// TestFillExisting: changes of the batch encoded before a delta that adds a
// column with a value for the older rows are read as holding it; later
// changes, other tables and images that carry the column are left alone.
func TestFillExisting(t *testing.T) {
	id, other := TableID{Name: "t"}, TableID{Name: "o"}
	pos := func(n uint64) offsets.Position { return offsets.AppendUint(nil, n) }
	row := func(fs ...Field) Row { return Row(fs) }
	added := Column{Name: "n", Existing: &Existing{Value: Int(7)}}
	shared := row(Field{"id", Int(1)})
	b := Batch{
		Deltas: []Delta{{Table: Table{ID: id}, Pos: pos(3), Changes: []ColumnChange{{Op: AddColumn, Column: added}}}},
		Changes: []Change{
			{Op: OpInsert, Table: id, Pos: pos(1), After: shared},
			{Op: OpUpdate, Table: id, Pos: pos(2), After: row(Field{"id", Int(2)}, Field{"n", Int(9)})},
			{Op: OpDelete, Table: id, Pos: pos(2), Key: row(Field{"id", Int(3)})},
			{Op: OpInsert, Table: other, Pos: pos(2), After: row(Field{"id", Int(4)})},
			{Op: OpInsert, Table: id, Pos: pos(3), After: row(Field{"id", Int(5)}, Field{"n", Null()})},
		},
	}
	FillExisting(&b)
	require.Equal(t, `{"id":1,"n":7}`, string(b.Changes[0].After.AppendJSON(nil)))
	require.Equal(t, `{"id":1}`, string(shared.AppendJSON(nil)), "the image is copied, not edited: a source may share it")
	require.Equal(t, `{"id":2,"n":9}`, string(b.Changes[1].After.AppendJSON(nil)))
	require.Nil(t, b.Changes[2].After)
	require.Equal(t, `{"id":4}`, string(b.Changes[3].After.AppendJSON(nil)))
	require.Equal(t, `{"id":5,"n":null}`, string(b.Changes[4].After.AppendJSON(nil)))
}
