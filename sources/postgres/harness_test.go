package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/offsets/memstore"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// memProgress is an in-memory sources.ProgressStore.
type memProgress = sourcetest.MemProgress

// harness is one pipeline from a private Postgres into a file sink, run by the
// real engine, restartable.
type harness struct {
	t        *testing.T
	pg       *testenv.Postgres
	dsn      string
	pool     *pgxpool.Pool
	dir      string
	cfg      Config
	offsets  *memstore.Store
	versions *schema.MemoryVersions
	progress *memProgress
}

func newHarness(t *testing.T, pg *testenv.Postgres, setup string) *harness {
	t.Helper()
	db := strings.ToLower(strings.NewReplacer("/", "_", "#", "_").Replace(t.Name()))
	if len(db) > 50 {
		db = db[len(db)-50:]
	}
	dsn := pg.CreateDatabase(t, db)
	pool, err := openPool(context.Background(), dsn, 4)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(context.Background(), setup)
	require.NoError(t, err)
	return &harness{t: t, pg: pg, dsn: dsn, pool: pool, dir: t.TempDir(), offsets: &memstore.Store{},
		versions: &schema.MemoryVersions{}, progress: &memProgress{}}
}

func (h *harness) config(tables ...string) Config {
	c := Config{DSN: h.dsn, Tables: tables, SnapshotChunkRows: 100, SnapshotWorkers: 3,
		HeartbeatInterval: "1s", StatusInterval: "200ms", SlotPollInterval: "1s"}.WithDefaults("p")
	require.NoError(h.t, c.Validate())
	return c
}

// runner builds a runner for one attempt.
func (h *harness) runner(cfg Config) (*pipeline.Runner, *Source) {
	return h.runnerWith(cfg, h.offsets)
}

// runnerWith builds a runner committing offsets to store (which wraps h.offsets).
func (h *harness) runnerWith(cfg Config, store offsets.Store) (*pipeline.Runner, *Source) {
	ctx := context.Background()
	epoch, err := h.offsets.Acquire(ctx, "p")
	require.NoError(h.t, err)
	reg, err := schema.NewRegistry(ctx, h.versions, "p")
	require.NoError(h.t, err)
	src := New(cfg, sources.Deps{Pipeline: "p", Schema: reg, Progress: h.progress, MaxChanges: 500, MaxWait: 20 * time.Millisecond, Epoch: uint64(epoch)})
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Pipeline: "p", Source: src, Sink: file.New(file.Config{Dir: h.dir}, sinks.Deps{}),
		Offsets: store, Epoch: epoch, MaxChanges: 2000, MaxWait: 20 * time.Millisecond, DrainTimeout: 10 * time.Second})
	require.NoError(h.t, err)
	return r, src
}

// start runs an attempt in the background; stop ends it and returns its error.
func (h *harness) start(cfg Config) (stop func() error, r *pipeline.Runner) {
	r, _ = h.runner(cfg)
	return h.run(r), r
}

// run runs r in the background; stop ends it and returns its error.
func (h *harness) run(r *pipeline.Runner) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	_, err := h.pool.Exec(context.Background(), sql, args...)
	require.NoError(h.t, err, sql)
}

// sourceState reads a table the way the snapshot does and renders it like the
// file sink's State: primary key JSON → row JSON.
func (h *harness) sourceState(table string, _ string) map[string]string {
	h.t.Helper()
	ctx := context.Background()
	types := newTypeCache()
	id := schema.ParseTableID(table)
	tables, err := loadTables(ctx, h.pool, []schema.TableID{id}, types)
	require.NoError(h.t, err)
	ti := tables[0]
	cols := make([]string, len(ti.Columns))
	for i, c := range ti.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	rows, err := h.pool.Query(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ","), quoted(id)), pgx.QueryResultFormats{pgx.TextFormatCode})
	require.NoError(h.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		row, err := types.decodeRow(ti, rows.RawValues())
		require.NoError(h.t, err)
		var k schema.Row // the primary key, in key order, as the sink keys rows
		for _, i := range ti.keyIndexes() {
			k = append(k, row[i])
		}
		out[string(k.AppendJSON(nil))] = string(row.AppendJSON(nil))
	}
	require.NoError(h.t, rows.Err())
	return out
}

// waitSynced waits until the file sink holds exactly the source table.
func (h *harness) waitSynced(table, key string) {
	h.t.Helper()
	var want, got map[string]string
	ok := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		want = h.sourceState(table, key)
		st, err := file.State(h.dir)
		if err != nil && time.Now().Before(deadline) {
			// a line the sink is writing reads as cut short: read again
			time.Sleep(50 * time.Millisecond)
			continue
		}
		require.NoError(h.t, err, "the sink output has a duplicate or reordered change")
		got = st[table]
		if len(got) == len(want) {
			ok = true
			for k, v := range want {
				if !sameOnSourceColumns(v, got[k]) {
					ok = false
					break
				}
			}
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	missing, extra, stale := 0, 0, 0
	for k, v := range want {
		g, present := got[k]
		switch {
		case !present:
			missing++
		case !sameOnSourceColumns(v, g):
			stale++
			if stale == 1 {
				h.t.Logf("stale %s:\n  source %s\n  sink   %s", k, v, g)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	h.t.Fatalf("%s never matched the source: %d missing, %d extra, %d stale (source %d rows, sink %d)", table, missing, extra, stale, len(want), len(got))
}

// slotConfirmed returns the slot's confirmed_flush_lsn.
func (h *harness) slotConfirmed(slot string) pglogrepl.LSN {
	h.t.Helper()
	var s *string
	err := h.pool.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s)
	if err != nil || s == nil {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	require.NoError(h.t, err)
	return lsn
}

// committedLSN returns the LSN the offset store holds (the consistent point
// during the snapshot).
func (h *harness) committedLSN() pglogrepl.LSN {
	p, err := h.offsets.Load(context.Background(), "p")
	if err != nil {
		return 0
	}
	cp, err := decodeCheckpoint(p)
	require.NoError(h.t, err)
	if cp.phase == phaseSnapshot {
		return cp.consistent
	}
	return cp.end
}

func schemaID(s string) schema.TableID { return schema.ParseTableID(s) }

func pgxPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) { return pgxpool.New(ctx, dsn) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// sameOnSourceColumns compares a sink row with a source row on the source's
// columns: columns dropped at the source are kept at the destination.
func sameOnSourceColumns(source, sink string) bool {
	if source == sink {
		return true
	}
	var a, b map[string]json.RawMessage
	if json.Unmarshal([]byte(source), &a) != nil || json.Unmarshal([]byte(sink), &b) != nil {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

func readDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }

// committedPhase returns the phase (snapshot or stream) of the committed offset.
func (h *harness) committedPhase() uint64 {
	h.t.Helper()
	p, err := h.offsets.Load(context.Background(), "p")
	require.NoError(h.t, err)
	cp, err := decodeCheckpoint(p)
	require.NoError(h.t, err)
	return cp.phase
}

// onFreeSlot terminates the slot's walsender (which may still be exiting after
// a stop) and runs f, until f reports success.
func (h *harness) onFreeSlot(slot string, f func() bool) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		_, err := h.pool.Exec(context.Background(), `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		return err == nil && f()
	}, 10*time.Second, 20*time.Millisecond)
}

// configWith returns cfg for other tables.
func (h *harness) configWith(cfg Config, tables ...string) Config {
	cfg.Tables = tables
	cfg.WithDefaults("p")
	require.NoError(h.t, cfg.Validate())
	return cfg
}
