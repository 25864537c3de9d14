package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestLagThroughServe: the lag the API, the CLI and /metrics show reads 0
// within seconds on idle, caught-up Postgres and MariaDB pipelines, and rises
// while the sink cannot write (its destination table locked), then falls back;
// per-table counts and changes written survive a restart of the server.
func TestLagThroughServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.StartPostgres(t, testenv.WithSetting("max_slot_wal_keep_size", "1GB"))
	srcDSN := pg.CreateDatabase(t, "app")
	dstDSN := pg.CreateDatabase(t, "warehouse")
	src, err := pgx.Connect(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close(ctx)
	_, err = src.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g`)
	require.NoError(t, err)

	m := testenv.StartMariaDB(t)
	my, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer my.Close()
	for _, q := range []string{"CREATE DATABASE app", "CREATE TABLE app.t (id int PRIMARY KEY, v int)", "INSERT INTO app.t VALUES (1, 1), (2, 2)"} {
		_, err := my.Execute(q)
		require.NoError(t, err, q)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "lag.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: pg
    source:
      type: postgres
      config: {dsn: %q, tables: [public.t], heartbeat_interval: 1s, status_interval: 500ms, slot_poll_interval: 1s}
    sink:
      type: postgres
      config: {dsn: %q, schema: replica}
    batch: {max_wait: 50ms}
  - name: my
    source:
      type: mysql
      config: {addr: %q, user: root, tables: [app.t], heartbeat_interval: 1s}
    sink: {type: file, config: {dir: %q}}
    batch: {max_wait: 50ms}
`, srcDSN, dstDSN, m.Addr(), filepath.Join(dir, "out"))), 0o644))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"), "--metrics-listen", metricsAddr)
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)

	type progress struct {
		LagSeconds *float64 `json:"lag_seconds"`
		CaughtUp   bool     `json:"caught_up"`
		LagBytes   *int64   `json:"lag_bytes"`
	}
	get := func(name string) progress {
		var v struct {
			Status struct{ Progress progress }
		}
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "get", name, "-o", "json")), &v))
		return v.Status.Progress
	}
	metric := func(name, pipeline string) (float64, bool) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^` + name + `\{pipeline="` + pipeline + `"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		require.NoError(t, err)
		return v, true
	}
	caughtUp := func(name string) func() bool {
		return func() bool {
			p := get(name)
			v, ok := metric("cdcd_source_lag_seconds", name)
			return p.LagSeconds != nil && *p.LagSeconds == 0 && p.CaughtUp && ok && v == 0
		}
	}
	for _, name := range []string{"pg", "my"} {
		require.Eventually(t, caughtUp(name), 30*time.Second, 100*time.Millisecond, "%s: lag never read 0 (%+v); log:\n%s", name, get(name), s.log)
		require.Eventually(t, func() bool { return get(name).LagBytes != nil }, 30*time.Second, 100*time.Millisecond, "%s: no lag in bytes", name)
		_, ok := metric("cdcd_source_lag_bytes", name)
		require.True(t, ok, "%s: cdcd_source_lag_bytes", name)
		require.Regexp(t, name+`\s+streaming\s+\d+\s+0s \(caught up\)`, cli(t, env, 0, "pipelines", "list"))
	}
	// every metric's name, type and help pass promlint; the API's /metrics
	// serves the same
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	require.NoError(t, err)
	problems, err := promlint.New(resp.Body).Lint()
	resp.Body.Close()
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Contains(t, cli(t, env, 0, "pipelines", "list"), "pg")

	// idle for a while: it stays 0 (heartbeats and keepalives keep it current)
	for range 10 {
		time.Sleep(300 * time.Millisecond)
		p := get("pg")
		require.True(t, p.CaughtUp && *p.LagSeconds == 0, "an idle pipeline's lag climbed: %+v", p)
	}

	// the sink cannot write: its destination table is locked
	release := blockSink(t, dstDSN, "replica.t")
	_, err = src.Exec(ctx, `UPDATE t SET v = v + 1`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p := get("pg")
		v, ok := metric("cdcd_source_lag_seconds", "pg")
		return p.LagSeconds != nil && *p.LagSeconds >= 3 && !p.CaughtUp && ok && v >= 3
	}, 30*time.Second, 100*time.Millisecond, "the lag did not rise while the sink was blocked: %+v", get("pg"))
	release()
	require.Eventually(t, caughtUp("pg"), 30*time.Second, 100*time.Millisecond, "the lag did not fall back: %+v", get("pg"))
	n, ok := metric("cdcd_end_to_end_latency_seconds_count", "pg")
	require.True(t, ok)
	require.GreaterOrEqual(t, n, 100.0, "the 100 updates are counted (the snapshot rows have no commit time)")

	// per-table counts, kept across a restart of the server
	type tableProgress struct {
		Table        string
		State        string
		SnapshotRows uint64 `json:"snapshot_rows"`
		Inserts      uint64
		Updates      uint64
		Deletes      uint64
		LastChange   time.Time `json:"last_change"`
	}
	tablesOf := func(name string) (map[string]tableProgress, uint64) {
		var v struct {
			Status struct {
				Progress struct {
					ChangesWritten uint64 `json:"changes_written"`
					Tables         []tableProgress
				}
			}
		}
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "get", name, "-o", "json")), &v))
		out := map[string]tableProgress{}
		for _, tp := range v.Status.Progress.Tables {
			out[tp.Table] = tp
		}
		return out, v.Status.Progress.ChangesWritten
	}
	_, err = src.Exec(ctx, `DELETE FROM t WHERE id <= 10`)
	require.NoError(t, err)
	want := tableProgress{Table: "public.t", State: "streaming", SnapshotRows: 100, Updates: 100, Deletes: 10}
	same := func(got tableProgress) bool {
		got.LastChange = time.Time{}
		return got == want
	}
	require.Eventually(t, func() bool { tp, _ := tablesOf("pg"); return same(tp["public.t"]) }, 30*time.Second, 100*time.Millisecond,
		"per-table counts: %+v", func() any { tp, _ := tablesOf("pg"); return tp }())
	tp, written := tablesOf("pg")
	require.False(t, tp["public.t"].LastChange.IsZero())
	require.Equal(t, uint64(210), written)
	_, err = my.Execute("INSERT INTO app.t VALUES (3, 3)")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		tp, _ := tablesOf("my")
		return tp["app.t"].SnapshotRows == 2 && tp["app.t"].Inserts == 1
	}, 30*time.Second, 100*time.Millisecond)

	// every metric the shipped alert rules and dashboard query is on the live
	// server (histograms by their _bucket, _count and _sum series)
	var shipped []byte
	for _, f := range []string{"../../deploy/prometheus/cdcd-alerts.yml", "../../deploy/grafana/cdcd-dashboard.json"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		shipped = append(shipped, b...)
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var missing []string
		for _, name := range slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`cdcd_[a-z0-9_]+`).FindAllString(string(shipped), -1)))) {
			if !regexp.MustCompile(`(?m)^` + name + `(_bucket)?[{ ]`).Match(body) {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			t.Logf("not (yet) on /metrics: %v", missing)
		}
		return len(missing) == 0
	}, 30*time.Second, time.Second, "the deploy/ rules and dashboard query metrics cdcd does not serve")
	s.stop(t)
	s = startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env = []string{"CDCD_SERVER=" + s.url}
	// the restarted run reads the counts back (nothing is snapshotted again)
	require.Eventually(t, func() bool { tp, written = tablesOf("pg"); return same(tp["public.t"]) && written == 210 }, 30*time.Second, 100*time.Millisecond,
		"counts after a restart: %+v, %d written", tp["public.t"], written)
	_, err = src.Exec(ctx, `INSERT INTO t VALUES (1000, 1)`)
	require.NoError(t, err)
	want.Inserts = 1
	require.Eventually(t, func() bool { tp, _ := tablesOf("pg"); return same(tp["public.t"]) }, 30*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { tp, _ := tablesOf("my"); return tp["app.t"].SnapshotRows == 2 && tp["app.t"].Inserts == 1 }, 30*time.Second, 100*time.Millisecond)

	// the chart points
	var ts struct {
		Window string
		Points []struct {
			LagSeconds    *float64 `json:"lag_seconds"`
			RetainedBytes *int64   `json:"retained_bytes"`
		}
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.url + "/api/v1/pipelines/pg/timeseries?window=15m")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ts))
		n := len(ts.Points)
		return n >= 2 && ts.Points[n-1].LagSeconds != nil && ts.Points[n-1].RetainedBytes != nil
	}, 30*time.Second, time.Second, "timeseries: %+v", ts)
	require.Equal(t, "15m0s", ts.Window)

	// the event log, kept across the restart, and followed live
	events := cli(t, env, 0, "pipelines", "events", "pg", "-n", "0")
	for _, want := range []string{"loaded", "running: snapshotting", "snapshot of public.t began (no row estimate: the table has no statistics)",
		"snapshot of public.t done: 100 rows", "running: streaming"} {
		require.Contains(t, events, want)
	}
	require.Less(t, strings.Index(events, "snapshot of public.t done"), strings.Index(events, "running: streaming"), "in order:\n%s", events)
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	follow := exec.CommandContext(fctx, binary, "pipelines", "events", "my", "-f", "-n", "1")
	follow.Env = append(os.Environ(), env...)
	out, err := follow.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, follow.Start())
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	<-lines // the newest event so far
	cli(t, env, 0, "pipelines", "pause", "my")
	deadline := time.After(30 * time.Second)
	for paused := false; !paused; {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the follow ended")
			paused = strings.Contains(l, "state") && strings.HasSuffix(l, " paused")
		case <-deadline:
			t.Fatal("the pause never reached cdcd pipelines events -f")
		}
	}
	stopFollow()
	_ = follow.Wait()
	s.stop(t)
	require.Contains(t, s.log.String(), "pipeline stopped")
}

// TestMetricsListen: --metrics-listen serves /metrics without a token on
// loopback while the API asks for one; any other address is refused.
func TestMetricsListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tok := cli(t, nil, 0, "tokens", "create", "ops", "--role", "viewer", "--data-dir", data)
	require.NotEmpty(t, tok)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := startServer(t, "--data-dir", data, "--metrics-listen", addr)
	resp, err := http.Get(s.url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the API's /metrics needs a token")
	resp, err = http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "go_goroutines")
	resp, err = http.Get("http://" + addr + "/api/v1/pipelines")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "only /metrics")
	s.stop(t)

	out := cli(t, nil, 2, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:9999")
	require.Contains(t, out, "must be a loopback address")
}

// blockSink locks a destination table (ACCESS EXCLUSIVE, in a transaction it
// holds) until release: the Postgres sink's writes wait, as behind a slow or
// stuck destination.
func blockSink(t *testing.T, dsn, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier(strings.Split(table, ".")).Sanitize()+` IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			require.NoError(t, tx.Rollback(ctx))
			require.NoError(t, conn.Close(ctx))
		})
	}
	t.Cleanup(release)
	return release
}

// TestCatalogThroughServe: a source connection's tables, through the API and
// the CLI, for Postgres and MariaDB; a destination connection's existing
// tables (--as destination), or none for files; the answer hides the
// connection's password.
func TestCatalogThroughServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "app")
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE customers (id int PRIMARY KEY, name text); CREATE TABLE events (at timestamptz, what text)`)
	require.NoError(t, err)
	m := testenv.StartMariaDB(t)
	my, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer my.Close()
	for _, q := range []string{"CREATE DATABASE shop", "CREATE TABLE shop.orders (id int PRIMARY KEY, total decimal(10,2))"} {
		_, err := my.Execute(q)
		require.NoError(t, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: pgsrc, type: postgres, config: {dsn: %q}}
  - {name: mysrc, type: mysql, config: {addr: %q, user: root}}
  - {name: out, type: file, config: {dir: %q}}
  - {name: pgdst, type: postgres, config: {dsn: %q, schema: replica}}
`, dsn, m.Addr(), filepath.Join(dir, "out"), dsn)), 0o600))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "connections", "apply", "-f", cfg)
	out := cli(t, env, 0, "connections", "catalog", "pgsrc")
	require.Regexp(t, `public\.customers\s+2\s+id\s+\S+`, out)
	require.Regexp(t, `public\.events\s+2\s+unknown\s+no primary key`, out)
	require.Regexp(t, `shop\.orders\s+2\s+id`, cli(t, env, 0, "connections", "catalog", "mysrc", "--schema", "shop"))
	var page struct {
		Tables []struct {
			Table struct{ Name string }
		}
		Next string
	}
	resp, err := http.Get(s.url + "/api/v1/connections/pgsrc/catalog?limit=1&search=CUST")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	resp.Body.Close()
	require.Len(t, page.Tables, 1)
	require.Equal(t, "customers", page.Tables[0].Table.Name)
	require.Contains(t, cli(t, env, 2, "connections", "catalog", "out"), "a file destination has no tables to list")
	require.Contains(t, cli(t, env, 2, "connections", "catalog", "out", "--as", "source"), "connection out is a file, not a source")
	// a destination's catalog: what exists where it writes
	_, err = conn.Exec(ctx, `CREATE SCHEMA replica; CREATE TABLE replica.customers (id int PRIMARY KEY, name text NOT NULL, _cdc_version bytea)`)
	require.NoError(t, err)
	out = cli(t, env, 0, "connections", "catalog", "pgdst", "--as", "destination", "--schema", "replica")
	require.Regexp(t, `replica\.customers\s+3\s+id\s+\S+`, out)
	require.NotContains(t, out, "public.")
	require.Contains(t, cli(t, env, 2, "connections", "catalog", "pgdst", "--as", "alert_channel"), "role: must be source or destination")
	require.Contains(t, cli(t, env, 1, "connections", "catalog", "nope"), "404")
	// -o yaml reads as a config file does; the password stays hidden
	y := cli(t, env, 0, "connections", "get", "pgsrc", "-o", "yaml")
	require.Contains(t, y, "name: pgsrc\n")
	require.Contains(t, y, "type: postgres\n")
	require.NotContains(t, y, "{")
	var back map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(y), &back))
	require.Equal(t, "pgsrc", back["name"])
	// a postgres connection is tested in the role its config fits: this one is a destination
	require.Contains(t, cli(t, env, 0, "connections", "test", "pgdst"), "connection pgdst: ok")
	require.Contains(t, cli(t, env, 2, "connections", "apply", "-f", writeFile(t, dir, "bad.yaml",
		"connections:\n  - {name: pgbad, type: postgres, config: {dsn: x, tables: [a.b], schema: s}}\n")),
		`fits no role of a postgres connection: as a source: unknown key "schema"; as a destination: unknown key "tables"`)
	s.stop(t)
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}
