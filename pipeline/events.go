package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// Event is one entry of a pipeline's event log: what happened to it, in
// words a user can act on. Seq orders a pipeline's events; the recorder
// assigns it.
type Event struct {
	Seq      int64      `json:"seq"`
	Pipeline string     `json:"pipeline"`
	At       time.Time  `json:"at"`
	Kind     EventKind  `json:"kind"`
	Level    EventLevel `json:"level"`
	Table    string     `json:"table,omitempty"`
	Message  string     `json:"message"`
}

// EventKind says what an event is about.
type EventKind string

// Event kinds.
const (
	EventState        EventKind = "state"         // the pipeline started, stopped, paused, failed …
	EventError        EventKind = "error"         // an attempt failed (retried, or not)
	EventWarning      EventKind = "warning"       // a source warning (sources.Warner)
	EventSchemaChange EventKind = "schema_change" // a schema change applied, held, resolved
	EventSnapshot     EventKind = "snapshot"      // a table's snapshot began or ended
	EventVerify       EventKind = "verify"        // a verify of the replica ended
)

// EventLevel is an event's severity.
type EventLevel string

// Event levels.
const (
	LevelInfo    EventLevel = "info"
	LevelWarning EventLevel = "warning"
	LevelError   EventLevel = "error"
)

// EventRecorder keeps events. RecordEvent never fails the pipeline: a
// recorder that cannot keep an event logs why.
type EventRecorder interface {
	RecordEvent(ctx context.Context, e Event)
}

// event records an event of the runner's pipeline, if anyone listens.
func (r *Runner) event(ctx context.Context, kind EventKind, level EventLevel, table, format string, args ...any) {
	if r.cfg.Events == nil {
		return
	}
	r.cfg.Events.RecordEvent(context.WithoutCancel(ctx), Event{Pipeline: r.cfg.Pipeline, At: time.Now().UTC(), Kind: kind, Level: level,
		Table: table, Message: fmt.Sprintf(format, args...)})
}

// snapshotWatch turns the source's per-table snapshot progress into events: a
// table's snapshot began, and ended (durable) with its row count.
type snapshotWatch struct {
	seen map[string]bool // table → done already reported
}

func (w *snapshotWatch) observe(ctx context.Context, r *Runner, st *sources.Status) {
	if st == nil {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	for _, t := range st.Tables {
		name := t.Table.String()
		done, known := w.seen[name]
		switch {
		case !known && !t.Done:
			w.seen[name] = false
			r.event(ctx, EventSnapshot, LevelInfo, name, "snapshot of %s began (%s)", name, estimate(t.RowsEstimated))
		case !known:
			w.seen[name] = true // done before this run: said by an earlier one
		case !done && t.Done:
			w.seen[name] = true
			r.event(ctx, EventSnapshot, LevelInfo, name, "snapshot of %s done: %d rows", name, t.RowsDone)
		}
	}
}

func estimate(n int64) string {
	if n < 0 {
		return "no row estimate: the table has no statistics"
	}
	return fmt.Sprintf("about %d rows", n)
}

// describe says what a delta changes: "add_column email, rename_column …".
func describe(d schema.Delta) string {
	parts := make([]string, 0, len(d.Changes))
	for _, c := range d.Changes {
		parts = append(parts, c.Op.String()+" "+c.Column.Name)
	}
	return strings.Join(parts, ", ")
}
