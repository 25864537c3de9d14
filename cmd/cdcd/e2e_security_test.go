package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// `cdcd serve` on an address other than loopback does not serve an open API:
// with no token it refuses to start and says how to make one.
func TestServeRefusesOpenAPIOnTheNetwork(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	port := testenv.FreePort(t)
	out := cli(t, nil, 2, "serve", "--listen", fmt.Sprintf("0.0.0.0:%d", port), "--data-dir", data)
	require.Contains(t, out, "refusing to serve on 0.0.0.0")
	require.Contains(t, out, "cdcd tokens create admin --role admin")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/pipelines", port))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("something answered on the port: %d", resp.StatusCode)
	}

	tok := strings.TrimSpace(strings.Split(cli(t, nil, 0, "tokens", "create", "admin", "--role", "admin", "--data-dir", data), "\n")[0])
	cmd := exec.Command(binary, "serve", "--listen", fmt.Sprintf("0.0.0.0:%d", port), "--data-dir", data)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d/api/v1/pipelines", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 401
	}, 30*time.Second, 20*time.Millisecond, "with a token, it serves and requires it: %s", &log)
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

// `cdcd secrets rotate` seals every stored secret under a new key; the old
// key no longer opens them, and a rotation cut off between its commit and the
// key file's replacement is finished at the next start.
func TestSecretsRotate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := startServer(t, "--data-dir", data)
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: out, type: webhook, config: {url: "https://hooks.example.com/cdcd", secret: rotate-me-secret-value}}
`)), 0o644))
	cli(t, env, 0, "connections", "apply", "-f", cfg)
	s.stop(t)

	keyFile := filepath.Join(data, "secret.key")
	oldKey, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	out := cli(t, nil, 0, "secrets", "rotate", "--data-dir", data)
	require.Contains(t, out, "sealed 1 stored values under the new key")
	newKey, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NotEqual(t, oldKey, newKey)
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	open := func(key []byte) (store.Store, error) {
		k, err := secrets.ParseKey(string(key))
		require.NoError(t, err)
		c, err := secrets.New(k)
		require.NoError(t, err)
		return store.OpenSQLite(context.Background(), filepath.Join(data, "cdcd.db"), c)
	}
	old, err := open(oldKey)
	require.NoError(t, err)
	_, err = old.GetConnection(context.Background(), "out")
	require.ErrorIs(t, err, secrets.ErrWrongKey)
	require.NoError(t, old.Close())

	s = startServer(t, "--data-dir", data)
	env = []string{"CDCD_SERVER=" + s.url}
	require.Contains(t, cli(t, env, 0, "connections", "get", "out"), `"secret": "******"`)
	s.stop(t)

	// cut off after the commit: the store is sealed under the pending key
	pending := secrets.NewKey()
	pc, err := secrets.New(pending)
	require.NoError(t, err)
	cur, err := open(newKey)
	require.NoError(t, err)
	_, err = cur.Rekey(context.Background(), pc)
	require.NoError(t, err)
	require.NoError(t, cur.Close())
	require.NoError(t, secrets.WriteKeyFile(keyFile+".new", pending))
	s = startServer(t, "--data-dir", data)
	require.Contains(t, cli(t, []string{"CDCD_SERVER=" + s.url}, 0, "connections", "get", "out"), `"secret": "******"`)
	require.Contains(t, s.log.String(), "finishing a key rotation that committed")
	got, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, secrets.EncodeKey(pending), string(got))
	_, err = os.Stat(keyFile + ".new")
	require.ErrorIs(t, err, os.ErrNotExist)
	s.stop(t)

	// cut off before the commit: the pending key is dropped
	require.NoError(t, secrets.WriteKeyFile(keyFile+".new", secrets.NewKey()))
	s = startServer(t, "--data-dir", data)
	require.Contains(t, cli(t, []string{"CDCD_SERVER=" + s.url}, 0, "connections", "get", "out"), "out")
	require.Contains(t, s.log.String(), "a key rotation did not commit")
	got, err = os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, secrets.EncodeKey(pending), string(got))
	s.stop(t)
}

// A sink that fails on a row never puts the row's values in the log or the
// stored error: a trigger at the Postgres destination rejects the row and
// quotes it whole in its error (a 1 MB bytea, in hex), as validation triggers
// do.
func TestSinkFailureCarriesNoRowValue(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	srcDSN, dstDSN := pg.CreateDatabase(t, "app"), pg.CreateDatabase(t, "wh")
	ctx := context.Background()
	src, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close()
	dst, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	_, err = src.Exec(ctx, `CREATE TABLE items (id int8 PRIMARY KEY, note text, blob bytea)`)
	require.NoError(t, err)
	_, err = src.Exec(ctx, `INSERT INTO items VALUES (1, 'plain', NULL)`)
	require.NoError(t, err)

	dir := t.TempDir()
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: leak
    source: {type: postgres, config: {dsn: %q, tables: [public.items], heartbeat_interval: 1s, status_interval: 200ms}}
    sink: {type: postgres, config: {dsn: %q, schema: wh}}
    batch: {max_changes: 100, max_wait: 50ms}
`, srcDSN, dstDSN)), 0o644))
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Eventually(t, func() bool {
		var n int
		return dst.QueryRow(ctx, `SELECT count(*) FROM wh.items`).Scan(&n) == nil && n == 1
	}, 60*time.Second, 100*time.Millisecond, "the snapshot never landed: %s", s.log)

	_, err = dst.Exec(ctx, `CREATE FUNCTION wh.reject() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'rejected row: %', row_to_json(NEW); END $$;
		CREATE TRIGGER reject BEFORE UPDATE ON wh.items FOR EACH ROW EXECUTE FUNCTION wh.reject()`)
	require.NoError(t, err)
	blob := strings.Repeat("MARKERBYTES", 100_000) // 1.1 MB
	_, err = src.Exec(ctx, `UPDATE items SET note = 'MARKER-row-value-7f3a', blob = convert_to($1, 'UTF8') WHERE id = 1`, blob)
	require.NoError(t, err)

	var lastError string
	require.Eventually(t, func() bool {
		var v struct {
			LastError string `json:"last_error"`
		}
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "get", "leak", "-o", "json")), &v))
		lastError = v.LastError
		return strings.Contains(lastError, "rejected row")
	}, 60*time.Second, 200*time.Millisecond, "the write never failed: %s", s.log)
	s.stop(t)

	st, err := os.ReadFile(filepath.Join(dir, "data", "cdcd.db"))
	require.NoError(t, err)
	wal, _ := os.ReadFile(filepath.Join(dir, "data", "cdcd.db-wal"))
	for what, text := range map[string]string{"API last_error": lastError, "log": s.log.String(), "store": string(st) + string(wal)} {
		require.NotContains(t, text, "MARKER", "%s carries a row value", what)
		require.NotContains(t, text, "4d41524b4552", "%s carries a row value in hex", what)
	}
	for _, line := range strings.Split(s.log.String(), "\n") {
		require.Less(t, len(line), 16<<10, "a log line of %d bytes", len(line))
	}
	require.Contains(t, lastError, "<value>")
}

// TestTokensNeedTheServersStore: run where no store is, `tokens list` and
// `delete` refuse, naming the path they looked at; `create` (the first token
// comes before the first serve) says it makes a new store there.
func TestTokensNeedTheServersStore(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "elsewhere")
	out := cli(t, nil, 2, "tokens", "list", "--data-dir", data)
	require.Contains(t, out, "no metadata store at "+filepath.Join(data, "cdcd.db"))
	cli(t, nil, 2, "tokens", "delete", "0123456789ab", "--data-dir", data)
	_, err := os.Stat(data)
	require.True(t, os.IsNotExist(err), "nothing was created")
	out = cli(t, nil, 0, "tokens", "create", "first", "--role", "admin", "--data-dir", data)
	require.Contains(t, out, "creating one (and its secret key) there; run `cdcd serve --data-dir "+data)
	require.Contains(t, cli(t, nil, 0, "tokens", "list", "--data-dir", data), "first")
}
