package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestChaosPostgresToClickHouse runs the faults against Postgres → ClickHouse
// (Debian's 18.16 server, killed, frozen and cut off like the others) with the
// acct workload (text, bigint, numeric, timestamptz, text[] with NULLs, jsonb;
// inserts, updates, deletes and key moves in transactions of up to 1,000 rows),
// and compares the source with the destination's current rows (FINAL, no
// tombstones) after the documented normalisation (testenv.AcctRow).
func TestChaosPostgresToClickHouse(t *testing.T) {
	t.Parallel()
	c, seed, nFaults := newChaos(t, 7)
	c.snapLatency = 400
	ctx := context.Background()
	src, srcDSN := c.postgresSource(ctx)
	ch := testenv.StartClickHouse(t)
	c.dst = ch
	c.ddl = func(n int) []string {
		// a DEFAULT: see the DDL faults of TestChaosPostgresToPostgres
		return []string{fmt.Sprintf(`ALTER TABLE acct ADD COLUMN extra_%d int4 DEFAULT %d`, n, -n), fmt.Sprintf(`UPDATE acct SET v = v + 1, extra_%d = 1 WHERE id %% 97 = 0`, n)}
	}
	rows := testenv.EnvInt("CDCD_CHAOS_ROWS", 30_000)
	c.snapRows = rows
	require.NoError(t, testenv.FillAcct(ctx, c.srcPool, rows))

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}, DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer conn.Close()
	count := func(q string) int {
		var n uint64
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := conn.QueryRow(qctx, q).Scan(&n); err != nil {
			return 0
		}
		return int(n)
	}
	c.dstRows = func() int { return count(`SELECT count() FROM replica.acct`) }
	c.dstBusy = func() bool {
		return count(`SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO%replica%'`) > 0
	}

	c.srcProxy = testenv.NewFaultProxy(t, src.Addr())
	c.dstProxy = testenv.NewFaultProxy(t, ch.Addr())
	dir := t.TempDir()
	c.cfg, c.data = filepath.Join(dir, "chaos.yaml"), filepath.Join(dir, "data")
	srcViaProxy := strings.Replace(srcDSN, srcDSN[strings.Index(srcDSN, "@")+1:strings.LastIndex(srcDSN, "/")], c.srcProxy.Addr(), 1)
	require.NoError(t, os.WriteFile(c.cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: chaos
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 2000, heartbeat_interval: 1s, status_interval: 500ms}
    sink: {type: clickhouse, config: {addr: [%q], database: replica}}
    batch: {max_changes: 5000, max_wait: 100ms}
`, srcViaProxy, c.dstProxy.Addr())), 0o644))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d; cdcd log (tail):\n%s", seed, c.log.Tail(8000))
			c.saveLog(seed)
		}
	}()

	var txns, fails atomic.Int64
	wrng := rand.New(rand.NewPCG(seed, 17))
	aw := testenv.AcctWriter{Rows: rows, Next: int64(rows + 1)}
	write := func(ctx context.Context) error {
		for ctx.Err() == nil {
			if err := aw.Write(ctx, c.srcPool, wrng, 300); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				fails.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			txns.Add(1)
			time.Sleep(50 * time.Millisecond) // ~6,000 changes/s: the oracle reads the whole table at the end
		}
		return nil
	}
	c.run(nFaults, write, func() string {
		return fmt.Sprintf("%d bursts of ~300 row changes committed, %d failed under faults", txns.Load(), fails.Load())
	})
	asStrings := func(m map[int64]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[strconv.FormatInt(k, 10)] = v
		}
		return out
	}
	c.requireEqual("acct", 6,
		func() (map[string]string, error) {
			m, err := testenv.AcctSource(ctx, c.srcPool)
			return asStrings(m), err
		},
		func() (map[string]string, error) {
			rs, err := conn.Query(ctx, testenv.AcctClickHouseQuery("replica"))
			if err != nil {
				return nil, err
			}
			defer rs.Close()
			out := map[int64]string{}
			for rs.Next() {
				r := make([]string, 7)
				if err := rs.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]); err != nil {
					return nil, err
				}
				id, row, err := testenv.AcctClickHouseRow(r)
				if err != nil {
					return nil, err
				}
				out[id] = row
			}
			return asStrings(out), rs.Err()
		})
	c.finish()
}
