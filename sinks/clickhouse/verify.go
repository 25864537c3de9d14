package clickhouse

import (
	"context"
	"fmt"

	"github.com/cdcd-dev/cdcd/verify"
)

// OpenVerify implements verify.Opener: the live rows of each table's
// destination, merged (FINAL) and without tombstones. It needs query
// parameters (ClickHouse 19.x and later): key bounds never travel in SQL.
func (s *Sink) OpenVerify(ctx context.Context) (verify.Side, error) {
	var counter verify.Counter
	var be Backend
	var err error
	closeBe := func() error { return be.Close() }
	if s.injected {
		be, err = s.dial(ctx)
		closeBe = func() error { return nil }
	} else {
		// a connection of its own, whose bytes are counted
		be, err = dialNative(ctx, s.cfg, counter.Wrap)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("connect: %w", err))
	}
	major, _, err := be.ServerVersion(ctx)
	if err != nil {
		closeBe()
		return nil, err
	}
	if major < 21 {
		closeBe()
		return nil, fmt.Errorf("%w: it needs ClickHouse 21.x or later (query parameters and window functions); the server runs %d.x", verify.ErrUnsupported, major)
	}
	return &verify.SQLSide{Q: chQuerier{be}, D: verify.ClickHouse, Conn: &counter, CloseFunc: closeBe,
		From: func(t *verify.Table) (string, string, error) {
			table := s.db + "." + ident(s.cfg.DestName(t.ID))
			return "(SELECT * FROM " + table + " FINAL) AS v", ident(s.meta.Deleted) + " = 0", nil
		}}, nil
}

type chQuerier struct{ be Backend }

func (q chQuerier) Query(ctx context.Context, sql string, args ...any) ([][]string, error) {
	params := make(map[string]string, len(args))
	for i, a := range args {
		params[fmt.Sprintf("p%d", i+1)] = fmt.Sprint(a)
	}
	return q.be.QueryParams(ctx, sql, params)
}
