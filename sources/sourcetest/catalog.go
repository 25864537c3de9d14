package sourcetest

import (
	"context"
	"github.com/cdcd-dev/cdcd/catalog"
	"testing"

	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

// BenchCatalog10k runs the catalog requests the wizard's table step makes of
// a source whose server holds 100 schemas (databases) s00…s99 of 100 tables
// t00…t99 each: the first page, a search for one table, one schema's page.
func BenchCatalog10k(b *testing.B, c sources.Cataloger) {
	ctx := context.Background()
	for _, q := range []struct {
		name  string
		query catalog.Query
		want  int
	}{
		{"first-page", catalog.Query{Limit: 100}, 100},
		{"search", catalog.Query{Search: "s42.t17", Limit: 100}, 1},
		{"schema", catalog.Query{Schema: "s99", Limit: 100}, 100},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				page, err := c.Catalog(ctx, q.query)
				require.NoError(b, err)
				require.Len(b, page.Tables, q.want)
			}
		})
	}
}
