package file

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/stretchr/testify/require"
)

var tid = schema.TableID{Namespace: "public", Name: "orders"}

func change(n uint64, op schema.Op, key int64, v string) schema.Change {
	c := schema.Change{Op: op, Table: tid, Version: 1, Pos: offsets.AppendUint(nil, n),
		Key: schema.Row{{Name: "id", Value: schema.Int(key)}}}
	if op != schema.OpDelete {
		c.After = schema.Row{{Name: "id", Value: schema.Int(key)}, {Name: "v", Value: schema.String(v)}}
	}
	return c
}

func open(t *testing.T, dir string) *Sink {
	s := New(Config{Dir: dir}, sinks.Deps{})
	require.NoError(t, s.Open(context.Background()))
	return s
}

// TestSweepRemovesRowsTheResyncDidNotFind: a sweep line deletes, in State, the
// keys last written before the resync began, and nothing newer.
func TestSweepRemovesRowsTheResyncDidNotFind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	b1 := schema.Batch{Changes: []schema.Change{change(1, schema.OpInsert, 1, "a"), change(2, schema.OpInsert, 2, "b"), change(3, schema.OpInsert, 3, "c")}}
	// the resync begins at 4: it reads 1, the stream updates 3, 2 is gone
	b2 := schema.Batch{Changes: []schema.Change{change(5, schema.OpSnapshot, 1, "a"), change(6, schema.OpUpdate, 3, "c2"),
		{Op: schema.OpSweep, Table: tid, Version: 1, Pos: offsets.AppendUint(nil, 7), Since: offsets.AppendUint(nil, 4)},
		change(8, schema.OpInsert, 4, "d")}}
	require.NoError(t, s.Write(ctx, &b1))
	require.NoError(t, s.Write(ctx, &b2))
	require.NoError(t, s.Write(ctx, &b2), "a replay writes nothing")
	require.NoError(t, s.Close(ctx))
	st, err := State(dir)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]string{"public.orders": {
		`{"id":1}`: `{"id":1,"v":"a"}`,
		`{"id":3}`: `{"id":3,"v":"c2"}`,
		`{"id":4}`: `{"id":4,"v":"d"}`,
	}}, st)
	raw, err := os.ReadFile(filepath.Join(dir, "public.orders.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"op":"s","table":"public.orders","version":1,"key":null,"since":"`)
}

func TestWriteReplayIsIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	b1 := schema.Batch{Changes: []schema.Change{change(1, schema.OpInsert, 1, "a"), change(2, schema.OpInsert, 2, "b")}}
	b2 := schema.Batch{Changes: []schema.Change{change(3, schema.OpUpdate, 1, "a2"), change(4, schema.OpDelete, 2, "")}}

	s := open(t, dir)
	require.NoError(t, s.Write(ctx, &b1))
	require.NoError(t, s.Write(ctx, &b2))
	require.NoError(t, s.Write(ctx, &b1), "an older batch after a newer one is skipped")
	require.NoError(t, s.Close(ctx))

	// A new sink over the same dir (a restart) replays both batches.
	s = open(t, dir)
	require.NoError(t, s.Write(ctx, &b1))
	require.NoError(t, s.Write(ctx, &b2))
	b3 := schema.Batch{Changes: []schema.Change{change(5, schema.OpInsert, 3, "c")}}
	require.NoError(t, s.Write(ctx, &b3))
	require.NoError(t, s.Close(ctx))

	st, err := State(dir)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]string{"public.orders": {
		`{"id":1}`: `{"id":1,"v":"a2"}`,
		`{"id":3}`: `{"id":3,"v":"c"}`,
	}}, st)
	lines, err := os.ReadFile(filepath.Join(dir, FileName(tid)))
	require.NoError(t, err)
	require.Equal(t, 5, countLines(lines), "each change exactly once")
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func TestTornLineIsCutOff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	b := schema.Batch{Changes: []schema.Change{change(1, schema.OpInsert, 1, "a"), change(2, schema.OpInsert, 2, "b")}}
	require.NoError(t, s.Write(ctx, &b))
	require.NoError(t, s.Close(ctx))

	// A crash in the middle of writing change 3.
	path := filepath.Join(dir, FileName(tid))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"pos":"1000000000000003","op":"c","tab`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s = open(t, dir)
	b = schema.Batch{Changes: []schema.Change{change(2, schema.OpInsert, 2, "b"), change(3, schema.OpInsert, 3, "c")}}
	require.NoError(t, s.Write(ctx, &b))
	require.NoError(t, s.Close(ctx))
	st, err := State(dir)
	require.NoError(t, err)
	require.Len(t, st["public.orders"], 3)
}

func TestTornOnlyLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName(tid)), []byte(`{"pos":"10`), 0o644))
	s := open(t, dir)
	b := schema.Batch{Changes: []schema.Change{change(1, schema.OpInsert, 1, "a")}}
	require.NoError(t, s.Write(context.Background(), &b))
	require.NoError(t, s.Close(context.Background()))
	st, err := State(dir)
	require.NoError(t, err)
	require.Len(t, st["public.orders"], 1)
}

func TestSchemaFileAndNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	evil := schema.TableID{Namespace: "../..", Name: "a/b.c"}
	require.Equal(t, "%2E%2E%2F%2E%2E.a%2Fb%2Ec.jsonl", FileName(evil))
	s := open(t, dir)
	d := schema.Delta{Table: schema.Table{ID: evil, Version: 1, Columns: []schema.Column{{Name: "id"}}}}
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}))
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}), "applying a delta again is a no-op")
	require.NoError(t, s.Close(ctx))
	b, err := os.ReadFile(filepath.Join(dir, "%2E%2E%2F%2E%2E.a%2Fb%2Ec.schema.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 1, countLines(b))

	_, err = Factory().New(nil, sinks.Deps{})
	require.ErrorContains(t, err, "dir: required")
}

func TestStateDetectsDuplicates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	line := `{"pos":"01","op":"c","table":"a.b","version":1,"key":{"id":1},"after":{"id":1}}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.b.jsonl"), []byte(line+line), 0o644))
	_, err := State(dir)
	require.ErrorContains(t, err, "duplicate or reordered")
}

func TestStateKeepsUnchangedColumns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lines := `{"pos":"01","op":"c","table":"a.b","version":1,"key":{"id":1},"after":{"id":1,"big":"xyz","n":1}}
{"pos":"02","op":"u","table":"a.b","version":1,"key":{"id":1},"after":{"id":1,"big":{"$unchanged":true},"n":2}}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.b.jsonl"), []byte(lines), 0o644))
	st, err := State(dir)
	require.NoError(t, err)
	require.Equal(t, `{"id":1,"big":"xyz","n":2}`, st["a.b"][`{"id":1}`])
}

// TestAddedColumnFill: the schema file records an added column's value for the
// rows already there, exactly, and State gives it to the rows written before
// the delta and to none written after.
func TestAddedColumnFill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	v1 := schema.Table{ID: tid, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt}}, {Name: "v", Type: schema.Type{Kind: schema.KindString}, Nullable: true}}}
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: v1, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{change(1, schema.OpInsert, 1, "a"), change(2, schema.OpInsert, 2, "b")}}))
	added := schema.Column{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, Nullable: true,
		Existing: &schema.Existing{Value: schema.MustDecimal("12345678901234567890.000000000000000001")}}
	v2 := v1.Clone()
	v2.Version = 2
	v2.Columns = append(v2.Columns, added)
	d := schema.Delta{Table: v2, From: 1, Pos: offsets.AppendUint(nil, 3), Changes: []schema.ColumnChange{{Op: schema.AddColumn, Column: added}}}
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}))
	c := change(4, schema.OpInsert, 3, "c")
	c.Version = 2
	c.After = append(c.After, schema.Field{Name: "amount", Value: schema.Null()})
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{c}}))
	require.NoError(t, s.Close(ctx))

	st, err := State(dir)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		`{"id":1}`: `{"id":1,"v":"a","amount":"12345678901234567890.000000000000000001"}`,
		`{"id":2}`: `{"id":2,"v":"b","amount":"12345678901234567890.000000000000000001"}`,
		`{"id":3}`: `{"id":3,"v":"c","amount":null}`,
	}, st["public.orders"])

	// the recorded delta reads back exactly, position and value
	b, err := os.ReadFile(filepath.Join(dir, "public.orders.schema.jsonl"))
	require.NoError(t, err)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var got schema.Delta
	require.NoError(t, json.Unmarshal(lines[len(lines)-1], &got))
	require.Equal(t, d.Pos, got.Pos)
	require.True(t, got.Changes[0].Column.Existing.Value.Equal(added.Existing.Value))
}

// TestManyTablesKeepFewDescriptors: a pipeline of more tables than maxOpen
// keeps at most maxOpen files open, and every change lands once in its
// table's file, across batches, a replay and a restart.
func TestManyTablesKeepFewDescriptors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	const tables = maxOpen*2 + 44
	var seq uint64
	batch := func() *schema.Batch {
		b := &schema.Batch{}
		for i := range tables {
			seq++
			c := change(seq, schema.OpInsert, int64(seq), "x")
			c.Table = schema.TableID{Namespace: "public", Name: fmt.Sprintf("t%03d", i)}
			b.Changes = append(b.Changes, c)
		}
		b.Checkpoint = b.Changes[len(b.Changes)-1].Pos
		return b
	}
	s := open(t, dir)
	b1, b2 := batch(), batch()
	require.NoError(t, s.Write(ctx, b1))
	require.LessOrEqual(t, s.open, maxOpen)
	require.NoError(t, s.Write(ctx, b2))
	require.LessOrEqual(t, s.open, maxOpen)
	require.NoError(t, s.Write(ctx, b1), "a replay is skipped, closed files included")
	require.NoError(t, s.Close(ctx))
	s = open(t, dir) // a restart: the tails are recovered again
	require.NoError(t, s.Write(ctx, b2))
	require.NoError(t, s.Write(ctx, batch()))
	require.NoError(t, s.Close(ctx))
	for i := range tables {
		b, err := os.ReadFile(filepath.Join(dir, FileName(schema.TableID{Namespace: "public", Name: fmt.Sprintf("t%03d", i)})))
		require.NoError(t, err)
		require.Equal(t, 3, countLines(b), "table t%03d: each of its three changes once", i)
	}
}
