package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestConfigValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	err := Config{DSN: "postgres://u:secret@h:bad/db", Common: sinks.Common{TableName: "x", DeleteMode: "gone", MetadataPrefix: "Bad-",
		OnUnrepresentable: "guess"}, WriteMode: "fast", OffsetsTable: `a.b.c`, Schema: "s"}.Validate()
	require.Error(t, err)
	for _, want := range []string{"dsn:", "table_name:", "delete_mode:", "metadata_prefix:", "on_unrepresentable:", "write_mode:", "offsets_table:"} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "secret")
	require.NoError(t, Config{DSN: "postgres://h/db"}.WithDefaults().Validate())
}

func TestDestType(t *testing.T) {
	t.Parallel()
	cases := map[string]schema.Type{
		"numeric(12,3)":    {Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 3},
		"numeric":          {Kind: schema.KindDecimal, Name: "numeric"},
		"varchar(20)":      {Kind: schema.KindString, Name: "varchar", Length: 20},
		"text":             {Kind: schema.KindString, Name: "mood"}, // a Postgres enum
		"uuid":             {Kind: schema.KindString, Name: "uuid"},
		"timestamptz(3)":   {Kind: schema.KindTimestamp, Name: "timestamptz", Precision: 3},
		"timestamptz":      {Kind: schema.KindTimestamp, Name: "timestamptz", Precision: 6},
		"integer[]":        {Kind: schema.KindArray, Name: "_int4", Elem: &schema.Type{Kind: schema.KindInt, Name: "int4"}},
		"interval":         {Kind: schema.KindUnknown, Name: "interval"},
		"text ":            {Kind: schema.KindUnknown, Name: "geometry"}, // an extension type: its text form
		"smallint":         {Kind: schema.KindInt, Name: "tinyint"},
		"bigint":           {Kind: schema.KindUint, Name: "int unsigned"},
		"numeric(20,0)":    {Kind: schema.KindUint, Name: "bigint unsigned"},
		"jsonb":            {Kind: schema.KindJSON, Name: "jsonb"},
		"json":             {Kind: schema.KindJSON, Name: "json"}, // json keeps its text exactly
		"double precision": {Kind: schema.KindFloat, Name: "double"},
		"real":             {Kind: schema.KindFloat, Name: "float"},
		"varchar(10)":      {Kind: schema.KindString, Name: "char", Length: 10}, // MySQL CHAR(10)
		`"char"`:           {Kind: schema.KindString, Name: "char"},             // Postgres "char"
	}
	for want, typ := range cases {
		if want == "text " {
			want = "text"
		}
		require.Equal(t, want, DestType(typ), "%+v", typ)
	}
}

func TestDecimalDigits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]int{
		"123.450": {3, 2}, "-0.001": {0, 3}, "1000": {4, 0}, "0": {0, 0}, "1.5e3": {4, 0}, "12e-4": {0, 4}, "00012.3400": {2, 2},
	} {
		i, f := schema.DecimalDigits(in)
		require.Equal(t, want, [2]int{i, f}, in)
	}
	s := colSpec{typname: "numeric", precision: 5, scale: 2}
	require.Empty(t, s.problem(schema.MustDecimal("999.99")))
	require.Contains(t, s.problem(schema.MustDecimal("1000.00")), "integer digits")
	require.Contains(t, s.problem(schema.MustDecimal("1.001")), "fraction digits")
	require.Contains(t, s.problem(schema.MustDecimal("Infinity")), "infinite")
	require.Contains(t, colSpec{typname: "text"}.problem(schema.String("a\x00b")), "NUL")
	require.Contains(t, colSpec{typname: "varchar", length: 2}.problem(schema.String("abc")), "3 characters")
	require.Contains(t, colSpec{typname: "int2"}.problem(schema.Int(40000)), "range")
	require.Contains(t, colSpec{typname: "int8"}.problem(schema.Uint(1<<63)), "range")
	// found: a MariaDB TIME beyond a day failed the whole COPY
	for _, bad := range []string{"-838:59:59", "25:00:00.000001", "838:59:59.00", "24:00:00.5"} {
		require.Contains(t, colSpec{typname: "time"}.problem(schema.Unknown("time", bad)), "not a time of day", bad)
	}
	require.Empty(t, colSpec{typname: "time"}.problem(schema.Unknown("time", "24:00:00.000")))
}

func TestWidens(t *testing.T) {
	t.Parallel()
	yes := [][2]string{{"int4", "bigint"}, {"int2", "numeric(10,0)"}, {"float4", "double precision"}, {"varchar(5)", "varchar(10)"},
		{"varchar(5)", "text"}, {"numeric(5,2)", "numeric(7,3)"}, {"numeric(5,2)", "numeric"}, {"timestamptz(3)", "timestamptz"}}
	no := [][2]string{{"bigint", "integer"}, {"varchar(10)", "varchar(5)"}, {"numeric(5,2)", "numeric(5,3)"}, {"text", "integer"},
		{"numeric", "numeric(10,2)"}, {"int8", "numeric(18,0)"}, {"timestamp", "timestamptz"}}
	for _, p := range yes {
		require.True(t, widens(parseDest(p[0]), parseDest(p[1])), "%s → %s", p[0], p[1])
	}
	for _, p := range no {
		require.False(t, widens(parseDest(p[0]), parseDest(p[1])), "%s → %s", p[0], p[1])
	}
}

// open returns an opened sink holding the lease, on a fresh destination.
func openSink(t *testing.T, mod func(*Config)) (*Sink, *harness, *prometheus.Registry) {
	h := newHarness("auto")(t).(*harness)
	c := h.config(sinktest.Options{})
	if mod != nil {
		mod(&c)
	}
	reg := prometheus.NewRegistry()
	s := New(c, sinks.Deps{Pipeline: "p", Metrics: reg})
	ctx := context.Background()
	_, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.NoError(t, s.Open(ctx))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, h, reg
}

var money = schema.Table{ID: schema.TableID{Namespace: "public", Name: "money"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
	{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
	{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 6, Scale: 2}, Nullable: true},
	{Name: "note", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
}}

func moneyRow(n uint64, id int64, amount, note string) schema.Change {
	r := schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "amount", Value: schema.MustDecimal(amount)}, {Name: "note", Value: schema.String(note)}}
	return schema.Change{Op: schema.OpInsert, Table: money.ID, Version: 1, Pos: offsets.AppendUint(nil, n), Key: r[:1], After: r}
}

func TestUnrepresentableError(t *testing.T) {
	t.Parallel()
	s, _, _ := openSink(t, nil)
	ctx := context.Background()
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	err := s.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(1, 1, "12345.67", "secret-note")}})
	require.Error(t, err)
	require.True(t, component.IsPermanent(err))
	require.ErrorContains(t, err, "column amount")
	require.ErrorContains(t, err, "on_unrepresentable")
	require.NotContains(t, err.Error(), "12345", "the value is not in the message")
	// NUL in text
	err = s.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(2, 1, "1.00", "a\x00b")}})
	require.ErrorContains(t, err, "NUL")
	// and the session still works after the failed transactions
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(3, 1, "1.00", "ok")}}))
}

func TestUnrepresentableNull(t *testing.T) {
	t.Parallel()
	s, h, _ := openSink(t, func(c *Config) { c.OnUnrepresentable = "null" })
	ctx := context.Background()
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(1, 1, "12345.67", "x"), moneyRow(2, 2, "1.005", "y"), moneyRow(3, 3, "9.99", "z")}}))
	st := h.State(t, money)
	amt, _ := st[`{"id":1}`].Row.Get("amount")
	require.True(t, amt.IsNull())
	amt, _ = st[`{"id":3}`].Row.Get("amount")
	require.Equal(t, "9.99", amt.Text())
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.nulled.WithLabelValues("p", "dest.money", "amount")))
}

func TestSchemaChanges(t *testing.T) {
	t.Parallel()
	s, h, _ := openSink(t, nil)
	ctx := context.Background()
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(1, 1, "9999.99", "x")}}))

	// widen numeric(6,2) → numeric(10,2): applied
	v2 := money.Clone()
	v2.Version = 2
	old := v2.Columns[1]
	v2.Columns[1].Type = schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 10, Scale: 2}
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: v2, From: 1, Changes: []schema.ColumnChange{{Op: schema.AlterColumnType, Column: v2.Columns[1], Old: &old}}}}))
	big := moneyRow(2, 2, "12345678.90", "y")
	big.Version = 2
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{big}}))
	amt, _ := h.State(t, v2)[`{"id":2}`].Row.Get("amount")
	require.Equal(t, "12345678.90", amt.Text())

	// narrow it back: a permanent error naming table and column
	v3 := v2.Clone()
	v3.Version = 3
	prev := v3.Columns[1]
	v3.Columns[1].Type = schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 4, Scale: 2}
	err := s.Apply(ctx, []schema.Delta{{Table: v3, From: 2, Changes: []schema.ColumnChange{{Op: schema.AlterColumnType, Column: v3.Columns[1], Old: &prev}}}})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "dest.money column amount")

	// a primary key change cannot be followed
	v4 := v2.Clone()
	v4.Version = 4
	v4.PrimaryKey = []string{"id", "note"}
	err = s.Apply(ctx, []schema.Delta{{Table: v4, From: 2, Changes: []schema.ColumnChange{{Op: schema.SetPrimaryKey}}}})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "primary key")

	// a rename is applied as a rename: the values stay
	v5 := v2.Clone()
	v5.Version = 5
	was := v5.Columns[2]
	v5.Columns[2].Name = "memo"
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: v5, From: 2, Changes: []schema.ColumnChange{{Op: schema.RenameColumn, Column: v5.Columns[2], Old: &was}}}}))
	memo, _ := h.State(t, v5)[`{"id":1}`].Row.Get("memo")
	require.Equal(t, "x", memo.Text())

	// a destination table dropped behind the sink's back: a named, permanent error
	conn, err := pgx.Connect(ctx, h.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP TABLE dest.money")
	require.NoError(t, err)
	s2, _, _ := func() (*Sink, *harness, *prometheus.Registry) {
		c := h.config(sinktest.Options{})
		s2 := New(c, sinks.Deps{Pipeline: "p"})
		_, err := s2.Acquire(ctx, "p")
		require.NoError(t, err)
		require.NoError(t, s2.Open(ctx))
		t.Cleanup(func() { _ = s2.Close(context.Background()) })
		return s2, h, nil
	}()
	err = s2.Write(ctx, &schema.Batch{Changes: []schema.Change{moneyRow(9, 3, "1.00", "z")}})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "does not exist")
}

// FuzzCopyEscape: an escaped field never contains a raw delimiter and unescapes
// to its input, so no value can shift COPY's columns or rows.
func FuzzCopyEscape(f *testing.F) {
	for _, s := range []string{"", "a\tb", "x\\ny", "\r\n\\\\", "héllo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendCopyEscapedString(nil, s)
		for _, b := range out {
			if b == '\t' || b == '\n' || b == '\r' {
				t.Fatalf("raw delimiter in %q", out)
			}
		}
		var back []byte
		for i := 0; i < len(out); i++ {
			if out[i] != '\\' {
				back = append(back, out[i])
				continue
			}
			i++
			back = append(back, map[byte]byte{'\\': '\\', 'n': '\n', 'r': '\r', 't': '\t'}[out[i]])
		}
		if string(back) != s {
			t.Fatalf("%q → %q → %q", s, out, back)
		}
	})
}

func TestCheckNamesMissingPrivilege(t *testing.T) {
	t.Parallel()
	h := newHarness("auto")(t).(*harness)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE ROLE reader LOGIN; CREATE SCHEMA ro; REVOKE CREATE ON DATABASE dest FROM PUBLIC")
	require.NoError(t, err)
	ok := New(Config{DSN: h.dsn, Schema: "ro"}.WithDefaults(), sinks.Deps{})
	require.NoError(t, ok.Check(ctx))
	dsn := strings.Replace(h.dsn, "postgres://postgres@", "postgres://reader@", 1)
	err = New(Config{DSN: dsn, Schema: "ro"}.WithDefaults(), sinks.Deps{}).Check(ctx)
	require.ErrorContains(t, err, `role "reader" cannot create tables in schema "ro"`)
	require.ErrorContains(t, err, "GRANT CREATE ON SCHEMA")
	err = New(Config{DSN: dsn, Schema: "brand_new"}.WithDefaults(), sinks.Deps{}).Check(ctx)
	require.ErrorContains(t, err, "cannot create")
}

func TestOptionalMetadataAndNaming(t *testing.T) {
	t.Parallel()
	s, h, _ := openSink(t, func(c *Config) {
		c.IncludeOp, c.IncludeSourceTS, c.TableName, c.MetadataPrefix = true, true, "{namespace}_{table}", "meta_"
	})
	ctx := context.Background()
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	ins := moneyRow(1, 1, "1.00", "a")
	ins.CommitTS = time.Date(2025, 5, 6, 7, 8, 9, 123456000, time.UTC)
	del := schema.Change{Op: schema.OpDelete, Table: money.ID, Version: 1, Pos: offsets.AppendUint(nil, 2), Key: ins.Key, CommitTS: ins.CommitTS.Add(time.Second)}
	second := moneyRow(3, 2, "2.00", "b")
	second.CommitTS = ins.CommitTS
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{ins, second}}))
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{del}}))
	conn, err := pgx.Connect(ctx, h.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, meta_op, meta_source_ts, meta_deleted FROM dest.public_money ORDER BY id`)
	require.NoError(t, err)
	type got struct {
		id      int64
		op      string
		ts      time.Time
		deleted bool
	}
	var all []got
	for rows.Next() {
		var g got
		require.NoError(t, rows.Scan(&g.id, &g.op, &g.ts, &g.deleted))
		all = append(all, g)
	}
	require.NoError(t, rows.Err())
	require.Len(t, all, 2)
	require.Equal(t, "d", all[0].op)
	require.True(t, all[0].deleted)
	require.True(t, all[0].ts.Equal(del.CommitTS), "%v", all[0].ts)
	require.Equal(t, "c", all[1].op)
	require.False(t, all[1].deleted)
}

// TestSharedSettingsDecode: the settings every sink shares decode inline, and
// unknown keys are still refused.
func TestSharedSettingsDecode(t *testing.T) {
	t.Parallel()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("dsn: postgres://h/db\ndelete_mode: hard\ntable_name: \"{namespace}_{table}\"\ninclude_op: true\n"), &n))
	var c Config
	require.NoError(t, component.Decode(&n, &c))
	require.Equal(t, "hard", c.DeleteMode)
	require.True(t, c.IncludeOp)
	require.Equal(t, "app_t", c.DestName(schema.TableID{Namespace: "app", Name: "t"}))
	require.NoError(t, yaml.Unmarshal([]byte("dsn: postgres://h/db\ndelete_mod: hard\n"), &n))
	require.ErrorContains(t, component.Decode(&n, &c), "delete_mod")
}

// TestPlanDDL: what a held schema change shows is what Apply would run here,
// under the destination name, and planning changes nothing.
func TestPlanDDL(t *testing.T) {
	t.Parallel()
	s, _, _ := openSink(t, nil)
	ctx := context.Background()
	// a table not there yet: its creation
	stmts, err := s.PlanDDL(ctx, schema.Delta{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}})
	require.NoError(t, err)
	require.Len(t, stmts, 1)
	require.Contains(t, stmts[0], `CREATE TABLE IF NOT EXISTS "dest"."money"`)
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: money, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))

	v2 := money.Clone()
	v2.Version = 2
	old := v2.Columns[2]
	v2.Columns[2].Name = "memo"
	v2.Columns = append(v2.Columns, schema.Column{Name: "extra", Type: schema.Type{Kind: schema.KindInt, Name: "int4"}, Nullable: true})
	d := schema.Delta{Table: v2, From: 1, Changes: []schema.ColumnChange{{Op: schema.RenameColumn, Column: v2.Columns[2], Old: &old}, {Op: schema.AddColumn, Column: v2.Columns[3]}}}
	stmts, err = s.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.Equal(t, []string{`ALTER TABLE "dest"."money" ADD COLUMN IF NOT EXISTS "extra" integer`, `ALTER TABLE "dest"."money" RENAME COLUMN "note" TO "memo"`}, stmts)
	again, err := s.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.Equal(t, stmts, again, "planning changed nothing")
}
