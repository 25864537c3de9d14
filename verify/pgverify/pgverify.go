// Package pgverify opens a verify.Side on a Postgres database, for the
// postgres source and sink.
package pgverify

import (
	"context"
	"fmt"
	"net"

	"github.com/cdcd-dev/cdcd/verify"
	"github.com/jackc/pgx/v5"
)

// Open connects to dsn with its own session (read-only, DateStyle ISO) and
// returns a Side whose tables are where from says.
func Open(ctx context.Context, dsn string, from func(t *verify.Table) (string, string, error)) (*verify.SQLSide, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse the connection string: %w", err)
	}
	var counter verify.Counter
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return counter.Wrap(c), nil
	}
	cc.RuntimeParams["DateStyle"] = "ISO, YMD"
	cc.RuntimeParams["default_transaction_read_only"] = "on"
	cc.RuntimeParams["application_name"] = "cdcd verify"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	return &verify.SQLSide{Q: querier{conn}, D: verify.Postgres, From: from, Conn: &counter,
		CloseFunc: func() error { return conn.Close(context.WithoutCancel(ctx)) }}, nil
}

type querier struct{ conn *pgx.Conn }

func (q querier) Query(ctx context.Context, sql string, args ...any) ([][]string, error) {
	rows, err := q.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				r[i] = fmt.Sprint(v)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
