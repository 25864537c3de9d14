package mysql

import (
	"context"
	"fmt"
	"github.com/cdcd-dev/cdcd/catalog"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/stretchr/testify/require"
)

// TestCatalog: every base table outside the system databases, paged in
// order, filtered, with columns, primary key, estimate and problems.
func TestCatalog(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	conn, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	defer conn.Close()
	stmts := []string{"CREATE DATABASE app", "CREATE DATABASE bulk",
		"CREATE TABLE app.orders (id bigint, line int, note varchar(20) NOT NULL, PRIMARY KEY (line, id))",
		"CREATE TABLE app.nokey (x int)", "CREATE TABLE app.legacy (id int PRIMARY KEY) ENGINE = MyISAM",
		"CREATE VIEW app.v AS SELECT 1 AS one"}
	for i := 1; i <= 250; i++ {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE bulk.t%04d (id int PRIMARY KEY)", i))
	}
	for _, q := range stmts {
		_, err := conn.Execute(q)
		require.NoError(t, err, q)
	}
	cfg := Config{Addr: m.Addr(), User: "root", Tables: []string{"app.orders"}}.WithDefaults("cat")
	require.NoError(t, cfg.Validate())
	src := New(cfg, sources.Deps{})
	ctx := context.Background()
	var all []catalog.Table
	after := ""
	for {
		p, err := src.Catalog(ctx, catalog.Query{After: after, Limit: 100})
		require.NoError(t, err)
		if after == "" {
			require.Equal(t, []catalog.Schema{{Name: "app", Tables: 3}, {Name: "bulk", Tables: 250}}, p.Schemas)
		}
		all = append(all, p.Tables...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	require.Len(t, all, 253, "base tables only: not the view")
	by := map[string]catalog.Table{}
	for i, tb := range all {
		by[tb.Table.String()] = tb
		if i > 0 {
			require.Less(t, all[i-1].Table.String(), tb.Table.String())
		}
	}
	o := by["app.orders"]
	require.Equal(t, []catalog.Column{{Name: "id", Type: "bigint(20)"}, {Name: "line", Type: "int(11)"}, {Name: "note", Type: "varchar(20)"}}, o.Columns)
	require.Equal(t, []string{"line", "id"}, o.PrimaryKey)
	require.NotNil(t, o.EstimatedRows)
	require.Empty(t, o.Problems)
	require.Contains(t, by["app.nokey"].Problems[0], "no primary key")
	require.Contains(t, strings.Join(by["app.legacy"].Problems, "; "), "engine MyISAM is not transactional")

	// sample rows, read as the snapshot reads them (for the transform preview)
	for _, q := range []string{"INSERT INTO app.orders VALUES (2, 1, 'b'), (1, 1, 'a'), (3, 2, 'c')"} {
		_, err := conn.Execute(q)
		require.NoError(t, err)
	}
	tbl, rows, err := src.Sample(ctx, schema.TableID{Namespace: "app", Name: "orders"}, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"line", "id"}, tbl.PrimaryKey)
	require.Len(t, rows, 2)
	require.Equal(t, `{"id":1,"line":1,"note":"a"}`, string(rows[0].AppendJSON(nil)), "in key order")
	_, _, err = src.Sample(ctx, schema.TableID{Namespace: "app", Name: "missing"}, 2)
	require.Error(t, err)

	p, err := src.Catalog(ctx, catalog.Query{Schema: "app", Search: "ORD", Limit: 10})
	require.NoError(t, err)
	require.Len(t, p.Tables, 1)
	p, err = src.Catalog(ctx, catalog.Query{Search: "t_1", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, p.Tables, "_ is a character")
}
