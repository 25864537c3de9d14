// Package catalog describes what a server holds, as a page of tables with
// their columns, keys and estimates: a source's tables to pick (the
// sources.Cataloger of the UI's table picker) and a destination's tables that
// already exist (sinks.Cataloger). It has no dependency on either side.
package catalog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Query selects a page of tables, ordered by schema and name.
type Query struct {
	// Schema, when set, keeps only that schema's (database's) tables.
	Schema string
	// Search, when set, keeps the tables whose schema.name contains it
	// (case-insensitive).
	Search string
	// After is the previous page's Next: the page starts after that table.
	After string
	// Limit is the page's size (1 to 1000).
	Limit int
}

// Page is a page of tables; Next, when set, is the After of the next.
type Page struct {
	Tables []Table `json:"tables"`
	Next   string  `json:"next,omitempty"`
	// Schemas are every schema (database) that has a table, with how many:
	// on the first page of the listing without search or schema only (a
	// client keeps them; counting every table again at each search cost
	// as much as the search among 10,000 tables).
	Schemas []Schema `json:"schemas,omitempty"`
}

// Schema is a schema and how many tables it has.
type Schema struct {
	Name   string `json:"name"`
	Tables int    `json:"tables"`
}

// Table is one table as a pipeline would see it.
type Table struct {
	Table      schema.TableID `json:"table"`
	Columns    []Column       `json:"columns"`
	PrimaryKey []string       `json:"primary_key"`
	// ReplicaIdentity is Postgres's (default, full, index, nothing); empty
	// elsewhere.
	ReplicaIdentity string `json:"replica_identity,omitempty"`
	// EstimatedRows is the server's statistics; nil when it has none.
	EstimatedRows *int64 `json:"estimated_rows"`
	// Problems say why the table cannot be replicated as it is, and what to
	// do; none: it can.
	Problems []string `json:"problems,omitempty"`
}

// Column is one column: its name, the server's type and nullability.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

// Cursor encodes a page's last table as an opaque Next.
func Cursor(namespace, name string) string {
	b, _ := json.Marshal([2]string{namespace, name})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes an After ("" is the first page).
func ParseCursor(after string) (namespace, name string, err error) {
	if after == "" {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(after)
	var v [2]string
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return "", "", errors.New("after: not a cursor this catalog returned")
	}
	return v[0], v[1], nil
}

// LikePattern is s as a LIKE/ILIKE pattern matching it anywhere, with the
// pattern characters escaped (escape character \).
func LikePattern(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s) + "%"
}

// Cut keeps the first limit tables of a page read with one table more than
// its limit (the query's LIMIT limit+1), and when there were more, sets Next
// to the cursor after the last one kept. It reports whether it cut.
func (p *Page) Cut(limit int) bool {
	if len(p.Tables) <= limit {
		return false
	}
	p.Tables = p.Tables[:limit]
	last := p.Tables[limit-1].Table
	p.Next = Cursor(last.Namespace, last.Name)
	return true
}
