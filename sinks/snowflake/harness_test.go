package snowflake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	sf "github.com/snowflakedb/gosnowflake/v2"
	"github.com/stretchr/testify/require"
	"github.com/youmark/pkcs8"
)

var (
	keyOnce sync.Once
	keyPEM  string
)

const testPassphrase = "correct horse battery staple"

// testKey is an encrypted PKCS#8 key, as a user would configure it (fakesnow
// accepts any key; a live run checks the signature).
func testKey(t testing.TB) string {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := pkcs8.MarshalPrivateKey(k, []byte(testPassphrase), nil)
		if err != nil {
			panic(err)
		}
		keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	})
	return keyPEM
}

// harness runs the sink against a private fakesnow server, or against a live
// account when CDCD_TEST_SNOWFLAKE_ACCOUNT is set.
type harness struct {
	cfg  Config
	fs   *testenv.Fakesnow
	db   *sql.DB
	opts []Option
}

// liveConfig is the account of a live run: CDCD_TEST_SNOWFLAKE_ACCOUNT, _USER,
// _PRIVATE_KEY_FILE (and _PRIVATE_KEY_PASSPHRASE), _ROLE, _WAREHOUSE,
// _DATABASE (which must exist); each run uses its own schema.
func liveConfig(t testing.TB) (Config, bool) {
	acct := os.Getenv("CDCD_TEST_SNOWFLAKE_ACCOUNT")
	if acct == "" {
		return Config{}, false
	}
	c := Config{Account: acct, User: os.Getenv("CDCD_TEST_SNOWFLAKE_USER"), Role: os.Getenv("CDCD_TEST_SNOWFLAKE_ROLE"),
		Warehouse: os.Getenv("CDCD_TEST_SNOWFLAKE_WAREHOUSE"), Database: os.Getenv("CDCD_TEST_SNOWFLAKE_DATABASE"),
		PrivateKeyFile: os.Getenv("CDCD_TEST_SNOWFLAKE_PRIVATE_KEY_FILE"), PrivateKeyPassphrase: os.Getenv("CDCD_TEST_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
		Schema: fmt.Sprintf("CDCD_TEST_%d_%s", os.Getpid(), strings.ToUpper(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())))}
	return c, true
}

var dbSeq struct {
	sync.Mutex
	n int
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := &harness{opts: opts}
	if c, ok := liveConfig(t); ok {
		h.cfg = c.WithDefaults()
	} else {
		h.fs = testenv.StartFakesnow(t)
		fsDir := h.fs.Dir
		t.Cleanup(func() { // before the server and its directory go
			if b, err := os.ReadFile(filepath.Join(fsDir, "fakesnow.log")); err == nil && t.Failed() {
				t.Logf("fakesnow.log (tail):\n%s", b[max(0, len(b)-4000):])
			}
		})
		dbSeq.Lock()
		dbSeq.n++
		n := dbSeq.n
		dbSeq.Unlock()
		h.cfg = Config{Account: "fakesnow", User: "cdcd", Host: "127.0.0.1", Port: h.fs.Port, Protocol: "http",
			Database: fmt.Sprintf("CDCD%d", n), Schema: "PUBLIC", PrivateKey: testKey(t), PrivateKeyPassphrase: testPassphrase,
			SpoolDir: t.TempDir()}.WithDefaults()
	}
	require.NoError(t, h.cfg.Validate())
	h.connect(t)
	if h.fs != nil {
		_, err := h.db.Exec("CREATE DATABASE IF NOT EXISTS " + quote(h.cfg.Database))
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		if h.fs == nil {
			_, _ = h.db.Exec("DROP SCHEMA IF EXISTS " + quote(h.cfg.Database) + "." + quote(h.cfg.Schema))
		}
		h.db.Close()
	})
	return h
}

// connect opens the harness's own session (to read state), as the sink does.
func (h *harness) connect(t testing.TB) {
	s := New(h.cfg, sinks.Deps{Pipeline: "harness"})
	c, err := s.connector()
	require.NoError(t, err)
	if h.db != nil {
		h.db.Close()
	}
	h.db = sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, c))
	h.db.SetMaxOpenConns(1)
}

func (h *harness) NewSink(t *testing.T, o sinktest.Options) sinks.Sink {
	c := h.cfg
	if o.HardDelete {
		c.DeleteMode = "hard"
	}
	if o.NullUnrepresentable {
		c.OnUnrepresentable = "null"
	}
	return New(c, sinks.Deps{Pipeline: "sinktest", Metrics: o.Metrics}, h.opts...)
}

func (h *harness) Skip(string) string { return "" }

// KillAndRestart kills fakesnow (SIGKILL) and starts it on the same data.
func (h *harness) KillAndRestart(t *testing.T) {
	require.NoError(t, h.fs.Restart())
	h.connect(t)
}

// selectExpr renders column c as text the way sinktest.ParseText reads it.
func selectExpr(c schema.Column) string {
	q := quote(c.Name)
	switch c.Type.Kind {
	case schema.KindString, schema.KindUnknown:
		return q
	case schema.KindBytes:
		return "HEX_ENCODE(" + q + ")"
	case schema.KindJSON, schema.KindArray:
		return "TO_JSON(" + q + ")"
	}
	return "TO_VARCHAR(" + q + ")"
}

func (h *harness) State(t *testing.T, table schema.Table) map[string]sinktest.Stored {
	t.Helper()
	var exprs []string
	for _, c := range table.Columns {
		exprs = append(exprs, selectExpr(c))
	}
	exprs = append(exprs, "TO_VARCHAR("+quote("_cdc_deleted")+")")
	q := fmt.Sprintf("SELECT %s FROM %s.%s.%s", strings.Join(exprs, ", "), quote(h.cfg.Database), quote(h.cfg.Schema), quote(h.cfg.DestName(table.ID)))
	rows, err := h.db.QueryContext(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]sinktest.Stored{}
	for rows.Next() {
		vals := make([]sql.NullString, len(exprs))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		var r schema.Row
		for i, c := range table.Columns {
			v := schema.Null()
			if vals[i].Valid {
				v = parse(t, c.Type, vals[i].String)
			}
			r = append(r, schema.Field{Name: c.Name, Value: v})
		}
		var key schema.Row
		for _, k := range table.PrimaryKey {
			v, _ := r.Get(k)
			key = append(key, schema.Field{Name: k, Value: v})
		}
		out[string(key.AppendJSON(nil))] = sinktest.Stored{Row: r, Deleted: vals[len(vals)-1].String == "true"}
	}
	require.NoError(t, rows.Err())
	return out
}

func parse(t *testing.T, typ schema.Type, s string) schema.Value {
	t.Helper()
	if typ.Kind == schema.KindArray {
		v, err := sinktest.ParseJSONArray(typ, s)
		require.NoError(t, err)
		return v
	}
	if typ.Kind == schema.KindDecimal && destType(typ).base == "TEXT" {
		v, err := schema.Decimal(s)
		require.NoError(t, err)
		return v
	}
	v, err := sinktest.ParseText(typ, s)
	require.NoError(t, err, "type %s: %q", typ.Name, s)
	return v
}

// Holds leaves out what fakesnow cannot store and Snowflake can: fakesnow
// keeps NUMBER(38,0) as DuckDB's BIGINT, so integers above 2^63-1 do not fit.
func (h *harness) Holds(typeCase string, v schema.Value) bool {
	if h.fs == nil {
		return true
	}
	return v.Kind() != schema.KindUint || v.AsUint() <= math.MaxInt64
}

// CrashingSink fails every Write after its MERGEs, before the batch is recorded.
func (h *harness) CrashingSink(t *testing.T, o sinktest.Options) sinks.Sink {
	c := h.cfg
	if o.HardDelete {
		c.DeleteMode = "hard"
	}
	return New(c, sinks.Deps{Pipeline: "sinktest"}, WithFault(func(step string) error {
		if step == "after_merge" {
			return errors.New("crash after merge")
		}
		return nil
	}))
}

// Exec implements sinktest.Execer.
func (h *harness) Exec(t *testing.T, statement string) {
	if h.db == nil {
		h.connect(t)
	}
	_, err := h.db.ExecContext(context.Background(), statement)
	require.NoError(t, err, statement)
}

// Drop implements sinktest.Dropper.
func (h *harness) Drop(t *testing.T, table schema.Table) {
	h.Exec(t, fmt.Sprintf("DROP TABLE %s.%s.%s", quote(h.cfg.Database), quote(h.cfg.Schema), quote(h.cfg.DestName(table.ID))))
}
