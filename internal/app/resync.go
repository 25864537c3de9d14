package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// ResyncReport says what a resync request did.
type ResyncReport struct {
	// Tables are the tables that will be read again, as the source names them.
	Tables []string `json:"tables"`
	// Reset is true for a resync of the whole pipeline: its history (offsets,
	// replication slot, schema history) was dropped and it starts anew, so it
	// also recovers a pipeline whose history was lost (needs_resync).
	Reset bool `json:"reset"`
}

// ResyncPipeline reads tables of a pipeline again and ends with the
// destination equal to the source, deletes included: each table is read
// again while the stream goes on (the others keep streaming), then the rows
// the read did not find and the stream did not touch are deleted at the
// destination (see schema.OpSweep). With no tables it resyncs the whole
// pipeline: the source's and the sink's history is dropped first (as a
// delete would, honouring keep_slot_on_delete), so a lost slot or purged
// binlog is recovered with one command.
//
// The pipeline is stopped while the request is recorded and started again
// (a paused one stays paused; the resync runs when it resumes). A request
// that cannot be carried out leaves the pipeline as it was.
func (a *App) ResyncPipeline(ctx context.Context, name string, tables []string) (ResyncReport, error) {
	rep := ResyncReport{Tables: []string{}}
	p, all, err := a.resyncable(ctx, name)
	if err != nil {
		return rep, err
	}
	ids, err := pick(name, all, tables)
	if err != nil {
		return rep, err
	}
	rep.Reset = len(tables) == 0
	for _, id := range ids {
		rep.Tables = append(rep.Tables, id.String())
	}

	if err := ignoreUnknown(a.Supervisor.Remove(ctx, name)); err != nil {
		return rep, err
	}
	// whatever happens next, the pipeline runs again (with the request, or as
	// it was)
	defer func() {
		if uerr := a.Supervisor.Upsert(context.WithoutCancel(ctx), a.Spec(p, a.StoredConnections)); uerr != nil {
			a.log().Error("a pipeline stopped for a resync could not be started again", "pipeline", name, "error", uerr)
		}
	}()
	if rep.Reset {
		// the source's slot and the sink's written position: the new history
		// starts over, and the sink's rows of the old one rank below it
		if _, err := a.cleanup(ctx, name, false); err != nil {
			return rep, fmt.Errorf("pipeline %q not resynced: %w", name, err)
		}
	}
	if err := a.Store.RequestResync(context.WithoutCancel(ctx), name, ids, rep.Reset); err != nil {
		return rep, fmt.Errorf("pipeline %q not resynced: %w", name, err)
	}
	what := "tables " + strings.Join(rep.Tables, ", ")
	if rep.Reset {
		what = "the whole pipeline (its history dropped)"
	}
	a.log().Info("resync requested", "pipeline", name, "tables", rep.Tables, "reset", rep.Reset)
	if a.Hub != nil {
		a.Hub.RecordEvent(ctx, pipeline.Event{Pipeline: name, At: time.Now().UTC(), Kind: pipeline.EventSnapshot, Level: pipeline.LevelInfo,
			Message: "resync requested of " + what + ": each table is read again while the others stream, then the rows it no longer has are removed at the destination"})
	}
	return rep, nil
}

// storedPipeline is a stored pipeline with its config resolved.
type storedPipeline struct {
	p config.Pipeline
	r *config.Resolved
	// secrets are the values its ${…} references resolved to: hidden from
	// every error that leaves
	secrets []string
}

// scrub hides the pipeline's secrets in err.
func (sp storedPipeline) scrub(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(scrub(err.Error(), sp.secrets))
}

// loadPipeline reads and resolves a stored pipeline.
func (a *App) loadPipeline(ctx context.Context, name string) (storedPipeline, error) {
	sp, err := a.Store.GetPipeline(ctx, name)
	if err != nil {
		return storedPipeline{}, err
	}
	p, err := config.ParsePipeline(sp.Spec)
	if err != nil {
		return storedPipeline{}, err
	}
	p.Paused = sp.Paused
	conns, err := a.StoredConnections(ctx)
	if err != nil {
		return storedPipeline{}, err
	}
	var seen []string
	r, err := config.Resolve(p, a.Registry, conns, a.Secrets.Recording(&seen))
	if err != nil {
		return storedPipeline{}, fmt.Errorf("%w: pipeline %q: %w", ErrInvalid, name, err)
	}
	return storedPipeline{p: p, r: r, secrets: seen}, nil
}

// source builds the pipeline's source, unopened.
func (a *App) source(sp storedPipeline) (sources.Source, error) {
	src, err := a.Registry.Sources[sp.r.SourceType].New(sp.r.Source, sources.Deps{Pipeline: sp.p.Name, Logger: a.log()})
	if err != nil {
		return nil, fmt.Errorf("%w: pipeline %q: %w", ErrInvalid, sp.p.Name, err)
	}
	return src, nil
}

// resyncable returns a stored pipeline and the tables its source replicates,
// or an error if its source cannot resync tables.
func (a *App) resyncable(ctx context.Context, name string) (config.Pipeline, []schema.TableID, error) {
	sp, err := a.loadPipeline(ctx, name)
	if err != nil {
		return config.Pipeline{}, nil, err
	}
	src, err := a.source(sp)
	if err != nil {
		return sp.p, nil, err
	}
	lister, ok := src.(sources.TableLister)
	if !ok {
		return sp.p, nil, fmt.Errorf("the %s source of pipeline %q cannot resync tables: %w", sp.r.SourceType, name, ErrConflict)
	}
	return sp.p, lister.Tables(), nil
}

// resyncLost is a pipeline's Spec.ResyncTables: with the pipeline stopped by
// the runner's ResyncTablesError, it records the resync of the source tables
// whose destination table was lost.
func (a *App) resyncLost(ctx context.Context, name string, tables []schema.TableID) error {
	_, all, err := a.resyncable(ctx, name)
	if err != nil {
		return err
	}
	for _, id := range tables {
		if !slices.Contains(all, id) {
			return fmt.Errorf("pipeline %q does not replicate %s", name, id)
		}
	}
	return a.Store.RequestResync(ctx, name, tables, false)
}

// pick returns the tables named (all of them when none is), or the problems
// with those the pipeline does not replicate, each with its path.
func pick(pipeline string, all []schema.TableID, tables []string) ([]schema.TableID, error) {
	if len(tables) == 0 {
		return all, nil
	}
	names := make([]string, len(all))
	for i, id := range all {
		names[i] = id.String()
	}
	var ids []schema.TableID
	var ps config.Problems
	for i, t := range tables {
		id := schema.ParseTableID(t)
		switch {
		case !slices.Contains(all, id):
			ps = append(ps, config.Problem{Path: fmt.Sprintf("tables[%d]", i),
				Message: fmt.Sprintf("pipeline %q does not replicate %q; its tables are %s", pipeline, t, strings.Join(names, ", "))})
		case !slices.Contains(ids, id):
			ids = append(ids, id)
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return ids, nil
}
