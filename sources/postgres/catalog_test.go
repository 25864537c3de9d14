package postgres

import (
	"context"
	"github.com/cdcd-dev/cdcd/catalog"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

// TestCatalog: every table outside the system schemas, paged in order by a
// cursor, filtered by schema and search, with columns, primary key, replica
// identity, estimate and what stands in the way of replicating each; a
// catalog of thousands of tables pages quickly (the time is logged).
func TestCatalog(t *testing.T) {
	t.Parallel()
	pg := startPG(t)
	h := newHarness(t, pg, `
		CREATE SCHEMA bulk;
		DO $$ BEGIN FOR i IN 1..3000 LOOP EXECUTE format('CREATE TABLE bulk.t%s (id int PRIMARY KEY, v text)', lpad(i::text, 4, '0')); END LOOP; END $$;
		CREATE TABLE public.orders (id int8, line int4, note varchar(20) NOT NULL, PRIMARY KEY (line, id));
		INSERT INTO public.orders SELECT g, 1, 'x' FROM generate_series(1, 500) g; ANALYZE public.orders;
		CREATE TABLE public.nokey (x int);
		CREATE TABLE public.full_ident (x int); ALTER TABLE public.full_ident REPLICA IDENTITY FULL;
		CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
		CREATE SCHEMA "Odd"; CREATE TABLE "Odd"."we.ird" (id int PRIMARY KEY);`)
	src := New(h.config("public.orders"), sources.Deps{})
	ctx := context.Background()

	var all []catalog.Table
	after, pages := "", 0
	start := time.Now()
	for {
		p, err := src.Catalog(ctx, catalog.Query{After: after, Limit: 500})
		require.NoError(t, err)
		if after == "" {
			require.Equal(t, []catalog.Schema{{Name: "Odd", Tables: 1}, {Name: "bulk", Tables: 3000}, {Name: "public", Tables: 5}}, p.Schemas)
		} else {
			require.Nil(t, p.Schemas, "schemas on the first page only")
		}
		all = append(all, p.Tables...)
		pages++
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	t.Logf("3,006 tables in %d pages of 500: %v", pages, time.Since(start))
	require.Len(t, all, 3006)
	require.Equal(t, 7, pages)
	require.Equal(t, "Odd.we.ird", all[0].Table.Namespace+"."+all[0].Table.Name)
	require.Equal(t, "t0001", all[1].Table.Name)
	for i := 2; i < len(all); i++ {
		a, b := all[i-1].Table, all[i].Table
		require.True(t, a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name), "in order: %s, %s", a, b)
	}

	byName := map[string]catalog.Table{}
	for _, tb := range all {
		byName[tb.Table.String()] = tb
	}
	o := byName["public.orders"]
	require.Equal(t, []catalog.Column{{Name: "id", Type: "bigint"}, {Name: "line", Type: "integer"}, {Name: "note", Type: "character varying(20)"}}, o.Columns)
	require.Equal(t, []string{"line", "id"}, o.PrimaryKey, "in the key's order")
	require.Equal(t, "default", o.ReplicaIdentity)
	require.Equal(t, int64(500), *o.EstimatedRows)
	require.Empty(t, o.Problems)
	require.Nil(t, byName["public.nokey"].EstimatedRows, "never analyzed: no estimate")
	require.Contains(t, byName["public.nokey"].Problems[0], `no primary key: its updates and deletes cannot be matched at the destination; add one, or ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL`)
	require.Empty(t, byName["public.full_ident"].Problems)
	require.Equal(t, "full", byName["public.full_ident"].ReplicaIdentity)
	require.Empty(t, byName["public.parted"].Problems)
	require.Contains(t, byName["public.parted_1"].Problems[0], "a partition: replicate its partitioned parent")

	p, err := src.Catalog(ctx, catalog.Query{Schema: "public", Search: "ORD", Limit: 10})
	require.NoError(t, err)
	require.Len(t, p.Tables, 1, "search is case-insensitive, within the schema")
	require.Equal(t, "orders", p.Tables[0].Table.Name)
	p, err = src.Catalog(ctx, catalog.Query{Search: "t_9", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, p.Tables, "_ in a search is a character, not a wildcard")
	p, err = src.Catalog(ctx, catalog.Query{Search: "e.i", Limit: 10})
	require.NoError(t, err)
	require.Len(t, p.Tables, 1)
	_, err = src.Catalog(ctx, catalog.Query{After: "garbage", Limit: 10})
	require.ErrorContains(t, err, "not a cursor")
}
