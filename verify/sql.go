package verify

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cdcd-dev/cdcd/schema"
)

// Querier runs a query with key bounds as arguments (canonical text) and
// returns every column as text.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) ([][]string, error)
}

// Dialect renders the SQL of one database. Every function gets SQL
// expressions, never values: values travel as arguments.
type Dialect struct {
	// Quote quotes an identifier.
	Quote func(name string) string
	// Param renders placeholder i (from 1) holding a key bound of column c in
	// canonical text, as a value that compares with Order's rendering of c.
	Param func(i int, c schema.Column) string
	// Order renders key column c for ordering and range comparisons (strings
	// byte-wise).
	Order func(c schema.Column, expr string) string
	// Text renders the canonical text of column c; NULL stays NULL.
	Text func(c schema.Column, expr string) string
	// Concat concatenates text expressions.
	Concat func(parts ...string) string
	// MD5 renders the lower-case hex MD5 of a text expression.
	MD5 func(expr string) string
	// HexInt renders the integer value of an expression of 8 hex digits.
	HexInt func(expr string) string
	// Substr renders the n characters of expr from position from (1-based).
	Substr func(expr string, from, n int) string

	// SumText renders the exact sum of an integer expression as text, 0 for
	// no rows.
	SumText func(expr string) string
}

// SQLSide is a Side over SQL: the queries are the same for every database,
// the Dialect renders them.
type SQLSide struct {
	Q Querier
	D Dialect
	// From returns where t's rows are (a FROM item) and a condition its live
	// rows meet ("" for all rows).
	From func(t *Table) (from, where string, err error)
	// Conn counts the bytes of the side's connection (nil: not counted).
	Conn *Counter
	// Close releases the connection.
	CloseFunc func() error
}

var _ Side = (*SQLSide)(nil)

// Bytes implements Side: -1 when the connection is not counted.
func (s *SQLSide) Bytes() int64 {
	if s.Conn == nil {
		return -1
	}
	return s.Conn.Load()
}

// Close implements Side.
func (s *SQLSide) Close() error {
	if s.CloseFunc == nil {
		return nil
	}
	return s.CloseFunc()
}

// query is one statement being built: its arguments in placeholder order.
type query struct {
	d    Dialect
	args []any
}

func (q *query) param(c schema.Column, v string) string {
	q.args = append(q.args, v)
	return q.d.Param(len(q.args), c)
}

// bound renders the condition of key >= k (lower) or key < k (upper),
// compared as tuples.
func (q *query) bound(t *Table, k Key, lower bool) string {
	var ors []string
	for i := range t.Key {
		var ands []string
		for j := 0; j < i; j++ {
			c := t.Key[j]
			ands = append(ands, fmt.Sprintf("%s = %s", q.d.Order(c, q.d.Quote(c.Name)), q.param(c, k[j])))
		}
		op := "<"
		switch {
		case lower && i == len(t.Key)-1:
			op = ">="
		case lower:
			op = ">"
		}
		c := t.Key[i]
		ands = append(ands, fmt.Sprintf("%s %s %s", q.d.Order(c, q.d.Quote(c.Name)), op, q.param(c, k[i])))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

func (s *SQLSide) where(q *query, t *Table, r Range, live string) string {
	var conds []string
	if live != "" {
		conds = append(conds, live)
	}
	if r.Lo != nil {
		conds = append(conds, q.bound(t, r.Lo, true))
	}
	if r.Hi != nil {
		conds = append(conds, q.bound(t, r.Hi, false))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func (s *SQLSide) keyTexts(t *Table) []string {
	out := make([]string, len(t.Key))
	for i, c := range t.Key {
		out[i] = s.D.Text(c, s.D.Quote(c.Name))
	}
	return out
}

// rowHash renders the MD5 of the row's canonical text: each column as 'v'
// and its text, or 'n' for NULL, separated by '|'.
func (s *SQLSide) rowHash(t *Table) string {
	parts := make([]string, 0, 2*len(t.Columns))
	for i, c := range t.Columns {
		if i > 0 {
			parts = append(parts, "'|'")
		}
		parts = append(parts, "COALESCE("+s.D.Concat("'v'", s.D.Text(c, s.D.Quote(c.Name)))+", 'n')")
	}
	return s.D.MD5(s.D.Concat(parts...))
}

// Sum implements Side.
func (s *SQLSide) Sum(ctx context.Context, t *Table, r Range) (Sum, error) {
	from, live, err := s.From(t)
	if err != nil {
		return Sum{}, err
	}
	q := &query{d: s.D}
	h1 := s.D.HexInt(s.D.Substr("vh.m", 1, 8))
	h2 := s.D.HexInt(s.D.Substr("vh.m", 9, 8))
	sql := fmt.Sprintf("SELECT %s, %s, %s FROM (SELECT %s AS m FROM %s%s) vh",
		s.D.SumText("1"), s.D.SumText(h1), s.D.SumText(h2), s.rowHash(t), from, s.where(q, t, r, live))
	rows, err := s.Q.Query(ctx, sql, q.args...)
	if err != nil {
		return Sum{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return Sum{}, fmt.Errorf("checksum query returned %d rows", len(rows))
	}
	n, err := strconv.ParseInt(rows[0][0], 10, 64)
	if err != nil {
		return Sum{}, fmt.Errorf("checksum query: row count %q: %w", rows[0][0], err)
	}
	return Sum{Rows: n, H1: rows[0][1], H2: rows[0][2]}, nil
}

// Split implements Side: the keys at every rows/parts-th row of r, read in
// one ordered scan of the range's keys.
func (s *SQLSide) Split(ctx context.Context, t *Table, r Range, rows int64, parts int) ([]Key, error) {
	from, live, err := s.From(t)
	if err != nil {
		return nil, err
	}
	step := rows / int64(parts)
	if step < 1 {
		return nil, nil
	}
	order := make([]string, len(t.Key))
	for i, c := range t.Key {
		order[i] = s.D.Order(c, s.D.Quote(c.Name))
	}
	texts := s.keyTexts(t)
	names := make([]string, len(texts))
	for i := range texts {
		names[i] = fmt.Sprintf("k%d", i)
		texts[i] += " AS " + names[i]
	}
	q := &query{d: s.D}
	sql := fmt.Sprintf("SELECT %s FROM (SELECT %s, ROW_NUMBER() OVER (ORDER BY %s) AS rn FROM %s%s) vs WHERE MOD(rn, %d) = 0 ORDER BY rn LIMIT %d",
		strings.Join(names, ", "), strings.Join(texts, ", "), strings.Join(order, ", "), from, s.where(q, t, r, live), step, parts-1)
	res, err := s.Q.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(res))
	for i, row := range res {
		out[i] = Key(row)
	}
	return out, nil
}

// Rows implements Side.
func (s *SQLSide) Rows(ctx context.Context, t *Table, r Range) ([]RowHash, error) {
	from, live, err := s.From(t)
	if err != nil {
		return nil, err
	}
	q := &query{d: s.D}
	sql := fmt.Sprintf("SELECT %s, %s FROM %s%s", strings.Join(s.keyTexts(t), ", "), s.rowHash(t), from, s.where(q, t, r, live))
	res, err := s.Q.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, err
	}
	out := make([]RowHash, len(res))
	for i, row := range res {
		out[i] = RowHash{Key: Key(row[:len(t.Key)]), Hash: row[len(t.Key)]}
	}
	return out, nil
}

// Counter counts the bytes read and written on connections.
type Counter struct{ n atomic.Int64 }

// Load returns the bytes counted.
func (c *Counter) Load() int64 { return c.n.Load() }

// Wrap returns conn counting its bytes into c.
func (c *Counter) Wrap(conn net.Conn) net.Conn { return &countingConn{Conn: conn, c: c} }

type countingConn struct {
	net.Conn
	c *Counter
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.n.Add(int64(n))
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.n.Add(int64(n))
	return n, err
}

// DBQuerier is a Querier over database/sql (drivers whose placeholders are ?).
type DBQuerier struct{ DB *sql.DB }

// Query implements Querier.
func (q DBQuerier) Query(ctx context.Context, query string, args ...any) ([][]string, error) {
	rows, err := q.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
