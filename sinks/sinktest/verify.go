package sinktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/verify"
	"github.com/cdcd-dev/cdcd/verify/pgverify"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testVerify: a sink that can be verified (verify.Opener) holds, after writing
// them, rows of every kind verify compares that compare equal with the same
// rows in a Postgres source table: no false difference from how its types and
// its dialect render a value. Then a row deleted (soft or hard), one changed
// and one added through the sink are found exactly, by bisection.
func testVerify(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h, Options{})
	opener, ok := s.s.(verify.Opener)
	if !ok {
		t.Skip("the sink cannot be verified")
	}
	dsn := testenv.StartPostgres(t).CreateDatabase(t, "verify")
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE src (id bigint PRIMARY KEY, b boolean, d numeric(12,2), n numeric, t text, by bytea, ts timestamptz, dt timestamp, day date, u uuid);
		INSERT INTO src SELECT g, g % 2 = 0, g / 4.0, g * 1000.5, 'row ' || g || ' 😀 | ''q''', decode(lpad(to_hex(g), 6, '0'), 'hex'),
			'2024-01-02 03:04:05.123456+00'::timestamptz + g * interval '1 second', '1999-12-31 23:59:59.5'::timestamp + g * interval '1 ms',
			'2024-02-29'::date + g, ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid
		FROM generate_series(1, 2000) g;
		INSERT INTO src (id) VALUES (0)`)
	require.NoError(t, err)
	tbl := schema.Table{ID: schema.TableID{Namespace: "public", Name: "src"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
		{Name: "b", Type: schema.Type{Kind: schema.KindBool, Name: "bool"}, Nullable: true},
		{Name: "d", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true},
		{Name: "n", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, Nullable: true},
		{Name: "t", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
		{Name: "by", Type: schema.Type{Kind: schema.KindBytes, Name: "bytea"}, Nullable: true},
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, Nullable: true},
		{Name: "dt", Type: schema.Type{Kind: schema.KindDateTime, Name: "timestamp"}, Nullable: true},
		{Name: "day", Type: schema.Type{Kind: schema.KindDate, Name: "date"}, Nullable: true},
		{Name: "u", Type: schema.Type{Kind: schema.KindString, Name: "uuid"}, Nullable: true},
	}}

	s.apply(createDelta(tbl))
	rows, err := conn.Query(ctx, `SELECT id, b, d::text, n::text, t, by, ts, dt, day, u::text FROM src ORDER BY id`)
	require.NoError(t, err)
	var g gen
	var b schema.Batch
	for rows.Next() {
		var id int64
		var bo *bool
		var d, num, tx, u *string
		var by []byte
		var ts, dt, day *time.Time
		require.NoError(t, rows.Scan(&id, &bo, &d, &num, &tx, &by, &ts, &dt, &day, &u))
		row := schema.Row{{Name: "id", Value: schema.Int(id)}}
		add := func(name string, ok bool, v func() schema.Value) {
			val := schema.Null()
			if ok {
				val = v()
			}
			row = append(row, schema.Field{Name: name, Value: val})
		}
		decimal := func(s string) schema.Value {
			v, err := schema.Decimal(s)
			require.NoError(t, err)
			return v
		}
		add("b", bo != nil, func() schema.Value { return schema.Bool(*bo) })
		add("d", d != nil, func() schema.Value { return decimal(*d) })
		add("n", num != nil, func() schema.Value { return decimal(*num) })
		add("t", tx != nil, func() schema.Value { return schema.String(*tx) })
		add("by", by != nil, func() schema.Value { return schema.Bytes(by) })
		add("ts", ts != nil, func() schema.Value { return schema.Timestamp(*ts) })
		add("dt", dt != nil, func() schema.Value { return schema.DateTime(*dt) })
		add("day", day != nil, func() schema.Value { return schema.Date(day.Year(), day.Month(), day.Day()) })
		add("u", u != nil, func() schema.Value { return schema.String(*u) })
		b.Changes = append(b.Changes, schema.Change{Op: schema.OpSnapshot, Table: tbl.ID, Version: 1, Pos: g.pos(), After: row,
			Key: schema.Row{{Name: "id", Value: schema.Int(id)}}})
	}
	require.NoError(t, rows.Err())
	b.Checkpoint = b.Changes[len(b.Changes)-1].Pos
	s.write(&b)

	plan, err := verify.Plan(tbl)
	require.NoError(t, err)
	require.Empty(t, plan.NotCompared)
	src, err := pgverify.Open(ctx, dsn, func(*verify.Table) (string, string, error) { return "src", "", nil })
	require.NoError(t, err)
	defer src.Close()
	dst, err := opener.OpenVerify(ctx)
	if errors.Is(err, verify.ErrUnsupported) {
		t.Skipf("this destination cannot be verified: %v", err)
	}
	require.NoError(t, err)
	defer dst.Close()
	res := verify.Compare(ctx, src, dst, plan, verify.Options{LeafRows: 100})
	require.Equal(t, verify.StatusEqual, res.Status, "%+v", res)
	require.Equal(t, 1, res.Ranges, "an equal table is one checksum per side")

	// behind the pipeline's back: id 5 deleted, 6 changed, 3000 added
	change := func(op schema.Op, id int64, tx string) schema.Change {
		c := schema.Change{Op: op, Table: tbl.ID, Version: 1, Pos: g.pos(), Key: schema.Row{{Name: "id", Value: schema.Int(id)}}}
		if op != schema.OpDelete {
			c.After = schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "t", Value: schema.String(tx)}}
		}
		return c
	}
	b = schema.Batch{Changes: []schema.Change{change(schema.OpDelete, 5, ""), change(schema.OpInsert, 6, "changed"), change(schema.OpInsert, 3000, "extra")}}
	b.Checkpoint = b.Changes[2].Pos
	s.write(&b)
	res = verify.Compare(ctx, src, dst, plan, verify.Options{LeafRows: 100})
	require.Equal(t, verify.StatusDifferent, res.Status, "%+v", res)
	require.Equal(t, &verify.Samples{Missing: []verify.Key{{"5"}}, Extra: []verify.Key{{"3000"}}, Different: []verify.Key{{"6"}}}, res.Samples)
	require.Greater(t, res.Ranges, 1)
}
