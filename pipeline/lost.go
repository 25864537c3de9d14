package pipeline

import (
	"context"
	"errors"
	"slices"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
)

// A destination table can vanish behind the sink's back: dropped or renamed
// at the destination, or a changed transform routing a table to a name that
// does not exist. The sink then reports a sinks.TableLostError instead of
// recreating it empty, and the runner turns it into a resync of the source
// tables that feed it (ResyncTablesError), unless this run reads them from
// their first row already: then the table is created again for that read.

// route records which source tables feed the destination tables of deltas
// (srcIDs: the deltas' tables before the transforms).
func (r *Runner) route(srcIDs []schema.TableID, deltas []schema.Delta) {
	if len(deltas) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = map[schema.TableID][]schema.TableID{}
	}
	for i, d := range deltas {
		if !slices.Contains(r.routes[d.Table.ID], srcIDs[i]) {
			r.routes[d.Table.ID] = append(r.routes[d.Table.ID], srcIDs[i])
		}
	}
}

// sourcesOf returns the source tables whose rows go to dest.
func (r *Runner) sourcesOf(dest schema.TableID) []schema.TableID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if srcs := r.routes[dest]; len(srcs) > 0 {
		return slices.Clone(srcs)
	}
	return []schema.TableID{dest}
}

// apply applies deltas at the sink. A table the sink lost is created again if
// this run reads its sources from their first row (a resync or a snapshot
// just starting); otherwise the run ends with a ResyncTablesError.
func (r *Runner) apply(ctx context.Context, deltas []schema.Delta) error {
	c := r.cfg
	err := c.Sink.Apply(ctx, deltas)
	var lost *sinks.TableLostError
	for tries := 0; errors.As(err, &lost) && tries < len(deltas); tries++ {
		srcs := r.sourcesOf(lost.Table)
		if !r.readingFromStart(srcs) {
			return r.resyncFor(lost, srcs)
		}
		recreated := false
		for i := range deltas {
			if deltas[i].Table.ID == lost.Table && deltas[i].From != 0 {
				deltas[i] = schema.Delta{Table: deltas[i].Table, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}, Pos: deltas[i].Pos}
				recreated = true
			}
		}
		if !recreated {
			return err
		}
		what := "did not exist: created again, and filled"
		if lost.Truncated {
			what = "was truncated behind cdcd's back: filled again"
		}
		r.log.Warn("destination table "+what+" by the read of its source tables from their first row", "table", lost.Dest, "sources", joinTables(srcs))
		r.event(ctx, EventSnapshot, LevelWarning, lost.Table.String(), "destination table %s %s by the read of %s now under way", lost.Dest, what, joinTables(srcs))
		err = c.Sink.Apply(ctx, deltas)
	}
	return err
}

// lostOnWrite turns a write error into a ResyncTablesError when a table of
// the batch has lost its destination; other errors are returned as they are.
func (r *Runner) lostOnWrite(ctx context.Context, err error, b *schema.Batch) error {
	var lost *sinks.TableLostError
	if errors.As(err, &lost) {
		return r.resyncFor(lost, r.sourcesOf(lost.Table))
	}
	tc, ok := r.cfg.Sink.(sinks.TableChecker)
	if !ok || ctx.Err() != nil {
		return err
	}
	var seen []schema.TableID
	for i := range b.Changes {
		id := b.Changes[i].Table
		if slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		if exists, cerr := tc.DestinationExists(ctx, id); cerr == nil && !exists {
			return r.resyncFor(&sinks.TableLostError{Table: id}, r.sourcesOf(id))
		}
	}
	return err
}

// failedOn marks a sink error that names its table (sinks.TableError) with
// the source tables that feed that table; other errors are returned as they are.
func (r *Runner) failedOn(err error) error {
	var te *sinks.TableError
	if err == nil || !errors.As(err, &te) {
		return err
	}
	return &tableFailure{tables: r.sourcesOf(te.Table), err: err}
}

func (r *Runner) resyncFor(lost *sinks.TableLostError, srcs []schema.TableID) error {
	return &ResyncTablesError{Tables: srcs, Err: lost}
}

// readingFromStart reports whether this run reads every one of srcs from its
// first row: its snapshot or resync is under way and has not yet made a row
// durable (a resumed read would leave the rows before its cursor missing).
func (r *Runner) readingFromStart(srcs []schema.TableID) bool {
	sr, ok := r.cfg.Source.(sources.StatusReporter)
	if !ok {
		return false
	}
	st := sr.SourceStatus()
	for _, id := range srcs {
		i := slices.IndexFunc(st.Tables, func(p sources.SnapshotProgress) bool { return p.Table == id })
		if i < 0 || st.Tables[i].Done || st.Tables[i].RowsDone > 0 {
			return false
		}
	}
	return true
}
