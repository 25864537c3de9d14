package schema

import "slices"

// Widens reports whether changing a column's source type from old to new keeps
// every value old could hold: a larger integer or float, a longer (or unbounded)
// string or binary, a decimal with at least as many integer and fraction digits,
// more fractional-second digits. Anything it does not recognise is not a
// widening, so a policy treats it as a narrowing (hold by default).
func Widens(old, new Type) bool {
	if old.Equal(new) {
		return true
	}
	if old.Kind != new.Kind {
		return false
	}
	switch old.Kind {
	case KindArray:
		return old.Elem != nil && new.Elem != nil && Widens(*old.Elem, *new.Elem)
	case KindInt, KindUint, KindFloat:
		o, n := numRank[old.Name], numRank[new.Name]
		return o > 0 && n >= o
	case KindString, KindBytes:
		return new.Length == 0 || (old.Length > 0 && new.Length >= old.Length)
	case KindDecimal:
		if new.Precision == 0 {
			return true
		}
		return old.Precision > 0 && new.Precision-new.Scale >= old.Precision-old.Scale && new.Scale >= old.Scale
	case KindTimestamp, KindDateTime, KindTime:
		return new.Precision == 0 || (old.Precision > 0 && new.Precision >= old.Precision)
	}
	return false
}

// numRank orders integer and float type names of Postgres and MySQL by width.
var numRank = map[string]int{
	"tinyint": 1, "int1": 1, "smallint": 2, "int2": 2, "year": 2, "mediumint": 3, "int3": 3,
	"int": 4, "integer": 4, "int4": 4, "serial": 4, "bigint": 8, "int8": 8, "bigserial": 8,
	"float4": 4, "real": 4, "float": 4, "float8": 8, "double": 8, "double precision": 8,
}

// InferRenames pairs a DropColumn with an AddColumn of the same type at the same
// place in the column list into one RenameColumn. Sources that see no DDL (Postgres
// pgoutput) report a rename as a drop plus an add; this is the best guess a shape
// can give, and policies treat it as a rename (hold by default), so a user decides.
// When the old shape is unknown (no columns: first sight in this run) only a drop
// and an add that are the only ones of their type pair. Steps that do not pair
// are returned unchanged, in order.
func InferRenames(old, new Table, steps []ColumnChange) []ColumnChange {
	idx := func(t Table, name string) int {
		return slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == name })
	}
	count := func(op DeltaOp, t Type) int {
		n := 0
		for _, s := range steps {
			if s.Op == op && s.Column.Type.Equal(t) {
				n++
			}
		}
		return n
	}
	pairs := func(d, a Column) bool {
		if !a.Type.Equal(d.Type) {
			return false
		}
		if len(old.Columns) == 0 {
			return count(DropColumn, d.Type) == 1 && count(AddColumn, d.Type) == 1
		}
		at := idx(old, d.Name)
		return at >= 0 && idx(new, a.Name) == at
	}
	out := slices.Clone(steps)
	for i := 0; i < len(out); i++ {
		if out[i].Op != DropColumn {
			continue
		}
		d := out[i].Column
		j := slices.IndexFunc(out, func(a ColumnChange) bool { return a.Op == AddColumn && pairs(d, a.Column) })
		if j < 0 {
			continue
		}
		out[i] = ColumnChange{Op: RenameColumn, Column: out[j].Column, Old: &d}
		out = slices.Delete(out, j, j+1)
		if j < i {
			i--
		}
	}
	return out
}
