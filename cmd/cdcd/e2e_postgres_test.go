package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func pgConfig(t *testing.T, dir, dsn, extra string) string {
	path := filepath.Join(dir, "pg.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
pipelines:
  - name: pgfile
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 1000, heartbeat_interval: 1s, status_interval: 500ms, slot_poll_interval: 1s%s}
    sink: {type: file, config: {dir: %q}}
    batch: {max_changes: 2000, max_wait: 50ms}
`, dsn, extra, filepath.Join(dir, "out"))), 0o644))
	return path
}

// startRun starts `cdcd run -f` and returns the process.
func startRun(t *testing.T, cfg, data string, log io.Writer) *exec.Cmd {
	cmd := exec.Command(binary, "run", "-f", cfg, "--data-dir", data)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	return cmd
}

// sourceRows renders the source table like the file sink's State (simple types
// only: row_to_json matches the sink's JSON for int8 and text).
func sourceRows(t *testing.T, pool *pgxpool.Pool) map[string]string {
	rows, err := pool.Query(context.Background(), `SELECT '{"id":' || id || '}', row_to_json(a)::text FROM acct a`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

func requireSinkEqualsSource(t *testing.T, pool *pgxpool.Pool, dir string) {
	t.Helper()
	var want, got map[string]string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		want = sourceRows(t, pool)
		st, err := file.State(dir)
		require.NoError(t, err, "duplicate or reordered change in the sink output")
		got = st["public.acct"]
		if len(got) == len(want) {
			same := true
			for k, v := range want {
				if got[k] != v {
					same = false
					break
				}
			}
			if same {
				return
			}
		}
	}
	missing, extra, stale := 0, 0, 0
	for k, v := range want {
		if g, ok := got[k]; !ok {
			missing++
		} else if g != v {
			stale++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	var sample []string
	for k := range want {
		if _, ok := got[k]; !ok && len(sample) < 5 {
			sample = append(sample, k)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && len(sample) < 10 {
			t.Logf("extra in the sink: %s = %s", k, v)
		}
	}
	if ev := os.Getenv("CDCD_KEEP_EVIDENCE"); ev != "" {
		_ = exec.Command("cp", "-r", dir, ev).Run()
		t.Logf("sink output kept in %s", ev)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "public.acct.jsonl"))
	for _, k := range sample {
		t.Logf("missing %s; source %s", k, want[k])
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"key":`+k) {
				t.Logf("  sink line: %s", line)
			}
		}
	}
	t.Fatalf("sink never equal to source: %d missing, %d extra, %d stale", missing, extra, stale)
}

// TestPostgresSurvivesKills: cdcd is SIGKILLed during the snapshot and several
// times while streaming, and Postgres itself is SIGKILLed and restarted once;
// writes go on throughout. The file sink ends identical to the source.
func TestPostgresSurvivesKills(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	// A crash test needs commits that are durable when acknowledged: with
	// asynchronous commit the snapshot can read a transaction that the crash
	// then erases from the source.
	pg := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	dsn := pg.CreateDatabase(t, "kills")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE acct (id int8 PRIMARY KEY, note text, v int8);
		INSERT INTO acct SELECT g, 'n' || g, g FROM generate_series(1, 30000) g`)
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := pgConfig(t, dir, dsn, "")
	data := filepath.Join(dir, "data")

	// writer: a steady mix of inserts, updates, deletes and multi-row transactions
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wr := rand.New(rand.NewPCG(seed, 3))
		next := int64(100_000)
		for wctx.Err() == nil {
			var err error
			switch wr.IntN(4) {
			case 0:
				_, err = pool.Exec(wctx, `INSERT INTO acct VALUES ($1, 'ins', 0)`, next)
				next++
			case 1:
				_, err = pool.Exec(wctx, `UPDATE acct SET v = v + 1, note = 'upd' WHERE id = $1`, 1+wr.Int64N(30000))
			case 2:
				_, err = pool.Exec(wctx, `DELETE FROM acct WHERE id = $1`, 1+wr.Int64N(30000))
			case 3:
				_, err = pool.Exec(wctx, `UPDATE acct SET v = v * 2 WHERE id BETWEEN $1 AND $1 + 200`, 1+wr.Int64N(30000))
			}
			if err != nil && wctx.Err() == nil {
				time.Sleep(20 * time.Millisecond) // the server is being killed: retry
			}
		}
	}()

	var log syncBuffer
	kills := 0
	for i := range 6 {
		cmd := startRun(t, cfg, data, &log)
		wait := time.Duration(150+rng.IntN(600)) * time.Millisecond
		if i == 0 {
			wait = 300 * time.Millisecond // inside the snapshot of 30,000 rows
		}
		time.Sleep(wait) // a random point to crash at
		if i == 3 {
			pg.Kill()
			time.Sleep(200 * time.Millisecond)
			require.NoError(t, pg.Restart())
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		kills++
	}
	cmd := startRun(t, cfg, data, &log)
	time.Sleep(time.Second)
	stopWriter()
	wg.Wait()
	defer func() {
		if t.Failed() {
			l := log.String()
			t.Logf("cdcd log (last 6000 bytes):\n%s", l[max(0, len(l)-6000):])
		}
	}()
	requireSinkEqualsSource(t, pool, filepath.Join(dir, "out"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", log.String())
	t.Logf("%d SIGKILLs of cdcd, 1 of Postgres: sink equals source", kills)
}

// TestPostgresLargeTransactionMemory streams one 1,000,000-row transaction and
// reports cdcd's peak RSS, which must stay under 150 MiB: no stage holds a whole
// transaction.
func TestPostgresLargeTransactionMemory(t *testing.T) {
	t.Parallel()
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CDCD_BIG_TXN_ROWS")); err == nil {
		rows = v
	}
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "bigtxn")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE acct (id int8 PRIMARY KEY, note text, v int8)`)
	require.NoError(t, err)
	dir := t.TempDir()
	var log syncBuffer
	cmd := startRun(t, pgConfig(t, dir, dsn, ""), filepath.Join(dir, "data"), &log)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.Eventually(t, func() bool {
		var active bool
		err := pool.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = 'cdcd_pgfile'`).Scan(&active)
		return err == nil && active
	}, 60*time.Second, 50*time.Millisecond, "cdcd never started streaming: %s", &log)

	start := time.Now()
	_, err = pool.Exec(ctx, `INSERT INTO acct SELECT g, repeat('x', 64), g FROM generate_series(1, $1) g`, rows)
	require.NoError(t, err)
	out := filepath.Join(dir, "out", "public.acct.jsonl")
	require.Eventually(t, func() bool { return countLines(out) >= rows }, 5*time.Minute, 200*time.Millisecond)
	took := time.Since(start)
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("1 transaction of %d rows streamed in %v (%.0f rows/s); cdcd peak RSS %.1f MiB", rows, took, float64(rows)/took.Seconds(), float64(peak)/(1<<20))
	require.Less(t, peak, int64(150<<20), "peak RSS %d bytes", peak)
	require.Equal(t, rows, countLines(out), "each row exactly once")
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			return n
		}
	}
}

// peakRSS reads VmHWM (the peak resident set) of pid.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
