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
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.big", "id")

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

	// slot statistics are flushed asynchronously
	require.Eventually(t, func() bool {
		var streamed int64
		err := h.pool.QueryRow(context.Background(), `SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&streamed)
		return err == nil && streamed > 0
	}, 15*time.Second, 50*time.Millisecond, "the server streamed in-progress transactions")
	entries, err := readDir(cfg.SpoolDir)
	require.NoError(t, err)
	require.Empty(t, entries, "spool files are removed after commit and abort")
}
