package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// warehouseRun is one Postgres → warehouse run of the acct workload with cdcd
// killed mid-run.
type warehouseRun struct {
	// rows is the table's size at the start; the writer changes total rows
	// per transaction, at most span rows per statement, one transaction per pause.
	rows   int
	writes struct {
		total, span int
		pause       time.Duration
	}
	// sink is the pipeline's sink: its type and config, as YAML under "sink:".
	sink string
	// read returns the destination's acct: live rows by id rendered with
	// testenv.AcctRow, and the ids of soft-deleted rows.
	read func() (map[int64]string, map[int64]bool, error)
}

// runKilledAcct runs Postgres → `cdcd run` → the warehouse with the acct
// workload (inserts, updates, deletes and key moves in transactions of the
// run's size) while cdcd is SIGKILLed and restarted three times, then compares
// the destination with the source: every source row is a live row with the
// same values, and every other destination row is a soft delete.
func runKilledAcct(t *testing.T, newRun func(dir string) warehouseRun) {
	ctx := context.Background()
	src := testenv.StartPostgres(t, durable()...)
	dsn := src.CreateDatabase(t, "app")
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	dir := t.TempDir()
	w := newRun(dir)
	rows := w.rows
	require.NoError(t, testenv.FillAcct(ctx, pool, rows))
	cfg := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: wh
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 1000, heartbeat_interval: 1s, status_interval: 500ms}
    sink:
%s
    batch: {max_changes: 5000, max_wait: 300ms}
`, dsn, w.sink)), 0o644))

	log := &testenv.Output{}
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(binary, "run", "-f", cfg, "--data-dir", filepath.Join(dir, "data"))
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
	}
	kill := func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	defer func() {
		if t.Failed() {
			t.Logf("cdcd log (tail):\n%s", log.Tail(6000))
		}
	}()

	start()
	for wait := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		got, _, err := w.read()
		if err == nil && len(got) > 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the snapshot never reached the destination (last read: %d rows, %v)", len(got), err)
		}
	}

	// The writer stops between statements, never inside one: a statement whose
	// context is cancelled can still commit at the server after the client gave
	// up on it, after the source was read for the comparison.
	var stopped atomic.Bool
	var txns atomic.Int64
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(11, 12))
		aw := testenv.AcctWriter{Rows: rows, Next: int64(rows + 1), Span: w.writes.span}
		for !stopped.Load() {
			if err := aw.Write(ctx, pool, rng, w.writes.total); err != nil {
				done <- err
				return
			}
			txns.Add(1)
			time.Sleep(w.writes.pause)
		}
		done <- nil
	}()
	kills := 0
	for range 3 {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		kill()
		kills++
		start()
	}
	time.Sleep(2 * time.Second)
	stopped.Store(true)
	require.NoError(t, <-done)

	want, err := testenv.AcctSource(ctx, pool)
	require.NoError(t, err)

	var live, deleted, stale, missing, ghost int
	var example string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, dels, err := w.read()
		if err == nil {
			live, deleted, stale, missing, ghost, example = len(got), len(dels), 0, 0, 0, ""
			for id, w := range want {
				g, ok := got[id]
				switch {
				case !ok:
					missing++
					example = fmt.Sprintf("missing %d", id)
				case g != w:
					stale++
					example = fmt.Sprintf("stale %d: want %s, got %s", id, w, g)
				}
			}
			for id := range got {
				if _, ok := want[id]; !ok {
					ghost++
					example = fmt.Sprintf("live at the destination, gone at the source: %d", id)
				}
			}
			if missing == 0 && stale == 0 && ghost == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination differs: %d missing, %d stale, %d live but deleted at the source (e.g. %s); last error %v", missing, stale, ghost, example, err)
		}
		time.Sleep(time.Second)
	}
	require.Positive(t, deleted, "the workload deletes and moves keys: some rows must be soft-deleted")
	t.Logf("%d writer transactions, %d kills; %d live rows equal the source, %d soft-deleted", txns.Load(), kills, live, deleted)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "graceful stop; log:\n%s", log.Tail(3000))
}
