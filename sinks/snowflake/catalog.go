package snowflake

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/schema"
)

// Catalog implements sinks.Cataloger: the tables of the configured
// database outside INFORMATION_SCHEMA, a page at a time, with their columns
// and row counts, from the database's INFORMATION_SCHEMA. Snowflake does not
// enforce primary keys and INFORMATION_SCHEMA does not list their columns:
// primary_key is empty. It reads only, on a connection of its own.
func (s *Sink) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	afterSchema, afterName, err := catalog.ParseCursor(q.After)
	if err != nil {
		return catalog.Page{}, err
	}
	db, err := s.connect(ctx)
	if err != nil {
		return catalog.Page{}, err
	}
	defer db.Close()
	info := quote(s.cfg.Database) + `."INFORMATION_SCHEMA"`
	const user = `"TABLE_SCHEMA" <> 'INFORMATION_SCHEMA' AND "TABLE_TYPE" = 'BASE TABLE'`
	rows, err := db.QueryContext(ctx, `SELECT "TABLE_SCHEMA", "TABLE_NAME", "ROW_COUNT" FROM `+info+`."TABLES"
		WHERE `+user+` AND (? = '' OR "TABLE_SCHEMA" = ?)
			AND (? = '' OR POSITION(LOWER(?) IN LOWER("TABLE_SCHEMA" || '.' || "TABLE_NAME")) > 0)
			AND ("TABLE_SCHEMA" > ? OR ("TABLE_SCHEMA" = ? AND "TABLE_NAME" > ?))
		ORDER BY "TABLE_SCHEMA", "TABLE_NAME" LIMIT ?`,
		q.Schema, q.Schema, q.Search, q.Search, afterSchema, afterSchema, afterName, q.Limit+1)
	if err != nil {
		return catalog.Page{}, classify(fmt.Errorf("read the catalog: %w", err))
	}
	var page catalog.Page
	byName := map[schema.TableID]int{}
	for rows.Next() {
		var t catalog.Table
		var count sql.NullInt64
		if err := rows.Scan(&t.Table.Namespace, &t.Table.Name, &count); err != nil {
			rows.Close()
			return catalog.Page{}, classify(err)
		}
		t.Columns, t.PrimaryKey = []catalog.Column{}, []string{}
		if count.Valid {
			t.EstimatedRows = &count.Int64
		}
		byName[t.Table] = len(page.Tables)
		page.Tables = append(page.Tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return catalog.Page{}, classify(err)
	}
	page.Cut(q.Limit) // the columns are read for the tables kept only
	if n := len(page.Tables); n > 0 {
		// the page is a contiguous range of (schema, table): its columns
		first, last := page.Tables[0].Table, page.Tables[n-1].Table
		cols, err := db.QueryContext(ctx, `SELECT "TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "IS_NULLABLE" FROM `+info+`."COLUMNS"
			WHERE ("TABLE_SCHEMA" > ? OR ("TABLE_SCHEMA" = ? AND "TABLE_NAME" >= ?)) AND ("TABLE_SCHEMA" < ? OR ("TABLE_SCHEMA" = ? AND "TABLE_NAME" <= ?))
			ORDER BY "TABLE_SCHEMA", "TABLE_NAME", "ORDINAL_POSITION"`,
			first.Namespace, first.Namespace, first.Name, last.Namespace, last.Namespace, last.Name)
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("read the catalog's columns: %w", err))
		}
		defer cols.Close()
		for cols.Next() {
			var id schema.TableID
			var c catalog.Column
			var nullable string
			if err := cols.Scan(&id.Namespace, &id.Name, &c.Name, &c.Type, &nullable); err != nil {
				return catalog.Page{}, classify(err)
			}
			if i, ok := byName[id]; ok {
				c.Nullable = nullable == "YES"
				page.Tables[i].Columns = append(page.Tables[i].Columns, c)
			}
		}
		if err := cols.Err(); err != nil {
			return catalog.Page{}, classify(err)
		}
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		srows, err := db.QueryContext(ctx, `SELECT "TABLE_SCHEMA", COUNT(*) FROM `+info+`."TABLES" WHERE `+user+` GROUP BY "TABLE_SCHEMA" ORDER BY "TABLE_SCHEMA"`)
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("read the catalog's schemas: %w", err))
		}
		defer srows.Close()
		for srows.Next() {
			var sc catalog.Schema
			if err := srows.Scan(&sc.Name, &sc.Tables); err != nil {
				return catalog.Page{}, classify(err)
			}
			page.Schemas = append(page.Schemas, sc)
		}
		if err := srows.Err(); err != nil {
			return catalog.Page{}, classify(err)
		}
	}
	return page, nil
}
