package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

type relState struct {
	table   *tableInfo
	names   []string
	oids    []uint32
	version schema.Version
	keyIdx  []int
	// adapt, when set, re-encodes the rows of a commit older than the table's
	// catalog view in the view's version (historic)
	adapt *adaptation
	// keyTypes are the key columns' SQL types, once fillCurrent needed them
	keyTypes []string
}

type txnState struct {
	open   bool
	commit pglogrepl.LSN // commit record LSN (BEGIN's final LSN)
	seq    uint64
	ts     time.Time
	xid    uint32
}

// streamer is the state of the goroutine that owns the replication connection.
type streamer struct {
	s        *Source
	conn     *pgconn.PgConn
	received pglogrepl.LSN // highest WAL position seen (reported as "write")
	// serverEnd is the server's WAL end as it last said (every message
	// carries it): far ahead of received, the stream drains a backlog
	serverEnd pglogrepl.LSN
	lastCkpt  pglogrepl.LSN // end LSN of the newest checkpoint emitted
	rels      map[uint32]*relState
	txn       txnState
	cur       schema.Batch
	curBytes  int
	curStart  time.Time
	byKey     map[string]int // table and key (rowID) → index in cur.Changes, for unchanged-TOAST back-fill
	status    *time.Ticker

	// protocol 2 (stream_in_progress)
	v2       bool
	inStream bool   // between StreamStart and StreamStop
	topXid   uint32 // the streamed transaction of the current chunk
	spool    *spool
	// recent are the commits read lately, while incremental snapshots run
	recent *recentCommits
}

// stream replicates from start until ctx ends or it fails. With
// trackCommits it remembers recent commits, for incremental snapshots
// (recentCommits).
func (s *Source) stream(ctx context.Context, start pglogrepl.LSN, trackCommits bool) error {
	conn, err := s.replicationConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	args := []string{"publication_names '" + strings.ReplaceAll(s.cfg.Publication, "'", "''") + "'", "messages 'true'"}
	if s.cfg.StreamInProgress {
		args = append(args, "proto_version '2'", "streaming 'on'")
	} else {
		args = append(args, "proto_version '1'")
	}
	if err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args}); err != nil {
		return classifyStart(s.cfg.Slot, fmt.Errorf("start replication on slot %s at %s: %w", s.cfg.Slot, start, err))
	}
	st := &streamer{s: s, conn: conn, received: start, lastCkpt: start, rels: map[uint32]*relState{}, byKey: map[string]int{},
		status: time.NewTicker(s.cfg.status), v2: s.cfg.StreamInProgress}
	if trackCommits {
		st.recent = &recentCommits{}
	}
	defer st.status.Stop()
	if st.v2 {
		if st.spool, err = newSpool(s.cfg.SpoolDir); err != nil {
			return err
		}
		defer st.spool.close(s.cfg.SpoolDir == "")
	}
	s.log.Info("streaming", "start_lsn", start.String())
	return st.loop(ctx)
}

func (st *streamer) sendStatus(ctx context.Context) error {
	durable := pglogrepl.LSN(st.s.durable.Load())
	write := max(st.received, durable)
	// Every field explicit: pglogrepl fills a zero flush position with the write
	// position, which would confirm WAL that is not durable downstream.
	// With a WAL sample pending, the server is asked to answer at once: its
	// keepalive carries how far it has decoded.
	_, _, probing := st.s.probe.Pending()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: durable, WALApplyPosition: durable, ClientTime: time.Now(),
		ReplyRequested: probing})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	return nil
}

// ready reports whether the batch being built should be handed over now.
// idleFlush is how long a caught-up stream waits for the server's next
// message before it hands over a batch that ends on a checkpoint: the server
// has nothing more ready. While it drains a backlog (the server's WAL end more
// than drainSlack ahead), batches grow up to half of max_changes or max_wait,
// as the gaps between the server's decoded transactions are no sign of the
// end.
const (
	idleFlush  = 2 * time.Millisecond
	drainSlack = 256 << 10
)

// caughtUp reports whether the stream has read about all the WAL the server
// has written.
func (st *streamer) caughtUp() bool { return st.serverEnd <= st.received+drainSlack }

func (st *streamer) ready() bool {
	if st.cur.Checkpoint == nil {
		return false
	}
	return len(st.cur.Changes) >= st.s.deps.MaxChanges/2 || time.Since(st.curStart) >= st.s.deps.MaxWait
}

// flush hands the batch being built to Read. While the engine is behind it keeps
// sending status updates, so wal_sender_timeout never fires during back-pressure.
func (st *streamer) flush(ctx context.Context) error {
	if len(st.cur.Changes) == 0 && len(st.cur.Deltas) == 0 && st.cur.Checkpoint == nil && st.cur.Current.IsZero() {
		return nil
	}
	b := st.cur
	st.cur, st.curBytes, st.curStart = schema.Batch{}, 0, time.Time{}
	clear(st.byKey)
	return st.s.emit(ctx, b, st.status.C, func() error { return st.sendStatus(ctx) })
}

func (st *streamer) loop(ctx context.Context) error {
	for {
		select {
		case <-st.status.C:
			if err := st.sendStatus(ctx); err != nil {
				return err
			}
		default:
		}
		deadline := time.Now().Add(st.s.cfg.status)
		if st.cur.Checkpoint != nil {
			deadline = st.curStart.Add(st.s.deps.MaxWait)
			// caught up, a batch that can go waits for more only while the
			// server keeps sending: idleFlush of silence and it goes
			if idle := time.Now().Add(idleFlush); st.caughtUp() && idle.Before(deadline) {
				deadline = idle
			}
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := st.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if st.cur.Checkpoint != nil && (st.caughtUp() || st.ready()) {
					if err := st.flush(ctx); err != nil {
						return err
					}
				}
				continue
			}
			return fmt.Errorf("receive from slot %s: %w", st.s.cfg.Slot, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := st.copyData(ctx, m.Data); err != nil {
				return err
			}
			if err := st.current(ctx); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return classifyStart(st.s.cfg.Slot, pgconn.ErrorResponseToPgError(m))
		}
	}
}

// current says the source is caught up when, between transactions, the stream
// has reached the WAL end the server had flushed at a sampled instant: every
// transaction committed before it has been read. The word rides on the batch
// being built, or goes alone.
func (st *streamer) current(ctx context.Context) error {
	at, lsn, ok := st.s.probe.Pending()
	if !ok || st.txn.open || st.inStream || st.received < lsn {
		return nil
	}
	st.s.probe.Reached(at)
	// the next sample comes within a status interval and is answered within
	// another; a third is slack
	st.cur.Current = schema.Current{At: at, Until: time.Now().Add(3 * st.s.cfg.status)}
	if len(st.cur.Changes) == 0 && len(st.cur.Deltas) == 0 {
		if st.cur.Checkpoint == nil {
			return st.flush(ctx)
		}
		if st.curStart.IsZero() {
			st.curStart = time.Now()
		}
	}
	return nil
}

func (st *streamer) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		st.received = max(st.received, pkm.ServerWALEnd)
		st.serverEnd = max(st.serverEnd, pkm.ServerWALEnd)
		// Nothing in flight (no open transaction, nothing buffered, everything
		// emitted is durable): the server's position is safe to checkpoint, so
		// WAL is released even when the published tables are quiet.
		if !st.txn.open && len(st.cur.Changes) == 0 && st.cur.Checkpoint == nil &&
			pglogrepl.LSN(st.s.durable.Load()) >= st.lastCkpt && pkm.ServerWALEnd > st.lastCkpt {
			// The server has read up to walEnd: every transaction whose commit
			// record starts before it was sent, one whose commit record starts
			// at walEnd was not (it comes next). The checkpoint sorts below that
			// one's changes, (1, walEnd, seq): sinks skip what sorts at or below
			// their stored position, and (1, walEnd, Max) dropped it.
			st.cur.Checkpoint = streamCheckpoint(pkm.ServerWALEnd-1, pkm.ServerWALEnd)
			st.lastCkpt = pkm.ServerWALEnd
			if err := st.flush(ctx); err != nil {
				return err
			}
		}
		if pkm.ReplyRequested {
			return st.sendStatus(ctx)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse xlogdata: %w", err)
		}
		st.received = max(st.received, x.WALStart+pglogrepl.LSN(len(x.WALData)))
		st.serverEnd = max(st.serverEnd, x.ServerWALEnd)
		if st.v2 {
			return st.messageV2(ctx, x)
		}
		msg, err := pglogrepl.Parse(x.WALData)
		if err != nil {
			return permanent(fmt.Errorf("decode pgoutput message at %s: %w", x.WALStart, err))
		}
		return st.message(ctx, msg)
	}
	return nil
}

// messageV2 handles protocol 2: chunks of in-progress transactions go to the
// spool; everything else is handled as in protocol 1.
func (st *streamer) messageV2(ctx context.Context, x pglogrepl.XLogData) error {
	msg, err := pglogrepl.ParseV2(x.WALData, st.inStream)
	if err != nil {
		return permanent(fmt.Errorf("decode pgoutput message at %s: %w", x.WALStart, err))
	}
	switch m := msg.(type) {
	case *pglogrepl.StreamStartMessageV2:
		st.inStream, st.topXid = true, m.Xid
		st.s.streamedChunks.Add(1)
		return nil
	case *pglogrepl.StreamStopMessageV2:
		st.inStream = false
		return nil
	case *pglogrepl.StreamAbortMessageV2:
		return st.spool.abort(m.Xid, m.SubXid)
	case *pglogrepl.StreamCommitMessageV2:
		return st.streamCommit(ctx, m)
	}
	if !st.inStream {
		return st.message(ctx, unwrapV2(msg))
	}
	inner := unwrapV2(msg)
	// a Relation message is spooled with the transaction's changes and read
	// when it commits, at its position there: read now, it would register a
	// version at a position of this session only (the last checkpoint), below
	// rows the added column's value of older rows must reach, and elsewhere in
	// another session; and an aborted transaction's would count
	if _, ok := inner.(*pglogrepl.LogicalDecodingMessage); ok {
		return nil
	}
	// the buffer is reused by the next receive: the spool copies it
	return st.spool.add(st.topXid, streamXid(msg), x.WALData)
}

// streamCommit replays a streamed transaction as one transaction.
func (st *streamer) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	st.txn = txnState{open: true, commit: m.CommitLSN, ts: m.CommitTime, xid: m.Xid}
	// the relations the transaction's Relation messages set stay: once it
	// commits, the server counts their schema as sent and sends none before
	// later transactions' changes
	if err := st.spool.replay(ctx, m.Xid, func(msg pglogrepl.Message) error { return st.message(ctx, msg) }); err != nil {
		return err
	}
	return st.message(ctx, &pglogrepl.CommitMessage{CommitLSN: m.CommitLSN, TransactionEndLSN: m.TransactionEndLSN, CommitTime: m.CommitTime})
}

func (st *streamer) message(ctx context.Context, msg pglogrepl.Message) error {
	if err := st.handle(ctx, msg); err != errSkip {
		return err
	}
	return nil
}

func (st *streamer) handle(ctx context.Context, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		st.txn = txnState{open: true, commit: m.FinalLSN, ts: m.CommitTime, xid: m.Xid}
	case *pglogrepl.RelationMessage:
		return st.relation(ctx, m)
	case *pglogrepl.InsertMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		after, err := st.tuple(rel, m.Tuple, nil)
		if err != nil {
			return err
		}
		return st.add(ctx, rel, schema.OpInsert, after, nil, after)
	case *pglogrepl.UpdateMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		var before schema.Row
		if m.OldTuple != nil {
			if before, err = st.tuple(rel, m.OldTuple, nil); err != nil {
				return err
			}
		}
		var fill schema.Row
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
			fill = before // REPLICA IDENTITY FULL: the old image has every value
		}
		after, err := st.tuple(rel, m.NewTuple, fill)
		if err != nil {
			return err
		}
		moved := before != nil && keyString(rel, before) != keyString(rel, after)
		if v := rel.table.view; moved || (v != nil && st.txn.commit < v.Read) {
			// the primary key changed: the old key is gone, and the values
			// the update did not send are no sink's to find under the new one;
			// or a resumed snapshot may have missed the row (catalogView.Read)
			if err := st.fillCurrent(ctx, rel, before, after, m.NewTuple); err != nil {
				return err
			}
		}
		if moved {
			var image schema.Row
			if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
				image = before // a key-only old tuple is not a before image
			}
			if err := st.add(ctx, rel, schema.OpDelete, before, image, nil); err != nil {
				return err
			}
		}
		if m.OldTupleType != pglogrepl.UpdateMessageTupleTypeOld {
			before = nil // a key-only old tuple is not a before image
		}
		return st.add(ctx, rel, schema.OpUpdate, after, before, after)
	case *pglogrepl.DeleteMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		old, err := st.tuple(rel, m.OldTuple, nil)
		if err != nil {
			return err
		}
		if m.OldTupleType != pglogrepl.DeleteMessageTupleTypeOld {
			// only the replica identity key: a key, not a before image
			return st.add(ctx, rel, schema.OpDelete, old, nil, nil)
		}
		return st.add(ctx, rel, schema.OpDelete, old, old, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := st.rel(id)
			if err != nil {
				return err
			}
			switch st.s.cfg.truncatePolicy(rel.table.ID) {
			case "ignore":
				continue
			case "halt":
				return permanent(fmt.Errorf("TRUNCATE of %s in transaction %d at %s and the truncate policy is halt: decide what the destination should do, then set truncate (or truncate_tables[%s]) to propagate or ignore and resume", rel.table.ID, st.txn.xid, st.txn.commit, rel.table.ID))
			}
			c := schema.Change{Op: schema.OpTruncate, Table: rel.table.ID, Version: rel.version, Pos: streamPos(st.txn.commit, st.txn.seq),
				TxID: fmt.Sprint(st.txn.xid), CommitTS: st.txn.ts}
			st.txn.seq++
			if err := st.append(ctx, c); err != nil {
				return err
			}
		}
	case *pglogrepl.CommitMessage:
		if st.recent != nil {
			st.recent.add(st.txn.xid, st.txn.commit)
		}
		st.cur.Checkpoint = streamCheckpoint(st.txn.commit, m.TransactionEndLSN)
		if st.curStart.IsZero() {
			st.curStart = time.Now()
		}
		st.lastCkpt = m.TransactionEndLSN
		st.txn.open = false
		st.s.mu.Lock()
		st.s.lastTS = m.CommitTime
		st.s.mu.Unlock()
		if st.ready() {
			return st.flush(ctx)
		}
	case *pglogrepl.LogicalDecodingMessage:
		if c := string(m.Content); m.Prefix == watermarkPrefix && (strings.HasPrefix(c, "H "+st.s.cfg.Slot+"/") || strings.HasPrefix(c, "L "+st.s.cfg.Slot+"/")) {
			return st.watermark(ctx, string(m.Content))
		}
		// heartbeats carry nothing; their commit is the checkpoint
	case *pglogrepl.OriginMessage, *pglogrepl.TypeMessage:
	}
	return nil
}

// errSkip marks a change of a table the pipeline no longer replicates.
var errSkip = fmt.Errorf("skip")

func (st *streamer) rel(id uint32) (*relState, error) {
	rel, ok := st.rels[id]
	if !ok {
		return nil, permanent(fmt.Errorf("pgoutput sent a row of relation %d before its Relation message", id))
	}
	if rel.table == nil {
		return nil, errSkip
	}
	return rel, nil
}

// relation maps a Relation message to a table version: it is diffed against the
// version in force in the registry and its delta travels before the next rows.
func (st *streamer) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	t, ok := st.s.tables[m.RelationID]
	if !ok {
		// not a configured table (a partition published on its own, say): resolve
		// by name so that a table recreated under a new OID is followed
		t, ok = st.s.byID[schema.TableID{Namespace: m.Namespace, Name: m.RelationName}]
		if !ok {
			// a table removed from the pipeline: its changes still in the WAL are skipped
			st.rels[m.RelationID] = &relState{}
			return nil
		}
	}
	rel := &relState{table: t}
	var oids []uint32
	notNull := map[string]bool{}
	for _, c := range t.Columns {
		notNull[c.Name] = c.NotNull
	}
	shape := schema.Table{ID: t.ID}
	for _, c := range m.Columns {
		rel.names = append(rel.names, c.Name)
		rel.oids = append(rel.oids, c.DataType)
		oids = append(oids, c.DataType)
	}
	if err := st.s.types.load(ctx, st.s.pool, oids...); err != nil {
		return err
	}
	existing, err := existingValues(ctx, st.s.log, st.s.pool, st.s.types, m.RelationID, rel.names, rel.oids)
	if err != nil {
		return err
	}
	for i, c := range m.Columns {
		shape.Columns = append(shape.Columns, schema.Column{Name: c.Name, Type: st.s.types.columnType(rel.oids[i], c.TypeModifier), Nullable: !notNull[c.Name],
			Existing: existing[c.Name]})
	}
	for _, k := range t.PK {
		for i, n := range rel.names {
			if n == k {
				shape.PrimaryKey = append(shape.PrimaryKey, k)
				rel.keyIdx = append(rel.keyIdx, i)
			}
		}
	}
	if len(rel.keyIdx) == 0 {
		return permanent(fmt.Errorf("table %s has none of its primary key columns (%s) any more: a primary key change needs a resync", t.ID, strings.Join(t.PK, ", ")))
	}
	if v, a, ok, err := st.historic(ctx, t, shape); err != nil {
		return err
	} else if ok {
		shape, rel.adapt = v, a
	}
	pos := streamPos(st.txn.commit, st.txn.seq)
	if _, known := st.s.announced[t.ID]; known && len(st.cur.Changes) > 0 {
		// deltas go before the rows that need them: hand over what came before
		if err := st.flush(ctx); err != nil {
			return err
		}
	}
	v, err := st.s.observe(ctx, &st.cur, shape, pos)
	if err != nil {
		return err
	}
	rel.version = v
	st.rels[m.RelationID] = rel
	return nil
}

// tuple decodes a tuple; unchanged TOAST columns take their value from fill (the
// old image) or from an earlier change of the same row in this batch, and are
// marked unchanged otherwise (never NULL).
func (st *streamer) tuple(rel *relState, td *pglogrepl.TupleData, fill schema.Row) (schema.Row, error) {
	if td == nil {
		return nil, nil
	}
	row := make(schema.Row, len(td.Columns))
	var unchanged bool
	for i, c := range td.Columns {
		if i >= len(rel.names) {
			return nil, permanent(fmt.Errorf("table %s: tuple has more columns than its Relation message", rel.table.ID))
		}
		row[i].Name = rel.names[i]
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
		case pglogrepl.TupleDataTypeToast:
			row[i].Value = schema.Unchanged()
			if v, ok := fill.Get(rel.names[i]); ok && v.Kind() != schema.KindUnchanged {
				row[i].Value = v
			} else {
				unchanged = true
			}
		case pglogrepl.TupleDataTypeText:
			v, err := st.s.types.decodeText(rel.oids[i], c.Data)
			if err != nil {
				return nil, permanent(fmt.Errorf("table %s, column %s: %w", rel.table.ID, rel.names[i], err))
			}
			row[i].Value = v
		default:
			return nil, permanent(fmt.Errorf("table %s, column %s: unexpected tuple data type %q", rel.table.ID, rel.names[i], c.DataType))
		}
	}
	if unchanged {
		if j, ok := st.byKey[rowID(rel, keyString(rel, row))]; ok {
			prev := st.cur.Changes[j].After
			for i := range row {
				if row[i].Value.Kind() == schema.KindUnchanged {
					if v, ok := prev.Get(row[i].Name); ok && v.Kind() != schema.KindUnchanged {
						row[i].Value = v
					}
				}
			}
		}
	}
	return row, nil
}

// fillCurrent gives the unchanged (TOASTed, not sent) columns of an update
// whose destination row may not hold them their values: from an earlier
// change of the row in this batch, else from the source table as it is now.
// That is an update that moved a row to a new primary key (a sink could only
// look under the new key, where nothing is stored yet), or one replayed from
// before a resumed snapshot's read, which may have missed the row
// (catalogView.Read). A value read now is the row's value at this change or a
// newer one; a newer one is also sent by the change that made it, so the
// destination ends up exact. A row gone since (deleted or moved again) keeps
// the markers: its later changes overwrite or remove it.
func (st *streamer) fillCurrent(ctx context.Context, rel *relState, before, after schema.Row, newTuple *pglogrepl.TupleData) error {
	missing := func() []int {
		var out []int
		for i := range after {
			if after[i].Value.Kind() == schema.KindUnchanged {
				out = append(out, i)
			}
		}
		return out
	}
	if len(missing()) == 0 {
		return nil
	}
	prevKey := after
	if before != nil {
		prevKey = before
	}
	if j, ok := st.byKey[rowID(rel, keyString(rel, prevKey))]; ok {
		prev := st.cur.Changes[j].After
		for _, i := range missing() {
			if v, ok := prev.Get(after[i].Name); ok && v.Kind() != schema.KindUnchanged {
				after[i].Value = v
			}
		}
	}
	miss := missing()
	if len(miss) == 0 {
		return nil
	}
	sel := make([]string, len(miss))
	for n, i := range miss {
		sel[n] = pgx.Identifier{rel.names[i]}.Sanitize()
	}
	if rel.keyTypes == nil {
		for _, k := range rel.keyIdx {
			var typ string
			if err := st.s.pool.QueryRow(ctx, `SELECT format_type($1, NULL)`, rel.oids[k]).Scan(&typ); err != nil {
				return classify(fmt.Errorf("type of %s.%s: %w", rel.table.ID, rel.names[k], err))
			}
			rel.keyTypes = append(rel.keyTypes, typ)
		}
	}
	where := make([]string, len(rel.keyIdx))
	args := []any{pgx.QueryResultFormats{pgx.TextFormatCode}}
	for n, k := range rel.keyIdx {
		where[n] = fmt.Sprintf("%s = $%d::text::%s", pgx.Identifier{rel.names[k]}.Sanitize(), n+1, rel.keyTypes[n])
		args = append(args, string(newTuple.Columns[k].Data))
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(sel, ", "), quoted(rel.table.ID), strings.Join(where, " AND "))
	rows, err := st.s.pool.Query(ctx, q, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42703" || pe.Code == "42P01") {
		// a column dropped or renamed since (or the table): its value for
		// this row is history the table no longer has; later changes of the
		// row carry what it holds now
		st.s.log.Warn("an unchanged TOAST value of a replayed update cannot be read from the table any more; it stays unknown for this change",
			"table", rel.table.ID.String(), "error", pe.Message)
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("read the unchanged values of a row of %s: %w", rel.table.ID, err))
	}
	defer rows.Close()
	if !rows.Next() {
		return rows.Err()
	}
	raw := rows.RawValues()
	for n, i := range miss {
		if raw[n] == nil {
			after[i].Value = schema.Null()
			continue
		}
		v, err := st.s.types.decodeText(rel.oids[i], raw[n])
		if err != nil {
			return permanent(fmt.Errorf("table %s, column %s: %w", rel.table.ID, rel.names[i], err))
		}
		after[i].Value = v
	}
	return rows.Err()
}

// rowID names a row of the batch across its tables: two tables' rows may
// have the same key (and columns of the same names).
func rowID(rel *relState, key string) string { return rel.table.ID.String() + "\x00" + key }

func keyString(rel *relState, row schema.Row) string {
	key := make(schema.Row, 0, len(rel.keyIdx))
	for _, k := range rel.keyIdx {
		if k < len(row) {
			key = append(key, row[k])
		}
	}
	return string(key.AppendJSON(nil))
}

// add appends a row change of the open transaction; the key is taken from keyRow.
func (st *streamer) add(ctx context.Context, rel *relState, op schema.Op, keyRow, before, after schema.Row) error {
	key := make(schema.Row, 0, len(rel.keyIdx))
	for _, k := range rel.keyIdx {
		key = append(key, keyRow[k])
	}
	if rel.adapt != nil {
		before, after = rel.adapt.row(before), rel.adapt.row(after)
	}
	c := schema.Change{Op: op, Table: rel.table.ID, Version: rel.version, Pos: streamPos(st.txn.commit, st.txn.seq),
		TxID: fmt.Sprint(st.txn.xid), CommitTS: st.txn.ts, Key: key, Before: before, After: after}
	st.txn.seq++
	k := string(key.AppendJSON(nil))
	if after != nil {
		st.byKey[rowID(rel, k)] = len(st.cur.Changes)
	}
	st.s.wm.changed(rel.table.ID, k)
	return st.append(ctx, c)
}

// watermark handles a watermark of this slot's incremental snapshot: at a high
// watermark the chunk's rows not changed since the low one are emitted here, in
// the watermark's transaction.
func (st *streamer) watermark(ctx context.Context, content string) error {
	win, rows := st.s.wm.mark(content, st.txn.commit)
	if win == nil {
		return nil
	}
	if st.recent == nil || st.recent.missed(win) {
		// the chunk's read did not see a change the stream passed before the
		// low watermark (see recentCommits): read it again
		win.redo = true
		close(win.done)
		return nil
	}
	t := st.s.byID[win.table]
	v, err := st.s.announce(ctx, &st.cur, t, streamPos(st.txn.commit, st.txn.seq))
	if err != nil {
		return err
	}
	for i := range rows {
		rows[i].Pos, rows[i].Version = streamPos(st.txn.commit, st.txn.seq), v
		rows[i].TxID, rows[i].CommitTS = fmt.Sprint(st.txn.xid), st.txn.ts
		st.txn.seq++
		if err := st.append(ctx, rows[i]); err != nil {
			return err
		}
	}
	if win.end && win.since != nil {
		// the resync's last chunk: what it did not read and the stream did not
		// change since it began is gone from the source
		sw := schema.Change{Op: schema.OpSweep, Table: win.table, Version: v, Pos: streamPos(st.txn.commit, st.txn.seq),
			TxID: fmt.Sprint(st.txn.xid), CommitTS: st.txn.ts, Since: win.since}
		st.txn.seq++
		if err := st.append(ctx, sw); err != nil {
			return err
		}
	}
	st.s.wm.mu.Lock()
	st.s.wm.acks = append(st.s.wm.acks, incAck{commit: st.txn.commit, table: win.table, cursor: win.last, rows: int64(len(rows)), end: win.end, since: win.since})
	st.s.wm.mu.Unlock()
	close(win.done)
	return nil
}

func (st *streamer) append(ctx context.Context, c schema.Change) error {
	if st.curStart.IsZero() {
		st.curStart = time.Now()
	}
	st.curBytes += c.Size()
	st.cur.Changes = append(st.cur.Changes, c)
	if len(st.cur.Changes) >= st.s.deps.MaxChanges || (st.s.deps.MaxBytes > 0 && st.curBytes >= st.s.deps.MaxBytes) {
		// A transaction larger than a batch goes out in parts; the checkpoint
		// (if any) is the last transaction completed before it.
		return st.flush(ctx)
	}
	return nil
}

// adaptation re-encodes a row of an older shape of a table in a newer version.
type adaptation struct {
	drop  map[string]bool // columns the version no longer has
	extra schema.Row      // columns added since, with what the rows hold in them
}

func (a *adaptation) row(r schema.Row) schema.Row {
	if r == nil {
		return nil
	}
	out := make(schema.Row, 0, len(r)+len(a.extra))
	for _, f := range r {
		if !a.drop[f.Name] {
			out = append(out, f)
		}
	}
	return append(out, a.extra...)
}

// historic decides how to encode the changes of a Relation message (shape)
// of a commit before the table's catalog view (catalogView): a resumed
// snapshot registered the table as it is now, and the destination has that
// shape. When the message shows an older shape that the view's version holds
// every row of exactly (columns dropped since are left out; a column added
// since holds, in rows from before it, its Existing value: the DEFAULT the
// ADD COLUMN gave them, or NULL), the changes are encoded in the view's
// version; later changes of the same rows follow and carry their newer
// values. Otherwise (a type changed since, an added column whose value for
// older rows is unknown) the shape is registered as usual: the destination
// goes through those versions again, and an unknown value is held by the
// schema-change policy.
func (st *streamer) historic(ctx context.Context, t *tableInfo, shape schema.Table) (schema.Table, *adaptation, bool, error) {
	if t.view == nil || st.txn.commit >= t.view.LSN || st.s.deps.Schema == nil {
		return schema.Table{}, nil, false, nil
	}
	v, err := st.s.deps.Schema.At(ctx, t.ID, t.view.Version)
	if err != nil {
		return schema.Table{}, nil, false, err
	}
	if v.SameShape(shape) {
		return schema.Table{}, nil, false, nil
	}
	var why []string
	if !slices.Equal(v.PrimaryKey, shape.PrimaryKey) {
		why = append(why, fmt.Sprintf("primary key (%s) is now (%s)", strings.Join(shape.PrimaryKey, ", "), strings.Join(v.PrimaryKey, ", ")))
	}
	a := &adaptation{drop: map[string]bool{}}
	for _, c := range shape.Columns {
		now, ok := v.Column(c.Name)
		switch {
		case !ok:
			a.drop[c.Name] = true
		case !now.Type.Equal(c.Type):
			why = append(why, fmt.Sprintf("column %s was %s and is now %s", c.Name, c.Type, now.Type))
		}
	}
	for _, c := range v.Columns {
		if _, ok := shape.Column(c.Name); ok {
			continue
		}
		switch e := c.Existing; {
		case e == nil:
			a.extra = append(a.extra, schema.Field{Name: c.Name, Value: schema.Null()})
		case e.Unknown != "":
			why = append(why, fmt.Sprintf("column %s, added since, holds in older rows what cdcd cannot know (%s)", c.Name, e.Unknown))
		default:
			a.extra = append(a.extra, schema.Field{Name: c.Name, Value: e.Value})
		}
	}
	if len(why) > 0 {
		st.s.log.Warn("replaying changes from before the resumed snapshot's catalog read in their own shape; the destination goes through it again",
			"table", t.ID.String(), "commit_lsn", st.txn.commit.String(), "catalog_lsn", t.view.LSN.String(), "reason", strings.Join(why, "; "))
		return schema.Table{}, nil, false, nil
	}
	v.Version = 0
	return v, a, true, nil
}
