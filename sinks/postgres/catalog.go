package postgres

import (
	"context"
	"fmt"

	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/catalog/pgcatalog"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/jackc/pgx/v5"
)

// Catalog implements sinks.Cataloger: the tables of the destination
// database outside the system schemas, with their columns, primary key and
// estimate. It reads on a connection of its own: nothing is created.
func (s *Sink) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	if _, _, err := catalog.ParseCursor(q.After); err != nil {
		return catalog.Page{}, err
	}
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return catalog.Page{}, component.Permanent(fmt.Errorf("dsn: %s", redact.Text(err.Error())))
	}
	cc.DialFunc = s.dial.DialContext
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return catalog.Page{}, fmt.Errorf("connect to destination: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	entries, page, err := pgcatalog.List(ctx, conn, q)
	if err != nil {
		return catalog.Page{}, err
	}
	page.Tables = pgcatalog.Tables(entries)
	return page, nil
}
