package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
	stop := h.run(r)
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

// TestStreamInProgressAddColumn: the first change after an ADD COLUMN comes
// in a streamed in-progress transaction, so its Relation message arrives in a
// stream chunk, before the transaction commits. The new version takes effect
// at that transaction's position, as the replay at its commit reads it: not
// at an earlier position of the session (rows changed in between then missed
// the added column's value for older rows), and the same in every session
// (found by the crash oracle: no fill at all after a restart).
func TestStreamInProgressAddColumn(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t, testenv.WithSetting("logical_decoding_work_mem", "64kB"))
	h := newHarness(t, pg, `CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, 'a' FROM generate_series(1, 1000) g`)
	cfg := h.config("public.big")
	cfg.StreamInProgress = true
	cfg.SpoolDir = t.TempDir()
	r, src := h.runner(cfg)
	stop := h.run(r)
	h.waitSynced("public.big", "id")
	require.Eventually(t, func() bool { return r.Streaming() && !r.Snapshotting() }, 30*time.Second, 10*time.Millisecond)

	h.exec(`UPDATE big SET v = 'before' WHERE id <= 10`)
	h.exec(`ALTER TABLE big ADD COLUMN extra int4 DEFAULT -1`)
	h.exec(`INSERT INTO big SELECT g, repeat('b', 50), g FROM generate_series(10001, 30000) g`)
	h.waitSynced("public.big", "id")
	require.NoError(t, stop())
	require.Greater(t, src.streamedChunks.Load(), int64(0), "the server streamed the transaction in progress")

	all, err := h.versions.LoadTableVersions(context.Background(), "p")
	require.NoError(t, err)
	require.Len(t, all, 2)
	// the position of the streamed transaction's first change, as written
	b, err := os.ReadFile(filepath.Join(h.dir, "public.big.jsonl"))
	require.NoError(t, err)
	var first string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"id":10001`) {
			var rec struct {
				Pos string `json:"pos"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			first = rec.Pos
			break
		}
	}
	require.NotEmpty(t, first)
	require.Equal(t, first, hex.EncodeToString(all[1].Pos), "version 2 is in force from the streamed transaction's first change, %s", Describe(all[1].Pos))
}
