package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"golang.org/x/sync/errgroup"
)

// Defaults of RunnerConfig.
const (
	DefaultMaxChanges   = 10_000
	DefaultMaxBytes     = 4 << 20
	DefaultMaxWait      = time.Second
	DefaultQueueDepth   = 2
	DefaultDrainTimeout = 30 * time.Second
	stallWarnAfter      = 10 * time.Second
)

// RunnerConfig is everything one run of one pipeline needs. The Supervisor builds a
// fresh one per attempt.
type RunnerConfig struct {
	Pipeline string
	Source   sources.Source
	Chain    *transforms.Chain
	Sink     sinks.Sink
	Offsets  offsets.Store
	// Epoch is the lease epoch acquired from Offsets for this run; every commit is
	// fenced by it.
	Epoch offsets.Epoch

	MaxChanges int           // flush a write batch at this many changes
	MaxBytes   int           // … or at this many estimated bytes
	MaxWait    time.Duration // … or this long after its first change arrived
	// MinWait: a batch that is not full goes no sooner than this after its
	// first change (0: as soon as the source has nothing more and the writer
	// is idle)
	MinWait      time.Duration
	QueueDepth   int           // batches buffered between two stages
	DrainTimeout time.Duration // after a stop, how long in-flight batches may take

	// Evolution is the schema-change policy; Holds keeps the tables it holds
	// (nil: a policy that would hold a table fails the pipeline instead).
	Evolution schema.Evolution
	Holds     HoldStore
	// SkipTransformErrors drops a change a transform fails on (counted and
	// recorded in Skips before its batch's offset is committed) instead of
	// failing the pipeline.
	SkipTransformErrors bool
	Skips               SkipStore
	// Stats keeps the pipeline's durable counts across runs (nil: they start
	// from zero each run).
	Stats StatsStore

	Logger  *slog.Logger
	Metrics *Metrics
	Now     func() time.Time // clock, for lag; time.Now when nil
	// Warn receives the source's warnings (sources.Warner) once it is open;
	// nil logs each. The Supervisor's logs each once per pipeline.
	Warn func(warning string)
	// Events, when set, keeps what happens to the pipeline (Event).
	Events EventRecorder
	// Committed, when set, is called after each offset commit (the
	// Supervisor ends a streak of failed attempts there).
	Committed func()
}

// WithDefaults returns c with every unset tunable set to its default.
func (c RunnerConfig) WithDefaults() RunnerConfig {
	c.MaxChanges = cmp.Or(c.MaxChanges, DefaultMaxChanges)
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	c.MaxWait = cmp.Or(c.MaxWait, DefaultMaxWait)
	c.QueueDepth = cmp.Or(c.QueueDepth, DefaultQueueDepth)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Chain == nil {
		c.Chain = transforms.NewChain()
	}
	return c
}

// Progress is what a runner reports about its data flow.
type Progress struct {
	ChangesRead    uint64           `json:"changes_read"`
	ChangesWritten uint64           `json:"changes_written"`
	BatchesWritten uint64           `json:"batches_written"`
	ReadPos        offsets.Position `json:"read_position,omitempty"`
	WrittenPos     offsets.Position `json:"written_position,omitempty"`
	CommittedPos   offsets.Position `json:"committed_position,omitempty"`
	// LastSourceCommit is the source commit time of the newest durable change.
	LastSourceCommit time.Time `json:"last_source_commit,omitzero"`
	// LastOffsetCommit is when the offset store was last written.
	LastOffsetCommit time.Time `json:"last_offset_commit,omitzero"`
	// LagSeconds is the age of the oldest change read from the source and not
	// yet durable at the sink, 0 when the source is caught up and everything it
	// read is durable; nil when unknown (docs/observability.md). CaughtUp says
	// which of the two a 0 is.
	LagSeconds *float64 `json:"lag_seconds"`
	CaughtUp   bool     `json:"caught_up"`
	// LagBytes is how far the source server's log is ahead of the position
	// durable downstream; nil when the source does not measure it.
	LagBytes *int64          `json:"lag_bytes"`
	Source   *sources.Status `json:"source,omitempty"`
	// HeldTables are the destination tables a schema-change policy holds.
	HeldTables []string `json:"held_tables,omitempty"`
	// Tables are the source tables' durable counts (kept across runs),
	// snapshot progress and state.
	Tables []TableProgress `json:"tables,omitempty"`
}

// Runner runs one pipeline until it is stopped or fails.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger

	opened  atomic.Bool // source and sink are open and the stages run
	writing atomic.Bool // the write stage is applying a batch

	mu       sync.Mutex
	progress Progress
	// routes maps each destination table announced in this run to the source
	// tables whose rows go to it (transforms may rename and merge tables).
	routes map[schema.TableID][]schema.TableID

	lag lagTracker
}

// Streaming reports whether the runner has opened its source and sink and is
// moving data (false while it is still connecting and after Run returned).
func (r *Runner) Streaming() bool { return r.opened.Load() }

// NewRunner returns a Runner for cfg (defaults applied).
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	cfg = cfg.WithDefaults()
	var errs []error
	if cfg.Pipeline == "" {
		errs = append(errs, errors.New("pipeline name is empty"))
	}
	if cfg.Source == nil {
		errs = append(errs, errors.New("no source"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("no sink"))
	}
	if cfg.Offsets == nil {
		errs = append(errs, errors.New("no offset store"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("runner config: %w", err)
	}
	return &Runner{cfg: cfg, log: cfg.Logger.With("pipeline", cfg.Pipeline, "component", "runner")}, nil
}

// Progress returns a snapshot of the runner's progress. Safe for concurrent use.
func (r *Runner) Progress() Progress {
	r.mu.Lock()
	p := r.progress
	r.mu.Unlock()
	var snapshotAt time.Time
	if sr, ok := r.cfg.Source.(sources.StatusReporter); ok {
		st := sr.SourceStatus()
		p.Source = &st
		p.LagBytes = st.LagBytes
		if st.Snapshotting {
			snapshotAt = st.SnapshotAt
		}
	}
	now := r.cfg.Now()
	if l := r.lag.lag(now, snapshotAt); l.Known {
		p.LagSeconds, p.CaughtUp = &l.Seconds, l.CaughtUp
	}
	p.Tables = tables(r.lag.durableStats(), &p, now)
	return p
}

// Snapshotting reports whether the source says it is in its initial snapshot.
func (r *Runner) Snapshotting() bool {
	if sr, ok := r.cfg.Source.(sources.StatusReporter); ok {
		return sr.SourceStatus().Snapshotting
	}
	return false
}

func (r *Runner) update(f func(p *Progress)) {
	r.mu.Lock()
	f(&r.progress)
	r.mu.Unlock()
}

type ticketed struct {
	b  schema.Batch
	tk offsets.Ticket
	// ev is what the schema-change policy took out of b; holds reports that some
	// table is held, so the write raises the holds' watermark; base is the last
	// position of the previous batch, above which drained changes are restamped.
	ev      routed
	holds   bool
	base    offsets.Position
	skipped []transforms.Skipped
	// parts are the source batches b holds changes of, for the counts
	parts []writtenBatch
}

// Run opens the source and sink, streams until ctx is cancelled or a stage fails,
// and closes both. Cancelling ctx is a graceful stop: the reader stops taking data,
// in-flight batches drain through write and commit within DrainTimeout, then the
// rest is cancelled. Run returns nil after a graceful stop, and otherwise the first
// error of any stage, which Classify sorts into retryable, permanent or
// needs-resync.
func (r *Runner) Run(ctx context.Context) (err error) {
	c := r.cfg
	from, err := c.Offsets.Load(ctx, c.Pipeline)
	if err != nil && !errors.Is(err, offsets.ErrNotFound) {
		if ctx.Err() != nil {
			return nil // stopped while starting: not a failure
		}
		return fmt.Errorf("load offset: %w", err)
	}
	var stats Stats
	if c.Stats != nil {
		if stats, err = c.Stats.LoadStats(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("load the pipeline's counts: %w", err)
		}
	}
	r.lag.start(stats, from)
	r.update(func(p *Progress) { p.CommittedPos, p.ChangesWritten = from, stats.Written })

	// base outlives ctx so that a stop can drain; it is cancelled when the drain
	// times out or when Run returns. The drain bound runs from the stop to the
	// end of Run, the components' Close included: each returns by the time
	// base ends (a stop is never longer than DrainTimeout).
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	var drainMu sync.Mutex
	var drain *time.Timer
	var onStop func() // once the stages run: stop reading
	unwatch := context.AfterFunc(ctx, func() {
		drainMu.Lock()
		defer drainMu.Unlock()
		if onStop != nil {
			onStop()
		}
		drain = time.AfterFunc(c.DrainTimeout, func() { cancelBase(ErrDrainTimeout) })
	})
	defer func() {
		unwatch()
		drainMu.Lock()
		if drain != nil {
			drain.Stop()
		}
		drainMu.Unlock()
		cancelBase(ErrStopping)
	}()

	if err := c.Sink.Open(base); err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	defer func() {
		if cerr := c.Sink.Close(base); cerr != nil && err == nil {
			err = fmt.Errorf("close sink: %w", cerr)
		}
	}()
	if err := c.Source.Open(ctx, from); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("open source: %w", err)
	}
	defer func() {
		if cerr := c.Source.Close(base); cerr != nil && err == nil {
			err = fmt.Errorf("close source: %w", cerr)
		}
	}()
	if w, ok := c.Source.(sources.Warner); ok {
		for _, msg := range w.Warnings() {
			if c.Warn != nil {
				c.Warn(msg)
			} else {
				r.log.Warn(msg)
			}
		}
	}
	ev, err := r.newEvolver(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: not a failure
		}
		return err
	}
	r.log.Info("pipeline running", "from", from.String(), "epoch", c.Epoch)
	var snaps snapshotWatch
	if sr, ok := c.Source.(sources.StatusReporter); ok {
		st := sr.SourceStatus()
		if st.Snapshotting {
			r.event(ctx, EventState, LevelInfo, "", "running: snapshotting")
		} else {
			r.event(ctx, EventState, LevelInfo, "", "running: streaming")
		}
		snaps.observe(ctx, r, &st)
	} else {
		r.event(ctx, EventState, LevelInfo, "", "running")
	}
	r.opened.Store(true)
	defer r.opened.Store(false)
	c.Metrics.lag.add(c.Pipeline, r)
	defer c.Metrics.lag.remove(c.Pipeline, r)
	c.Metrics.initialize(c.Pipeline)

	g, gctx := errgroup.WithContext(base)
	readCtx, cancelRead := context.WithCancel(gctx)
	defer cancelRead()
	drainMu.Lock()
	onStop = cancelRead
	drainMu.Unlock()
	if ctx.Err() != nil {
		cancelRead() // stopped before the stages were set up
	}

	tracker := offsets.NewTracker(2*c.QueueDepth + 2)
	read := make(chan schema.Batch, c.QueueDepth)
	write := make(chan ticketed, c.QueueDepth)
	written := make(chan struct{}, 1)

	g.Go(func() error { return r.readStage(readCtx, gctx, read) })
	g.Go(func() error { return r.transformStage(gctx, read, write, tracker, ev) })
	g.Go(func() error { return r.writeStage(gctx, write, written, tracker) })
	g.Go(func() error { return r.commitStage(gctx, written, tracker, &snaps) })
	err = g.Wait()
	if err == nil {
		if cause := context.Cause(base); errors.Is(cause, ErrDrainTimeout) {
			return ErrDrainTimeout
		}
		return nil
	}
	if errors.Is(err, context.Canceled) && errors.Is(context.Cause(base), ErrDrainTimeout) {
		return ErrDrainTimeout
	}
	return err
}

// send delivers v on ch, counting a stall when the receiver has not taken it
// within stallWarnAfter. It returns ctx's cause if ctx ends first.
func send[T any](ctx context.Context, r *Runner, stage string, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	t := time.NewTimer(stallWarnAfter)
	defer t.Stop()
	for {
		select {
		case ch <- v:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			r.cfg.Metrics.stalls.WithLabelValues(r.cfg.Pipeline, stage).Inc()
			r.log.Warn("back-pressure: next stage is not keeping up", "stage", stage, "waited", stallWarnAfter)
			t.Reset(stallWarnAfter)
		}
	}
}

// readStage reads source batches until readCtx ends (a stop: return nil) or the
// source fails.
func (r *Runner) readStage(readCtx, gctx context.Context, out chan<- schema.Batch) error {
	defer close(out)
	for {
		b, err := r.cfg.Source.Read(readCtx)
		if err != nil {
			if readCtx.Err() != nil && gctx.Err() == nil {
				return nil // graceful stop
			}
			if gctx.Err() != nil {
				return context.Cause(gctx)
			}
			return fmt.Errorf("read source: %w", err)
		}
		r.lag.read(&b)
		n, last := len(b.Changes), b.Last()
		var perOp [schema.OpSnapshot + 1]int
		for i := range b.Changes {
			if op := b.Changes[i].Op; int(op) < len(perOp) {
				perOp[op]++
			}
		}
		for op, k := range perOp {
			if k > 0 {
				r.cfg.Metrics.changes.WithLabelValues(r.cfg.Pipeline, schema.Op(op).String()).Add(float64(k))
			}
		}
		if err := send(readCtx, r, "transform", out, b); err != nil {
			if gctx.Err() == nil {
				return nil // stopped while the queue was full: the batch is dropped, never acked
			}
			return err
		}
		r.update(func(p *Progress) {
			p.ChangesRead += uint64(n)
			if last != nil {
				p.ReadPos = last
			}
		})
		r.cfg.Metrics.queue.WithLabelValues(r.cfg.Pipeline, "transform").Set(float64(len(out)))
	}
}

// transformStage runs the chain over each source batch and coalesces them into
// write batches bounded by MaxChanges and MaxBytes. A batch that ends on a
// checkpoint goes as soon as no other source batch is waiting; one that ends
// inside a transaction waits for its checkpoint up to MaxWait.
func (r *Runner) transformStage(ctx context.Context, in <-chan schema.Batch, out chan<- ticketed, tr *offsets.Tracker, ev *evolver) error {
	defer close(out)
	c := r.cfg
	var pending schema.Batch
	var pendingEv routed
	var pendingBytes int
	var pendingParts []writtenBatch
	var skipped []transforms.Skipped
	if c.SkipTransformErrors {
		c.Chain.SkipErrors(func(s transforms.Skipped) {
			skipped = append(skipped, s)
			c.Metrics.skipped.WithLabelValues(c.Pipeline, s.Transform).Inc()
			r.log.Warn("change skipped: a transform failed on it (on_transform_error: skip)", "transform", s.Transform, "table", s.Table.String(), "position", s.Pos.String(), "error", s.Error)
		})
	}
	var has bool // pending holds something worth flushing (changes, deltas or a checkpoint)
	var pendingSince time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	// hold is how long a pending batch that ends on a checkpoint is kept
	// before it is asked again whether it goes: until min_wait, and while the
	// writer is busy (until max_wait); 0: it goes now.
	hold := func() time.Duration {
		age := time.Since(pendingSince)
		switch {
		case age < c.MinWait:
			return c.MinWait - age
		case age < c.MaxWait && (len(out) > 0 || r.writing.Load()):
			return writerPoll
		}
		return 0
	}
	flush := func() error {
		if !has {
			return nil
		}
		timer.Stop()
		tk, err := tr.Begin(ctx, pending.Checkpoint)
		if err != nil {
			return context.Cause(ctx)
		}
		t := ticketed{b: pending, tk: tk, ev: pendingEv, holds: len(ev.holds) > 0, base: ev.lastEmitted, skipped: skipped, parts: pendingParts}
		if last := highest(&pending); last != nil {
			ev.lastEmitted = last
		}
		if err := send(ctx, r, "write", out, t); err != nil {
			return err
		}
		c.Metrics.queue.WithLabelValues(c.Pipeline, "write").Set(float64(len(out)))
		pending, pendingEv, pendingBytes, has, skipped, pendingParts = schema.Batch{}, routed{}, 0, false, nil, nil
		return nil
	}

	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-timer.C:
			if has && pending.Checkpoint != nil {
				if wait := hold(); wait > 0 {
					timer.Reset(wait)
					continue
				}
			}
			if err := flush(); err != nil {
				return err
			}
		case b, ok := <-in:
			if !ok {
				return flush()
			}
			srcIDs := make([]schema.TableID, len(b.Deltas))
			for i := range b.Deltas {
				srcIDs[i] = b.Deltas[i].Table.ID
			}
			if err := c.Chain.ApplyBatch(&b); err != nil {
				return err
			}
			r.route(srcIDs, b.Deltas)
			rt, err := ev.route(&b)
			if err != nil {
				return err
			}
			// rows encoded before a column their batch adds hold its default
			schema.FillExisting(&b)
			if len(rt.created) > 0 && c.Holds == nil {
				return component.Permanent(fmt.Errorf("schema change on %s: %s, but holding a table needs the metadata store (cdcd serve); set that policy to apply or fail for this pipeline", rt.created[0].Table, rt.created[0].Reason))
			}
			for i := range rt.created {
				r.planDDL(ctx, ev, &rt.created[i])
			}
			for _, h := range rt.created {
				r.log.Warn("table held by the schema-change policy; the rest of the pipeline continues",
					"table", h.Table.String(), "reason", h.Reason, "ddl", strings.Join(h.DDL, "; "))
				r.event(ctx, EventSchemaChange, LevelWarning, h.Table.String(), "held by the schema-change policy: %s; the proposed change: %s; decide with cdcd pipelines resolve %s %s approve|reject|new_column",
					h.Reason, strings.Join(h.DDL, "; "), c.Pipeline, h.Table)
			}
			if len(rt.drain) > 0 || len(rt.created) > 0 {
				r.setHeld(ev)
			}
			// Deltas must precede the rows that need them and follow the rows
			// encoded before them: a batch with deltas starts a new write batch.
			// So does a replay of held changes, which goes before its batch.
			if len(b.Deltas) > 0 || len(rt.drain) > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			if !has {
				timer.Reset(c.MaxWait)
				pendingSince = time.Now()
			}
			has = true
			pendingEv.add(rt)
			pending.Deltas = append(pending.Deltas, b.Deltas...)
			switch {
			case pending.Changes == nil && len(b.Changes) >= c.MaxChanges/2:
				pending.Changes = b.Changes // big enough alone: adopt it, no copy
			case pending.Changes == nil:
				pending.Changes = make([]schema.Change, 0, min(c.MaxChanges, 1<<14))
				fallthrough
			default:
				pending.Changes = append(pending.Changes, b.Changes...)
			}
			if b.Checkpoint != nil {
				pending.Checkpoint = b.Checkpoint
			}
			pendingParts = append(pendingParts, writtenBatch{pos: b.Checkpoint, n: len(b.Changes)})
			pendingBytes += b.Size()
			// Full, or nothing more ready from the source and the writer idle:
			// write it now. While the writer is busy, the next ones coalesce
			// (batches grow with the load) and the timer checks every
			// writerPoll whether it is idle. A batch waits
			// out MaxWait only for the rest of its transaction.
			full := len(pending.Changes) >= c.MaxChanges || pendingBytes >= c.MaxBytes
			if !full && (pending.Checkpoint == nil || len(in) > 0) {
				continue // the rest of its transaction, or more of the source's, comes next
			}
			if wait := hold(); !full && wait > 0 {
				timer.Reset(wait)
				continue
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// writerPoll is how often a batch that could go checks whether the writer has
// taken the one before it.
const writerPoll = time.Millisecond

// highest is the highest position a batch gives the sink: its last change's or
// its checkpoint, which can sort above it (the end of the transaction).
func highest(b *schema.Batch) offsets.Position {
	return offsets.Max(b.Last(), b.Checkpoint)
}

// newEvolver loads the pipeline's holds. The changes kept for a rejected table
// are discarded here: its decision needs no ordering with the stream.
func (r *Runner) newEvolver(ctx context.Context) (*evolver, error) {
	c := r.cfg
	ev := &evolver{policy: c.Evolution, holds: map[schema.TableID]*Hold{}, shapes: map[schema.TableID]schema.Table{}, now: c.Now}
	if c.Holds == nil {
		return ev, nil
	}
	holds, err := c.Holds.LoadHolds(ctx)
	if err != nil {
		return nil, fmt.Errorf("load held tables: %w", err)
	}
	for _, h := range holds {
		if h.Status == HoldRejected && h.Held > 0 {
			if err := c.Holds.FinishHold(ctx, h.Table, true); err != nil {
				return nil, fmt.Errorf("discard the held changes of rejected table %s: %w", h.Table, err)
			}
			r.log.Warn("schema change rejected: the table's held changes are discarded and its further changes dropped", "table", h.Table.String())
		}
		ev.holds[h.Table] = &h
	}
	r.setHeld(ev)
	return ev, nil
}

func (r *Runner) setHeld(ev *evolver) {
	held := make([]string, 0, len(ev.holds))
	for id, h := range ev.holds {
		if h.Status != HoldRejected {
			held = append(held, id.String())
		}
	}
	slices.Sort(held)
	r.cfg.Metrics.held.WithLabelValues(r.cfg.Pipeline).Set(float64(len(held)))
	r.update(func(p *Progress) { p.HeldTables = held })
}

// spool makes what the schema-change policy took out of a batch durable before
// the batch counts as written, then replays the held tables whose resolution is
// due, before the batch's own changes.
func (r *Runner) spool(ctx context.Context, tb *ticketed) error {
	c := r.cfg
	if len(tb.skipped) > 0 && c.Skips != nil {
		if err := c.Skips.RecordSkipped(ctx, tb.skipped); err != nil {
			return fmt.Errorf("record skipped changes: %w", err)
		}
	}
	if c.Holds == nil || (!tb.holds && tb.ev.empty()) {
		return nil
	}
	var mark offsets.Position
	if tb.holds || len(tb.ev.created) > 0 {
		mark = highest(&tb.b)
	}
	if err := c.Holds.Spool(ctx, tb.ev.created, tb.ev.entries, tb.ev.dropped, mark); err != nil {
		return fmt.Errorf("keep the changes of held tables: %w", err)
	}
	if n := len(tb.ev.entries); n > 0 {
		c.Metrics.heldChanges.WithLabelValues(c.Pipeline).Add(float64(n))
	}
	for _, h := range tb.ev.drain {
		if err := r.drain(ctx, h, tb.base); err != nil {
			return fmt.Errorf("replay the held changes of %s: %w", h.Table, err)
		}
	}
	return nil
}

// drain replays a resolved hold's entries into the sink in order, deltas
// resolved per the user's decision and changes restamped above base, recording
// progress so that a crash resumes where it stopped, then forgets the hold.
func (r *Runner) drain(ctx context.Context, h Hold, base offsets.Position) error {
	c := r.cfg
	seq, n := h.Drained, 0
	var b schema.Batch
	write := func(upTo int64) error {
		if len(b.Changes) > 0 {
			if err := c.Sink.Write(ctx, &b); err != nil {
				return r.failedOn(valueSafe(err, &b))
			}
			n += len(b.Changes)
			b = schema.Batch{}
		}
		return c.Holds.MarkDrained(ctx, h.Table, upTo)
	}
	for {
		entries, err := c.Holds.ReadHeld(ctx, h.Table, seq, c.MaxChanges)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if e.Delta != nil {
				if err := write(seq); err != nil {
					return err
				}
				d := resolve(h, *e.Delta)
				// the held changes around it are restamped: so is the delta, so
				// that a sink's fill of older rows reaches the ones replayed
				// before it and none after
				d.Pos = restamp(base, e.Seq)
				if err := c.Sink.Apply(ctx, []schema.Delta{d}); err != nil {
					return fmt.Errorf("apply the held schema change: %w", err)
				}
			} else {
				ch := *e.Change
				ch.Pos = restamp(base, e.Seq)
				b.Changes = append(b.Changes, ch)
			}
			seq = e.Seq
		}
		if err := write(seq); err != nil {
			return err
		}
	}
	if err := c.Holds.FinishHold(ctx, h.Table, false); err != nil {
		return err
	}
	r.log.Info("held table resumed", "table", h.Table.String(), "decision", string(h.Status), "replayed_changes", n)
	r.event(ctx, EventSchemaChange, LevelInfo, h.Table.String(), "held table resumed (%s): %d held changes replayed", h.Status, n)
	return nil
}

// writeStage applies each batch at the sink, deltas first, then marks it durable.
func (r *Runner) writeStage(ctx context.Context, in <-chan ticketed, written chan<- struct{}, tr *offsets.Tracker) error {
	defer close(written)
	for {
		var tb ticketed
		var ok bool
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case tb, ok = <-in:
			if !ok {
				return nil
			}
		}
		r.writing.Store(true)
		if err := r.write(ctx, &tb, written, tr); err != nil {
			return err
		}
		r.writing.Store(false)
	}
}

// write applies one batch at the sink, deltas first, then marks it durable.
func (r *Runner) write(ctx context.Context, tb *ticketed, written chan<- struct{}, tr *offsets.Tracker) error {
	c := r.cfg
	if err := r.spool(ctx, tb); err != nil {
		return err
	}
	if len(tb.b.Deltas) > 0 {
		if err := r.apply(ctx, tb.b.Deltas); err != nil {
			return r.failedOn(fmt.Errorf("apply schema change at sink: %w", err))
		}
		for _, d := range tb.b.Deltas {
			if d.From != 0 && len(d.Changes) > 0 {
				r.event(ctx, EventSchemaChange, LevelInfo, d.Table.ID.String(), "schema change applied at the sink (version %d): %s", d.Table.Version, describe(d))
			}
		}
	}
	if len(tb.b.Changes) > 0 {
		start := time.Now()
		if err := c.Sink.Write(ctx, &tb.b); err != nil {
			err = r.lostOnWrite(ctx, err, &tb.b)
			return r.failedOn(fmt.Errorf("write batch of %d changes: %w", len(tb.b.Changes), valueSafe(err, &tb.b)))
		}
		c.Metrics.writeSeconds.WithLabelValues(c.Pipeline).Observe(time.Since(start).Seconds())
		c.Metrics.batchChanges.WithLabelValues(c.Pipeline).Observe(float64(len(tb.b.Changes)))
		r.log.Debug("batch written", "batch_changes", len(tb.b.Changes), "took", time.Since(start))
		for i := range tb.b.Changes {
			if ch := &tb.b.Changes[i]; ch.Op == schema.OpSweep {
				r.log.Info("table resync finished", "table", ch.Table.String())
				r.event(ctx, EventSnapshot, LevelInfo, ch.Table.String(),
					"resync finished: the rows the source no longer has are removed at the destination (counted in cdcd_sink_swept_rows_total)")
			}
		}
	}
	r.lag.wrote(tb.parts)
	if err := tr.Done(tb.tk); err != nil {
		return err
	}
	last := tb.b.Last()
	r.update(func(p *Progress) {
		p.ChangesWritten += uint64(len(tb.b.Changes))
		p.BatchesWritten++
		if last != nil {
			p.WrittenPos = last
		}
		if n := len(tb.b.Changes); n > 0 && !tb.b.Changes[n-1].CommitTS.IsZero() {
			p.LastSourceCommit = tb.b.Changes[n-1].CommitTS
		}
	})
	select {
	case written <- struct{}{}:
	default:
	}
	return nil
}

// commitStage moves the offset store to the highest contiguous durable
// checkpoint, then acks the source up to it.
func (r *Runner) commitStage(ctx context.Context, written <-chan struct{}, tr *offsets.Tracker, snaps *snapshotWatch) error {
	c := r.cfg
	commit := func() error {
		pos, moved := tr.Resolve()
		if !moved || pos == nil {
			return nil
		}
		now := c.Now()
		done, stats := r.lag.commit(pos, now)
		start := time.Now()
		if c.Stats != nil {
			// before the offset: a run that resumes below stats.AsOf counts
			// nothing twice (see Stats)
			if err := c.Stats.SaveStats(ctx, stats); err != nil {
				return fmt.Errorf("save the pipeline's counts at %s: %w", pos, err)
			}
		}
		if err := c.Offsets.Commit(ctx, c.Pipeline, c.Epoch, pos); err != nil {
			return fmt.Errorf("commit offset %s: %w", pos, err)
		}
		c.Metrics.commitSeconds.WithLabelValues(c.Pipeline).Observe(time.Since(start).Seconds())
		e2e := c.Metrics.endToEnd.WithLabelValues(c.Pipeline)
		for _, rb := range done {
			for _, run := range rb.commits {
				d := max(0, now.Sub(run.at).Seconds())
				for range run.n {
					e2e.Observe(d)
				}
			}
		}
		c.Metrics.commitTS.WithLabelValues(c.Pipeline).Set(float64(now.Unix()))
		r.update(func(p *Progress) {
			p.CommittedPos = pos
			p.LastOffsetCommit = now
		})
		if err := c.Source.Ack(ctx, pos); err != nil {
			return fmt.Errorf("ack source at %s: %w", pos, err)
		}
		if c.Committed != nil {
			c.Committed()
		}
		if sr, ok := c.Source.(sources.StatusReporter); ok {
			st := sr.SourceStatus()
			snaps.observe(ctx, r, &st)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case _, ok := <-written:
			if err := commit(); err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
	}
}

// planDDL replaces a new hold's generic DDL with the statements the sink
// would run, in its dialect and under the table's destination name, when the
// sink can say (sinks.DDLPlanner); if it cannot now, the generic text stays
// and the log says why.
func (r *Runner) planDDL(ctx context.Context, ev *evolver, h *Hold) {
	p, ok := r.cfg.Sink.(sinks.DDLPlanner)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stmts, err := p.PlanDDL(ctx, h.Proposed)
	if err != nil {
		r.log.Warn("the destination's statements for a held schema change could not be planned; showing the generic ones", "table", h.Table.String(), "error", err)
		return
	}
	if stmts == nil {
		stmts = []string{}
	}
	h.DDL = stmts
	if held := ev.holds[h.Table]; held != nil {
		held.DDL = stmts
	}
}
