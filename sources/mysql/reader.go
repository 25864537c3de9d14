package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/pingcap/tidb/pkg/parser"
)

// tableMap is a captured table as its last TABLE_MAP event describes it: how
// to decode its rows, and the shape to register (built once per event, not per
// row event).
type tableMap struct {
	id    schema.TableID
	cols  []colInfo
	pkIdx []int
	shape schema.Table
}

// window is an open DBLog window: the keys of the table the stream changed
// since the chunk's low watermark. The chunk is emitted, without those keys,
// when the stream reaches its high watermark.
type window struct {
	id      int
	table   schema.TableID
	touched map[string]bool
	ddl     bool      // a DDL of the table was seen in the window
	closed  *closeReq // set when the chunk is read
}

type windowReq struct {
	open  *openReq
	close *closeReq
}

type openReq struct {
	table schema.TableID
	reply chan int // the window id
}

type closeReq struct {
	id      int
	rows    []schema.Row // the chunk's rows (key columns first by name)
	keys    []string     // their keys' JSON
	hwFile  string
	hwPos   uint32
	lastKey string
	done    bool
	since   offsets.Position // a resync's: its last chunk ends with a sweep
	abandon bool             // close the window without a chunk (the SELECT failed on a DDL)
	version schema.Table
	emitted chan bool // true: emitted; false: a DDL of the table fell in the window, read the chunk again
}

// reader turns binlog events into batches and merges snapshot chunks in.
type reader struct {
	s        *Source
	streamer *replication.BinlogStreamer
	file     string
	pos      uint32 // where the next event starts
	gtid     *gtidTracker
	tables   map[uint64]*tableMap            // by binlog table id
	byID     map[schema.TableID]schema.Table // the version registered last, per table

	inTxn    bool
	txn      []schema.Change
	deltas   []schema.Delta
	commitTS time.Time
	xid      string

	lastEmpty    time.Time        // when the last checkpoint-only batch was sent
	pendingEmpty offsets.Position // a checkpoint-only batch held back

	parser *parser.Parser
	expect map[schema.TableID]*expectation // what the last DDL of a table said

	open       map[int]*window
	nextWindow int
	chunkNo    uint64
}

type eventOrErr struct {
	ev  *replication.BinlogEvent
	err error
}

func (r *reader) run(ctx context.Context) error {
	events := make(chan eventOrErr)
	pumpCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	// waiting is when the pump began to wait for the server's next event (unix
	// nanoseconds), 0 while it has one to hand over: only that wait is silence.
	// A pipeline that does not read (a slow sink) holds the pump up, and with it
	// the server's stream, which says nothing of the connection.
	var waiting atomic.Int64
	go func() {
		defer close(done)
		for {
			waiting.Store(time.Now().UnixNano())
			ev, err := r.streamer.GetEvent(pumpCtx)
			waiting.Store(0)
			select {
			case events <- eventOrErr{ev, err}:
			case <-pumpCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { stop(); <-done }()
	// the server sends a heartbeat after each silent period: a stream silent for
	// three periods is dead (a partition, a frozen server), whatever TCP says
	stale := 3 * r.s.cfg.heartbeat
	watch := time.NewTicker(r.s.cfg.heartbeat / 2)
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch.C:
			if err := r.current(ctx); err != nil {
				return err
			}
			if err := r.flushEmpty(ctx); err != nil {
				return err
			}
			if since := waiting.Load(); since != 0 {
				if silent := time.Since(time.Unix(0, since)); silent > stale {
					return fmt.Errorf("binlog stream silent for %v (heartbeats every %v): the connection is stale; reconnecting", silent.Round(time.Second), r.s.cfg.heartbeat)
				}
			}
		case e := <-events:
			if e.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return classify(fmt.Errorf("binlog stream: %w", e.err))
			}
			if err := r.handle(ctx, e.ev); err != nil {
				return err
			}
			if err := r.current(ctx); err != nil {
				return err
			}
		case req := <-r.s.windows:
			if err := r.request(ctx, req); err != nil {
				return err
			}
		}
	}
}

func (r *reader) request(ctx context.Context, req windowReq) error {
	if req.open != nil {
		r.nextWindow++
		r.open[r.nextWindow] = &window{id: r.nextWindow, table: req.open.table, touched: map[string]bool{}}
		req.open.reply <- r.nextWindow
		return nil
	}
	w := r.open[req.close.id]
	if w == nil {
		return fmt.Errorf("snapshot window %d is not open", req.close.id)
	}
	if req.close.abandon {
		delete(r.open, req.close.id)
		return nil
	}
	w.closed = req.close
	return r.emitReady(ctx)
}

// reached reports whether the stream is at or past file:pos.
func (r *reader) reached(file string, pos uint32) bool {
	fi, hi := fileIndex(r.file), fileIndex(file)
	return fi > hi || (fi == hi && r.pos >= pos)
}

// emitReady emits, in one batch, every closed window whose high watermark the
// stream has reached, if it is between transactions.
func (r *reader) emitReady(ctx context.Context) error {
	if r.inTxn {
		return nil
	}
	var ready []*window
	for _, id := range sortedIDs(r.open) {
		w := r.open[id]
		if w.closed != nil && r.reached(w.closed.hwFile, w.closed.hwPos) {
			ready = append(ready, w)
			delete(r.open, id)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	return r.emitChunks(ctx, ready)
}

func sortedIDs(m map[int]*window) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

// emitChunks emits the chunks' rows that the stream did not change in their
// windows, positioned just before the next event, with one checkpoint after them.
func (r *reader) emitChunks(ctx context.Context, ws []*window) error {
	r.chunkNo++
	run, at := r.s.deps.Epoch, r.pos-1
	var b schema.Batch
	var emitted []emittedChunk
	var redo []*window
	for _, w := range ws {
		c := w.closed
		if w.ddl {
			// the chunk's columns may be from either side of the DDL
			redo = append(redo, w)
			continue
		}
		sweep := c.done && c.since != nil
		if len(c.rows) == 0 && !sweep {
			emitted = append(emitted, emittedChunk{table: w.table, lastKey: c.lastKey, done: c.done})
			continue
		}
		d, err := r.observe(ctx, c.version, r.file, at)
		if err != nil {
			return err
		}
		if d != nil {
			b.Deltas = append(b.Deltas, *d)
		}
		registered := r.byID[w.table]
		for i, row := range c.rows {
			if w.touched[c.keys[i]] {
				continue // the stream has a newer version of this row
			}
			var key schema.Row
			for _, k := range registered.PrimaryKey {
				v, _ := row.Get(k)
				key = append(key, schema.Field{Name: k, Value: v})
			}
			b.Changes = append(b.Changes, schema.Change{Op: schema.OpSnapshot, Table: w.table, Version: registered.Version,
				Pos: snapshotRowPos(r.file, at, run, r.chunkNo, len(b.Changes)), Key: key, After: row})
		}
		if sweep {
			// the resync's last chunk: what it did not read and the stream did
			// not change since it began is gone from the source
			b.Changes = append(b.Changes, schema.Change{Op: schema.OpSweep, Table: w.table, Version: registered.Version,
				Pos: snapshotRowPos(r.file, at, run, r.chunkNo, len(b.Changes)), Since: c.since})
		}
		emitted = append(emitted, emittedChunk{table: w.table, lastKey: c.lastKey, rows: int64(len(c.rows)), done: c.done, since: c.since})
	}
	b.Checkpoint = chunkCheckpointPos(r.file, at, run, r.chunkNo, r.resume())
	r.s.mu.Lock()
	for _, e := range emitted {
		e.ckpt = b.Checkpoint
		r.s.chunks = append(r.s.chunks, e)
	}
	r.s.mu.Unlock()
	for _, w := range redo {
		w.closed.emitted <- false
	}
	if len(emitted) == 0 {
		return nil
	}
	if err := r.send(ctx, b); err != nil {
		return err
	}
	for _, w := range ws {
		if !w.ddl {
			w.closed.emitted <- true
		}
	}
	return nil
}

func (r *reader) resume() resume {
	return resume{gtid: r.gtid.String(), file: r.file, pos: r.pos, pending: r.pendingJSON()}
}

// pendingJSON renders the expectations still waiting for their table's
// TABLE_MAP, for checkpoints ("" when none).
func (r *reader) pendingJSON() string {
	if len(r.expect) == 0 {
		return ""
	}
	var p []pendingDDL
	for _, id := range slices.SortedFunc(maps.Keys(r.expect), func(a, b schema.TableID) int { return strings.Compare(a.String(), b.String()) }) {
		p = append(p, pendingDDL{Table: id, Expect: r.expect[id]})
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "" // plain data: cannot fail
	}
	return string(b)
}

// restorePending reads the expectations a checkpoint carried.
func (r *reader) restorePending(text string) error {
	if text == "" {
		return nil
	}
	var p []pendingDDL
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		return component.Permanent(fmt.Errorf("checkpoint: pending DDL: %w", err))
	}
	for _, x := range p {
		x.Expect.ddl = "an ALTER before the checkpoint"
		r.expect[x.Table] = x.Expect
	}
	return nil
}

func (r *reader) send(ctx context.Context, b schema.Batch) error {
	if b.Checkpoint != nil {
		r.pendingEmpty = nil // superseded
	}
	select {
	case r.s.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe registers a table shape at pos and returns the delta to send before
// the rows encoded with it: the registry's when the shape is new, otherwise an
// announcement of the version in force (a delta without changes) the first time
// this run sees the table in that shape. A run that resumes from a checkpoint
// cannot know whether the batch that first carried the table's delta reached
// the sink, so it says again what it encodes rows with; sinks apply it
// idempotently.
func (r *reader) observe(ctx context.Context, t schema.Table, file string, pos uint32) (*schema.Delta, error) {
	if cur, ok := r.byID[t.ID]; ok && cur.Version != 0 && cur.SameShape(t) {
		return nil, nil
	}
	v, d, err := r.s.deps.Schema.Observe(ctx, t, changePos(file, pos, 0))
	if err != nil {
		return nil, err
	}
	r.byID[t.ID] = v
	if d == nil {
		d = &schema.Delta{Table: v, From: v.Version}
	}
	return d, nil
}

// ddl applies what a statement does to the captured tables: truncates by
// policy, and the column changes the next TABLE_MAP must show.
func (r *reader) ddl(q, db string, start uint32, h *replication.EventHeader) error {
	if r.parser == nil {
		r.parser = parser.New()
	}
	eff, err := parseDDL(r.parser, q, db)
	if err != nil {
		id, ok := unparsedAlter(q, db)
		if !ok || !r.captured(id) {
			r.s.log.Debug("statement not parsed; the row metadata decides the table shapes", "error", err)
			return nil
		}
		// an ALTER of a replicated table: the columns it adds hold values cdcd
		// cannot know, so the schema-change policy holds them for a person
		r.s.log.Warn("an ALTER TABLE of a replicated table could not be parsed; columns it added will be held for review", "table", id.String(), "error", err)
		eff = ddlEffect{expect: map[schema.TableID]*expectation{id: {Unparsed: true, ddl: q}}}
	}
	for _, id := range eff.truncate {
		if r.captured(id) {
			if err := r.truncate(id, start, h); err != nil {
				return err
			}
		}
	}
	gone := func(id schema.TableID, why string) {
		r.s.log.Warn(why+"; the destination keeps it", "table", id.String(), "position", fmt.Sprintf("%s:%d", r.file, start))
		if cur, ok := r.byID[id]; ok && cur.Version != 0 {
			r.deltas = append(r.deltas, schema.Delta{Table: cur, From: cur.Version, Changes: []schema.ColumnChange{{Op: schema.DropTable}}})
			delete(r.byID, id) // a table of that name later is registered afresh
		}
	}
	for _, id := range eff.dropped {
		if r.captured(id) {
			gone(id, "a replicated table was dropped at the source")
		}
	}
	for from, to := range eff.renamed {
		if r.captured(from) {
			gone(from, "a replicated table was renamed to "+to.String()+" at the source")
		}
	}
	for id, e := range eff.expect {
		if r.captured(id) {
			if prev := r.expect[id]; prev != nil {
				e = prev.then(e) // two ALTERs before the table's next row
			}
			r.expect[id] = e
		}
	}
	// snapshot windows of tables this statement touched must read their chunk again
	touched := append(append(slices.Clone(eff.truncate), eff.dropped...), slices.Collect(maps.Keys(eff.expect))...)
	for from, to := range eff.renamed {
		touched = append(touched, from, to)
	}
	for _, w := range r.open {
		if slices.Contains(touched, w.table) {
			w.ddl = true
		}
	}
	return nil
}

func (r *reader) captured(id schema.TableID) bool {
	for _, t := range r.s.cfg.tables {
		if t == id {
			return true
		}
	}
	return false
}

func (r *reader) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	start := r.pos
	if h.LogPos >= h.EventSize {
		start = h.LogPos - h.EventSize
	}
	if _, ok := ev.Event.(*replication.HeartbeatEvent); ok {
		return nil // not in the binlog: its position is the server's, not an event's
	}
	if _, ok := ev.Event.(*replication.RotateEvent); !ok && h.LogPos > 0 {
		// chunks whose high watermark lies before this event go first
		r.pos = start
		if err := r.emitReady(ctx); err != nil {
			return err
		}
	}
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.file, r.pos = string(e.NextLogName), uint32(e.Position)
		return r.emitReady(ctx)
	case *replication.MariadbGTIDEvent:
		r.gtid.begin(e.GTID.String())
		r.inTxn = !e.IsStandalone()
		r.xid = e.GTID.String()
	case *replication.GTIDEvent:
		if g, err := e.GTIDNext(); err == nil {
			r.gtid.begin(g.String())
		}
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch {
		case strings.EqualFold(q, "BEGIN"):
			r.inTxn = true
			r.commitTS = time.Unix(int64(h.Timestamp), 0).UTC()
		case strings.EqualFold(q, "COMMIT"), strings.EqualFold(q, "ROLLBACK"): // non-transactional engines
			return r.commit(ctx, start, h)
		case r.inTxn:
			// a statement inside a transaction (SAVEPOINT): not a boundary
		default:
			if err := r.ddl(q, string(e.Schema), start, h); err != nil {
				return err
			}
			// a DDL statement is its own transaction: the table maps that follow carry the new shapes
			return r.commit(ctx, start, h)
		}
	case *replication.TableMapEvent:
		id := schema.TableID{Namespace: string(e.Schema), Name: string(e.Table)}
		if !r.captured(id) {
			break
		}
		cols, err := fromTableMap(e)
		if err != nil {
			return component.Permanent(err)
		}
		tm := &tableMap{id: id, cols: cols, shape: schema.Table{ID: id, Columns: make([]schema.Column, len(cols))}}
		for i, c := range cols {
			tm.shape.Columns[i] = schema.Column{Name: c.name, Type: c.typ, Nullable: c.nullable}
		}
		for _, k := range e.PrimaryKey {
			tm.pkIdx = append(tm.pkIdx, int(k))
			tm.shape.PrimaryKey = append(tm.shape.PrimaryKey, cols[k].name)
		}
		r.tables[e.TableID] = tm
	case *replication.RowsEvent:
		st := r.tables[e.TableID]
		if st == nil {
			break
		}
		return r.rows(ctx, st, e, start, h)
	case *replication.XIDEvent:
		return r.commit(ctx, start, h)
	}
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	r.s.mu.Lock()
	r.s.curFile, r.s.curPos = r.file, r.pos
	r.s.mu.Unlock()
	return r.emitReady(ctx)
}

func (r *reader) truncate(id schema.TableID, start uint32, h *replication.EventHeader) error {
	switch r.s.cfg.Truncate {
	case "ignore":
		return nil
	case "halt":
		return component.Permanent(fmt.Errorf("TRUNCATE of %s at %s:%d and truncate: halt; resync the table, or set truncate: propagate or ignore", id, r.file, start))
	}
	v := r.byID[id].Version
	r.txn = append(r.txn, schema.Change{Op: schema.OpTruncate, Table: id, Version: v, Pos: changePos(r.file, start, 0),
		CommitTS: time.Unix(int64(h.Timestamp), 0).UTC()})
	return nil
}

// rows turns a rows event into changes of the transaction.
func (r *reader) rows(ctx context.Context, st *tableMap, e *replication.RowsEvent, start uint32, h *replication.EventHeader) error {
	t := st.shape
	if len(t.PrimaryKey) == 0 {
		return component.Permanent(fmt.Errorf("table %s has no primary key in the binlog's row metadata: add one (cdcd identifies rows by it)", st.id))
	}
	if e := r.expect[st.id]; e != nil && (len(e.Fills) > 0 || e.Unparsed) {
		// the rows already there hold the added columns' defaults
		t = t.Clone()
		for i := range t.Columns {
			f, ok := e.Fills[t.Columns[i].Name]
			if !ok && e.Unparsed {
				f, ok = fillSpec{Unknown: "the ALTER TABLE that added it could not be parsed"}, true
			}
			if ok {
				ex, err := r.s.dec.existing(&st.cols[i], f)
				if err != nil {
					return component.Permanent(fmt.Errorf("table %s column %s added at %s:%d: %w", st.id, st.cols[i].name, r.file, start, err))
				}
				t.Columns[i].Existing = ex
			}
		}
	}
	d, err := r.observe(ctx, t, r.file, start)
	if err != nil {
		return err
	}
	if e := r.expect[st.id]; e != nil {
		delete(r.expect, st.id)
		check := d
		if check == nil {
			check = &schema.Delta{Table: t}
		}
		if err := e.apply(check); err != nil {
			return component.Permanent(err)
		}
	}
	if d != nil {
		r.deltas = append(r.deltas, *d)
	}
	version := r.byID[st.id].Version
	ts := time.Unix(int64(h.Timestamp), 0).UTC()
	toRow := func(vals []any) (schema.Row, error) {
		row := make(schema.Row, len(st.cols))
		for i := range st.cols {
			var v any
			if i < len(vals) {
				v = vals[i]
			}
			val, err := r.s.dec.binlog(&st.cols[i], v)
			if err != nil { // a value cdcd cannot read is a data error: retrying reads it again
				return nil, component.Permanent(fmt.Errorf("table %s column %s at %s:%d: %w", st.id, st.cols[i].name, r.file, start, err))
			}
			row[i] = schema.Field{Name: st.cols[i].name, Value: val}
		}
		return row, nil
	}
	keyOf := func(row schema.Row) schema.Row {
		k := make(schema.Row, len(st.pkIdx))
		for i, j := range st.pkIdx {
			k[i] = row[j]
		}
		return k
	}
	n := 0
	add := func(op schema.Op, key, before, after schema.Row) {
		r.txn = append(r.txn, schema.Change{Op: op, Table: st.id, Version: version, Pos: changePos(r.file, start, n),
			TxID: r.xid, CommitTS: ts, Key: key, Before: before, After: after})
		n++
		kj := string(key.AppendJSON(nil))
		for _, w := range r.open {
			if w.table == st.id {
				w.touched[kj] = true
			}
		}
	}
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			row, err := toRow(vals)
			if err != nil {
				return err
			}
			add(schema.OpInsert, keyOf(row), nil, row)
		}
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			row, err := toRow(vals)
			if err != nil {
				return err
			}
			add(schema.OpDelete, keyOf(row), row, nil)
		}
	default: // updates: before and after images in pairs
		for i := 0; i+1 < len(e.Rows); i += 2 {
			before, err := toRow(e.Rows[i])
			if err != nil {
				return err
			}
			after, err := toRow(e.Rows[i+1])
			if err != nil {
				return err
			}
			bk, ak := keyOf(before), keyOf(after)
			if string(bk.AppendJSON(nil)) != string(ak.AppendJSON(nil)) {
				add(schema.OpDelete, bk, before, nil) // the key changed: the old one is gone
			}
			add(schema.OpUpdate, ak, before, after)
		}
	}
	r.commitTS = ts
	if len(r.txn) >= r.s.deps.MaxChanges {
		// a transaction larger than a batch: hand over what there is, without a checkpoint
		b := schema.Batch{Deltas: r.deltas, Changes: r.txn}
		r.txn, r.deltas = nil, nil
		return r.send(ctx, b)
	}
	return nil
}

// commit ends a transaction at the event that starts at start.
func (r *reader) commit(ctx context.Context, start uint32, h *replication.EventHeader) error {
	r.gtid.commit()
	r.inTxn = false
	if h.LogPos > 0 {
		r.pos = h.LogPos
	}
	b := schema.Batch{Deltas: r.deltas, Changes: r.txn, Checkpoint: checkpointPos(r.file, start, r.resume())}
	r.txn, r.deltas = nil, nil
	if len(b.Changes) == 0 && len(b.Deltas) == 0 {
		// a transaction of tables not captured: its checkpoint only moves the
		// offset; on a busy server one every 100ms is plenty (the watchdog tick
		// sends the last one when the stream goes quiet)
		if time.Since(r.lastEmpty) < 100*time.Millisecond {
			r.pendingEmpty = b.Checkpoint
			return r.emitReady(ctx)
		}
		r.lastEmpty = time.Now()
	} else {
		r.s.mu.Lock()
		r.s.lastTS = r.commitTS
		r.s.mu.Unlock()
	}
	r.pendingEmpty = nil
	if err := r.send(ctx, b); err != nil {
		return err
	}
	return r.emitReady(ctx)
}

// current says the source is caught up when, between transactions, the stream
// has reached the binlog end the server had at a sampled instant: every
// transaction committed before it has been read. The word rides on a held-back
// checkpoint, or goes alone.
func (r *reader) current(ctx context.Context) error {
	at, p, ok := r.s.probe.Pending()
	if !ok || r.inTxn || !r.reached(p.file, p.pos) {
		return nil
	}
	r.s.probe.Reached(at)
	// the next sample comes within a heartbeat period and is reached within
	// another; a third is slack
	b := schema.Batch{Checkpoint: r.pendingEmpty, Current: schema.Current{At: at, Until: time.Now().Add(3 * r.s.cfg.heartbeat)}}
	if b.Checkpoint != nil {
		r.lastEmpty = time.Now()
	}
	return r.send(ctx, b)
}

// flushEmpty sends a checkpoint held back by commit.
func (r *reader) flushEmpty(ctx context.Context) error {
	if r.pendingEmpty == nil || r.inTxn {
		return nil
	}
	b := schema.Batch{Checkpoint: r.pendingEmpty}
	r.pendingEmpty, r.lastEmpty = nil, time.Now()
	return r.send(ctx, b)
}
