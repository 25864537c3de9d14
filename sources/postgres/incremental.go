package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

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

const watermarkPrefix = "cdcd_wm"

// incState is the persisted state of a table's incremental snapshot.
type incState struct {
	Incremental bool     `json:"incremental"`
	Cursor      []string `json:"cursor,omitempty"` // text of the last key emitted and acked
	Done        bool     `json:"done,omitempty"`
	Rows        int64    `json:"rows,omitempty"`
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
	done  chan struct{}   // closed when the high watermark was processed
}

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

// mark handles a watermark message of this slot; it returns the chunk rows to
// emit at a high watermark.
func (w *watermarks) mark(content string) (win *window, rows []schema.Change) {
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
		win.open = true
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
// returns every table whose incremental snapshot is not done.
func (s *Source) planIncremental(ctx context.Context, missing []*tableInfo, saved map[schema.TableID]sources.SnapshotProgress) ([]*incTable, error) {
	var out []*incTable
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
		if json.Unmarshal(sp.State, &st) == nil && st.Incremental && !st.Done {
			out = append(out, &incTable{t: s.byID[id], state: st})
		}
	}
	return out, nil
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
		if err := s.saveIncremental(ctx, a.table, incState{Incremental: true, Cursor: a.cursor, Done: a.end, Rows: rows}); err != nil {
			return fmt.Errorf("save snapshot progress of %s: %w", a.table, err)
		}
	}
	return nil
}

// incremental snapshots each table chunk by chunk between watermarks.
func (s *Source) incremental(ctx context.Context, tables []*incTable) error {
	for _, it := range tables {
		s.mu.Lock()
		s.progress[it.t.ID] = &tableProgress{RowsEstimated: it.t.EstRows, RowsDone: it.state.Rows, Chunks: []chunkState{{}}}
		s.mu.Unlock()
		cursor := it.state.Cursor
		for n := 0; ; n++ {
			win, err := s.incrementalChunk(ctx, it.t, cursor, n)
			if err != nil {
				return err
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

func (s *Source) incrementalChunk(ctx context.Context, t *tableInfo, cursor []string, n int) (*window, error) {
	win := &window{id: fmt.Sprintf("%s/%s/%d", s.cfg.Slot, t.ID, n), table: t.ID, seen: map[string]bool{}, done: make(chan struct{})}
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
	rows, last, err := s.selectChunk(ctx, s.pool, t, cursor)
	if err != nil {
		return nil, err
	}
	s.wm.mu.Lock()
	win.rows, win.last, win.end = rows, last, len(rows) < s.cfg.SnapshotChunkRows
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
