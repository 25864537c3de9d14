package postgres

import (
	"context"

	"github.com/cdcd-dev/cdcd/verify"
	"github.com/cdcd-dev/cdcd/verify/pgverify"
	"github.com/jackc/pgx/v5"
)

// OpenVerify implements verify.Opener: the tables as they are now, read in
// their own read-only session.
func (s *Source) OpenVerify(ctx context.Context) (verify.Side, error) {
	return pgverify.Open(ctx, s.cfg.DSN, func(t *verify.Table) (string, string, error) {
		return pgx.Identifier{t.ID.Namespace, t.ID.Name}.Sanitize(), "", nil
	})
}
