// Package verify compares a pipeline's source tables with their destination
// tables without copying them out: each side computes, inside its database, the
// row count and two sums of a hash of every row's canonical text over a key
// range; ranges that differ are split and compared again, down to ranges
// small enough to compare key by key (as data-diff does). Only keys, hashes
// and counts cross the network.
//
// Canonical text is defined per value kind so that both databases render a
// value the same way after the type mappings (docs/type-mappings.md): integers
// in decimal, decimals without trailing zeros, instants and date-times as
// microseconds since 1970-01-01, dates as YYYY-MM-DD, bytes in lower-case hex,
// booleans as 1 or 0. Columns of other kinds (floats, JSON, arrays, times,
// intervals, geometry) are not compared; the result names them.
//
// The package is a leaf: sources and sinks implement Side for their database
// (usually with SQLSide and a Dialect), and the control plane runs Compare.
package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Key is a key tuple in canonical text, one string per key column.
type Key []string

// Range is the key range [Lo, Hi): a nil bound is open.
type Range struct {
	Lo, Hi Key
}

// Sum is what a side reports about a range: its row count and two sums of
// 32-bit slices of each row's hash, as decimal text (exact at any size).
type Sum struct {
	Rows   int64
	H1, H2 string
}

// RowHash is one row of a range compared key by key.
type RowHash struct {
	Key  Key
	Hash string
}

// Side is one database's view of the tables: the source's, or the
// destination's live rows.
type Side interface {
	// Sum returns the count and hash sums of the rows of t in r.
	Sum(ctx context.Context, t *Table, r Range) (Sum, error)
	// Split returns up to parts-1 increasing keys of t in r that cut it into
	// parts of about rows/parts rows each (rows: r's count on this side).
	Split(ctx context.Context, t *Table, r Range, rows int64, parts int) ([]Key, error)
	// Rows returns the key and hash of every row of t in r.
	Rows(ctx context.Context, t *Table, r Range) ([]RowHash, error)
	// Bytes is how many bytes the side moved over the network so far, -1
	// when it cannot tell (an HTTP client it does not own).
	Bytes() int64
	Close() error
}

// ErrUnsupported is returned by OpenVerify when the database cannot run the
// comparison (a server too old).
var ErrUnsupported = errors.New("verify is not supported here")

// Opener is implemented by sources and sinks that can be verified.
type Opener interface {
	// OpenVerify connects to the database for a verification.
	OpenVerify(ctx context.Context) (Side, error)
}

// Table is one table to compare: its shape as the pipeline replicates it.
type Table struct {
	ID schema.TableID
	// Key are the primary-key columns, Columns every compared column (the key
	// first, then the values).
	Key     []schema.Column
	Columns []schema.Column
	// NotCompared names the columns left out and why.
	NotCompared []string
	// Ranged says the key can be cut into ranges (its kinds order the same way
	// in every database); otherwise the table is compared whole.
	Ranged bool
}

// Comparable reports whether values of kind k have a canonical text every
// side renders the same way.
func Comparable(k schema.Kind) bool {
	switch k {
	case schema.KindBool, schema.KindInt, schema.KindUint, schema.KindString, schema.KindBytes,
		schema.KindTimestamp, schema.KindDateTime, schema.KindDate, schema.KindDecimal:
		return true
	}
	return false
}

// rangeable reports whether key columns of kind k order the same way in every
// database (strings byte-wise, which each side asks for explicitly).
func rangeable(k schema.Kind) bool {
	switch k {
	case schema.KindInt, schema.KindUint, schema.KindString, schema.KindDate:
		return true
	}
	return false
}

// Plan returns the comparison of t. A table without a primary key, or with a
// key column no side can render, cannot be compared.
func Plan(t schema.Table) (*Table, error) {
	if len(t.PrimaryKey) == 0 {
		return nil, fmt.Errorf("%s has no primary key: verify compares rows by key", t.ID)
	}
	p := &Table{ID: t.ID, Ranged: true}
	for _, k := range t.PrimaryKey {
		c, ok := t.Column(k)
		if !ok {
			return nil, fmt.Errorf("%s: key column %s is not in the table", t.ID, k)
		}
		if !Comparable(c.Type.Kind) {
			return nil, fmt.Errorf("%s: key column %s is of type %s, which verify cannot compare", t.ID, k, c.Type)
		}
		p.Ranged = p.Ranged && rangeable(c.Type.Kind)
		p.Key = append(p.Key, c)
	}
	p.Columns = slices.Clone(p.Key)
	for _, c := range t.Columns {
		if slices.Contains(t.PrimaryKey, c.Name) {
			continue
		}
		if !Comparable(c.Type.Kind) {
			p.NotCompared = append(p.NotCompared, fmt.Sprintf("%s (%s): no canonical form shared by both databases", c.Name, c.Type))
			continue
		}
		p.Columns = append(p.Columns, c)
	}
	return p, nil
}

// Options tune Compare.
type Options struct {
	// Fanout is how many parts a differing range is cut into (default 16).
	Fanout int
	// LeafRows: a differing range with at most this many rows on both sides is
	// compared key by key (default 512).
	LeafRows int64
	// Samples is how many keys of each kind of difference a result lists
	// (default 20).
	Samples int
	// Settle, when set, is called before the differing keys are checked
	// again: the stream may have been behind. A key counts as different only if
	// it still differs afterwards, and, for a key at both sides, its
	// destination value is none the source had at an earlier check. Recheck
	// is how many times (default 3 when Settle is set).
	Settle  func(ctx context.Context) error
	Recheck int
}

func (o Options) withDefaults() Options {
	if o.Fanout < 2 {
		o.Fanout = 16
	}
	if o.LeafRows <= 0 {
		o.LeafRows = 512
	}
	if o.Samples <= 0 {
		o.Samples = 20
	}
	if o.Settle != nil && o.Recheck <= 0 {
		o.Recheck = 3
	}
	return o
}

// Status is a table's outcome.
type Status string

// The outcomes.
const (
	StatusEqual     Status = "equal"
	StatusDifferent Status = "different"
	StatusError     Status = "error"
	StatusSkipped   Status = "skipped" // not compared: Note says why
)

// Result is the comparison of one table.
type Result struct {
	Table  string `json:"table"`
	Status Status `json:"status"`
	// SourceRows and DestRows are the counts at the first check: while the
	// stream is behind they may differ on an equal table.
	SourceRows  int64    `json:"source_rows"`
	DestRows    int64    `json:"destination_rows"`
	Missing     int64    `json:"missing"`   // at the source, not at the destination
	Extra       int64    `json:"extra"`     // at the destination, not at the source
	Different   int64    `json:"different"` // at both, with different values
	Samples     *Samples `json:"samples,omitempty"`
	Columns     []string `json:"compared_columns"`
	NotCompared []string `json:"not_compared,omitempty"`
	// Ranges is how many key ranges were checksummed on each side.
	Ranges int `json:"ranges"`
	// Note says what limited the comparison.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// maxWholeLeaves bounds the rows of a table whose key cannot be cut into
// ranges that are compared key by key: LeafRows times this.
const maxWholeLeaves = 64

// Samples are some keys of each kind of difference, as canonical text.
type Samples struct {
	Missing   []Key `json:"missing,omitempty"`
	Extra     []Key `json:"extra,omitempty"`
	Different []Key `json:"different,omitempty"`
}

// Compare compares t between src and dst.
func Compare(ctx context.Context, src, dst Side, t *Table, o Options) Result {
	o = o.withDefaults()
	res := Result{Table: t.ID.String(), NotCompared: t.NotCompared}
	for _, c := range t.Columns {
		res.Columns = append(res.Columns, c.Name)
	}
	c := &comparer{src: src, dst: dst, t: t, o: o, res: &res}
	if err := c.run(ctx); err != nil {
		res.Status, res.Error = StatusError, err.Error()
		return res
	}
	// counts of a table being written differ while the stream is behind:
	// only keys confirmed different make a table different (or, where keys
	// were not compared, its checksums)
	res.Status = StatusEqual
	if res.Missing+res.Extra+res.Different > 0 || c.unsettled {
		res.Status = StatusDifferent
	}
	return res
}

type comparer struct {
	src, dst Side
	t        *Table
	o        Options
	res      *Result
	leaves   []Range // differing ranges compared key by key
	// unsettled: a range too big to compare key by key differed
	unsettled bool
}

type pending struct {
	r    Range
	s, d Sum
}

func (c *comparer) sums(ctx context.Context, r Range) (s, d Sum, err error) {
	c.res.Ranges++
	if s, err = c.src.Sum(ctx, c.t, r); err != nil {
		return s, d, fmt.Errorf("source: %w", err)
	}
	if d, err = c.dst.Sum(ctx, c.t, r); err != nil {
		return s, d, fmt.Errorf("destination: %w", err)
	}
	return s, d, nil
}

func (c *comparer) run(ctx context.Context) error {
	s, d, err := c.sums(ctx, Range{})
	if err != nil {
		return err
	}
	c.res.SourceRows, c.res.DestRows = s.Rows, d.Rows
	if s == d {
		return nil
	}
	queue := []pending{{Range{}, s, d}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		n := max(p.s.Rows, p.d.Rows)
		if !c.t.Ranged && n > c.o.LeafRows*maxWholeLeaves {
			c.res.Note = fmt.Sprintf("the key cannot be cut into ranges (its type orders differently across databases) and the table has %d rows: only counts and checksums were compared", n)
			c.unsettled = true
			continue
		}
		if n <= c.o.LeafRows || !c.t.Ranged {
			c.leaves = append(c.leaves, p.r)
			continue
		}
		// the side with more rows cuts the range: the other may have none
		side, rows := c.src, p.s.Rows
		if p.d.Rows > p.s.Rows {
			side, rows = c.dst, p.d.Rows
		}
		cuts, err := side.Split(ctx, c.t, p.r, rows, c.o.Fanout)
		if err != nil {
			return fmt.Errorf("split a range: %w", err)
		}
		if len(cuts) == 0 {
			c.leaves = append(c.leaves, p.r)
			continue
		}
		bounds := append(append([]Key{p.r.Lo}, cuts...), p.r.Hi)
		for i := 0; i+1 < len(bounds); i++ {
			r := Range{Lo: bounds[i], Hi: bounds[i+1]}
			s, d, err := c.sums(ctx, r)
			if err != nil {
				return err
			}
			if s != d {
				queue = append(queue, pending{r, s, d})
			}
		}
	}
	diff, err := c.diff(ctx, c.leaves)
	if err != nil {
		return err
	}
	// a key that differs because the stream was behind differs no more after
	// a while, or shows at the destination a value the source had at an
	// earlier check (a row updated again and again)
	seen := map[string][]string{}
	for k, d := range diff {
		seen[k] = append(seen[k], d.src)
	}
	for try := 0; try < c.o.Recheck && len(diff) > 0; try++ {
		if err := c.o.Settle(ctx); err != nil {
			return err
		}
		again, err := c.diff(ctx, c.leaves)
		if err != nil {
			return err
		}
		for k := range diff {
			a, ok := again[k]
			if !ok {
				delete(diff, k)
				continue
			}
			if a.kind == different && slices.Contains(seen[k], a.dst) {
				delete(diff, k)
				continue
			}
			seen[k] = append(seen[k], a.src)
			diff[k] = a
		}
	}
	c.count(diff)
	return nil
}

type diffKind uint8

const (
	missing diffKind = iota + 1
	extra
	different
)

type keyDiff struct {
	key      Key
	kind     diffKind
	src, dst string // the row's hash on each side ("" where it is not)
}

// diff compares the leaves key by key.
func (c *comparer) diff(ctx context.Context, leaves []Range) (map[string]keyDiff, error) {
	out := map[string]keyDiff{}
	for _, r := range leaves {
		sr, err := c.src.Rows(ctx, c.t, r)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		dr, err := c.dst.Rows(ctx, c.t, r)
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		have := make(map[string]string, len(dr))
		for _, row := range dr {
			have[strings.Join(row.Key, "\x00")] = row.Hash
		}
		for _, row := range sr {
			k := strings.Join(row.Key, "\x00")
			h, ok := have[k]
			switch {
			case !ok:
				out[k] = keyDiff{key: row.Key, kind: missing, src: row.Hash}
			case h != row.Hash:
				out[k] = keyDiff{key: row.Key, kind: different, src: row.Hash, dst: h}
			}
			delete(have, k)
		}
		for _, row := range dr {
			k := strings.Join(row.Key, "\x00")
			if _, ok := have[k]; ok {
				out[k] = keyDiff{key: row.Key, kind: extra, dst: row.Hash}
			}
		}
	}
	return out, nil
}

func (c *comparer) count(diff map[string]keyDiff) {
	keys := make([]string, 0, len(diff))
	for k := range diff {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := &Samples{}
	for _, k := range keys {
		d := diff[k]
		switch d.kind {
		case missing:
			c.res.Missing++
			if len(s.Missing) < c.o.Samples {
				s.Missing = append(s.Missing, d.key)
			}
		case extra:
			c.res.Extra++
			if len(s.Extra) < c.o.Samples {
				s.Extra = append(s.Extra, d.key)
			}
		case different:
			c.res.Different++
			if len(s.Different) < c.o.Samples {
				s.Different = append(s.Different, d.key)
			}
		}
	}
	if len(diff) > 0 {
		c.res.Samples = s
	}
}
