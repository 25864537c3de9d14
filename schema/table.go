package schema

import (
	"fmt"
	"slices"
	"strings"
)

// TableID names a table at its source: Namespace is the Postgres schema or the
// MySQL database.
type TableID struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String renders id as namespace.name (unquoted, for messages and file names).
func (id TableID) String() string {
	if id.Namespace == "" {
		return id.Name
	}
	return id.Namespace + "." + id.Name
}

// ParseTableID splits "namespace.name" (or "name") at the first dot.
func ParseTableID(s string) TableID {
	if ns, name, ok := strings.Cut(s, "."); ok {
		return TableID{Namespace: ns, Name: name}
	}
	return TableID{Name: s}
}

// Version numbers the shapes of one table within one pipeline, from 1 up.
type Version uint64

// Type is a column's type: the Value kind it carries plus what the source said
// about it, so that sinks can choose an exact destination type.
type Type struct {
	Kind      Kind   `json:"kind"`
	Name      string `json:"name"`                // source type name: "numeric", "varchar", "timestamptz", "int4[]"
	Precision int    `json:"precision,omitempty"` // numeric precision (0: unspecified) or fractional-second digits
	Scale     int    `json:"scale,omitempty"`     // numeric scale
	Length    int    `json:"length,omitempty"`    // character or binary length limit (0: unbounded)
	Elem      *Type  `json:"elem,omitempty"`      // element type of an array
}

// Equal reports whether t and u describe the same type.
func (t Type) Equal(u Type) bool {
	if t.Kind != u.Kind || t.Name != u.Name || t.Precision != u.Precision || t.Scale != u.Scale || t.Length != u.Length {
		return false
	}
	if (t.Elem == nil) != (u.Elem == nil) {
		return false
	}
	return t.Elem == nil || t.Elem.Equal(*u.Elem)
}

// String renders t like a SQL type: numeric(10,2), varchar(255), int4[].
func (t Type) String() string {
	s := t.Name
	if s == "" {
		s = t.Kind.String()
	}
	switch {
	case t.Precision > 0 && t.Scale > 0:
		s += fmt.Sprintf("(%d,%d)", t.Precision, t.Scale)
	case t.Precision > 0:
		s += fmt.Sprintf("(%d)", t.Precision)
	case t.Length > 0:
		s += fmt.Sprintf("(%d)", t.Length)
	}
	return s
}

// Column is one column of a table.
type Column struct {
	Name     string `json:"name"`
	Type     Type   `json:"type"`
	Nullable bool   `json:"nullable"`
	// Existing is what rows that predate the column hold in it, when the source
	// knows (see Existing). It is not part of the shape: SameShape ignores it.
	Existing *Existing `json:"existing,omitempty"`
}

// Table is one version of a table's shape.
type Table struct {
	ID         TableID  `json:"id"`
	Version    Version  `json:"version"`
	Columns    []Column `json:"columns"`
	PrimaryKey []string `json:"primary_key"`
}

// Column returns the named column.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// SameShape reports whether t and u have the same columns and key (the ID and
// Version are not compared).
func (t Table) SameShape(u Table) bool {
	return slices.EqualFunc(t.Columns, u.Columns, func(a, b Column) bool {
		return a.Name == b.Name && a.Nullable == b.Nullable && a.Type.Equal(b.Type)
	}) && slices.Equal(t.PrimaryKey, u.PrimaryKey)
}

// Clone returns a deep copy of t.
func (t Table) Clone() Table {
	t.Columns = slices.Clone(t.Columns)
	t.PrimaryKey = slices.Clone(t.PrimaryKey)
	return t
}

// Validate checks that t is well formed: a name, unique non-empty column names,
// and key columns that exist.
func (t Table) Validate() error {
	if t.ID.Name == "" {
		return fmt.Errorf("table has no name")
	}
	seen := make(map[string]bool, len(t.Columns))
	for i, c := range t.Columns {
		if c.Name == "" {
			return fmt.Errorf("table %s: column %d has no name", t.ID, i)
		}
		if seen[c.Name] {
			return fmt.Errorf("table %s: column %q appears twice", t.ID, c.Name)
		}
		seen[c.Name] = true
	}
	for _, k := range t.PrimaryKey {
		if !seen[k] {
			return fmt.Errorf("table %s: primary key column %q is not a column", t.ID, k)
		}
	}
	return nil
}
