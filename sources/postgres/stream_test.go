package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/file"
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
