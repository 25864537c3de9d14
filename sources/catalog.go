package sources

import (
	"context"

	"github.com/cdcd-dev/cdcd/schema"
)

// Cataloger is implemented by sources that can list the tables of their
// server (the UI's table picker, GET …/connections/{name}/catalog), page by
// page, outside any pipeline. It reads; it creates nothing on the server.
type Cataloger interface {
	Catalog(ctx context.Context, q CatalogQuery) (CatalogPage, error)
}

// CatalogQuery selects a page of tables, ordered by schema and name.
type CatalogQuery struct {
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

// CatalogPage is a page of tables; Next, when set, is the After of the next.
type CatalogPage struct {
	Tables []CatalogTable `json:"tables"`
	Next   string         `json:"next,omitempty"`
	// Schemas are every schema (database) that has a table, with how many:
	// on the first page of the listing without search or schema only (a
	// client keeps them; counting every table again at each search cost
	// as much as the search among 10,000 tables).
	Schemas []CatalogSchema `json:"schemas,omitempty"`
}

// CatalogSchema is a schema and how many tables it has.
type CatalogSchema struct {
	Name   string `json:"name"`
	Tables int    `json:"tables"`
}

// CatalogTable is one table as a pipeline would see it.
type CatalogTable struct {
	Table      schema.TableID  `json:"table"`
	Columns    []CatalogColumn `json:"columns"`
	PrimaryKey []string        `json:"primary_key"`
	// ReplicaIdentity is Postgres's (default, full, index, nothing); empty
	// elsewhere.
	ReplicaIdentity string `json:"replica_identity,omitempty"`
	// EstimatedRows is the server's statistics; nil when it has none.
	EstimatedRows *int64 `json:"estimated_rows"`
	// Problems say why the table cannot be replicated as it is, and what to
	// do; none: it can.
	Problems []string `json:"problems,omitempty"`
}

// CatalogColumn is one column: its name, the server's type and nullability.
type CatalogColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}
