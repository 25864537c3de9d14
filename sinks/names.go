package sinks

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
)

// Limits are the longest names a destination holds as they are. Postgres
// cuts a longer identifier to 63 bytes without an error, so two long names can
// become one table; other destinations refuse them, or fail further on.
type Limits struct {
	// Bytes counts lengths in bytes (UTF-8), else in characters.
	Bytes bool
	// Table and Column are the longest table and column names; 0: no limit.
	// A sink that prefixes its own objects with a table's name (raw or stage
	// tables) gives the room left after its prefix.
	Table, Column int
}

func (l Limits) length(s string) int {
	if l.Bytes {
		return len(s)
	}
	return utf8.RuneCountInString(s)
}

func (l Limits) unit() string {
	if l.Bytes {
		return "bytes"
	}
	return "characters"
}

// Names gives the tables of one sink their destination names (the
// table_name template) and refuses, with a permanent error naming the source
// table, a name the destination would not hold as it is, and two tables of
// the pipeline that would share one destination table. It is safe for
// concurrent use.
type Names struct {
	c      Common
	limits Limits
	mu     sync.Mutex
	owner  map[string]schema.TableID // destination name → its table
}

// NewNames returns the namer of a sink with c's template and the
// destination's limits.
func NewNames(c Common, l Limits) *Names {
	return &Names{c: c, limits: l, owner: map[string]schema.TableID{}}
}

// Check checks the destination names of a table version (a delta's table):
// its table name and every column's.
func (n *Names) Check(t schema.Table) error {
	if _, err := n.Table(t.ID); err != nil {
		return err
	}
	if l := n.limits.Column; l > 0 {
		for _, c := range t.Columns {
			if got := n.limits.length(c.Name); got > l {
				return component.Permanent(fmt.Errorf("table %s column %q: the name is %d %s, and the destination holds at most %d: rename it at the source, or drop or rename it with the columns transform",
					t.ID, c.Name, got, n.limits.unit(), l))
			}
		}
	}
	return nil
}

// Table returns the destination name of a table, or why it cannot have one.
func (n *Names) Table(id schema.TableID) (string, error) {
	name := n.c.DestName(id)
	if l := n.limits.Table; l > 0 {
		if got := n.limits.length(name); got > l {
			return "", component.Permanent(fmt.Errorf("table %s: its destination name %q is %d %s, and the destination holds at most %d (it would cut the name, and two tables could become one): shorten table_name (%q), or give the table a shorter name with the route transform",
				id, name, got, n.limits.unit(), l, n.c.TableName))
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if other, ok := n.owner[name]; ok && other != id {
		return "", component.Permanent(fmt.Errorf("tables %s and %s would both be written to destination table %q (table_name %q): make table_name tell them apart (include {namespace}), or route them to different names",
			other, id, name, n.c.TableName))
	}
	n.owner[name] = id
	return name, nil
}

// Namer is implemented by sinks that can say, before writing anything and
// without I/O, where a table version would go: its destination name as the
// destination qualifies it, or why it cannot be written as it is (a name too
// long, two tables of the pipeline on one destination table). Calls on one
// sink see each other's tables, as its writes would.
type Namer interface {
	DestinationName(t schema.Table) (string, error)
}

// Qualified checks t with n and returns its destination name after the
// destination's containers (schema, database, dataset), dot-separated.
func (n *Names) Qualified(t schema.Table, containers ...string) (string, error) {
	if err := n.Check(t); err != nil {
		return "", err
	}
	name, err := n.Table(t.ID)
	if err != nil {
		return "", err
	}
	parts := make([]string, 0, len(containers)+1)
	for _, c := range containers {
		if c != "" {
			parts = append(parts, c)
		}
	}
	return strings.Join(append(parts, name), "."), nil
}
