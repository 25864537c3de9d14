package snowflake

import (
	"context"

	"github.com/cdcd-dev/cdcd/verify"
)

// OpenVerify implements verify.Opener: each table's live rows (soft-deleted
// rows left out). Its bytes are not counted: the driver's HTTP client is its
// own.
func (s *Sink) OpenVerify(ctx context.Context) (verify.Side, error) {
	db, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	return &verify.SQLSide{Q: verify.DBQuerier{DB: db}, D: verify.Snowflake, CloseFunc: db.Close,
		From: func(t *verify.Table) (string, string, error) {
			return s.qualified(s.cfg.DestName(t.ID)), "NOT " + quote(s.meta.Deleted), nil
		}}, nil
}
