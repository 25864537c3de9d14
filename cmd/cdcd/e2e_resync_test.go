package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// resyncRig is a source Postgres with tables acct and other, a destination
// Postgres, and a cdcd server running one pipeline between them, with a
// writer that inserts, updates and deletes rows of both tables until stopped.
type resyncRig struct {
	t        *testing.T
	src, dst *pgxpool.Pool
	srcPG    *testenv.Postgres
	env      []string
	server   *server
	dataDir  string
	srcDSN   string
	dstDSN   string
	stop     chan struct{}
	wg       sync.WaitGroup
	writes   map[string]int // per table, for the log
	mu       sync.Mutex
	// last says, per table and row, the last write's xid, WAL insert
	// position and time: the evidence when a row ends wrong
	last map[string]map[int64]string
}

func newResyncRig(t *testing.T, rows int) *resyncRig {
	t.Helper()
	ctx := context.Background()
	r := &resyncRig{t: t, stop: make(chan struct{}), writes: map[string]int{}, last: map[string]map[int64]string{}}
	r.srcPG = testenv.StartPostgres(t)
	srcDSN := r.srcPG.CreateDatabase(t, "app")
	dst := testenv.StartPostgres(t)
	dstDSN := dst.CreateDatabase(t, "wh")
	r.srcDSN, r.dstDSN = srcDSN, dstDSN
	var err error
	r.src, err = pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	t.Cleanup(r.src.Close)
	r.dst, err = pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	t.Cleanup(r.dst.Close)
	for _, tbl := range []string{"acct", "other"} {
		_, err = r.src.Exec(ctx, fmt.Sprintf(`CREATE TABLE %[1]s (id bigint PRIMARY KEY, owner text, balance bigint);
			INSERT INTO %[1]s SELECT g, 'o' || g, g FROM generate_series(1, %[2]d) g`, tbl, rows))
		require.NoError(t, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: rs
    source: {type: postgres, config: {dsn: %q, tables: [public.acct, public.other], snapshot_chunk_rows: 500, heartbeat_interval: 1s, status_interval: 200ms, slot_poll_interval: 1s}}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_changes: 2000, max_wait: 50ms}
    retry: {backoff: 100ms, max_backoff: 1s}
`, srcDSN, dstDSN)), 0o600))
	r.dataDir = filepath.Join(dir, "data")
	r.restart()
	t.Cleanup(func() {
		if t.Failed() {
			l := r.server.log.String()
			t.Logf("cdcd log (last 8000 bytes):\n%s", l[max(0, len(l)-8000):])
		}
	})
	cli(t, r.env, 0, "pipelines", "apply", "-f", cfg)
	r.waitEqual("acct")
	r.waitEqual("other")
	return r
}

// restart starts the cdcd server (again: stop it first) on the rig's data.
func (r *resyncRig) restart() {
	r.server = startServer(r.t, "--data-dir", r.dataDir)
	r.env = []string{"CDCD_SERVER=" + r.server.url}
}

// write starts the writer on the tables named.
func (r *resyncRig) write(tables ...string) {
	r.stop = make(chan struct{})
	for i, tbl := range tables {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			next := int64(1_000_000)
			for {
				select {
				case <-r.stop:
					return
				default:
				}
				id := rng.Int64N(int64(2000)) + 1
				var q string
				var args []any
				switch rng.IntN(4) {
				case 0:
					next++
					q, args = "INSERT INTO "+tbl+" VALUES ($1, 'new', $1)", []any{next}
				case 1:
					q, args = "DELETE FROM "+tbl+" WHERE id = $1", []any{id}
				default:
					q, args = "UPDATE "+tbl+" SET balance = balance + 1, owner = owner || '+' WHERE id = $1", []any{id}
				}
				var info string
				err := r.src.QueryRow(context.Background(), `WITH w AS (`+q+` RETURNING id) SELECT txid_current()::text || ' at ' || pg_current_wal_insert_lsn()::text || ' ' || clock_timestamp()::text FROM w`, args...).Scan(&info)
				if err != nil {
					if strings.Contains(err.Error(), "closed pool") {
						return
					}
					continue
				}
				r.mu.Lock()
				r.writes[tbl]++
				if r.last[tbl] == nil {
					r.last[tbl] = map[int64]string{}
				}
				r.last[tbl][args[0].(int64)] = q[:6] + " " + info
				r.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
}

func (r *resyncRig) stopWriting() {
	close(r.stop)
	r.wg.Wait()
	r.t.Logf("writes: %v", r.writes)
}

func (r *resyncRig) rows(pool *pgxpool.Pool, from string) map[int64]string {
	rs, err := pool.Query(context.Background(), `SELECT id, owner || '|' || balance FROM `+from)
	require.NoError(r.t, err)
	defer rs.Close()
	out := map[int64]string{}
	for rs.Next() {
		var id int64
		var v string
		require.NoError(r.t, rs.Scan(&id, &v))
		out[id] = v
	}
	require.NoError(r.t, rs.Err())
	return out
}

// waitEqual waits until the destination's live rows of tbl equal the source's.
func (r *resyncRig) waitEqual(tbl string) {
	r.t.Helper()
	defer func() {
		if !r.t.Failed() {
			return
		}
		// the evidence: the destination's rows the source does not have
		live := r.rows(r.src, tbl)
		rs, err := r.dst.Query(context.Background(), `SELECT id, owner, balance, encode(_cdc_version, 'hex'), _cdc_synced_at::text FROM replica.`+tbl+` WHERE NOT _cdc_deleted`)
		if err != nil {
			return
		}
		defer rs.Close()
		for rs.Next() {
			var id, bal int64
			var owner, v, at string
			if rs.Scan(&id, &owner, &bal, &v, &at) == nil {
				if want, ok := live[id]; !ok {
					r.t.Logf("%s: extra row %d (%s, %d) version %s synced %s", tbl, id, owner, bal, v, at)
				} else if want != fmt.Sprintf("%s|%d", owner, bal) {
					r.mu.Lock()
					w := r.last[tbl][id]
					r.mu.Unlock()
					r.t.Logf("%s: stale row %d (%s, %d; source %s) version %s synced %s; last write %s", tbl, id, owner, bal, want, v, at, w)
				}
			}
		}
	}()
	requireEventuallyEqual(r.t, func() map[int64]string { return r.rows(r.src, tbl) },
		func() map[int64]string {
			var n int
			if err := r.dst.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'replica' AND table_name = $1`, tbl).Scan(&n); err != nil || n == 0 {
				return nil
			}
			return r.rows(r.dst, "replica."+tbl+" WHERE NOT _cdc_deleted")
		})
}

// TestLostSlotResyncLeavesNoGhostRows: the replication slot is dropped under
// a running pipeline while a writer goes on, so the deletes made until the
// pipeline is resynced never reach the destination. The pipeline says
// needs_resync with the command that recovers it; `cdcd pipelines resync`
// reads every table again while the writer goes on, and the destination ends
// equal to the source: no ghost row of the deletes it never saw.
func TestLostSlotResyncLeavesNoGhostRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newResyncRig(t, 3000)
	r.write("acct", "other")

	// drop the slot under the running pipeline (its walsender is killed first;
	// the pipeline reconnects, so retry until the drop wins)
	require.Eventually(t, func() bool {
		_, _ = r.src.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdcd_rs' AND active_pid IS NOT NULL`)
		_, err := r.src.Exec(ctx, `SELECT pg_drop_replication_slot('cdcd_rs')`)
		return err == nil
	}, 30*time.Second, 5*time.Millisecond)
	var p pipelineStatus
	require.Eventually(t, func() bool { p = getPipeline(t, r.env, "rs"); return p.State == "needs_resync" }, 60*time.Second, 100*time.Millisecond)
	require.Contains(t, p.LastError, "cdcd pipelines resync rs", "the state says how to recover")
	// deletes (and the rest) the pipeline never sees
	time.Sleep(time.Second)
	ghosts := 0
	live := r.rows(r.src, "acct")
	for id := range r.rows(r.dst, "replica.acct WHERE NOT _cdc_deleted") {
		if _, ok := live[id]; !ok {
			ghosts++
		}
	}
	require.Positive(t, ghosts, "the destination holds rows the source deleted while the slot was gone")

	out := cli(t, r.env, 0, "pipelines", "resync", "rs")
	require.Contains(t, out, "resyncing from scratch")
	require.Contains(t, out, "public.acct, public.other")
	time.Sleep(2 * time.Second) // writes go on during the resync
	r.stopWriting()
	r.waitEqual("acct")
	r.waitEqual("other")
	require.Eventually(t, func() bool { return getPipeline(t, r.env, "rs").State == "streaming" }, 30*time.Second, 100*time.Millisecond)
	events := cli(t, r.env, 0, "pipelines", "events", "rs")
	require.Contains(t, events, "resync requested of the whole pipeline")
	require.Contains(t, events, "resync finished")
	t.Logf("%d ghost rows removed", ghosts)
}

// TestTableResyncWhileAnotherStreams: the destination of one table diverged
// behind cdcd's back (rows deleted, changed, and rows the source never had);
// a resync of that table alone, under writes to both tables, ends with both
// equal to the source, and the other table is not read again.
func TestTableResyncWhileAnotherStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newResyncRig(t, 3000)
	// the destination diverges: rows lost, rows changed, rows that never were
	for _, q := range []string{
		`DELETE FROM replica.acct WHERE id BETWEEN 100 AND 149`,
		`UPDATE replica.acct SET owner = 'tampered' WHERE id BETWEEN 200 AND 219`,
		`INSERT INTO replica.acct (id, owner, balance, _cdc_version, _cdc_deleted, _cdc_synced_at)
			SELECT -g, 'ghost', g, '\x00'::bytea, false, now() FROM generate_series(1, 30) g`,
	} {
		_, err := r.dst.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	r.write("acct", "other")
	out := cli(t, r.env, 0, "pipelines", "resync", "rs", "--tables", "public.acct")
	require.Contains(t, out, "resyncing public.acct while the other tables stream")
	require.Contains(t, cli(t, r.env, 2, "pipelines", "resync", "rs", "--tables", "public.acct,public.nope"), `tables[1]: pipeline "rs" does not replicate "public.nope"`)
	time.Sleep(2 * time.Second)
	r.stopWriting()
	r.waitEqual("acct")
	r.waitEqual("other")
	log := r.server.log.String()
	require.Contains(t, log, `resyncing the table while streaming: it is read again`)
	require.Equal(t, 1, strings.Count(log, "resyncing the table while streaming"), "only acct is read again")
}

// TestPauseResumeUnderWritesLosesNothing: a pipeline paused and resumed while
// a writer changes both tables ends equal to the source. It lost an update
// for good, 1 run in 6: a keepalive's checkpoint sorted at the position of the
// next transaction, whose changes the sink then skipped as written.
func TestPauseResumeUnderWritesLosesNothing(t *testing.T) {
	t.Parallel()
	r := newResyncRig(t, 3000)
	r.write("acct", "other")
	cli(t, r.env, 0, "pipelines", "pause", "rs")
	cli(t, r.env, 0, "pipelines", "resume", "rs")
	time.Sleep(2 * time.Second)
	r.stopWriting()
	r.waitEqual("acct")
	r.waitEqual("other")
}

// TestLostDestinationTableIsResynced: a destination table dropped, or
// truncated, behind cdcd's back while a writer runs is found at the next
// write and read again until equal, while the other table streams; dropped
// or truncated while cdcd is down, the pipeline's start finds it.
func TestLostDestinationTableIsResynced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ how, statement, says, filled string }{
		{"dropped", "DROP TABLE", "does not exist any more", "created again, and filled by the read"},
		{"truncated", "TRUNCATE", "was truncated at the destination behind cdcd's back", "filled again by the read of public.acct"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := newResyncRig(t, 3000)
			r.write("acct", "other")
			_, err := r.dst.Exec(ctx, tc.statement+" replica.acct")
			require.NoError(t, err)
			time.Sleep(2 * time.Second) // writes go on during the resync
			r.stopWriting()
			r.waitEqual("acct")
			r.waitEqual("other")
			events := cli(t, r.env, 0, "pipelines", "events", "rs")
			for _, want := range []string{tc.says, "resyncing public.acct", tc.filled, "resync finished"} {
				require.Contains(t, events, want)
			}
			require.Equal(t, 1, strings.Count(r.server.log.String(), "resyncing the table while streaming"), "only acct is read again")

			r.server.stop(t)
			_, err = r.dst.Exec(ctx, tc.statement+" replica.other")
			require.NoError(t, err)
			r.restart()
			r.write("acct", "other")
			time.Sleep(time.Second)
			r.stopWriting()
			r.waitEqual("acct")
			r.waitEqual("other")
			require.Eventually(t, func() bool { return getPipeline(t, r.env, "rs").State == "streaming" }, 30*time.Second, 100*time.Millisecond)
		})
	}
}
