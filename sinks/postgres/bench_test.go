package postgres

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/jackc/pgx/v5"
)

var benchTable = schema.Table{ID: schema.TableID{Namespace: "public", Name: "orders"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
	{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
	{Name: "customer", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true},
	{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true},
	{Name: "status", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	{Name: "note", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	{Name: "created", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, Nullable: true},
}}

func benchChanges(n int, op schema.Op, first uint64) []schema.Change {
	out := make([]schema.Change, n)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		r := schema.Row{
			{Name: "id", Value: schema.Int(int64(i + 1))},
			{Name: "customer", Value: schema.Int(int64(i % 5000))},
			{Name: "amount", Value: schema.MustDecimal(fmt.Sprintf("%d.%02d", i%100000, i%100))},
			{Name: "status", Value: schema.String("shipped")},
			{Name: "note", Value: schema.String("a note of about sixty-four bytes, typical of an order row....")},
			{Name: "created", Value: schema.Timestamp(base.Add(time.Duration(i) * time.Second))},
		}
		out[i] = schema.Change{Op: op, Table: benchTable.ID, Version: 1, Pos: offsets.AppendUint(nil, first+uint64(i)), Key: r[:1], After: r}
	}
	return out
}

// BenchmarkSinkVsCopy writes N rows through the sink (inserts into an empty
// table, then updates of every row) and COPYs the same rows, in the same text
// encoding, into an identical table with a primary key: the physical limit of
// loading this data into this server. Reported: rows/s and MB/s of each, and
// the sink's ratio to COPY.
//
//	go test -run XXX -bench SinkVsCopy -benchtime 3x ./sinks/postgres
func BenchmarkSinkVsCopy(b *testing.B) {
	const rows, batchSize = 200_000, 20_000
	pg := testenv.StartPostgres(b)
	dsn := pg.CreateDatabase(b, "bench")
	ctx := context.Background()
	inserts := benchChanges(rows, schema.OpInsert, 1)
	updates := benchChanges(rows, schema.OpUpdate, rows+1)

	// the COPY payload, encoded the way the sink encodes rows
	var payload bytes.Buffer
	for i := range inserts {
		for j, f := range inserts[i].After {
			if j > 0 {
				payload.WriteByte('\t')
			}
			payload.Write(appendCopyText(nil, f.Value))
		}
		payload.WriteByte('\n')
	}
	mb := float64(payload.Len()) / 1e6

	var copyDur, insDur, updDur time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		tbl := fmt.Sprintf("copy_%d", i)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (id int8 PRIMARY KEY, customer int8, amount numeric(12,2), status text, note text, created timestamptz)`, tbl)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(payload.Bytes()), "COPY "+tbl+" FROM STDIN"); err != nil {
			b.Fatal(err)
		}
		copyDur += time.Since(start)
		b.StopTimer()
		conn.Close(ctx)

		c := Config{DSN: dsn, Schema: fmt.Sprintf("sink_%d", i)}.WithDefaults()
		s := New(c, sinks.Deps{Pipeline: "bench"})
		if _, err := s.Acquire(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		if err := s.Open(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Apply(ctx, []schema.Delta{{Table: benchTable, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}); err != nil {
			b.Fatal(err)
		}
		write := func(cs []schema.Change) time.Duration {
			b.StartTimer()
			start := time.Now()
			for lo := 0; lo < len(cs); lo += batchSize {
				part := cs[lo:min(lo+batchSize, len(cs))]
				if err := s.Write(ctx, &schema.Batch{Changes: part, Checkpoint: part[len(part)-1].Pos}); err != nil {
					b.Fatal(err)
				}
			}
			d := time.Since(start)
			b.StopTimer()
			return d
		}
		insDur += write(inserts)
		updDur += write(updates)
		_ = s.Close(ctx)
	}
	n := float64(b.N)
	copyRate := rows * n / copyDur.Seconds()
	insRate := rows * n / insDur.Seconds()
	updRate := rows * n / updDur.Seconds()
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(mb*n/copyDur.Seconds(), "copy_MB/s")
	b.ReportMetric(insRate, "sink_insert_rows/s")
	b.ReportMetric(updRate, "sink_update_rows/s")
	b.ReportMetric(mb*n/insDur.Seconds(), "sink_insert_MB/s")
	b.ReportMetric(insRate/copyRate, "insert_ratio_to_copy")
	b.ReportMetric(updRate/copyRate, "update_ratio_to_copy")
	b.ReportMetric(0, "ns/op")
}
