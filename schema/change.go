package schema

import (
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
)

// Op is the operation of a Change.
type Op uint8

// The operations. Their String forms are the one-letter codes users write in filter
// expressions and see in sinks' _cdc_op column.
const (
	OpInsert   Op = iota + 1 // "c"
	OpUpdate                 // "u"
	OpDelete                 // "d"
	OpTruncate               // "t"
	OpSnapshot               // "r": a row read by the initial snapshot
	// OpSweep ends the resync of a table: every row of the table at the
	// destination that was not written at or after the change's Since position
	// is gone from the source (deleted while its history was lost, or while the
	// destination was out of step) and is deleted, as a delete at the sweep's
	// own position. Rows written in the same batch are written first. It
	// carries no row; transforms map its table and pass it on.
	OpSweep // "s"
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "c"
	case OpUpdate:
		return "u"
	case OpDelete:
		return "d"
	case OpTruncate:
		return "t"
	case OpSnapshot:
		return "r"
	case OpSweep:
		return "s"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp returns the Op of a one-letter code.
func ParseOp(s string) (Op, error) {
	for o := OpInsert; o <= OpSweep; o++ {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown operation %q (want c, u, d, t, r or s)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Op) UnmarshalText(b []byte) error {
	v, err := ParseOp(string(b))
	*o = v
	return err
}

// Field is one named column value of a Row.
type Field struct {
	Name  string
	Value Value
}

// Row is an ordered list of fields. Order is the table's column order (Key: the
// primary key order), which keeps SQL and golden files deterministic.
type Row []Field

// Get returns the value of the named column.
func (r Row) Get(name string) (Value, bool) {
	for _, f := range r {
		if f.Name == name {
			return f.Value, true
		}
	}
	return Value{}, false
}

// Index returns the index of the named column, or -1.
func (r Row) Index(name string) int {
	for i, f := range r {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Clone returns a copy of r that shares no slice memory with it.
func (r Row) Clone() Row {
	if r == nil {
		return nil
	}
	return append(Row(nil), r...)
}

// Size estimates the memory r holds, in bytes.
func (r Row) Size() int {
	n := 24
	for _, f := range r {
		n += 16 + len(f.Name) + f.Value.Size()
	}
	return n
}

// MarshalJSON renders r as a JSON object whose keys keep the row's order.
func (r Row) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// AppendJSON appends the JSON object form of r to dst.
func (r Row) AppendJSON(dst []byte) []byte {
	if r == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '{')
	for i, f := range r {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, f.Name)
		dst = append(dst, ':')
		dst = f.Value.AppendJSON(dst)
	}
	return append(dst, '}')
}

// Change is one row-level event.
type Change struct {
	Op       Op
	Table    TableID
	Version  Version          // the table version this change was encoded with
	Pos      offsets.Position // unique and increasing within a pipeline: (commit position, sequence)
	TxID     string           // transaction id (xid, GTID)
	CommitTS time.Time        // commit time at the source
	Key      Row              // primary key columns, in key order
	Before   Row              // old image, when the source has it
	After    Row              // new image (inserts, updates, snapshot reads)
	// Since is, for OpSweep, the position the table's resync began at: rows
	// written from there on are current, the others are gone from the source.
	Since offsets.Position
}

// Size estimates the memory c holds, in bytes.
func (c *Change) Size() int {
	return 96 + len(c.Pos) + len(c.Since) + len(c.TxID) + len(c.Table.Namespace) + len(c.Table.Name) +
		c.Key.Size() + c.Before.Size() + c.After.Size()
}

// Batch is the unit of work between stages. Deltas are applied before Changes.
//
// Checkpoint is the position that is safe to commit once the whole batch is durable:
// the end of the last transaction the batch completes. It is nil when the batch
// holds only part of a transaction (a transaction larger than the batch limits).
type Batch struct {
	Deltas     []Delta
	Changes    []Change
	Checkpoint offsets.Position
	// Current, when set, says the source is caught up: see Current.
	Current Current
}

// Current is a source's evidence that it has read every change its server
// committed before At: the batch that carries it holds the last of them (or
// nothing, when they went in earlier batches). While the source stays caught
// up it sends another before Until. The runner's lag reads 0 from when the
// batch is durable until Until, unless a later change is read.
type Current struct {
	At, Until time.Time
}

// IsZero reports whether c says nothing.
func (c Current) IsZero() bool { return c.At.IsZero() }

// Size estimates the memory b holds, in bytes.
func (b *Batch) Size() int {
	n := 64 + len(b.Checkpoint)
	for i := range b.Changes {
		n += b.Changes[i].Size()
	}
	for i := range b.Deltas {
		n += 256 * (1 + len(b.Deltas[i].Changes))
	}
	return n
}

// Last returns the position of the last change in b, or its checkpoint when b has
// no changes.
func (b *Batch) Last() offsets.Position {
	if len(b.Changes) == 0 {
		return b.Checkpoint
	}
	return b.Changes[len(b.Changes)-1].Pos
}
