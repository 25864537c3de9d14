package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
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
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "app")
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE acct (id bigint PRIMARY KEY, owner text, balance bigint); INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(1, 100) g`)
	require.NoError(t, err)

	dir := t.TempDir()
	cfg := pgConfig(t, dir, dsn, "")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	// a short backoff, so that many attempts fail within the outage
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), "    batch:", "    retry: {backoff: 100ms, max_backoff: 300ms}\n    batch:", 1)), 0o644))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Eventually(t, func() bool {
		p := getPipeline(t, env, "pgfile")
		return p.State == "streaming" && p.Status.Progress.ChangesWritten >= 100
	}, 60*time.Second, 100*time.Millisecond)

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
	_, err = pool.Exec(ctx, `INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(101, 150) g`)
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
