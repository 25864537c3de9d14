package main_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/stretchr/testify/require"
)

// TestMariaDBSurvivesKills: cdcd is SIGKILLed during the snapshot and while
// streaming, and MariaDB itself is SIGKILLed and restarted once, while a writer
// keeps changing the table; the file sink ends identical to the source.
// CDCD_MYSQL_ROWS sets the snapshot's size (1,000,000 in scripts/test-long).
func TestMariaDBSurvivesKills(t *testing.T) {
	t.Parallel()
	rows := envInt("CDCD_MYSQL_ROWS", 30_000)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rows", seed, rows)
	rng := rand.New(rand.NewPCG(seed, 2))
	// durable commits: a server crash must not take back what cdcd already read
	m := testenv.StartMariaDB(t, "--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1")
	conn, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer conn.Close()
	for _, q := range []string{
		"CREATE DATABASE app CHARACTER SET utf8mb4", "USE app",
		"CREATE TABLE acct (id bigint PRIMARY KEY, note varchar(50), v bigint, amount decimal(12,2))",
		// MariaDB's sequence engine; the size is an int of this test
		fmt.Sprintf("INSERT INTO acct SELECT seq, CONCAT('n', seq), seq, seq * 1.25 FROM seq_1_to_%d", rows),
	} {
		_, err := conn.Execute(q)
		require.NoError(t, err, q)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "my.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: mysqlfile
    source:
      type: mysql
      config: {addr: %q, user: root, tables: [app.acct], snapshot_chunk_rows: %d, heartbeat_interval: 1s}
    sink: {type: file, config: {dir: %q}}
    batch: {max_changes: 2000, max_wait: 50ms}
`, m.Addr(), max(1000, rows/30), filepath.Join(dir, "out"))), 0o644))
	data := filepath.Join(dir, "data")

	// the writer reconnects when the server is being killed
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wr := rand.New(rand.NewPCG(seed, 3))
		next := int64(rows + 100_000)
		var c *client.Conn
		for {
			select {
			case <-stop:
				if c != nil {
					c.Close()
				}
				return
			default:
			}
			if c == nil {
				var err error
				if c, err = client.Connect(m.Addr(), "root", "", "app"); err != nil {
					c = nil
					time.Sleep(50 * time.Millisecond)
					continue
				}
			}
			id := 1 + wr.Int64N(int64(rows))
			var err error
			switch wr.IntN(4) {
			case 0:
				_, err = c.Execute("INSERT INTO acct VALUES (?, 'ins', 0, 0.5)", next)
				next++
			case 1:
				_, err = c.Execute("UPDATE acct SET v = v + 1, note = 'upd', amount = amount + 0.01 WHERE id = ?", id)
			case 2:
				_, err = c.Execute("DELETE FROM acct WHERE id = ?", id)
			case 3:
				_, err = c.Execute("UPDATE acct SET v = v * 2 WHERE id BETWEEN ? AND ?", id, id+200)
			}
			if err != nil {
				c.Close()
				c = nil
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()

	var log syncBuffer
	defer func() {
		if t.Failed() {
			l := log.String()
			t.Logf("cdcd log (last 6000 bytes):\n%s", l[max(0, len(l)-6000):])
		}
	}()
	for i := range 6 {
		cmd := startRun(t, cfg, data, &log)
		wait := time.Duration(300+rng.IntN(900)) * time.Millisecond
		if i == 0 {
			wait = 400 * time.Millisecond // inside the snapshot
		}
		time.Sleep(wait)
		if i == 3 {
			m.Kill()
			time.Sleep(200 * time.Millisecond)
			require.NoError(t, m.Restart())
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
	}
	cmd := startRun(t, cfg, data, &log)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	check, err := client.Connect(m.Addr(), "root", "", "app")
	require.NoError(t, err)
	defer check.Close()
	source := func() map[string]any {
		res, err := check.Execute("SELECT id, note, v, CAST(amount AS CHAR) FROM acct")
		require.NoError(t, err)
		out := map[string]any{}
		for i := 0; i < res.RowNumber(); i++ {
			id, _ := res.GetInt(i, 0)
			note, _ := res.GetString(i, 1)
			v, _ := res.GetInt(i, 2)
			amount, _ := res.GetString(i, 3)
			out[fmt.Sprintf(`{"id":%d}`, id)] = map[string]any{"id": float64(id), "note": note, "v": float64(v), "amount": amount}
		}
		return out
	}
	sink := func() map[string]any {
		st, err := file.State(filepath.Join(dir, "out"))
		require.NoError(t, err)
		out := map[string]any{}
		for k, row := range st["app.acct"] {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(row), &m))
			out[k] = m
		}
		return out
	}
	var want, got map[string]any
	require.Eventually(t, func() bool {
		want, got = source(), sink()
		return reflect.DeepEqual(want, got)
	}, 2*time.Minute, 250*time.Millisecond, "the file sink never matched the source (%d vs %d rows)", len(got), len(want))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", log.String())
	t.Logf("6 SIGKILLs of cdcd, 1 of MariaDB: %d rows in the sink equal the source", len(want))
}
