package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// peer is a server the harness can crash, freeze and restart.
type peer interface {
	Kill()
	Restart() error
	Freeze()
	Thaw()
	Addr() string
}

// chaos is one run: a source and a destination Postgres behind proxies, the
// cdcd binary, a writer, and the fault schedule.
type chaos struct {
	t       *testing.T
	rng     *rand.Rand
	src     peer
	dst     peer
	srcPool *pgxpool.Pool // direct, for the flush-LSN watch (Postgres sources)
	dstPool *pgxpool.Pool // a Postgres destination, direct
	// dstRows counts the items (acct) rows at the destination; dstBusy reports
	// whether the destination is executing one of cdcd's writes. Both default to
	// the Postgres destination's.
	dstRows func() int
	dstBusy func() bool
	// snapLatency slows the destination during the first kill, so that the
	// kill lands inside the snapshot (default 20 ms); snapRows is the rows of
	// the table dstRows counts that the snapshot writes.
	snapLatency int
	snapRows    int
	inWrite     int // kill_cdcd_in_write faults that found a write in flight
	// srcExec runs a statement on the source, directly; ddl is the n-th DDL
	// fault's statements.
	srcExec  func(ctx context.Context, q string) error
	ddl      func(n int) []string
	srcProxy *testenv.FaultProxy
	dstProxy *testenv.FaultProxy
	cfg      string
	data     string
	log      *testenv.Output
	cmd      *exec.Cmd
	runs     int
	faults   map[string]int

	mu         sync.Mutex
	violations []string
}

// newChaos reads the seed (CDCD_CHAOS_SEED, or the clock) and the number of
// faults (CDCD_CHAOS_FAULTS, default 11: each kind once), logs both, and
// returns a run whose RNG draws from stream.
func newChaos(t *testing.T, stream uint64) (*chaos, uint64, int) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("CDCD_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	n := testenv.EnvInt("CDCD_CHAOS_FAULTS", 11)
	t.Logf("seed %d (replay with CDCD_CHAOS_SEED=%d), %d faults", seed, seed, n)
	return &chaos{t: t, rng: rand.New(rand.NewPCG(seed, stream)), log: &testenv.Output{}, faults: map[string]int{}}, seed, n
}

// durable are the settings of a server the harness SIGKILLs: testenv's
// defaults trade durability for speed, and a server that loses commits it
// acknowledged breaks every sink's contract (the first 200-fault run saw the
// destination forget an offset it had acknowledged, which cdcd had already
// acknowledged to the source slot).
func durable() []testenv.PostgresOption {
	return []testenv.PostgresOption{testenv.WithSetting("fsync", "on"), testenv.WithSetting("synchronous_commit", "on"),
		testenv.WithSetting("full_page_writes", "on")}
}

// postgresSource starts the source Postgres with database app and sets the
// run's source, its pool (closed at cleanup) and srcExec.
func (c *chaos) postgresSource(ctx context.Context) (*testenv.Postgres, string) {
	src := testenv.StartPostgres(c.t, append(durable(), testenv.WithSetting("wal_sender_timeout", "10s"))...)
	c.src = src
	dsn := src.CreateDatabase(c.t, "app")
	var err error
	c.srcPool, err = pgxpool.New(ctx, dsn)
	require.NoError(c.t, err)
	c.t.Cleanup(c.srcPool.Close)
	c.srcExec = func(ctx context.Context, q string) error { _, err := c.srcPool.Exec(ctx, q); return err }
	return src, dsn
}

func (c *chaos) start() {
	c.t.Helper()
	c.cmd = exec.Command(binary, "run", "-f", c.cfg, "--data-dir", c.data)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(c.t, c.cmd.Start())
	c.runs++
}

func (c *chaos) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func (c *chaos) sleep(minMS, maxMS int) {
	time.Sleep(time.Duration(minMS+c.rng.IntN(maxMS-minMS+1)) * time.Millisecond)
}

// watchFlushLSN checks, until ctx ends, that the slot's confirmed_flush_lsn
// never passes the offset committed at the destination. The slot is read first:
// confirmed(t1) ≤ committed(t1) ≤ committed(t2).
func (c *chaos) watchFlushLSN(ctx context.Context) {
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var confirmed string
		err := c.srcPool.QueryRow(qctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cdcd_chaos'`).Scan(&confirmed)
		var pos []byte
		if err == nil {
			err = c.dstPool.QueryRow(qctx, `SELECT position FROM wh._cdc_offsets WHERE pipeline = 'chaos'`).Scan(&pos)
		}
		cancel()
		if err != nil {
			continue // a server is down, or nothing committed yet
		}
		d := offsets.NewDecoder(pos)
		if d.Uint() != 1 {
			continue // a snapshot position: the slot stays at its consistent point
		}
		d.Uint()
		if d.Uint() != math.MaxUint64 {
			continue
		}
		end := pglogrepl.LSN(d.Uint())
		cl, err := pglogrepl.ParseLSN(confirmed)
		if err == nil && cl > end {
			c.mu.Lock()
			c.violations = append(c.violations, fmt.Sprintf("confirmed_flush_lsn %s passed the committed offset %s", cl, end))
			c.mu.Unlock()
		}
	}
}

// fault kinds, each injected at a random point.
var faultKinds = []string{
	"kill_cdcd_streaming", "kill_cdcd_in_write", "kill_source", "freeze_source", "freeze_destination",
	"kill_destination", "cut_source", "cut_destination", "hang_source", "ddl",
}

func (c *chaos) inject(kind string) {
	t := c.t
	ctx := context.Background()
	switch kind {
	case "kill_cdcd_streaming":
		c.kill()
		c.start()
	case "kill_cdcd_in_write":
		// slow the destination so a batch write is in flight, and kill cdcd
		// while the destination is executing one of its statements. After a
		// run of source faults cdcd may sit in its retry backoff (up to 16 s
		// after five failures in a row) before it writes again: wait that out.
		c.dstProxy.SetLatency(150 * time.Millisecond)
		const search = 90 * time.Second
		deadline := time.Now().Add(search)
		busy := c.dstBusy()
		for time.Now().Before(deadline) && !busy {
			time.Sleep(2 * time.Millisecond)
			busy = c.dstBusy()
		}
		c.kill()
		if busy {
			c.inWrite++
		} else {
			t.Logf("kill_cdcd_in_write: no write in flight within %s; cdcd log (tail):\n%s", search, c.log.Tail(3000))
		}
		c.dstProxy.Heal()
		c.start()
	case "kill_source":
		c.src.Kill()
		c.sleep(500, 2000)
		require.NoError(t, c.src.Restart())
	case "freeze_source":
		c.src.Freeze()
		c.sleep(1000, 4000)
		c.src.Thaw()
	case "freeze_destination":
		c.dst.Freeze()
		c.sleep(1000, 4000)
		c.dst.Thaw()
	case "kill_destination":
		c.dst.Kill()
		c.sleep(500, 2000)
		require.NoError(t, c.dst.Restart())
	case "cut_source":
		require.NoError(t, c.srcProxy.Cut(time.Duration(500+c.rng.IntN(2500))*time.Millisecond))
	case "cut_destination":
		require.NoError(t, c.dstProxy.Cut(time.Duration(500+c.rng.IntN(2500))*time.Millisecond))
	case "hang_source":
		// data stops, connections stay open: only timeouts notice
		c.srcProxy.Hang()
		c.sleep(2000, 5000)
		c.srcProxy.Heal()
	case "ddl":
		for _, q := range c.ddl(c.faults["ddl"]) {
			err := c.srcExec(ctx, q)
			// the statement races the writer's transactions: when the source
			// breaks a deadlock by aborting it, it did nothing, and runs again
			for try := 1; deadlocked(err) && try < 5; try++ {
				t.Logf("fault statement aborted to break a deadlock with the writer; again: %s", q)
				c.sleep(50, 250)
				err = c.srcExec(ctx, q)
			}
			require.NoError(t, err, q)
		}
	default:
		t.Fatalf("unknown fault %s", kind)
	}
}

// deadlocked reports whether err is the source aborting a statement to break a
// deadlock (Postgres 40P01, MariaDB ER_LOCK_DEADLOCK).
func deadlocked(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40P01"
	}
	var me *gmysql.MyError
	return errors.As(err, &me) && me.Code == gmysql.ER_LOCK_DEADLOCK
}

func TestDeadlocked(t *testing.T) {
	t.Parallel()
	require.True(t, deadlocked(fmt.Errorf("exec: %w", &pgconn.PgError{Code: "40P01"})))
	require.True(t, deadlocked(fmt.Errorf("exec: %w", &gmysql.MyError{Code: gmysql.ER_LOCK_DEADLOCK})))
	require.False(t, deadlocked(&pgconn.PgError{Code: "40001"}), "a serialization failure is not a deadlock")
	require.False(t, deadlocked(&gmysql.MyError{Code: gmysql.ER_LOCK_WAIT_TIMEOUT}))
	require.False(t, deadlocked(nil))
}

// TestChaosPostgresToPostgres replicates three tables (many column types, a
// composite key, TOASTed text, jsonb, arrays) from a private Postgres into
// another while a writer changes them and faults hit at random points: cdcd
// SIGKILLed during the snapshot, while streaming and inside a batch write; the
// source SIGKILLed and restarted; the destination frozen (SIGSTOP) and killed;
// network cuts and hangs between cdcd and each server (internal/testenv.FaultProxy); DDL
// mid-stream. Then every table must equal its destination by key and a hash of
// all columns, and the slot's confirmed_flush_lsn must never have passed the
// offset committed at the destination.
//
// CDCD_CHAOS_FAULTS sets the number of faults (default 11: each kind once); CDCD_CHAOS_SEED
// replays a run.
func TestChaosPostgresToPostgres(t *testing.T) {
	t.Parallel()
	c, seed, nFaults := newChaos(t, 3)
	ctx := context.Background()
	_, srcDSN := c.postgresSource(ctx)
	dst := testenv.StartPostgres(t, durable()...)
	c.dst = dst
	dstDSN := dst.CreateDatabase(t, "wh")
	var err error
	c.ddl = func(n int) []string {
		if n == 2 {
			return []string{`ALTER TABLE items ALTER COLUMN qty TYPE int8`, `UPDATE items SET qty = qty + 1 WHERE id % 97 = 0`} // a widening
		}
		// a DEFAULT: the rows already there read it from the catalog, and the WAL
		// carries none of it; the sink fills it in, whatever crashes around it
		return []string{fmt.Sprintf(`ALTER TABLE items ADD COLUMN extra_%d int4 DEFAULT %d`, n, -n), fmt.Sprintf(`UPDATE items SET qty = qty + 1, extra_%d = %d WHERE id %% 97 = 0`, n, n)}
	}
	c.dstPool, err = pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer c.dstPool.Close()

	c.srcProxy = testenv.NewFaultProxy(t, c.src.Addr())
	c.dstProxy = testenv.NewFaultProxy(t, c.dst.Addr())
	viaProxy := func(dsn, addr string) string {
		return strings.Replace(dsn, dsn[strings.Index(dsn, "@")+1:strings.LastIndex(dsn, "/")], addr, 1)
	}

	w := newWorkload(c.srcPool, seed)
	c.snapRows = testenv.EnvInt("CDCD_CHAOS_ROWS", 30_000)
	require.NoError(t, w.fill(ctx, c.snapRows, 10_000, 3_000))

	dir := t.TempDir()
	c.cfg, c.data = filepath.Join(dir, "chaos.yaml"), filepath.Join(dir, "data")
	require.NoError(t, os.WriteFile(c.cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: chaos
    source:
      type: postgres
      config: {dsn: %q, tables: [public.items, public.events, public.pairs], snapshot_chunk_rows: 2000,
               heartbeat_interval: 1s, status_interval: 500ms}
    sink: {type: postgres, config: {dsn: %q, schema: wh}}
    batch: {max_changes: 5000, max_wait: 100ms}
`, viaProxy(srcDSN, c.srcProxy.Addr()), viaProxy(dstDSN, c.dstProxy.Addr()))), 0o644))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d; cdcd log (tail):\n%s", seed, c.log.Tail(8000))
			c.saveLog(seed)
		}
	}()

	watchCtx, stopWatch := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { c.watchFlushLSN(watchCtx) })
	defer func() { stopWatch(); bg.Wait() }()

	c.run(nFaults, w.run, func() string {
		return fmt.Sprintf("%d transactions committed, %d attempts failed under faults", w.txns.Load(), w.fails.Load())
	})

	// the oracle: every table equals its destination by key and all columns
	for _, tb := range tables {
		cols, err := columns(ctx, c.srcPool, tb.name)
		require.NoError(t, err)
		c.requireEqual(tb.name, len(cols),
			func() (map[string]string, error) { return rowHashes(ctx, c.srcPool, tb.name, tb.key, asText(cols)) },
			func() (map[string]string, error) {
				return rowHashes(ctx, c.dstPool, "wh."+tb.name+" WHERE NOT _cdc_deleted", tb.key, asText(cols))
			},
			func(key string) string { // the row on both sides, and the destination's version
				row := func(pool *pgxpool.Pool, from string) string {
					var s string
					if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT row_to_json(r)::text FROM %s r WHERE (%s) = $1`, from, tb.key), key).Scan(&s); err != nil {
						return err.Error()
					}
					return s
				}
				return fmt.Sprintf("source:      %s\ndestination: %s", row(c.srcPool, tb.name), row(c.dstPool, "wh."+tb.name))
			})
	}
	stopWatch()
	bg.Wait()
	c.mu.Lock()
	require.Empty(t, c.violations, "the slot confirmed past the committed offset")
	c.mu.Unlock()
	c.finish()
}

// run starts cdcd, kills it once during the snapshot, then starts the writer and
// injects the other faults; it returns when the writer stopped.
func (c *chaos) run(nFaults int, write func(context.Context) error, stats func() string) {
	t := c.t
	ctx := context.Background()
	// the first fault: a kill during the snapshot (slowed so there is one to hit)
	c.dstProxy.SetLatency(time.Duration(cmp.Or(c.snapLatency, 20)) * time.Millisecond)
	c.start()
	if c.dstRows == nil {
		c.dstRows = func() int {
			var n int
			_ = c.dstPool.QueryRow(ctx, `SELECT count(*) FROM wh.items`).Scan(&n)
			return n
		}
	}
	if c.dstBusy == nil {
		c.dstBusy = func() bool {
			var n int
			_ = c.dstPool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = 'wh' AND state <> 'idle'
				AND pid <> pg_backend_pid() AND query ~* '^\s*(MERGE|COPY|INSERT|UPDATE|DELETE)'`).Scan(&n)
			return n > 0
		}
	}
	require.Eventually(t, func() bool { return c.dstRows() > 0 }, time.Minute, 5*time.Millisecond, "the snapshot never started: %s", c.log.Tail(3000))
	c.kill()
	written := c.dstRows()
	snapshotting := written < c.snapRows
	c.dstProxy.Heal()
	c.faults["kill_cdcd_snapshot"]++
	require.True(t, snapshotting, "the first kill was meant to hit the snapshot, but %d of %d rows were written", written, c.snapRows)
	t.Logf("fault 1: kill_cdcd_snapshot (%d of %d snapshot rows written)", written, c.snapRows)
	c.start()

	writeCtx, stopWriting := context.WithCancel(ctx)
	writeErr := make(chan error, 1)
	go func() { writeErr <- write(writeCtx) }()

	// every kind once, in a seeded order, then random kinds
	order := append([]string(nil), faultKinds...)
	c.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i := 1; i < nFaults; i++ {
		kind := faultKinds[c.rng.IntN(len(faultKinds))]
		if i-1 < len(order) {
			kind = order[i-1]
		}
		c.sleep(300, 2500)
		c.faults[kind]++
		t.Logf("fault %d: %s", i+1, kind)
		c.inject(kind)
	}
	c.sleep(1000, 2000)
	stopWriting()
	require.NoError(t, <-writeErr)
	t.Logf("writer: %s", stats())
}

// requireEqual waits up to 5 minutes for a table's destination to equal its
// source (key → row hash) and fails with missing, extra and stale counts.
func (c *chaos) requireEqual(name string, ncols int, source, dest func() (map[string]string, error), explain ...func(key string) string) {
	t := c.t
	deadline := time.Now().Add(time.Duration(testenv.EnvInt("CDCD_CHAOS_CATCHUP_S", 300)) * time.Second)
	var d diff
	var want map[string]string
	for {
		// the source is read again each time: the writer was stopped by
		// cancelling its context, and a COMMIT it gave up on can still land
		// at the server after that
		var err error
		want, err = source()
		require.NoError(t, err)
		got, err := dest()
		if err == nil {
			if d = compare(want, got); d.ok() {
				break
			}
		}
		if time.Now().After(deadline) {
			var detail string
			if len(explain) > 0 && len(d.examples) > 0 {
				detail = explain[0](strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(d.examples[0], "stale "), "missing "), "extra "))
			}
			t.Fatalf("table %s: %s (last error %v)\n%s", name, d, err, detail)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("table %s: %d rows equal (%d columns hashed)", name, len(want), ncols)
}

// saveLog writes cdcd's whole log of a failed run into CDCD_CHAOS_LOG_DIR,
// when set (the test log keeps its tail only).
func (c *chaos) saveLog(seed uint64) {
	dir := os.Getenv("CDCD_CHAOS_LOG_DIR")
	if dir == "" {
		return
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d.log", c.t.Name(), seed))
	if err := os.WriteFile(p, []byte(c.log.String()), 0o644); err != nil {
		c.t.Logf("save the cdcd log: %v", err)
		return
	}
	c.t.Logf("cdcd log: %s", p)
	// and its data directory (the metadata store: schema versions, snapshot
	// progress, events)
	data := strings.TrimSuffix(p, ".log") + ".data"
	if out, err := exec.Command("cp", "-r", c.data, data).CombinedOutput(); err != nil {
		c.t.Logf("save the data directory: %v: %s", err, out)
		return
	}
	c.t.Logf("cdcd data directory: %s", data)
}

// finish stops cdcd gracefully and reports the faults.
func (c *chaos) finish() {
	if c.faults["kill_cdcd_in_write"] > 0 {
		require.Positive(c.t, c.inWrite, "no kill_cdcd_in_write fault found a write in flight: it degraded to a plain kill")
	}
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(c.t, c.cmd.Wait(), "graceful stop; log:\n%s", c.log.Tail(4000))
	c.t.Logf("faults: %v (%d kills inside a write); %d cdcd runs", c.faults, c.inWrite, c.runs)
}
