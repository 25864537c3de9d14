package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// HoldStatus is where a held table stands.
type HoldStatus string

// The hold states. A pending hold keeps the table's changes aside; the others are
// a user's decision, carried out by the next run.
const (
	HoldPending   HoldStatus = "pending"
	HoldApproved  HoldStatus = "approved"   // apply the change as proposed, then the held changes
	HoldNewColumn HoldStatus = "new_column" // renames become new columns, then the held changes
	HoldRejected  HoldStatus = "rejected"   // the destination table stays as it is; the table is no longer replicated
)

// Hold is one table held by a schema-change policy.
type Hold struct {
	Table  schema.TableID `json:"table"` // the destination table (after transforms)
	Status HoldStatus     `json:"status"`
	// Reason says which change held the table and which policy field to change.
	Reason string `json:"reason"`
	// Proposed is the held schema change: its steps, and the table as it would be.
	Proposed schema.Delta `json:"proposed"`
	// DDL renders the proposed steps as generic SQL for people to read; each sink
	// issues its own dialect.
	DDL []string `json:"ddl"`
	// Since is the source position of the first held change.
	Since offsets.Position `json:"since,omitempty"`
	// Watermark is at or above every position written to the sink while the hold
	// exists; held changes are replayed only after the stream passed it, so they sort
	// after everything the sink has already seen.
	Watermark offsets.Position `json:"-"`
	// Held counts the changes kept aside; Drained is the last entry replayed.
	Held       int64     `json:"held_changes"`
	Drained    int64     `json:"-"`
	Dropped    int64     `json:"dropped_changes,omitempty"` // changes discarded after a reject
	CreatedAt  time.Time `json:"created_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// HeldEntry is one delta or change of a held table, in stream order.
type HeldEntry struct {
	Table schema.TableID
	// Key orders and deduplicates entries: the source position plus a kind byte.
	// A replay after a crash appends only entries above the hold's last key; nil
	// keys are always appended.
	Key    []byte
	Delta  *schema.Delta
	Change *schema.Change
	Seq    int64 // assigned by the store, increasing per table
}

// HoldStore keeps held tables and their changes durably, fenced by the run's
// lease: one pipeline, one epoch (internal/store implements it).
type HoldStore interface {
	LoadHolds(ctx context.Context) ([]Hold, error)
	// Spool creates the new holds, appends entries (skipping those at or below a
	// hold's last key), adds to the dropped counts of rejected holds and raises
	// every hold's watermark to watermark (when not nil), in one durable
	// transaction.
	Spool(ctx context.Context, created []Hold, entries []HeldEntry, dropped map[schema.TableID]int64, watermark offsets.Position) error
	// ReadHeld returns up to limit entries of table after seq, in order.
	ReadHeld(ctx context.Context, table schema.TableID, afterSeq int64, limit int) ([]HeldEntry, error)
	// MarkDrained records that entries up to seq reached the sink.
	MarkDrained(ctx context.Context, table schema.TableID, seq int64) error
	// FinishHold deletes the table's entries, and its hold unless keep is set (a
	// rejected hold is kept: it tells later runs to drop the table's changes).
	FinishHold(ctx context.Context, table schema.TableID, keep bool) error
}

// SkipStore records the changes a transform failed on and the chain skipped,
// durably before their batch's offset is committed.
type SkipStore interface {
	RecordSkipped(ctx context.Context, skipped []transforms.Skipped) error
}

// entry keys: a delta sorts before a change at the same position.
const (
	keyDelta  = 0
	keyChange = 1
)

func entryKey(pos offsets.Position, kind byte) []byte {
	if pos == nil {
		return nil
	}
	return append(bytes.Clone(pos), kind)
}

// restamp gives the i-th replayed change of a hold a position just above base
// (the last position the sink was given before the replay) and below every later
// source position, so a sink's replay skip and version guard treat held changes
// as the newest of their table.
func restamp(base offsets.Position, seq int64) offsets.Position {
	p := offsets.AppendUint(bytes.Clone(base), 0)
	return offsets.AppendUint(p, uint64(seq))
}

// evolver applies a pipeline's schema-change policy in the transform stage. It is
// used by that one goroutine only.
type evolver struct {
	policy schema.Evolution
	holds  map[schema.TableID]*Hold
	shapes map[schema.TableID]schema.Table // the last shape seen per table
	now    func() time.Time
	// lastEmitted is the last position of the previous write batch.
	lastEmitted offsets.Position
}

// routed is what the evolver took out of a batch.
type routed struct {
	entries []HeldEntry
	created []Hold
	drain   []Hold
	dropped map[schema.TableID]int64
}

func (r *routed) empty() bool {
	return len(r.entries) == 0 && len(r.created) == 0 && len(r.drain) == 0 && len(r.dropped) == 0
}

func (r *routed) add(o routed) {
	r.entries = append(r.entries, o.entries...)
	r.created = append(r.created, o.created...)
	r.drain = append(r.drain, o.drain...)
	for t, n := range o.dropped {
		if r.dropped == nil {
			r.dropped = map[schema.TableID]int64{}
		}
		r.dropped[t] += n
	}
}

// step decides one step of a delta: the step to pass on (nil: none), whether it
// holds the table, and why.
func step(p schema.EvolutionPolicy, t schema.TableID, s schema.ColumnChange) (*schema.ColumnChange, bool, string, error) {
	decide := func(a schema.Action, field, what string) (*schema.ColumnChange, bool, string, error) {
		switch a {
		case schema.ActionHold:
			return nil, true, fmt.Sprintf("%s (schema_changes.%s: hold)", what, field), nil
		case schema.ActionFail:
			return nil, false, "", component.Permanent(fmt.Errorf("table %s: %s, and schema_changes.%s is fail: change the policy (hold, or apply) or the source, then resume", t, what, field))
		case schema.ActionKeep: // drops: sinks keep the destination column on a drop step
			return &s, false, "", nil
		case schema.ActionNewColumn:
			add := schema.ColumnChange{Op: schema.AddColumn, Column: s.Column}
			return &add, false, "", nil
		}
		return &s, false, "", nil
	}
	switch s.Op {
	case schema.AddColumn:
		if e := s.Column.Existing; e != nil && e.Unknown != "" {
			// the rows already there hold a value the log never carried: a person
			// decides whether NULL will do for them at the destination
			what := unknownExisting([]string{s.Column.Name}, e.Unknown)
			if p.AddColumn == schema.ActionFail {
				return decide(p.AddColumn, "add_column", what)
			}
			return nil, true, what, nil
		}
		return decide(p.AddColumn, "add_column", fmt.Sprintf("column %s was added", s.Column.Name))
	case schema.DropColumn:
		return decide(p.DropColumn, "drop_column", fmt.Sprintf("column %s was dropped", s.Column.Name))
	case schema.RenameColumn:
		return decide(p.RenameColumn, "rename_column", fmt.Sprintf("column %s was renamed to %s", s.Old.Name, s.Column.Name))
	case schema.AlterColumnType:
		if schema.Widens(s.Old.Type, s.Column.Type) {
			return decide(p.Widen, "widen", fmt.Sprintf("column %s was widened from %s to %s", s.Column.Name, s.Old.Type, s.Column.Type))
		}
		st, hold, why, err := decide(p.Narrow, "narrow", fmt.Sprintf("column %s changed type from %s to %s, which may not hold every value it held", s.Column.Name, s.Old.Type, s.Column.Type))
		if st != nil && p.Narrow == schema.ActionApply {
			return nil, false, "", nil // the destination keeps its wider type; new values fit it
		}
		return st, hold, why, err
	case schema.SetPrimaryKey:
		return decide(p.KeyChange, "key_change", "the primary key changed")
	}
	return &s, false, "", nil
}

// unknownExisting says why added columns hold a table: the rows already there
// hold values the source cannot tell.
func unknownExisting(cols []string, why string) string {
	return fmt.Sprintf("column %s added, and the rows already there hold values the source cannot tell (%s): approve to leave them NULL in those rows at the destination (rows changed later carry their own), or reject and resync the table",
		strings.Join(cols, ", "), why)
}

// route applies the policy to b (after the transform chain): deltas and changes
// of held tables move out of b into entries, rejected tables' changes are dropped,
// and holds whose resolution may now be carried out are returned in drain.
func (e *evolver) route(b *schema.Batch) (routed, error) {
	var out routed
	// resolved holds replay once the stream has passed everything the sink saw
	if e.lastEmitted != nil {
		for id, h := range e.holds {
			if (h.Status == HoldApproved || h.Status == HoldNewColumn) && e.lastEmitted.Compare(h.Watermark) >= 0 {
				out.drain = append(out.drain, *h)
				delete(e.holds, id)
			}
		}
		slices.SortFunc(out.drain, func(a, b Hold) int { return strings.Compare(a.Table.String(), b.Table.String()) })
	}
	at := b.Checkpoint
	if len(b.Changes) > 0 {
		at = b.Changes[0].Pos
	}
	deltas := b.Deltas[:0]
	for _, d := range b.Deltas {
		id := d.Table.ID
		prev := e.shapes[id] // zero when unknown: InferRenames then pairs by type alone
		e.shapes[id] = d.Table
		if h := e.holds[id]; h != nil {
			if h.Status != HoldRejected {
				d := d
				out.entries = append(out.entries, HeldEntry{Table: id, Key: entryKey(at, keyDelta), Delta: &d})
			}
			continue
		}
		steps := d.Changes
		if d.From != 0 {
			steps = schema.InferRenames(prev, d.Table, steps)
		}
		p := e.policy.For(id)
		var kept []schema.ColumnChange
		var reasons []string
		unknown := map[string][]string{} // why → added columns of that reason (one line for many)
		for _, s := range steps {
			st, hold, why, err := step(p, id, s)
			if err != nil {
				return routed{}, err
			}
			if e := s.Column.Existing; hold && s.Op == schema.AddColumn && e != nil && e.Unknown != "" {
				unknown[e.Unknown] = append(unknown[e.Unknown], s.Column.Name)
			} else if hold {
				reasons = append(reasons, why)
			}
			if st != nil {
				kept = append(kept, *st)
			}
		}
		for _, why := range slices.Sorted(maps.Keys(unknown)) {
			reasons = append(reasons, unknownExisting(unknown[why], why))
		}
		if len(reasons) > 0 {
			held := d
			held.Changes = steps
			h := &Hold{Table: id, Status: HoldPending, Reason: strings.Join(reasons, "; "), Proposed: held,
				DDL: ProposedDDL(held), Since: at, CreatedAt: e.now()}
			e.holds[id] = h
			out.created = append(out.created, *h)
			out.entries = append(out.entries, HeldEntry{Table: id, Key: entryKey(at, keyDelta), Delta: &held})
			continue
		}
		d.Changes = kept
		deltas = append(deltas, d)
	}
	clear(b.Deltas[len(deltas):])
	b.Deltas = deltas
	if len(e.holds) == 0 {
		return out, nil
	}
	kept := b.Changes[:0]
	for i := range b.Changes {
		c := &b.Changes[i]
		h := e.holds[c.Table]
		switch {
		case h == nil:
			kept = append(kept, *c)
		case h.Status == HoldRejected:
			if out.dropped == nil {
				out.dropped = map[schema.TableID]int64{}
			}
			out.dropped[c.Table]++
		default:
			cc := *c
			out.entries = append(out.entries, HeldEntry{Table: c.Table, Key: entryKey(c.Pos, keyChange), Change: &cc})
		}
	}
	clear(b.Changes[len(kept):])
	b.Changes = kept
	return out, nil
}

// resolve turns a held delta into what the sink applies under h's decision.
func resolve(h Hold, d schema.Delta) schema.Delta {
	steps := make([]schema.ColumnChange, 0, len(d.Changes))
	for _, s := range d.Changes {
		switch {
		case s.Op == schema.RenameColumn && h.Status == HoldNewColumn:
			steps = append(steps, schema.ColumnChange{Op: schema.AddColumn, Column: s.Column})
		case s.Op == schema.AlterColumnType && !schema.Widens(s.Old.Type, s.Column.Type):
			// the destination keeps its wider type: every new value fits it
		default:
			steps = append(steps, s)
		}
	}
	d.Changes = steps
	return d
}

// ProposedDDL renders a delta's steps as generic SQL, identifiers quoted, for
// people to review. Sinks issue their own dialect.
func ProposedDDL(d schema.Delta) []string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	tbl := q(d.Table.ID.Name)
	if d.Table.ID.Namespace != "" {
		tbl = q(d.Table.ID.Namespace) + "." + tbl
	}
	var out []string
	for _, s := range d.Changes {
		switch s.Op {
		case schema.AddColumn:
			out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", tbl, q(s.Column.Name), s.Column.Type))
		case schema.DropColumn:
			out = append(out, fmt.Sprintf("-- column %s dropped at the source; the destination keeps it", q(s.Column.Name)))
		case schema.RenameColumn:
			out = append(out, fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tbl, q(s.Old.Name), q(s.Column.Name)))
		case schema.AlterColumnType:
			out = append(out, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s -- was %s", tbl, q(s.Column.Name), s.Column.Type, s.Old.Type))
		case schema.SetPrimaryKey:
			keys := make([]string, len(d.Table.PrimaryKey))
			for i, k := range d.Table.PrimaryKey {
				keys[i] = q(k)
			}
			out = append(out, fmt.Sprintf("-- primary key becomes (%s)", strings.Join(keys, ", ")))
		}
	}
	return out
}
