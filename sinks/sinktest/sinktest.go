// Package sinktest is the conformance suite every sink passes: tables created
// from deltas, idempotent and versioned writes (replay, out-of-order replay),
// soft and hard deletes, unchanged-TOAST markers, added columns, a type matrix,
// crash and replay (with the offset in the sink where it stores it), and no
// goroutine left behind.
//
// A sink package runs it from a test with its own Harness:
//
//	func TestConformance(t *testing.T) { sinktest.Run(t, newHarness) }
//	func TestMain(m *testing.M)        { sinktest.VerifyTestMain(m) }
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Options are the per-pipeline settings the suite varies.
type Options struct {
	// HardDelete deletes rows instead of marking them deleted.
	HardDelete bool
	// NullUnrepresentable sets on_unrepresentable: null (values the
	// destination cannot hold are stored as NULL and counted).
	NullUnrepresentable bool
	// Metrics is where the sink registers its metrics (nil: nowhere).
	Metrics prometheus.Registerer
}

// Stored is one destination row as the harness reads it back.
type Stored struct {
	Row     schema.Row // data columns (no metadata), decoded by the columns' types
	Deleted bool       // the soft-delete flag
}

// Harness is a sink under test and the destination behind it. Every NewSink
// call of one harness targets the same destination and pipeline, like the
// attempts of one pipeline; harnesses made for different subtests are isolated.
type Harness interface {
	// NewSink returns a new, unopened sink.
	NewSink(t *testing.T, o Options) sinks.Sink
	// State reads the current rows of table (whose shape the suite gives, to
	// decode values), keyed by the primary key rendered with schema.Row.AppendJSON.
	State(t *testing.T, table schema.Table) map[string]Stored
	// Skip returns a reason to skip the type-matrix case named, or "".
	Skip(typeCase string) string
}

// TestSkipper is implemented by harnesses whose destination cannot run some of
// the suite's tests (an old server without a feature): SkipTest returns why, or "".
type TestSkipper interface {
	SkipTest(name string) string
}

// Limits is implemented by harnesses whose destination holds a narrower range
// of some values than the type matrix writes (ClickHouse dates start in 1900):
// values it does not hold are left out of the matrix (the sink's own tests
// cover what happens to them).
type Limits interface {
	Holds(typeCase string, v schema.Value) bool
}

// Restarter is implemented by harnesses that can kill the destination server
// and start it again (crash recovery is then tested with a real server crash).
type Restarter interface {
	KillAndRestart(t *testing.T)
}

// Execer is implemented by harnesses that run a statement at the destination
// as a person would (the statements of a sinks.Cleaner's Leftover).
type Execer interface {
	Exec(t *testing.T, statement string)
}

// Dropper is implemented by harnesses that drop a destination table as a
// person would, behind the sink's back. Every sink whose destination has
// tables must have one: the suite checks that a lost table is reported,
// never recreated empty.
type Dropper interface {
	Drop(t *testing.T, table schema.Table)
}

// Truncater is implemented by harnesses whose sink finds, at its next write,
// a destination table truncated behind its back: Truncate runs TRUNCATE as
// a person would. Sinks without one leave truncations to verify.
type Truncater interface {
	Truncate(t *testing.T, table schema.Table)
}

// Crasher is implemented by harnesses whose sink applies a batch's data and
// records that it did in separate steps (the warehouse sinks: MERGE, then the
// state row). CrashingSink returns a sink whose Writes apply the data and then
// fail before recording the batch, as a crash between the two would.
type Crasher interface {
	CrashingSink(t *testing.T, o Options) sinks.Sink
}

// VerifyTestMain runs a sink package's tests and fails if any goroutine is left
// behind when they end.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(opts,
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))...)
}

// Run runs the suite; newHarness makes a fresh harness for each subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := map[string]func(t *testing.T, h Harness){
		"create_and_write":          testCreateAndWrite,
		"replay_is_idempotent":      testReplay,
		"older_batch_after_newer":   testOutOfOrder,
		"soft_delete":               func(t *testing.T, h Harness) { testDeletes(t, h, false) },
		"hard_delete":               func(t *testing.T, h Harness) { testDeletes(t, h, true) },
		"unchanged_keeps_value":     testUnchanged,
		"add_column":                testAddColumn,
		"add_column_fills_existing": testAddColumnFill,
		"truncate":                  testTruncate,
		"sweep_soft":                func(t *testing.T, h Harness) { testSweep(t, h, false) },
		"sweep_hard":                func(t *testing.T, h Harness) { testSweep(t, h, true) },
		"type_matrix":               testTypes,
		"type_matrix_fill":          testTypesFill,
		"crash_then_replay":         testCrashReplay,
		"crash_after_merge":         testCrashAfterMerge,
		"fenced_writer":             testFenced,
		"commit_behind_write":       testCommitBehindWrite,
		"resync_after_cleanup":      testResync,
		"resync_after_manual_cleanup": func(t *testing.T, h Harness) {
			testResyncAfter(t, h, func(c sinks.Cleaner) {
				x, ok := h.(Execer)
				if !ok {
					t.Fatal("the harness of a sinks.Cleaner must be an Execer, to run its Leftover statements")
				}
				l := c.Leftover()
				require.NotEmpty(t, l.What)
				x.Exec(t, l.SQL)
			})
		},
		"names_never_cut_or_shared": testNames,
		"lost_table":                testLostTable,
		"truncated_table":           testTruncatedTable,
		"write_error_names_table":   testWriteErrorNamesTable,
		"catalog_lists_tables":      testCatalog,
		"verify":                    testVerify,
		"plan_ddl_reads_only":       testPlanDDL,
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if sk, ok := h.(TestSkipper); ok {
				if why := sk.SkipTest(name); why != "" {
					t.Skip(why)
				}
			}
			f(t, h)
		})
	}
}

// Items is the suite's main table: id (bigint key), v (bigint), doc (text).
var Items = schema.Table{
	ID:      schema.TableID{Namespace: "public", Name: "items"},
	Version: 1,
	Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
		{Name: "v", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true},
		{Name: "doc", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

func createDelta(t schema.Table) schema.Delta {
	return schema.Delta{Table: t, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}
}

// gen hands out increasing positions.
type gen struct{ n atomic.Uint64 }

func (g *gen) pos() offsets.Position { return offsets.AppendUint(nil, g.n.Add(1)) }

func (g *gen) change(op schema.Op, id, v int64, doc string) schema.Change {
	c := schema.Change{Op: op, Table: Items.ID, Version: 1, Pos: g.pos(), CommitTS: time.Unix(1700000000, 0).UTC(),
		Key: schema.Row{{Name: "id", Value: schema.Int(id)}}}
	if op != schema.OpDelete {
		c.After = schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "v", Value: schema.Int(v)}, {Name: "doc", Value: schema.String(doc)}}
	}
	return c
}

func batch(ckpt bool, cs ...schema.Change) *schema.Batch {
	b := &schema.Batch{Changes: cs}
	if ckpt && len(cs) > 0 {
		b.Checkpoint = cs[len(cs)-1].Pos
	}
	return b
}

// session is an open sink with its lease, as the engine holds it.
type session struct {
	t     *testing.T
	s     sinks.Sink
	epoch offsets.Epoch
	pipe  string
}

const pipeline = "sinktest"

func open(t *testing.T, h Harness, o Options) *session {
	t.Helper()
	ctx := context.Background()
	s := h.NewSink(t, o)
	ss := &session{t: t, s: s, pipe: pipeline}
	if st, ok := s.(sinks.OffsetStorer); ok {
		e, err := st.Acquire(ctx, pipeline)
		require.NoError(t, err)
		ss.epoch = e
	}
	require.NoError(t, s.Open(ctx))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return ss
}

func (s *session) apply(ds ...schema.Delta) {
	s.t.Helper()
	require.NoError(s.t, s.s.Apply(context.Background(), ds))
}

func (s *session) write(bs ...*schema.Batch) {
	s.t.Helper()
	for _, b := range bs {
		require.NoError(s.t, s.s.Write(context.Background(), b))
	}
}

func (s *session) close() {
	s.t.Helper()
	require.NoError(s.t, s.s.Close(context.Background()))
}

// row is an expected Items row.
func row(id, v int64, doc string) schema.Row {
	return schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "v", Value: schema.Int(v)}, {Name: "doc", Value: schema.String(doc)}}
}

func key(id int64) string {
	return string(schema.Row{{Name: "id", Value: schema.Int(id)}}.AppendJSON(nil))
}

// expect compares the destination's rows with want (rows by id; a nil row
// means a soft-deleted tombstone).
func expect(t *testing.T, h Harness, table schema.Table, want map[int64]schema.Row) {
	t.Helper()
	got := h.State(t, table)
	require.Len(t, got, len(want), "rows at the destination: %v", keys(got))
	for id, w := range want {
		g, ok := got[key(id)]
		require.True(t, ok, "row %d missing; have %v", id, keys(got))
		if w == nil {
			require.True(t, g.Deleted, "row %d should be marked deleted", id)
			continue
		}
		require.False(t, g.Deleted, "row %d should not be marked deleted", id)
		requireRow(t, w, g.Row)
	}
}

func keys(m map[string]Stored) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// requireRow compares the columns of want with got (extra columns in got must
// be NULL).
func requireRow(t *testing.T, want, got schema.Row) {
	t.Helper()
	for _, f := range want {
		g, ok := got.Get(f.Name)
		require.True(t, ok, "column %s missing in %s", f.Name, got.AppendJSON(nil))
		require.True(t, Equal(f.Value, g), "column %s: want %s, got %s", f.Name, f.Value.AppendJSON(nil), g.AppendJSON(nil))
	}
	for _, f := range got {
		if _, ok := want.Get(f.Name); !ok {
			require.True(t, f.Value.IsNull(), "column %s: want NULL, got %s", f.Name, f.Value.AppendJSON(nil))
		}
	}
}

// Equal compares a written value with one read back: instants to the
// microsecond, floats by value (NaN equals NaN), JSON by meaning, arrays
// element by element, everything else exactly.
func Equal(want, got schema.Value) bool {
	if want.Kind() != got.Kind() {
		return false
	}
	switch want.Kind() {
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		return want.AsTime().Truncate(time.Microsecond).Equal(got.AsTime().Truncate(time.Microsecond))
	case schema.KindFloat:
		a, b := want.AsFloat(), got.AsFloat()
		return a == b || (math.IsNaN(a) && math.IsNaN(b))
	case schema.KindJSON: // the same JSON value: numbers exactly, duplicate keys kept, member order aside
		a, okA := CanonicalJSON(want.Text())
		b, okB := CanonicalJSON(got.Text())
		if !okA || !okB {
			return want.Text() == got.Text()
		}
		return a == b
	case schema.KindArray:
		we, ge := want.Elems(), got.Elems()
		if len(we) != len(ge) {
			return false
		}
		for i := range we {
			if !Equal(we[i], ge[i]) {
				return false
			}
		}
		return true
	}
	return want.Equal(got)
}

func testCreateAndWrite(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.apply(createDelta(Items)) // again: a no-op
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b")),
		batch(true, g.change(schema.OpUpdate, 1, 11, "a2"), g.change(schema.OpSnapshot, 3, 30, "c")))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "a2"), 2: row(2, 20, "b"), 3: row(3, 30, "c")})
}

// testNames: a name longer than the destination holds is refused before
// anything is created (Postgres would cut it to 63 bytes, and two long names
// sharing a prefix became one table), as are a column name too long and two
// tables the table_name template (the default, {table}) gives one name.
func testNames(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	ctx := context.Background()
	long := Items
	long.ID = schema.TableID{Namespace: "public", Name: strings.Repeat("a_very_long_table_name_", 48) + "1"} // 1,105 bytes
	err := s.s.Apply(ctx, []schema.Delta{createDelta(long)})
	require.Error(t, err)
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "the destination holds at most")

	wide := Items
	wide.ID = schema.TableID{Namespace: "public", Name: "wide"}
	wide.Columns = append(slices.Clone(Items.Columns), schema.Column{Name: strings.Repeat("c", 1100), Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true})
	err = s.s.Apply(ctx, []schema.Delta{createDelta(wide)})
	require.Error(t, err)
	require.True(t, component.IsPermanent(err), "%v", err)

	a, b := Items, Items
	a.ID, b.ID = schema.TableID{Namespace: "sales", Name: "dup"}, schema.TableID{Namespace: "hr", Name: "dup"}
	s.apply(createDelta(a))
	s.apply(createDelta(a)) // the same table again: fine
	err = s.s.Apply(ctx, []schema.Delta{createDelta(b)})
	require.Error(t, err)
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "would both be written to destination table")
}

func testReplay(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	b1 := batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b"))
	b2 := batch(true, g.change(schema.OpUpdate, 1, 11, "a2"), g.change(schema.OpDelete, 2, 0, ""))
	partial := batch(false, g.change(schema.OpUpdate, 1, 12, "a3")) // part of a transaction: no checkpoint
	s.write(b1, b2, partial, b1, b2, partial)
	want := map[int64]schema.Row{1: row(1, 12, "a3"), 2: nil}
	expect(t, h, Items, want)
	s.close()
	// a restarted pipeline replays everything after its committed offset; a
	// source may resend more than that
	s = open(t, h, Options{})
	s.write(b1, b2, partial)
	expect(t, h, Items, want)
}

func testOutOfOrder(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	// batches without checkpoints: the sink cannot tell replays by the offset,
	// only by the rows' versions
	old := batch(false, g.change(schema.OpInsert, 1, 10, "old"), g.change(schema.OpInsert, 2, 20, "old"), g.change(schema.OpInsert, 3, 30, "old"))
	newer := batch(false, g.change(schema.OpUpdate, 1, 11, "new"), g.change(schema.OpDelete, 2, 0, ""))
	s.write(old, newer, old)
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "new"), 2: nil, 3: row(3, 30, "old")})
	// a batch mixing older and newer changes of keys moves only what is newer
	mixed := batch(false, old.Changes[0], g.change(schema.OpUpdate, 3, 31, "newest"))
	s.write(mixed)
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "new"), 2: nil, 3: row(3, 31, "newest")})
}

func testDeletes(t *testing.T, h Harness, hard bool) {
	var g gen
	s := open(t, h, Options{HardDelete: hard})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b")))
	s.write(batch(true,
		g.change(schema.OpDelete, 1, 0, ""),
		// insert–delete–reinsert of one key within a batch ends with the reinsert
		g.change(schema.OpInsert, 3, 30, "c"), g.change(schema.OpDelete, 3, 0, ""), g.change(schema.OpInsert, 3, 31, "c2"),
		// insert and delete of a new key within a batch
		g.change(schema.OpInsert, 4, 40, "d"), g.change(schema.OpDelete, 4, 0, ""),
		// delete then reinsert of a stored key
		g.change(schema.OpDelete, 2, 0, ""), g.change(schema.OpInsert, 2, 21, "b2"),
	))
	want := map[int64]schema.Row{2: row(2, 21, "b2"), 3: row(3, 31, "c2")}
	if !hard {
		want[1], want[4] = nil, nil
	}
	expect(t, h, Items, want)
	// a delete of a key never seen, and a replayed insert after its delete
	ins5 := g.change(schema.OpInsert, 5, 50, "e")
	s.write(batch(false, ins5), batch(false, g.change(schema.OpDelete, 5, 0, "")), batch(false, ins5))
	if !hard {
		want[5] = nil
	}
	expect(t, h, Items, want)
}

func testUnchanged(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "large document")))
	u := g.change(schema.OpUpdate, 1, 11, "")
	u.After[2].Value = schema.Unchanged()
	s.write(batch(true, u))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "large document")})
	// within one batch: the insert's value survives the marker of a later update
	ins := g.change(schema.OpInsert, 2, 20, "second document")
	u2 := g.change(schema.OpUpdate, 2, 21, "")
	u2.After[2].Value = schema.Unchanged()
	s.write(batch(true, ins, u2))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "large document"), 2: row(2, 21, "second document")})
}

func testAddColumn(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a")))
	v2 := Items.Clone()
	v2.Version = 2
	added := schema.Column{Name: "extra", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true}
	v2.Columns = append(v2.Columns, added)
	d := schema.Delta{Table: v2, From: 1, Changes: []schema.ColumnChange{{Op: schema.AddColumn, Column: added}}}
	s.apply(d)
	s.apply(d) // applying a delta again is a no-op
	c := g.change(schema.OpInsert, 2, 20, "b")
	c.Version = 2
	c.After = append(c.After, schema.Field{Name: "extra", Value: schema.String("x")})
	s.write(batch(true, c, g.change(schema.OpUpdate, 1, 11, "a2")))
	expect(t, h, v2, map[int64]schema.Row{1: row(1, 11, "a2"), 2: append(row(2, 20, "b"), schema.Field{Name: "extra", Value: schema.String("x")})})
}

// testPlanDDL: a sink that plans its statements (sinks.DDLPlanner, what a
// held schema change shows) plans them against the destination as it is and
// runs nothing: before the delta is applied its statements add the column;
// after, none is left that does.
func testPlanDDL(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	p, ok := s.s.(sinks.DDLPlanner)
	if !ok {
		t.Skip("the sink does not plan its statements")
	}
	ctx := context.Background()
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a")))
	v2 := Items.Clone()
	v2.Version = 2
	added := schema.Column{Name: "planned_col", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true}
	v2.Columns = append(v2.Columns, added)
	d := schema.Delta{Table: v2, From: 1, Changes: []schema.ColumnChange{{Op: schema.AddColumn, Column: added}}}
	mentions := func(stmts []string) bool {
		return slices.ContainsFunc(stmts, func(q string) bool { return strings.Contains(q, "planned_col") })
	}
	before, err := p.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.True(t, mentions(before), "the plan adds the column: %q", before)
	again, err := p.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.Equal(t, before, again, "planning ran nothing")
	s.apply(d)
	after, err := p.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.False(t, mentions(after), "once applied, nothing is left to add: %q", after)
	c := g.change(schema.OpInsert, 2, 20, "b")
	c.Version = 2
	c.After = append(c.After, schema.Field{Name: "planned_col", Value: schema.String("x")})
	s.write(batch(true, c))
	expect(t, h, v2, map[int64]schema.Row{1: row(1, 10, "a"), 2: append(row(2, 20, "b"), schema.Field{Name: "planned_col", Value: schema.String("x")})})

	// a table the destination does not have yet: its creation, every column
	// named, and nothing created
	fresh := Items.Clone()
	fresh.ID.Name = "planned_table"
	create, err := p.PlanDDL(ctx, createDelta(fresh))
	require.NoError(t, err)
	require.NotEmpty(t, create)
	text := strings.ToLower(strings.Join(create, "\n"))
	require.Contains(t, text, "create")
	require.Contains(t, text, "planned_table")
	for _, c := range fresh.Columns {
		require.Contains(t, text, c.Name)
	}
	if tc, ok := s.s.(sinks.TableChecker); ok {
		exists, err := tc.DestinationExists(ctx, fresh.ID)
		require.NoError(t, err)
		require.False(t, exists, "planning created the table")
	}
}

// testAddColumnFill adds columns with a value for the rows already there (a
// source-side DEFAULT): the rows written before the delta get it, the rows
// written after keep their own (NULL included), and applying the delta again,
// in this run or the next, changes nothing.
func testAddColumnFill(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b"), g.change(schema.OpInsert, 3, 30, "c"),
		g.change(schema.OpInsert, 6, 60, "f")))
	s.write(batch(true, g.change(schema.OpDelete, 6, 0, "")))

	dflt := "it's a \\ \"default\" ✓\nline 2"
	text := schema.Column{Name: "label", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true,
		Existing: &schema.Existing{Value: schema.String(dflt)}}
	num := schema.Column{Name: "n", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true,
		Existing: &schema.Existing{Value: schema.Int(-42)}}
	unknown := schema.Column{Name: "u", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}, Nullable: true,
		Existing: &schema.Existing{Unknown: "a volatile default"}} // approved by a person: NULL
	v2 := Items.Clone()
	v2.Version = 2
	v2.Columns = append(v2.Columns, text, num, unknown)
	d := schema.Delta{Table: v2, From: 1, Pos: g.pos(), Changes: []schema.ColumnChange{
		{Op: schema.AddColumn, Column: text}, {Op: schema.AddColumn, Column: num}, {Op: schema.AddColumn, Column: unknown}}}
	s.apply(d)
	with := func(r schema.Row, label, n schema.Value) schema.Row {
		return append(r, schema.Field{Name: "label", Value: label}, schema.Field{Name: "n", Value: n}, schema.Field{Name: "u", Value: schema.Null()})
	}
	after := func(op schema.Op, id, v int64, doc string, label, n schema.Value) schema.Change {
		c := g.change(op, id, v, doc)
		c.Version = 2
		c.After = with(c.After, label, n)
		return c
	}
	// after the delta: rows carry their own values, NULL included
	s.write(batch(true, after(schema.OpUpdate, 2, 21, "b2", schema.String("own"), schema.Int(7)),
		after(schema.OpUpdate, 3, 31, "c2", schema.Null(), schema.Null()),
		after(schema.OpInsert, 4, 40, "d", schema.Null(), schema.Int(8))))
	want := map[int64]schema.Row{
		1: with(row(1, 10, "a"), schema.String(dflt), schema.Int(-42)),
		2: with(row(2, 21, "b2"), schema.String("own"), schema.Int(7)),
		3: with(row(3, 31, "c2"), schema.Null(), schema.Null()),
		4: with(row(4, 40, "d"), schema.Null(), schema.Int(8)),
		6: nil,
	}
	expect(t, h, v2, want)
	s.apply(d) // a replay of the delta after rows written past it
	expect(t, h, v2, want)
	s.close()

	s = open(t, h, Options{}) // the next attempt replays it again
	s.apply(d)
	s.write(batch(true, after(schema.OpUpdate, 1, 11, "a2", schema.String(dflt), schema.Int(-42))))
	want[1] = with(row(1, 11, "a2"), schema.String(dflt), schema.Int(-42))
	expect(t, h, v2, want)
}

func testTruncate(t *testing.T, h Harness) {
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b")))
	tr := schema.Change{Op: schema.OpTruncate, Table: Items.ID, Version: 1, Pos: g.pos()}
	s.write(batch(true, g.change(schema.OpUpdate, 1, 11, "a2"), tr, g.change(schema.OpInsert, 3, 30, "c")))
	expect(t, h, Items, map[int64]schema.Row{1: nil, 2: nil, 3: row(3, 30, "c")})
}

// testLostTable: a destination table dropped behind the sink's back is a
// sinks.TableLostError, both for a write (whether the sink knew the table or
// not) and for the announcement of a table version the pipeline had before;
// it is never recreated empty. A CreateTable (the table's read from its first
// row) creates it again.
func testLostTable(t *testing.T, h Harness) {
	d, ok := h.(Dropper)
	if !ok {
		t.Skip("the destination has no tables to drop")
	}
	ctx := context.Background()
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b")))
	d.Drop(t, Items)

	requireLost := func(err error) { t.Helper(); requireLostTable(t, err, false) }
	// the sink that had the table: a write fails, and the sink says the
	// table is gone (as the error, or when the engine asks)
	err := s.s.Write(ctx, batch(true, g.change(schema.OpInsert, 3, 30, "c")))
	require.Error(t, err, "a write to a dropped destination table succeeded")
	var lost *sinks.TableLostError
	if !errors.As(err, &lost) {
		tc, ok := s.s.(sinks.TableChecker)
		require.True(t, ok, "the write failed with %v, which is not a sinks.TableLostError, and the sink is no sinks.TableChecker", err)
		exists, cerr := tc.DestinationExists(ctx, Items.ID)
		require.NoError(t, cerr)
		require.False(t, exists)
	}
	s.close()

	// the next run announces the version it had: not a creation
	s = open(t, h, Options{})
	announce := schema.Delta{Table: Items, From: Items.Version, Pos: g.pos()}
	requireLost(s.s.Apply(ctx, []schema.Delta{announce}))
	requireLost(s.s.Write(ctx, batch(true, g.change(schema.OpInsert, 3, 30, "c"))))
	s.close()

	// a read from the first row recreates it
	s = open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpSnapshot, 1, 10, "a"), g.change(schema.OpSnapshot, 2, 20, "b"), g.change(schema.OpInsert, 3, 30, "c")))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 10, "a"), 2: row(2, 20, "b"), 3: row(3, 30, "c")})
}

// requireLostTable requires err to say that Items lost its destination
// table: dropped, or truncated.
func requireLostTable(t *testing.T, err error, truncated bool) {
	t.Helper()
	var lost *sinks.TableLostError
	require.ErrorAs(t, err, &lost)
	require.Equal(t, Items.ID, lost.Table)
	require.Equal(t, truncated, lost.Truncated, "%v", err)
}

// testTruncatedTable: a destination table truncated behind the sink's back
// is reported lost (truncated) by the next write and by the next run's
// announcement of the table, never written into as if it held its rows; a
// read from the first row takes it back.
func testTruncatedTable(t *testing.T, h Harness) {
	tr, ok := h.(Truncater)
	if !ok {
		t.Skip("the sink leaves a truncated table to verify")
	}
	ctx := context.Background()
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b")))
	tr.Truncate(t, Items)
	requireTruncated := func(err error) { t.Helper(); requireLostTable(t, err, true) }
	requireTruncated(s.s.Write(ctx, batch(true, g.change(schema.OpUpdate, 1, 11, "a"))))
	s.close()

	s = open(t, h, Options{})
	requireTruncated(s.s.Apply(ctx, []schema.Delta{{Table: Items, From: Items.Version, Pos: g.pos()}}))
	s.close()

	// the table's read from its first row
	s = open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpSnapshot, 1, 11, "a"), g.change(schema.OpSnapshot, 2, 20, "b")))
	s.write(batch(true, g.change(schema.OpInsert, 3, 30, "c")))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "a"), 2: row(2, 20, "b"), 3: row(3, 30, "c")})
}

// testWriteErrorNamesTable writes a batch of two tables, one of whose
// values no destination type of a NUMERIC(38,10) column holds but the file
// sink's: either the sink holds it exactly, or the write fails with a
// sinks.TableError naming that table (the engine shows it as failed), as a
// permanent error that does not quote the value.
func testWriteErrorNamesTable(t *testing.T, h Harness) {
	ctx := context.Background()
	var g gen
	wide := schema.Table{ID: schema.TableID{Namespace: "public", Name: "wide"}, Version: 1, PrimaryKey: []string{"id"},
		Columns: []schema.Column{
			{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
			{Name: "n", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 38, Scale: 10}, Nullable: true},
		}}
	const bigText = "987654321098765432109876543210987654.5" // 36 digits before the point: more than 28
	s := open(t, h, Options{})
	s.apply(createDelta(Items), createDelta(wide))
	bad := schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "n", Value: schema.MustDecimal(bigText)}}
	err := s.s.Write(ctx, batch(true, g.change(schema.OpInsert, 1, 10, "a"),
		schema.Change{Op: schema.OpInsert, Table: wide.ID, Version: 1, Pos: g.pos(), Key: bad[:1], After: bad}))
	if err == nil {
		got := h.State(t, wide)[key(1)]
		v, _ := got.Row.Get("n")
		// the column's scale may show: equal as numbers
		w, _ := new(big.Rat).SetString(bigText)
		g, ok := new(big.Rat).SetString(v.Text())
		require.True(t, ok && w.Cmp(g) == 0, "the write succeeded and stored %s for %s: the value was altered silently", v.AppendJSON(nil), bigText)
		t.Logf("the destination holds %s exactly", bigText)
		return
	}
	var te *sinks.TableError
	require.ErrorAs(t, err, &te, "the write failed with %v, which names no table (sinks.TableError)", err)
	require.Equal(t, wide.ID, te.Table)
	require.True(t, component.IsPermanent(err), "a value the destination cannot hold is a permanent error: %v", err)
	require.NotContains(t, err.Error(), "98765432109876", "the error quotes the value")
}

// testCatalog: a sink that lists its destination's tables (sinks.Cataloger)
// lists those it created, under their destination names, with their columns
// (the metadata ones too), a page at a time.
func testCatalog(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	cat, ok := s.s.(sinks.Cataloger)
	if !ok {
		t.Skip("the sink lists no destination tables")
	}
	namer, ok := s.s.(sinks.Namer)
	require.True(t, ok, "a sinks.Cataloger must be a sinks.Namer")
	second := Items
	second.ID.Name = "items_two"
	s.apply(createDelta(Items), createDelta(second))
	ctx := context.Background()
	var dests []string
	for _, tbl := range []schema.Table{Items, second} {
		d, err := namer.DestinationName(tbl)
		require.NoError(t, err)
		dests = append(dests, strings.ToLower(d))
	}
	named := func(ct catalog.Table, dest string) bool {
		return strings.HasSuffix(dest, strings.ToLower(ct.Table.Namespace+"."+ct.Table.Name))
	}
	// the harness's namespace (other tests write their own): the part of the
	// destination name before the table's
	parts := strings.Split(dests[0], ".")
	require.GreaterOrEqual(t, len(parts), 2, "destination name %s", dests[0])
	ns := parts[len(parts)-2]
	page, err := cat.Catalog(ctx, catalog.Query{Search: ns + ".items", Limit: 1})
	require.NoError(t, err)
	require.Len(t, page.Tables, 1)
	require.NotEmpty(t, page.Next, "a second page")
	first := page.Tables[0]
	require.True(t, named(first, dests[0]), "first table %s is not %s", first.Table, dests[0])
	var cols []string
	for _, c := range first.Columns {
		require.NotEmpty(t, c.Type, "column %s has no type", c.Name)
		cols = append(cols, strings.ToLower(c.Name))
	}
	require.Subset(t, cols, []string{"id", "v", "doc"})
	require.Greater(t, len(cols), 3, "the metadata columns are listed too: %v", cols)
	require.NotNil(t, first.PrimaryKey)
	page, err = cat.Catalog(ctx, catalog.Query{Search: ns + ".items", Limit: 1, After: page.Next})
	require.NoError(t, err)
	require.Len(t, page.Tables, 1)
	require.True(t, named(page.Tables[0], dests[1]), "second table %s is not %s", page.Tables[0].Table, dests[1])
	require.Empty(t, page.Next, "the search matches two tables")
	_, err = cat.Catalog(ctx, catalog.Query{After: "not a cursor", Limit: 1})
	require.Error(t, err)
}

// testSweep: a table's resync re-reads its rows while the stream goes on and
// ends with a sweep; rows the resync neither read nor saw change (deleted at
// the source while their deletes were lost) are deleted, the others stay, and
// a replay of the sweep's batch changes nothing and counts nothing twice.
func testSweep(t *testing.T, h Harness, hard bool) {
	var g gen
	reg := prometheus.NewRegistry()
	s := open(t, h, Options{HardDelete: hard, Metrics: reg})
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b"), g.change(schema.OpInsert, 3, 30, "c"),
		g.change(schema.OpInsert, 4, 40, "d"), g.change(schema.OpInsert, 5, 50, "e"), g.change(schema.OpInsert, 6, 60, "f"),
		g.change(schema.OpDelete, 6, 0, "")))
	s.write(batch(true, g.change(schema.OpInsert, 7, 70, "g")))
	since := g.pos() // the resync begins
	// it reads 1, 2 and 7 while the stream updates 3 and deletes 4; 5 is gone
	// from the source without a delete ever reaching the destination
	b1 := batch(true, g.change(schema.OpSnapshot, 1, 10, "a"), g.change(schema.OpUpdate, 3, 31, "c2"), g.change(schema.OpSnapshot, 2, 20, "b"))
	b2 := batch(true, g.change(schema.OpDelete, 4, 0, ""), g.change(schema.OpSnapshot, 7, 70, "g"),
		schema.Change{Op: schema.OpSweep, Table: Items.ID, Version: 1, Pos: g.pos(), Since: since},
		g.change(schema.OpInsert, 8, 80, "h"))
	s.write(b1, b2)
	want := map[int64]schema.Row{1: row(1, 10, "a"), 2: row(2, 20, "b"), 3: row(3, 31, "c2"), 7: row(7, 70, "g"), 8: row(8, 80, "h")}
	if !hard {
		want[4], want[5], want[6] = nil, nil, nil
	}
	expect(t, h, Items, want)
	requireSwept(t, reg, 1)
	s.close()

	s = open(t, h, Options{HardDelete: hard, Metrics: reg}) // the next attempt replays both batches
	s.write(b1, b2)
	expect(t, h, Items, want)
	requireSwept(t, reg, 1)
	// the row comes back at the source later: it is live again
	s.write(batch(true, g.change(schema.OpInsert, 5, 51, "e2")))
	want[5] = row(5, 51, "e2")
	expect(t, h, Items, want)
}

// requireSwept checks cdcd_sink_swept_rows_total on reg, when the sink counts.
func requireSwept(t *testing.T, reg *prometheus.Registry, want float64) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "cdcd_sink_swept_rows_total" {
			continue
		}
		var got float64
		for _, m := range mf.GetMetric() {
			got += m.GetCounter().GetValue()
		}
		require.Equal(t, want, got, "rows counted as swept")
		return
	}
	t.Fatal("the sink registers no cdcd_sink_swept_rows_total")
}

func testCrashReplay(t *testing.T, h Harness) {
	var g gen
	var all []*schema.Batch
	for i := range 20 {
		var cs []schema.Change
		for j := range 50 {
			id := int64((i*50+j)%300 + 1)
			switch {
			case j%7 == 3:
				cs = append(cs, g.change(schema.OpDelete, id, 0, ""))
			default:
				cs = append(cs, g.change(schema.OpUpdate, id, int64(i*1000+j), fmt.Sprintf("doc-%d-%d", i, j)))
			}
		}
		all = append(all, batch(i%3 != 1, cs...)) // some batches end inside a transaction
	}
	want := map[int64]schema.Row{}
	for _, b := range all {
		for _, c := range b.Changes {
			id := c.Key[0].Value.AsInt()
			if c.Op == schema.OpDelete {
				want[id] = nil
			} else {
				want[id] = c.After
			}
		}
	}

	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	s.write(all[:12]...)
	if r, ok := h.(Restarter); ok {
		// the destination dies while a batch is being written
		done := make(chan error, 1)
		go func() { done <- s.s.Write(context.Background(), all[12]) }()
		r.KillAndRestart(t)
		<-done // either error or success: both must converge
	}
	_ = s.s.Close(context.Background())

	// the engine restarts: it loads the committed offset and the source resends
	// what follows it
	s = open(t, h, Options{})
	from := 0
	if st, ok := s.s.(sinks.OffsetStorer); ok {
		p, err := st.Load(context.Background(), pipeline)
		require.NoError(t, err)
		for from < len(all) && (all[from].Checkpoint == nil || all[from].Checkpoint.Compare(p) <= 0) {
			from++
		}
		require.GreaterOrEqual(t, from, 11, "the offset stored with the data is at least batch 12's")
		from -= 2 // a source may resend a little before its offset
	}
	s.write(all[from:]...)
	expect(t, h, Items, want)
	if st, ok := s.s.(sinks.OffsetStorer); ok {
		p, err := st.Load(context.Background(), pipeline)
		require.NoError(t, err)
		require.Equal(t, 0, p.Compare(all[18].Checkpoint), "offset at the last checkpoint (batch 20 ends inside a transaction)")
	}
}

// testCrashAfterMerge: batches whose data landed but were not recorded are
// written again by the restarted pipeline; the result is as if once.
func testCrashAfterMerge(t *testing.T, h Harness) {
	c, ok := h.(Crasher)
	if !ok {
		t.Skip("the sink applies data and records it in one transaction")
	}
	var g gen
	s := open(t, h, Options{})
	s.apply(createDelta(Items))
	b1 := batch(true, g.change(schema.OpInsert, 1, 10, "a"), g.change(schema.OpInsert, 2, 20, "b"), g.change(schema.OpInsert, 3, 30, "c"))
	s.write(b1)
	s.close()
	b2 := batch(true, g.change(schema.OpUpdate, 1, 11, "a2"), g.change(schema.OpDelete, 2, 0, ""), g.change(schema.OpInsert, 4, 40, "d"))
	b3 := batch(true, g.change(schema.OpUpdate, 1, 12, "a3"), g.change(schema.OpInsert, 2, 21, "b2"))
	crashing := c.CrashingSink(t, Options{})
	require.NoError(t, crashing.Open(context.Background()))
	require.Error(t, crashing.Write(context.Background(), b2), "the crashing sink fails after its merge")
	require.Error(t, crashing.Write(context.Background(), b3))
	require.NoError(t, crashing.Close(context.Background()))
	want := map[int64]schema.Row{1: row(1, 12, "a3"), 2: row(2, 21, "b2"), 3: row(3, 30, "c"), 4: row(4, 40, "d")}
	expect(t, h, Items, want) // the data landed

	// the restarted pipeline resends everything after its last recorded batch,
	// in other batch boundaries, and older batches too
	s = open(t, h, Options{})
	s.write(b1, batch(true, b2.Changes[:2]...), batch(true, append(b2.Changes[2:], b3.Changes...)...), b2)
	expect(t, h, Items, want)
	more := batch(true, g.change(schema.OpUpdate, 3, 31, "c2"))
	s.write(more)
	want[3] = row(3, 31, "c2")
	expect(t, h, Items, want)
}

func testFenced(t *testing.T, h Harness) {
	old := open(t, h, Options{})
	if _, ok := old.s.(sinks.OffsetStorer); !ok {
		t.Skip("the sink does not store offsets")
	}
	var g gen
	old.apply(createDelta(Items))
	old.write(batch(true, g.change(schema.OpInsert, 1, 10, "a")))
	newer := open(t, h, Options{}) // takes the lease
	err := old.s.Write(context.Background(), batch(true, g.change(schema.OpUpdate, 1, 99, "stale")))
	require.ErrorIs(t, err, offsets.ErrFenced)
	newer.write(batch(true, g.change(schema.OpUpdate, 1, 11, "b")))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "b")})
}

// testCommitBehindWrite: the engine's commit stage runs behind the writer, so a
// sink that stores checkpoints with its data sees Commit of a checkpoint older
// than one its Write stored: a no-op, not a regression.
func testCommitBehindWrite(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	st, ok := s.s.(sinks.OffsetStorer)
	if !ok {
		t.Skip("the sink does not store offsets")
	}
	var g gen
	s.apply(createDelta(Items))
	b1 := batch(true, g.change(schema.OpInsert, 1, 10, "a"))
	b2 := batch(true, g.change(schema.OpInsert, 2, 20, "b"))
	s.write(b1, b2)
	ctx := context.Background()
	require.NoError(t, st.Commit(ctx, pipeline, s.epoch, b1.Checkpoint))
	require.NoError(t, st.Commit(ctx, pipeline, s.epoch, b2.Checkpoint))
	p, err := st.Load(ctx, pipeline)
	require.NoError(t, err)
	require.Equal(t, 0, p.Compare(b2.Checkpoint))

	// as the engine runs them: the commit of a checkpoint-only batch (a
	// heartbeat) while the next batch's Write stores a later checkpoint with
	// its data; the commit waits for the Write's lock and then reads its
	// offset, which is the sink's own and no regression
	for i := range 50 {
		hb := g.pos()
		b := batch(true, g.change(schema.OpInsert, int64(100+i), 1, "x"))
		var wg sync.WaitGroup
		var werr, cerr error
		wg.Add(2)
		go func() { defer wg.Done(); werr = s.s.Write(ctx, b) }()
		go func() { defer wg.Done(); cerr = st.Commit(ctx, pipeline, s.epoch, hb) }()
		wg.Wait()
		require.NoError(t, werr)
		require.NoError(t, cerr, "round %d: the commit of a heartbeat below a concurrent Write's checkpoint", i)
	}
	// a real regression is still refused
	s2 := open(t, h, Options{})
	var re *offsets.RegressionError
	require.ErrorAs(t, s2.s.(sinks.OffsetStorer).Commit(ctx, pipeline, s2.epoch, b1.Checkpoint), &re)
}

// testResync: a pipeline deleted (Cleanup) and created again re-snapshots with
// positions that start over; its rows must replace those of the old history.
func testResync(t *testing.T, h Harness) {
	testResyncAfter(t, h, func(c sinks.Cleaner) { require.NoError(t, c.Cleanup(context.Background())) })
}

// testResyncAfter is testResync with the cleanup done by clean: Cleanup, or
// the statements of Leftover that a forced delete tells a person to run.
func testResyncAfter(t *testing.T, h Harness, clean func(sinks.Cleaner)) {
	s := open(t, h, Options{})
	c, ok := s.s.(sinks.Cleaner)
	if !ok {
		t.Skip("the sink keeps no per-pipeline state")
	}
	var g gen
	g.n.Store(1_000_000) // the old history's positions are high
	s.apply(createDelta(Items))
	s.write(batch(true, g.change(schema.OpInsert, 1, 10, "old"), g.change(schema.OpInsert, 2, 20, "old")))
	s.close()
	clean(c)

	s = open(t, h, Options{})
	var g2 gen // positions start over
	s.apply(createDelta(Items))
	s.write(batch(true, g2.change(schema.OpSnapshot, 1, 11, "new")))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "new"), 2: row(2, 20, "old")})
	if st, ok := s.s.(sinks.OffsetStorer); ok {
		p, err := st.Load(context.Background(), pipeline)
		require.NoError(t, err)
		require.Equal(t, 0, p.Compare(offsets.AppendUint(nil, 1)))
	}
	// the resync's sweep, from the start of the new history, removes what the
	// old one wrote and the new one did not read
	s.write(batch(true, g2.change(schema.OpSnapshot, 3, 31, "new"),
		schema.Change{Op: schema.OpSweep, Table: Items.ID, Version: 1, Pos: g2.pos(), Since: offsets.AppendUint(nil, 1)}))
	expect(t, h, Items, map[int64]schema.Row{1: row(1, 11, "new"), 2: nil, 3: row(3, 31, "new")})
}
