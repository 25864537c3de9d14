// Package warehouse holds what the warehouse sinks (Snowflake, BigQuery) share:
// the plan of a batch (the changes newer than what the destination holds,
// collapsed per key, each with its row version) and the MERGE that applies a
// loaded batch to a destination table.
//
// The write path of both sinks is the same: a batch's rows of each table are
// loaded into a raw table under a load id, then one MERGE per table takes the
// newest row of each key from that load and applies it where its version is
// newer than the stored row's. After every table is merged, the sink records
// the batch number and the position of the batch's last change in a state
// table at the destination.
//
// Versions. A row's version is a string: 16 hex digits of the pipeline's
// generation, then the hex of the change's position. Positions compare as
// bytes, so their hex compares the same way as text, and every warehouse
// compares strings by bytes. Cleanup (a deleted pipeline) bumps the generation,
// so a resync's positions, which start over, still outrank the old rows.
//
// Idempotency. A change at or below the recorded position was written already
// and is skipped. A crash between the MERGEs and the state write leaves the
// data applied and the position behind; the replayed batch merges again, and
// the version guard (S.version > T.version) makes that a no-op. The same guard
// keeps an older batch replayed after a newer one from moving a row back.
package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Version is the row version of position p under generation gen.
func Version(gen uint64, p offsets.Position) string {
	b := make([]byte, 0, 16+2*len(p))
	b = fmt.Appendf(b, "%016x", gen)
	return string(hex.AppendEncode(b, p))
}

// Row is one change of a table's load: the newest of its key in the batch.
type Row struct {
	C       *schema.Change // After is nil for a delete
	Version string
	// Unchanged is the 1-based index into Load.UnchangedSets of the columns the
	// change did not carry (unchanged TOAST), or 0.
	Unchanged int
}

// Deleted reports whether the row is a delete.
func (r Row) Deleted() bool { return r.C.Op == schema.OpDelete }

// Value returns the row's value of column name: NULL when the change does not
// carry it (a delete carries only its key) or marks it unchanged.
func (r Row) Value(name string) schema.Value {
	src := r.C.After
	if src == nil {
		src = r.C.Key
	}
	v, _ := src.Get(name)
	if v.Kind() == schema.KindUnchanged {
		return schema.Null()
	}
	return v
}

// Load is what one MERGE applies to one destination table.
type Load struct {
	Table schema.TableID
	// Truncate is the version of a truncate that comes before Rows, or "".
	Truncate string
	Rows     []Row
	// UnchangedSets are the sets of columns that rows do not carry, each sorted.
	UnchangedSets [][]string
	// Sweeps end resyncs of the table, applied after Rows: each deletes the
	// live rows whose version is below Below, as a delete at version Version.
	Sweeps []Sweep
}

// Sweep is the end of a table's resync (schema.OpSweep) in versions.
type Sweep struct {
	Version string // the sweep's own
	Below   string // the version of the position the resync began at
}

// Plan returns the loads of changes newer than hwm, one per table in the order
// tables first appear, and the position of the last change (nil when nothing
// is newer). gen is the pipeline's generation.
func Plan(changes []schema.Change, hwm offsets.Position, gen uint64) ([]Load, offsets.Position) {
	skip := 0
	for skip < len(changes) && changes[skip].Pos.Compare(hwm) <= 0 {
		skip++ // written already: positions increase and are never reused
	}
	if skip == len(changes) {
		return nil, nil
	}
	last := changes[len(changes)-1].Pos
	collapsed := sinks.CollapseByKey(changes[skip:])
	var loads []Load
	at := map[schema.TableID]int{}
	sets := map[schema.TableID]map[string]int{}
	for i := range collapsed {
		c := &collapsed[i]
		j, ok := at[c.Table]
		if !ok {
			j = len(loads)
			at[c.Table] = j
			loads = append(loads, Load{Table: c.Table})
			sets[c.Table] = map[string]int{}
		}
		l := &loads[j]
		v := Version(gen, c.Pos)
		if c.Op == schema.OpSweep {
			l.Sweeps = append(l.Sweeps, Sweep{Version: v, Below: Version(gen, c.Since)})
			continue
		}
		if c.Op == schema.OpTruncate {
			// CollapseByKey keeps a table's last truncate and drops the changes
			// before it, so Rows is empty here
			l.Truncate = v
			continue
		}
		r := Row{C: c, Version: v}
		if c.Op != schema.OpDelete {
			var unchanged []string
			for _, f := range c.After {
				if f.Value.Kind() == schema.KindUnchanged {
					unchanged = append(unchanged, f.Name)
				}
			}
			if len(unchanged) > 0 {
				slices.Sort(unchanged)
				k := strings.Join(unchanged, "\x00")
				n, ok := sets[c.Table][k]
				if !ok {
					l.UnchangedSets = append(l.UnchangedSets, unchanged)
					n = len(l.UnchangedSets)
					sets[c.Table][k] = n
				}
				r.Unchanged = n
			}
		}
		l.Rows = append(l.Rows, r)
	}
	return loads, last
}

// Merge describes the MERGE of one load into its destination table. Every name
// is unquoted; Quote quotes one identifier for the warehouse.
type Merge struct {
	Quote  func(string) string
	Target string // the quoted destination table
	// Source is the quoted table or parenthesised query holding exactly one row
	// per key of the load, with the data columns, the metadata columns and the
	// Meta.Unchanged column.
	Source  string
	Columns []string // the destination's data columns the load carries
	Key     []string
	Meta    sinks.MetaColumns
	// UnchangedSets are the load's; the source's Meta.Unchanged column holds a
	// row's 1-based index into them (NULL: none).
	UnchangedSets [][]string
	Hard          bool // delete rows instead of marking them deleted
	IncludeOp     bool
	IncludeTS     bool
}

// SQL renders the MERGE. Every SET and VALUES term is a bare source column, so
// the statement needs nothing of the warehouse beyond standard MERGE, and no
// two WHEN MATCHED clauses match the same row.
func (m Merge) SQL() string {
	q := m.Quote
	// the table aliases: T and S, unless a column has that name (BigQuery
	// takes `t` in SET t = … for the target's alias, names being
	// case-insensitive; so does Snowflake for an unquoted alias)
	taken := map[string]bool{}
	for _, c := range append(append(slices.Clone(m.Columns), m.Key...), append(m.Meta.Names(), m.Meta.Unchanged)...) {
		taken[strings.ToUpper(c)] = true
	}
	alias := func(a string) string {
		for taken[a] {
			a += "_"
		}
		taken[a] = true
		return a
	}
	tA, sA := alias("T"), alias("S")
	col := func(alias, name string) string { return alias + "." + q(name) }
	var b strings.Builder
	fmt.Fprintf(&b, "MERGE INTO %s %s USING %s %s ON ", m.Target, tA, m.Source, sA)
	for i, k := range m.Key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "%s = %s", col(tA, k), col(sA, k))
	}
	newer := fmt.Sprintf("%s > %s", col(sA, m.Meta.Version), col(tA, m.Meta.Version))
	deleted := col(sA, m.Meta.Deleted)
	meta := []string{m.Meta.Version, m.Meta.SyncedAt}
	if m.IncludeOp {
		meta = append(meta, m.Meta.Op)
	}
	if m.IncludeTS {
		meta = append(meta, m.Meta.SourceTS)
	}
	live := append([]string{m.Meta.Deleted}, meta...)
	set := func(cols []string) string {
		parts := make([]string, 0, len(cols))
		for _, c := range cols {
			parts = append(parts, q(c)+" = "+col(sA, c))
		}
		return strings.Join(parts, ", ")
	}
	if m.Hard {
		fmt.Fprintf(&b, " WHEN MATCHED AND %s AND %s THEN DELETE", deleted, newer)
	} else {
		fmt.Fprintf(&b, " WHEN MATCHED AND %s AND %s THEN UPDATE SET %s", deleted, newer, set(live))
	}
	for i, us := range m.UnchangedSets {
		var cols []string
		for _, c := range m.Columns {
			if !slices.Contains(us, c) {
				cols = append(cols, c)
			}
		}
		fmt.Fprintf(&b, " WHEN MATCHED AND %s = %s AND %s THEN UPDATE SET %s", col(sA, m.Meta.Unchanged), strconv.Itoa(i+1), newer, set(append(cols, live...)))
	}
	// the clauses are disjoint, so the result does not rest on the first
	// matching clause winning (bigquery-emulator applies each in turn)
	plain := "NOT " + deleted
	if len(m.UnchangedSets) > 0 {
		plain += " AND " + col(sA, m.Meta.Unchanged) + " IS NULL"
	}
	fmt.Fprintf(&b, " WHEN MATCHED AND %s AND %s THEN UPDATE SET %s", plain, newer, set(append(slices.Clone(m.Columns), live...)))
	all := append(slices.Clone(m.Columns), live...)
	quoted := make([]string, len(all))
	values := make([]string, len(all))
	for i, c := range all {
		quoted[i], values[i] = q(c), col(sA, c)
	}
	cond := ""
	if m.Hard {
		cond = " AND NOT " + deleted
	}
	fmt.Fprintf(&b, " WHEN NOT MATCHED%s THEN INSERT (%s) VALUES (%s)", cond, strings.Join(quoted, ", "), strings.Join(values, ", "))
	return b.String()
}

// Carried returns the columns of cols (a destination table's, in its order,
// each named by name) that l's rows carry: the key and every column of a row's
// image. A carried column the table lacks is a permanent error naming table
// (its AddColumn was not applied at the destination).
func Carried[C any](l *Load, table string, cols []C, name func(C) string) ([]C, error) {
	has := make(map[string]bool, len(cols))
	for _, c := range cols {
		has[name(c)] = true
	}
	seen := map[string]bool{}
	for _, r := range l.Rows {
		src := r.C.After
		if src == nil {
			src = r.C.Key
		}
		for _, f := range src {
			if seen[f.Name] {
				continue
			}
			if !has[f.Name] {
				return nil, component.Permanent(fmt.Errorf("table %s has no column %s, which changes at position %s carry: add it at the destination (its schema change was not applied) or resync the table", table, f.Name, r.C.Pos))
			}
			seen[f.Name] = true
		}
	}
	var out []C
	for _, c := range cols {
		if seen[name(c)] {
			out = append(out, c)
		}
	}
	return out, nil
}

// Unrepresentable applies a sink's on_unrepresentable policy to a value its
// column cannot hold: an error naming table, column, position and reason
// (never the value), or, under "null", a NULL that is counted and logged once
// per column. It is safe for concurrent use.
type Unrepresentable struct {
	Policy   string // on_unrepresentable: "error" or "null"
	Pipeline string
	Nulled   *prometheus.CounterVec // sinks.NulledValues
	Altered  *prometheus.CounterVec // sinks.AlteredValues
	Log      *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// Handle returns the error, or nil when the value is to be stored as NULL.
func (u *Unrepresentable) Handle(table, column string, c *schema.Change, problem string) error {
	if u.Policy != "null" {
		return component.Permanent(fmt.Errorf("table %s column %s at position %s: %s; set on_unrepresentable: null to store NULL instead",
			table, column, c.Pos, problem))
	}
	u.Nulled.WithLabelValues(u.Pipeline, table, column).Inc()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.warned == nil {
		u.warned = map[string]bool{}
	}
	if k := table + "." + column; !u.warned[k] {
		u.warned[k] = true
		u.Log.Warn("values the destination column cannot hold are stored as NULL", "table", table, "column", column, "reason", problem)
	}
	return nil
}

// Alter counts a value stored as another one (sinks.AlteredValues): an array
// holding a JSON null, written as a JSON array, where that element reads as
// NULL. It is logged once per column. It is safe for concurrent use.
func (u *Unrepresentable) Alter(table, column, why string) {
	if u.Altered != nil {
		u.Altered.WithLabelValues(u.Pipeline, table, column).Inc()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.warned == nil {
		u.warned = map[string]bool{}
	}
	if k := "altered\x00" + table + "." + column; !u.warned[k] {
		u.warned[k] = true
		u.Log.Warn("values stored as another value the destination cannot tell apart; further ones are only counted", "table", table, "column", column, "reason", why)
	}
}

// Text renders a value for a text or JSON column: strings as they are, JSON as
// its text, arrays as a JSON array (elements as JSON values: bytes in base64,
// instants in RFC 3339), and every other kind in its canonical text.
func Text(v schema.Value) string {
	switch v.Kind() {
	case schema.KindString, schema.KindJSON, schema.KindDecimal, schema.KindUnknown:
		return v.Text()
	case schema.KindArray:
		return string(v.AppendJSON(nil))
	}
	return v.String()
}

// Tag is a pipeline's short prefix of the names a warehouse sink gives its own
// objects (raw tables, stage paths, load ids): the first 12 hex digits of its
// name's SHA-256.
func Tag(pipeline string) string {
	h := sha256.Sum256([]byte(pipeline))
	return hex.EncodeToString(h[:6])
}

// FormatPosition is how the state table stores a recorded position (hex).
func FormatPosition(p offsets.Position) string { return hex.EncodeToString(p) }

// ParsePosition reads a position FormatPosition wrote; "" is none (nil).
func ParsePosition(pipeline, text string) (offsets.Position, error) {
	if text == "" {
		return nil, nil
	}
	p, err := hex.DecodeString(text)
	if err != nil {
		return nil, component.Permanent(fmt.Errorf("sink state of pipeline %q: position %q is not hex", pipeline, text))
	}
	return p, nil
}
