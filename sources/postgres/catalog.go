package postgres

import (
	"context"
	"fmt"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// Catalog implements sources.Cataloger: the server's tables (and
// partitioned tables) outside the system schemas, a page at a time, with
// their columns, primary key, replica identity, estimate, and what stands in
// the way of replicating them.
func (s *Source) Catalog(ctx context.Context, q sources.CatalogQuery) (sources.CatalogPage, error) {
	afterNS, afterName, err := sources.ParseCatalogCursor(q.After)
	if err != nil {
		return sources.CatalogPage{}, err
	}
	pool, err := openPool(ctx, s.cfg.DSN, 1)
	if err != nil {
		return sources.CatalogPage{}, err
	}
	defer pool.Close()
	search := ""
	if q.Search != "" {
		search = sources.LikePattern(q.Search)
	}
	const user = `c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`
	rows, err := pool.Query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relreplident, c.reltuples, c.relpages, c.relispartition
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE `+user+` AND ($1 = '' OR n.nspname = $1) AND ($2 = '' OR (n.nspname || '.' || c.relname) ILIKE $2)
			AND (n.nspname, c.relname) > ($3 COLLATE "C", $4 COLLATE "C")
		ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C" LIMIT $5`, q.Schema, search, afterNS, afterName, q.Limit+1)
	if err != nil {
		return sources.CatalogPage{}, fmt.Errorf("read the catalog: %w", err)
	}
	var page sources.CatalogPage
	var oids []uint32
	byOID := map[uint32]int{}
	for rows.Next() {
		var oid uint32
		var ns, name string
		var ident byte
		var tuples float64
		var pages int64
		var partition bool
		if err := rows.Scan(&oid, &ns, &name, &ident, &tuples, &pages, &partition); err != nil {
			rows.Close()
			return sources.CatalogPage{}, err
		}
		t := sources.CatalogTable{Table: schema.TableID{Namespace: ns, Name: name}, Columns: []sources.CatalogColumn{},
			ReplicaIdentity: map[byte]string{'d': "default", 'f': "full", 'i': "index", 'n': "nothing"}[ident]}
		if tuples >= 0 && (tuples > 0 || pages == 0) {
			n := int64(tuples)
			t.EstimatedRows = &n
		}
		if partition {
			t.Problems = append(t.Problems, "a partition: replicate its partitioned parent table instead (its rows arrive under the parent's name)")
		}
		byOID[oid] = len(page.Tables)
		oids = append(oids, oid)
		page.Tables = append(page.Tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sources.CatalogPage{}, err
	}
	if len(page.Tables) > q.Limit {
		page.Tables, oids = page.Tables[:q.Limit], oids[:q.Limit]
		last := page.Tables[q.Limit-1].Table
		page.Next = sources.CatalogCursor(last.Namespace, last.Name)
	}
	if len(oids) > 0 {
		crows, err := pool.Query(ctx, `SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
			FROM pg_catalog.pg_attribute a WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum`, oids)
		if err != nil {
			return sources.CatalogPage{}, fmt.Errorf("read the catalog's columns: %w", err)
		}
		for crows.Next() {
			var oid uint32
			var c sources.CatalogColumn
			if err := crows.Scan(&oid, &c.Name, &c.Type, &c.Nullable); err != nil {
				crows.Close()
				return sources.CatalogPage{}, err
			}
			if i, ok := byOID[oid]; ok {
				page.Tables[i].Columns = append(page.Tables[i].Columns, c)
			}
		}
		crows.Close()
		prows, err := pool.Query(ctx, `SELECT i.indrelid, a.attname FROM pg_catalog.pg_index i
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indisprimary AND i.indrelid = ANY($1) ORDER BY i.indrelid, array_position(i.indkey::int2[], a.attnum)`, oids)
		if err != nil {
			return sources.CatalogPage{}, fmt.Errorf("read the catalog's primary keys: %w", err)
		}
		for prows.Next() {
			var oid uint32
			var col string
			if err := prows.Scan(&oid, &col); err != nil {
				prows.Close()
				return sources.CatalogPage{}, err
			}
			if i, ok := byOID[oid]; ok {
				page.Tables[i].PrimaryKey = append(page.Tables[i].PrimaryKey, col)
			}
		}
		prows.Close()
	}
	for i := range page.Tables {
		t := &page.Tables[i]
		if t.PrimaryKey == nil {
			t.PrimaryKey = []string{}
		}
		switch {
		case t.ReplicaIdentity == "nothing":
			t.Problems = append(t.Problems, fmt.Sprintf("REPLICA IDENTITY NOTHING: its updates and deletes are not published; ALTER TABLE %s REPLICA IDENTITY DEFAULT (with a primary key) or FULL", quoted(t.Table)))
		case len(t.PrimaryKey) == 0 && t.ReplicaIdentity != "full":
			t.Problems = append(t.Problems, fmt.Sprintf("no primary key: its updates and deletes cannot be matched at the destination; add one, or ALTER TABLE %s REPLICA IDENTITY FULL", quoted(t.Table)))
		}
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		srows, err := pool.Query(ctx, `SELECT n.nspname, count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE `+user+` GROUP BY n.nspname ORDER BY n.nspname COLLATE "C"`)
		if err != nil {
			return sources.CatalogPage{}, fmt.Errorf("read the catalog's schemas: %w", err)
		}
		for srows.Next() {
			var sc sources.CatalogSchema
			if err := srows.Scan(&sc.Name, &sc.Tables); err != nil {
				srows.Close()
				return sources.CatalogPage{}, err
			}
			page.Schemas = append(page.Schemas, sc)
		}
		srows.Close()
	}
	return page, nil
}
