package verify

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

// mapSide is a table as a map from integer key to a row hash, for the logic
// of Compare (the SQL sides are tested against real databases).
type mapSide map[int]string

func (m mapSide) keys(r Range) []int {
	var out []int
	for k := range m {
		lo, hi := -1<<62, 1<<62
		if r.Lo != nil {
			lo, _ = strconv.Atoi(r.Lo[0])
		}
		if r.Hi != nil {
			hi, _ = strconv.Atoi(r.Hi[0])
		}
		if k >= lo && k < hi {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (m mapSide) Sum(_ context.Context, _ *Table, r Range) (Sum, error) {
	var h int
	ks := m.keys(r)
	for _, k := range ks {
		n, _ := strconv.Atoi(m[k])
		h += n
	}
	return Sum{Rows: int64(len(ks)), H1: strconv.Itoa(h)}, nil
}

func (m mapSide) Split(_ context.Context, _ *Table, r Range, rows int64, parts int) ([]Key, error) {
	ks := m.keys(r)
	var out []Key
	step := len(ks) / parts
	for i := 1; i < parts && step > 0; i++ {
		out = append(out, Key{strconv.Itoa(ks[i*step])})
	}
	return out, nil
}

func (m mapSide) Rows(_ context.Context, _ *Table, r Range) ([]RowHash, error) {
	var out []RowHash
	for _, k := range m.keys(r) {
		out = append(out, RowHash{Key: Key{strconv.Itoa(k)}, Hash: m[k]})
	}
	return out, nil
}

func (mapSide) Bytes() int64 { return 0 }
func (mapSide) Close() error { return nil }

var intTable = &Table{ID: schema.TableID{Name: "t"}, Ranged: true,
	Key: []schema.Column{{Name: "id", Type: schema.Type{Kind: schema.KindInt}}}}

func sides(n int) (mapSide, mapSide) {
	src, dst := mapSide{}, mapSide{}
	for i := range n {
		src[i], dst[i] = strconv.Itoa(i*7+1), strconv.Itoa(i*7+1)
	}
	return src, dst
}

func TestCompareFindsKeysByBisection(t *testing.T) {
	src, dst := sides(10_000)
	delete(dst, 17)
	dst[20_000] = "5"
	dst[9_000] = "x"
	res := Compare(context.Background(), src, dst, intTable, Options{LeafRows: 64})
	require.Equal(t, StatusDifferent, res.Status)
	require.Equal(t, &Samples{Missing: []Key{{"17"}}, Extra: []Key{{"20000"}}, Different: []Key{{"9000"}}}, res.Samples)
	require.Less(t, res.Ranges, 200, "bisected")
}

func TestCompareRechecksWhatTheStreamWasDelivering(t *testing.T) {
	src, dst := sides(1000)
	// in flight: an insert, a delete and an update the destination has not
	// received yet, and a row updated at every check (the destination is
	// always one value behind)
	src[5000] = "1"
	delete(src, 10)
	src[20] = "u1"
	src[30] = "h1"
	checks := 0
	settle := func(context.Context) error {
		checks++
		dst[5000] = src[5000]
		delete(dst, 10)
		dst[20] = src[20]
		dst[30] = src[30]
		src[30] = fmt.Sprintf("h%d", checks+1)
		return nil
	}
	// and one real difference
	dst[40] = "tampered"
	res := Compare(context.Background(), src, dst, intTable, Options{LeafRows: 64, Settle: settle})
	require.Equal(t, 3, checks)
	require.Equal(t, &Samples{Different: []Key{{"40"}}}, res.Samples)
	require.Equal(t, StatusDifferent, res.Status)

	// without rechecks, every key in flight is reported
	src, dst = sides(1000)
	src[5000] = "1"
	res = Compare(context.Background(), src, dst, intTable, Options{LeafRows: 64})
	require.EqualValues(t, 1, res.Missing)
}

func TestPlanSaysWhatItCannotCompare(t *testing.T) {
	_, err := Plan(schema.Table{ID: schema.TableID{Name: "nokey"}, Columns: []schema.Column{{Name: "a", Type: schema.Type{Kind: schema.KindInt}}}})
	require.ErrorContains(t, err, "no primary key")
	_, err = Plan(schema.Table{ID: schema.TableID{Name: "fk"}, PrimaryKey: []string{"f"}, Columns: []schema.Column{{Name: "f", Type: schema.Type{Kind: schema.KindFloat, Name: "float8"}}}})
	require.ErrorContains(t, err, "key column f is of type float8")
	p, err := Plan(schema.Table{ID: schema.TableID{Name: "t"}, PrimaryKey: []string{"ts"}, Columns: []schema.Column{
		{Name: "j", Type: schema.Type{Kind: schema.KindJSON, Name: "jsonb"}},
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}},
		{Name: "v", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric"}},
	}})
	require.NoError(t, err)
	require.False(t, p.Ranged, "instants order alike everywhere, but their canonical text does not")
	require.Equal(t, []string{"j (jsonb): no canonical form shared by both databases"}, p.NotCompared)
	require.Equal(t, "ts", p.Columns[0].Name)
	require.Len(t, p.Columns, 2)
}
