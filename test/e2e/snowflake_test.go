package e2e

import (
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
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
	sf "github.com/snowflakedb/gosnowflake/v2"
	"github.com/stretchr/testify/require"
)

// TestPostgresToSnowflakeKilled runs Postgres → Snowflake (fakesnow) through
// `cdcd run` with the acct workload (inserts, updates, deletes and key moves in
// transactions of up to 1,000 rows) while cdcd is SIGKILLed and restarted, and
// then compares the destination with the source: every source row is a live
// row with the same values, and every other destination row is a soft delete.
func TestPostgresToSnowflakeKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := testenv.StartPostgres(t, durable()...)
	dsn := src.CreateDatabase(t, "app")
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	rows := 3000
	require.NoError(t, testenv.FillAcct(ctx, pool, rows))

	fs := testenv.StartFakesnow(t)
	key, err := rsa.GenerateKey(crand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.p8")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, sf.Config{Account: "fakesnow", User: "oracle", Password: "x",
		Host: "127.0.0.1", Port: fs.Port, Protocol: "http", Database: "ANALYTICS", Schema: "PUBLIC"}))
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE DATABASE IF NOT EXISTS "ANALYTICS"`)
	require.NoError(t, err)

	cfg := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: wh
    source:
      type: postgres
      config: {dsn: %q, tables: [public.acct], snapshot_chunk_rows: 1000, heartbeat_interval: 1s, status_interval: 500ms}
    sink:
      type: snowflake
      config:
        account: fakesnow
        user: cdcd
        host: 127.0.0.1
        port: %d
        protocol: http
        database: ANALYTICS
        schema: REPLICA
        private_key: ${file:%s}
        spool_dir: %q
    batch: {max_changes: 5000, max_wait: 300ms}
`, dsn, fs.Port, keyFile, dir)), 0o644))

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

	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	start()
	require.Eventually(t, func() bool { return count(`SELECT COUNT(*) FROM "ANALYTICS"."REPLICA"."acct"`) > 0 }, 2*time.Minute, 100*time.Millisecond,
		"the snapshot never reached Snowflake: %s", log.Tail(3000))

	writeCtx, stop := context.WithCancel(ctx)
	var txns atomic.Int64
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(11, 12))
		w := testenv.AcctWriter{Rows: rows, Next: int64(rows + 1)}
		for writeCtx.Err() == nil {
			if err := w.Write(writeCtx, pool, rng, 200); err != nil {
				if writeCtx.Err() != nil {
					break
				}
				done <- err
				return
			}
			txns.Add(1)
			time.Sleep(100 * time.Millisecond)
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
	stop()
	require.NoError(t, <-done)

	want, err := testenv.AcctSource(ctx, pool)
	require.NoError(t, err)

	var live, deleted, stale, missing, ghost int
	var example string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, dels, err := snowflakeAcct(db)
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

// snowflakeAcct reads the destination's acct: live rows by id, and the ids of
// soft-deleted rows.
func snowflakeAcct(db *sql.DB) (map[int64]string, map[int64]bool, error) {
	rows, err := db.Query(`SELECT "id", "note", TO_VARCHAR("v"), TO_VARCHAR("amount"), DATE_PART(EPOCH_MICROSECOND, "at"),
		TO_JSON("tags"), TO_JSON("doc"), "_cdc_deleted" FROM "ANALYTICS"."REPLICA"."acct"`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	live, dels := map[int64]string{}, map[int64]bool{}
	for rows.Next() {
		var id int64
		var note, v, amount, doc *string
		var at *int64
		var tagsJSON sql.NullString
		var del bool
		if err := rows.Scan(&id, &note, &v, &amount, &at, &tagsJSON, &doc, &del); err != nil {
			return nil, nil, err
		}
		if del {
			dels[id] = true
			continue
		}
		tags := []*string{}
		if tagsJSON.Valid {
			if err := json.Unmarshal([]byte(tagsJSON.String), &tags); err != nil {
				return nil, nil, err
			}
		}
		live[id] = testenv.AcctRow(note, v, amount, at, tags, doc)
	}
	return live, dels, rows.Err()
}
