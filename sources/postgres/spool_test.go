package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestStreamInProgress: with stream_in_progress, large transactions arrive in
// chunks before they commit; committed ones are delivered whole, aborted ones and
// rolled-back savepoints never reach the sink.
func TestStreamInProgress(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t, testenv.WithSetting("logical_decoding_work_mem", "64kB"))
	h := newHarness(t, pg, `CREATE TABLE big (id int PRIMARY KEY, v text)`)
	cfg := h.config("public.big")
	cfg.StreamInProgress = true
	cfg.SpoolDir = t.TempDir()
	r, src := h.runner(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	stop := func() error { cancel(); return <-errc }
	h.waitSynced("public.big", "id")
	// stream first: a transaction running while the slot is created lands before
	// its consistent point and comes through the snapshot instead
	require.Eventually(t, func() bool { return r.Streaming() && !r.Snapshotting() && h.slotConfirmed(cfg.Slot) > 0 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		var active bool
		err := h.pool.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&active)
		return err == nil && active
	}, 30*time.Second, 10*time.Millisecond)

	h.exec(`INSERT INTO big SELECT g, repeat('a', 50) FROM generate_series(1, 20000) g`)
	h.exec(`BEGIN; INSERT INTO big SELECT g, 'never' FROM generate_series(100001, 120000) g; ROLLBACK`)
	h.exec(`BEGIN;
		INSERT INTO big SELECT g, 'kept' FROM generate_series(200001, 210000) g;
		SAVEPOINT s;
		INSERT INTO big SELECT g, 'rolled back' FROM generate_series(300001, 310000) g;
		ROLLBACK TO SAVEPOINT s;
		UPDATE big SET v = 'updated in a streamed transaction' WHERE id <= 5000;
		INSERT INTO big SELECT g, 'kept too' FROM generate_series(400001, 405000) g;
		COMMIT`)
	h.waitSynced("public.big", "id")
	require.NoError(t, stop())

	require.Greater(t, src.streamedChunks.Load(), int64(0), "the server streamed in-progress transactions")
	entries, err := readDir(cfg.SpoolDir)
	require.NoError(t, err)
	require.Empty(t, entries, "spool files are removed after commit and abort")
}
