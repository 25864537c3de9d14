// Package typematrix is the type matrix: every source type cdcd reads (Postgres,
// MySQL/MariaDB), with edge values, through every sink on both paths (rows the
// snapshot reads and rows the stream reads), compared with each other and with
// what the source holds.
//
// The tables here are the one source of truth: Sources lists each source
// column, the values written to it and the value cdcd must read them as;
// Policies lists, per sink, the values a sink cannot hold and stores as NULL
// (counted in cdcd_sink_values_nulled_total under on_unrepresentable: null; an
// error naming table, column and position under the default). Every other
// cell must read back equal at the destination, from both paths; anything else
// fails the run. docs/type-mappings.md's matrix section is generated from them
// (TestDocs; go test ./test/typematrix -run TestDocs -update rewrites it).
//
// Each sink package runs the matrix against its own destination with Run
// (sinks/*/typematrix_test.go), with the private servers of the sources.
package typematrix

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
)

// Cell is one value of a column: the literal the source is given and what
// cdcd must read it as.
type Cell struct {
	SQL  string       // a literal or expression in the source's dialect
	Want schema.Value // the value the source reads
	Note string       // for the docs: what the value tests, when the literal does not say
}

// Column is one column of a source's matrix table.
type Column struct {
	Name  string // the column's name: c_ and the source type, mostly
	Type  string // the source's DDL type
	Cells []Cell // row i of each path holds Cells[i]; NULL after the last
	Note  string // for the docs
}

// Source is one source's matrix table.
type Source struct {
	Name    string   // "postgres", "mysql"
	Setup   []string // statements before the table: types, domains
	Columns []Column
}

// Rows is the number of rows each path writes: the longest column's cells, and
// a row of NULLs after them.
func (s Source) Rows() int {
	n := 0
	for _, c := range s.Columns {
		n = max(n, len(c.Cells))
	}
	return n + 1
}

// Column returns the named column.
func (s Source) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Policy is a value a sink does not store exactly: Cell is its index in the
// column's cells (-1: every one). It is NULL at the destination and counted
// (on_unrepresentable: null), or an error naming table, column and position
// (the default).
type Policy struct {
	Source, Column string
	Cell           int // an index into the column's cells, AllCells or NullCells
	Why            string
	// Stored is what the destination holds instead (nil: NULL).
	Stored *schema.Value
	// Altered: the destination has no form that tells the value apart from
	// Stored (a NULL array and [] in ClickHouse; JSON null and NULL where the
	// value is written as JSON text). on_unrepresentable is not consulted: it
	// is stored as Stored under either policy and counted in
	// cdcd_sink_values_altered_total.
	Altered bool
}

// stored is what the destination holds for a cell the policy covers.
func (p Policy) stored() schema.Value {
	if p.Stored != nil {
		return *p.Stored
	}
	return schema.Null()
}

// Cell indexes of a Policy beyond the column's own.
const (
	AllCells  = -1 // every value of the column
	NullCells = -2 // the rows that hold NULL in the column
)

// Targets are the sinks the matrix runs on, in docs order, with the
// destination each test uses.
var Targets = []struct{ Name, Destination string }{
	{"postgres", "PostgreSQL 15 (Debian)"},
	{"clickhouse", "ClickHouse, current engine (chdb)"},
	{"clickhouse-18", "ClickHouse 18.16 server (Debian)"},
	{"snowflake", "fakesnow (Snowflake's protocol over DuckDB)"},
	{"bigquery", "bigquery-emulator"},
	{"file", "JSON lines"},
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func dt(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04:05.999999", s)
	if err != nil {
		panic(err)
	}
	return t
}

// f32 is a single-precision value as cdcd carries it: the double nearest the
// shortest decimal that round-trips it.
func f32(f float32) schema.Value {
	var v float64
	fmt.Sscan(fmt.Sprint(f), &v)
	return schema.Float(v)
}

func str(s string) Cell { return Cell{SQL: quote(s), Want: schema.String(s)} }

// quote is a standard SQL string literal (both sources take it: MariaDB runs
// with NO_BACKSLASH_ESCAPES for the matrix).
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func unk(typ, sql, text string) Cell { return Cell{SQL: sql, Want: schema.Unknown(typ, text)} }

var (
	nan     = math.NaN()
	inf     = math.Inf(1)
	negZero = math.Copysign(0, -1)
)

// bigLen is the size of the big text and bytes values: larger than a Postgres
// page, stored out of line (TOAST), and than one MySQL packet's default
// chunk. scripts/test-long sets CDCD_TYPEMATRIX_BIG_BYTES to 1 MiB.
var bigLen = func() int {
	n, err := strconv.Atoi(os.Getenv("CDCD_TYPEMATRIX_BIG_BYTES"))
	if err != nil || n < 16 {
		return 300_000
	}
	return n - n%16
}()

// bigNote describes bigLen in the docs' values column.
func bigNote() string {
	if bigLen >= 1<<20 && bigLen%(1<<20) == 0 {
		return strconv.Itoa(bigLen>>20) + " MiB"
	}
	return strconv.Itoa(bigLen/1000) + " kB"
}

var bigText = strings.Repeat("0123456789abcdef", bigLen/16)

var bigBytes = func() []byte {
	b := make([]byte, bigLen)
	for i := range b {
		b[i] = byte(i * 7)
	}
	b[0], b[len(b)-1] = 0, 0
	return b
}()

const thousandDigits = "1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"." +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890" +
	"1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"

const tricky = "héllo 🌍 \t tab \n newline \\ backslash \"double\" 'single' {brace},comma"
