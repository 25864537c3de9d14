package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipelineStatus is what `cdcd pipelines get -o json` says of a pipeline.
type pipelineStatus struct {
	State     string `json:"state"`
	LastError string `json:"last_error"`
	Status    struct {
		Attempts  int       `json:"failed_attempts"`
		NextRetry time.Time `json:"next_retry"`
		Running   bool      `json:"running"`
		Progress  struct {
			ChangesWritten int `json:"changes_written"`
		} `json:"progress"`
	} `json:"status"`
}

func getPipeline(t *testing.T, env []string, name string) pipelineStatus {
	t.Helper()
	var p pipelineStatus
	require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "get", name, "-o", "json")), &p))
	return p
}

// TestSourceOutageRecoversByItself: the source server is down for many more
// attempts than a limit would allow (the old default gave up after 10): the
// pipeline says retrying (attempt count, next attempt, last error) and never
// failed, and once the server is back it streams again by itself, the error
// cleared, with every row at the destination.
func TestSourceOutageRecoversByItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// a short backoff, so that many attempts fail within the outage
	r := newOutageRig(t, "    retry: {backoff: 100ms, max_backoff: 300ms}\n")
	pg, pool, env, dir, s := r.pg, r.pool, r.env, r.dir, r.server

	pg.Kill()
	var seen pipelineStatus
	require.Eventually(t, func() bool {
		seen = getPipeline(t, env, "pgfile")
		require.NotEqual(t, "failed", seen.State, "a retryable outage failed the pipeline: %s", seen.LastError)
		return seen.State == "retrying" && seen.Status.Attempts >= 15
	}, 90*time.Second, 50*time.Millisecond, "never retrying 15 times: %+v", seen)
	require.NotEmpty(t, seen.LastError)
	require.Contains(t, cli(t, env, 0, "pipelines", "list"), "retrying")

	require.NoError(t, pg.Restart())
	_, err := pool.Exec(ctx, `INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(101, 150) g`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p := getPipeline(t, env, "pgfile")
		return p.State == "streaming" && p.LastError == "" && p.Status.Attempts == 0 && p.Status.NextRetry.IsZero()
	}, 60*time.Second, 100*time.Millisecond, "never recovered: %+v", getPipeline(t, env, "pgfile"))
	requireSinkEqualsSource(t, pool, filepath.Join(dir, "out"))
	events := cli(t, env, 0, "pipelines", "events", "pgfile")
	require.Contains(t, events, "recovered after", "the recovery is in the pipeline's events:\n%s", events)
	require.NotContains(t, s.log.String(), "gave up", fmt.Sprintf("log:\n%s", s.log))
}

// TestForcedDeleteWithServersDown: with the source and the destination both
// down, a delete refuses (nothing deleted, the pipeline still listed and
// supervised); --force deletes it and prints what is left on each server
// with the statements that remove it, which work once the servers are back.
func TestForcedDeleteWithServersDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, dst := testenv.StartPostgres(t), testenv.StartPostgres(t)
	srcDSN, dstDSN := src.CreateDatabase(t, "app"), dst.CreateDatabase(t, "wh")
	pool, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g`)
	require.NoError(t, err)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: gone
    source: {type: postgres, config: {dsn: %q, tables: [public.t], heartbeat_interval: 1s}}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_wait: 50ms}
    retry: {backoff: 100ms, max_backoff: 500ms}
`, srcDSN, dstDSN)), 0o600))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Eventually(t, func() bool {
		p := getPipeline(t, env, "gone")
		return p.State == "streaming" && p.Status.Progress.ChangesWritten >= 10
	}, 60*time.Second, 100*time.Millisecond)

	src.Kill()
	dst.Kill()
	out := cli(t, env, 1, "pipelines", "delete", "gone")
	require.Contains(t, out, "not deleted")
	require.Contains(t, out, "delete with force")
	require.Contains(t, cli(t, env, 0, "pipelines", "list"), "gone", "a refused delete leaves the pipeline listed")
	require.Eventually(t, func() bool { return getPipeline(t, env, "gone").State == "retrying" }, 30*time.Second, 100*time.Millisecond,
		"and supervised: it retries")

	out = cli(t, env, 0, "pipelines", "delete", "gone", "--force")
	require.Contains(t, out, "pipeline gone: deleted")
	require.Contains(t, out, "left behind")
	require.Contains(t, out, "- source: replication slot cdcd_gone")
	require.Contains(t, out, "- sink: the pipeline's offset and lease")
	require.NotContains(t, cli(t, env, 0, "pipelines", "list"), "gone")
	require.NotContains(t, out, "password", "no secret in the answer")

	// the printed statements clean up once the servers are back
	require.NoError(t, src.Restart())
	require.NoError(t, dst.Restart())
	var srcSQL, dstSQL string
	for _, line := range strings.Split(out, "\n") {
		if sql, ok := strings.CutPrefix(strings.TrimSpace(line), "to remove it: "); ok {
			if strings.Contains(sql, "pg_drop_replication_slot") {
				srcSQL = sql
			} else {
				dstSQL = sql
			}
		}
	}
	require.NotEmpty(t, srcSQL, out)
	require.NotEmpty(t, dstSQL, out)
	var n int
	require.Eventually(t, func() bool { _, err := pool.Exec(ctx, srcSQL); return err == nil }, 30*time.Second, 200*time.Millisecond)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdcd_gone'`).Scan(&n))
	require.Zero(t, n)
	dpool, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dpool.Close()
	_, err = dpool.Exec(ctx, dstSQL)
	require.NoError(t, err)
}

// TestShutdownWithFrozenDestinationKeepsTheDrainBound: four pipelines write
// to a destination that freezes (SIGSTOP: silent sockets) with batches in
// flight; SIGTERM stops the server within drain_timeout plus a few seconds of
// closing, and the log says how each pipeline stopped.
func TestShutdownWithFrozenDestinationKeepsTheDrainBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, dst := testenv.StartPostgres(t), testenv.StartPostgres(t)
	srcDSN, dstDSN := src.CreateDatabase(t, "app"), dst.CreateDatabase(t, "wh")
	pool, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer pool.Close()
	const drain = 5 * time.Second
	var doc strings.Builder
	doc.WriteString("pipelines:\n")
	for i := range 4 {
		_, err = pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE t%d (id bigint PRIMARY KEY, v text)`, i))
		require.NoError(t, err)
		fmt.Fprintf(&doc, `  - name: p%d
    source: {type: postgres, config: {dsn: %q, tables: [public.t%d], heartbeat_interval: 1s}}
    sink: {type: postgres, config: {dsn: %q, schema: r%d}}
    batch: {max_wait: 20ms, max_changes: 200}
    drain_timeout: %s
`, i, srcDSN, i, dstDSN, i, drain)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(doc.String()), 0o600))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	for i := range 4 {
		require.Eventually(t, func() bool { return getPipeline(t, env, fmt.Sprintf("p%d", i)).State == "streaming" }, 60*time.Second, 100*time.Millisecond)
	}
	// a steady stream of changes, so that batches are in flight when it freezes
	wctx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	writerDone := make(chan struct{})
	var written atomic.Int64 // statements the writer committed, for the failure message
	go func() {
		defer close(writerDone)
		for n := 0; wctx.Err() == nil; n++ {
			if n > 0 {
				written.Store(int64(n))
			}
			if _, err := pool.Exec(wctx, fmt.Sprintf(`INSERT INTO t%d SELECT g, repeat('x', 100) FROM generate_series(%d, %d) g`, n%4, n*100, n*100+99)); err != nil && wctx.Err() == nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}()
	// (the message is built when it fails: arguments of Eventually are not)
	if !assert.Eventually(t, func() bool { return getPipeline(t, env, "p3").Status.Progress.ChangesWritten > 1000 }, 2*time.Minute, 50*time.Millisecond) {
		t.Fatalf("p3 never wrote 1000 changes:\n%s\nthe writer committed %d statements; cdcd log (tail):\n%s",
			cli(t, env, 0, "pipelines", "list"), written.Load(), s.log.Tail(6000))
	}
	dst.Freeze()
	defer dst.Thaw()
	time.Sleep(time.Second) // batches are now stuck in the frozen server
	stopWriting()
	<-writerDone

	start := time.Now()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no exit 2 minutes after SIGTERM; log:\n%s", s.log)
	}
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM (drain_timeout %s)", took.Round(time.Millisecond), drain)
	require.Less(t, took, drain+5*time.Second, "the drain bound was not kept; log:\n%s", s.log)
	require.Contains(t, s.log.String(), `outcome="the drain timed out`, "a batch was in flight in the frozen destination")
	for i := range 4 {
		// drained, or (with a batch in flight) timed out: each says which
		require.Regexp(t, fmt.Sprintf(`msg="pipeline stopped" .*pipeline=p%d .*outcome=`, i), s.log.String())
	}
}

// TestApplyIsAllOrNothing: a file whose pipeline is invalid stores nothing,
// not even its valid connections, and the answer lists every problem with its
// path; the corrected file applies whole.
func TestApplyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := filepath.Join(dir, "p.yaml")
	write := func(batch string) {
		require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: gen, type: datagen, config: {tables: 1, snapshot_rows: 10}}
  - {name: out, type: file, config: {dir: %q}}
pipelines:
  - name: good
    source: {connection: gen}
    sink: {connection: out}
  - name: bad
    source: {connection: gen}
    sink: {connection: out}
    batch: %s
    transforms: [{type: nosuch}]
`, filepath.Join(dir, "out"), batch)), 0o600))
	}
	write(`{max_changes: 2000000, max_wait: 2h}`)
	out := cli(t, env, 2, "pipelines", "apply", "-f", cfg)
	require.Contains(t, out, "nothing applied")
	for _, path := range []string{"pipelines[bad].batch.max_changes", "pipelines[bad].batch.max_wait", "pipelines[bad].transforms[0].type"} {
		require.Contains(t, out, path, "every problem with its path")
	}
	require.NotContains(t, cli(t, env, 0, "connections", "list"), "gen", "no connection of the rejected file is stored")
	require.NotContains(t, cli(t, env, 0, "pipelines", "list"), "good")

	write(`{max_changes: 100, max_wait: 50ms}`)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(func() string { b, _ := os.ReadFile(cfg); return string(b) }(), "    transforms: [{type: nosuch}]\n", "", 1)), 0o600))
	out = cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	for _, want := range []string{"connection gen: applied (created)", "connection out: applied (created)", "pipeline good: applied (created)", "pipeline bad: applied (created)"} {
		require.Contains(t, out, want)
	}
	out = cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Contains(t, out, "pipeline good: applied (unchanged)")
	require.Contains(t, out, "connection gen: applied (unchanged)")
}

// TestLongSourceOutageRecoversByItself: with the default retry policy, a source
// down for CDCD_OUTAGE_MINUTES (scripts/test-long: 6) leaves the pipeline
// retrying, never failed, and it recovers by itself once the source is back,
// within the longest backoff (5m), losing nothing. Skipped unless the variable
// is set: it takes the outage plus up to five minutes.
func TestLongSourceOutageRecoversByItself(t *testing.T) {
	minutes := envInt("CDCD_OUTAGE_MINUTES", 0)
	if minutes == 0 {
		t.Skip("set CDCD_OUTAGE_MINUTES (scripts/test-long outage) to run it")
	}
	t.Parallel()
	ctx := context.Background()
	r := newOutageRig(t, "") // the default retry policy
	pg, pool, env, dir := r.pg, r.pool, r.env, r.dir
	pg.Kill()
	outage := time.Duration(minutes) * time.Minute
	end := time.Now().Add(outage)
	maxAttempts := 0
	for time.Now().Before(end) {
		p := getPipeline(t, env, "pgfile")
		require.NotEqual(t, "failed", p.State, "a retryable outage failed the pipeline: %s", p.LastError)
		if p.State == "retrying" {
			require.NotEmpty(t, p.LastError)
			maxAttempts = max(maxAttempts, p.Status.Attempts)
		}
		time.Sleep(time.Second)
	}
	t.Logf("after %s down: %d failed attempts", outage, maxAttempts)
	require.Greater(t, maxAttempts, 5)
	require.NoError(t, pg.Restart())
	_, err := pool.Exec(ctx, `INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(101, 150) g`)
	require.NoError(t, err)
	back := time.Now()
	require.Eventually(t, func() bool {
		p := getPipeline(t, env, "pgfile")
		return p.State == "streaming" && p.LastError == "" && p.Status.Attempts == 0
	}, pipelineDefaultMaxBackoff+time.Minute, time.Second, "never recovered: %+v", getPipeline(t, env, "pgfile"))
	t.Logf("recovered %s after the source came back", time.Since(back).Round(time.Second))
	requireSinkEqualsSource(t, pool, filepath.Join(dir, "out"))
	require.Contains(t, cli(t, env, 0, "pipelines", "events", "pgfile"), "recovered after")
}

// outageRig is a Postgres source with 100 rows in acct and a cdcd server
// streaming them into the file sink (pgConfig), the pipeline's retry policy
// given as YAML lines (retry).
type outageRig struct {
	pg     *testenv.Postgres
	pool   *pgxpool.Pool
	env    []string
	dir    string
	server *server
}

func newOutageRig(t *testing.T, retry string) outageRig {
	t.Helper()
	ctx := context.Background()
	r := outageRig{pg: testenv.StartPostgres(t), dir: t.TempDir()}
	dsn := r.pg.CreateDatabase(t, "app")
	var err error
	r.pool, err = pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(r.pool.Close)
	_, err = r.pool.Exec(ctx, `CREATE TABLE acct (id bigint PRIMARY KEY, owner text, balance bigint); INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(1, 100) g`)
	require.NoError(t, err)
	cfg := pgConfig(t, r.dir, dsn, "")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), "    batch:", retry+"    batch:", 1)), 0o644))
	r.server = startServer(t, "--data-dir", filepath.Join(r.dir, "data"))
	r.env = []string{"CDCD_SERVER=" + r.server.url}
	cli(t, r.env, 0, "pipelines", "apply", "-f", cfg)
	require.Eventually(t, func() bool {
		p := getPipeline(t, r.env, "pgfile")
		return p.State == "streaming" && p.Status.Progress.ChangesWritten >= 100
	}, 60*time.Second, 100*time.Millisecond)
	return r
}

// pipelineDefaultMaxBackoff is the default retry.max_backoff.
const pipelineDefaultMaxBackoff = 5 * time.Minute
