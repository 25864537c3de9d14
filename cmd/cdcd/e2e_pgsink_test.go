package main_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// envInt reads a size from the environment (long runs raise it).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestPostgresToPostgresSurvivesKills replicates a table of CDCD_PG2PG_ROWS rows
// (snapshot) and CDCD_PG2PG_CHANGES further changes (inserts, updates, deletes in
// transactions of up to 1,000 rows) from one private Postgres into another, with
// cdcd SIGKILLed at random points throughout. The destination must equal the
// source row for row, and the offset stored at the destination (written in the
// same transactions as the data) must be what the source's slot confirmed.
//
// CI runs 200,000 + 260,000; `scripts/test-long` runs the acceptance size,
// 1,000,000 + 1,300,000.
func TestPostgresToPostgresSurvivesKills(t *testing.T) {
	t.Parallel()
	rows := envInt("CDCD_PG2PG_ROWS", 200_000)
	changes := envInt("CDCD_PG2PG_CHANGES", rows*13/10)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rows, %d changes", seed, rows, changes)
	rng := rand.New(rand.NewPCG(seed, 7))

	src := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	dst := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	srcDSN := src.CreateDatabase(t, "app")
	dstDSN := dst.CreateDatabase(t, "warehouse")
	ctx := context.Background()
	sp, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer sp.Close()
	dp, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dp.Close()
	_, err = sp.Exec(ctx, `CREATE TABLE acct (id int8 PRIMARY KEY, note text, v int8, amount numeric(12,2), at timestamptz, tags text[], doc jsonb)`)
	require.NoError(t, err)
	_, err = sp.Exec(ctx, `INSERT INTO acct SELECT g, 'note ' || g, g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 second',
			ARRAY['t' || (g % 7), NULL], jsonb_build_object('g', g)
		FROM generate_series(1, $1) g`, rows)
	require.NoError(t, err)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "pg2pg.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: pg2pg
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 20000, heartbeat_interval: 1s, status_interval: 200ms}
    sink:
      type: postgres
      config: {dsn: %q, schema: replica}
    batch: {max_changes: 20000, max_wait: 100ms}
`, srcDSN, dstDSN)), 0o644))
	data := filepath.Join(dir, "data")

	// the writer: changes in transactions of 1 to 1,000 rows, until the budget is spent
	writerDone := make(chan error, 1)
	go func() {
		wr := rand.New(rand.NewPCG(seed, 8))
		next, done := int64(rows+1), 0
		for done < changes {
			n := 1 + wr.IntN(1000)
			lo := 1 + wr.Int64N(int64(rows))
			var q string
			var args []any
			switch wr.IntN(5) {
			case 0:
				q, args = `INSERT INTO acct SELECT g, 'ins', 0, g / 3.0, now(), ARRAY['new'], '{"new": true}' FROM generate_series($1::int8, $2::int8) g`, []any{next, next + int64(n) - 1}
				next += int64(n)
			case 1, 2:
				q, args = `UPDATE acct SET v = v + 1, note = note || '+', amount = amount + 0.01, doc = doc || '{"u": 1}' WHERE id BETWEEN $1 AND $2`, []any{lo, lo + int64(n) - 1}
			case 3:
				q, args = `DELETE FROM acct WHERE id BETWEEN $1 AND $2`, []any{lo, lo + int64(n/4)}
			case 4:
				// a key update moves a row: the old key is deleted at the destination
				q, args = `UPDATE acct SET id = id + 1000000000 WHERE id BETWEEN $1 AND $2 AND id < 1000000000`, []any{lo, lo + 9}
			}
			tag, err := sp.Exec(ctx, q, args...)
			if err != nil {
				writerDone <- err
				return
			}
			done += int(max(tag.RowsAffected(), 1))
		}
		writerDone <- nil
	}()

	var log syncBuffer
	defer func() {
		if t.Failed() {
			l := log.String()
			t.Logf("cdcd log (last 6000 bytes):\n%s", l[max(0, len(l)-6000):])
		}
	}()
	kills := 0
	for writing := true; writing || kills < 6; kills++ {
		cmd := startRun(t, cfg, data, &log)
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		select {
		case err := <-writerDone:
			require.NoError(t, err)
			writing = false
		default:
		}
	}
	cmd := startRun(t, cfg, data, &log)

	// equal row for row: compare per-row hashes of the rows' text forms
	rowHashes := func(pool *pgxpool.Pool, from string) map[int64]string {
		rs, err := pool.Query(ctx, `SELECT id, md5(concat_ws('|', note, v, amount, at, tags::text, doc::text)) FROM `+from)
		require.NoError(t, err)
		defer rs.Close()
		out := map[int64]string{}
		for rs.Next() {
			var id int64
			var h string
			require.NoError(t, rs.Scan(&id, &h))
			out[id] = h
		}
		require.NoError(t, rs.Err())
		return out
	}
	want := rowHashes(sp, "acct")
	var got map[int64]string
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got = rowHashes(dp, "replica.acct WHERE NOT _cdc_deleted")
		if len(got) == len(want) {
			same := true
			for id, h := range want {
				if got[id] != h {
					same = false
					break
				}
			}
			if same {
				break
			}
		}
		if time.Now().After(deadline) {
			missing, stale, extra := 0, 0, 0
			for id, h := range want {
				if g, ok := got[id]; !ok {
					missing++
				} else if g != h {
					stale++
				}
			}
			for id := range got {
				if _, ok := want[id]; !ok {
					extra++
				}
			}
			t.Fatalf("destination never equal to source: %d missing, %d stale, %d extra (of %d)", missing, stale, extra, len(want))
		}
		time.Sleep(500 * time.Millisecond)
	}

	// the offset stored with the data is the position the source's slot confirmed
	require.Eventually(t, func() bool {
		var pos []byte
		if err := dp.QueryRow(ctx, `SELECT position FROM replica._cdc_offsets WHERE pipeline = 'pg2pg'`).Scan(&pos); err != nil {
			return false
		}
		d := offsets.NewDecoder(pos)
		if d.Uint() != 1 {
			return false // still a snapshot position
		}
		d.Uint()
		if d.Uint() != math.MaxUint64 {
			return false
		}
		end := pglogrepl.LSN(d.Uint())
		var confirmed string
		if err := sp.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdcd_pg2pg'`).Scan(&confirmed); err != nil {
			return false
		}
		c, err := pglogrepl.ParseLSN(confirmed)
		return err == nil && c == end
	}, time.Minute, 200*time.Millisecond, "the slot never confirmed the offset stored at the destination")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", log.String())
	t.Logf("%d SIGKILLs of cdcd; %d rows at the destination equal the source", kills, len(want))
}
