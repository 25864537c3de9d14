package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
)

// userTables is the filter on system.tables for tables people made.
const userTables = `database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') AND NOT is_temporary`

// Catalog implements sinks.Cataloger: the server's tables outside its system
// databases, a page at a time, with their columns, the columns of their
// primary key (in column order) and their row count (total_rows, where the
// engine keeps one). Values travel as query parameters (ClickHouse 21.x and
// later); it reads only, on a connection of its own.
func (s *Sink) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	afterDB, afterName, err := catalog.ParseCursor(q.After)
	if err != nil {
		return catalog.Page{}, err
	}
	be, f, err := s.connect(ctx)
	if err != nil {
		return catalog.Page{}, classify(err)
	}
	defer be.Close()
	if f.major < 21 {
		return catalog.Page{}, component.Permanent(fmt.Errorf("listing the destination's tables needs ClickHouse 21.x or later (query parameters); the server runs %d.%d", f.major, f.minor))
	}
	params := map[string]string{"schema": q.Schema, "search": q.Search, "adb": afterDB, "aname": afterName, "limit": strconv.Itoa(q.Limit + 1)}
	const filter = userTables + ` AND ({schema:String} = '' OR database = {schema:String})
		AND ({search:String} = '' OR positionCaseInsensitiveUTF8(concat(database, '.', name), {search:String}) > 0)`
	rows, err := be.QueryParams(ctx, `SELECT database, name, ifNull(toString(total_rows), '') FROM system.tables
		WHERE `+filter+` AND (database, name) > ({adb:String}, {aname:String})
		ORDER BY database, name LIMIT {limit:UInt32}`, params)
	if err != nil {
		return catalog.Page{}, classify(fmt.Errorf("read the catalog: %w", err))
	}
	var page catalog.Page
	byName := map[schema.TableID]int{}
	for _, r := range rows {
		t := catalog.Table{Table: schema.TableID{Namespace: r[0], Name: r[1]}, Columns: []catalog.Column{}, PrimaryKey: []string{}}
		if n, err := strconv.ParseInt(r[2], 10, 64); err == nil {
			t.EstimatedRows = &n
		}
		byName[t.Table] = len(page.Tables)
		page.Tables = append(page.Tables, t)
	}
	page.Cut(q.Limit) // the columns are read for the tables kept only
	if n := len(page.Tables); n > 0 {
		// the page is a contiguous range of (database, table): its columns
		first, last := page.Tables[0].Table, page.Tables[n-1].Table
		cols, err := be.QueryParams(ctx, `SELECT database, table, name, type, toString(is_in_primary_key) FROM system.columns
			WHERE (database, table) >= ({fdb:String}, {fname:String}) AND (database, table) <= ({ldb:String}, {lname:String})
			ORDER BY database, table, position`,
			map[string]string{"fdb": first.Namespace, "fname": first.Name, "ldb": last.Namespace, "lname": last.Name})
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("read the catalog's columns: %w", err))
		}
		for _, r := range cols {
			i, ok := byName[schema.TableID{Namespace: r[0], Name: r[1]}]
			if !ok {
				continue
			}
			t := &page.Tables[i]
			t.Columns = append(t.Columns, catalog.Column{Name: r[2], Type: r[3], Nullable: strings.HasPrefix(r[3], "Nullable(")})
			if r[4] == "1" {
				t.PrimaryKey = append(t.PrimaryKey, r[2])
			}
		}
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		counts, err := be.QueryParams(ctx, `SELECT database, toString(count()) FROM system.tables WHERE `+userTables+` GROUP BY database ORDER BY database`, map[string]string{})
		if err != nil {
			return catalog.Page{}, classify(fmt.Errorf("read the catalog's databases: %w", err))
		}
		for _, r := range counts {
			n, _ := strconv.Atoi(r[1])
			page.Schemas = append(page.Schemas, catalog.Schema{Name: r[0], Tables: n})
		}
	}
	return page, nil
}
