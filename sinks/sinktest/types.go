package sinktest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

// TypeCase is one column of the type matrix: a source type and the values
// written to it (each must read back Equal).
type TypeCase struct {
	Name   string
	Type   schema.Type
	Values []schema.Value
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TypeCases are the type matrix: every value kind, with edge values, under the
// type names a Postgres and a MySQL source report.
var TypeCases = []TypeCase{
	{"bool", schema.Type{Kind: schema.KindBool, Name: "bool"}, []schema.Value{schema.Bool(true), schema.Bool(false)}},
	{"int2", schema.Type{Kind: schema.KindInt, Name: "int2"}, []schema.Value{schema.Int(-32768), schema.Int(32767)}},
	{"int8", schema.Type{Kind: schema.KindInt, Name: "int8"}, []schema.Value{schema.Int(-9223372036854775808), schema.Int(9223372036854775807)}},
	{"mysql_int_unsigned", schema.Type{Kind: schema.KindUint, Name: "int unsigned"}, []schema.Value{schema.Uint(0), schema.Uint(4294967295)}},
	{"mysql_bigint_unsigned", schema.Type{Kind: schema.KindUint, Name: "bigint unsigned"}, []schema.Value{schema.Uint(18446744073709551615), schema.Uint(1)}},
	{"float8", schema.Type{Kind: schema.KindFloat, Name: "float8"}, []schema.Value{schema.Float(1.5), schema.Float(-1e308), schema.Float(5e-324)}},
	{"float8_special", schema.Type{Kind: schema.KindFloat, Name: "float8"}, []schema.Value{schema.Float(posInf), schema.Float(negInf), schema.Float(nan)}},
	{"numeric_38_10", schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 38, Scale: 10}, []schema.Value{
		schema.MustDecimal("1234567890123456789012345678.0123456789"), schema.MustDecimal("-0.0000000001"), schema.MustDecimal("0.0000000000")}},
	{"numeric_unbounded", schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, []schema.Value{
		schema.MustDecimal("3.14159265358979323846264338327950288419716939937510"), schema.MustDecimal("NaN")}},
	{"text", schema.Type{Kind: schema.KindString, Name: "text"}, []schema.Value{
		schema.String("héllo 🌍 \t tab \n newline \\ backslash \"quote\" 'single' {brace},comma"), schema.String("")}},
	{"varchar_5", schema.Type{Kind: schema.KindString, Name: "varchar", Length: 5}, []schema.Value{schema.String("abcde"), schema.String("äöü")}},
	{"bytea", schema.Type{Kind: schema.KindBytes, Name: "bytea"}, []schema.Value{schema.Bytes([]byte{0, 1, 0xfe, 0xff, '\\', '\n'}), schema.Bytes(nil)}},
	{"timestamptz", schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, []schema.Value{
		schema.Timestamp(ts("2024-02-29T12:34:56.123456Z")), schema.Timestamp(ts("0001-01-01T00:00:00Z")), schema.Timestamp(ts("9999-12-31T23:59:59.999999Z"))}},
	{"timestamp", schema.Type{Kind: schema.KindDateTime, Name: "timestamp"}, []schema.Value{
		schema.DateTime(ts("2024-02-29T12:34:56.5Z")), schema.DateTime(ts("1970-01-01T00:00:00Z"))}},
	{"date", schema.Type{Kind: schema.KindDate, Name: "date"}, []schema.Value{schema.Date(2024, 2, 29), schema.Date(1, 1, 1), schema.Date(9999, 12, 31)}},
	{"time", schema.Type{Kind: schema.KindTime, Name: "time"}, []schema.Value{schema.TimeOfDay(0), schema.TimeOfDay(86399999999)}},
	{"jsonb", schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, []schema.Value{
		schema.JSON(`{"a": [1, 2.5, {"b": null}], "s": "x\ty", "big": 12345678901234567890}`), schema.JSON(`[]`)}},
	{"mysql_json", schema.Type{Kind: schema.KindJSON, Name: "json"}, []schema.Value{schema.JSON(`{"k": "v"}`)}},
	{"int4_array", schema.Type{Kind: schema.KindArray, Name: "_int4", Elem: &schema.Type{Kind: schema.KindInt, Name: "int4"}}, []schema.Value{
		schema.Array(schema.Int(1), schema.Null(), schema.Int(-3)), schema.Array()}},
	{"text_array", schema.Type{Kind: schema.KindArray, Name: "_text", Elem: &schema.Type{Kind: schema.KindString, Name: "text"}}, []schema.Value{
		schema.Array(schema.String(`a "quoted", {braced}`), schema.String("NULL"), schema.String(""), schema.String(`back\slash`))}},
	{"uuid", schema.Type{Kind: schema.KindString, Name: "uuid"}, []schema.Value{schema.String("6ba7b810-9dad-11d1-80b4-00c04fd430c8")}},
	{"enum", schema.Type{Kind: schema.KindString, Name: "mood"}, []schema.Value{schema.String("happy")}},
	{"interval", schema.Type{Kind: schema.KindUnknown, Name: "interval"}, []schema.Value{schema.Unknown("interval", "1 day 02:03:04")}},
	{"int4range", schema.Type{Kind: schema.KindUnknown, Name: "int4range"}, []schema.Value{schema.Unknown("int4range", "[1,5)"), schema.Unknown("int4range", "empty")}},
}

var (
	nan    = math.NaN()
	posInf = math.Inf(1)
	negInf = math.Inf(-1)
)

// TypesTable is the type matrix's table: an id key and one column per case.
func TypesTable() schema.Table {
	t := schema.Table{ID: schema.TableID{Namespace: "public", Name: "types"}, Version: 1, PrimaryKey: []string{"id"},
		Columns: []schema.Column{{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}}}}
	for _, c := range TypeCases {
		t.Columns = append(t.Columns, schema.Column{Name: c.Name, Type: c.Type, Nullable: true})
	}
	return t
}

// matrixCases are the type cases the harness's destination takes, with the
// values it holds.
func matrixCases(t *testing.T, h Harness) []TypeCase {
	var cases []TypeCase
	lim, _ := h.(Limits)
	for _, c := range TypeCases {
		if reason := h.Skip(c.Name); reason != "" {
			t.Logf("type %s skipped: %s", c.Name, reason)
			continue
		}
		if lim != nil {
			var held []schema.Value
			for _, v := range c.Values {
				if lim.Holds(c.Name, v) {
					held = append(held, v)
				} else {
					t.Logf("type %s: %s left out: the destination does not hold it", c.Name, v.AppendJSON(nil))
				}
			}
			c.Values = held
		}
		cases = append(cases, c)
	}
	return cases
}

func testTypes(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	tbl := TypesTable()
	lim, _ := h.(Limits)
	cases := matrixCases(t, h)
	s.apply(createDelta(tbl))
	rows := 1
	for _, c := range cases {
		rows = max(rows, len(c.Values)+1) // the last row holds NULLs
	}
	want := map[int64]schema.Row{}
	var cs []schema.Change
	for i := range rows {
		id := int64(i + 1)
		r := schema.Row{{Name: "id", Value: schema.Int(id)}}
		for _, c := range cases {
			v := schema.Null()
			if i < len(c.Values) {
				v = c.Values[i]
			}
			r = append(r, schema.Field{Name: c.Name, Value: v})
		}
		want[id] = r
		cs = append(cs, schema.Change{Op: schema.OpInsert, Table: tbl.ID, Version: 1, Pos: g.pos(), Key: r[:1], After: r})
	}
	s.write(batch(true, cs...))
	got := h.State(t, tbl)
	for id, w := range want {
		g, ok := got[key(id)]
		if !ok {
			t.Fatalf("row %d missing", id)
		}
		for _, f := range w {
			if f.Value.IsNull() && lim != nil && !lim.Holds(f.Name, f.Value) {
				continue // the destination has no NULL for this type (ClickHouse arrays)
			}
			gv, _ := g.Row.Get(f.Name)
			if !Equal(f.Value, gv) {
				t.Errorf("type %s row %d: wrote %s, read back %s", f.Name, id, f.Value.AppendJSON(nil), gv.AppendJSON(nil))
			}
		}
	}
}

// testTypesFill adds every type of the matrix as a column with a value for the
// rows already there (one table per value of a case), and reads it back from a
// row written before the columns existed: the fill path of each type.
func testTypesFill(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	cases := matrixCases(t, h)
	for k := 0; ; k++ {
		base := schema.Table{ID: schema.TableID{Namespace: "public", Name: fmt.Sprintf("types_fill_%d", k)}, Version: 1, PrimaryKey: []string{"id"},
			Columns: []schema.Column{{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}}}}
		v2 := base.Clone()
		v2.Version = 2
		var steps []schema.ColumnChange
		want := schema.Row{{Name: "id", Value: schema.Int(1)}}
		for _, c := range cases {
			if k >= len(c.Values) {
				continue
			}
			col := schema.Column{Name: c.Name, Type: c.Type, Nullable: true, Existing: &schema.Existing{Value: c.Values[k]}}
			v2.Columns = append(v2.Columns, col)
			steps = append(steps, schema.ColumnChange{Op: schema.AddColumn, Column: col})
			want = append(want, schema.Field{Name: c.Name, Value: c.Values[k]})
		}
		if len(steps) == 0 {
			return
		}
		s.apply(createDelta(base))
		r := schema.Row{{Name: "id", Value: schema.Int(1)}}
		s.write(batch(true, schema.Change{Op: schema.OpInsert, Table: base.ID, Version: 1, Pos: g.pos(), Key: r, After: r}))
		s.apply(schema.Delta{Table: v2, From: 1, Pos: g.pos(), Changes: steps})
		got, ok := h.State(t, v2)[key(1)]
		require.True(t, ok, "row 1 of %s missing", base.ID)
		for _, f := range want {
			gv, _ := got.Row.Get(f.Name)
			if !Equal(f.Value, gv) {
				t.Errorf("type %s: filled %s, read back %s", f.Name, f.Value.AppendJSON(nil), gv.AppendJSON(nil))
			}
		}
	}
}
