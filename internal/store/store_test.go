package store_test

import (
	"context"
	"crypto/aes"
	gcm "crypto/cipher"
	"database/sql"
	"encoding/base64"
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
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
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
	plain, _, err := s.CreateToken(ctx, store.TokenSpec{Name: "t", Role: store.RoleAdmin})
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

// A sealed value is bound to its row: copied to another row it does not open.
func TestSealedValuesAreBoundToTheirRow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, path, cipher(t))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "a", Type: "postgres", Config: []byte(`{"password":"aaa"}`)}))
	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "b", Type: "postgres", Config: []byte(`{"password":"bbb"}`)}))
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`UPDATE cdcd_connections SET config = (SELECT config FROM cdcd_connections WHERE name = 'a') WHERE name = 'b'`)
	require.NoError(t, err)
	_, err = s.GetConnection(ctx, "b")
	require.ErrorIs(t, err, secrets.ErrWrongKey)
	c, err := s.GetConnection(ctx, "a")
	require.NoError(t, err)
	require.JSONEq(t, `{"password":"aaa"}`, string(c.Config))
}

// Values an older cdcd sealed (no key id, no binding) are sealed again, bound,
// when the store opens; tokens it made become admins.
func TestUpgradeFromFirstFormat(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, path, cipher(t))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	legacy := func(pt string) string {
		block, _ := aes.NewCipher(make([]byte, 32))
		aead, _ := gcm.NewGCM(block)
		nonce := make([]byte, 12)
		return "v1:" + base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(pt), nil))
	}
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO cdcd_connections (name, type, config, created_at, updated_at) VALUES ('c', 'postgres', ?, 0, 0)`, legacy(`{"password":"old"}`))
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO cdcd_tokens (id, name, hash, created_at) VALUES ('t1', 'old', 'h', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err = store.OpenSQLite(ctx, path, cipher(t))
	require.NoError(t, err)
	defer s.Close()
	c, err := s.GetConnection(ctx, "c")
	require.NoError(t, err)
	require.JSONEq(t, `{"password":"old"}`, string(c.Config))
	ids, err := s.KeyIDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{cipher(t).ID()}, ids, "no value of the first format is left")
	tok, err := s.GetToken(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, tok.Role, "tokens made before roles are admins")
}

// Rekey seals every stored secret under a new key in one transaction.
func TestRekey(t *testing.T) {
	t.Parallel()
	for _, open := range []struct {
		name string
		f    func(t *testing.T, c *secrets.Cipher) store.Store
	}{
		{"sqlite", func() func(t *testing.T, c *secrets.Cipher) store.Store {
			var path string
			return func(t *testing.T, c *secrets.Cipher) store.Store {
				if path == "" {
					path = filepath.Join(t.TempDir(), "meta.db")
				}
				s, err := store.OpenSQLite(context.Background(), path, c)
				require.NoError(t, err)
				return s
			}
		}()},
		{"postgres", func() func(t *testing.T, c *secrets.Cipher) store.Store {
			var dsn string
			return func(t *testing.T, c *secrets.Cipher) store.Store {
				if dsn == "" {
					dsn = testenv.StartPostgres(t).CreateDatabase(t, "rekey")
				}
				s, err := store.OpenPostgres(context.Background(), dsn, c)
				require.NoError(t, err)
				return s
			}
		}()},
	} {
		t.Run(open.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old := cipher(t)
			s := open.f(t, old)
			require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "c", Type: "postgres", Config: []byte(`{"password":"pw"}`)}))
			require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{"x":1}`)}, nil))
			e, err := s.Acquire(ctx, "p")
			require.NoError(t, err)
			tbl := schema.TableID{Namespace: "public", Name: "t"}
			h := pipeline.Hold{Table: tbl, Status: pipeline.HoldPending, Reason: "r", Proposed: schema.Delta{Table: schema.Table{ID: tbl, Version: 2}, From: 1}, Since: offsets.AppendUint(nil, 1)}
			c := schema.Change{Op: schema.OpInsert, Table: tbl, Pos: offsets.AppendUint(nil, 1), After: schema.Row{{Name: "v", Value: schema.String("held")}}}
			require.NoError(t, store.BindHolds(s, "p", e).Spool(ctx, []pipeline.Hold{h}, []pipeline.HeldEntry{{Table: tbl, Change: &c, Key: offsets.AppendUint(nil, 1)}}, nil, offsets.AppendUint(nil, 1)))

			key := make([]byte, 32)
			key[31] = 7
			next, err := secrets.New(key)
			require.NoError(t, err)
			n, err := s.Rekey(ctx, next)
			require.NoError(t, err)
			require.Equal(t, 4, n, "connection, pipeline, hold and held change")
			ids, err := s.KeyIDs(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{next.ID()}, ids)
			require.NoError(t, s.Close())

			s = open.f(t, next)
			defer s.Close()
			got, err := s.GetConnection(ctx, "c")
			require.NoError(t, err)
			require.JSONEq(t, `{"password":"pw"}`, string(got.Config))
			_, err = s.GetPipeline(ctx, "p")
			require.NoError(t, err)
			held, err := store.BindHolds(s, "p", e).ReadHeld(ctx, tbl, 0, 10)
			require.NoError(t, err)
			require.Len(t, held, 1)
			holds, err := s.ListHolds(ctx, "p")
			require.NoError(t, err)
			require.Equal(t, "r", holds[0].Reason)

			stale := open.f(t, old)
			defer stale.Close()
			_, err = stale.GetConnection(ctx, "c")
			require.ErrorIs(t, err, secrets.ErrWrongKey)
			require.ErrorContains(t, err, "sealed under key "+next.ID())
		})
	}
}
