package snowflake

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/verify"
	"github.com/cdcd-dev/cdcd/verify/pgverify"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestVerifyAgainstPostgres: rows written by the sink (on fakesnow) of
// several kinds compare equal with the same rows in Postgres; a row deleted,
// one added and one changed behind the pipeline's back are found exactly,
// with string keys cut into ranges byte-wise on both sides.
func TestVerifyAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.StartPostgres(t).CreateDatabase(t, "v")
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE src (k text PRIMARY KEY, v bigint, d numeric(12,2), b boolean, ts timestamptz, day date, by bytea);
		INSERT INTO src SELECT 'k' || g, g, g / 4.0, g % 3 = 0, '2024-01-02 03:04:05.123456+00'::timestamptz + g * interval '1 second',
			'2024-02-29'::date + g, decode(lpad(to_hex(g), 4, '0'), 'hex') FROM generate_series(1, 1500) g;
		INSERT INTO src (k, v) VALUES ('B', 0), ('a', 0), ('é', 0)`)
	require.NoError(t, err)
	tbl := schema.Table{ID: schema.TableID{Namespace: "public", Name: "src"}, Version: 1, PrimaryKey: []string{"k"}, Columns: []schema.Column{
		{Name: "k", Type: schema.Type{Kind: schema.KindString, Name: "text"}},
		{Name: "v", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true},
		{Name: "d", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true},
		{Name: "b", Type: schema.Type{Kind: schema.KindBool, Name: "bool"}, Nullable: true},
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, Nullable: true},
		{Name: "day", Type: schema.Type{Kind: schema.KindDate, Name: "date"}, Nullable: true},
		{Name: "by", Type: schema.Type{Kind: schema.KindBytes, Name: "bytea"}, Nullable: true},
	}}
	h := newHarness(t)
	s := h.NewSink(t, sinktest.Options{})
	if st, ok := s.(interface {
		Acquire(context.Context, string) (offsets.Epoch, error)
	}); ok {
		_, err := st.Acquire(ctx, "sinktest")
		require.NoError(t, err)
	}
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: tbl, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	var n uint64
	change := func(op schema.Op, k string, rest ...schema.Field) schema.Change {
		n++
		c := schema.Change{Op: op, Table: tbl.ID, Version: 1, Pos: offsets.AppendUint(nil, n), Key: schema.Row{{Name: "k", Value: schema.String(k)}}}
		if op != schema.OpDelete {
			c.After = append(schema.Row{{Name: "k", Value: schema.String(k)}}, rest...)
		}
		return c
	}
	rows, err := conn.Query(ctx, `SELECT k, v, d::text, b, ts, day, by FROM src`)
	require.NoError(t, err)
	var b schema.Batch
	for rows.Next() {
		var k string
		var v int64
		var d *string
		var bo *bool
		var ts, day *time.Time
		var by []byte
		require.NoError(t, rows.Scan(&k, &v, &d, &bo, &ts, &day, &by))
		f := []schema.Field{{Name: "v", Value: schema.Int(v)}}
		if d != nil {
			dv, err := schema.Decimal(*d)
			require.NoError(t, err)
			f = append(f, schema.Field{Name: "d", Value: dv}, schema.Field{Name: "b", Value: schema.Bool(*bo)},
				schema.Field{Name: "ts", Value: schema.Timestamp(*ts)}, schema.Field{Name: "day", Value: schema.Date(day.Year(), day.Month(), day.Day())},
				schema.Field{Name: "by", Value: schema.Bytes(by)})
		}
		b.Changes = append(b.Changes, change(schema.OpSnapshot, k, f...))
	}
	require.NoError(t, rows.Err())
	b.Checkpoint = b.Changes[len(b.Changes)-1].Pos
	require.NoError(t, s.Write(ctx, &b))

	plan, err := verify.Plan(tbl)
	require.NoError(t, err)
	src, err := pgverify.Open(ctx, dsn, func(*verify.Table) (string, string, error) { return "src", "", nil })
	require.NoError(t, err)
	defer src.Close()
	dst, err := s.(verify.Opener).OpenVerify(ctx)
	require.NoError(t, err)
	defer dst.Close()
	res := verify.Compare(ctx, src, dst, plan, verify.Options{LeafRows: 100})
	require.Equal(t, verify.StatusEqual, res.Status, "%+v", res)

	b = schema.Batch{Changes: []schema.Change{change(schema.OpDelete, "k777"), change(schema.OpInsert, "k9999", schema.Field{Name: "v", Value: schema.Int(1)}),
		change(schema.OpInsert, "k5", schema.Field{Name: "v", Value: schema.Int(55)})}}
	b.Checkpoint = b.Changes[2].Pos
	require.NoError(t, s.Write(ctx, &b))
	res = verify.Compare(ctx, src, dst, plan, verify.Options{LeafRows: 100})
	require.Equal(t, verify.StatusDifferent, res.Status, "%+v", res)
	require.Equal(t, []verify.Key{{"k777"}}, res.Samples.Missing)
	require.Equal(t, []verify.Key{{"k9999"}}, res.Samples.Extra)
	require.Equal(t, []verify.Key{{"k5"}}, res.Samples.Different)
	require.Greater(t, res.Ranges, 1)
}
