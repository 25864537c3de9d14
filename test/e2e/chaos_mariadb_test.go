package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// mariaTables are the MariaDB workload's tables with, per dialect, the key and
// the hashed columns in forms both servers print alike (the documented type
// normalisation: decimals at their scale, datetimes with microseconds, doubles
// rounded to 6 places, binary as upper-case hex, NULL as <null>).
var mariaTables = []struct {
	name          string
	myKey, pgKey  string
	myCols, pgCol []string
}{
	{"items", "CAST(id AS CHAR)", "id::text",
		[]string{"name", "CAST(qty AS CHAR)", "CAST(price AS CHAR)", "CAST(flag AS CHAR)", "DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f')",
			"doc", "body", "HEX(raw)", "CAST(ROUND(score, 6) AS DECIMAL(30,6))", "c", "pad"},
		[]string{"name", "qty::text", "price::text", "flag::text", "to_char(at, 'YYYY-MM-DD HH24:MI:SS.US')",
			"doc", "body", "upper(encode(raw, 'hex'))", "round(score::numeric, 6)::text", "c", "pad"}},
	{"pairs", "CONCAT(a, ',', b)", "a::text || ',' || b",
		[]string{"CAST(ROUND(v, 6) AS DECIMAL(30,6))", "note"}, []string{"round(v::numeric, 6)::text", "note"}},
}

// mariaWorkload is the MariaDB counterpart of workload.
type mariaWorkload struct {
	addr  string
	rng   *rand.Rand
	next  int64
	txns  atomic.Int64
	fails atomic.Int64
}

func (w *mariaWorkload) text(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789 "
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[w.rng.IntN(len(letters))]
	}
	return string(b)
}

// sysbench is a value of sysbench's c and pad columns: groups of 11 digits
// joined by '-', here with a multibyte character in the middle.
func (w *mariaWorkload) sysbench(groups int) string {
	g := make([]string, groups)
	for i := range g {
		g[i] = fmt.Sprintf("%011d", w.rng.Int64N(1e11))
	}
	g[groups/2] = "é" + g[groups/2][1:]
	return strings.Join(g, "-")
}

func (w *mariaWorkload) txn() [][]any {
	r := w.rng
	n := 1 + r.IntN(10)
	if r.IntN(100) < 4 {
		lo := 1 + r.Int64N(max(w.next-2000, 1))
		return [][]any{{"UPDATE items SET qty = qty + 1, price = price + 0.01 WHERE id BETWEEN ? AND ?", lo, lo + 1999}}
	}
	out := make([][]any, 0, n)
	for range n {
		id := 1 + r.Int64N(max(w.next-1, 1))
		switch op := r.IntN(100); {
		case op < 25:
			out = append(out, []any{"INSERT INTO items (id, name, qty, price, flag, at, doc, body, raw, score, c, pad) VALUES (?, ?, ?, ?, ?, NOW(6), ?, ?, ?, ?, ?, ?)",
				w.next, w.text(12), r.IntN(1000), fmt.Sprintf("%d.%02d", r.IntN(10000), r.IntN(100)), r.IntN(2),
				fmt.Sprintf(`{"k": %d, "s": %q}`, r.IntN(100), w.text(10)), w.text(r.IntN(2000)), []byte(w.text(8)), r.Float64() * 1000,
				w.sysbench(10), w.sysbench(5)})
			w.next++
		case op < 55:
			out = append(out, []any{"UPDATE items SET qty = ?, flag = 1 - flag, score = ?, c = ? WHERE id = ?", r.IntN(100000), r.NormFloat64(), w.sysbench(10), id})
		case op < 65:
			out = append(out, []any{"UPDATE items SET body = ?, at = NOW(6) WHERE id = ?", strings.Repeat(w.text(64), 10+r.IntN(50)), id})
		case op < 75:
			out = append(out, []any{"DELETE FROM items WHERE id = ?", id})
		case op < 90:
			out = append(out, []any{"INSERT INTO pairs VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v), note = VALUES(note)",
				r.IntN(120), fmt.Sprintf("b%d", r.IntN(40)), r.Float64(), w.text(10)})
		default:
			out = append(out, []any{"DELETE FROM pairs WHERE a = ? AND b = ?", r.IntN(120), fmt.Sprintf("b%d", r.IntN(40))})
		}
	}
	return out
}

// run writes transactions until ctx ends, reconnecting through faults.
func (w *mariaWorkload) run(ctx context.Context) error {
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		stmts := w.txn()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			if attempt > 600 {
				return fmt.Errorf("writer gave up")
			}
			if c == nil {
				var err error
				if c, err = client.Connect(w.addr, "root", "", "app"); err != nil {
					c = nil
					w.fails.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			err := c.Begin()
			for _, s := range stmts {
				if err != nil {
					break
				}
				_, err = c.Execute(s[0].(string), s[1:]...)
			}
			if err == nil {
				err = c.Commit()
			}
			if err == nil {
				w.txns.Add(1)
				time.Sleep(5 * time.Millisecond)
				break
			}
			c.Close()
			c = nil
			w.fails.Add(1)
			if strings.Contains(err.Error(), "Duplicate entry") {
				break // an ambiguous commit that landed
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// mariaHashes returns key → md5 of the normalised columns.
func mariaHashes(addr, table, key string, cols []string) (map[string]string, error) {
	c, err := client.Connect(addr, "root", "", "app")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	parts := make([]string, len(cols))
	for i, col := range cols {
		parts[i] = fmt.Sprintf("COALESCE(%s, '<null>')", col)
	}
	res, err := c.Execute(fmt.Sprintf("SELECT %s, MD5(CONCAT_WS('|', %s)) FROM %s", key, strings.Join(parts, ", "), table))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := make(map[string]string, res.RowNumber())
	for i := range res.RowNumber() {
		k, _ := res.GetString(i, 0)
		h, _ := res.GetString(i, 1)
		out[k] = h
	}
	return out, nil
}

// mariaAdded lists the extra_N columns the DDL faults added to table.
func mariaAdded(addr, table string) ([]string, error) {
	c, err := client.Connect(addr, "root", "", "app")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := c.Execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = ? AND COLUMN_NAME LIKE 'extra\\_%' ORDER BY ORDINAL_POSITION", table)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []string
	for i := range res.RowNumber() {
		n, _ := res.GetString(i, 0)
		out = append(out, n)
	}
	return out, nil
}

// TestChaosMariaDBToPostgres is TestChaosPostgresToPostgres with a MariaDB
// source (binlog, GTIDs, the DBLog snapshot): the same faults, the same oracle
// after the documented type normalisation. There is no slot to watch; the
// binlog position is the offset.
func TestChaosMariaDBToPostgres(t *testing.T) {
	t.Parallel()
	c, seed, nFaults := newChaos(t, 5)
	ctx := context.Background()
	// durable commits: a server crash must not take back what cdcd already read
	m := testenv.StartMariaDB(t, "--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1")
	c.src = m
	dst := testenv.StartPostgres(t, durable()...)
	c.dst = dst
	dstDSN := dst.CreateDatabase(t, "wh")
	var err error
	c.dstPool, err = pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer c.dstPool.Close()
	exec := func(ctx context.Context, q string) error {
		conn, err := client.Connect(m.Addr(), "root", "", "app")
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Execute(q)
		return err
	}
	c.srcExec = exec
	c.ddl = func(n int) []string {
		if n == 1 {
			return []string{"ALTER TABLE items MODIFY qty bigint", "UPDATE items SET qty = qty + 1 WHERE id % 97 = 0"} // a widening
		}
		// a DEFAULT (MariaDB's instant ADD COLUMN logs no row): the sink fills it in
		return []string{fmt.Sprintf("ALTER TABLE items ADD COLUMN extra_%d int DEFAULT %d", n, -n), fmt.Sprintf("UPDATE items SET qty = qty + 1, extra_%d = %d WHERE id %% 97 = 0", n, n)}
	}

	rows := testenv.EnvInt("CDCD_CHAOS_ROWS", 30_000)
	c.snapRows = rows
	boot, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	for _, q := range []string{
		"CREATE DATABASE app CHARACTER SET utf8mb4", "USE app",
		`CREATE TABLE items (id bigint PRIMARY KEY, name varchar(64), qty int, price decimal(12,2), flag tinyint, at datetime(6),
			doc json, body mediumtext, raw varbinary(32), score double, c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '')`, // sysbench's c and pad
		`CREATE TABLE pairs (a int, b varchar(20), v double, note varchar(40), PRIMARY KEY (a, b))`,
		fmt.Sprintf(`INSERT INTO items SELECT seq, CONCAT('item ', seq), seq %% 1000, (seq %% 10000) / 100, seq %% 2,
			TIMESTAMP('2026-01-01') + INTERVAL seq SECOND, JSON_OBJECT('g', seq), IF(seq %% 20 = 0, REPEAT(MD5(seq), 100), NULL),
			UNHEX(MD5(seq)), seq / 7, CONCAT_WS('-', LPAD(seq, 11, '0'), 'é', REPEAT('83868641912-', 7), LPAD(seq * 7, 11, '0')),
			CONCAT_WS('-', LPAD(seq * 3, 11, '0'), 'pad', '67847967377', '48000963322', '62604785301') FROM seq_1_to_%d`, rows),
		"INSERT INTO pairs SELECT seq % 100, CONCAT('b', seq DIV 100), seq * 1.5, NULL FROM seq_1_to_3000",
	} {
		_, err := boot.Execute(q)
		require.NoError(t, err, q)
	}
	boot.Close()

	c.srcProxy = testenv.NewFaultProxy(t, m.Addr())
	c.dstProxy = testenv.NewFaultProxy(t, c.dst.Addr())
	dir := t.TempDir()
	c.cfg, c.data = filepath.Join(dir, "chaos.yaml"), filepath.Join(dir, "data")
	pgDSN := strings.Replace(dstDSN, dstDSN[strings.Index(dstDSN, "@")+1:strings.LastIndex(dstDSN, "/")], c.dstProxy.Addr(), 1)
	require.NoError(t, os.WriteFile(c.cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: chaos
    source:
      type: mysql
      config: {addr: %q, user: root, tables: [app.items, app.pairs], snapshot_chunk_rows: 2000, heartbeat_interval: 1s}
    sink: {type: postgres, config: {dsn: %q, schema: wh}}
    batch: {max_changes: 5000, max_wait: 100ms}
`, c.srcProxy.Addr(), pgDSN)), 0o644))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d; cdcd log (tail):\n%s", seed, c.log.Tail(8000))
			c.saveLog(seed)
		}
	}()

	w := &mariaWorkload{addr: m.Addr(), rng: rand.New(rand.NewPCG(seed, 13)), next: int64(rows) + 1}
	c.run(nFaults, w.run, func() string {
		return fmt.Sprintf("%d transactions committed, %d attempts failed under faults", w.txns.Load(), w.fails.Load())
	})
	for _, tb := range mariaTables {
		my, pg := tb.myCols, tb.pgCol
		// the columns the DDL faults added (int, DEFAULT -N): the rows they did
		// not update hold the default, which only cdcd's fill gives the destination
		added, err := mariaAdded(m.Addr(), tb.name)
		require.NoError(t, err)
		for _, col := range added {
			my = append(my, fmt.Sprintf("CAST(%s AS CHAR)", col))
			pg = append(pg, col+"::text")
		}
		c.requireEqual(tb.name, len(my),
			func() (map[string]string, error) { return mariaHashes(m.Addr(), tb.name, tb.myKey, my) },
			func() (map[string]string, error) {
				return rowHashes(ctx, c.dstPool, "wh."+tb.name+" WHERE NOT _cdc_deleted", tb.pgKey, pg)
			},
			func(key string) string { // each normalised column on both sides
				var b strings.Builder
				conn, err := client.Connect(m.Addr(), "root", "", "app")
				if err != nil {
					return err.Error()
				}
				defer conn.Close()
				for i := range my {
					var a, z string
					if res, err := conn.Execute(fmt.Sprintf("SELECT COALESCE(%s, '<null>') FROM %s WHERE %s = ?", my[i], tb.name, tb.myKey), key); err == nil && res.RowNumber() > 0 {
						a, _ = res.GetString(0, 0)
					}
					_ = c.dstPool.QueryRow(ctx, fmt.Sprintf("SELECT COALESCE(%s, '<null>') FROM wh.%s WHERE %s = $1", pg[i], tb.name, tb.pgKey), key).Scan(&z)
					if a != z {
						fmt.Fprintf(&b, "key %s column %d: source %q, destination %q\n", key, i, a, z)
					}
				}
				return b.String()
			})
	}
	c.finish()
}
