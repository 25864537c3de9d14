// Package bench is the end-to-end benchmark: the cdcd binary against a private
// Postgres, next to the physical limits measured in the same run — COPY (FORMAT
// binary) for the snapshot and pg_recvlogical (pgoutput) draining the same WAL
// for the stream. It is not part of the test command; run it with
//
//	scripts/bench                       # 1,000,000 rows + 1,300,000 changes, 3 runs
//	CDCD_BENCH_ROWS=100000 CDCD_BENCH_TXNS=130 CDCD_BENCH_RUNS=1 scripts/bench   # a quick look
//
// It prints a table, writes bench-results.json and ends with one summary line.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

var binary string

func TestMain(m *testing.M) {
	if os.Getenv("CDCD_BENCH") == "" {
		fmt.Println("bench: set CDCD_BENCH=1 (or run scripts/bench) to run the end-to-end benchmark")
		os.Exit(0)
	}
	os.Exit(testenv.RunWithCDCD(m, "../cmd/cdcd", &binary))
}

// server is one `cdcd serve` process.
type server struct {
	cmd *exec.Cmd
	url string
	log bytes.Buffer
}

func startServer(t *testing.T, dataDir string) *server {
	port := testenv.FreePort(t)
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.cmd = exec.Command(binary, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dataDir, "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, s.cmd.Start())
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 10*time.Millisecond)
	return s
}

func (s *server) call(t *testing.T, method, path string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, "%s %s: %s", method, path, b)
	_ = json.Unmarshal(b, &out)
	return out
}

// written returns the changes the pipeline's current run has written.
func (s *server) written(t *testing.T, name string) (int, string) {
	st := s.call(t, "GET", "/api/v1/pipelines/"+name+"/status", nil)
	p, _ := st["progress"].(map[string]any)
	n, _ := p["changes_written"].(float64)
	state, _ := st["state"].(string)
	return int(n), state
}

// usage is the process's peak resident memory and CPU time so far.
func (s *server) usage() (peakMiB, cpuSec float64) {
	pid := s.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				peakMiB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpuSec = (ut + st) / 100 // USER_HZ
	}
	return peakMiB, cpuSec
}

func (s *server) stop(t *testing.T) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "%s", s.log.String())
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		t.Fatalf("cdcd did not stop: %s", s.log.String())
	}
}

// waitWritten polls until the pipeline's run wrote want changes; it returns when
// that happened (polling every 20 ms).
func (s *server) waitWritten(t *testing.T, name string, want int, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		n, state := s.written(t, name)
		if n >= want {
			return time.Now()
		}
		require.NotEqual(t, "failed", state, "pipeline failed: %s", s.log.String())
		require.True(t, time.Now().Before(deadline), "pipeline %s wrote %d of %d changes in %s: %s", name, n, want, timeout, s.log.String())
		time.Sleep(20 * time.Millisecond)
	}
}

// sample is one measurement of one run.
type sample map[string]float64

// sinkSpec is a sink the benchmark drives.
func sinkSpec(kind, dir, dstDSN string) map[string]any {
	switch kind {
	case "file":
		return map[string]any{"type": "file", "config": map[string]any{"dir": filepath.Join(dir, "out")}}
	case "postgres":
		return map[string]any{"type": "postgres", "config": map[string]any{"dsn": dstDSN, "schema": "wh"}}
	}
	return map[string]any{"type": "discard"}
}

// copyOut copies acct out with COPY (FORMAT binary): the bytes and the time,
// the physical limit of reading the table.
func copyOut(t *testing.T, ctx context.Context, pool *pgxpool.Pool) (countingWriter, time.Duration) {
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var cw countingWriter
	start := time.Now()
	_, err = conn.Conn().PgConn().CopyTo(ctx, &cw, `COPY acct TO STDOUT (FORMAT binary)`)
	require.NoError(t, err)
	return cw, time.Since(start)
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// generate makes txns transactions of perTxn row changes each (inserts at the
// top, updates in the middle, deletes at the bottom of the key range).
func generate(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, rows, txns, perTxn int) error {
	lo, hi := int64(1), int64(rows)
	for range txns {
		var q string
		var args []any
		switch rng.IntN(10) {
		case 0, 1, 2:
			q, args = `INSERT INTO acct SELECT g, 'ins ' || g, g, g / 4.0, now(), ARRAY['n', NULL], jsonb_build_object('n', g) FROM generate_series($1::int8, $2::int8) g`, []any{hi + 1, hi + int64(perTxn)}
			hi += int64(perTxn)
		case 3, 4:
			q, args = `DELETE FROM acct WHERE id BETWEEN $1 AND $2`, []any{lo, lo + int64(perTxn) - 1}
			lo += int64(perTxn)
		default:
			start := lo + rng.Int64N(max(hi-lo-int64(perTxn), 1))
			q, args = `UPDATE acct SET v = v + 1, note = note || '+', amount = amount + 0.01, doc = doc || '{"u": 1}' WHERE id BETWEEN $1 AND $2`, []any{start, start + int64(perTxn) - 1}
		}
		tag, err := pool.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != int64(perTxn) {
			return fmt.Errorf("%s changed %d rows, not %d", q, tag.RowsAffected(), perTxn)
		}
	}
	return nil
}

// latency drives the lat table at rate changes/s for d (transactions of 100
// rows) through a running Postgres-sink pipeline and returns each
// transaction's commit-to-visible latency.
func latency(t *testing.T, ctx context.Context, src, dst *pgxpool.Pool, rate int, d time.Duration) []time.Duration {
	type txn struct {
		last      int64
		committed time.Time
	}
	var mu sync.Mutex
	var pending []txn
	var out []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the poller: ids are applied in commit order
		var seen int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			var m int64
			if err := dst.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM wh.lat`).Scan(&m); err == nil && m > seen {
				now := time.Now()
				seen = m
				mu.Lock()
				for len(pending) > 0 && pending[0].last <= m {
					out = append(out, now.Sub(pending[0].committed))
					pending = pending[1:]
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	per := 100
	tick := time.NewTicker(time.Second * time.Duration(per) / time.Duration(rate))
	defer tick.Stop()
	next := int64(1)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		<-tick.C
		// committed as production commits (the test servers run with
		// synchronous_commit off, whose WAL the walwriter flushes, and
		// logical decoding reads, up to wal_writer_delay = 200 ms later)
		err := pgx.BeginFunc(ctx, src, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO lat SELECT g, now() FROM generate_series($1::int8, $2::int8) g`, next, next+int64(per)-1)
			return err
		})
		require.NoError(t, err)
		mu.Lock()
		pending = append(pending, txn{last: next + int64(per) - 1, committed: time.Now()})
		mu.Unlock()
		next += int64(per)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(pending) == 0 }, time.Minute, 10*time.Millisecond)
	close(stop)
	wg.Wait()
	return out
}

func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds()) / 1000
}

// TestEndToEnd is the benchmark (see the package doc).
func TestEndToEnd(t *testing.T) {
	rows := testenv.EnvInt("CDCD_BENCH_ROWS", 1_000_000)
	txns := testenv.EnvInt("CDCD_BENCH_TXNS", 1300)
	perTxn := testenv.EnvInt("CDCD_BENCH_TXN_ROWS", 1000)
	runs := testenv.EnvInt("CDCD_BENCH_RUNS", 3)
	sinks := strings.Split(os.Getenv("CDCD_BENCH_SINKS"), ",")
	if sinks[0] == "" {
		sinks = []string{"discard", "file", "postgres"}
	}
	changes := txns * perTxn
	ctx := context.Background()
	t.Logf("workload: %d-row snapshot, then %d changes in %d transactions; %d runs; sinks %v", rows, changes, txns, runs, sinks)

	var samples []sample
	for run := 1; run <= runs; run++ {
		s := sample{}
		settings := []testenv.PostgresOption{testenv.WithSetting("max_wal_size", "8GB"), testenv.WithSetting("checkpoint_timeout", "30min"),
			testenv.WithSetting("synchronous_commit", "off")}
		src := testenv.StartPostgres(t, settings...)
		dst := testenv.StartPostgres(t, settings...)
		srcDSN, dstDSN := src.CreateDatabase(t, fmt.Sprintf("app%d", run)), dst.CreateDatabase(t, fmt.Sprintf("wh%d", run))
		pool, err := pgxpool.New(ctx, srcDSN)
		require.NoError(t, err)
		dpool, err := pgxpool.New(ctx, dstDSN)
		require.NoError(t, err)
		require.NoError(t, testenv.FillAcct(ctx, pool, rows))
		for _, q := range []string{`CREATE TABLE lat (id int8 PRIMARY KEY, at timestamptz)`, `VACUUM ANALYZE acct`, `CHECKPOINT`} {
			_, err = pool.Exec(ctx, q)
			require.NoError(t, err)
		}

		// limit: COPY (FORMAT binary)
		cw, copyTime := copyOut(t, ctx, pool)
		s["copy_rows_per_s"] = float64(rows) / copyTime.Seconds()
		s["copy_mb_per_s"] = float64(cw.n) / 1e6 / copyTime.Seconds()

		// snapshots, one pipeline per sink, each left paused after it
		dir := t.TempDir()
		pipeline := func(kind string, tables []string, maxWait string) map[string]any {
			return map[string]any{"name": "bench_" + kind, "source": map[string]any{"type": "postgres",
				"config": map[string]any{"dsn": srcDSN, "tables": tables, "heartbeat_interval": "1s"}},
				"sink": sinkSpec(kind, filepath.Join(dir, kind), dstDSN), "batch": map[string]any{"max_wait": maxWait}}
		}
		for _, kind := range sinks {
			srv := startServer(t, filepath.Join(dir, kind, "data"))
			start := time.Now()
			srv.call(t, "PUT", "/api/v1/pipelines/bench_"+kind, pipeline(kind, []string{"public.acct"}, "1s"))
			done := srv.waitWritten(t, "bench_"+kind, rows, 30*time.Minute)
			el := done.Sub(start)
			rss, cpu := srv.usage()
			s["snapshot_"+kind+"_rows_per_s"] = float64(rows) / el.Seconds()
			s["snapshot_"+kind+"_mb_per_s"] = float64(cw.n) / 1e6 / el.Seconds()
			s["snapshot_"+kind+"_ratio"] = copyTime.Seconds() / el.Seconds()
			s["snapshot_"+kind+"_peak_rss_mib"], s["snapshot_"+kind+"_cpu_s"] = rss, cpu
			srv.call(t, "POST", "/api/v1/pipelines/bench_"+kind+"/pause", nil)
			srv.stop(t)
		}

		// the stream: one workload into the WAL every slot holds
		_, err = pool.Exec(ctx, `CREATE PUBLICATION bench_pub FOR TABLE acct`)
		require.NoError(t, err)
		var startLSN string
		require.NoError(t, pool.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot('bench_recv', 'pgoutput')`).Scan(&startLSN))
		require.NoError(t, generate(ctx, pool, rand.New(rand.NewPCG(uint64(run), 9)), rows, txns, perTxn))
		var endLSN string
		require.NoError(t, pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endLSN))
		a, _ := pglogrepl.ParseLSN(startLSN)
		b, _ := pglogrepl.ParseLSN(endLSN)
		walMB := float64(b-a) / 1e6

		// limit: pg_recvlogical draining the same WAL
		start := time.Now()
		out, err := exec.Command(src.Bin("pg_recvlogical"), "-d", srcDSN, "-S", "bench_recv", "--start", "-E", endLSN, "-f", "/dev/null",
			"-o", "proto_version=1", "-o", "publication_names=bench_pub", "--no-loop").CombinedOutput()
		require.NoError(t, err, "%s", out)
		recvTime := time.Since(start)
		s["recvlogical_changes_per_s"] = float64(changes) / recvTime.Seconds()
		s["recvlogical_mb_per_s"] = walMB / recvTime.Seconds()

		for _, kind := range sinks {
			srv := startServer(t, filepath.Join(dir, kind, "data"))
			start := time.Now()
			srv.call(t, "POST", "/api/v1/pipelines/bench_"+kind+"/resume", nil)
			done := srv.waitWritten(t, "bench_"+kind, changes, 30*time.Minute)
			el := done.Sub(start)
			rss, cpu := srv.usage()
			s["stream_"+kind+"_changes_per_s"] = float64(changes) / el.Seconds()
			s["stream_"+kind+"_mb_per_s"] = walMB / el.Seconds()
			s["stream_"+kind+"_ratio"] = recvTime.Seconds() / el.Seconds()
			s["stream_"+kind+"_peak_rss_mib"], s["stream_"+kind+"_cpu_s"] = rss, cpu
			srv.call(t, "POST", "/api/v1/pipelines/bench_"+kind+"/pause", nil)
			srv.stop(t)
		}

		// commit-to-visible latency into the Postgres sink at a steady 10,000 changes/s
		if slices.Contains(sinks, "postgres") {
			srv := startServer(t, filepath.Join(dir, "lat", "data"))
			srv.call(t, "PUT", "/api/v1/pipelines/bench_lat", map[string]any{"name": "bench_lat", "source": map[string]any{"type": "postgres",
				"config": map[string]any{"dsn": srcDSN, "tables": []string{"public.lat"}, "heartbeat_interval": "1s"}},
				"sink": sinkSpec("postgres", dir, dstDSN), "batch": map[string]any{"max_wait": "100ms"}})
			require.Eventually(t, func() bool {
				_, err := dpool.Exec(ctx, `SELECT 1 FROM wh.lat LIMIT 1`)
				return err == nil
			}, time.Minute, 50*time.Millisecond, "the latency table never appeared: %s", srv.log.String())
			lat := latency(t, ctx, pool, dpool, 10_000, time.Duration(testenv.EnvInt("CDCD_BENCH_LATENCY_S", 20))*time.Second)
			s["latency_p50_ms"], s["latency_p99_ms"] = percentile(lat, 0.5), percentile(lat, 0.99)
			rss, _ := srv.usage()
			s["latency_peak_rss_mib"] = rss
			srv.stop(t)
		}
		pool.Close()
		dpool.Close()
		src.Stop()
		dst.Stop()
		samples = append(samples, s)
		t.Logf("run %d: %v", run, s)
	}
	report(t, samples, map[string]any{"rows": rows, "changes": changes, "transactions": txns, "runs": runs, "sinks": sinks})
}

// stat is a metric's median and range over the runs.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func report(t *testing.T, samples []sample, workload map[string]any) {
	stats := map[string]stat{}
	for k := range samples[0] {
		var v []float64
		for _, s := range samples {
			v = append(v, s[k])
		}
		slices.Sort(v)
		stats[k] = stat{Median: v[len(v)/2], Min: v[0], Max: v[len(v)-1]}
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %14s %14s %14s\n", "metric", "median", "min", "max")
	for _, k := range keys {
		st := stats[k]
		fmt.Fprintf(&b, "%-36s %14.2f %14.2f %14.2f\n", k, st.Median, st.Min, st.Max)
	}
	fmt.Print(b.String())
	out := os.Getenv("CDCD_BENCH_OUT")
	if out == "" {
		out = "bench-results.json"
	}
	j, err := json.MarshalIndent(map[string]any{"workload": workload, "metrics": stats, "date": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(out, j, 0o644))
	peak := 0.0
	for k, st := range stats {
		if strings.HasSuffix(k, "_peak_rss_mib") {
			peak = max(peak, st.Max)
		}
	}
	fmt.Printf("summary stream_ratio=%.2f snapshot_ratio=%.2f pgsink_ratio=%.2f peak_rss_mib=%.0f p99_ms=%.0f\n",
		stats["stream_discard_ratio"].Median, stats["snapshot_discard_ratio"].Median, stats["stream_postgres_ratio"].Median, peak,
		stats["latency_p99_ms"].Median)
}
