package schema

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestChangeCodecRoundTrip(t *testing.T) {
	c := Change{
		Op: OpUpdate, Table: TableID{Namespace: "public", Name: "t\x00x"}, Version: 7,
		Pos: []byte{0x10, 0, 0, 1}, TxID: "0-1-42",
		CommitTS: time.Date(2026, 11, 25, 1, 2, 3, 456789, time.UTC),
		Key:      Row{{"id", Int(-5)}},
		Before:   Row{{"id", Int(-5)}, {"f", Float(math.NaN())}},
		After: Row{
			{"id", Int(-5)}, {"u", Uint(math.MaxUint64)}, {"f", Float(math.Inf(-1))}, {"b", Bool(true)},
			{"s", String("héllo\x00")}, {"by", Bytes([]byte{0, 1, 255})}, {"ts", Timestamp(time.Unix(-1, 5).UTC())},
			{"dt", DateTime(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}, {"d", Date(1999, 12, 31)}, {"tm", TimeOfDay(86399999999)},
			{"dec", MustDecimal("-1.50e-3")}, {"j", JSON(`{"a":[1,2]}`)}, {"arr", Array(Int(1), Null(), Array(String("x")))},
			{"unk", Unknown("interval", "1 day")}, {"toast", Unchanged()}, {"n", Null()},
		},
	}
	b := AppendChange(nil, &c)
	got, err := DecodeChange(b)
	require.NoError(t, err)
	require.Equal(t, c.Op, got.Op)
	require.Equal(t, c.Table, got.Table)
	require.Equal(t, c.Version, got.Version)
	require.Equal(t, []byte(c.Pos), []byte(got.Pos))
	require.Equal(t, c.TxID, got.TxID)
	require.True(t, c.CommitTS.Equal(got.CommitTS))
	for i, pair := range [][2]Row{{c.Key, got.Key}, {c.Before, got.Before}, {c.After, got.After}} {
		require.Len(t, pair[1], len(pair[0]), "row %d", i)
		for j := range pair[0] {
			require.Equal(t, pair[0][j].Name, pair[1][j].Name)
			require.True(t, pair[0][j].Value.Equal(pair[1][j].Value), "%s: %v != %v", pair[0][j].Name, pair[0][j].Value, pair[1][j].Value)
		}
	}
	// a delete has no images: nil rows stay nil
	del := Change{Op: OpDelete, Table: TableID{Name: "t"}, Key: Row{{"id", Int(1)}}}
	got, err = DecodeChange(AppendChange(nil, &del))
	require.NoError(t, err)
	require.Nil(t, got.After)
	require.Nil(t, got.Before)
	require.True(t, got.CommitTS.IsZero())
	require.Nil(t, got.Since)
	// a sweep keeps the position its resync began at
	sw := Change{Op: OpSweep, Table: TableID{Name: "t"}, Pos: []byte{2}, Since: []byte{1, 0, 7}}
	got, err = DecodeChange(AppendChange(nil, &sw))
	require.NoError(t, err)
	require.Equal(t, OpSweep, got.Op)
	require.Equal(t, []byte{1, 0, 7}, []byte(got.Since))
	// what version 1 wrote (held changes of an earlier release) still decodes
	v1 := AppendChange(nil, &del)
	v1[0] = 1
	got, err = DecodeChange(v1[:len(v1)-1])
	require.NoError(t, err)
	require.Equal(t, OpDelete, got.Op)
}

func FuzzDecodeChange(f *testing.F) {
	c := Change{Op: OpInsert, Table: TableID{Name: "t"}, After: Row{{"a", Array(Int(1))}}}
	f.Add(AppendChange(nil, &c))
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChange(b) // must not panic or allocate without bound
		if err != nil {
			return
		}
		again, err := DecodeChange(AppendChange(nil, &c))
		require.NoError(t, err)
		require.Equal(t, len(c.After), len(again.After))
	})
}
