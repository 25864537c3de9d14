package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestVerifyFindsPlantedDifferencesAndRepairs: rows deleted, soft-deleted,
// changed and added at the destination behind cdcd's back are found exactly,
// while a writer changes other rows of both tables, without copying the tables
// out; --repair resyncs the table that differs and a second verify finds it
// equal.
func TestVerifyFindsPlantedDifferencesAndRepairs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newResyncRig(t, 3000)
	// the writer touches ids up to 2000 and above 1,000,000: plant above 2000
	for _, q := range []string{
		`DELETE FROM replica.acct WHERE id BETWEEN 2501 AND 2505`,
		`UPDATE replica.acct SET _cdc_deleted = true WHERE id IN (2601, 2602)`,
		`UPDATE replica.acct SET owner = 'tampered' WHERE id IN (2701, 2702, 2703)`,
		`UPDATE replica.acct SET balance = balance + 1 WHERE id = 2801`,
		`INSERT INTO replica.acct (id, owner, balance, _cdc_version, _cdc_deleted, _cdc_synced_at)
			SELECT 500000 + g, 'ghost', g, '\x00'::bytea, false, now() FROM generate_series(1, 3) g`,
	} {
		_, err := r.dst.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	r.write("acct", "other")
	defer func() {
		select {
		case <-r.stop:
		default:
			r.stopWriting()
		}
	}()

	out := cli(t, r.env, 1, "pipelines", "verify", "rs")
	t.Logf("verify:\n%s", out)
	require.Contains(t, out, "public.acct: DIFFERENT: 7 missing, 3 extra, 4 different")
	require.Contains(t, out, "missing: 2501 2502 2503 2504 2505 2601 2602")
	require.Contains(t, out, "extra: 500001 500002 500003")
	require.Contains(t, out, "different: 2701 2702 2703 2801")
	require.Regexp(t, `public\.other: equal \(\d+ rows\)`, out)

	// the report is kept, and only keys, hashes and counts crossed the network
	var list struct {
		Verifications []struct {
			Equal            bool  `json:"equal"`
			SourceBytes      int64 `json:"source_bytes"`
			DestinationBytes int64 `json:"destination_bytes"`
			Tables           []struct {
				Table  string `json:"table"`
				Ranges int    `json:"ranges"`
			} `json:"tables"`
		} `json:"verifications"`
	}
	resp, err := http.Get(r.server.url + "/api/v1/pipelines/rs/verifications")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	require.Len(t, list.Verifications, 1)
	v := list.Verifications[0]
	require.False(t, v.Equal)
	require.Less(t, v.SourceBytes, int64(1<<20), "the source's table is not copied out")
	require.Less(t, v.DestinationBytes, int64(1<<20))
	require.Greater(t, v.Tables[0].Ranges, 1, "the differing table was bisected")
	events := cli(t, r.env, 0, "pipelines", "events", "rs")
	require.Contains(t, events, "verify found differences: public.acct: 7 missing, 3 extra, 4 different")

	out = cli(t, r.env, 1, "pipelines", "verify", "rs", "--tables", "public.acct", "--repair")
	require.Contains(t, out, "repair: resyncing public.acct")
	time.Sleep(time.Second) // writes go on during the repair
	r.stopWriting()
	r.waitEqual("acct")
	r.waitEqual("other")
	out = cli(t, r.env, 0, "pipelines", "verify", "rs")
	require.Contains(t, out, "public.acct: equal (")
	require.Contains(t, cli(t, r.env, 2, "pipelines", "verify", "rs", "--tables", "public.nope"), `tables[0]: pipeline "rs" does not replicate "public.nope"`)
}

// TestVerifyComparesEveryCanonicalType: a table with every kind verify
// compares, replicated by the postgres source and sink (snapshot and
// stream), verifies equal: no false difference from how each side renders a
// value. The kinds it cannot compare are named.
func TestVerifyComparesEveryCanonicalType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srcPG := testenv.StartPostgres(t)
	srcDSN := srcPG.CreateDatabase(t, "app")
	dstDSN := testenv.StartPostgres(t).CreateDatabase(t, "wh")
	src, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close()
	const cols = `k uuid PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, n numeric, n2 numeric(12,2), t text, vc varchar(20), c char(5),
		by bytea, ts timestamptz, tsn timestamp, d date, f float8, j jsonb, a int4[]`
	const rows = `
		('00000000-0000-0000-0000-000000000001', true, -32768, -2147483648, -9223372036854775808, 1.50, 12.30, 'a|b', 'x', 'ab', '\x00ff00', '2024-01-02 03:04:05.123456+02', '1999-12-31 23:59:59.999999', '2024-02-29', 1.5, '{"a": 1}', '{1,NULL}'),
		('00000000-0000-0000-0000-000000000002', false, 32767, 2147483647, 9223372036854775807, 'NaN', -0.01, 'emoji 😀 and ''quotes''', '', 'abc  ', '', 'infinity', '0001-01-01 00:00:00', '0001-01-01', -0.0, '[]', '{}'),
		('00000000-0000-0000-0000-000000000003', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		('ffffffff-ffff-ffff-ffff-ffffffffffff', true, 0, 0, 0, 123456789012345678901234567890.123456789, 0, 'v', 'n', 'x', '\x', '1970-01-01 00:00:00+00', '2262-04-11 23:47:16.854775', '9999-12-31', 1e300, 'null', '{1,2,3}')`
	_, err = src.Exec(ctx, `CREATE TABLE typed (`+cols+`); INSERT INTO typed VALUES `+rows)
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: ty
    source: {type: postgres, config: {dsn: %q, tables: [public.typed], heartbeat_interval: 1s, status_interval: 200ms}}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_wait: 50ms}
`, srcDSN, dstDSN)), 0o600))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	// the same values again through the stream
	_, err = src.Exec(ctx, `INSERT INTO typed SELECT ('10000000' || substr(k::text, 9))::uuid, b, i2, i4, i8, n, n2, t, vc, c, by, ts, tsn, d, f, j, a FROM typed`)
	require.NoError(t, err)
	dst, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	require.Eventually(t, func() bool {
		var n int
		return dst.QueryRow(ctx, `SELECT count(*) FROM replica.typed`).Scan(&n) == nil && n == 8
	}, 60*time.Second, 100*time.Millisecond, "log: %s", s.log)
	out := cli(t, env, 0, "pipelines", "verify", "ty")
	t.Logf("verify:\n%s", out)
	require.Contains(t, out, "public.typed: equal (8 rows)")
	for _, c := range []string{"f (float8)", "j (jsonb)", "a (_int4)"} {
		require.Contains(t, out, "column not compared: "+c)
	}
	require.Equal(t, 3, strings.Count(out, "column not compared"))
	// a value changed behind cdcd's back in each compared column is found
	const one = `'00000000-0000-0000-0000-000000000001'`
	_, err = dst.Exec(ctx, `CREATE TABLE replica.orig AS SELECT * FROM replica.typed WHERE k = `+one)
	require.NoError(t, err)
	for _, c := range []string{"b = NOT b", "i2 = i2 + 1", "i4 = i4 + 1", "i8 = 1", "n = 1.51", "n2 = 12.31", "t = 'a|c'", "vc = 'y'", "c = 'abd'", "by = '\\x00ff01'",
		"ts = ts + interval '1 microsecond'", "tsn = tsn - interval '1 microsecond'", "d = d + 1"} {
		col := strings.Split(c, " = ")[0]
		_, err := dst.Exec(ctx, `UPDATE replica.typed SET `+c+` WHERE k = `+one)
		require.NoError(t, err)
		t.Logf("changed at the destination: %s", c)
		out := cli(t, env, 1, "pipelines", "verify", "ty")
		require.Contains(t, out, "0 missing, 0 extra, 1 different", "after %s:\n%s", c, out)
		_, err = dst.Exec(ctx, `UPDATE replica.typed t SET `+col+` = o.`+col+` FROM replica.orig o WHERE t.k = o.k`)
		require.NoError(t, err)
	}
	require.Contains(t, cli(t, env, 0, "pipelines", "verify", "ty"), "public.typed: equal (8 rows)")
}

// TestScheduledVerifyRepairs: a pipeline with verify: {every: 2s, repair:
// true} finds rows changed at the destination behind cdcd's back by itself,
// records it, and resyncs the table.
func TestScheduledVerifyRepairs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newResyncRig(t, 2000)
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: rs
    source: {type: postgres, config: {dsn: %q, tables: [public.acct, public.other], snapshot_chunk_rows: 500, heartbeat_interval: 1s, status_interval: 200ms, slot_poll_interval: 1s}}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_changes: 2000, max_wait: 50ms}
    verify: {every: 2s, repair: true}
`, r.srcDSN, r.dstDSN)), 0o600))
	cli(t, r.env, 0, "pipelines", "apply", "-f", cfg)
	_, err := r.dst.Exec(ctx, `DELETE FROM replica.other WHERE id BETWEEN 10 AND 19`)
	require.NoError(t, err)
	r.waitEqual("other")
	events := cli(t, r.env, 0, "pipelines", "events", "rs")
	require.Contains(t, events, "verify found differences: public.other: 10 missing, 0 extra, 0 different")
	require.Contains(t, events, "resync requested of tables public.other")
	var list struct {
		Verifications []struct {
			Scheduled bool `json:"scheduled"`
			Repair    *struct {
				Tables []string `json:"tables"`
			} `json:"repair"`
		} `json:"verifications"`
	}
	resp, err := http.Get(r.server.url + "/api/v1/pipelines/rs/verifications?limit=100")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	repaired := false
	for _, v := range list.Verifications {
		require.True(t, v.Scheduled)
		repaired = repaired || (v.Repair != nil && v.Repair.Tables[0] == "public.other")
	}
	require.True(t, repaired, "a scheduled verify repaired the table")
}

// TestVerifyMariaDBToPostgres: a MariaDB table with every kind verify
// compares, replicated into the postgres sink (snapshot and stream), verifies
// equal across the two databases' renderings, with a varchar key cut into
// ranges byte-wise; rows changed at the destination are found exactly.
func TestVerifyMariaDBToPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := testenv.StartMariaDB(t)
	conn, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer conn.Close()
	for _, q := range []string{
		"CREATE DATABASE app CHARACTER SET utf8mb4", "USE app",
		`CREATE TABLE typed (k varchar(40) PRIMARY KEY, b boolean, ti tinyint, si smallint unsigned, i int, bi bigint, ub bigint unsigned,
			d decimal(20,6), c char(10), vc varchar(100), tx text, bn binary(4), vb varbinary(20), dt datetime(6), ts timestamp(6) NULL, dd date,
			f double, j json)`,
		`INSERT INTO typed VALUES
			('a', true, -128, 65535, -2147483648, -9223372036854775808, 18446744073709551615, 12345678901234.123456, 'ab', 'x|y', 'emoji 😀', x'00010200', x'00ff', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.654321', '2024-02-29', 1.5, '{"a": 1}'),
			('B', false, 127, 0, 2147483647, 9223372036854775807, 0, -0.000001, '', '', '', x'00000000', x'', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '1000-01-01', -0.0, '[]'),
			('é', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		"INSERT INTO typed SELECT CONCAT('k', seq), seq % 2, seq % 100, seq, seq, seq * 1000, seq, seq / 7, 'c', CONCAT('v', seq), REPEAT('t', seq % 50), x'01020304', x'0a', '2020-01-01 00:00:00', '2020-01-01 00:00:00', '2020-01-01', seq, NULL FROM seq_1_to_3000",
	} {
		_, err := conn.Execute(q)
		require.NoError(t, err, q)
	}
	dstDSN := testenv.StartPostgres(t).CreateDatabase(t, "wh")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - name: my
    source: {type: mysql, config: {addr: %q, user: root, tables: [app.typed], heartbeat_interval: 1s}}
    sink: {type: postgres, config: {dsn: %q, schema: replica}}
    batch: {max_wait: 50ms}
`, m.Addr(), dstDSN)), 0o600))
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	// the same values again through the stream
	_, err = conn.Execute(`INSERT INTO typed SELECT CONCAT('s-', k), b, ti, si, i, bi, ub, d, c, vc, tx, bn, vb, dt, ts, dd, f, j FROM typed WHERE k IN ('a', 'B', 'é')`)
	require.NoError(t, err)
	dst, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	require.Eventually(t, func() bool {
		var n int
		return dst.QueryRow(ctx, `SELECT count(*) FROM replica.typed`).Scan(&n) == nil && n == 3006
	}, 60*time.Second, 100*time.Millisecond, "log: %s", s.log)
	out := cli(t, env, 0, "pipelines", "verify", "my")
	t.Logf("verify:\n%s", out)
	require.Contains(t, out, "app.typed: equal (3006 rows)")
	require.Contains(t, out, "column not compared: f (double)")

	for _, q := range []string{
		`DELETE FROM replica.typed WHERE k IN ('k100', 'k2999')`,
		`UPDATE replica.typed SET tx = tx || '!' WHERE k = 'é' OR k = 'k1500'`, // é's tx is NULL: no change,
		`UPDATE replica.typed SET ub = 18446744073709551614 WHERE k = 'a'`,
		`UPDATE replica.typed SET dt = dt + interval '1 microsecond' WHERE k = 'B'`,
		`UPDATE replica.typed SET bn = '\x00010201' WHERE k = 's-a'`,
	} {
		_, err := dst.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	out = cli(t, env, 1, "pipelines", "verify", "my")
	require.Contains(t, out, "app.typed: DIFFERENT: 2 missing, 0 extra, 4 different", out)
	require.Contains(t, out, "missing: k100 k2999")
	require.Contains(t, out, "different: B a k1500 s-a", out)
}
