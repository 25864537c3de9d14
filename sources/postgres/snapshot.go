package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// The snapshot reads each table in chunks of CTID block ranges (per leaf partition
// for partitioned tables), with a bounded pool of workers that all import one
// snapshot: the slot's exported snapshot for a fresh pipeline, so the snapshot and
// the stream meet exactly at the slot's consistent point.
//
// A chunk is done, and saved as done in the snapshot progress, only when the
// engine acks the part of the batch stream that completes it. After a crash the
// pipeline resumes: chunks not done are read again, under a new snapshot, and the
// stream still starts at the slot's consistent point. Rows that changed after the
// consistent point are then read in their newer state and replayed by the stream
// with newer versions, which the sinks' versioned writes resolve; a row moved to
// an already-done chunk by an UPDATE is delivered by that UPDATE.

type snapshotPlan struct {
	consistent pglogrepl.LSN
	snapshot   string // snapshot name the workers import
	exported   closer // holds the snapshot until every worker imported it
	chunks     []planChunk
	// incremental lists added tables to snapshot while streaming
	incremental []*incTable
}

type closer interface{ Close(context.Context) error }

type planChunk struct {
	table  *tableInfo
	idx    int
	rel    string // the relation to scan, quoted (a leaf partition or the table)
	lo     uint32
	hi     uint32   // 0: open-ended
	byKey  bool     // primary_key chunking: the whole table in key order
	cursor []string // byKey: resume after this key
}

// tableProgress is the persisted snapshot state of one table.
type tableProgress struct {
	RowsDone      int64        `json:"-"`
	RowsEstimated int64        `json:"rows_estimated"`
	Chunks        []chunkState `json:"chunks"`
	// View is set when a resumed snapshot announced the table: the shape it
	// registered is the catalog's at an LSN the stream has yet to replay up to
	View     *catalogView `json:"view,omitempty"`
	inFlight int64        // rows acked in chunks not yet done
	resync   bool         // a resync of the table, not its first snapshot
}

// catalogView is a table version registered from the catalog as it was at
// LSN, ahead of the stream. A resumed snapshot reads the catalog of now while
// the stream replays from the slot's consistent point: the Relation messages
// of commits before LSN describe older shapes of the table, which the
// destination has already moved past (a column added while cdcd was down is
// there, filled, and holds the values the resumed snapshot copied). The
// stream encodes those commits in this version (historicShape) instead of
// registering the older shape again, which would drop the column and add it
// back, filling over the values copied.
//
// Read bounds the WAL position of the resumed snapshot's read (the LSN after
// its snapshot was exported). The chunks of a table are ranges of physical
// locations (ctid), read by attempts under different snapshots once a
// snapshot is resumed: a row an update moved, in between, from a chunk not yet
// read into one already read is read by neither. The stream's replay of that
// update brings the row back, but an update sends no TOASTed value it left
// unchanged, and the destination has no row to keep one from: so the stream
// reads those values from the table as it is now for the updates it replays
// from before Read (fillCurrent).
type catalogView struct {
	LSN     pglogrepl.LSN  `json:"lsn"`
	Version schema.Version `json:"version"`
	Read    pglogrepl.LSN  `json:"read,omitempty"`
}

type chunkState struct {
	Rel string `json:"rel"`
	// Node is the relation's file (relfilenode) when the chunk was planned: a
	// rewrite (VACUUM FULL, CLUSTER, a type change) moves every row, so the
	// page ranges of a resumed snapshot no longer hold the rows they held
	Node   uint32   `json:"node,omitempty"`
	Lo     uint32   `json:"lo"`
	Hi     uint32   `json:"hi,omitempty"`
	Done   bool     `json:"done,omitempty"`
	Rows   int64    `json:"rows,omitempty"`
	ByKey  bool     `json:"by_key,omitempty"`
	Cursor []string `json:"cursor,omitempty"` // by_key: the last key acked
}

func (p *tableProgress) done() bool {
	for _, c := range p.Chunks {
		if !c.Done {
			return false
		}
	}
	return true
}

type emittedPart struct {
	part   uint64
	table  schema.TableID
	chunk  int
	rows   int64
	last   bool
	cursor []string // by-key chunks: the part's last key
}

var snapshotNameRE = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// createSlot (re)creates the slot; with snapshot "initial" it keeps the
// replication connection open so that its exported snapshot stays valid for the
// workers, and plans every table.
func (s *Source) createSlot(ctx context.Context, exists bool) (*snapshotPlan, error) {
	for _, t := range s.byID {
		t.view = nil // a new slot: the stream starts where the snapshot reads
	}
	if exists {
		s.log.Info("dropping the slot of an attempt that never committed, to get a consistent snapshot")
		if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, s.cfg.Slot); err != nil {
			return nil, err
		}
		if _, err := s.pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot); err != nil {
			return nil, fmt.Errorf("drop unused slot %s: %w", s.cfg.Slot, err)
		}
	}
	conn, err := s.replicationConn(ctx)
	if err != nil {
		return nil, err
	}
	action := "NOEXPORT_SNAPSHOT"
	if s.cfg.Snapshot == "initial" {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: action, Mode: pglogrepl.LogicalReplication})
	if err != nil {
		conn.Close(ctx)
		return nil, classify(fmt.Errorf("create replication slot %s: %w", s.cfg.Slot, err))
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	plan := &snapshotPlan{consistent: lsn}
	if s.cfg.Snapshot != "initial" {
		conn.Close(ctx)
		return plan, nil
	}
	plan.snapshot, plan.exported = res.SnapshotName, conn
	for _, id := range s.cfg.tables {
		if slices.Contains(s.resyncing, id) {
			continue // read by its resync, while streaming
		}
		p, err := s.planTable(ctx, s.byID[id])
		if err != nil {
			conn.Close(ctx)
			return nil, err
		}
		s.setProgress(id, p)
		if err := s.saveProgress(ctx, id, p); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	plan.chunks = s.pendingChunks()
	s.log.Info("replication slot created", "consistent_point", lsn.String(), "snapshot", plan.snapshot)
	return plan, nil
}

// resumePlan continues a snapshot that a crash interrupted: the chunks not done,
// read under a fresh snapshot exported by a coordinator transaction.
func (s *Source) resumePlan(ctx context.Context, cp checkpoint, saved map[schema.TableID]sources.SnapshotProgress) (*snapshotPlan, error) {
	plan := &snapshotPlan{consistent: cp.consistent}
	for _, id := range s.cfg.tables {
		if slices.Contains(s.resyncing, id) {
			continue // read by its resync, while streaming
		}
		var p tableProgress
		if sp, ok := saved[id]; ok && json.Unmarshal(sp.State, &p) == nil && len(p.Chunks) > 0 {
			rewritten, err := s.rewritten(ctx, p.Chunks)
			if err != nil {
				return nil, err
			}
			if !rewritten {
				for _, c := range p.Chunks {
					if c.Done {
						p.RowsDone += c.Rows
					}
				}
				s.setProgress(id, &p)
				continue
			}
			s.log.Warn("the table was rewritten (VACUUM FULL, CLUSTER, a column type change) since its snapshot began: its rows moved between the pages the snapshot reads in chunks, so it is read again from the start",
				"table", id.String())
		}
		np, err := s.planTable(ctx, s.byID[id])
		if err != nil {
			return nil, err
		}
		s.setProgress(id, np)
	}
	plan.chunks = s.pendingChunks()
	if len(plan.chunks) == 0 {
		return plan, nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Release()
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&plan.snapshot); err != nil {
		_ = tx.Rollback(ctx)
		conn.Release()
		return nil, err
	}
	plan.exported = txCloser{tx: tx, release: conn.Release}
	// every worker reads under this snapshot: what it sees committed before
	// the WAL position read now
	if s.snapshotLSN, err = insertLSN(ctx, s.pool); err != nil {
		_ = tx.Rollback(ctx)
		conn.Release()
		return nil, err
	}
	s.log.Info("resuming an interrupted snapshot", "chunks_left", len(plan.chunks), "consistent_point", cp.consistent.String())
	return plan, nil
}

type txCloser struct {
	tx      pgx.Tx
	release func()
}

func (t txCloser) Close(ctx context.Context) error {
	err := t.tx.Rollback(ctx)
	t.release()
	return err
}

func (s *Source) setProgress(id schema.TableID, p *tableProgress) {
	s.mu.Lock()
	s.progress[id] = p
	s.mu.Unlock()
}

// savedProgress loads the pipeline's snapshot progress by table.
func (s *Source) savedProgress(ctx context.Context) (map[schema.TableID]sources.SnapshotProgress, error) {
	saved := map[schema.TableID]sources.SnapshotProgress{}
	if s.deps.Progress == nil {
		return saved, nil
	}
	list, err := s.deps.Progress.LoadSnapshotProgress(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range list {
		saved[p.Table] = p
	}
	return saved, nil
}

// pendingChunks lists the chunks not done, table by table.
func (s *Source) pendingChunks() []planChunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []planChunk
	for _, id := range s.cfg.tables {
		p := s.progress[id]
		if p == nil {
			continue // resynced while streaming
		}
		for i, c := range p.Chunks {
			if !c.Done {
				out = append(out, planChunk{table: s.byID[id], idx: i, rel: c.Rel, lo: c.Lo, hi: c.Hi, byKey: c.ByKey, cursor: c.Cursor})
			}
		}
	}
	return out
}

// rewritten reports whether a relation of chunks has another file than when
// they were planned.
func (s *Source) rewritten(ctx context.Context, chunks []chunkState) (bool, error) {
	seen := map[string]bool{}
	for _, c := range chunks {
		if c.ByKey || c.Node == 0 || seen[c.Rel] {
			continue
		}
		seen[c.Rel] = true
		var node *uint32
		if err := s.pool.QueryRow(ctx, `SELECT pg_relation_filenode(to_regclass($1))::oid`, c.Rel).Scan(&node); err != nil {
			return false, fmt.Errorf("read the file of %s: %w", c.Rel, err)
		}
		if node == nil || *node != c.Node {
			return true, nil
		}
	}
	return false, nil
}

// planTable splits a table (each leaf partition of it) into CTID block ranges of
// about snapshot_chunk_rows rows; the last range of each relation is open-ended.
func (s *Source) planTable(ctx context.Context, t *tableInfo) (*tableProgress, error) {
	if s.cfg.SnapshotChunking == "primary_key" {
		return &tableProgress{RowsEstimated: t.EstRows, Chunks: []chunkState{{Rel: quoted(t.ID), ByKey: true}}}, nil
	}
	rels := t.Leaves
	if !t.Partitioned {
		rels = []uint32{t.OID}
	}
	p := &tableProgress{}
	for _, oid := range rels {
		var name string
		var blocks, pages int64
		var tuples float64
		var node uint32
		err := s.pool.QueryRow(ctx, `SELECT c.oid::regclass::text, pg_relation_size(c.oid) / current_setting('block_size')::int8,
				c.relpages, c.reltuples, pg_relation_filenode(c.oid)::oid FROM pg_catalog.pg_class c WHERE c.oid = $1`, oid).Scan(&name, &blocks, &pages, &tuples, &node)
		if err != nil {
			return nil, fmt.Errorf("plan snapshot of %s: %w", t.ID, err)
		}
		switch {
		case p.RowsEstimated < 0:
		case tuples < 0 || (tuples == 0 && blocks > 0):
			// never analyzed (reltuples -1; 0 with pages before Postgres 14):
			// no estimate, rather than one the snapshot passes long before done
			p.RowsEstimated = -1
		default:
			p.RowsEstimated += int64(tuples)
		}
		tuples = max(tuples, 0)
		perBlock := 60.0
		if pages > 0 && tuples > 0 {
			perBlock = tuples / float64(pages)
		}
		step := int64(math.Max(1, float64(s.cfg.SnapshotChunkRows)/perBlock))
		lo := int64(0)
		for lo+step < blocks {
			p.Chunks = append(p.Chunks, chunkState{Rel: name, Node: node, Lo: uint32(lo), Hi: uint32(lo + step)})
			lo += step
		}
		p.Chunks = append(p.Chunks, chunkState{Rel: name, Node: node, Lo: uint32(lo)})
	}
	return p, nil
}

func (s *Source) saveProgress(ctx context.Context, id schema.TableID, p *tableProgress) error {
	if s.deps.Progress == nil {
		return nil
	}
	state, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.deps.Progress.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: id, RowsDone: p.RowsDone, RowsEstimated: p.RowsEstimated, Done: p.done(), State: state})
}

// ackSnapshot marks the chunks completed by parts up to upTo as done and saves
// the progress of their tables.
func (s *Source) ackSnapshot(ctx context.Context, upTo uint64) error {
	s.mu.Lock()
	touched := map[schema.TableID]tableProgress{}
	n := 0
	for _, ep := range s.parts {
		if ep.part > upTo {
			break
		}
		n++
		p := s.progress[ep.table]
		if c := &p.Chunks[ep.chunk]; c.ByKey {
			// a by-key chunk is durable page by page: resume after its last key
			c.Rows += ep.rows
			p.RowsDone += ep.rows
			c.Cursor, c.Done = ep.cursor, ep.last
			touched[ep.table] = tableProgress{RowsDone: p.RowsDone, RowsEstimated: p.RowsEstimated, Chunks: append([]chunkState(nil), p.Chunks...), View: p.View}
			continue
		}
		p.inFlight += ep.rows
		if ep.last {
			p.Chunks[ep.chunk].Done = true
			p.Chunks[ep.chunk].Rows = p.inFlight
			p.RowsDone += p.inFlight
			p.inFlight = 0
			touched[ep.table] = tableProgress{RowsDone: p.RowsDone, RowsEstimated: p.RowsEstimated, Chunks: append([]chunkState(nil), p.Chunks...), View: p.View}
		}
	}
	s.parts = s.parts[n:]
	s.mu.Unlock()
	for id, p := range touched {
		if err := s.saveProgress(ctx, id, &p); err != nil {
			return fmt.Errorf("save snapshot progress of %s: %w", id, err)
		}
	}
	return nil
}

type snapPart struct {
	table   *tableInfo
	chunk   int
	changes []schema.Change
	last    bool
	cursor  []string
}

// snapshot reads every planned chunk and emits the rows in order of completion.
// snapshotPartRows bounds the rows of one snapshot part (a batch the source
// emits), so that memory in flight stays a few MiB per worker.
const snapshotPartRows = 2048

func (s *Source) snapshot(ctx context.Context, plan *snapshotPlan) error {
	if !snapshotNameRE.MatchString(plan.snapshot) {
		return fmt.Errorf("unexpected snapshot name %q", plan.snapshot)
	}
	workers := min(s.cfg.SnapshotWorkers, len(plan.chunks))
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan planChunk)
	parts := make(chan snapPart)
	var imported, running sync.WaitGroup
	imported.Add(workers)
	running.Add(workers)
	for range workers {
		g.Go(func() error {
			defer running.Done()
			return s.snapshotWorker(gctx, plan.snapshot, &imported, work, parts)
		})
	}
	g.Go(func() error {
		imported.Wait()
		if plan.exported != nil {
			// every worker holds the snapshot now; release the exporter
			err := plan.exported.Close(gctx)
			plan.exported = nil
			if err != nil && gctx.Err() == nil {
				s.log.Debug("close snapshot exporter", "error", err)
			}
		}
		defer close(work)
		for _, ch := range plan.chunks {
			select {
			case work <- ch:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		running.Wait()
		close(parts)
		return nil
	})
	part := uint64(0)
	for p := range parts {
		b := schema.Batch{Checkpoint: snapshotPos(plan.consistent, s.attempt, part, math.MaxUint64)}
		v, err := s.announce(gctx, &b, p.table, snapshotPos(plan.consistent, s.attempt, part, 0))
		if err != nil {
			return err
		}
		if s.resumed {
			s.noteView(p.table, v)
		}
		for i := range p.changes {
			p.changes[i].Pos = snapshotPos(plan.consistent, s.attempt, part, uint64(i))
			p.changes[i].Version = v
		}
		b.Changes = p.changes
		s.mu.Lock()
		s.parts = append(s.parts, emittedPart{part: part, table: p.table.ID, chunk: p.chunk, rows: int64(len(p.changes)), last: p.last, cursor: p.cursor})
		s.mu.Unlock()
		if err := s.emit(gctx, b, nil, nil); err != nil {
			break
		}
		part++
	}
	return g.Wait()
}

func (s *Source) snapshotWorker(ctx context.Context, snapshot string, imported *sync.WaitGroup, work <-chan planChunk, parts chan<- snapPart) error {
	var once sync.Once
	done := func() { once.Do(imported.Done) }
	defer done()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
		return fmt.Errorf("import snapshot %s: %w", snapshot, err)
	}
	done()
	for ch := range work {
		if err := s.readChunk(ctx, tx, ch, parts); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readChunk(ctx context.Context, tx pgx.Tx, ch planChunk, parts chan<- snapPart) error {
	if ch.byKey {
		return s.readByKey(ctx, tx, ch, parts)
	}
	t := ch.table
	cols := t.quotedColumns()
	q := fmt.Sprintf("SELECT %s FROM ONLY %s WHERE ctid >= '(%d,0)'::tid", strings.Join(cols, ", "), ch.rel, ch.lo)
	if ch.hi > 0 {
		q += fmt.Sprintf(" AND ctid < '(%d,0)'::tid", ch.hi)
	}
	rows, err := tx.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("read %s: %w", t.ID, err)
	}
	defer rows.Close()
	keyIdx := t.keyIndexes()
	send := func(changes []schema.Change, last bool) error {
		select {
		case parts <- snapPart{table: t, chunk: ch.idx, changes: changes, last: last}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// parts stay small: workers, the parts queue and the runner's queues each
	// hold some, and the runner coalesces them into write batches anyway
	limit := min(s.deps.MaxChanges, snapshotPartRows)
	batch := make([]schema.Change, 0, limit)
	for rows.Next() {
		after, err := s.types.decodeRow(t, rows.RawValues())
		if err != nil {
			return permanent(fmt.Errorf("snapshot of %s, %w", t.ID, err))
		}
		key := make(schema.Row, len(keyIdx))
		for i, k := range keyIdx {
			key[i] = after[k]
		}
		batch = append(batch, schema.Change{Op: schema.OpSnapshot, Table: t.ID, Key: key, After: after})
		if len(batch) >= limit {
			if err := send(batch, false); err != nil {
				return err
			}
			batch = make([]schema.Change, 0, limit)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.ID, err)
	}
	return send(batch, true)
}

// keyIndexes returns the column indexes of the primary key.
func (t *tableInfo) keyIndexes() []int {
	out := make([]int, 0, len(t.PK))
	for _, k := range t.PK {
		for i, c := range t.Columns {
			if c.Name == k {
				out = append(out, i)
			}
		}
	}
	return out
}

// announce puts the table's shape into b the first time it appears after Open,
// registered in the schema registry at pos. It returns the version in force.
func (s *Source) announce(ctx context.Context, b *schema.Batch, t *tableInfo, pos offsets.Position) (schema.Version, error) {
	if v, ok := s.announced[t.ID]; ok {
		return v, nil
	}
	return s.observe(ctx, b, t.shape(s.types), pos)
}

// noteView records that a resumed snapshot encodes t's rows in version v,
// registered from the catalog at catalogLSN, which the stream (replaying from
// the consistent point) has yet to reach. It is saved with the table's
// progress when the part is acked.
func (s *Source) noteView(t *tableInfo, v schema.Version) {
	if t.view != nil && t.view.LSN == s.catalogLSN && t.view.Version == v && t.view.Read == s.snapshotLSN {
		return
	}
	view := &catalogView{LSN: s.catalogLSN, Version: v, Read: s.snapshotLSN}
	s.mu.Lock()
	if p := s.progress[t.ID]; p != nil {
		p.View = view
	}
	s.mu.Unlock()
	t.view = view
}

// observe records shape at pos and adds the resulting delta (or an announcement
// of the unchanged shape) to b.
func (s *Source) observe(ctx context.Context, b *schema.Batch, shape schema.Table, pos offsets.Position) (schema.Version, error) {
	d := schema.Delta{Table: shape, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}
	d.Table.Version = 1
	if s.deps.Schema != nil {
		v, delta, err := s.deps.Schema.Observe(ctx, shape, pos)
		if err != nil {
			return 0, err
		}
		if delta != nil {
			d = *delta
			if len(d.Changes) > 0 && d.Changes[0].Op != schema.CreateTable {
				s.log.Info("table version in force", "table", shape.ID.String(), "version", d.Table.Version, "from", d.From,
					"position", Describe(pos), "changes", schema.DescribeChanges(d.Changes))
			}
		} else if s.announced[shape.ID] == v.Version {
			return v.Version, nil
		} else {
			d = schema.Delta{Table: v, From: v.Version}
		}
	} else if v, ok := s.announced[shape.ID]; ok {
		return v, nil
	}
	b.Deltas = append(b.Deltas, d)
	s.announced[shape.ID] = d.Table.Version
	return d.Table.Version, nil
}

// readByKey reads a whole table in key order, page by page, within the worker's
// snapshot; each page is a part whose last key is saved when it is acked.
func (s *Source) readByKey(ctx context.Context, tx pgx.Tx, ch planChunk, parts chan<- snapPart) error {
	cursor := ch.cursor
	for {
		rows, last, err := s.selectChunk(ctx, tx, ch.table, cursor)
		if err != nil {
			return err
		}
		end := len(rows) < s.cfg.SnapshotChunkRows
		if last == nil {
			last = cursor
		}
		select {
		case parts <- snapPart{table: ch.table, chunk: ch.idx, changes: rows, last: end, cursor: last}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if end {
			return nil
		}
		cursor = last
	}
}

// currentLSN returns the server's current WAL position (its replay position
// on a standby).
func currentLSN(ctx context.Context, pool *pgxpool.Pool) (pglogrepl.LSN, error) {
	var text string
	err := pool.QueryRow(ctx, `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`).Scan(&text)
	if err != nil {
		return 0, fmt.Errorf("read the current WAL position: %w", err)
	}
	return pglogrepl.ParseLSN(text)
}

// insertLSN returns the server's WAL insert position (its replay position on
// a standby): every commit a snapshot taken before sees ends below it. The
// write position (currentLSN) can lag behind commits made with
// synchronous_commit off.
func insertLSN(ctx context.Context, pool *pgxpool.Pool) (pglogrepl.LSN, error) {
	var text string
	err := pool.QueryRow(ctx, `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text`).Scan(&text)
	if err != nil {
		return 0, fmt.Errorf("read the WAL insert position: %w", err)
	}
	return pglogrepl.ParseLSN(text)
}

// loadViews gives each table the catalog view a resumed snapshot saved with
// its progress, for the stream to replay the commits before it in that
// version (an attempt restarted before the stream got there needs it too).
func (s *Source) loadViews(saved map[schema.TableID]sources.SnapshotProgress) {
	for id, t := range s.byID {
		t.view = nil
		var p tableProgress
		if sp, ok := saved[id]; ok && json.Unmarshal(sp.State, &p) == nil {
			t.view = p.View
		}
	}
}
