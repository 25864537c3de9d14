package clickhouse

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Column is a destination column as the backend inserts it.
type Column struct {
	Name string
	Type string // ClickHouse type
}

// Backend is what the sink needs from ClickHouse. The sink's own is the native
// protocol through clickhouse-go; tests plug in others (the chdb engine) to run
// the same statements and the same encoded blocks.
type Backend interface {
	// ServerVersion returns the server's major and minor version.
	ServerVersion(ctx context.Context) (major, minor int, err error)
	// Exec runs one statement.
	Exec(ctx context.Context, sql string) error
	// QueryStrings runs a query whose columns are all String.
	QueryStrings(ctx context.Context, sql string) ([][]string, error)
	// QueryParams runs a query whose columns are all String, with
	// server-side parameters ({name:Type} in sql): how values travel.
	QueryParams(ctx context.Context, sql string, params map[string]string) ([][]string, error)
	// Insert appends rows (values as clickhouse-go's column AppendRow takes them)
	// to table's columns in one block. dedupToken, when not empty, is the insert
	// deduplication token.
	Insert(ctx context.Context, table string, cols []Column, rows [][]any, dedupToken string) error
	Close() error
}

// native is the clickhouse-go backend.
type native struct {
	conn driver.Conn
}

func dialNative(ctx context.Context, c Config, wrap ...func(net.Conn) net.Conn) (*native, error) {
	opts := &clickhouse.Options{
		Addr:        c.Addr,
		Auth:        clickhouse.Auth{Database: "default", Username: c.Username, Password: c.Password},
		DialTimeout: 10 * time.Second,
		ReadTimeout: 5 * time.Minute,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	}
	if c.Secure {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(wrap) > 0 {
		// the client's own dial, with the socket wrapped (TLS above it)
		d := net.Dialer{Timeout: opts.DialTimeout}
		opts.DialContext = func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			conn = wrap[0](conn)
			if opts.TLS != nil {
				host, _, _ := net.SplitHostPort(addr)
				cfg := opts.TLS.Clone()
				cfg.ServerName = host
				return tls.Client(conn, cfg), nil
			}
			return conn, nil
		}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return &native{conn: conn}, nil
}

func (n *native) ServerVersion(context.Context) (int, int, error) {
	v, err := n.conn.ServerVersion()
	if err != nil {
		return 0, 0, err
	}
	return int(v.Version.Major), int(v.Version.Minor), nil
}

func (n *native) Exec(ctx context.Context, sql string) error { return n.conn.Exec(ctx, sql) }

func (n *native) QueryStrings(ctx context.Context, sql string) ([][]string, error) {
	rows, err := n.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	k := len(rows.Columns())
	var out [][]string
	for rows.Next() {
		r := make([]string, k)
		dest := make([]any, k)
		for i := range r {
			dest[i] = &r[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (n *native) QueryParams(ctx context.Context, sql string, params map[string]string) ([][]string, error) {
	return n.QueryStrings(clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters(params))), sql)
}

func (n *native) Insert(ctx context.Context, table string, cols []Column, rows [][]any, dedupToken string) error {
	if dedupToken != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": dedupToken}))
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = ident(c.Name)
	}
	// an explicit column list: servers before 19.x send an empty header for
	// INSERT INTO t alone
	b, err := n.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s (%s)", table, strings.Join(names, ", ")))
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			_ = b.Abort()
			return err
		}
	}
	return b.Send()
}

func (n *native) Close() error { return n.conn.Close() }

// ident quotes an identifier.
func ident(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

// literal quotes a string literal: names from config, and the server's own
// text of a value it stored (an added column's DEFAULT), never row values.
// Every byte but the backslash, the quote and NUL stands for itself.
func literal(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`, "\x00", `\0`).Replace(s) + "'"
}
