package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { sourcetest.VerifyTestMain(m) }

func startPG(t *testing.T) *testenv.Postgres {
	t.Helper()
	return testenv.StartPostgres(t)
}

const ordersDDL = `
CREATE TABLE orders (id int8 PRIMARY KEY, note text, amount numeric(12,2), ts timestamptz, doc jsonb, big text);
INSERT INTO orders SELECT g, 'row ' || g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 minute',
  jsonb_build_object('g', g), CASE WHEN g % 100 = 0 THEN repeat('x', 10000) END FROM generate_series(1, 3000) g;`

// TestSnapshotThenStream: a snapshot in parallel chunks while writes go on, then
// the stream; the sink ends equal to the source and the slot is never confirmed
// past the committed offset.
func TestSnapshotThenStream(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, ordersDDL)
	cfg := h.config("public.orders")
	stop, r := h.start(cfg)
	defer stop()
	// the slot (and so the snapshot's consistent point) exists once the runner runs
	require.Eventually(t, r.Streaming, 30*time.Second, time.Millisecond)

	var violations atomic.Int32
	pollDone := make(chan struct{})
	stopPoll := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// read the slot first: confirmed <= committed holds at every instant
			// and the offset only grows, so the offset read after it is at least
			// as far (read the other way round, a commit and ack in between
			// would look like a violation)
			confirmed := h.slotConfirmed(cfg.Slot)
			if committed := h.committedLSN(); committed != 0 && confirmed > committed {
				violations.Add(1)
			}
		}
	}()

	// writes during the snapshot, then more
	for i := range 50 {
		h.exec(`UPDATE orders SET note = note || '!' WHERE id = $1`, i*37+1)
		h.exec(`DELETE FROM orders WHERE id = $1`, i*53+2)
		h.exec(`INSERT INTO orders (id, note, amount) VALUES ($1, 'new', 1.5)`, 10_000+i)
	}
	h.exec(`UPDATE orders SET amount = amount + 1 WHERE id % 7 = 0`) // one large transaction
	h.exec(`UPDATE orders SET note = 'toast kept' WHERE id = 100`)   // big (TOASTed) column unchanged
	h.waitSynced("public.orders", "id")
	require.False(t, r.Snapshotting())
	p := r.Progress()
	require.NotNil(t, p.Source)
	require.Len(t, p.Source.Tables, 1)
	require.True(t, p.Source.Tables[0].Done)
	require.Equal(t, int64(3000), p.Source.Tables[0].RowsDone)

	close(stopPoll)
	<-pollDone
	require.NoError(t, stop())
	require.Zero(t, violations.Load(), "confirmed_flush_lsn passed the committed offset")
}

// TestTypesSnapshotEqualsStream inserts a row with every type before the pipeline
// starts (read by the snapshot) and a copy of it afterwards (read from the
// stream): both must decode to identical values.
func TestTypesSnapshotEqualsStream(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE typed (
  id int4 PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, f8nan float8, f8inf float8,
  n numeric, n2 numeric(10,2), nnan numeric, ninf numeric, t text, vc varchar(20), c char(5), by bytea,
  d date, dinf date, tm time, tmtz timetz, ts timestamp, tsinf timestamp, tstz timestamptz, iv interval,
  j json, jb jsonb, u uuid, ai int4[], at2 text[][], e mood, ae mood[], dom posint, inet inet, pt point, x xml, m money,
  r int4range, tr tstzrange, bt bit(4), vb varbit, mac macaddr, cidr cidr, tsv tsvector, af float8[], an numeric[], oidc oid,
  bx box, ci circle, pa path, po polygon, ls lseg, li line, lsn pg_lsn, nr numrange, dr daterange, jp jsonpath, tq tsquery, m8 macaddr8, ab int4[]);
INSERT INTO typed VALUES (1, true, -32768, 2147483647, -9223372036854775808, 1.5, 3.141592653589793, 'NaN', '-Infinity',
  '123456789012345678901234567890.123456789', 12.30, 'NaN', 'Infinity', E'multi\nline "quoted" ü', 'varchar', 'ab',
  '\xdeadbeef00', '2024-02-29', 'infinity', '23:59:59.999999', '10:00:00+02', '2024-02-29 12:34:56.789',
  '-infinity', '2024-02-29 12:34:56.789+05:30', '1 year 2 months 3 days 04:05:06.5', '{"a": [1, 2]}', '{"b": {"c": null}}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,NULL,3}', '{{"a","b\"c"},{NULL,"d,e"}}', 'happy', '{sad,happy}', 7,
  '192.168.0.1/24', '(1.5,2)', '<a>x</a>', 12.34,
  '[1,10)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', B'1010', B'101', '08:00:2b:01:02:03', '10.0.0.0/8',
  'the quick brown fox', '{1.5,NaN,-Infinity}', '{1.10,NaN}', 12345,
  '((0,0),(1,1))', '<(1,1),2>', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '[(0,0),(1,1)]', '{1,-1,0}', '16/B374D848',
  '[1.5,2.5)', '[2024-01-01,2024-02-01)', '$.a[*] ? (@ > 1)', 'fat & rat', '08:00:2b:01:02:03:04:05', '[0:2]={1,2,3}');`)
	cfg := h.config("public.typed")
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.typed", "id")
	h.exec(`INSERT INTO typed SELECT 2, b, i2, i4, i8, f4, f8, f8nan, f8inf, n, n2, nnan, ninf, t, vc, c, by, d, dinf, tm, tmtz,
		ts, tsinf, tstz, iv, j, jb, u, ai, at2, e, ae, dom, inet, pt, x, m, r, tr, bt, vb, mac, cidr, tsv, af, an, oidc,
		bx, ci, pa, po, ls, li, lsn, nr, dr, jp, tq, m8, ab FROM typed WHERE id = 1`)
	h.waitSynced("public.typed", "id")
	require.NoError(t, stop())

	var recs []file.Record
	b, err := os.ReadFile(filepath.Join(h.dir, file.FileName(schemaID("public.typed"))))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r file.Record
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		recs = append(recs, r)
	}
	require.Len(t, recs, 2)
	require.Equal(t, "r", recs[0].Op, "row 1 came from the snapshot")
	require.Equal(t, "c", recs[1].Op, "row 2 came from the stream")
	var snap, stream map[string]any
	require.NoError(t, json.Unmarshal(recs[0].After, &snap))
	require.NoError(t, json.Unmarshal(recs[1].After, &stream))
	delete(snap, "id")
	delete(stream, "id")
	require.Equal(t, snap, stream, "snapshot and stream decode every type identically")
	// spot checks of the decoded values
	require.Equal(t, "123456789012345678901234567890.123456789", snap["n"], "numeric stays exact")
	require.Equal(t, "NaN", snap["nnan"])
	require.Equal(t, "Infinity", snap["ninf"])
	require.Equal(t, "NaN", snap["f8nan"])
	require.Equal(t, "3q2+7wA=", snap["by"])
	require.Equal(t, "2024-02-29T07:04:56.789Z", snap["tstz"])
	require.Equal(t, "2024-02-29T12:34:56.789", snap["ts"])
	require.Equal(t, "infinity", snap["dinf"], "non-finite dates keep their text")
	require.Equal(t, []any{float64(1), nil, float64(3)}, snap["ai"])
	require.Equal(t, []any{[]any{"a", `b"c`}, []any{nil, "d,e"}}, snap["at2"])
	require.Equal(t, []any{"sad", "happy"}, snap["ae"])
	require.Equal(t, float64(7), snap["dom"], "a domain decodes as its base type")
	require.Equal(t, map[string]any{"a": []any{float64(1), float64(2)}}, snap["j"])
	require.Equal(t, "1 year 2 mons 3 days 04:05:06.5", snap["iv"])
	require.Equal(t, "[1,10)", snap["r"], "ranges keep their text")
	require.Equal(t, "1010", snap["bt"])
	require.Equal(t, []any{1.5, "NaN", "-Infinity"}, snap["af"])
	require.Equal(t, []any{"1.10", "NaN"}, snap["an"], "numeric arrays stay exact")
	require.Equal(t, "[0:2]={1,2,3}", snap["ab"], "an array whose bounds do not start at 1 keeps its text (found: the bounds were dropped)")
}

// TestIdleSlotAdvances: the published table is idle while another database
// writes WAL; heartbeats and keepalives keep confirmed_flush_lsn moving.
func TestIdleSlotAdvances(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE quiet (id int PRIMARY KEY)`)
	other := pg.CreateDatabase(t, "busy_"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")))
	cfg := h.config("public.quiet")
	stop, _ := h.start(cfg)
	defer stop()
	require.Eventually(t, func() bool { return h.slotConfirmed(cfg.Slot) > 0 }, 30*time.Second, 50*time.Millisecond)
	start := h.slotConfirmed(cfg.Slot)

	ctx := context.Background()
	busy, err := pgxPool(ctx, other)
	require.NoError(t, err)
	defer busy.Close()
	_, err = busy.Exec(ctx, `CREATE TABLE noise (x text); INSERT INTO noise SELECT repeat('n', 1000) FROM generate_series(1, 20000)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.slotConfirmed(cfg.Slot) > start+1_000_000 }, 30*time.Second, 100*time.Millisecond,
		"confirmed_flush_lsn stayed at %s while other databases wrote WAL", start)
	require.NoError(t, stop())
}

// TestSlotLostNeedsResync: a dropped slot is a needs-resync error, not a retry.
func TestSlotLostNeedsResync(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	cfg := h.config("public.t")
	stop, _ := h.start(cfg)
	h.waitSynced("public.t", "id")
	h.exec(`INSERT INTO t VALUES (2)`)
	h.waitSynced("public.t", "id")
	require.NoError(t, stop())
	// the server-side walsender may still be exiting: stop it, then drop the slot
	h.onFreeSlot(cfg.Slot, func() bool {
		_, err := h.pool.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, cfg.Slot)
		return err == nil
	})

	r, _ := h.runner(cfg)
	err := r.Run(context.Background())
	require.Error(t, err)
	require.True(t, component.NeedsResync(err), "got %v", err)
	require.Contains(t, err.Error(), "does not exist any more")
}

// TestPostgresKilledMidStream: the server is SIGKILLed while changes flow and
// restarted; the runner is restarted after its failure, and the sink ends equal.
func TestPostgresKilledMidStream(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on")) // durable commits for a crash test
	h := newHarness(t, pg, `CREATE TABLE k (id int PRIMARY KEY, v int)`)
	cfg := h.config("public.k")
	stop, _ := h.start(cfg)
	for i := range 200 {
		h.exec(`INSERT INTO k VALUES ($1, $1)`, i)
	}
	pg.Kill()
	err := stop()
	t.Logf("runner after the kill: %v", err)
	require.NoError(t, pg.Restart())
	// the pool reconnects by itself
	require.Eventually(t, func() bool { return h.pool.Ping(context.Background()) == nil }, 30*time.Second, 50*time.Millisecond)
	for i := 200; i < 400; i++ {
		h.exec(`INSERT INTO k VALUES ($1, $1)`, i)
	}
	h.exec(`UPDATE k SET v = -v WHERE id % 3 = 0`)
	stop, _ = h.start(cfg)
	defer stop()
	h.waitSynced("public.k", "id")
	require.NoError(t, stop())
}

// TestResumeInterruptedSnapshot stops the pipeline in the middle of its snapshot
// and restarts it: the rest of the snapshot is read and the sink ends equal.
func TestResumeInterruptedSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE orders (id int8 PRIMARY KEY, note text);
		INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 50000) g`)
	cfg := h.config("public.orders")
	stopMidSnapshot(t, h, cfg)
	h.exec(`UPDATE orders SET note = 'after stop' WHERE id % 10 = 0`)
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.orders", "id")
	require.NoError(t, stop())
}

// stopMidSnapshot runs a pipeline until part of its snapshot is written, and
// stops it there.
func stopMidSnapshot(t *testing.T, h *harness, cfg Config) {
	t.Helper()
	stop, r := h.start(cfg)
	require.Eventually(t, func() bool { return r.Progress().ChangesWritten >= 600 }, 30*time.Second, time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, uint64(phaseSnapshot), h.committedPhase(), "stopped in the middle of the snapshot")
}

func TestCheckExplainsProblems(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE nopk (x int); CREATE TABLE ok (id int PRIMARY KEY)`)
	cfg := h.config("public.nopk", "public.missing", "public.ok")
	err := New(cfg, sources.Deps{}).Check(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "table public.nopk has no primary key")
	require.Contains(t, err.Error(), "REPLICA IDENTITY FULL")
	require.Contains(t, err.Error(), "table public.missing does not exist")
	require.NoError(t, New(h.config("public.ok"), sources.Deps{}).Check(context.Background()))

	var pe interface{ Permanent() bool }
	r, _ := h.runner(cfg)
	err = r.Run(context.Background())
	require.True(t, errors.As(err, &pe) && pe.Permanent(), "a missing table is a permanent error: %v", err)
}

// TestStartFailsOnWALLevel: a server without wal_level=logical fails the pipeline
// at start, permanently, saying what to change.
func TestStartFailsOnWALLevel(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t, testenv.WithSetting("wal_level", "replica"))
	h := newHarness(t, pg, `CREATE TABLE w (id int PRIMARY KEY)`)
	r, _ := h.runner(h.config("public.w"))
	err := r.Run(context.Background())
	require.True(t, component.IsPermanent(err), "got %v", err)
	require.Contains(t, err.Error(), "set wal_level = logical")
}

// TestSnapshotByPrimaryKey: the primary-key chunking reads tables in key order
// page by page, and an interrupted snapshot resumes after the last acked page.
func TestSnapshotByPrimaryKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), ordersDDL+`
		CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
		INSERT INTO pairs SELECT g / 3, 'k' || (g % 3), g FROM generate_series(1, 1500) g`)
	cfg := h.config("public.orders", "public.pairs")
	cfg.SnapshotChunking = "primary_key"
	require.NoError(t, cfg.Validate())
	stop, r := h.start(cfg)
	require.Eventually(t, func() bool { return r.Progress().ChangesWritten >= 700 }, 30*time.Second, time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, uint64(phaseSnapshot), h.committedPhase(), "stopped in the middle of the snapshot")
	saved, err := h.progress.LoadSnapshotProgress(context.Background())
	require.NoError(t, err)
	var cursors int
	for _, sp := range saved {
		var st tableProgress
		require.NoError(t, json.Unmarshal(sp.State, &st))
		if len(st.Chunks) == 1 && st.Chunks[0].ByKey && st.Chunks[0].Cursor != nil {
			cursors++
		}
	}
	require.Positive(t, cursors, "a page cursor was saved")
	h.exec(`UPDATE orders SET note = 'after stop' WHERE id % 9 = 0`)
	h.exec(`DELETE FROM pairs WHERE v % 11 = 0`)
	stop, _ = h.start(cfg)
	defer stop()
	h.waitSynced("public.orders", "id")
	h.waitSynced("public.pairs", "a")
	require.NoError(t, stop())
}

// refusingStore commits normally `allow` times, then refuses: the sink holds
// batches whose offsets were never committed, as after a crash between the two.
type refusingStore struct {
	offsets.Store
	allow atomic.Int32
}

func (s *refusingStore) Commit(ctx context.Context, p string, e offsets.Epoch, pos offsets.Position) error {
	if s.allow.Add(-1) < 0 {
		return errors.New("offset store unavailable")
	}
	return s.Store.Commit(ctx, p, e, pos)
}

// TestSnapshotResumeAfterUncommittedParts: the sink already holds snapshot parts
// whose offsets were never committed; the resumed snapshot reads its chunks in
// another order, so it must not reuse their positions (the sink would skip its
// rows as replays).
func TestSnapshotResumeAfterUncommittedParts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE many (id int8 PRIMARY KEY, v text);
		INSERT INTO many SELECT g, md5(g::text) FROM generate_series(1, 50000) g`)
	cfg := h.config("public.many")
	store := &refusingStore{Store: h.offsets}
	store.allow.Store(3) // a few commits, so that the write stage is well ahead when they stop
	r, _ := h.runnerWith(cfg, store)
	err := r.Run(context.Background())
	require.ErrorContains(t, err, "offset store unavailable")
	require.Equal(t, uint64(phaseSnapshot), h.committedPhase(), "the committed offset is inside the snapshot")
	require.Greater(t, r.Progress().ChangesWritten, uint64(500), "the sink holds parts past the committed offset")
	require.Less(t, r.Progress().ChangesWritten, uint64(50000), "and not the whole table")

	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.many", "id")
	require.NoError(t, stop())
}

// TestRestartBeforeFirstCommit: an attempt writes snapshot rows but dies before
// any offset is committed; rows are then deleted at the source. The next attempt
// must not start over on a new slot (the deletes would never reach the sink): it
// resumes on the existing slot and streams them.
func TestRestartBeforeFirstCommit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE many (id int8 PRIMARY KEY, v text);
		INSERT INTO many SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	cfg := h.config("public.many")
	store := &refusingStore{Store: h.offsets} // refuses every commit
	r, _ := h.runnerWith(cfg, store)
	require.ErrorContains(t, r.Run(context.Background()), "offset store unavailable")
	require.Greater(t, r.Progress().ChangesWritten, uint64(0), "the sink holds rows of the failed attempt")
	_, err := h.offsets.Load(context.Background(), "p")
	require.ErrorIs(t, err, offsets.ErrNotFound, "nothing was committed")

	h.exec(`DELETE FROM many WHERE id % 7 = 0`)
	h.exec(`UPDATE many SET v = 'changed' WHERE id % 11 = 0`)
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.many", "id")
	require.NoError(t, stop())
}

// TestSnapshotEstimateWithoutStatistics: a table never analyzed has no row
// estimate (reltuples -1): the snapshot says "unknown", not a number it passes
// long before it is done (found: 185,557 / 185,557 with 1.5 M rows to go);
// after ANALYZE the estimate is the table's size.
func TestSnapshotEstimateWithoutStatistics(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE big (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
		INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
		CREATE TABLE known (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
		INSERT INTO known SELECT g FROM generate_series(1, 5000) g; ANALYZE known;`)
	cfg := h.config("public.big", "public.known")
	r, src := h.runner(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-errc)
	}()
	est := map[string]int64{}
	require.Eventually(t, func() bool {
		for _, tp := range src.SourceStatus().Tables {
			est[tp.Table.Name] = tp.RowsEstimated
		}
		return len(est) == 2
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(-1), est["big"], "never analyzed: no estimate")
	require.Equal(t, int64(5000), est["known"])
	// the pipeline's view: null, and the table snapshotting until it is done
	require.Eventually(t, func() bool {
		for _, tp := range r.Progress().Tables {
			if tp.Table == "public.big" {
				if tp.State == pipeline.TableSnapshotting {
					require.Nil(t, tp.RowsEstimated, "an unknown estimate is null, not %v", tp.RowsEstimated)
				}
				if tp.State == pipeline.TableStreaming {
					return tp.SnapshotRows == 20000
				}
			}
		}
		return false
	}, 60*time.Second, 5*time.Millisecond)
}

// TestCheckWarnings: findings that do not stop a pipeline are the source's
// warnings (shown by the connection test and the status, logged once by the
// engine), not log lines of its own at every start.
func TestCheckWarnings(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE docs (id int PRIMARY KEY, body text); CREATE TABLE full_ident (id int PRIMARY KEY, body text);
		ALTER TABLE full_ident REPLICA IDENTITY FULL`)
	var logs strings.Builder
	src := New(h.config("public.docs", "public.full_ident"), sources.Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, src.Check(context.Background()))
	ws := src.Warnings()
	require.Len(t, ws, 2, "%q", ws)
	require.Contains(t, ws[0], "max_slot_wal_keep_size is unlimited")
	require.Contains(t, ws[1], "table public.docs has TOAST-able columns (body) without REPLICA IDENTITY FULL")
	require.Contains(t, ws[1], `ALTER TABLE "public"."docs" REPLICA IDENTITY FULL`)
	require.NotContains(t, logs.String(), "REPLICA IDENTITY", "the source does not log its warnings")
	require.Equal(t, ws, src.SourceStatus().Warnings)

	// three other pipelines' slots on the database: each decodes all of its WAL
	for _, slot := range []string{"other_a", "other_b", "other_c"} {
		h.exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
	}
	require.NoError(t, src.Check(context.Background()))
	ws = src.Warnings()
	require.Len(t, ws, 3, "%q", ws)
	require.Contains(t, ws[0], "3 other logical replication slots decode this database's WAL (other_a, other_b, other_c)")
	require.Contains(t, ws[0], "put the tables of one database in one pipeline")
}

// TestSnapshotResumedAfterAddColumnDefault: a column added with a DEFAULT
// while a snapshot was interrupted reaches the rows the first attempt already
// copied: the resumed snapshot announces it with its fill, as the stream
// would (found by the chaos oracle: ClickHouse then refused the stream's own
// announcement of the column's fill).
func TestSnapshotResumedAfterAddColumnDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE orders (id int8 PRIMARY KEY, note text);
		INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 50000) g`)
	cfg := h.config("public.orders")
	stopMidSnapshot(t, h, cfg)
	h.exec(`ALTER TABLE orders ADD COLUMN extra int DEFAULT -1`)
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.orders", "id")
	require.NoError(t, stop())
}

// TestSnapshotResumedReplaysOlderShapes: a resumed snapshot registers the
// table as the catalog has it now, while the stream replays from the slot's
// consistent point. The Relation messages of the commits in between show
// older shapes; registering them again dropped the added column and added it
// back with its fill, over the values the resumed snapshot had copied (found
// by the chaos oracle, Postgres to Postgres: 98 stale rows). They are encoded
// in the catalog's version instead: no version goes back.
func TestSnapshotResumedReplaysOlderShapes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE orders (id int8 PRIMARY KEY, note text, gone text);
		INSERT INTO orders SELECT g, md5(g::text), g FROM generate_series(1, 50000) g`)
	cfg := h.config("public.orders")
	stopMidSnapshot(t, h, cfg)
	// while cdcd is down: changes in the old shape, a column added with a
	// DEFAULT and set in some rows, a column dropped (of another type: the
	// pair is not taken for a rename, schema.InferRenames)
	h.exec(`UPDATE orders SET note = 'before' WHERE id % 10 = 0`)
	h.exec(`INSERT INTO orders SELECT g, 'new', g FROM generate_series(50001, 50100) g`)
	h.exec(`ALTER TABLE orders ADD COLUMN extra int4 DEFAULT -1`)
	h.exec(`UPDATE orders SET extra = id WHERE id % 7 = 0`)
	h.exec(`INSERT INTO orders SELECT g, 'newer', g, g FROM generate_series(50101, 50200) g`)
	h.exec(`ALTER TABLE orders DROP COLUMN gone`)
	h.exec(`UPDATE orders SET note = 'after' WHERE id % 11 = 0`)
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.orders", "id")
	require.NoError(t, stop())

	all, err := h.versions.LoadTableVersions(context.Background(), "p")
	require.NoError(t, err)
	var shapes []string
	for _, tv := range all {
		var cols []string
		for _, c := range tv.Table.Columns {
			cols = append(cols, c.Name)
		}
		shapes = append(shapes, fmt.Sprintf("v%d %s", tv.Table.Version, strings.Join(cols, ",")))
	}
	require.Equal(t, []string{"v1 id,note,gone", "v2 id,note,extra"}, shapes, "the stream registers no older shape after the resumed snapshot's")
	saved, err := h.progress.LoadSnapshotProgress(context.Background())
	require.NoError(t, err)
	require.Len(t, saved, 1)
	var p tableProgress
	require.NoError(t, json.Unmarshal(saved[0].State, &p))
	require.NotNil(t, p.View, "the view is saved for a restart before the stream reaches it")
	require.Equal(t, schema.Version(2), p.View.Version)
}

// TestLeastPrivilege: a role with REPLICATION and SELECT only. The check says
// what the publication needs (CREATE on the database, the tables' ownership)
// with the statement a DBA can run instead; once a DBA has created the
// publication, the role replicates through it as it is.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE items (id int8 PRIMARY KEY, v text);
		INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g;
		CREATE ROLE cdcd_min LOGIN REPLICATION; GRANT SELECT ON items TO cdcd_min;
		REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	var db string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db))
	h.exec(`REVOKE CREATE ON DATABASE ` + db + ` FROM PUBLIC`)
	cfg := h.config("public.items")
	cfg.DSN = strings.Replace(h.dsn, "postgres://postgres@", "postgres://cdcd_min@", 1)
	err := New(cfg, sources.Deps{}).Check(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "the role cannot create publication cdcd_p: GRANT CREATE ON DATABASE")
	require.Contains(t, err.Error(), `CREATE PUBLICATION "cdcd_p" FOR TABLE "public"."items"`)
	require.Contains(t, err.Error(), "the role does not own public.items (owned by postgres)")

	h.exec(`CREATE PUBLICATION cdcd_p FOR TABLE items WITH (publish_via_partition_root = true)`)
	require.NoError(t, New(cfg, sources.Deps{}).Check(context.Background()), "a DBA's publication holding the tables is used as it is")
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.items", "id")
	h.exec(`UPDATE items SET v = 'changed' WHERE id <= 10`)
	h.waitSynced("public.items", "id")
	require.NoError(t, stop())

	// a table the publication lacks: its owner is asked to add it
	h.exec(`CREATE TABLE more (id int8 PRIMARY KEY); GRANT SELECT ON more TO cdcd_min`)
	err = New(h.configWith(cfg, "public.items", "public.more"), sources.Deps{}).Check(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), `publication cdcd_p belongs to another role and lacks "public"."more": have its owner run ALTER PUBLICATION "cdcd_p" ADD TABLE "public"."more"`)

	// deleting the pipeline drops its slot and leaves the DBA's publication
	require.NoError(t, New(cfg, sources.Deps{}).Cleanup(context.Background()))
	var slots, pubs int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdcd_p'), (SELECT count(*) FROM pg_publication WHERE pubname = 'cdcd_p')`).Scan(&slots, &pubs))
	require.Zero(t, slots)
	require.Equal(t, 1, pubs)
}

// TestSnapshotResumedKeepsRowsThatMoved: the chunks of a table are ranges of
// pages, and a resumed snapshot reads those left under a new snapshot. Rows
// that an update moved, in between, from a chunk not read yet into one read
// already are read by neither; the stream's replay of the update brings them
// back, but the update sends no TOASTed value it left unchanged. Found by the
// crash oracle: rows with their TOASTed text NULL at the destination. The
// replayed updates from before the resumed snapshot's read take those values
// from the table.
func TestSnapshotResumedKeepsRowsThatMoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE docs (id int8 PRIMARY KEY, n int4, body text) WITH (fillfactor = 100);
		ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
		INSERT INTO docs SELECT g, 0, CASE WHEN g BETWEEN 40001 AND 40100 THEN repeat(md5(g::text), 100) END FROM generate_series(1, 50000) g`)
	cfg := h.config("public.docs")
	stopMidSnapshot(t, h, cfg)
	saved, err := h.progress.LoadSnapshotProgress(context.Background())
	require.NoError(t, err)
	require.Len(t, saved, 1)
	var p tableProgress
	require.NoError(t, json.Unmarshal(saved[0].State, &p))
	require.True(t, p.Chunks[0].Done, "the first chunk was read before the stop")
	require.False(t, p.Chunks[len(p.Chunks)-1].Done, "the last one was not")
	firstHi := p.Chunks[0].Hi

	// free space in the first chunk's pages, then move rows of full pages in
	// a chunk not read yet there
	h.exec(`DELETE FROM docs WHERE id <= 60`)
	h.exec(`VACUUM (INDEX_CLEANUP ON) docs`) // on: the few dead rows would not free their space otherwise
	// from a new session: the one that loaded the table would put the new
	// row versions on the last page it wrote (its cached target block)
	conn, err := pgx.Connect(context.Background(), h.dsn)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `UPDATE docs SET n = 1 WHERE id BETWEEN 40001 AND 40100`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	moved := h.count(`SELECT count(*) FROM docs WHERE id BETWEEN 40001 AND 40100 AND (ctid::text::point)[0] < $1`, int64(firstHi))
	var where string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT string_agg(DISTINCT (ctid::text::point)[0]::text, ',') FROM docs WHERE id BETWEEN 40001 AND 40100`).Scan(&where))
	t.Logf("first chunk %+v; the updated rows are in pages %s", p.Chunks[0], where)
	require.Positive(t, moved, "some updated rows moved into the first chunk's pages")
	t.Logf("%d rows moved into a chunk read before the stop", moved)

	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.docs", "id")
	require.NoError(t, stop())
}

// TestSnapshotResumedAfterRewrite: a table rewritten (VACUUM FULL) while its
// snapshot was interrupted has its rows in other pages than the chunks left
// to read, and the rewrite leaves nothing in the WAL for the stream to
// replay: read chunk by chunk, rows would be missing for good. The resumed
// snapshot reads the table again from the start.
func TestSnapshotResumedAfterRewrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE docs (id int8 PRIMARY KEY, n int4);
		INSERT INTO docs SELECT g, 0 FROM generate_series(1, 50000) g`)
	cfg := h.config("public.docs")
	stopMidSnapshot(t, h, cfg)
	// half of the rows gone: the rewrite packs the rest into half the pages,
	// where the chunks read already were
	h.exec(`DELETE FROM docs WHERE id % 2 = 0`)
	h.exec(`VACUUM FULL docs`)
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.docs", "id")
	require.NoError(t, stop())
}

// TestUnchangedToastNotTakenFromAnotherTable: an update that leaves a TOASTed
// value unchanged takes it from an earlier change of the same row in the
// batch; a row of another table with the same key (and a column of the same
// name) is not the same row.
func TestUnchangedToastNotTakenFromAnotherTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE a (id int8 PRIMARY KEY, n int4, body text);
		ALTER TABLE a ALTER COLUMN body SET STORAGE EXTERNAL;
		INSERT INTO a VALUES (1, 0, repeat(md5('a'), 200));
		CREATE TABLE b (id int8 PRIMARY KEY, body text)`)
	cfg := h.config("public.a", "public.b")
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.a", "id")
	// both tables' Relation messages first: a Relation message flushes the
	// batch (and what the back-fill can see)
	h.exec(`BEGIN; INSERT INTO b VALUES (2, 'x'); UPDATE a SET n = 2 WHERE id = 1; COMMIT`)
	h.exec(`BEGIN; INSERT INTO b VALUES (1, 'the body of b'); UPDATE a SET n = 1 WHERE id = 1; COMMIT`)
	h.waitSynced("public.b", "id")
	h.waitSynced("public.a", "id")
	require.NoError(t, stop())
}
