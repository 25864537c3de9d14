package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tables added to a running pipeline are snapshotted while the stream goes on,
// with watermarks in the WAL (the DBLog method), so no lock is taken and nothing
// is missed or applied out of order:
//
//  1. a low watermark (pg_logical_emit_message 'L …') is committed;
//  2. a chunk of the table is selected in primary-key order after the cursor;
//  3. a high watermark ('H …') is committed.
//
// The stream goroutine records the keys of the table changed between the two
// watermarks; at the high watermark it drops those keys from the chunk (the
// stream carries their newer state) and emits the rest as snapshot reads inside
// the high watermark's transaction. Changes after it follow with later positions.
// The cursor is saved only when that transaction is acked, so a crash redoes at
// most the unacked chunks, reading them again under new watermarks.
//
// Commit order is not visibility order in Postgres: a transaction's commit
// record can precede the low watermark's in the WAL while the transaction is
// still in the server's list of running ones when the chunk's snapshot is
// taken, so the chunk misses its change and the stream has already passed it.
// Emitted at the high watermark, the chunk's older row would overwrite it. So
// the chunk is read in a transaction that also reads its snapshot's running
// transactions (txid_current_snapshot); the stream remembers the commit
// positions of recent transactions, and a chunk whose snapshot did not see a
// transaction the stream read before the low watermark is read again.
//
// A resync of a table (requested through the pipeline's snapshot progress)
// is the same snapshot from the first key, with Since: a stream position
// taken before its first watermark. Every row the resync reads is emitted
// after Since, and so is every change the stream makes meanwhile, so the last
// chunk's transaction ends with a sweep (schema.OpSweep) that deletes at the
// destination the rows older than Since: those gone from the source.

const watermarkPrefix = "cdcd_wm"

// incState is the persisted state of a table's incremental snapshot.
type incState struct {
	Incremental bool     `json:"incremental"`
	Cursor      []string `json:"cursor,omitempty"` // text of the last key emitted and acked
	Done        bool     `json:"done,omitempty"`
	Rows        int64    `json:"rows,omitempty"`
	// Since is set for a resync: where it began (see above)
	Since offsets.Position `json:"since,omitempty"`
}

// window is one chunk between its watermarks.
type window struct {
	id    string
	table schema.TableID
	open  bool            // the low watermark was seen
	seen  map[string]bool // keys changed by the stream since the low watermark
	rows  []schema.Change // the chunk, set before the high watermark is written
	last  []string        // the chunk's last key (text)
	end   bool            // the chunk is the table's last
	since offsets.Position
	// xip and xmax say which transactions the chunk's snapshot did not see
	// (32-bit xids: those in xip, and from xmax on); low is the low
	// watermark's commit position; redo says the chunk missed a change the
	// stream read before low: read it again
	xip  []uint32
	xmax uint32
	low  pglogrepl.LSN
	redo bool
	done chan struct{} // closed when the high watermark was processed
}

// recentCommits remembers the commit positions of the last transactions the
// stream read, by xid (see the top of this file). It is the stream
// goroutine's own.
type recentCommits struct {
	at    map[uint32]pglogrepl.LSN
	order []uint32 // a ring, oldest at next once full
	next  int
}

// recentCommitsLen is how many commits recentCommits keeps: a transaction
// counts as still running in a snapshot for microseconds after its commit
// record, far less than this many commits.
const recentCommitsLen = 1 << 16

func (r *recentCommits) add(xid uint32, lsn pglogrepl.LSN) {
	if r.at == nil {
		r.at, r.order = make(map[uint32]pglogrepl.LSN, recentCommitsLen), make([]uint32, 0, recentCommitsLen)
	}
	if len(r.order) < recentCommitsLen {
		r.order = append(r.order, xid)
	} else {
		delete(r.at, r.order[r.next])
		r.order[r.next] = xid
		r.next = (r.next + 1) % recentCommitsLen
	}
	r.at[xid] = lsn
}

// missed reports whether the chunk of win missed a change the stream read
// before its low watermark: a transaction its snapshot did not see (running,
// or not begun as far as it knew) that committed before the low watermark.
func (r *recentCommits) missed(win *window) bool {
	if win.low == 0 {
		return true // no low watermark read: nothing is known
	}
	for _, x := range win.xip {
		if at, ok := r.at[x]; ok && at < win.low {
			return true
		}
	}
	for _, x := range r.order {
		if xidAtOrAfter(x, win.xmax) && r.at[x] < win.low {
			return true
		}
	}
	return false
}

// xidAtOrAfter compares 32-bit xids as Postgres does (modulo 2^32).
func xidAtOrAfter(a, b uint32) bool { return int32(a-b) >= 0 }

// watermarks is shared by the chunk reader and the stream goroutine.
type watermarks struct {
	mu      sync.Mutex
	windows map[string]*window
	acks    []incAck // chunks emitted, waiting for their commit to be acked
}

type incAck struct {
	commit pglogrepl.LSN
	table  schema.TableID
	cursor []string
	rows   int64
	end    bool
	since  offsets.Position
}

func (w *watermarks) register(win *window) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.windows == nil {
		w.windows = map[string]*window{}
	}
	w.windows[win.id] = win
}

// changed records a streamed change of table with key, for open windows.
func (w *watermarks) changed(table schema.TableID, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, win := range w.windows {
		if win.open && win.table == table {
			win.seen[key] = true
		}
	}
}

// mark handles a watermark message of this slot, committed at lsn; it returns
// the chunk rows to emit at a high watermark.
func (w *watermarks) mark(content string, lsn pglogrepl.LSN) (win *window, rows []schema.Change) {
	kind, id, ok := strings.Cut(content, " ")
	if !ok {
		return nil, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	win = w.windows[id]
	if win == nil {
		return nil, nil // a watermark of an earlier run: nothing waits for it
	}
	switch kind {
	case "L":
		win.open, win.low = true, lsn
	case "H":
		delete(w.windows, id)
		for _, c := range win.rows {
			if !win.seen[string(c.Key.AppendJSON(nil))] {
				rows = append(rows, c)
			}
		}
		return win, rows
	}
	return nil, nil
}

// incTable is a table with an incremental snapshot to do.
type incTable struct {
	t     *tableInfo
	state incState
}

// planIncremental adds the configured tables missing from the publication and
// returns every table whose incremental snapshot is not done (with fresh, a
// new slot: only those added and the resyncs requested). A requested resync
// starts here: its state, with Since, replaces the request.
func (s *Source) planIncremental(ctx context.Context, missing []*tableInfo, saved map[schema.TableID]sources.SnapshotProgress, fresh bool) ([]*incTable, error) {
	var out []*incTable
	if req := s.resyncRequested(saved); len(req) > 0 {
		at, err := insertLSN(ctx, s.pool)
		if err != nil {
			return nil, err
		}
		since := streamPos(at, 0)
		for _, id := range req {
			st := incState{Incremental: true, Since: since}
			if err := s.saveIncremental(ctx, id, st); err != nil {
				return nil, err
			}
			sp := saved[id]
			sp.Resync, sp.State = false, mustJSON(st)
			saved[id] = sp
			s.log.Info("resyncing the table while streaming: it is read again, then the rows it no longer has are removed at the destination", "table", id.String())
		}
	}
	for _, t := range missing {
		// state first: once the table is in the publication, only this says it
		// still needs its snapshot
		it := &incTable{t: t, state: incState{Incremental: true}}
		if err := s.saveIncremental(ctx, it.t.ID, it.state); err != nil {
			return nil, err
		}
		if err := addToPublication(ctx, s.pool, s.cfg.Publication, []*tableInfo{t}); err != nil {
			return nil, err
		}
		s.log.Info("table added to the pipeline; snapshotting it while streaming", "table", t.ID.String())
	}
	for _, id := range s.cfg.tables {
		sp, ok := saved[id]
		if !ok {
			if !containsTable(missing, id) {
				continue
			}
			out = append(out, &incTable{t: s.byID[id], state: incState{Incremental: true}})
			continue
		}
		var st incState
		if json.Unmarshal(sp.State, &st) == nil && st.Incremental && !st.Done && (!fresh || st.Since != nil) {
			out = append(out, &incTable{t: s.byID[id], state: st})
		}
	}
	return out, nil
}

// resyncRequested returns the configured tables whose resync was requested
// and has not started.
func (s *Source) resyncRequested(saved map[schema.TableID]sources.SnapshotProgress) []schema.TableID {
	var out []schema.TableID
	for _, id := range s.cfg.tables {
		if sp, ok := saved[id]; ok && sp.Resync {
			out = append(out, id)
		}
	}
	return out
}

// resyncsUnderWay returns the tables whose resync started and is not done.
func resyncsUnderWay(saved map[schema.TableID]sources.SnapshotProgress) []schema.TableID {
	var out []schema.TableID
	for id, sp := range saved {
		var st incState
		if json.Unmarshal(sp.State, &st) == nil && st.Since != nil && !st.Done {
			out = append(out, id)
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data
	}
	return b
}

func containsTable(ts []*tableInfo, id schema.TableID) bool {
	for _, t := range ts {
		if t.ID == id {
			return true
		}
	}
	return false
}

func (s *Source) saveIncremental(ctx context.Context, id schema.TableID, st incState) error {
	if s.deps.Progress == nil {
		return nil
	}
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.deps.Progress.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: id, RowsDone: st.Rows, Done: st.Done, State: state})
}

// ackIncremental saves the cursors of chunks whose transaction is now durable.
func (s *Source) ackIncremental(ctx context.Context, commit pglogrepl.LSN) error {
	w := &s.wm
	w.mu.Lock()
	var done []incAck
	n := 0
	for _, a := range w.acks {
		if a.commit > commit {
			break
		}
		done = append(done, a)
		n++
	}
	w.acks = w.acks[n:]
	w.mu.Unlock()
	for _, a := range done {
		s.mu.Lock()
		p := s.progress[a.table]
		if p == nil {
			p = &tableProgress{}
			s.progress[a.table] = p
		}
		p.RowsDone += a.rows
		if a.end {
			p.Chunks = []chunkState{{Done: true}}
		} else if len(p.Chunks) == 0 {
			p.Chunks = []chunkState{{}}
		}
		rows := p.RowsDone
		s.mu.Unlock()
		if err := s.saveIncremental(ctx, a.table, incState{Incremental: true, Cursor: a.cursor, Done: a.end, Rows: rows, Since: a.since}); err != nil {
			return fmt.Errorf("save snapshot progress of %s: %w", a.table, err)
		}
	}
	return nil
}

// incremental snapshots each table chunk by chunk between watermarks.
func (s *Source) incremental(ctx context.Context, tables []*incTable) error {
	// every table's progress from the start, not when its turn comes: a
	// table waiting for its read is not done (and a resync says so)
	s.mu.Lock()
	for _, it := range tables {
		s.progress[it.t.ID] = &tableProgress{RowsEstimated: it.t.EstRows, RowsDone: it.state.Rows, Chunks: []chunkState{{}}, resync: it.state.Since != nil}
	}
	s.mu.Unlock()
	for _, it := range tables {
		cursor := it.state.Cursor
		for n := 0; ; n++ {
			win, err := s.incrementalChunk(ctx, it.t, cursor, it.state.Since, n)
			if err != nil {
				return err
			}
			if win.redo {
				s.log.Debug("chunk read again: a transaction committed before its low watermark was not yet visible to its read", "table", it.t.ID.String())
				continue
			}
			if win.end {
				break
			}
			cursor = win.last
		}
		s.log.Info("table snapshot finished", "table", it.t.ID.String())
	}
	return nil
}

func (s *Source) incrementalChunk(ctx context.Context, t *tableInfo, cursor []string, since offsets.Position, n int) (*window, error) {
	// the attempt in the id: the stream may replay an earlier attempt's
	// watermarks, whose chunk positions are older than this one's Since
	win := &window{id: fmt.Sprintf("%s/%s/%d/%d", s.cfg.Slot, t.ID, s.attempt, n), table: t.ID, seen: map[string]bool{}, since: since, done: make(chan struct{})}
	s.wm.register(win)
	emit := func(kind string) error {
		_, err := s.pool.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, watermarkPrefix, kind+" "+win.id)
		if err != nil {
			return fmt.Errorf("write %s watermark for %s (grant EXECUTE on pg_logical_emit_message): %w", kind, t.ID, err)
		}
		return nil
	}
	if err := emit("L"); err != nil {
		return nil, err
	}
	rows, last, snap, err := s.readWindowChunk(ctx, t, cursor)
	if err != nil {
		return nil, err
	}
	s.wm.mu.Lock()
	win.rows, win.last, win.end, win.xip, win.xmax = rows, last, len(rows) < s.cfg.SnapshotChunkRows, snap.xip, snap.xmax
	s.wm.mu.Unlock()
	if s.afterChunkSelect != nil {
		s.afterChunkSelect(ctx)
	}
	if err := emit("H"); err != nil {
		return nil, err
	}
	select {
	case <-win.done:
		return win, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// chunkSnapshot is what a chunk's snapshot did not see: the transactions in
// xip, and those from xmax on (32-bit xids, as pgoutput names transactions).
type chunkSnapshot struct {
	xip  []uint32
	xmax uint32
}

// readWindowChunk reads a chunk (selectChunk) in a read-only repeatable-read
// transaction, with what its snapshot did not see.
func (s *Source) readWindowChunk(ctx context.Context, t *tableInfo, cursor []string) ([]schema.Change, []string, chunkSnapshot, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, chunkSnapshot{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	var text string
	if err := tx.QueryRow(ctx, `SELECT txid_current_snapshot()::text`).Scan(&text); err != nil {
		return nil, nil, chunkSnapshot{}, fmt.Errorf("read the snapshot of a chunk of %s: %w", t.ID, err)
	}
	snap, err := parseSnapshot(text)
	if err != nil {
		return nil, nil, chunkSnapshot{}, err
	}
	if s.editSnapshot != nil {
		snap.xip = s.editSnapshot(snap.xip)
	}
	rows, last, err := s.selectChunk(ctx, tx, t, cursor)
	return rows, last, snap, err
}

// parseSnapshot reads a txid_snapshot's text (xmin:xmax:xip,…).
func parseSnapshot(text string) (chunkSnapshot, error) {
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return chunkSnapshot{}, fmt.Errorf("txid_current_snapshot %q: not xmin:xmax:xip", text)
	}
	xmax, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return chunkSnapshot{}, fmt.Errorf("txid_current_snapshot %q: %w", text, err)
	}
	snap := chunkSnapshot{xmax: uint32(xmax)}
	if parts[2] == "" {
		return snap, nil
	}
	for _, f := range strings.Split(parts[2], ",") {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return chunkSnapshot{}, fmt.Errorf("txid_current_snapshot %q: %w", text, err)
		}
		snap.xip = append(snap.xip, uint32(v))
	}
	return snap, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// selectChunk reads up to snapshot_chunk_rows rows after cursor in key order.
func (s *Source) selectChunk(ctx context.Context, q querier, t *tableInfo, cursor []string) ([]schema.Change, []string, error) {
	cols := t.quotedColumns()
	keyIdx := t.keyIndexes()
	keys := make([]string, len(keyIdx))
	params := make([]string, len(keyIdx))
	for i, k := range keyIdx {
		keys[i] = cols[k]
		var typ string
		if err := q.QueryRow(ctx, `SELECT format_type($1, $2)`, t.Columns[k].Type, t.Columns[k].Typmod).Scan(&typ); err != nil {
			return nil, nil, err
		}
		params[i] = fmt.Sprintf("$%d::text::%s", i+1, typ)
	}
	sql := fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "), quoted(t.ID))
	args := []any{pgx.QueryResultFormats{pgx.TextFormatCode}}
	if cursor != nil {
		sql += fmt.Sprintf(" WHERE (%s) > (%s)", strings.Join(keys, ", "), strings.Join(params, ", "))
		for _, c := range cursor {
			args = append(args, c)
		}
	}
	sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", strings.Join(keys, ", "), s.cfg.SnapshotChunkRows)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", t.ID, err)
	}
	defer rows.Close()
	var out []schema.Change
	var last []string
	for rows.Next() {
		raw := rows.RawValues()
		after, err := s.types.decodeRow(t, raw)
		if err != nil {
			return nil, nil, permanent(fmt.Errorf("snapshot of %s, %w", t.ID, err))
		}
		key := make(schema.Row, len(keyIdx))
		last = make([]string, len(keyIdx))
		for i, k := range keyIdx {
			key[i] = after[k]
			last[i] = string(raw[k])
		}
		out = append(out, schema.Change{Op: schema.OpSnapshot, Table: t.ID, Key: key, After: after})
	}
	return out, last, rows.Err()
}

func addToPublication(ctx context.Context, pool interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, pub string, tables []*tableInfo) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = quoted(t.ID)
	}
	if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pgx.Identifier{pub}.Sanitize(), strings.Join(names, ", "))); err != nil {
		return classify(fmt.Errorf("add %s to publication %s: %w", strings.Join(names, ", "), pub, err))
	}
	return nil
}
