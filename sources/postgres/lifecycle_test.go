package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// TestCleanupDropsSlotAndPublication: deleting a pipeline drops its slot and
// publication, unless keep_slot_on_delete is set.
func TestCleanupDropsSlotAndPublication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c VALUES (1)`)
	cfg := h.config("public.c")
	stop, _ := h.start(cfg)
	h.waitSynced("public.c", "id")
	require.NoError(t, stop())
	require.Equal(t, 1, h.count(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot))

	keep := cfg
	keep.KeepSlotOnDelete = true
	require.NoError(t, New(keep, sources.Deps{}).Cleanup(context.Background()))
	require.Equal(t, 1, h.count(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot), "kept")

	require.NoError(t, New(cfg, sources.Deps{}).Cleanup(context.Background()))
	require.Equal(t, 0, h.count(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot))
	require.Equal(t, 0, h.count(`SELECT count(*) FROM pg_publication WHERE pubname = $1`, cfg.Publication))
	require.NoError(t, New(cfg, sources.Deps{}).Cleanup(context.Background()), "cleanup is idempotent")
	require.Empty(t, New(keep, sources.Deps{}).Leftover(), "nothing is left to drop when the slot is kept on purpose")
}

// TestLeftoverStatementsDropSlotAndPublication: the statements a forced
// delete tells a person to run drop what Cleanup would have.
func TestLeftoverStatementsDropSlotAndPublication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c VALUES (1)`)
	cfg := h.config("public.c")
	stop, _ := h.start(cfg)
	h.waitSynced("public.c", "id")
	require.NoError(t, stop())
	require.Equal(t, 1, h.count(`SELECT count(*) FROM pg_publication WHERE pubname = $1`, cfg.Publication))
	l := New(cfg, sources.Deps{}).Leftover()
	require.Contains(t, l.What, cfg.Slot)
	// as a person would: again while the walsender the statements end is
	// still letting go of the slot
	require.Eventually(t, func() bool { _, err := h.pool.Exec(context.Background(), l.SQL); return err == nil }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, 0, h.count(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot))
	require.Equal(t, 0, h.count(`SELECT count(*) FROM pg_publication WHERE pubname = $1`, cfg.Publication))
}

// TestSlotConfirmedPastCheckpoint: a slot confirmed beyond the stored offset
// (something else consumed it) is history lost, not a silent skip.
func TestSlotConfirmedPastCheckpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1)`)
	cfg := h.config("public.a")
	stop, _ := h.start(cfg)
	h.waitSynced("public.a", "id")
	h.exec(`INSERT INTO a VALUES (2)`)
	h.waitSynced("public.a", "id")
	require.NoError(t, stop())

	h.exec(`INSERT INTO a VALUES (3)`) // a change the pipeline has not seen
	h.onFreeSlot(cfg.Slot, func() bool {
		// advance stops at the flushed WAL (the test server commits asynchronously):
		// repeat until the slot really is past the stored checkpoint
		_, err := h.pool.Exec(context.Background(), `SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())`, cfg.Slot)
		return err == nil && h.slotConfirmed(cfg.Slot) > h.committedLSN()
	})

	r, _ := h.runner(cfg)
	err := r.Run(context.Background())
	require.True(t, component.NeedsResync(err), "got %v", err)
	require.Contains(t, err.Error(), "past this pipeline's checkpoint")
}

// TestCatalogReadCutIsRetryable: a connection lost while the catalog is read
// (the chaos oracle cut the source there, and the pipeline stayed failed for
// good) is retryable; a missing table or one without a key is permanent.
func TestCatalogReadCutIsRetryable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, startPG(t), `CREATE TABLE c (id int PRIMARY KEY); CREATE TABLE nokey (v int)`)
	pool, err := openPool(ctx, h.dsn, 1)
	require.NoError(t, err)
	defer pool.Close()
	var pid int
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = h.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	_, err = loadTables(ctx, pool, []schema.TableID{{Namespace: "public", Name: "c"}}, newTypeCache())
	require.Error(t, err)
	require.False(t, component.IsPermanent(err), "a lost connection is retried: %v", err)

	_, err = loadTables(ctx, pool, []schema.TableID{{Namespace: "public", Name: "gone"}, {Namespace: "public", Name: "nokey"}}, newTypeCache())
	require.ErrorContains(t, err, "table public.gone does not exist")
	require.ErrorContains(t, err, "table public.nokey has no primary key")
	require.True(t, component.IsPermanent(err))
}
