package sources

import (
	"context"

	"github.com/cdcd-dev/cdcd/catalog"
)

// Cataloger is implemented by sources that can list the tables of their
// server (the UI's table picker, GET …/connections/{name}/catalog), page by
// page, outside any pipeline. It reads; it creates nothing on the server.
type Cataloger interface {
	Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error)
}
