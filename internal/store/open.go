package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// OpenSQLite opens (creating if needed) the embedded store at path and migrates it.
func OpenSQLite(ctx context.Context, path string, c *secrets.Cipher) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s, err := newSQLStore(ctx, db, dialect{name: "sqlite", blob: "BLOB", bigint: "INTEGER"}, c)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return s, nil
}

// OpenPostgres opens the store in the Postgres database at dsn and migrates it.
// Several cdcd processes may share it.
func OpenPostgres(ctx context.Context, dsn string, c *secrets.Cipher) (Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	db.SetMaxOpenConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres store: %w", err)
	}
	s, err := newSQLStore(ctx, db, dialect{name: "postgres", blob: "BYTEA", bigint: "BIGINT", numbered: true,
		forUpdate: " FOR UPDATE", lock: "SELECT pg_advisory_xact_lock(7367001)"}, c)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return s, nil
}
