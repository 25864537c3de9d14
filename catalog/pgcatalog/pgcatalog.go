// Package pgcatalog lists a Postgres server's tables for a catalog page: the
// tables a Postgres source may pick and those a Postgres destination holds.
package pgcatalog

import (
	"context"
	"fmt"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/jackc/pgx/v5"
)

// Querier is what the listing runs on: a pool or a connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Entry is a listed table with what only Postgres has.
type Entry struct {
	catalog.Table
	// Partition says the table is a partition of another.
	Partition bool
}

// user is the filter on pg_class and pg_namespace for tables people made:
// ordinary and partitioned tables outside the system schemas.
const user = `c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`

// List reads a page of q: tables ordered by schema and name with their
// columns, primary key in key order, replica identity and estimate (nil for
// a table never analyzed), and, on the first page of an unfiltered listing,
// every schema with its count.
func List(ctx context.Context, db Querier, q catalog.Query) ([]Entry, catalog.Page, error) {
	afterNS, afterName, err := catalog.ParseCursor(q.After)
	if err != nil {
		return nil, catalog.Page{}, err
	}
	search := ""
	if q.Search != "" {
		search = catalog.LikePattern(q.Search)
	}
	rows, err := db.Query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relreplident, c.reltuples, c.relpages, c.relispartition
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE `+user+` AND ($1 = '' OR n.nspname = $1) AND ($2 = '' OR (n.nspname || '.' || c.relname) ILIKE $2)
			AND (n.nspname, c.relname) > ($3 COLLATE "C", $4 COLLATE "C")
		ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C" LIMIT $5`, q.Schema, search, afterNS, afterName, q.Limit+1)
	if err != nil {
		return nil, catalog.Page{}, fmt.Errorf("read the catalog: %w", err)
	}
	var out []Entry
	var oids []uint32
	byOID := map[uint32]int{}
	for rows.Next() {
		var oid uint32
		var ns, name string
		var ident byte
		var tuples float64
		var pages int64
		var e Entry
		if err := rows.Scan(&oid, &ns, &name, &ident, &tuples, &pages, &e.Partition); err != nil {
			rows.Close()
			return nil, catalog.Page{}, err
		}
		e.Table = catalog.Table{Table: schema.TableID{Namespace: ns, Name: name}, Columns: []catalog.Column{}, PrimaryKey: []string{},
			ReplicaIdentity: map[byte]string{'d': "default", 'f': "full", 'i': "index", 'n': "nothing"}[ident]}
		if tuples >= 0 && (tuples > 0 || pages == 0) {
			n := int64(tuples)
			e.EstimatedRows = &n
		}
		byOID[oid] = len(out)
		oids = append(oids, oid)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, catalog.Page{}, err
	}
	var page catalog.Page // its tables are the caller's, from the entries
	if len(out) > q.Limit {
		out, oids = out[:q.Limit], oids[:q.Limit]
		last := out[q.Limit-1].Table.Table
		page.Next = catalog.Cursor(last.Namespace, last.Name)
	}
	if len(oids) > 0 {
		err := each(ctx, db, func(oid uint32, c catalog.Column) {
			if i, ok := byOID[oid]; ok {
				out[i].Columns = append(out[i].Columns, c)
			}
		}, `SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
			FROM pg_catalog.pg_attribute a WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum`, oids)
		if err != nil {
			return nil, catalog.Page{}, fmt.Errorf("read the catalog's columns: %w", err)
		}
		err = each(ctx, db, func(oid uint32, c catalog.Column) {
			if i, ok := byOID[oid]; ok {
				out[i].PrimaryKey = append(out[i].PrimaryKey, c.Name)
			}
		}, `SELECT i.indrelid, a.attname, '', false FROM pg_catalog.pg_index i
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indisprimary AND i.indrelid = ANY($1) ORDER BY i.indrelid, array_position(i.indkey::int2[], a.attnum)`, oids)
		if err != nil {
			return nil, catalog.Page{}, fmt.Errorf("read the catalog's primary keys: %w", err)
		}
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		srows, err := db.Query(ctx, `SELECT n.nspname, count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE `+user+` GROUP BY n.nspname ORDER BY n.nspname COLLATE "C"`)
		if err != nil {
			return nil, catalog.Page{}, fmt.Errorf("read the catalog's schemas: %w", err)
		}
		for srows.Next() {
			var sc catalog.Schema
			if err := srows.Scan(&sc.Name, &sc.Tables); err != nil {
				srows.Close()
				return nil, catalog.Page{}, err
			}
			page.Schemas = append(page.Schemas, sc)
		}
		srows.Close()
		if err := srows.Err(); err != nil {
			return nil, catalog.Page{}, err
		}
	}
	return out, page, nil
}

// each scans (oid, name, type, nullable) rows.
func each(ctx context.Context, db Querier, f func(uint32, catalog.Column), sql string, oids []uint32) error {
	rows, err := db.Query(ctx, sql, oids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var c catalog.Column
		if err := rows.Scan(&oid, &c.Name, &c.Type, &c.Nullable); err != nil {
			return err
		}
		f(oid, c)
	}
	return rows.Err()
}

// Tables returns the entries' tables.
func Tables(es []Entry) []catalog.Table {
	out := make([]catalog.Table, len(es))
	for i, e := range es {
		out[i] = e.Table
	}
	return out
}
