package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/prometheus/client_golang/prometheus"
)

// Sink applies batches to a destination.
type Sink interface {
	// Open connects to the destination. On ctx cancel it returns ctx's error.
	Open(ctx context.Context) error
	// Apply applies schema deltas before the rows that need them. Applying a delta
	// again is a no-op. A delta the destination cannot apply returns a permanent
	// error that names the table and column.
	Apply(ctx context.Context, deltas []schema.Delta) error
	// Write durably applies the batch's changes. It is idempotent: writing the same
	// batch again, or an older one after a newer one, never duplicates a change and
	// never moves a row back to an older version. It returns only when the changes
	// are durable. The batch is owned by the caller and must not be retained.
	Write(ctx context.Context, b *schema.Batch) error
	// Close releases the destination. It is idempotent and may be called without Open.
	Close(ctx context.Context) error
}

// Checker is implemented by sinks that can check their configuration against the
// live destination. Check returns nil or an error joining every problem found.
type Checker interface {
	Check(ctx context.Context) error
}

// Deps is what a sink gets from the engine.
type Deps struct {
	Pipeline string
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
}

// Factory builds a sink from its config.
type Factory = component.Factory[Sink, Deps]

// CollapseByKey returns the changes of b keeping, per table and primary key, only
// the newest one (the last, since positions increase within a batch), in the order
// of their last occurrence. Truncates are kept in place and drop the earlier changes
// of their table. Sweeps (the end of a table's resync) go last, in their order: a
// sink applies them after the batch's rows, which all postdate the resync's start
// (see SplitSweeps). Sinks that upsert use it so that one statement sees each key once.
//
// A kept change whose After marks a column unchanged (unchanged TOAST) takes that
// column's value from the key's earlier change in the batch when that one carried
// it, so collapsing never loses a value the batch held; the marker stays only where
// no change of the batch knew the value.
func CollapseByKey(changes []schema.Change) []schema.Change {
	type key struct {
		t schema.TableID
		k string
	}
	type entry struct {
		last  int
		after schema.Row // the key's newest known image (unchanged markers filled in)
	}
	last := make(map[key]*entry, len(changes))
	truncatedAt := map[schema.TableID]int{}
	var kb []byte
	var sweeps []schema.Change
	for i := range changes {
		c := &changes[i]
		if c.Op == schema.OpSweep {
			continue
		}
		if c.Op == schema.OpTruncate {
			truncatedAt[c.Table] = i
			for k := range last {
				if k.t == c.Table {
					delete(last, k)
				}
			}
			continue
		}
		kb = c.Key.AppendJSON(kb[:0])
		k := key{c.Table, string(kb)}
		e := last[k]
		if e == nil {
			e = &entry{}
			last[k] = e
		}
		e.last = i
		switch {
		case c.Op == schema.OpDelete:
			e.after = nil
		case e.after != nil && hasUnchanged(c.After):
			e.after = fillUnchanged(c.After, e.after)
		default:
			e.after = c.After
		}
	}
	out := make([]schema.Change, 0, len(last)+len(truncatedAt))
	for i := range changes {
		c := &changes[i]
		if at, ok := truncatedAt[c.Table]; ok && i < at {
			continue
		}
		if c.Op == schema.OpSweep {
			sweeps = append(sweeps, *c)
			continue
		}
		if c.Op == schema.OpTruncate {
			if truncatedAt[c.Table] == i {
				out = append(out, *c)
			}
			continue
		}
		kb = c.Key.AppendJSON(kb[:0])
		if e := last[key{c.Table, string(kb)}]; e != nil && e.last == i {
			kept := *c
			if c.Op != schema.OpDelete {
				kept.After = e.after
			}
			out = append(out, kept)
		}
	}
	return append(out, sweeps...)
}

// SplitSweeps splits one table's collapsed changes into the rows (and
// truncate) to write and the sweeps to apply after them. A sweep removes the
// live rows whose version is older than its Since, whenever it runs: a row of
// the batch older than Since goes whether written before or after it, a newer
// one stays either way, so writing the rows first leaves what an in-order
// application would.
func SplitSweeps(changes []schema.Change) (rows, sweeps []schema.Change) {
	n := len(changes)
	for n > 0 && changes[n-1].Op == schema.OpSweep {
		n--
	}
	return changes[:n], changes[n:]
}

func hasUnchanged(r schema.Row) bool {
	for _, f := range r {
		if f.Value.Kind() == schema.KindUnchanged {
			return true
		}
	}
	return false
}

// fillUnchanged returns a copy of r with its unchanged markers replaced by prev's
// values of the same columns, where prev has them.
func fillUnchanged(r, prev schema.Row) schema.Row {
	out := r.Clone()
	for i, f := range out {
		if f.Value.Kind() != schema.KindUnchanged {
			continue
		}
		if v, ok := prev.Get(f.Name); ok {
			out[i].Value = v
		}
	}
	return out
}

// OffsetStorer is implemented by sinks that commit the pipeline's offset in the
// same transaction as the data (exactly-once effect). The engine then uses the sink
// as the pipeline's offset store.
type OffsetStorer interface {
	offsets.Store
}

// Cleaner is implemented by sinks that keep per-pipeline state at the
// destination besides the data (a stored offset). Cleanup, called when the
// pipeline is deleted, removes that state and keeps the data. Leftover says
// what Cleanup removes and the statements that remove it by hand, for a
// forced delete that could not run it: left in place, a pipeline of the same
// name created later would resume from the old offset.
type Cleaner interface {
	Cleanup(ctx context.Context) error
	Leftover() component.Leftover
}

// NulledValues is the counter of values a sink stored as NULL because the
// destination column could not hold them (an on_unrepresentable: null policy),
// shared by every sink on reg.
func NulledValues(reg prometheus.Registerer) *prometheus.CounterVec {
	return component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_sink_values_nulled_total",
		Help: "Values stored as NULL because the destination column could not hold them (on_unrepresentable: null).",
	}, []string{"pipeline", "table", "column"}))
}

// SweptRows is the counter of rows the end of a table's resync (a sweep) found
// gone from the source and deleted at the destination, shared by every sink on
// reg.
func SweptRows(reg prometheus.Registerer) *prometheus.CounterVec {
	return component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_sink_swept_rows_total",
		Help: "Rows a table's resync found gone from the source and deleted at the destination.",
	}, []string{"pipeline", "table"}))
}

// Fills returns the values d's added columns give the rows a sink wrote before
// the delta (schema.Existing: what those rows hold at the source, which the log
// never carried), one field per column, in step order; nil when there are
// none. A sink writes them into rows whose version is below d.Pos only, so
// applying the delta again never touches a row written after it: a delta with
// fills and no position is a permanent error.
func Fills(d schema.Delta) (schema.Row, error) {
	var row schema.Row
	for _, ch := range d.Changes {
		if v, ok := ch.Fill(); ok {
			row = append(row, schema.Field{Name: ch.Column.Name, Value: v})
		}
	}
	if len(row) > 0 && d.Pos == nil {
		return nil, component.Permanent(fmt.Errorf("table %s: the delta adding column %s carries no position to fill older rows up to", d.Table.ID, row[0].Name))
	}
	return row, nil
}

// AlteredValues is the counter of values a sink stored as another value
// because the destination has no form for them that tells them apart (a NULL
// array is [] in ClickHouse, where an Array cannot be NULL; a JSON null where
// the value is written as JSON text reads as NULL), shared by every sink on
// reg. docs/type-mappings.md lists them.
func AlteredValues(reg prometheus.Registerer) *prometheus.CounterVec {
	return component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_sink_values_altered_total",
		Help: "Values stored as another value because the destination has no form that tells them apart (a NULL array as [] in ClickHouse; a JSON null written as JSON text, which reads as NULL).",
	}, []string{"pipeline", "table", "column"}))
}

// JSONNull reports whether v is, or (in an array, at any depth) holds, the
// JSON value null: written as JSON text it reads back as NULL.
func JSONNull(v schema.Value) bool {
	switch v.Kind() {
	case schema.KindJSON:
		return strings.TrimSpace(v.Text()) == "null"
	case schema.KindArray:
		for _, e := range v.Elems() {
			if JSONNull(e) {
				return true
			}
		}
	}
	return false
}

// DDLPlanner is implemented by sinks that can say which statements applying a
// delta would run at the destination, in their own dialect and under the
// table's destination name, without running them: what a schema change held
// for a person's decision shows. The destination is only read.
type DDLPlanner interface {
	PlanDDL(ctx context.Context, d schema.Delta) ([]string, error)
}

// TableLostError is returned by Apply and Write when the destination table of
// a table the pipeline has replicated before is gone: dropped or renamed at
// the destination behind the sink's back (or a transform now routes the table
// to a name that does not exist yet). Recreating it empty would leave a
// replica that says it streams while it lacks every row written before, so a
// sink never does that for a known table: the engine resyncs the table, whose
// fresh read announces it with a CreateTable the sink then honours.
type TableLostError struct {
	Table schema.TableID // the destination table, as the sink got it
	Dest  string         // its name at the destination, when known
	// Truncated: the table exists, but was truncated at the destination
	// (a TRUNCATE cdcd did not run); its rows are gone all the same.
	Truncated bool
}

func (e *TableLostError) Error() string {
	dest := "the destination table"
	if e.Dest != "" {
		dest = "destination table " + e.Dest
	}
	if e.Truncated {
		return fmt.Sprintf("%s for %s was truncated at the destination behind cdcd's back (its rows must be read again: resync the table)", dest, e.Table)
	}
	return fmt.Sprintf("%s for %s does not exist any more: it was dropped or renamed at the destination (its rows must be read again: resync the table)", dest, e.Table)
}

// Permanent makes the error stop a run that cannot resync the table.
func (e *TableLostError) Permanent() bool { return true }

// TableError is a Write or Apply error that concerns one table: the engine
// shows that table as failed, with the error, until a run commits again. It
// is transparent: errors.Is, errors.As and the error's class see what it
// wraps.
type TableError struct {
	Table schema.TableID // the destination table, as the sink got it
	Err   error
}

func (e *TableError) Error() string { return e.Err.Error() }
func (e *TableError) Unwrap() error { return e.Err }

// ForTable returns err as a TableError of table (nil stays nil; an error that
// already names a table keeps it).
func ForTable(table schema.TableID, err error) error {
	var te *TableError
	if err == nil || errors.As(err, &te) {
		return err
	}
	return &TableError{Table: table, Err: err}
}

// Cataloger is implemented by sinks that can list the tables that already
// exist where they write (GET …/connections/{name}/catalog?role=destination),
// a page at a time, outside any pipeline and without Open. It only reads.
type Cataloger interface {
	Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error)
}

// TableChecker is implemented by sinks that can tell whether a table's
// destination exists. The engine asks after a failed write, so that a table
// dropped while the sink had it cached is reported like one found missing.
type TableChecker interface {
	DestinationExists(ctx context.Context, table schema.TableID) (bool, error)
}
