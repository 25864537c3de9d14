package postgres

import (
	"context"

	"github.com/cdcd-dev/cdcd/verify"
	"github.com/cdcd-dev/cdcd/verify/pgverify"
	"github.com/jackc/pgx/v5"
)

// OpenVerify implements verify.Opener: the live rows of each table's
// destination (soft-deleted rows left out).
func (s *Sink) OpenVerify(ctx context.Context) (verify.Side, error) {
	return pgverify.Open(ctx, s.cfg.DSN, func(t *verify.Table) (string, string, error) {
		return s.destIdent(t.ID), "NOT " + pgx.Identifier{s.meta.Deleted}.Sanitize(), nil
	})
}
