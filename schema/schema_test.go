package schema

import (
	"context"
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/stretchr/testify/require"
)

func TestValueJSON(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		v    Value
		want string
	}{
		{"null", Null(), `null`},
		{"bool", Bool(true), `true`},
		{"int min", Int(math.MinInt64), `-9223372036854775808`},
		{"uint max", Uint(math.MaxUint64), `18446744073709551615`},
		{"float", Float(1.5), `1.5`},
		{"nan", Float(math.NaN()), `"NaN"`},
		{"neg inf", Float(math.Inf(-1)), `"-Infinity"`},
		{"string escapes", String("a\"b\n"), `"a\"b\n"`},
		{"bytes", Bytes([]byte{0, 1, 2}), `"AAEC"`},
		{"timestamp in utc", Timestamp(ts), `"2024-02-29T22:59:58.123456Z"`},
		{"datetime keeps wall clock", DateTime(ts), `"2024-02-29T23:59:58.123456"`},
		{"date", Date(1, 1, 1), `"0001-01-01"`},
		{"date far", Date(9999, 12, 31), `"9999-12-31"`},
		{"time", TimeOfDay(13*3600e6 + 5*60e6 + 7e6 + 500), `"13:05:07.0005"`},
		{"decimal exact", MustDecimal("12345678901234567890.000000001"), `"12345678901234567890.000000001"`},
		{"decimal nan", MustDecimal("NaN"), `"NaN"`},
		{"json compacted", JSON(`{"a": [1, 2]}`), `{"a":[1,2]}`},
		{"invalid json as string", JSON(`{nope`), `"{nope"`},
		{"array", Array(Int(1), Null(), Array(String("x"))), `[1,null,["x"]]`},
		{"unknown", Unknown("interval", "1 day"), `"1 day"`},
		{"unchanged", Unchanged(), `{"$unchanged":true}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.v.MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
		})
	}
}

func TestDecimal(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0", "-1", "+1.5", ".5", "5.", "1e10", "-1.25E-3", "NaN", "Infinity", "-Infinity", "123456789012345678901234567890.123456789"} {
		v, err := Decimal(ok)
		require.NoError(t, err, ok)
		require.Equal(t, ok, v.Text(), "decimal text is kept exactly")
	}
	for _, bad := range []string{"", "-", "1.2.3", "abc", "1e", "nan", "1,5", " 1"} {
		_, err := Decimal(bad)
		require.ErrorIs(t, err, ErrBadDecimal, bad)
	}
}

func TestValueEqualAndAccessors(t *testing.T) {
	t.Parallel()
	require.True(t, Float(math.NaN()).Equal(Float(math.NaN())))
	require.False(t, Int(1).Equal(Uint(1)))
	require.False(t, Array(Int(1)).Equal(Array(Int(2))))
	require.Equal(t, int64(-5), Int(-5).AsInt())
	require.Equal(t, []byte("x"), Bytes([]byte("x")).AsBytes())
	d := Date(2020, 3, 1).AsTime()
	require.Equal(t, time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC), d)
	k, err := ParseKind("decimal")
	require.NoError(t, err)
	require.Equal(t, KindDecimal, k)
	o, err := ParseOp("d")
	require.NoError(t, err)
	require.Equal(t, OpDelete, o)
	_, err = ParseOp("x")
	require.Error(t, err)
}

func TestRowJSONKeepsOrder(t *testing.T) {
	t.Parallel()
	r := Row{{"z", Int(1)}, {"a", String("x")}}
	b, err := r.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"z":1,"a":"x"}`, string(b))
	require.Equal(t, 1, r.Index("a"))
	v, ok := r.Get("z")
	require.True(t, ok)
	require.Equal(t, int64(1), v.AsInt())
}

func tbl(cols ...Column) Table {
	return Table{ID: TableID{"public", "t"}, Columns: cols, PrimaryKey: []string{"id"}}
}

var (
	idCol   = Column{Name: "id", Type: Type{Kind: KindInt, Name: "int8"}}
	nameCol = Column{Name: "name", Type: Type{Kind: KindString, Name: "varchar", Length: 10}, Nullable: true}
)

func TestDiff(t *testing.T) {
	t.Parallel()
	wide := nameCol
	wide.Type.Length = 20
	notNull := nameCol
	notNull.Nullable = false
	extra := Column{Name: "note", Type: Type{Kind: KindString, Name: "text"}, Nullable: true}
	cases := []struct {
		name     string
		old, new Table
		want     []DeltaOp
	}{
		{"same", tbl(idCol, nameCol), tbl(idCol, nameCol), nil},
		{"add", tbl(idCol), tbl(idCol, nameCol), []DeltaOp{AddColumn}},
		{"drop", tbl(idCol, nameCol), tbl(idCol), []DeltaOp{DropColumn}},
		{"widen", tbl(idCol, nameCol), tbl(idCol, wide), []DeltaOp{AlterColumnType}},
		{"nullability", tbl(idCol, nameCol), tbl(idCol, notNull), []DeltaOp{SetNullable}},
		{"rename looks like drop+add", tbl(idCol, nameCol), tbl(idCol, Column{Name: "title", Type: nameCol.Type, Nullable: true}), []DeltaOp{DropColumn, AddColumn}},
		{"pk", tbl(idCol, nameCol), Table{ID: TableID{"public", "t"}, Columns: []Column{idCol, nameCol}, PrimaryKey: []string{"id", "name"}}, []DeltaOp{SetPrimaryKey}},
		{"several", tbl(idCol, nameCol), tbl(idCol, wide, extra), []DeltaOp{AlterColumnType, AddColumn}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []DeltaOp
			for _, c := range Diff(tc.old, tc.new) {
				got = append(got, c.Op)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func p(n uint64) offsets.Position { return offsets.AppendUint(nil, n) }

func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &MemoryVersions{}
	r, err := NewRegistry(ctx, store, "pl")
	require.NoError(t, err)

	v1, d, err := r.Observe(ctx, tbl(idCol, nameCol), p(10))
	require.NoError(t, err)
	require.Equal(t, Version(1), v1.Version)
	require.Equal(t, CreateTable, d.Changes[0].Op)

	same, d, err := r.Observe(ctx, tbl(idCol, nameCol), p(20))
	require.NoError(t, err)
	require.Nil(t, d, "unchanged shape yields no delta")
	require.Equal(t, Version(1), same.Version)

	extra := Column{Name: "note", Type: Type{Kind: KindString, Name: "text"}, Nullable: true}
	v2, d, err := r.Observe(ctx, tbl(idCol, nameCol, extra), p(100))
	require.NoError(t, err)
	require.Equal(t, Version(2), v2.Version)
	require.Equal(t, Version(1), d.From)
	require.Equal(t, []ColumnChange{{Op: AddColumn, Column: extra}}, d.Changes)

	// A restart re-reads history from the store; a replay from before pos 100
	// sees the old shape, then the new one again: neither makes a new version.
	r2, err := NewRegistry(ctx, store, "pl")
	require.NoError(t, err)
	old, d, err := r2.Observe(ctx, tbl(idCol, nameCol), p(50))
	require.NoError(t, err)
	require.Nil(t, d)
	require.Equal(t, Version(1), old.Version)
	again, d, err := r2.Observe(ctx, tbl(idCol, nameCol, extra), p(90))
	require.NoError(t, err)
	require.Nil(t, d, "a replay that sees v2 a little earlier reuses v2")
	require.Equal(t, Version(2), again.Version)
	// A replay of the very positions where versions were recorded gets their
	// deltas again: the batches that carried them may never have been written.
	first, d, err := r2.Observe(ctx, tbl(idCol, nameCol), p(10))
	require.NoError(t, err)
	require.Equal(t, Version(1), first.Version)
	require.Equal(t, &Delta{Table: first, Changes: []ColumnChange{{Op: CreateTable}}, Pos: p(10)}, d)
	second, d, err := r2.Observe(ctx, tbl(idCol, nameCol, extra), p(100))
	require.NoError(t, err)
	require.Equal(t, &Delta{Table: second, From: 1, Changes: []ColumnChange{{Op: AddColumn, Column: extra}}, Pos: p(100)}, d)
	require.Len(t, r2.Tables(), 1, "no version was made")
	require.Equal(t, Version(2), r2.Tables()[0].Version)

	got, err := r2.At(ctx, TableID{"public", "t"}, 1)
	require.NoError(t, err)
	require.True(t, got.SameShape(tbl(idCol, nameCol)))
	_, err = r2.At(ctx, TableID{"public", "t"}, 7)
	require.ErrorIs(t, err, ErrUnknownVersion)
	require.Len(t, r2.Tables(), 1)

	_, _, err = r2.Observe(ctx, Table{ID: TableID{"public", "bad"}, Columns: []Column{idCol}, PrimaryKey: []string{"nope"}}, p(200))
	require.Error(t, err, "a key column that is not a column is rejected")
}

var decimalSpec = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// FuzzDecimalJSON checks the decimal scanner against the grammar written as a
// regular expression, and that accepted text is kept exactly.
func FuzzDecimalJSON(f *testing.F) {
	for _, s := range []string{"1.5", "-0.000e+12", ".", "+.e1", "1.", ".5", "1e", "--1", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDecimal(s), decimalSpec.MatchString(s); got != want {
			t.Fatalf("isDecimal(%q) = %v, the grammar says %v", s, got, want)
		}
		v, err := Decimal(s)
		if err != nil {
			return
		}
		if v.Text() != s {
			t.Fatalf("decimal %q changed to %q", s, v.Text())
		}
		_ = v.AppendJSON(nil)
	})
}

func TestWidens(t *testing.T) {
	ty := func(k Kind, name string, p, s, l int) Type {
		return Type{Kind: k, Name: name, Precision: p, Scale: s, Length: l}
	}
	for _, c := range []struct {
		old, new Type
		want     bool
	}{
		{ty(KindInt, "int4", 0, 0, 0), ty(KindInt, "int8", 0, 0, 0), true},
		{ty(KindInt, "int8", 0, 0, 0), ty(KindInt, "int4", 0, 0, 0), false},
		{ty(KindString, "varchar", 0, 0, 10), ty(KindString, "varchar", 0, 0, 20), true},
		{ty(KindString, "varchar", 0, 0, 20), ty(KindString, "varchar", 0, 0, 10), false},
		{ty(KindString, "varchar", 0, 0, 20), ty(KindString, "text", 0, 0, 0), true},
		{ty(KindString, "text", 0, 0, 0), ty(KindString, "varchar", 0, 0, 10), false},
		{ty(KindDecimal, "numeric", 10, 2, 0), ty(KindDecimal, "numeric", 12, 2, 0), true},
		{ty(KindDecimal, "numeric", 10, 2, 0), ty(KindDecimal, "numeric", 10, 3, 0), false},
		{ty(KindDecimal, "numeric", 10, 2, 0), ty(KindDecimal, "numeric", 0, 0, 0), true},
		{ty(KindFloat, "float4", 0, 0, 0), ty(KindFloat, "float8", 0, 0, 0), true},
		{ty(KindInt, "int4", 0, 0, 0), ty(KindString, "text", 0, 0, 0), false},
		{ty(KindTimestamp, "timestamptz", 3, 0, 0), ty(KindTimestamp, "timestamptz", 6, 0, 0), true},
	} {
		require.Equal(t, c.want, Widens(c.old, c.new), "%s -> %s", c.old, c.new)
	}
}

func TestInferRenames(t *testing.T) {
	text := Type{Kind: KindString, Name: "text"}
	old := Table{ID: TableID{Name: "t"}, Columns: []Column{{Name: "id", Type: Type{Kind: KindInt, Name: "int4"}}, {Name: "mail", Type: text}, {Name: "x", Type: text}}}
	renamed := Table{ID: TableID{Name: "t"}, Columns: []Column{old.Columns[0], {Name: "email", Type: text}, {Name: "x", Type: text}}}
	steps := InferRenames(old, renamed, Diff(old, renamed))
	require.Len(t, steps, 1)
	require.Equal(t, RenameColumn, steps[0].Op)
	require.Equal(t, "mail", steps[0].Old.Name)
	require.Equal(t, "email", steps[0].Column.Name)

	// the old shape unknown: a drop and an add pair only as the only ones of their type
	steps = InferRenames(Table{}, renamed, Diff(old, renamed))
	require.Equal(t, []DeltaOp{RenameColumn}, []DeltaOp{steps[0].Op})
	two := Table{ID: TableID{Name: "t"}, Columns: []Column{old.Columns[0], {Name: "a", Type: text}, {Name: "b", Type: text}}}
	steps = InferRenames(Table{}, two, Diff(old, two))
	require.Len(t, steps, 4, "two text drops and two text adds: ambiguous, nothing paired")

	// a dropped column and an unrelated column appended at the end stay a drop and an add
	other := Table{ID: TableID{Name: "t"}, Columns: []Column{old.Columns[0], {Name: "x", Type: text}, {Name: "y", Type: text}}}
	steps = InferRenames(old, other, Diff(old, other))
	require.Equal(t, []DeltaOp{DropColumn, AddColumn}, []DeltaOp{steps[0].Op, steps[1].Op})
}

func TestDescribeChanges(t *testing.T) {
	t.Parallel()
	got := DescribeChanges([]ColumnChange{
		{Op: AddColumn, Column: Column{Name: "a", Type: Type{Kind: KindInt}, Existing: &Existing{Value: Int(-1)}}},
		{Op: AddColumn, Column: Column{Name: "b", Type: Type{Kind: KindInt}}},
		{Op: DropColumn, Column: Column{Name: "c", Type: Type{Kind: KindString}}},
	})
	require.Equal(t, "add_column a (int, existing rows: -1); add_column b (int, existing rows: NULL); drop_column c (string)", got)
}
