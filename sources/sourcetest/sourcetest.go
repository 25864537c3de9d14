package sourcetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Harness is a source under test and the database behind it. The test table has
// an integer primary key "id" and an integer column "v".
type Harness interface {
	// NewSource returns a new Source for the same pipeline (same slot, same
	// server-side state) each time it is called.
	NewSource(t *testing.T) sources.Source
	// Table is the test table's id as the source reports it.
	Table() schema.TableID
	// Insert, Update and Delete change one row, each in its own transaction.
	Insert(t *testing.T, id, v int)
	Update(t *testing.T, id, v int)
	Delete(t *testing.T, id int)
	// UpdateMany changes v of rows [from, to) in one transaction.
	UpdateMany(t *testing.T, from, to, v int)
	// AddColumn adds a nullable integer column to the test table.
	AddColumn(t *testing.T, name string)
	// AddColumnWithDefault adds a nullable integer column whose rows already
	// there get def (a constant DEFAULT), or, with volatile, a value the server
	// computes per row (a volatile or expression DEFAULT).
	AddColumnWithDefault(t *testing.T, name string, def int, volatile bool)
	// Disconnect makes the server drop the source's sessions (pg_terminate_backend, KILL).
	Disconnect(t *testing.T)
	// AddTable creates a second table like the test table holding rows 1..5
	// (v = id), and adds it to the pipeline: sources made by NewSource from now on
	// replicate it too. It returns its id.
	AddTable(t *testing.T) schema.TableID
	// InsertAdded inserts a row into the added table.
	InsertAdded(t *testing.T, id, v int)
	// Progress is the pipeline's snapshot progress store, which every source
	// NewSource makes uses.
	Progress() sources.ProgressStore
}

// VerifyTestMain runs a source package's tests and fails if any goroutine is left
// behind when they end (every source test package calls it from TestMain): Close
// must stop everything Open started. Per-test checks would see the goroutines of
// the tests running in parallel.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(opts,
		// pgxpool's health checker exits shortly after Close, on its own timer
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))...)
}

func suite() map[string]func(t *testing.T, h Harness) {
	return map[string]func(t *testing.T, h Harness){
		"open_close_idempotent": testOpenClose,
		"ordering":              testOrdering,
		"resume_without_gap":    testResume,
		"replay_only_unacked":   testReplayUnacked,
		"add_column_mid_stream": testAddColumn,
		"add_column_default":    testAddColumnDefault,
		"reconnect_after_drop":  testReconnect,
		"checkpoint_on_commit":  testCheckpoints,
		"add_table":             testAddTable,
		"resync_table":          testResyncTable,
		"caught_up_and_behind":  testCaughtUp,
	}
}

// Run runs the suite; newHarness makes a fresh harness for each subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	for name, f := range suite() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newHarness(t))
		})
	}
}

// event is a row change as the suite tracks it.
type event struct {
	op    schema.Op
	id    int64
	v     int64
	pos   offsets.Position
	after schema.Row
}

// reader reads batches from an open source.
type reader struct {
	t      *testing.T
	src    sources.Source
	table  schema.TableID
	events []event
	ckpts  []offsets.Position
	deltas []schema.Delta
	last   offsets.Position
	// shapes is the version of each table a delta of this run announced last
	shapes map[schema.TableID]schema.Version
	// currents are the caught-up words read, in order
	currents []schema.Current
	// sweeps of the table read
	sweeps []schema.Change
}

func open(t *testing.T, h Harness, from offsets.Position) *reader {
	t.Helper()
	src := h.NewSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, src.Open(ctx, from))
	return &reader{t: t, src: src, table: h.Table(), shapes: map[schema.TableID]schema.Version{}}
}

func (r *reader) close() {
	r.t.Helper()
	require.NoError(r.t, r.src.Close(context.Background()))
	require.NoError(r.t, r.src.Close(context.Background()), "Close is idempotent")
}

// until reads until done(events) holds, checking order as it goes.
func (r *reader) until(what string, done func([]event) bool) error {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !done(r.events) {
		b, err := r.src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				r.t.Fatalf("waiting for %s: timed out after %d events", what, len(r.events))
			}
			return err
		}
		r.deltas = append(r.deltas, b.Deltas...)
		if !b.Current.IsZero() {
			require.True(r.t, b.Current.Until.After(b.Current.At), "a caught-up word is good for a while: %+v", b.Current)
			r.currents = append(r.currents, b.Current)
		}
		for _, d := range b.Deltas {
			r.shapes[d.Table.ID] = d.Table.Version
		}
		for _, c := range b.Changes {
			require.Equal(r.t, 1, c.Pos.Compare(r.last), "positions must increase: %s after %s", c.Pos, r.last)
			r.last = c.Pos
			if c.Op != schema.OpTruncate {
				// a resumed run cannot know that the batch which first carried the
				// table's delta reached the sink: it says what it encodes rows with
				v, ok := r.shapes[c.Table]
				require.True(r.t, ok && v == c.Version, "a change of %s version %d at %s, but this run announced no delta for that version (last announced: %d)", c.Table, c.Version, c.Pos, v)
			}
			if c.Table != r.table || c.Op == schema.OpTruncate {
				continue
			}
			if c.Op == schema.OpSweep {
				r.sweeps = append(r.sweeps, c)
				r.events = append(r.events, event{op: c.Op, pos: c.Pos})
				continue
			}
			e := event{op: c.Op, pos: c.Pos, after: c.After}
			if id, ok := c.Key.Get("id"); ok {
				e.id = id.AsInt()
			}
			if v, ok := c.After.Get("v"); ok {
				e.v = v.AsInt()
			}
			r.events = append(r.events, e)
		}
		if b.Checkpoint != nil {
			if len(r.ckpts) > 0 {
				require.GreaterOrEqual(r.t, b.Checkpoint.Compare(r.ckpts[len(r.ckpts)-1]), 0, "checkpoints never go back")
			}
			r.ckpts = append(r.ckpts, b.Checkpoint)
		}
	}
	return nil
}

func (r *reader) mustUntil(what string, done func([]event) bool) {
	r.t.Helper()
	require.NoError(r.t, r.until(what, done))
}

func (r *reader) ack(p offsets.Position) {
	r.t.Helper()
	require.NoError(r.t, r.src.Ack(context.Background(), p))
}

func has(id int64, op schema.Op, v int64) func([]event) bool {
	return func(es []event) bool {
		for _, e := range es {
			if e.id == id && e.op == op && (op == schema.OpDelete || e.v == v) {
				return true
			}
		}
		return false
	}
}

func testOpenClose(t *testing.T, h Harness) {
	require.NoError(t, h.NewSource(t).Close(context.Background()), "Close without Open")
	r := open(t, h, nil)
	h.Insert(t, 1, 1)
	r.mustUntil("insert", has(1, schema.OpInsert, 1))
	r.close()
}

func testOrdering(t *testing.T, h Harness) {
	r := open(t, h, nil)
	defer r.close()
	for i := range 20 {
		h.Insert(t, i, 0)
	}
	for round := 1; round <= 5; round++ {
		for i := range 20 {
			h.Update(t, i, round)
		}
	}
	r.mustUntil("all updates", func(es []event) bool { return len(es) >= 120 })
	last := map[int64]int64{}
	for _, e := range r.events {
		if prev, ok := last[e.id]; ok {
			require.Greater(t, e.v, prev, "changes of key %d out of order", e.id)
		}
		last[e.id] = e.v
	}
}

func lastCheckpoint(t *testing.T, r *reader) offsets.Position {
	require.NotEmpty(t, r.ckpts)
	return r.ckpts[len(r.ckpts)-1]
}

func testResume(t *testing.T, h Harness) {
	r := open(t, h, nil)
	h.Insert(t, 1, 1)
	h.Insert(t, 2, 2)
	r.mustUntil("two inserts", has(2, schema.OpInsert, 2))
	// read on to the checkpoint of the second insert's transaction
	for lastCheckpoint(t, r).Compare(r.last) < 0 {
		r.mustUntil("its checkpoint", func([]event) bool { return lastCheckpoint(t, r).Compare(r.last) > 0 })
	}
	ck := lastCheckpoint(t, r)
	r.ack(ck)
	r.close()

	// changes while the pipeline is down are not lost
	h.Update(t, 1, 10)
	h.Delete(t, 2)
	h.Insert(t, 3, 3)
	r2 := open(t, h, ck)
	defer r2.close()
	r2.last = ck
	r2.mustUntil("changes made while down", has(3, schema.OpInsert, 3))
	require.True(t, has(1, schema.OpUpdate, 10)(r2.events))
	require.True(t, has(2, schema.OpDelete, 0)(r2.events))
	for _, e := range r2.events {
		require.Equal(t, 1, e.pos.Compare(ck), "nothing at or before the acked checkpoint is delivered again")
	}
}

func testReplayUnacked(t *testing.T, h Harness) {
	r := open(t, h, nil)
	ck := insertAndAck(t, h, r)
	h.Insert(t, 2, 2)
	h.Insert(t, 3, 3)
	r.mustUntil("unacked", has(3, schema.OpInsert, 3))
	// snapshot rows are left out: a chunk not acknowledged is read again under a
	// new window, at new positions (they never reuse old ones)
	stream := func(es []event) []event {
		var out []event
		for _, e := range es {
			if e.op != schema.OpSnapshot && e.pos.Compare(ck) > 0 {
				out = append(out, e)
			}
		}
		return out
	}
	unacked := stream(r.events)
	r.close()

	r2 := open(t, h, ck)
	defer r2.close()
	r2.last = ck
	r2.mustUntil("replay", has(3, schema.OpInsert, 3))
	replayed := stream(r2.events)
	require.GreaterOrEqual(t, len(replayed), len(unacked), "unacknowledged changes missing from the replay")
	require.Equal(t, unacked, replayed[:len(unacked)], "exactly the unacknowledged changes come again, at the same positions")
}

func testAddColumn(t *testing.T, h Harness) {
	r := open(t, h, nil)
	defer r.close()
	h.Insert(t, 1, 1)
	r.mustUntil("before", has(1, schema.OpInsert, 1))
	before := len(r.deltas)
	h.AddColumn(t, "extra")
	h.Insert(t, 2, 2)
	r.mustUntil("after", has(2, schema.OpInsert, 2))
	require.Greater(t, len(r.deltas), before, "a delta announces the new column")
	d := r.deltas[len(r.deltas)-1]
	_, ok := d.Table.Column("extra")
	require.True(t, ok, "the new shape has the column: %+v", d.Table)
	var found bool
	for _, c := range d.Changes {
		found = found || (c.Op == schema.AddColumn && c.Column.Name == "extra")
	}
	require.True(t, found, "the delta says add_column extra: %+v", d.Changes)
}

// testAddColumnDefault: a column added with a constant default carries, in its
// delta, the value the rows already there hold, which the server confirms
// when an older row is updated (its image carries the column); one whose
// value the server computed per row says it cannot be known.
func testAddColumnDefault(t *testing.T, h Harness) {
	r := open(t, h, nil)
	defer r.close()
	h.Insert(t, 1, 1)
	r.mustUntil("before", has(1, schema.OpInsert, 1))
	added := func(name string, v int64) (*schema.Existing, schema.Row) {
		t.Helper()
		r.mustUntil("after "+name, has(1, schema.OpUpdate, v))
		var e *schema.Existing
		found := false
		for _, d := range r.deltas {
			for _, c := range d.Changes {
				if c.Op == schema.AddColumn && c.Column.Name == name {
					e, found = c.Column.Existing, true
					require.NotNil(t, d.Pos, "the delta says where it came into force")
				}
			}
		}
		require.True(t, found, "a delta adds %s", name)
		return e, r.events[len(r.events)-1].after
	}
	h.AddColumnWithDefault(t, "seven", 7, false)
	h.Update(t, 1, 2)
	e, row := added("seven", 2)
	require.True(t, e.Known(), "a constant default is known: %+v", e)
	v, _ := row.Get("seven")
	require.True(t, e.Value.Equal(v), "the older row holds %s at the source, the delta says %s", v.AppendJSON(nil), e.Value.AppendJSON(nil))
	require.Equal(t, int64(7), v.AsInt())

	h.AddColumnWithDefault(t, "rnd", 0, true)
	h.Update(t, 1, 3)
	e, _ = added("rnd", 3)
	require.NotNil(t, e)
	require.NotEmpty(t, e.Unknown, "a per-row default cannot be known")
}

func testReconnect(t *testing.T, h Harness) {
	r := open(t, h, nil)
	ck := insertAndAck(t, h, r)
	h.Disconnect(t)
	h.Insert(t, 2, 2)
	// The source either survives the drop or reports an error; then the engine
	// restarts it from the last acked checkpoint and nothing is lost.
	if err := r.until("after the drop", has(2, schema.OpInsert, 2)); err != nil {
		r.close()
		r2 := open(t, h, ck)
		defer r2.close()
		r2.last = ck
		r2.mustUntil("after reconnect", has(2, schema.OpInsert, 2))
		return
	}
	r.close()
}

func testCheckpoints(t *testing.T, h Harness) {
	r := open(t, h, nil)
	defer r.close()
	for i := range 50 {
		h.Insert(t, i, 0)
	}
	h.UpdateMany(t, 0, 50, 7) // one transaction of 50 changes
	r.mustUntil("the big transaction", func(es []event) bool {
		n := 0
		for _, e := range es {
			if e.op == schema.OpUpdate && e.v == 7 {
				n++
			}
		}
		return n == 50
	})
	// No checkpoint falls inside the big transaction: all of its changes are on
	// the same side of every checkpoint.
	var first, lastPos offsets.Position
	for _, e := range r.events {
		if e.op == schema.OpUpdate && e.v == 7 {
			if first == nil {
				first = e.pos
			}
			lastPos = e.pos
		}
	}
	for _, c := range r.ckpts {
		inside := c.Compare(first) > 0 && c.Compare(lastPos) < 0
		require.False(t, inside, fmt.Sprintf("checkpoint %s inside a transaction [%s, %s]", c, first, lastPos))
	}
}

// testAddTable: a table added to a running pipeline is snapshotted (its existing
// rows arrive) and then streamed, without disturbing the first table.
func testAddTable(t *testing.T, h Harness) {
	r := open(t, h, nil)
	ck := insertAndAck(t, h, r)
	r.close()

	added := h.AddTable(t)
	r2 := open(t, h, ck)
	defer r2.close()
	r2.last, r2.table = ck, added
	// the rows the table held when it was added arrive, from its snapshot or, for
	// a source whose log already carries the table's history after the resume
	// point (a binlog), from the stream: either way each row once with its value
	r2.mustUntil("the added table's rows", func(es []event) bool {
		seen := map[int64]bool{}
		for _, e := range es {
			if (e.op == schema.OpSnapshot || e.op == schema.OpInsert) && e.v == e.id && e.id >= 1 && e.id <= 5 {
				seen[e.id] = true
			}
		}
		return len(seen) == 5
	})
	h.InsertAdded(t, 6, 6)
	r2.mustUntil("a change of the added table", has(6, schema.OpInsert, 6))
}

// testResyncTable: a resync requested for the table reads it again while the
// stream goes on and ends with one sweep, whose Since is below every row the
// resync emitted and every change made meanwhile, so that a sink keeps all of
// them and deletes only what neither touched. Once acked it is done: the next
// run neither reads the table again nor sweeps it.
func testResyncTable(t *testing.T, h Harness) {
	r := open(t, h, nil)
	const n = 250 // several chunks
	for i := 1; i <= n; i++ {
		h.Insert(t, i, i)
	}
	r.mustUntil("the rows", has(n, schema.OpInsert, n))
	r.mustUntil("their checkpoint", func([]event) bool { return len(r.ckpts) > 0 && lastCheckpoint(t, r).Compare(r.last) >= 0 })
	ck := lastCheckpoint(t, r)
	r.ack(ck)
	r.close()

	ctx := context.Background()
	require.NoError(t, h.Progress().SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: h.Table(), Resync: true}))
	r2 := open(t, h, ck)
	r2.last = ck
	h.Update(t, 5, 500)
	h.Delete(t, 6)
	h.Insert(t, n+1, n+1)
	r2.mustUntil("the resync's sweep", func([]event) bool { return len(r2.sweeps) > 0 })
	// until its rows are acked, the source says the table is resyncing (not
	// in its first snapshot)
	if sr, ok := r2.src.(sources.StatusReporter); ok {
		st := sr.SourceStatus()
		i := slices.IndexFunc(st.Tables, func(p sources.SnapshotProgress) bool { return p.Table == h.Table() })
		require.GreaterOrEqual(t, i, 0, "the resynced table has no progress in the source's status: %+v", st.Tables)
		require.True(t, st.Tables[i].Resyncing && !st.Tables[i].Done, "the table reads as resyncing: %+v", st.Tables[i])
	}
	r2.mustUntil("the changes made meanwhile", has(n+1, schema.OpInsert, n+1))
	r2.mustUntil("the sweep's checkpoint", func([]event) bool { return lastCheckpoint(t, r2).Compare(r2.sweeps[0].Pos) > 0 })
	require.Len(t, r2.sweeps, 1)
	sweep := r2.sweeps[0]
	require.NotEmpty(t, sweep.Since)
	// every live row was rewritten after Since: read by the resync, or changed
	live := map[int64]bool{}
	for _, e := range r2.events {
		if e.op == schema.OpSweep {
			continue
		}
		if e.op == schema.OpSnapshot {
			require.Negative(t, e.pos.Compare(sweep.Pos), "row %d read after the sweep", e.id)
		}
		if e.pos.Compare(sweep.Since) > 0 {
			live[e.id] = e.op != schema.OpDelete
		} else if e.op != schema.OpSnapshot {
			require.Failf(t, "a change of the resync's time is below its Since", "row %d %s at %s, Since %s", e.id, e.op, e.pos, sweep.Since)
		}
	}
	for i := int64(1); i <= n+1; i++ {
		if i == 6 {
			require.False(t, live[i], "row 6 was deleted")
			continue
		}
		require.True(t, live[i], "row %d is neither read by the resync nor changed after its Since: a sink would sweep it", i)
	}
	r2.ack(lastCheckpoint(t, r2))
	ck2 := lastCheckpoint(t, r2)
	r2.close()
	list, err := h.Progress().LoadSnapshotProgress(ctx)
	require.NoError(t, err)
	for _, p := range list {
		if p.Table == h.Table() {
			require.True(t, p.Done, "the resync is done once its sweep is acked")
			require.False(t, p.Resync, "the request is consumed")
		}
	}

	r3 := open(t, h, ck2)
	defer r3.close()
	r3.last = ck2
	h.Insert(t, n+2, n+2)
	r3.mustUntil("a change after the resync", has(n+2, schema.OpInsert, n+2))
	for _, e := range r3.events {
		require.NotEqual(t, schema.OpSnapshot, e.op, "the resync ran again")
		require.NotEqual(t, schema.OpSweep, e.op, "the resync ran again")
	}
}

// insertAndAck inserts row 1, reads it and its checkpoint, and acks it.
func insertAndAck(t *testing.T, h Harness, r *reader) offsets.Position {
	h.Insert(t, 1, 1)
	r.mustUntil("first", has(1, schema.OpInsert, 1))
	r.mustUntil("its checkpoint", func([]event) bool { return len(r.ckpts) > 0 && lastCheckpoint(t, r).Compare(r.last) > 0 })
	ck := lastCheckpoint(t, r)
	r.ack(ck)
	return ck
}

// testCaughtUp: an idle source says it is caught up, as of an instant after
// the last change it read, again and again; its lag in bytes grows with log
// written and not acked, and falls back when it is acked.
func testCaughtUp(t *testing.T, h Harness) {
	r := open(t, h, nil)
	defer r.close()
	for i := range 10 {
		h.Insert(t, i, 0)
	}
	r.mustUntil("the inserts", func(es []event) bool { return len(es) >= 10 })
	written := time.Now()
	caughtUpAfter := func(at time.Time, n int) func([]event) bool {
		return func([]event) bool {
			k := 0
			for _, c := range r.currents {
				if c.At.After(at) {
					k++
				}
			}
			return k >= n
		}
	}
	r.mustUntil("the source to say it is caught up", caughtUpAfter(written, 2))
	r.ack(r.ckpts[len(r.ckpts)-1])

	st, ok := r.src.(sources.StatusReporter)
	require.True(t, ok, "a source reports its status")
	lagBytes := func() int64 {
		p := st.SourceStatus().LagBytes
		if p == nil {
			return -1
		}
		return *p
	}
	require.Eventually(t, func() bool { return lagBytes() >= 0 }, 30*time.Second, 50*time.Millisecond, "the lag in bytes is measured")
	before := lagBytes()

	// a thousand rows changed and not acked: the log is ahead by at least their size
	for i := 10; i < 1010; i++ {
		h.Insert(t, i, 0)
	}
	h.UpdateMany(t, 10, 1010, 1)
	r.mustUntil("the updates", func(es []event) bool { return has(1009, schema.OpUpdate, 1)(es) })
	var peak int64
	require.Eventually(t, func() bool { peak = lagBytes(); return peak > before+20_000 }, 30*time.Second, 50*time.Millisecond,
		"2,000 changes not acked: the lag in bytes stayed at %d (was %d)", lagBytes(), before)
	written = time.Now()
	r.mustUntil("the source to say it is caught up again", caughtUpAfter(written, 1))
	// acked as a pipeline does, batch after batch: the lag falls back (the
	// server's log also grows with what other databases write, so below
	// its peak, not to where it was)
	r.ack(r.ckpts[len(r.ckpts)-1])
	require.Eventually(t, func() bool {
		r.pump(200 * time.Millisecond)
		return lagBytes() >= 0 && lagBytes() < peak
	}, 30*time.Second, 10*time.Millisecond, "acked: the lag in bytes did not fall back (now %d, peak %d, %d before the writes)", lagBytes(), peak, before)
}

// pump reads for d, acking every checkpoint as soon as it is read.
func (r *reader) pump(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		b, err := r.src.Read(ctx)
		if err != nil {
			return
		}
		if b.Checkpoint != nil {
			r.ack(b.Checkpoint)
		}
	}
}
