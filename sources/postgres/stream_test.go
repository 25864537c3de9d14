package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/require"
)

func readSchemaFile(t *testing.T, dir, table string) []schema.Delta {
	f, err := os.Open(filepath.Join(dir, file.FileName(schema.ParseTableID(table))[:len(file.FileName(schema.ParseTableID(table)))-len(".jsonl")]+".schema.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out []schema.Delta
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d schema.Delta
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d))
		out = append(out, d)
	}
	return out
}

// TestSchemaChangesMidStream: columns added, retyped and dropped at the source
// reach the sink as deltas before the rows that need them, without a restart.
func TestSchemaChangesMidStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE s (id int PRIMARY KEY, a varchar(10)); INSERT INTO s VALUES (1, 'x')`)
	cfg := h.config("public.s")
	stop, _ := h.start(cfg)
	defer stop()
	h.waitSynced("public.s", "id")
	h.exec(`ALTER TABLE s ADD COLUMN b numeric(8,3)`)
	h.exec(`INSERT INTO s VALUES (2, 'y', 1.5)`)
	h.exec(`ALTER TABLE s ALTER COLUMN a TYPE varchar(50)`)
	h.exec(`UPDATE s SET a = repeat('z', 40) WHERE id = 1`)
	h.exec(`ALTER TABLE s DROP COLUMN b`)
	h.exec(`INSERT INTO s VALUES (3, 'w')`)
	h.waitSynced("public.s", "id")
	require.NoError(t, stop())

	deltas := readSchemaFile(t, h.dir, "public.s")
	var ops []schema.DeltaOp
	for _, d := range deltas {
		for _, c := range d.Changes {
			ops = append(ops, c.Op)
		}
	}
	require.Equal(t, []schema.DeltaOp{schema.CreateTable, schema.AddColumn, schema.AlterColumnType, schema.DropColumn}, ops)
	require.Equal(t, 50, deltas[2].Table.Columns[1].Type.Length, "varchar widened to 50")
	require.Equal(t, 8, deltas[1].Changes[0].Column.Type.Precision)

	// every row was written after the delta of its version
	b, err := os.ReadFile(filepath.Join(h.dir, file.FileName(schema.ParseTableID("public.s"))))
	require.NoError(t, err)
	sc := bufio.NewScanner(bytesReader(b))
	maxVersion := uint64(0)
	for sc.Scan() {
		var r file.Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		require.GreaterOrEqual(t, r.Version, maxVersion, "versions never go back")
		maxVersion = r.Version
	}
	require.Equal(t, uint64(4), maxVersion)
}

// TestTruncatePolicies: propagate empties the table at the sink; halt stops the
// pipeline with a message naming the table.
func TestTruncatePolicies(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `CREATE TABLE tr (id int PRIMARY KEY); INSERT INTO tr SELECT generate_series(1, 10)`)
	cfg := h.config("public.tr")
	stop, _ := h.start(cfg)
	h.waitSynced("public.tr", "id")
	h.exec(`TRUNCATE tr`)
	h.exec(`INSERT INTO tr VALUES (42)`)
	h.waitSynced("public.tr", "id")
	require.NoError(t, stop())

	cfg.Truncate = "halt"
	r, _ := h.runner(cfg)
	h.exec(`TRUNCATE tr`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.Run(ctx)
	require.Error(t, err)
	require.True(t, component.IsPermanent(err))
	require.Contains(t, err.Error(), "TRUNCATE of public.tr")
}

// TestPrimaryKeyUpdate: an UPDATE that changes the key removes the old key at the sink.
func TestPrimaryKeyUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE pk (id int PRIMARY KEY, v text); INSERT INTO pk VALUES (1, 'a'), (2, 'b')`)
	stop, _ := h.start(h.config("public.pk"))
	defer stop()
	h.waitSynced("public.pk", "id")
	h.exec(`UPDATE pk SET id = 10 WHERE id = 1`)
	h.waitSynced("public.pk", "id")
	require.NoError(t, stop())
}

// TestUnchangedToast: an UPDATE that does not touch an out-of-line (TOASTed)
// column sends no value for it; the change marks it unchanged, never NULL, and
// the sink keeps the stored value.
func TestUnchangedToast(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE tt (id int PRIMARY KEY, n int, big text);
		ALTER TABLE tt ALTER COLUMN big SET STORAGE EXTERNAL; -- stored out of line, uncompressed
		INSERT INTO tt SELECT g, 0, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) FROM generate_series(1, 5) g`)
	stop, _ := h.start(h.config("public.tt"))
	defer stop()
	h.waitSynced("public.tt", "id")
	h.exec(`UPDATE tt SET n = n + 1`) // big untouched: sent as unchanged
	h.waitSynced("public.tt", "id")
	require.NoError(t, stop())

	b, err := os.ReadFile(filepath.Join(h.dir, file.FileName(schema.ParseTableID("public.tt"))))
	require.NoError(t, err)
	require.Contains(t, string(b), `"big":{"$unchanged":true}`, "the update marks the TOASTed column unchanged")
	require.NotContains(t, string(b), `"big":null`)
}

// TestUnchangedToastKeyChange: an UPDATE that changes the primary key and
// not a TOASTed column (default replica identity: the old tuple has the key
// only) still delivers the column's value under the new key, where no stored
// row could give it. Found: every sink stored NULL.
func TestUnchangedToastKeyChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE tt (id int PRIMARY KEY, n int, big text);
		ALTER TABLE tt ALTER COLUMN big SET STORAGE EXTERNAL;
		INSERT INTO tt SELECT g, 0, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) FROM generate_series(1, 5) g`)
	stop, _ := h.start(h.config("public.tt"))
	defer stop()
	h.waitSynced("public.tt", "id")
	h.exec(`UPDATE tt SET id = id + 100 WHERE id <= 2`)                                                 // the key moves; big untouched
	h.exec(`UPDATE tt SET id = 200, n = 7 WHERE id = 3`)                                                // the same, with another column
	h.exec(`BEGIN; UPDATE tt SET id = 300 WHERE id = 4; UPDATE tt SET id = 301 WHERE id = 300; COMMIT`) // twice in one transaction
	h.waitSynced("public.tt", "id")
	require.NoError(t, stop())
	b, err := os.ReadFile(filepath.Join(h.dir, file.FileName(schema.ParseTableID("public.tt"))))
	require.NoError(t, err)
	require.NotContains(t, string(b), `"big":null`)
}

// TestAddColumnDefaults: columns added with constant defaults of many types
// reach the sink with the value the rows already there hold (Postgres keeps
// it in the catalog and the WAL carries none of it), through the engine into
// the file sink, whose state must equal the source's, the older rows
// included; a row inserted in the ALTER's own transaction, before it, holds it
// too. A volatile default holds the table for review.
func TestAddColumnDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE DOMAIN posint AS int4 DEFAULT 1 CHECK (VALUE > 0);
		CREATE TABLE s (id int PRIMARY KEY, a text); INSERT INTO s SELECT g, 'x' || g FROM generate_series(1, 20) g`)
	stop, _ := h.start(h.config("public.s"))
	defer stop()
	h.waitSynced("public.s", "id")
	h.exec(`BEGIN;
		INSERT INTO s VALUES (21, 'in the same transaction, before the ALTER');
		ALTER TABLE s ADD COLUMN c_int int4 NOT NULL DEFAULT -7, ADD COLUMN c_big int8 DEFAULT 9223372036854775807,
			ADD COLUMN c_num numeric(30,10) DEFAULT 12345678901234567890.0123456789, ADD COLUMN c_nan numeric DEFAULT 'NaN',
			ADD COLUMN c_f8 float8 DEFAULT 1e-300, ADD COLUMN c_f4 float4 DEFAULT 1.1, ADD COLUMN c_inf float8 DEFAULT '-Infinity',
			ADD COLUMN c_text text DEFAULT E'it''s \\ "q" ✓\nline', ADD COLUMN c_vc varchar(5) DEFAULT 'ab', ADD COLUMN c_char char(4) DEFAULT 'a',
			ADD COLUMN c_bytea bytea DEFAULT '\x00ff00', ADD COLUMN c_bool bool DEFAULT true,
			ADD COLUMN c_date date DEFAULT '2020-02-29', ADD COLUMN c_bc date DEFAULT '0044-03-15 BC', ADD COLUMN c_ts timestamp DEFAULT '2020-01-02 03:04:05.123456',
			ADD COLUMN c_tstz timestamptz DEFAULT '2020-01-02 03:04:05.5+02', ADD COLUMN c_now timestamptz DEFAULT now(),
			ADD COLUMN c_time time DEFAULT '23:59:59.999999', ADD COLUMN c_interval interval DEFAULT '1 day 02:03:04',
			ADD COLUMN c_jsonb jsonb DEFAULT '{"a": [1, 2.5, null], "b": "x"}', ADD COLUMN c_json json DEFAULT '{"k": 1, "k": 2}',
			ADD COLUMN c_uuid uuid DEFAULT '6ba7b810-9dad-11d1-80b4-00c04fd430c8', ADD COLUMN c_mood mood DEFAULT 'happy',
			ADD COLUMN c_arr int4[] DEFAULT '{1,NULL,3}', ADD COLUMN c_tarr text[] DEFAULT '{"a,b",""}',
			ADD COLUMN c_bounds int4[] DEFAULT '[0:1]={5,6}', ADD COLUMN c_range int4range DEFAULT '[1,5)',
			ADD COLUMN c_null int4;
		UPDATE s SET a = 'after the ALTER' WHERE id = 20;
		COMMIT`)
	h.exec(`INSERT INTO s (id, a, c_int) VALUES (22, 'after', 1)`)
	h.waitSynced("public.s", "id")

	deltas := readSchemaFile(t, h.dir, "public.s")
	d := deltas[len(deltas)-1]
	require.NotNil(t, d.Pos)
	known := map[string]bool{}
	for _, c := range d.Changes {
		require.Equal(t, schema.AddColumn, c.Op)
		known[c.Column.Name] = c.Column.Existing.Known()
	}
	require.False(t, known["c_null"])
	require.Len(t, known, 28)
	for name, k := range known {
		require.True(t, k || name == "c_null", "%s: known", name)
	}
	require.True(t, known["c_now"], "now() is evaluated once, when the column is added")
	require.NoError(t, stop())

	// a volatile default rewrites the table (so does a domain with a
	// constraint): the table is held (the runner fails without a metadata
	// store to hold it in, naming the columns and why)
	h.exec(`ALTER TABLE s ADD COLUMN c_rnd float8 DEFAULT random(), ADD COLUMN c_dom posint`)
	h.exec(`UPDATE s SET a = 'y' WHERE id = 1`)
	r, _ := h.runner(h.config("public.s"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.Run(ctx)
	require.ErrorContains(t, err, "column c_rnd added, and the rows already there hold values the source cannot tell (its default is not a constant")
	require.ErrorContains(t, err, "column c_dom added, and the rows already there hold values the source cannot tell (its type is a domain with a default")
	require.True(t, component.IsPermanent(err))
}

// TestAddColumnDefaultsCatalogMovedOn: cdcd reads an added column's value for
// the older rows from the catalog when it meets the column in the WAL, which
// may be after the catalog moved on. A column dropped since is gone at the
// source (logged, the destination keeps NULL in what it keeps of it); one
// renamed since cannot be told from one dropped while another was added, so
// the table is held.
func TestAddColumnDefaultsCatalogMovedOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE s (id int PRIMARY KEY, a text); INSERT INTO s SELECT g, 'x' FROM generate_series(1, 5) g`)
	stop, _ := h.start(h.config("public.s"))
	h.waitSynced("public.s", "id")
	require.NoError(t, stop())

	h.exec(`ALTER TABLE s ADD COLUMN c int4 DEFAULT 5`)
	h.exec(`UPDATE s SET a = 'y' WHERE id = 1`)
	h.exec(`ALTER TABLE s DROP COLUMN c`)
	h.exec(`UPDATE s SET a = 'y' WHERE id = 2`)
	stop, _ = h.start(h.config("public.s"))
	h.waitSynced("public.s", "id")
	require.NoError(t, stop())

	h.exec(`ALTER TABLE s ADD COLUMN d int4 DEFAULT 6`)
	h.exec(`UPDATE s SET a = 'z' WHERE id = 1`)
	h.exec(`ALTER TABLE s RENAME COLUMN d TO e`)
	h.exec(`UPDATE s SET a = 'z' WHERE id = 2`)
	r, _ := h.runner(h.config("public.s"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.Run(ctx)
	require.ErrorContains(t, err, "column d added, and the rows already there hold values the source cannot tell (the column is no longer in the catalog under that name")
}

// TestKeepaliveCheckpointSortsBeforeTheNextCommit: a keepalive says the
// server has read up to walEnd; the next transaction's commit record may start
// exactly there. The checkpoint made of it must sort below that transaction's
// changes: sinks skip what sorts at or below their stored position, and a
// checkpoint at (1, walEnd, Max) silently dropped the transaction (found by
// the resync tests: an update lost for good, 1 run in 6). It resumes at walEnd.
func TestKeepaliveCheckpointSortsBeforeTheNextCommit(t *testing.T) {
	t.Parallel()
	s := &Source{out: make(chan schema.Batch, 1)}
	s.durable.Store(0x1000)
	st := &streamer{s: s, received: 0x1000, lastCkpt: 0x1000, byKey: map[string]int{}, status: time.NewTicker(time.Hour)}
	defer st.status.Stop()
	const walEnd = 0x1A3FFF0
	msg := []byte{'k'}
	msg = binary.BigEndian.AppendUint64(msg, walEnd)
	msg = binary.BigEndian.AppendUint64(msg, 0)
	msg = append(msg, 0)
	require.NoError(t, st.copyData(context.Background(), msg))
	b := <-s.out
	require.NotNil(t, b.Checkpoint)
	require.Negative(t, b.Checkpoint.Compare(streamPos(walEnd, 0)), "the next transaction, committed at walEnd, sorts after the checkpoint")
	require.Positive(t, b.Checkpoint.Compare(streamCheckpoint(walEnd-8, walEnd)), "a transaction committed before walEnd sorts before it")
	cp, err := decodeCheckpoint(b.Checkpoint)
	require.NoError(t, err)
	require.Equal(t, pglogrepl.LSN(walEnd), cp.end, "a restart resumes at walEnd")
}
