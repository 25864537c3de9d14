package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
)

// PipelineView is a pipeline as shown by the API: its spec with secrets
// redacted, desired and observed state, and live progress when it runs here.
type PipelineView struct {
	Name       string           `json:"name"`
	Spec       json.RawMessage  `json:"spec"`
	Paused     bool             `json:"paused"`
	State      string           `json:"state"`
	LastError  string           `json:"last_error,omitempty"`
	Generation int64            `json:"generation"`
	CreatedAt  time.Time        `json:"created_at"`
	UpdatedAt  time.Time        `json:"updated_at"`
	Status     *pipeline.Status `json:"status,omitempty"`
	// Notice says what an update did about rows already written (a transform change).
	Notice string `json:"notice,omitempty"`
}

// Transform changes of an existing pipeline: rows already written were made by
// the old chain, so a change must say what happens to them.
const (
	TransformChangeKeepWritten = "keep_written" // old rows stay as written; new rows use the new chain
	TransformChangeResync      = "resync"       // delete the pipeline's state and re-snapshot with the new chain
)

// ApplyPipeline validates p against the stored connections, stores it and
// (re)starts it. created reports whether it is new. A change of an existing
// pipeline's transforms needs transformChange (keep_written or resync): without
// it the update is refused, so old and new chain output never mix silently.
// notice says what was done about rows already written.
func (a *App) ApplyPipeline(ctx context.Context, p config.Pipeline, transformChange string) (created bool, notice string, err error) {
	conns, err := a.StoredConnections(ctx)
	if err != nil {
		return false, "", err
	}
	pl, err := a.planPipeline(ctx, p, transformChange, conns)
	if err != nil {
		return false, "", err
	}
	if err := a.resyncFor(ctx, &pl); err != nil {
		return false, "", err
	}
	if err := a.Store.PutPipeline(ctx, pl.put.Pipeline, pl.put.Connections); err != nil {
		return false, "", err
	}
	return pl.created, pl.notice, a.startPlanned(ctx, pl)
}

// pipelinePlan is a validated pipeline ready to store: what ApplyPipeline and
// ApplyFile do with it.
type pipelinePlan struct {
	p       config.Pipeline
	old     *store.Pipeline
	created bool
	notice  string
	resync  bool // transform_change=resync and the transforms changed
	put     store.PipelinePut
}

// planPipeline validates p against conns and decides what applying it does,
// changing nothing.
func (a *App) planPipeline(ctx context.Context, p config.Pipeline, transformChange string, conns map[string]config.Connection) (pipelinePlan, error) {
	switch transformChange {
	case "", TransformChangeKeepWritten, TransformChangeResync:
	default:
		return pipelinePlan{}, fmt.Errorf("%w: transform_change must be keep_written or resync, got %q", ErrInvalid, transformChange)
	}
	old, err := a.checkPipelineWith(ctx, &p, conns)
	if err != nil {
		return pipelinePlan{}, err
	}
	pl := pipelinePlan{old: old, created: old == nil}
	r, err := config.Resolve(p, a.Registry, conns, a.Secrets)
	if err != nil {
		return pipelinePlan{}, err
	}
	if !pl.created {
		changed, err := transformsChanged(old.Spec, p)
		if err != nil {
			return pipelinePlan{}, err
		}
		switch {
		case !changed:
		case transformChange == "":
			return pipelinePlan{}, fmt.Errorf("%w: the transforms of pipeline %s changed; rows already written were made by the old chain. "+
				"Say what happens to them: transform_change=keep_written (they stay as written, new rows use the new chain) "+
				"or transform_change=resync (the pipeline's offsets are dropped and every table is snapshotted again with the new chain)", ErrConflict, p.Name)
		case transformChange == TransformChangeKeepWritten:
			at := "the last committed offset"
			if st, err := a.Supervisor.Status(p.Name); err == nil && st.Progress.CommittedPos != nil {
				at = "position " + st.Progress.CommittedPos.String()
			}
			pl.notice = fmt.Sprintf("transforms changed (generation %d): rows written up to %s keep the previous chain's output; later rows use the new chain", old.Generation+1, at)
		case transformChange == TransformChangeResync:
			pl.resync = true
			pl.notice = "transforms changed: the pipeline was reset and snapshots every table again with the new chain"
		}
	}
	raw, err := config.Marshal(p)
	if err != nil {
		return pipelinePlan{}, err
	}
	if !pl.created && !p.Paused && !pl.resync {
		p.Paused = old.Paused // apply does not resume a paused pipeline; resume does
	}
	pl.p = p
	pl.put = store.PipelinePut{Pipeline: store.Pipeline{Name: p.Name, Spec: raw, Paused: p.Paused}, Connections: r.Connections}
	return pl, nil
}

// resyncFor deletes the state of a pipeline whose plan resyncs it (its
// transforms changed with transform_change=resync): it is then created anew.
func (a *App) resyncFor(ctx context.Context, pl *pipelinePlan) error {
	if !pl.resync {
		return nil
	}
	if _, err := a.DeletePipeline(ctx, pl.p.Name, false); err != nil {
		return fmt.Errorf("resync for the new transforms: %w", err)
	}
	a.log().Warn("pipeline transforms changed", "pipeline", pl.p.Name, "notice", pl.notice)
	pl.created, pl.old = true, nil
	return nil
}

// startPlanned (re)starts a stored pipeline, unless nothing of it changed.
func (a *App) startPlanned(ctx context.Context, pl pipelinePlan) error {
	if pl.notice != "" && !pl.resync {
		a.log().Warn("pipeline transforms changed", "pipeline", pl.p.Name, "notice", pl.notice)
	}
	if !pl.created && string(pl.old.Spec) == string(pl.put.Pipeline.Spec) && pl.old.Paused == pl.p.Paused {
		return nil // unchanged: leave the running pipeline alone
	}
	return a.Supervisor.Upsert(ctx, a.Spec(pl.p, a.StoredConnections))
}

// Applied is what ApplyFile did to one object of the file.
type Applied struct {
	Kind   string `json:"kind"` // connection, pipeline or alerts
	Name   string `json:"name,omitempty"`
	Result string `json:"result"` // created, updated or unchanged
	Notice string `json:"notice,omitempty"`
}

// ApplyFile applies a config file's connections, pipelines and alert rules
// all at once or not at all: everything is validated first (the pipelines
// and rules against the stored connections and the file's), every problem is
// returned with its path, and the connections and pipelines are then stored
// in one transaction before the pipelines (re)start.
func (a *App) ApplyFile(ctx context.Context, f config.File, transformChange string) ([]Applied, error) {
	fp, err := a.prepareFile(ctx, f, transformChange)
	if err != nil {
		return nil, err
	}
	return a.commitFile(ctx, fp)
}

// CheckFile validates f as ApplyFile would, storing nothing.
func (a *App) CheckFile(ctx context.Context, f config.File, transformChange string) error {
	_, err := a.prepareFile(ctx, f, transformChange)
	return err
}

// filePlan is a validated config file ready to store.
type filePlan struct {
	f     config.File
	out   []Applied // the connections'
	conns []store.Connection
	plans []pipelinePlan
}

func (a *App) prepareFile(ctx context.Context, f config.File, transformChange string) (filePlan, error) {
	stored, err := a.StoredConnections(ctx)
	if err != nil {
		return filePlan{}, err
	}
	// values sent back redacted keep the stored ones
	for i := range f.Pipelines {
		sp, err := a.Store.GetPipeline(ctx, f.Pipelines[i].Name)
		if err != nil {
			continue // new (or the name is invalid: Validate says so)
		}
		if old, err := config.ParsePipeline(sp.Spec); err == nil {
			if err := f.Pipelines[i].Unredact(old); err != nil {
				return filePlan{}, err
			}
		}
	}
	for i := range f.Connections {
		old := stored[f.Connections[i].Name]
		if err := config.Unredact(&f.Connections[i].Config, &old.Config, fmt.Sprintf("connections[%s].config", f.Connections[i].Name)); err != nil {
			return filePlan{}, err
		}
	}
	if err := config.Validate(f, a.Registry, stored, a.Secrets); err != nil {
		return filePlan{}, err
	}
	conns := maps.Clone(stored)
	out := []Applied{}
	var puts []store.Connection
	for _, c := range f.Connections {
		raw, err := config.Marshal(c)
		if err != nil {
			return filePlan{}, err
		}
		result := "created"
		if old, ok := stored[c.Name]; ok {
			result = "updated"
			if was, err := config.Marshal(old); err == nil && string(was) == string(raw) {
				result = "unchanged"
			}
		}
		conns[c.Name] = c
		puts = append(puts, store.Connection{Name: c.Name, Type: c.Type, Config: raw})
		out = append(out, Applied{Kind: "connection", Name: c.Name, Result: result})
	}
	plans := make([]pipelinePlan, 0, len(f.Pipelines))
	var ps config.Problems
	for _, p := range f.Pipelines {
		pl, err := a.planPipeline(ctx, p, transformChange, conns)
		if err != nil {
			ps = append(ps, asProblems(fmt.Sprintf("pipelines[%s]", p.Name), err)...)
			continue
		}
		plans = append(plans, pl)
	}
	if len(ps) > 0 {
		return filePlan{}, ps
	}
	return filePlan{f: f, out: out, conns: puts, plans: plans}, nil
}

// commitFile stores a prepared file in one transaction and puts it in force.
func (a *App) commitFile(ctx context.Context, fp filePlan) ([]Applied, error) {
	out, plans, f := fp.out, fp.plans, fp.f
	for i := range plans {
		if err := a.resyncFor(ctx, &plans[i]); err != nil {
			return nil, err
		}
	}
	pipes := make([]store.PipelinePut, len(plans))
	for i, pl := range plans {
		pipes[i] = pl.put
	}
	if err := a.Store.Apply(ctx, fp.conns, pipes); err != nil {
		return nil, err
	}
	for _, pl := range plans {
		if err := a.startPlanned(ctx, pl); err != nil {
			return out, err
		}
		result := "created"
		switch {
		case pl.created:
		case string(pl.old.Spec) == string(pl.put.Pipeline.Spec) && pl.old.Paused == pl.p.Paused:
			result = "unchanged"
		default:
			result = "updated"
		}
		out = append(out, Applied{Kind: "pipeline", Name: pl.p.Name, Result: result, Notice: pl.notice})
	}
	if f.Alerts != nil {
		if err := a.ApplyAlerts(ctx, *f.Alerts); err != nil {
			return out, err
		}
		out = append(out, Applied{Kind: "alerts", Result: fmt.Sprintf("%d rule(s) applied", len(f.Alerts.Rules))})
	}
	return out, nil
}

// asProblems turns err into problems under path: its own, or one at path.
func asProblems(path string, err error) config.Problems {
	var ps config.Problems
	if errors.As(err, &ps) {
		return ps // already with their paths
	}
	return config.Problems{{Path: path, Message: err.Error()}}
}

// CheckPipeline validates p as ApplyPipeline would, storing nothing.
func (a *App) CheckPipeline(ctx context.Context, p config.Pipeline) error {
	_, _, err := a.checkPipeline(ctx, &p)
	return err
}

// checkPipeline restores in p the secrets it was sent back with redacted and
// validates it against the stored connections. It returns the stored
// pipeline (nil when p is new) and the connections.
func (a *App) checkPipeline(ctx context.Context, p *config.Pipeline) (*store.Pipeline, map[string]config.Connection, error) {
	conns, err := a.StoredConnections(ctx)
	if err != nil {
		return nil, nil, err
	}
	old, err := a.checkPipelineWith(ctx, p, conns)
	return old, conns, err
}

// checkPipelineWith is checkPipeline against conns; it returns the stored
// pipeline (nil when p is new).
func (a *App) checkPipelineWith(ctx context.Context, p *config.Pipeline, conns map[string]config.Connection) (*store.Pipeline, error) {
	old, err := a.Store.GetPipeline(ctx, p.Name)
	found := err == nil
	var stored config.Pipeline
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if stored, err = config.ParsePipeline(old.Spec); err != nil {
			return nil, fmt.Errorf("stored pipeline %q: %w", p.Name, err)
		}
	}
	if err := p.Unredact(stored); err != nil {
		return nil, err
	}
	if err := config.ValidatePipeline(*p, a.Registry, conns, a.Secrets); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	return &old, nil
}

// transformsChanged reports whether p's transform chain differs from the one
// of the stored spec.
func transformsChanged(stored []byte, p config.Pipeline) (bool, error) {
	old, err := config.ParsePipeline(stored)
	if err != nil {
		return true, nil // an unreadable old spec: treat as changed
	}
	a, err := config.Marshal(old.WithDefaults().Transforms)
	if err != nil {
		return false, err
	}
	b, err := config.Marshal(p.WithDefaults().Transforms)
	if err != nil {
		return false, err
	}
	return string(a) != string(b), nil
}

func (a *App) view(sp store.Pipeline) (PipelineView, error) {
	p, err := config.ParsePipeline(sp.Spec)
	if err != nil {
		return PipelineView{}, fmt.Errorf("stored pipeline %q: %w", sp.Name, err)
	}
	spec, err := config.RedactedJSON(p)
	if err != nil {
		return PipelineView{}, err
	}
	v := PipelineView{Name: sp.Name, Spec: spec, Paused: sp.Paused, State: sp.State, LastError: sp.LastError,
		Generation: sp.Generation, CreatedAt: sp.CreatedAt, UpdatedAt: sp.UpdatedAt}
	if st, err := a.Supervisor.Status(sp.Name); err == nil {
		st.LastError = redact.Text(st.LastError)
		v.Status, v.State, v.LastError = &st, string(st.State), st.LastError
	}
	return v, nil
}

// Pipelines lists pipelines.
func (a *App) Pipelines(ctx context.Context) ([]PipelineView, error) {
	list, err := a.Store.ListPipelines(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PipelineView, 0, len(list))
	for _, sp := range list {
		v, err := a.view(sp)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Pipeline returns one pipeline.
func (a *App) Pipeline(ctx context.Context, name string) (PipelineView, error) {
	sp, err := a.Store.GetPipeline(ctx, name)
	if err != nil {
		return PipelineView{}, err
	}
	return a.view(sp)
}

// PausePipeline pauses a pipeline (it drains and stops) and remembers it.
func (a *App) PausePipeline(ctx context.Context, name string) error {
	if err := a.Store.SetPipelinePaused(ctx, name, true); err != nil {
		return err
	}
	return ignoreUnknown(a.Supervisor.Pause(name))
}

// ResumePipeline resumes a paused, failed or needs-resync pipeline.
func (a *App) ResumePipeline(ctx context.Context, name string) error {
	if err := a.Store.SetPipelinePaused(ctx, name, false); err != nil {
		return err
	}
	return ignoreUnknown(a.Supervisor.Resume(name))
}

// Leftover is what a forced delete could not clean up: which side, what it
// is, the statements that remove it by hand, and why it was left.
type Leftover struct {
	Side string `json:"side"` // source or sink
	component.Leftover
	Error string `json:"error"`
}

// DeleteReport is the answer to a forced delete.
type DeleteReport struct {
	Leftovers []Leftover `json:"leftovers"`
}

// DeletePipeline stops a pipeline and deletes it with its offsets and
// history, after its source and sink dropped the state they keep on their
// servers (a replication slot, a stored offset). When one of them cannot,
// nothing is deleted and the pipeline runs again as it was, unless force is
// set: then it is deleted anyway, and the report says what is left where and
// the statements that remove it.
func (a *App) DeletePipeline(ctx context.Context, name string, force bool) (DeleteReport, error) {
	rep := DeleteReport{Leftovers: []Leftover{}}
	sp, err := a.Store.GetPipeline(ctx, name)
	if err != nil {
		return rep, err
	}
	if err := ignoreUnknown(a.Supervisor.Remove(ctx, name)); err != nil {
		return rep, err
	}
	left, err := a.cleanup(ctx, name, force)
	if err != nil {
		// not deleted: it runs again as it was
		if p, perr := config.ParsePipeline(sp.Spec); perr == nil {
			p.Paused = sp.Paused
			if uerr := a.Supervisor.Upsert(context.WithoutCancel(ctx), a.Spec(p, a.StoredConnections)); uerr != nil {
				a.log().Error("a pipeline whose deletion failed could not be started again", "pipeline", name, "error", uerr)
			}
		}
		return rep, fmt.Errorf("pipeline %q not deleted: %w", name, err)
	}
	if err := a.Store.DeletePipeline(context.WithoutCancel(ctx), name); err != nil {
		return rep, err
	}
	for _, l := range left {
		a.log().Warn("pipeline deleted by force; clean this up by hand", "pipeline", name, "side", l.Side, "what", l.What, "sql", l.SQL, "error", l.Error)
	}
	rep.Leftovers = append(rep.Leftovers, left...)
	return rep, nil
}

func ignoreUnknown(err error) error {
	if errors.Is(err, pipeline.ErrUnknownPipeline) {
		return nil
	}
	return err
}

// cleanupTimeout bounds each side's cleanup: a server that does not answer
// leaves a forced delete with a leftover, not a hung request.
const cleanupTimeout = 20 * time.Second

// cleanup lets the pipeline's source drop what it holds on the server (a
// replication slot and publication), unless its config says to keep them, and
// its sink forget its offset at the destination. Without force the first
// failure is the error; with force each is a Leftover.
func (a *App) cleanup(ctx context.Context, name string, force bool) ([]Leftover, error) {
	sp, err := a.Store.GetPipeline(ctx, name)
	if err != nil {
		return nil, err
	}
	p, err := config.ParsePipeline(sp.Spec)
	if err != nil {
		return nil, nil // nothing can be built from it, so nothing is known to clean
	}
	conns, err := a.StoredConnections(ctx)
	if err != nil {
		return nil, err
	}
	r, err := config.Resolve(p, a.Registry, conns, a.Secrets)
	if err != nil {
		a.log().Warn("pipeline deleted without cleaning up its source and sink: its config no longer resolves", "pipeline", name, "error", err)
		return nil, nil
	}
	var left []Leftover
	clean := func(side string, c interface {
		Cleanup(context.Context) error
		Leftover() component.Leftover
	}, hint string) error {
		cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		err := c.Cleanup(cctx)
		cancel()
		if err == nil {
			return nil
		}
		msg := redact.Text(err.Error())
		if force {
			left = append(left, Leftover{Side: side, Leftover: c.Leftover(), Error: msg})
			return nil
		}
		return fmt.Errorf("clean up the %s of pipeline %q: %s: %s, or delete with force (the answer says what is left and how to remove it): %w", side, name, msg, hint, ErrUnavailable)
	}
	if src, err := a.Registry.Sources[r.SourceType].New(r.Source, sources.Deps{Pipeline: name, Logger: a.log()}); err == nil {
		if c, ok := src.(sources.Cleaner); ok {
			if err := clean("source", c, "retry when the source answers, set keep_slot_on_delete: true in its source config to keep its slot and publication"); err != nil {
				return nil, err
			}
		}
	}
	if snk, err := a.Registry.Sinks[r.SinkType].New(r.Sink, sinks.Deps{Pipeline: name, Logger: a.log()}); err == nil {
		if c, ok := snk.(sinks.Cleaner); ok {
			if err := clean("sink", c, "retry when the destination answers"); err != nil {
				return nil, err
			}
		}
	}
	return left, nil
}

// SchemaChanges lists the tables of a pipeline that its schema-change policy holds
// (and those rejected), with the proposed change.
func (a *App) SchemaChanges(ctx context.Context, name string) ([]pipeline.Hold, error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, err
	}
	holds, err := a.Store.ListHolds(ctx, name)
	if holds == nil && err == nil {
		holds = []pipeline.Hold{}
	}
	return holds, err
}

// Decisions a user can take on a held schema change.
var holdDecisions = map[string]pipeline.HoldStatus{
	"approve": pipeline.HoldApproved, "reject": pipeline.HoldRejected, "new_column": pipeline.HoldNewColumn,
}

// ErrInvalid is returned for a request that cannot be carried out as asked.
var ErrInvalid = errors.New("invalid request")

// ResolveSchemaChange records a decision (approve, reject, new_column) on a
// held table and restarts the pipeline, whose next run carries it out in order:
// the change is applied (or not), then the held changes, then the stream.
func (a *App) ResolveSchemaChange(ctx context.Context, name, table, decision string) (pipeline.Hold, error) {
	st, ok := holdDecisions[decision]
	if !ok {
		return pipeline.Hold{}, fmt.Errorf("%w: decision must be approve, reject or new_column, got %q", ErrInvalid, decision)
	}
	holds, err := a.SchemaChanges(ctx, name)
	if err != nil {
		return pipeline.Hold{}, err
	}
	id := schema.ParseTableID(table)
	i := slices.IndexFunc(holds, func(h pipeline.Hold) bool { return h.Table == id })
	if i < 0 {
		return pipeline.Hold{}, fmt.Errorf("no schema change held for table %s of pipeline %q: %w", table, name, ErrNotFound)
	}
	h := holds[i]
	if st == pipeline.HoldNewColumn && !slices.ContainsFunc(h.Proposed.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.RenameColumn }) {
		return pipeline.Hold{}, config.Problems{{Path: "decision", Message: fmt.Sprintf("new_column applies to renamed columns, and the change held for %s renames none; approve or reject it", table)}}
	}
	if err := a.Store.ResolveHold(ctx, name, id, st); err != nil {
		return pipeline.Hold{}, err
	}
	a.log().Info("schema change resolved", "pipeline", name, "table", table, "decision", decision)
	if err := ignoreUnknown(a.Supervisor.Restart(name)); err != nil {
		return pipeline.Hold{}, err
	}
	h.Status = st
	return h, nil
}

// Skipped lists the newest changes a transform failed on and the pipeline
// skipped (on_transform_error: skip), at most limit.
func (a *App) Skipped(ctx context.Context, name string, limit int) ([]store.SkippedChange, error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, err
	}
	return a.Store.ListSkipped(ctx, name, limit)
}
