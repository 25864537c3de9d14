package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/cdcd-dev/cdcd/verify"
	"github.com/prometheus/client_golang/prometheus"
)

// VerifyReport is the outcome of a verify run.
type VerifyReport struct {
	Pipeline  string    `json:"pipeline"`
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	// Equal is true when every compared table is equal.
	Equal  bool            `json:"equal"`
	Tables []verify.Result `json:"tables"`
	// SourceBytes and DestinationBytes are what verify moved over the network
	// to and from each database.
	SourceBytes      int64 `json:"source_bytes"`
	DestinationBytes int64 `json:"destination_bytes"`
	// Repair is the resync --repair requested for the tables that differ.
	Repair *ResyncReport `json:"repair,omitempty"`
	// Scheduled is true for a run of the pipeline's verify.every schedule.
	Scheduled bool `json:"scheduled,omitempty"`
}

// VerifyOptions are a verify run's choices.
type VerifyOptions struct {
	Tables []string
	// Repair resyncs the tables found different.
	Repair    bool
	Scheduled bool
	// Settle is how long to wait for the stream before differing keys are
	// checked again (default: four batch max_waits, at least 1s).
	Settle time.Duration
}

// verifyMetrics are the gauges of the last verify of each pipeline's tables.
type verifyMetrics struct {
	rows *prometheus.GaugeVec
	last *prometheus.GaugeVec
}

func (a *App) verifyMetrics() *verifyMetrics {
	return &verifyMetrics{
		rows: component.Register(a.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_verify_rows",
			Help: "Rows the pipeline's last verify found missing at the destination, extra there, or different, per table.",
		}, []string{"pipeline", "table", "kind"})),
		last: component.Register(a.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_verify_last_run_timestamp_seconds",
			Help: "When the pipeline's last verify finished (Unix seconds), by outcome: equal, different or error.",
		}, []string{"pipeline", "outcome"})),
	}
}

// maxSettle bounds how long a verify re-check waits for a pipeline that is
// behind.
const maxSettle = 2 * time.Minute

// VerifyPipeline compares a pipeline's source tables with their destination
// tables (all of them, or those named) without copying them out, records the
// report (API, metrics, events), and with Repair resyncs the tables that
// differ. Tables a transform applies to are reported, not compared: their
// destination rows are not the source's.
func (a *App) VerifyPipeline(ctx context.Context, name string, o VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Pipeline: name, StartedAt: time.Now().UTC(), Tables: []verify.Result{}, Scheduled: o.Scheduled}
	sp, err := a.loadPipeline(ctx, name)
	if err != nil {
		return rep, err
	}
	src, err := a.source(sp)
	if err != nil {
		return rep, err
	}
	snk, err := a.Registry.Sinks[sp.r.SinkType].New(sp.r.Sink, sinks.Deps{Pipeline: name, Logger: a.log()})
	if err != nil {
		return rep, fmt.Errorf("%w: pipeline %q: %w", ErrInvalid, name, err)
	}
	so, sok := src.(verify.Opener)
	do, dok := snk.(verify.Opener)
	switch {
	case !sok:
		return rep, fmt.Errorf("the %s source of pipeline %q cannot be verified: %w", sp.r.SourceType, name, ErrConflict)
	case !dok:
		return rep, fmt.Errorf("the %s sink of pipeline %q cannot be verified: %w", sp.r.SinkType, name, ErrConflict)
	}
	reg, err := schema.NewRegistry(ctx, a.Store, name)
	if err != nil {
		return rep, err
	}
	shapes := map[schema.TableID]schema.Table{}
	var all []schema.TableID
	for _, t := range reg.Tables() {
		shapes[t.ID] = t
		all = append(all, t.ID)
	}
	if lister, ok := src.(sources.TableLister); ok {
		all = lister.Tables()
	}
	ids, err := pick(name, all, o.Tables)
	if err != nil {
		return rep, err
	}

	srcSide, err := so.OpenVerify(ctx)
	if errors.Is(err, verify.ErrUnsupported) {
		return rep, fmt.Errorf("pipeline %q: the source cannot be verified: %v: %w", name, err, ErrConflict)
	}
	if err != nil {
		return rep, fmt.Errorf("pipeline %q: verify: connect to the source: %v: %w", name, sp.scrub(err), ErrUnavailable)
	}
	defer srcSide.Close()
	dstSide, err := do.OpenVerify(ctx)
	if errors.Is(err, verify.ErrUnsupported) {
		return rep, fmt.Errorf("pipeline %q: the destination cannot be verified: %v: %w", name, err, ErrConflict)
	}
	if err != nil {
		return rep, fmt.Errorf("pipeline %q: verify: connect to the destination: %v: %w", name, sp.scrub(err), ErrUnavailable)
	}
	defer dstSide.Close()

	settle := o.Settle
	if settle <= 0 {
		// long enough for a change in flight to reach the destination: a
		// few batch waits, at least a second
		settle = max(time.Second, 4*time.Duration(sp.r.Pipeline.Batch.MaxWait))
	}
	// a re-check waits settle, then for as long as the pipeline is further
	// behind than that (a loaded server), up to maxSettle: what it had read
	// at the check before is then at the destination
	opts := verify.Options{Settle: func(ctx context.Context) error {
		deadline := time.Now().Add(maxSettle)
		for wait := settle; ; wait = 200 * time.Millisecond {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			st, err := a.Supervisor.Status(name)
			if err != nil || !st.Running || time.Now().After(deadline) {
				return nil
			}
			if lag := st.Progress.LagSeconds; lag != nil && *lag <= settle.Seconds() {
				return nil
			}
		}
	}}
	for _, id := range ids {
		res := verify.Result{Table: id.String()}
		shape, ok := shapes[id]
		tr := transformed(sp, id)
		var plan *verify.Table
		switch {
		case !ok:
			res.Status, res.Note = verify.StatusSkipped, "not replicated yet: the pipeline has not read the table"
		case tr != "":
			res.Status, res.Note = verify.StatusSkipped, fmt.Sprintf("transform %s applies to the table: its destination rows are not the source's", tr)
		default:
			if plan, err = verify.Plan(shape); err != nil {
				res.Status, res.Note = verify.StatusSkipped, err.Error()
			}
		}
		if plan != nil {
			res = verify.Compare(ctx, srcSide, dstSide, plan, opts)
			if res.Error != "" {
				res.Error = scrub(res.Error, sp.secrets)
			}
		}
		if res.Columns == nil {
			res.Columns = []string{}
		}
		rep.Tables = append(rep.Tables, res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	rep.Seconds = time.Since(rep.StartedAt).Seconds()
	rep.SourceBytes, rep.DestinationBytes = srcSide.Bytes(), dstSide.Bytes()
	rep.Equal = true
	var differ []string
	outcome := "equal"
	for _, t := range rep.Tables {
		switch t.Status {
		case verify.StatusDifferent:
			differ = append(differ, t.Table)
			rep.Equal = false
			outcome = "different"
		case verify.StatusError:
			rep.Equal = false
			if outcome == "equal" {
				outcome = "error"
			}
		}
	}
	a.recordVerify(ctx, rep, outcome)
	if o.Repair && len(differ) > 0 {
		rr, err := a.ResyncPipeline(ctx, name, differ)
		if err != nil {
			return rep, fmt.Errorf("pipeline %q: verify found differences in %s; the repair failed: %w", name, strings.Join(differ, ", "), err)
		}
		rep.Repair = &rr
		a.saveVerify(ctx, rep)
	}
	return rep, nil
}

// transformed returns the name of a transform of the pipeline that applies to
// table id, or "".
func transformed(sp storedPipeline, id schema.TableID) string {
	for i, t := range sp.p.Transforms {
		if (transforms.Step{Tables: t.Tables}).Matches(id) {
			if t.Name != "" {
				return t.Name
			}
			return fmt.Sprintf("%s (transforms[%d])", t.Type, i)
		}
	}
	return ""
}

// recordVerify keeps the report: in the store, in the metrics and as an event.
func (a *App) recordVerify(ctx context.Context, rep VerifyReport, outcome string) {
	m := a.verifyMetrics()
	for _, t := range rep.Tables {
		if t.Status == verify.StatusEqual || t.Status == verify.StatusDifferent {
			m.rows.WithLabelValues(rep.Pipeline, t.Table, "missing").Set(float64(t.Missing))
			m.rows.WithLabelValues(rep.Pipeline, t.Table, "extra").Set(float64(t.Extra))
			m.rows.WithLabelValues(rep.Pipeline, t.Table, "different").Set(float64(t.Different))
		}
	}
	for _, o := range []string{"equal", "different", "error"} {
		m.last.DeleteLabelValues(rep.Pipeline, o)
	}
	m.last.WithLabelValues(rep.Pipeline, outcome).Set(float64(time.Now().Unix()))
	a.saveVerify(ctx, rep)
	if a.Hub == nil {
		return
	}
	level, msg := pipeline.LevelInfo, ""
	var parts []string
	for _, t := range rep.Tables {
		switch t.Status {
		case verify.StatusDifferent:
			parts = append(parts, fmt.Sprintf("%s: %d missing, %d extra, %d different (source %d rows, destination %d)", t.Table, t.Missing, t.Extra, t.Different, t.SourceRows, t.DestRows))
		case verify.StatusError:
			parts = append(parts, fmt.Sprintf("%s: could not be compared: %s", t.Table, t.Error))
		}
	}
	switch outcome {
	case "equal":
		msg = fmt.Sprintf("verify: every compared table equals the source (%d tables, %.1fs)", len(rep.Tables), rep.Seconds)
	default:
		level = pipeline.LevelWarning
		msg = "verify found differences: " + strings.Join(parts, "; ") + fmt.Sprintf(" (repair with: cdcd pipelines verify %s --repair)", rep.Pipeline)
		if outcome == "error" {
			msg = "verify could not compare every table: " + strings.Join(parts, "; ")
		}
	}
	a.Hub.RecordEvent(ctx, pipeline.Event{Pipeline: rep.Pipeline, At: time.Now().UTC(), Kind: pipeline.EventVerify, Level: level, Message: msg})
}

func (a *App) saveVerify(ctx context.Context, rep VerifyReport) {
	doc, err := json.Marshal(rep)
	if err == nil {
		err = store.Verifications(a.Store).SaveVerification(context.WithoutCancel(ctx), rep.Pipeline, store.Verification{At: rep.StartedAt, Report: doc})
	}
	if err != nil {
		a.log().Error("verify report not stored", "pipeline", rep.Pipeline, "error", err)
	}
}

// Verifications returns a pipeline's newest verify reports, newest first.
func (a *App) Verifications(ctx context.Context, name string, limit int) ([]VerifyReport, error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, err
	}
	vs, err := store.Verifications(a.Store).ListVerifications(ctx, name, limit)
	if err != nil {
		return nil, err
	}
	out := make([]VerifyReport, 0, len(vs))
	for _, v := range vs {
		var r VerifyReport
		if err := json.Unmarshal(v.Report, &r); err != nil {
			return nil, fmt.Errorf("stored verify report of pipeline %q: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// VerifySchedule runs each stored pipeline's scheduled verifies (its
// verify.every) until ctx ends: one verify at a time, of pipelines that run
// (streaming or snapshotting), each when its last report is older than its
// period. A verify that fails is logged and recorded as an event; the next
// comes a period later.
func (a *App) VerifySchedule(ctx context.Context) error {
	const maxSleep = 5 * time.Second // new and changed pipelines are seen within it
	last := map[string]time.Time{}   // of the attempts made by this loop
	for {
		next := time.Now().Add(maxSleep)
		list, err := a.Store.ListPipelines(ctx)
		if err != nil && ctx.Err() == nil {
			a.log().Warn("verify schedule: list the pipelines", "error", err)
		}
		for _, sp := range list {
			if ctx.Err() != nil {
				return nil
			}
			p, err := config.ParsePipeline(sp.Spec)
			if err != nil || p.Verify.Every <= 0 || sp.Paused {
				continue
			}
			every := time.Duration(p.Verify.Every)
			if st, err := a.Supervisor.Status(sp.Name); err != nil || !settled(st) {
				// a snapshot or resync under way is no replica to verify yet
				next = minTime(next, time.Now().Add(max(time.Second, min(every, maxSleep))))
				continue
			}
			prev := last[sp.Name]
			if vs, err := store.Verifications(a.Store).ListVerifications(ctx, sp.Name, 1); err == nil && len(vs) > 0 && vs[0].At.After(prev) {
				prev = vs[0].At
			}
			due := prev.Add(every)
			if time.Now().Before(due) {
				next = minTime(next, due)
				continue
			}
			last[sp.Name] = time.Now()
			rep, err := a.VerifyPipeline(ctx, sp.Name, VerifyOptions{Repair: p.Verify.Repair, Scheduled: true})
			switch {
			case err != nil && ctx.Err() == nil:
				a.log().Warn("scheduled verify failed", "pipeline", sp.Name, "error", err)
				if a.Hub != nil {
					a.Hub.RecordEvent(ctx, pipeline.Event{Pipeline: sp.Name, At: time.Now().UTC(), Kind: pipeline.EventVerify, Level: pipeline.LevelWarning,
						Message: fmt.Sprintf("scheduled verify failed: %v", err)})
				}
			case err == nil:
				a.log().Info("scheduled verify done", "pipeline", sp.Name, "equal", rep.Equal, "seconds", rep.Seconds)
			}
			next = minTime(next, time.Now().Add(every))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
	}
}

// settled reports whether a pipeline streams with every table's snapshot (or
// resync) done: a replica verify can compare.
func settled(st pipeline.Status) bool {
	if st.State != pipeline.StateStreaming {
		return false
	}
	for _, t := range st.Progress.Tables {
		if t.State == pipeline.TableSnapshotting || t.State == pipeline.TableResyncing {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
