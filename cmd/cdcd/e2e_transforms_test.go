package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestTransformChainMasksPII runs Postgres → filter + mask + rename + route →
// file sink through the binary: test rows are filtered out, the table is
// routed, and no clear email or card number appears in the sink's files or in
// cdcd's log (at debug level).
func TestTransformChainMasksPII(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "crm")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE users (id int8 PRIMARY KEY, email text, card text, status text)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO users SELECT g, 'person' || g || '@secret-mail.example', '4111-0000-0000-' || lpad(g::text, 4, '0'), CASE WHEN g % 5 = 0 THEN 'test' ELSE 'live' END FROM generate_series(1, 200) g`)
	require.NoError(t, err)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := filepath.Join(dir, "tr.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: crm
    source:
      type: postgres
      config: {dsn: %q, tables: [public.users], heartbeat_interval: 1s, status_interval: 200ms}
    sink: {type: file, config: {dir: %q}}
    transforms:
      - {type: filter, config: {keep: 'row.status != "test"'}}
      - {type: mask, config: {columns: [email], key: "${MASK_KEY}", length: 20}}
      - {type: mask, config: {columns: [card], method: partial, keep_last: 4}}
      - {type: columns, config: {rename: {card: card_masked}}}
      - {type: route, config: {map: {public.users: crm.people}}}
    batch: {max_changes: 100, max_wait: 50ms}
`, dsn, out)), 0o644))
	var log syncBuffer
	cmd := exec.Command(binary, "run", "-f", cfg, "--data-dir", filepath.Join(dir, "data"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), "MASK_KEY=a-secret-key-for-the-test-0123456789")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(time.Second)
	_, err = pool.Exec(ctx, `UPDATE users SET email = 'changed' || id || '@secret-mail.example' WHERE id <= 20`)
	require.NoError(t, err)
	var rows map[string]string
	require.Eventually(t, func() bool {
		st, err := file.State(out)
		if err != nil {
			return false
		}
		rows = st["crm.people"]
		if len(rows) != 160 {
			return false
		}
		return strings.Contains(rows[`{"id":1}`], "card_masked")
	}, 60*time.Second, 100*time.Millisecond, "the routed table never had the 160 live rows: %s", &log)
	require.NotContains(t, rows, `{"id":5}`, "status test was filtered out")
	require.Contains(t, rows[`{"id":7}`], `"card_masked":"***************0007"`)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	// no clear value anywhere: sink files and log
	var all strings.Builder
	require.NoError(t, filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return err
	}))
	all.WriteString(log.String())
	require.NotContains(t, all.String(), "secret-mail.example", "a clear email leaked")
	require.NotContains(t, all.String(), "4111-0000", "a clear card number leaked")
	require.NotContains(t, all.String(), "a-secret-key-for-the-test", "the mask key leaked")
}

// TestTransformErrorsSkipped: with on_transform_error: skip, rows a cast fails
// on are dropped, counted and listed by the API with where and why, never the
// value; the other rows flow.
func TestTransformErrorsSkipped(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "inv")
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE items (id int8 PRIMARY KEY, qty text)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO items SELECT g, CASE WHEN g % 10 = 0 THEN 'bad-value-' || g ELSE g::text END FROM generate_series(1, 100) g`)
	require.NoError(t, err)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: invdb, type: postgres, config: {dsn: %q}}
pipelines:
  - name: inv
    source:
      connection: invdb
      config: {tables: [public.items], heartbeat_interval: 1s, status_interval: 200ms}
    sink: {type: file, config: {dir: %q}}
    transforms:
      - {name: qty_int, type: cast, config: {columns: {qty: int4}}}
    on_transform_error: skip
    batch: {max_changes: 100, max_wait: 50ms}
`, dsn, out)), 0o644))
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Eventually(t, func() bool {
		st, err := file.State(out)
		return err == nil && len(st["public.items"]) == 90
	}, 60*time.Second, 100*time.Millisecond, "the 90 good rows never landed: %s", s.log)
	var list struct {
		Skipped []struct {
			Table     struct{ Name string } `json:"table"`
			Transform string                `json:"transform"`
			Error     string                `json:"error"`
			Position  string                `json:"position"`
		} `json:"skipped"`
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "skipped", "inv", "-o", "json")), &list))
		return len(list.Skipped) == 10
	}, 10*time.Second, 100*time.Millisecond)
	for _, k := range list.Skipped {
		require.Equal(t, "items", k.Table.Name)
		require.Equal(t, "qty_int", k.Transform)
		require.Contains(t, k.Error, "cast column qty: a string value does not convert to int4")
		require.NotEmpty(t, k.Position)
	}
	table := cli(t, env, 0, "pipelines", "skipped", "inv")
	require.Contains(t, table, "qty_int")
	require.NotContains(t, table+s.log.String(), "bad-value", "skipped values never appear")

	// preview the same chain on live rows and on given ones
	pv := cli(t, env, 0, "transforms", "preview", "-f", cfg, "--table", "public.items", "--limit", "10")
	require.Contains(t, pv, "destination public.items: id int8 qty int4")
	require.Contains(t, pv, `after  {"id":1,"qty":1}`)
	require.Contains(t, pv, "error  transform qty_int: cast column qty: a string value does not convert to int4")
	rows := filepath.Join(dir, "rows.jsonl")
	require.NoError(t, os.WriteFile(rows, []byte("{\"id\": 7, \"qty\": \"12\"}\n"), 0o644))
	pv = cli(t, env, 0, "transforms", "preview", "-f", cfg, "--rows", rows, "-o", "json")
	require.Contains(t, pv, `"qty": 12`)
	s.stop(t)
}
