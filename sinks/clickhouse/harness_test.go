package clickhouse

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { sinktest.VerifyTestMain(m) }

// chdbBackend runs the sink against the current ClickHouse engine (chdb): the
// statements as the sink writes them, and each insert as the Native block
// clickhouse-go's columns encode from the sink's row values — the bytes the
// driver would send.
type chdbBackend struct{ db *testenv.ChDB }

func (b chdbBackend) ServerVersion(context.Context) (int, int, error) {
	rows, err := b.db.Query("SELECT version()")
	if err != nil {
		return 0, 0, err
	}
	var ma, mi int
	_, err = fmt.Sscanf(fmt.Sprint(rows[0][0]), "%d.%d", &ma, &mi)
	return ma, mi, err
}

func (b chdbBackend) Exec(_ context.Context, sql string) error { return b.db.Exec(sql) }

func (b chdbBackend) QueryStrings(ctx context.Context, sql string) ([][]string, error) {
	return b.QueryParams(ctx, sql, nil)
}

func (b chdbBackend) QueryParams(_ context.Context, sql string, params map[string]string) ([][]string, error) {
	rows, err := b.db.QueryParams(sql, params)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		for _, v := range r {
			if v == nil {
				out[i] = append(out[i], "")
			} else {
				out[i] = append(out[i], fmt.Sprint(v))
			}
		}
	}
	return out, nil
}

func (b chdbBackend) Insert(_ context.Context, table string, cols []Column, rows [][]any, token string) error {
	block := proto.NewBlock()
	names := make([]string, len(cols))
	for i, c := range cols {
		if err := block.AddColumn(c.Name, column.Type(c.Type)); err != nil {
			return err
		}
		names[i] = ident(c.Name)
	}
	for _, r := range rows {
		if err := block.Append(r...); err != nil {
			return err
		}
	}
	var buf chproto.Buffer
	if err := block.Encode(&buf, 0); err != nil { // revision 0: the Native format
		return err
	}
	settings := ""
	if token != "" {
		settings = "insert_deduplication_token = " + literal(token)
	}
	return b.db.InsertNative(table, strings.Join(names, ", "), buf.Buf, settings)
}

func (chdbBackend) Close() error { return nil }

// harness is one destination: chdb, a private 18.16 server, or a live server.
type harness struct {
	kind    string // chdb, 18.16, live
	chdb    *testenv.ChDB
	server  *testenv.ClickHouse
	addr    string
	db      string
	queryBe Backend
}

func newChdbHarness(t *testing.T) sinktest.Harness {
	db := testenv.StartChDB(t)
	return &harness{kind: "chdb", chdb: db, db: "dest", queryBe: chdbBackend{db}}
}

func newServerHarness(t *testing.T) sinktest.Harness {
	ch := testenv.StartClickHouse(t)
	return serverHarness{&harness{kind: "18.16", server: ch, addr: ch.Addr(), db: "dest"}}
}

// serverHarness is a harness whose server can be killed: only it is a
// sinktest.Restarter (chdb runs in a helper and a live server is not ours).
type serverHarness struct{ *harness }

func (h serverHarness) KillAndRestart(t *testing.T) {
	time.Sleep(5 * time.Millisecond)
	h.server.Kill()
	require.NoError(t, h.server.Restart())
}

var liveDBs = 0

func newLiveHarness(t *testing.T) sinktest.Harness {
	dsn := os.Getenv("CDCD_TEST_CLICKHOUSE_DSN") // host:port of the native protocol
	liveDBs++
	return &harness{kind: "live", addr: dsn, db: fmt.Sprintf("cdcd_test_%d_%d", time.Now().UnixNano(), liveDBs)}
}

func (h *harness) config(o sinktest.Options) Config {
	c := Config{Addr: []string{h.addr}, Database: h.db}
	if h.addr == "" {
		c.Addr = []string{"chdb:0"}
	}
	if o.HardDelete {
		c.DeleteMode = "hard"
	}
	if o.NullUnrepresentable {
		c.OnUnrepresentable = "null"
	}
	return c.WithDefaults()
}

func (h *harness) NewSink(t *testing.T, o sinktest.Options) sinks.Sink {
	c := h.config(o)
	require.NoError(t, c.Validate())
	if h.chdb != nil {
		return New(c, sinks.Deps{Pipeline: "sinktest", Metrics: o.Metrics}, WithBackend(chdbBackend{h.chdb}))
	}
	return New(c, sinks.Deps{Pipeline: "sinktest", Metrics: o.Metrics})
}

func (h *harness) backend(t *testing.T) Backend {
	if h.queryBe != nil {
		return h.queryBe
	}
	be, err := dialNative(context.Background(), Config{Addr: []string{h.addr}, Username: "default"})
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	return be
}

func (h *harness) Skip(name string) string { return "" }

func (h *harness) SkipTest(name string) string {
	if h.kind == "18.16" && (name == "hard_delete" || name == "sweep_hard") {
		return "delete_mode: hard needs ReplacingMergeTree's is_deleted (23.2); the sink refuses it on 18.16 (TestOldServerRefusesHardDelete)"
	}
	if h.kind == "18.16" && name == "catalog_lists_tables" {
		return "the destination catalog needs query parameters (21.x); the sink says so on 18.16 (TestOldServerHasNoCatalog)"
	}
	return ""
}

// Holds: ClickHouse's dates cover 1900–2299 (Date: 1970–2149 on old servers),
// DateTime64 as the sink writes it 1900 to 2262-04-11.
func (h *harness) Holds(typeCase string, v schema.Value) bool {
	if v.IsNull() && strings.HasSuffix(typeCase, "_array") {
		return false // arrays cannot be Nullable: NULL is stored as []
	}
	switch v.Kind() {
	case schema.KindDate, schema.KindTimestamp, schema.KindDateTime:
		y := v.AsTime().Year()
		if h.kind == "18.16" && v.Kind() == schema.KindDate {
			return y >= 1970 && y < 2149
		}
		if h.kind == "18.16" {
			return true // stored as text
		}
		if v.Kind() != schema.KindDate {
			return y >= 1900 && !v.AsTime().After(dateTime64Max)
		}
		return y >= 1900 && y < 2300
	}
	return true
}

// State reads the table with FINAL, every column rendered as text by the server
// (arrays element by element, in hex, so no element text can confuse the parse),
// decoded by the column's source type.
func (h *harness) State(t *testing.T, table schema.Table) map[string]sinktest.Stored {
	be := h.backend(t)
	var sel []string
	for _, c := range table.Columns {
		id := ident(c.Name)
		switch c.Type.Kind {
		case schema.KindArray:
			sel = append(sel, fmt.Sprintf("arrayStringConcat(arrayMap(x -> ifNull(concat('+', hex(toString(x))), '-'), %s), ',')", id))
		case schema.KindBytes:
			sel = append(sel, fmt.Sprintf("ifNull(hex(%s), '\\\\N')", id))
		default:
			sel = append(sel, fmt.Sprintf("ifNull(toString(%s), '\\\\N')", id))
		}
	}
	rows, err := be.QueryStrings(context.Background(), fmt.Sprintf("SELECT %s, toString(_cdc_deleted) FROM %s.%s FINAL",
		strings.Join(sel, ", "), ident(h.db), ident(table.ID.Name)))
	require.NoError(t, err)
	out := map[string]sinktest.Stored{}
	for _, r := range rows {
		var st sinktest.Stored
		for i, c := range table.Columns {
			st.Row = append(st.Row, schema.Field{Name: c.Name, Value: decode(t, c.Type, r[i])})
		}
		st.Deleted = r[len(table.Columns)] == "1"
		var key schema.Row
		for _, k := range table.PrimaryKey {
			v, _ := st.Row.Get(k)
			key = append(key, schema.Field{Name: k, Value: v})
		}
		out[string(key.AppendJSON(nil))] = st
	}
	return out
}

// decode turns the server's text of a value back into a Value (arrays come as
// hex elements, - for NULL).
func decode(t *testing.T, typ schema.Type, s string) schema.Value {
	t.Helper()
	if s == `\N` {
		return schema.Null()
	}
	if typ.Kind != schema.KindArray {
		v, err := sinktest.ParseText(typ, s)
		require.NoError(t, err, "decode %q as %s", s, typ)
		return v
	}
	var vs []schema.Value
	if s != "" {
		for _, e := range strings.Split(s, ",") {
			if e == "-" {
				vs = append(vs, schema.Null())
				continue
			}
			raw, err := hex.DecodeString(strings.TrimPrefix(e, "+"))
			require.NoError(t, err)
			if typ.Elem.Kind == schema.KindBytes { // the bytes themselves
				vs = append(vs, schema.Bytes(raw))
				continue
			}
			vs = append(vs, decode(t, *typ.Elem, string(raw)))
		}
	}
	return schema.Array(vs...)
}

// Exec implements sinktest.Execer.
func (h *harness) Exec(t *testing.T, statement string) {
	require.NoError(t, h.backend(t).Exec(context.Background(), statement), statement)
}

// Drop implements sinktest.Dropper.
func (h *harness) Drop(t *testing.T, table schema.Table) {
	h.Exec(t, "DROP TABLE "+ident(h.db)+"."+ident(table.ID.Name))
}

// Truncate implements sinktest.Truncater.
func (h *harness) Truncate(t *testing.T, table schema.Table) {
	h.Exec(t, "TRUNCATE TABLE "+ident(h.db)+"."+ident(table.ID.Name))
}
