package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/dialer"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Source is the Postgres source.
type Source struct {
	cfg  Config
	deps sources.Deps
	log  *slog.Logger
	m    *metrics
	// dial makes the connections of a run (pool and replication), so that
	// Close can cut them (dialer)
	dial *dialer.Tracker

	types  *typeCache
	pool   *pgxpool.Pool
	tables map[uint32]*tableInfo
	byID   map[schema.TableID]*tableInfo

	attempt uint64 // this attempt's number in snapshot positions (the lease epoch)
	out     chan schema.Batch
	errc    chan error
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	wm watermarks // incremental snapshots of added tables
	// resyncing are the tables this attempt resyncs (requested or under way):
	// the initial snapshot leaves them to their incremental read
	resyncing []schema.TableID
	// afterChunkSelect, when set (tests only), runs between an incremental chunk's
	// select and its high watermark: the window where the stream may change rows.
	afterChunkSelect func(ctx context.Context)
	// editSnapshot, when set (tests only), edits the running transactions of
	// an incremental chunk's snapshot.
	editSnapshot func(xip []uint32) []uint32
	durable      atomic.Uint64 // highest LSN acked (durable downstream)
	// probe is the server's flushed WAL end sampled at an instant, pending
	// until the stream reaches it (then the source is caught up as of then)
	probe sources.Probe[pglogrepl.LSN]
	// streamedChunks counts chunks of in-progress transactions received (protocol 2).
	streamedChunks atomic.Int64
	// announced: tables whose shape was put in a batch since Open (run goroutine only).
	announced map[schema.TableID]schema.Version
	// snapshotLSN: a resumed snapshot's read position (catalogView.Read)
	snapshotLSN pglogrepl.LSN
	// resumed: this attempt continues an interrupted snapshot; catalogLSN is
	// the WAL position its catalog read is at least as new as (catalogView)
	resumed    bool
	catalogLSN pglogrepl.LSN

	mu        sync.Mutex
	snapping  bool
	progress  map[schema.TableID]*tableProgress
	parts     []emittedPart // snapshot parts emitted, not yet acked, by part number
	slot      slotInfo
	lastTS    time.Time
	lastPoll  time.Time
	heartbeat time.Time
	snapAt    time.Time
	warnings  []string
	lagBytes  *int64
	lagAt     time.Time
}

// Tables implements sources.TableLister.
func (s *Source) Tables() []schema.TableID { return slices.Clone(s.cfg.tables) }

// New returns a Postgres source for a validated config.
func New(c Config, d sources.Deps) *Source {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxChanges == 0 {
		d.MaxChanges = 10_000
	}
	if d.MaxWait == 0 {
		d.MaxWait = time.Second
	}
	return &Source{cfg: c, deps: d, log: d.Logger.With("component", "source.postgres", "slot", c.Slot), m: newMetrics(d.Metrics), dial: dialer.New()}
}

// Open connects, makes sure the publication and slot exist, and starts the
// snapshot (a fresh pipeline, or one that crashed mid-snapshot) or the stream.
func (s *Source) Open(ctx context.Context, from offsets.Position) (err error) {
	if s.cfg.tables == nil {
		if err := s.cfg.Validate(); err != nil {
			return permanent(err)
		}
	}
	s.attempt = s.deps.Epoch
	if s.attempt == 0 {
		s.attempt = uint64(time.Now().UnixNano()) // no lease given (tests, benchmarks): still unique per attempt
	}
	var cp checkpoint
	if from != nil {
		if cp, err = decodeCheckpoint(from); err != nil {
			return err
		}
	}
	// the same checks as the connection test, so a misconfigured server fails
	// once with what to change instead of retrying driver errors
	if err := s.check(ctx, true); err != nil {
		return err
	}
	s.pool, err = openPool(ctx, s.cfg.DSN, s.cfg.SnapshotWorkers+2, s.dial.DialContext)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.pool.Close()
		}
	}()
	s.types = newTypeCache()
	// the catalog read next is at least as new as this LSN (read first: a DDL
	// committed in between is in the catalog, and its older Relation messages
	// are then merely registered again, as without a view)
	if s.catalogLSN, err = currentLSN(ctx, s.pool); err != nil {
		return err
	}
	tables, err := loadTables(ctx, s.pool, s.cfg.tables, s.types)
	if err != nil {
		return err // a table's problem is permanent, a lost connection is not
	}
	s.tables, s.byID = map[uint32]*tableInfo{}, map[schema.TableID]*tableInfo{}
	relids := make([]uint32, len(tables))
	for i, t := range tables {
		relids[i] = t.OID
	}
	attrs, err := readAttrDefaults(ctx, s.pool, relids)
	if err != nil {
		return classify(err)
	}
	for _, t := range tables {
		s.tables[t.OID], s.byID[t.ID] = t, t
		names, oids := make([]string, len(t.Columns)), make([]uint32, len(t.Columns))
		for i, c := range t.Columns {
			names[i], oids[i] = c.Name, c.Type
		}
		if t.Existing, err = existingFrom(s.log, s.types, t.OID, attrs[t.OID], names, oids); err != nil {
			return err
		}
	}
	// the saved snapshot progress, read once: the catalog views, a resumed
	// snapshot's chunks and the incremental snapshots all come from it
	saved, err := s.savedProgress(ctx)
	if err != nil {
		return err
	}
	s.loadViews(saved)
	missing, err := ensurePublication(ctx, s.pool, s.cfg.Publication, tables)
	if err != nil {
		return err
	}
	slot, err := readSlot(ctx, s.pool, s.cfg.Slot)
	if err != nil {
		return err
	}
	s.announced = map[schema.TableID]schema.Version{}
	s.resumed = false
	s.out, s.errc = make(chan schema.Batch, 2), make(chan error, 1)
	s.mu.Lock()
	s.progress = map[schema.TableID]*tableProgress{}
	s.parts = nil
	s.mu.Unlock()
	s.wm = watermarks{}

	var plan *snapshotPlan
	if len(missing) > 0 && (from == nil || cp.phase == phaseSnapshot) {
		// the initial snapshot (fresh, or resumed under a snapshot exported after
		// this) covers every table: the publication only needs to list them first
		if err := addToPublication(ctx, s.pool, s.cfg.Publication, missing); err != nil {
			return err
		}
		missing = nil
	}
	if from == nil && slot.Exists && slot.WALStatus != "lost" {
		// No committed offset, but the slot exists: an earlier attempt created it and
		// may have written snapshot rows before dying. Recreating the slot would skip
		// the changes made since (a row deleted in between would stay at the
		// destination). Nothing was acked, so the slot's confirmed LSN is still its
		// consistent point: snapshot every table again and stream from there.
		if slot.Plugin != "pgoutput" {
			return permanent(fmt.Errorf("replication slot %s exists with plugin %s: drop it or set another slot name", s.cfg.Slot, slot.Plugin))
		}
		s.log.Info("resuming on the existing slot: snapshotting again from its consistent point", "consistent_point", slot.ConfirmedFlush.String())
		from = snapshotPos(slot.ConfirmedFlush, 0, 0, math.MaxUint64)
		if cp, err = decodeCheckpoint(from); err != nil {
			return err
		}
	}
	switch {
	case from == nil:
		// A fresh pipeline (or a lost slot with nothing committed): create the slot
		// and snapshot consistently with it.
		if slot.Exists {
			s.log.Warn("replacing a lost replication slot before anything was committed; rows an earlier attempt wrote may be stale at the destination")
		}
		// a resync under way read its rows under the old slot: a new one
		// (after the pipeline's resync, with the sink's history reset) reads
		// again from the start
		for _, id := range resyncsUnderWay(saved) {
			sp := saved[id]
			sp.Resync = true
			saved[id] = sp
		}
		s.resyncing = s.resyncRequested(saved)
		plan, err = s.createSlot(ctx, slot.Exists)
		if err != nil {
			return err
		}
		if plan.incremental, err = s.planIncremental(ctx, nil, saved, true); err != nil {
			return err
		}
	default:
		if !slot.Exists {
			return ResyncError{fmt.Errorf("replication slot %s does not exist any more (dropped?): the pipeline cannot resume from %s; resync the pipeline", s.cfg.Slot, Describe(from))}
		}
		if slot.WALStatus == "lost" {
			return ResyncError{fmt.Errorf("replication slot %s was invalidated (wal_status = lost; max_slot_wal_keep_size exceeded?): resync the pipeline", s.cfg.Slot)}
		}
		s.resyncing = append(s.resyncRequested(saved), resyncsUnderWay(saved)...)
		resume := cp.end
		if cp.phase == phaseSnapshot {
			resume = cp.consistent
			s.resumed = true
			if plan, err = s.resumePlan(ctx, cp, saved); err != nil {
				return err
			}
		}
		if slot.ConfirmedFlush > resume {
			return ResyncError{fmt.Errorf("replication slot %s is confirmed up to %s, past this pipeline's checkpoint %s: something else consumed it; changes in between would be lost, so resync the pipeline", s.cfg.Slot, slot.ConfirmedFlush, resume)}
		}
		if plan == nil {
			plan = &snapshotPlan{consistent: resume}
		}
		if plan.incremental, err = s.planIncremental(ctx, missing, saved, false); err != nil {
			return err
		}
	}
	s.durable.Store(uint64(plan.consistent))
	s.mu.Lock()
	s.slot = slot
	s.snapping = len(plan.chunks) > 0
	s.snapAt = time.Time{}
	if s.snapping {
		s.snapAt = time.Now()
	}
	s.lagBytes = nil
	s.probe.Reset()
	s.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.run(runCtx, plan); err != nil && runCtx.Err() == nil {
			select { // the health goroutine may have reported first
			case s.errc <- err:
			case <-runCtx.Done():
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		s.health(runCtx)
	}()
	s.log.Info("source open", "tables", len(tables), "snapshot_chunks", len(plan.chunks), "start_lsn", plan.consistent.String())
	return nil
}

// run performs the snapshot (if any), then streams until ctx ends or it fails.
func (s *Source) run(ctx context.Context, plan *snapshotPlan) error {
	if len(plan.chunks) > 0 {
		if err := s.snapshot(ctx, plan); err != nil {
			return err
		}
		s.mu.Lock()
		s.snapping = false
		s.mu.Unlock()
		s.log.Info("snapshot read; streaming", "from", plan.consistent.String())
	}
	if plan.exported != nil {
		plan.exported.Close(ctx)
	}
	if len(plan.incremental) == 0 {
		return s.stream(ctx, plan.consistent, false)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.stream(gctx, plan.consistent, true) })
	g.Go(func() error { return s.incremental(gctx, plan.incremental) })
	return g.Wait()
}

// emit hands a batch to Read, waiting while the engine is behind. wait, when not
// nil, is called on every tick while blocked (the stream sends status updates).
func (s *Source) emit(ctx context.Context, b schema.Batch, tick <-chan time.Time, wait func() error) error {
	for {
		select {
		case s.out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if wait != nil {
				if err := wait(); err != nil {
					return err
				}
			}
		}
	}
}

// Read returns the next batch.
func (s *Source) Read(ctx context.Context) (schema.Batch, error) {
	select {
	case b := <-s.out:
		return b, nil
	case err := <-s.errc:
		return schema.Batch{}, err
	case <-ctx.Done():
		return schema.Batch{}, ctx.Err()
	}
}

// Ack records that everything up to upTo is durable: a snapshot part marks its
// chunks done (and saves progress), a stream checkpoint moves the LSN the next
// standby status update confirms.
func (s *Source) Ack(ctx context.Context, upTo offsets.Position) error {
	cp, err := decodeCheckpoint(upTo)
	if err != nil {
		return err
	}
	if cp.phase == phaseStream {
		if err := s.ackIncremental(ctx, cp.commit); err != nil {
			return err
		}
		for {
			cur := s.durable.Load()
			if uint64(cp.end) <= cur || s.durable.CompareAndSwap(cur, uint64(cp.end)) {
				break
			}
		}
		// everything before the stream is durable: the snapshot is complete
		return s.ackSnapshot(ctx, ^uint64(0))
	}
	if cp.run != s.attempt {
		return nil // a checkpoint of an earlier attempt: nothing of this one
	}
	return s.ackSnapshot(ctx, cp.part)
}

// Close stops the goroutines and closes the connections. It is idempotent.
// It returns by the time ctx ends: a server that does not answer (frozen)
// has the run's connections cut then, where pgx would wait 15 s per broken
// connection for a cancel request's answer.
func (s *Source) Close(ctx context.Context) error {
	s.dial.CloseWithin(ctx, func() {
		if s.cancel != nil {
			s.cancel()
			s.wg.Wait()
			s.cancel = nil
		}
		if s.pool != nil {
			s.pool.Close()
			s.pool = nil
		}
	})
	s.dial.Reset()
	return nil
}

// Warnings implements sources.Warner.
func (s *Source) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.warnings)
}

// SourceStatus implements sources.StatusReporter.
func (s *Source) SourceStatus() sources.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sources.Status{Warnings: s.warnings, Snapshotting: s.snapping, SnapshotAt: s.snapAt, LastCommit: s.lastTS, LagBytes: s.lagBytes, LagBytesAt: s.lagAt, Detail: map[string]any{
		"slot": s.cfg.Slot, "publication": s.cfg.Publication,
		"confirmed_lsn": pglogrepl.LSN(s.durable.Load()).String(),
	}}
	if s.cfg.StreamInProgress {
		st.Detail["streamed_chunks"] = s.streamedChunks.Load()
	}
	if !s.heartbeat.IsZero() {
		st.Detail["last_heartbeat"] = s.heartbeat
	}
	if !s.lastPoll.IsZero() {
		st.Detail["slot_polled_at"] = s.lastPoll
	}
	if s.slot.Exists {
		st.Detail["wal_status"] = s.slot.WALStatus
		st.Detail["retained_wal_bytes"] = s.slot.RetainedBytes
		if s.slot.SafeWALSize != nil {
			st.Detail["safe_wal_size"] = *s.slot.SafeWALSize
		}
	}
	for _, id := range s.cfg.tables {
		if p, ok := s.progress[id]; ok {
			st.Tables = append(st.Tables, sources.SnapshotProgress{Table: id, RowsDone: p.RowsDone, RowsEstimated: p.RowsEstimated, Done: p.done(), Resyncing: p.resync})
		}
	}
	return st
}

// health emits heartbeats and polls slot health until ctx ends.
func (s *Source) health(ctx context.Context) {
	poll := time.NewTicker(s.cfg.slotPoll)
	defer poll.Stop()
	probe := time.NewTicker(s.cfg.status)
	defer probe.Stop()
	var beat <-chan time.Time
	if s.cfg.heartbeat > 0 {
		t := time.NewTicker(s.cfg.heartbeat)
		defer t.Stop()
		beat = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat:
			// A transactional message in this database's WAL: it reaches the stream
			// as a commit the pipeline can checkpoint, so WAL written by other
			// databases is released even when the published tables are idle.
			if _, err := s.pool.Exec(ctx, `SELECT pg_logical_emit_message(true, 'cdcd_heartbeat', '')`); err != nil && ctx.Err() == nil {
				s.log.Warn("heartbeat failed (grant EXECUTE on pg_logical_emit_message to the role)", "error", err)
				continue
			}
			s.mu.Lock()
			s.heartbeat = time.Now()
			s.mu.Unlock()
		case <-probe.C:
			s.probeWAL(ctx)
		case <-poll.C:
			slot, err := readSlot(ctx, s.pool, s.cfg.Slot)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("poll slot health", "error", err)
				}
				continue
			}
			s.mu.Lock()
			s.slot, s.lastPoll = slot, time.Now()
			s.mu.Unlock()
			s.m.retained.WithLabelValues(s.deps.Pipeline).Set(float64(slot.RetainedBytes))
			if slot.SafeWALSize != nil {
				s.m.safeWAL.WithLabelValues(s.deps.Pipeline).Set(float64(*slot.SafeWALSize))
			} else {
				s.m.safeWAL.DeleteLabelValues(s.deps.Pipeline)
			}
			for _, st := range []string{"reserved", "extended", "unreserved", "lost"} {
				v := 0.0
				if slot.WALStatus == st {
					v = 1
				}
				s.m.walStatus.WithLabelValues(s.deps.Pipeline, st).Set(v)
			}
			if slot.WALStatus == "unreserved" {
				s.log.Warn("replication slot is about to lose WAL it needs (wal_status = unreserved)", "retained_bytes", slot.RetainedBytes)
			}
			if !slot.Exists || slot.WALStatus == "lost" {
				select {
				case s.errc <- ResyncError{fmt.Errorf("replication slot %s was dropped or invalidated while streaming: resync the pipeline", s.cfg.Slot)}:
				default:
				}
				return
			}
		}
	}
}

// probeWAL samples the server's WAL: its flushed end, which the stream must
// reach for the source to be caught up as of now, and its current end, whose
// distance from the confirmed position is the lag in bytes.
func (s *Source) probeWAL(ctx context.Context) {
	at := time.Now()
	var flush, cur string
	err := s.pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text, pg_current_wal_lsn()::text`).Scan(&flush, &cur)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("sample the WAL position", "error", err)
		}
		return
	}
	fl, err1 := pglogrepl.ParseLSN(flush)
	cl, err2 := pglogrepl.ParseLSN(cur)
	if err1 != nil || err2 != nil {
		return
	}
	behind := int64(0)
	if d := pglogrepl.LSN(s.durable.Load()); cl > d {
		behind = int64(cl - d)
	}
	s.probe.Offer(at, fl)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagBytes, s.lagAt = &behind, at
}

type metrics struct {
	retained  *prometheus.GaugeVec
	safeWAL   *prometheus.GaugeVec
	walStatus *prometheus.GaugeVec
}

// newMetrics registers the source's collectors, sharing them between the sources
// of one registry.
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		retained: component.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_source_slot_retained_bytes", Help: "WAL the replication slot keeps on the Postgres server.",
		}, []string{"pipeline"})),
		safeWAL: component.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_source_slot_safe_wal_size_bytes", Help: "WAL that can still be written before the slot is in danger of losing what it needs (max_slot_wal_keep_size); absent when unlimited.",
		}, []string{"pipeline"})),
		walStatus: component.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_source_slot_wal_status", Help: "1 for the replication slot's current wal_status (reserved, extended, unreserved, lost), 0 for the others.",
		}, []string{"pipeline", "status"})),
	}
}

// replicationConn opens a replication-protocol connection.
func (s *Source) replicationConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := connConfig(s.cfg.DSN, true)
	if err != nil {
		return nil, permanent(err)
	}
	cfg.DialFunc = s.dial.DialContext
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("open replication connection: %w", err))
	}
	return conn, nil
}
