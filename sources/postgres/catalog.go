package postgres

import (
	"context"
	"fmt"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/catalog/pgcatalog"
)

// Catalog implements sources.Cataloger: the server's tables (and
// partitioned tables) outside the system schemas, a page at a time, with
// their columns, primary key, replica identity, estimate, and what stands in
// the way of replicating them.
func (s *Source) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	if _, _, err := catalog.ParseCursor(q.After); err != nil {
		return catalog.Page{}, err
	}
	pool, err := openPool(ctx, s.cfg.DSN, 1)
	if err != nil {
		return catalog.Page{}, err
	}
	defer pool.Close()
	entries, page, err := pgcatalog.List(ctx, pool, q)
	if err != nil {
		return catalog.Page{}, err
	}
	for i := range entries {
		e := &entries[i]
		t := &e.Table
		if e.Partition {
			t.Problems = append(t.Problems, "a partition: replicate its partitioned parent table instead (its rows arrive under the parent's name)")
		}
		switch {
		case t.ReplicaIdentity == "nothing":
			t.Problems = append(t.Problems, fmt.Sprintf("REPLICA IDENTITY NOTHING: its updates and deletes are not published; ALTER TABLE %s REPLICA IDENTITY DEFAULT (with a primary key) or FULL", quoted(t.Table)))
		case len(t.PrimaryKey) == 0 && t.ReplicaIdentity != "full":
			t.Problems = append(t.Problems, fmt.Sprintf("no primary key: its updates and deletes cannot be matched at the destination; add one, or ALTER TABLE %s REPLICA IDENTITY FULL", quoted(t.Table)))
		}
	}
	page.Tables = pgcatalog.Tables(entries)
	return page, nil
}
