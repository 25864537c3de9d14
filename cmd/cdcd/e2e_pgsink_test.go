package main_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

var envInt = testenv.EnvInt

// workload is a source Postgres with the acct table of a snapshot's worth of
// rows, and a writer that then makes a budget of changes in transactions of 1 to
// 1,000 rows (inserts, updates, deletes, key updates).
type workload struct {
	src   *testenv.Postgres
	dsn   string
	pool  *pgxpool.Pool
	done  chan error // the writer's result
	rng   *rand.Rand
	rows  int
	total int
}

func startWorkload(t *testing.T, rowsEnv, changesEnv string, defRows int) *workload {
	rows := envInt(rowsEnv, defRows)
	changes := envInt(changesEnv, rows*13/10)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rows, %d changes", seed, rows, changes)
	w := &workload{rng: rand.New(rand.NewPCG(seed, 7)), rows: rows, total: changes, done: make(chan error, 1)}
	w.src = testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	w.dsn = w.src.CreateDatabase(t, "app")
	ctx := context.Background()
	var err error
	w.pool, err = pgxpool.New(ctx, w.dsn)
	require.NoError(t, err)
	t.Cleanup(w.pool.Close)
	require.NoError(t, testenv.FillAcct(ctx, w.pool, rows))
	return w
}

// write runs the writer in the background.
func (w *workload) write() {
	rng := rand.New(rand.NewPCG(w.rng.Uint64(), 8))
	go func() { w.done <- testenv.WriteAcct(context.Background(), w.pool, rng, w.rows, w.total) }()
}

// runWithKills runs `cdcd run -f cfg` while the writer writes, SIGKILLing it at
// random points (at least 6 times), and returns the last, running, process.
func (w *workload) runWithKills(t *testing.T, cfg, data string, log *syncBuffer) (*exec.Cmd, int) {
	w.write()
	kills := 0
	for writing := true; writing || kills < 6; kills++ {
		cmd := startRun(t, cfg, data, log)
		time.Sleep(time.Duration(500+w.rng.IntN(2500)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		select {
		case err := <-w.done:
			require.NoError(t, err)
			writing = false
		default:
		}
	}
	return startRun(t, cfg, data, log), kills
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
	w := startWorkload(t, "CDCD_PG2PG_ROWS", "CDCD_PG2PG_CHANGES", 200_000)
	sp, srcDSN := w.pool, w.dsn
	dst := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	dstDSN := dst.CreateDatabase(t, "warehouse")
	ctx := context.Background()
	dp, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dp.Close()

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
	var log syncBuffer
	defer func() {
		if t.Failed() {
			l := log.String()
			t.Logf("cdcd log (last 6000 bytes):\n%s", l[max(0, len(l)-6000):])
		}
	}()
	cmd, kills := w.runWithKills(t, cfg, filepath.Join(dir, "data"), &log)

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
	requireEventuallyEqual(t, func() map[int64]string { return rowHashes(sp, "acct") },
		func() map[int64]string { return rowHashes(dp, "replica.acct WHERE NOT _cdc_deleted") })
	want := rowHashes(sp, "acct")

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

// requireEventuallyEqual waits up to 5 minutes for got() to equal want() (rows
// by id) and reports missing, stale and extra rows if it never does.
func requireEventuallyEqual(t *testing.T, want, got func() map[int64]string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		w, g := want(), got()
		if len(w) == len(g) {
			same := true
			for id, h := range w {
				if g[id] != h {
					same = false
					break
				}
			}
			if same {
				return
			}
		}
		if time.Now().After(deadline) {
			missing, stale, extra := 0, 0, 0
			for id, h := range w {
				if x, ok := g[id]; !ok {
					missing++
				} else if x != h {
					stale++
					if stale <= 3 {
						t.Logf("row %d: source %s, destination %s", id, h, x)
					}
				}
			}
			for id, x := range g {
				if _, ok := w[id]; !ok {
					extra++
					if extra <= 3 {
						t.Logf("row %d: not at the source, destination %s", id, x)
					}
				}
			}
			t.Fatalf("destination never equal to source: %d missing, %d stale, %d extra (of %d)", missing, stale, extra, len(w))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
