package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestVerify: verify of a 1,000,000-row table (CDCD_BENCH_ROWS) replicated
// into the Postgres sink, first equal, then with 10 rows changed at the
// destination: time and bytes moved with each database, next to the bytes and
// time of COPY (FORMAT binary) of the same table, what copying it out to
// compare would move at the least. Run with
//
//	CDCD_BENCH=1 go test -run TestVerify -v ./bench
func TestVerify(t *testing.T) {
	rows := testenv.EnvInt("CDCD_BENCH_ROWS", 1_000_000)
	ctx := context.Background()
	src := testenv.StartPostgres(t)
	dst := testenv.StartPostgres(t)
	srcDSN, dstDSN := src.CreateDatabase(t, "app"), dst.CreateDatabase(t, "wh")
	pool, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer pool.Close()
	dpool, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dpool.Close()
	require.NoError(t, testenv.FillAcct(ctx, pool, rows))
	_, err = pool.Exec(ctx, `VACUUM ANALYZE acct`)
	require.NoError(t, err)

	cw, copyTime := copyOut(t, ctx, pool)

	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"))
	defer srv.stop(t)
	srv.call(t, "PUT", "/api/v1/pipelines/bench_verify", map[string]any{"name": "bench_verify", "source": map[string]any{"type": "postgres",
		"config": map[string]any{"dsn": srcDSN, "tables": []string{"public.acct"}, "heartbeat_interval": "1s"}},
		"sink": sinkSpec("postgres", dir, dstDSN), "batch": map[string]any{"max_wait": "1s"}})
	srv.waitWritten(t, "bench_verify", rows, 30*time.Minute)

	verify := func(what string) map[string]any {
		start := time.Now()
		rep := srv.call(t, "POST", "/api/v1/pipelines/bench_verify/verify", map[string]any{})
		el := time.Since(start)
		tbl := rep["tables"].([]any)[0].(map[string]any)
		sb, db := rep["source_bytes"].(float64), rep["destination_bytes"].(float64)
		t.Logf("verify %s: %s in %.2fs (COPY of the table: %.2fs), %d ranges; moved %.1f kB with the source and %.1f kB with the destination (COPY of the table: %.1f MB, %.0fx more)",
			what, tbl["status"], el.Seconds(), copyTime.Seconds(), int(tbl["ranges"].(float64)), sb/1e3, db/1e3, float64(cw.n)/1e6, float64(cw.n)/max(sb, db))
		fmt.Printf("summary verify %s rows=%d seconds=%.2f copy_seconds=%.2f source_bytes=%.0f destination_bytes=%.0f copy_bytes=%d missing=%v extra=%v different=%v\n",
			what, rows, el.Seconds(), copyTime.Seconds(), sb, db, cw.n, tbl["missing"], tbl["extra"], tbl["different"])
		return tbl
	}
	tbl := verify("equal")
	require.Equal(t, "equal", tbl["status"])
	_, err = dpool.Exec(ctx, `UPDATE wh.acct SET v = v + 1 WHERE id IN (SELECT id FROM wh.acct ORDER BY random() LIMIT 10)`)
	require.NoError(t, err)
	tbl = verify("10 rows changed")
	require.Equal(t, "different", tbl["status"])
	require.EqualValues(t, 10, tbl["different"])
}
