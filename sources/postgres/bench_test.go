package postgres

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/require"
)

// BenchmarkReaderVsRecvlogical measures the stream reader alone (decode to
// schema.Change, batches acked as they come) against pg_recvlogical draining the
// same WAL with the same plugin and publication to /dev/null: the physical limit
// of logical decoding on this server. Each iteration writes a fresh workload of
// 200,000 changes (inserts and updates of ~200-byte rows in 200 transactions).
//
//	go test -run XXX -bench ReaderVsRecvlogical -benchtime 3x ./sources/postgres
func BenchmarkReaderVsRecvlogical(b *testing.B) {
	pg := testenv.StartPostgres(b)
	ctx := context.Background()
	dsn := pg.CreateDatabase(b, "bench")
	pool, err := openPool(ctx, dsn, 2)
	require.NoError(b, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE ev (id int8 PRIMARY KEY, kind text, amount numeric(12,2), at timestamptz, payload text)`)
	require.NoError(b, err)
	const txns, perTxn = 200, 500
	var readerTotal, recvTotal time.Duration
	run := 0
	for b.Loop() {
		run++
		slot := fmt.Sprintf("bench_%d", run)
		cfg := Config{DSN: dsn, Tables: []string{"public.ev"}, Slot: slot, Publication: "bench_pub", Snapshot: "never",
			HeartbeatInterval: "0s", StatusInterval: "1s", SlotPollInterval: "10s"}.WithDefaults("bench")
		require.NoError(b, cfg.Validate())
		// both slots before the workload; the reader opens only when it is timed
		var startText string
		require.NoError(b, pool.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, slot).Scan(&startText))
		startLSN, err := pglogrepl.ParseLSN(startText)
		require.NoError(b, err)
		_, err = pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot+"_recv")
		require.NoError(b, err)
		if run == 1 {
			_, err = pool.Exec(ctx, `CREATE PUBLICATION bench_pub FOR TABLE ev`)
			require.NoError(b, err)
		}

		base := (run - 1) * txns * perTxn
		for t := range txns {
			_, err := pool.Exec(ctx, `INSERT INTO ev SELECT g, 'kind' || (g % 7), g * 0.01, now(), repeat('p', 150)
				FROM generate_series($1::int8, $2::int8) g`, base+t*perTxn, base+t*perTxn+perTxn/2-1)
			require.NoError(b, err)
			_, err = pool.Exec(ctx, `UPDATE ev SET amount = amount + 1 WHERE id BETWEEN $1 AND $2`, base+t*perTxn, base+t*perTxn+perTxn/2-1)
			require.NoError(b, err)
		}
		var endText string
		require.NoError(b, pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endText))
		changes := txns * perTxn

		recvlogical := func() time.Duration {
			start := time.Now()
			cmd := exec.Command(pg.Bin("pg_recvlogical"), "-d", dsn, "-S", slot+"_recv", "--start", "-E", endText, "-f", "/dev/null",
				"-o", "proto_version=1", "-o", "publication_names=bench_pub", "--no-loop")
			out, err := cmd.CombinedOutput()
			require.NoError(b, err, "%s", out)
			return time.Since(start)
		}
		var src *Source
		n := 0
		readerRun := func() time.Duration {
			start := time.Now()
			src = New(cfg, sources.Deps{Pipeline: "bench", MaxChanges: 10_000, MaxWait: 50 * time.Millisecond})
			require.NoError(b, src.Open(ctx, streamCheckpoint(startLSN, startLSN)))
			for n < changes {
				batch, err := src.Read(ctx)
				require.NoError(b, err)
				n += len(batch.Changes)
				if batch.Checkpoint != nil {
					require.NoError(b, src.Ack(ctx, batch.Checkpoint))
				}
			}
			return time.Since(start)
		}
		// alternate the order so that neither always gets the warm cache
		var recv, reader time.Duration
		if run%2 == 1 {
			recv, reader = recvlogical(), readerRun()
		} else {
			reader, recv = readerRun(), recvlogical()
		}
		require.NoError(b, src.Close(ctx))
		_, err = pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot+"_recv")
		require.NoError(b, err)
		_, err = pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		require.NoError(b, err)
		require.Equal(b, changes, n)
		readerTotal += reader
		recvTotal += recv
		b.Logf("run %d: reader %v (%.0f changes/s), pg_recvlogical %v (%.0f changes/s), ratio %.2f",
			run, reader, float64(changes)/reader.Seconds(), recv, float64(changes)/recv.Seconds(), recv.Seconds()/reader.Seconds())
	}
	changes := float64(run * txns * perTxn)
	b.ReportMetric(changes/readerTotal.Seconds(), "reader_changes/s")
	b.ReportMetric(changes/recvTotal.Seconds(), "recvlogical_changes/s")
	b.ReportMetric(recvTotal.Seconds()/readerTotal.Seconds(), "ratio")
}

// BenchmarkCatalog10k measures what the wizard's table step asks of a source
// with 10,000 tables (100 schemas of 100, each table with 8 columns and a
// key): the first page, and a search for one table, through the public
// Catalog (columns, keys, replica identity and estimates included). The
// bound the UI needs is 200 ms a request.
//
//	go test -run XXX -bench Catalog10k ./sources/postgres
func BenchmarkCatalog10k(b *testing.B) {
	pg := testenv.StartPostgres(b)
	ctx := context.Background()
	dsn := pg.CreateDatabase(b, "catalog")
	pool, err := openPool(ctx, dsn, 2)
	require.NoError(b, err)
	defer pool.Close()
	for sc := range 100 { // a schema a transaction: 10,000 tables' locks exceed max_locks_per_transaction
		_, err = pool.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
			EXECUTE 'CREATE SCHEMA s%02d';
			FOR t IN 0..99 LOOP
				EXECUTE format('CREATE TABLE s%02d.t%%s (id int8 PRIMARY KEY, a text, b int4, c numeric(12,2), d timestamptz, e jsonb, f bool, g bytea)', lpad(t::text, 2, '0'));
			END LOOP; END $$`, sc, sc))
		require.NoError(b, err)
	}
	src := New(Config{DSN: dsn, Tables: []string{"s00.t00"}}.WithDefaults("bench"), sources.Deps{})
	sourcetest.BenchCatalog10k(b, src)
}

// BenchmarkOpen1000Tables: a pipeline of 1,000 tables (10 schemas of 100)
// opening, snapshot off: the checks, the catalog of every table, the
// publication and the slot. Reported: ms/open (the catalog reads are a
// constant number of queries, whatever the number of tables).
func BenchmarkOpen1000Tables(b *testing.B) {
	pg := testenv.StartPostgres(b)
	ctx := context.Background()
	dsn := pg.CreateDatabase(b, "startup")
	pool, err := openPool(ctx, dsn, 2)
	require.NoError(b, err)
	defer pool.Close()
	var tables []string
	for sc := range 10 {
		_, err = pool.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
			EXECUTE 'CREATE SCHEMA s%02d';
			FOR t IN 0..99 LOOP
				EXECUTE format('CREATE TABLE s%02d.t%%s (id int8 PRIMARY KEY, a text, b int4, c numeric(12,2), d timestamptz, e jsonb DEFAULT ''{}'')', lpad(t::text, 2, '0'));
			END LOOP; END $$`, sc, sc))
		require.NoError(b, err)
		for t := range 100 {
			tables = append(tables, fmt.Sprintf("s%02d.t%02d", sc, t))
		}
	}
	var opened time.Duration
	run := 0
	for b.Loop() {
		run++
		cfg := Config{DSN: dsn, Tables: tables, Slot: fmt.Sprintf("open_%d", run), Publication: fmt.Sprintf("open_pub_%d", run), Snapshot: "never",
			HeartbeatInterval: "0s", StatusInterval: "1s", SlotPollInterval: "10s"}.WithDefaults("bench")
		require.NoError(b, cfg.Validate())
		src := New(cfg, sources.Deps{})
		start := time.Now()
		require.NoError(b, src.Open(ctx, nil))
		opened += time.Since(start)
		require.NoError(b, src.Close(ctx))
		_, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, cfg.Slot)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(opened.Milliseconds())/float64(run), "ms/open")
}
