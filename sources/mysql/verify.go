package mysql

import (
	"context"
	"strings"

	"github.com/cdcd-dev/cdcd/verify"
	"github.com/go-mysql-org/go-mysql/client"
)

// OpenVerify implements verify.Opener: the tables as they are now, read on a
// connection of their own (time_zone +00:00, utf8mb4).
func (s *Source) OpenVerify(ctx context.Context) (verify.Side, error) {
	var counter verify.Counter
	conn, err := s.connectWrapped(ctx, counter.Wrap)
	if err != nil {
		return nil, err
	}
	return &verify.SQLSide{Q: verifyQuerier{conn}, D: verify.MySQL, Conn: &counter,
		From: func(t *verify.Table) (string, string, error) {
			return verify.MySQL.Quote(t.ID.Namespace) + "." + verify.MySQL.Quote(t.ID.Name), "", nil
		},
		CloseFunc: conn.Close}, nil
}

type verifyQuerier struct{ conn *client.Conn }

func (q verifyQuerier) Query(ctx context.Context, sql string, args ...any) ([][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { q.conn.Close() })
	defer stop()
	res, err := q.conn.Execute(sql, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := make([][]string, res.RowNumber())
	for i := range out {
		row := make([]string, res.ColumnNumber())
		for j := range row {
			v, err := res.GetString(i, j)
			if err != nil {
				return nil, err
			}
			// go-mysql's strings may alias its read buffer, which the next
			// query overwrites
			row[j] = strings.Clone(v)
		}
		out[i] = row
	}
	return out, nil
}
