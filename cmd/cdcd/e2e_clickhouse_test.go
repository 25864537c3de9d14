package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestPostgresToClickHouseSurvivesKills runs the Postgres workload of the
// Postgres-sink test into Debian's ClickHouse 18.16 through the cdcd binary,
// SIGKILLing cdcd throughout; the current state (FINAL, without tombstones)
// must equal the source row for row. (The same workload on the current engine,
// chdb, runs in sinks/clickhouse: TestPostgresWorkloadOnCurrentEngine.)
func TestPostgresToClickHouseSurvivesKills(t *testing.T) {
	t.Parallel()
	w := startWorkload(t, "CDCD_PG2CH_ROWS", "CDCD_PG2CH_CHANGES", 100_000)
	ch := testenv.StartClickHouse(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pg2ch.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: pg2ch
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 20000, heartbeat_interval: 1s, status_interval: 200ms}
    sink:
      type: clickhouse
      config: {addr: [%q], database: replica}
    batch: {max_changes: 20000, max_wait: 100ms}
`, w.dsn, ch.Addr())), 0o644))
	var log syncBuffer
	defer func() {
		if t.Failed() {
			l := log.String()
			t.Logf("cdcd log (last 6000 bytes):\n%s", l[max(0, len(l)-6000):])
		}
	}()
	cmd, kills := w.runWithKills(t, cfg, filepath.Join(dir, "data"), &log)

	ctx := context.Background()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
	require.NoError(t, err)
	defer conn.Close()
	source := func() map[int64]string {
		out, err := testenv.AcctSource(ctx, w.pool)
		require.NoError(t, err)
		return out
	}
	dest := func() map[int64]string {
		rows, err := conn.Query(ctx, testenv.AcctClickHouseQuery("replica"))
		if err != nil {
			t.Logf("read ClickHouse: %v", err)
			return nil
		}
		defer rows.Close()
		out := map[int64]string{}
		for rows.Next() {
			r := make([]string, 7)
			require.NoError(t, rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]))
			id, row, err := testenv.AcctClickHouseRow(r)
			require.NoError(t, err)
			out[id] = row
		}
		require.NoError(t, rows.Err())
		return out
	}
	requireEventuallyEqual(t, source, dest)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", log.String())
	t.Logf("%d SIGKILLs of cdcd; %d rows in ClickHouse (FINAL) equal the source", kills, len(source()))
}
