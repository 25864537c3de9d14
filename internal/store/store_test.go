package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/internal/store/storetest"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
)

func cipher(t *testing.T) *secrets.Cipher {
	c, err := secrets.New(make([]byte, 32))
	require.NoError(t, err)
	return c
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "meta.db")
		s, err := store.OpenSQLite(context.Background(), path, cipher(t))
		require.NoError(t, err)
		// Reopening runs the migrations again: they must be idempotent.
		s2, err := store.OpenSQLite(context.Background(), path, cipher(t))
		require.NoError(t, err)
		require.NoError(t, s2.Close())
		return s
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn := pg.CreateDatabase(t, fmt.Sprintf("store_%d", n.Add(1)))
		s, err := store.OpenPostgres(context.Background(), dsn, cipher(t))
		require.NoError(t, err)
		s2, err := store.OpenPostgres(context.Background(), dsn, cipher(t))
		require.NoError(t, err)
		require.NoError(t, s2.Close())
		return s
	})
}

func TestSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, path, cipher(t))
	require.NoError(t, err)
	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "c", Type: "postgres", Config: []byte(`{"password":"hunter2"}`)}))
	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{"password":"hunter3"}`)}, nil))
	plain, _, err := s.CreateToken(ctx, "t")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Nothing secret is in the database file or its WAL.
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, secret := range []string{"hunter2", "hunter3", plain} {
			require.False(t, strings.Contains(string(b), secret), "%s holds %q in clear", filepath.Base(f), secret)
		}
	}

	// Another key cannot read them back.
	other := make([]byte, 32)
	other[0] = 9
	oc, _ := secrets.New(other)
	s2, err := store.OpenSQLite(ctx, path, oc)
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.GetConnection(ctx, "c")
	require.ErrorIs(t, err, secrets.ErrWrongKey)

	// A newer schema than this binary knows is refused.
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO cdcd_schema_migrations (version, applied_at) VALUES (999, 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = store.OpenSQLite(ctx, path, cipher(t))
	require.ErrorContains(t, err, "newer than this cdcd")
}
