package schema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/offsets"
)

// DeltaOp is the kind of one step of a Delta.
type DeltaOp uint8

// The delta steps.
const (
	CreateTable     DeltaOp = iota + 1 // the table is seen for the first time
	AddColumn                          // Column was added
	DropColumn                         // Column was dropped
	AlterColumnType                    // Column's type changed from Old's
	SetNullable                        // Column's nullability changed from Old's
	RenameColumn                       // Old was renamed to Column (only sources that see DDL report it)
	SetPrimaryKey                      // the primary key changed (see Delta.Table.PrimaryKey)
	DropTable                          // the table was dropped
)

var deltaOpNames = [...]string{"", "create_table", "add_column", "drop_column", "alter_column_type", "set_nullable", "rename_column", "set_primary_key", "drop_table"}

func (o DeltaOp) String() string {
	if int(o) < len(deltaOpNames) && o > 0 {
		return deltaOpNames[o]
	}
	return fmt.Sprintf("delta_op(%d)", uint8(o))
}

// MarshalText implements encoding.TextMarshaler.
func (o DeltaOp) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *DeltaOp) UnmarshalText(b []byte) error {
	for i, n := range deltaOpNames {
		if i > 0 && n == string(b) {
			*o = DeltaOp(i)
			return nil
		}
	}
	return fmt.Errorf("unknown delta op %q", b)
}

// ColumnChange is one step of a Delta.
type ColumnChange struct {
	Op     DeltaOp `json:"op"`
	Column Column  `json:"column"`        // the column as it is after the step (before it, for DropColumn)
	Old    *Column `json:"old,omitempty"` // the column before the step, for alter, nullability and rename
}

// Delta is the change from one version of a table to the next. Table is the full
// shape after the delta, so a sink that has never seen the table can create it.
type Delta struct {
	Table   Table          `json:"table"`
	From    Version        `json:"from"` // 0 for CreateTable
	Changes []ColumnChange `json:"changes"`
	// Pos is where the version came into force: every change below it was
	// encoded with an earlier version, every change at or above it with this
	// one or a later one. The registry sets it; a sink guards what it writes
	// into rows from before the delta (an added column's Existing value) by it,
	// so applying the delta again never touches a row written after it. Deltas
	// that only announce a version (no changes) may leave it nil.
	Pos offsets.Position `json:"pos,omitempty"`
}

// Diff returns the steps that turn old into new, matching columns by name. A
// rename cannot be told from a drop plus an add by shape alone, so Diff reports
// those; sources that see DDL replace the pair with a RenameColumn.
func Diff(old, new Table) []ColumnChange {
	var out []ColumnChange
	for _, oc := range old.Columns {
		if _, ok := new.Column(oc.Name); !ok {
			out = append(out, ColumnChange{Op: DropColumn, Column: oc})
		}
	}
	for _, nc := range new.Columns {
		oc, ok := old.Column(nc.Name)
		switch {
		case !ok:
			out = append(out, ColumnChange{Op: AddColumn, Column: nc})
		case !oc.Type.Equal(nc.Type):
			o := oc
			out = append(out, ColumnChange{Op: AlterColumnType, Column: nc, Old: &o})
		case oc.Nullable != nc.Nullable:
			o := oc
			out = append(out, ColumnChange{Op: SetNullable, Column: nc, Old: &o})
		}
	}
	if !slices.Equal(old.PrimaryKey, new.PrimaryKey) {
		out = append(out, ColumnChange{Op: SetPrimaryKey})
	}
	return out
}

// DescribeChanges renders changes for a log line: "add_column extra (int4,
// existing rows: -1); drop_column note".
func DescribeChanges(changes []ColumnChange) string {
	var b strings.Builder
	for i, c := range changes {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.Op.String())
		if c.Column.Name == "" {
			continue
		}
		fmt.Fprintf(&b, " %s (%s", c.Column.Name, c.Column.Type)
		if c.Op == AddColumn {
			switch e := c.Column.Existing; {
			case e == nil:
				b.WriteString(", existing rows: NULL")
			case e.Unknown != "":
				b.WriteString(", existing rows: unknown")
			default:
				fmt.Fprintf(&b, ", existing rows: %s", e.Value.String())
			}
		}
		b.WriteString(")")
	}
	return b.String()
}
