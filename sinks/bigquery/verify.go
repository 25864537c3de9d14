package bigquery

import (
	"context"
	"fmt"

	"cloud.google.com/go/bigquery"
	"github.com/cdcd-dev/cdcd/verify"
)

// OpenVerify implements verify.Opener: each table's live rows (soft-deleted
// rows left out), with key bounds as named query parameters. Its bytes are
// not counted: the client's HTTP transport is its own.
func (s *Sink) OpenVerify(ctx context.Context) (verify.Side, error) {
	v := &Sink{cfg: s.cfg, meta: s.meta, labels: s.labels, log: s.log}
	if err := v.connect(ctx); err != nil {
		return nil, err
	}
	return &verify.SQLSide{Q: bqQuerier{v}, D: verify.BigQuery, CloseFunc: func() error { return v.Close(context.WithoutCancel(ctx)) },
		From: func(t *verify.Table) (string, string, error) {
			return v.qualified(v.cfg.Dataset, v.cfg.DestName(t.ID)), "NOT " + quote(v.meta.Deleted), nil
		}}, nil
}

type bqQuerier struct{ s *Sink }

func (q bqQuerier) Query(ctx context.Context, sql string, args ...any) ([][]string, error) {
	params := make([]bigquery.QueryParameter, len(args))
	for i, a := range args {
		params[i] = bigquery.QueryParameter{Name: fmt.Sprintf("p%d", i+1), Value: fmt.Sprint(a)}
	}
	rows, err := q.s.read(ctx, "verify", sql, params...)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			if v != nil {
				out[i][j] = fmt.Sprint(v)
			}
		}
	}
	return out, nil
}
