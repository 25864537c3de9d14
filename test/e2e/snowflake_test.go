package e2e

import (
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	sf "github.com/snowflakedb/gosnowflake/v2"
	"github.com/stretchr/testify/require"
)

// TestPostgresToSnowflakeKilled runs the acct workload Postgres → Snowflake
// (fakesnow) with cdcd killed mid-run (runKilledAcct).
func TestPostgresToSnowflakeKilled(t *testing.T) {
	t.Parallel()
	fs := testenv.StartFakesnow(t)
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, sf.Config{Account: "fakesnow", User: "oracle", Password: "x",
		Host: "127.0.0.1", Port: fs.Port, Protocol: "http", Database: "ANALYTICS", Schema: "PUBLIC"}))
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err := db.Exec(`CREATE DATABASE IF NOT EXISTS "ANALYTICS"`)
	require.NoError(t, err)
	runKilledAcct(t, func(dir string) warehouseRun {
		key, err := rsa.GenerateKey(crand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		keyFile := filepath.Join(dir, "key.p8")
		require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
		w := warehouseRun{
			rows: 3000,
			sink: fmt.Sprintf(`      type: snowflake
      config:
        account: fakesnow
        user: cdcd
        host: 127.0.0.1
        port: %d
        protocol: http
        database: ANALYTICS
        schema: REPLICA
        private_key: ${file:%s}
        spool_dir: %q`, fs.Port, keyFile, dir),
			read: func() (map[int64]string, map[int64]bool, error) { return snowflakeAcct(db) },
		}
		w.writes.total, w.writes.pause = 200, 100*time.Millisecond
		return w
	})
}

// snowflakeAcct reads the destination's acct: live rows by id, and the ids of
// soft-deleted rows.
func snowflakeAcct(db *sql.DB) (map[int64]string, map[int64]bool, error) {
	rows, err := db.Query(`SELECT "id", "note", TO_VARCHAR("v"), TO_VARCHAR("amount"), DATE_PART(EPOCH_MICROSECOND, "at"),
		TO_JSON("tags"), TO_JSON("doc"), "_cdc_deleted" FROM "ANALYTICS"."REPLICA"."acct"`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	live, dels := map[int64]string{}, map[int64]bool{}
	for rows.Next() {
		var id int64
		var note, v, amount, doc *string
		var at *int64
		var tagsJSON sql.NullString
		var del bool
		if err := rows.Scan(&id, &note, &v, &amount, &at, &tagsJSON, &doc, &del); err != nil {
			return nil, nil, err
		}
		if del {
			dels[id] = true
			continue
		}
		tags := []*string{}
		if tagsJSON.Valid {
			if err := json.Unmarshal([]byte(tagsJSON.String), &tags); err != nil {
				return nil, nil, err
			}
		}
		live[id] = testenv.AcctRow(note, v, amount, at, tags, doc)
	}
	return live, dels, rows.Err()
}
