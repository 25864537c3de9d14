package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { sinktest.VerifyTestMain(m) }

// harness is a private destination Postgres (its own server, so that it can be
// killed without disturbing other tests).
type harness struct {
	pg   *testenv.Postgres
	dsn  string
	mode string
}

func newHarness(mode string) func(t *testing.T) sinktest.Harness {
	return func(t *testing.T) sinktest.Harness {
		// synchronous commit: a commit the sink saw must survive a server crash
		pg := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
		dsn := pg.CreateDatabase(t, "dest")
		conn, err := pgx.Connect(context.Background(), dsn)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "CREATE TYPE mood AS ENUM ('sad', 'happy')")
		require.NoError(t, err)
		return &harness{pg: pg, dsn: dsn, mode: mode}
	}
}

func TestConformance(t *testing.T) {
	t.Run("merge", func(t *testing.T) { sinktest.Run(t, newHarness("merge")) })
	t.Run("upsert", func(t *testing.T) { sinktest.Run(t, newHarness("upsert")) })
}

func (h *harness) config(o sinktest.Options) Config {
	c := Config{DSN: h.dsn, WriteMode: h.mode, Schema: "dest"}
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
	return New(c, sinks.Deps{Pipeline: "sinktest", Metrics: o.Metrics})
}

func (h *harness) Skip(string) string { return "" }

func (h *harness) KillAndRestart(t *testing.T) {
	time.Sleep(5 * time.Millisecond) // let the write begin
	h.pg.Kill()
	require.NoError(t, h.pg.Restart())
}

// State reads a table back, every value in the server's text form (no casts:
// a cast to text changes char(n) and inet), decoded by the column's type.
func (h *harness) State(t *testing.T, table schema.Table) map[string]sinktest.Stored {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET TIME ZONE 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'; SET DateStyle = 'ISO, YMD'")
	require.NoError(t, err)
	var sel []string
	for _, c := range table.Columns {
		sel = append(sel, pgx.Identifier{c.Name}.Sanitize())
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s, _cdc_deleted::text FROM dest.%s", strings.Join(sel, ", "), pgx.Identifier{table.ID.Name}.Sanitize()),
		pgx.QueryResultFormats{pgx.TextFormatCode})
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]sinktest.Stored{}
	for rows.Next() {
		raw := rows.RawValues()
		var st sinktest.Stored
		for i, c := range table.Columns {
			v := schema.Null()
			if raw[i] != nil {
				v = decode(t, c.Type, string(raw[i]))
			}
			st.Row = append(st.Row, schema.Field{Name: c.Name, Value: v})
		}
		st.Deleted = string(raw[len(table.Columns)]) == "true"
		var key schema.Row
		for _, k := range table.PrimaryKey {
			v, _ := st.Row.Get(k)
			key = append(key, schema.Field{Name: k, Value: v})
		}
		out[string(key.AppendJSON(nil))] = st
	}
	require.NoError(t, rows.Err())
	return out
}

// decode turns Postgres's text output back into a Value.
func decode(t *testing.T, typ schema.Type, s string) schema.Value {
	t.Helper()
	var v schema.Value
	var err error
	if typ.Kind == schema.KindArray {
		v, err = sinktest.ParseArrayLiteral(typ, s)
	} else {
		v, err = sinktest.ParseText(typ, s)
	}
	require.NoError(t, err, "decode %q as %s", s, typ)
	return v
}

// Exec implements sinktest.Execer.
func (h *harness) Exec(t *testing.T, statement string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, statement)
	require.NoError(t, err, statement)
}

// Drop implements sinktest.Dropper.
func (h *harness) Drop(t *testing.T, table schema.Table) {
	h.Exec(t, "DROP TABLE dest."+pgx.Identifier{table.ID.Name}.Sanitize())
}

func (h *harness) Truncate(t *testing.T, table schema.Table) {
	h.Exec(t, "TRUNCATE dest."+pgx.Identifier{table.ID.Name}.Sanitize())
}
