package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/cdcd-dev/cdcd/notify"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchemaEvolutionHoldAndApprove runs Postgres → Postgres through `cdcd
// serve`: an added column and a widened one reach the destination on their own;
// a rename holds the users table while orders keep flowing; the held change is
// listed by the API and approved through the CLI; then the destination column is
// renamed (its old values kept) and every change made during the hold is there.
func TestSchemaEvolutionHoldAndApprove(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	srcDSN := pg.CreateDatabase(t, "shop")
	dstDSN := pg.CreateDatabase(t, "wh")
	ctx := context.Background()
	src, err := pgxpool.New(ctx, srcDSN)
	require.NoError(t, err)
	defer src.Close()
	dst, err := pgxpool.New(ctx, dstDSN)
	require.NoError(t, err)
	defer dst.Close()
	exec := func(q string) {
		t.Helper()
		_, err := src.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	exec(`CREATE TABLE users (id int8 PRIMARY KEY, mail text, n int4)`)
	exec(`CREATE TABLE orders (id int8 PRIMARY KEY, v int4)`)
	exec(`INSERT INTO users SELECT g, 'u' || g || '@x', g FROM generate_series(1, 50) g`)
	exec(`INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g`)

	dir := t.TempDir()
	s := startServer(t, "--data-dir", filepath.Join(dir, "data"))
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := filepath.Join(dir, "p.yaml")
	// the held table alerts a local webhook, and resolves when approved
	const secret = "a-webhook-secret-of-some-length"
	hook := newReceiver(t, func(r *http.Request, body []byte) error {
		ts, err := strconv.ParseInt(r.Header.Get("X-Cdcd-Timestamp"), 10, 64)
		if err != nil || r.Header.Get("X-Cdcd-Signature") != notify.Sign(secret, ts, body) {
			return fmt.Errorf("bad signature")
		}
		return nil
	})
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
connections:
  - {name: hook, type: webhook, config: {url: %q, secret: %q}}
alerts:
  evaluation_interval: 1s
  rules:
    - {name: held, condition: schema_change_held, channels: [hook]}
pipelines:
  - name: shop
    source:
      type: postgres
      config: {dsn: %q, tables: [public.users, public.orders], heartbeat_interval: 1s, status_interval: 200ms}
    sink: {type: postgres, config: {dsn: %q, schema: wh}}
    batch: {max_changes: 100, max_wait: 50ms}
`, hook.srv.URL, secret, srcDSN, dstDSN)), 0o644))
	cli(t, env, 0, "pipelines", "apply", "-f", cfg)

	count := func(q string) int {
		var n int
		if err := dst.QueryRow(ctx, q).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM wh.users`) == 50 && count(`SELECT count(*) FROM wh.orders`) == 50
	},
		60*time.Second, 100*time.Millisecond, "snapshot never landed: %s", s.log)

	// added and widened columns apply on their own
	exec(`ALTER TABLE users ADD COLUMN age int4`)
	exec(`UPDATE users SET age = id WHERE id <= 10`)
	exec(`ALTER TABLE users ALTER COLUMN n TYPE int8`)
	exec(`UPDATE users SET n = 5000000000 + id WHERE id <= 5`)
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.users WHERE n > 5000000000 AND age = id`) == 5 },
		60*time.Second, 100*time.Millisecond, "add column and widening never reached the destination: %s", s.log)
	var typ string
	require.NoError(t, dst.QueryRow(ctx, `SELECT data_type FROM information_schema.columns WHERE table_schema = 'wh' AND table_name = 'users' AND column_name = 'n'`).Scan(&typ))
	require.Equal(t, "bigint", typ)

	// a rename holds users; orders keep flowing
	exec(`ALTER TABLE users RENAME COLUMN mail TO email`)
	exec(`UPDATE users SET email = 'renamed' || id || '@x' WHERE id <= 20`)
	exec(`INSERT INTO users VALUES (51, 'new@x', 51, 51)`)
	exec(`DELETE FROM users WHERE id = 50`)
	exec(`INSERT INTO orders SELECT g, g FROM generate_series(51, 80) g`)
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM wh.orders`) == 80 },
		60*time.Second, 100*time.Millisecond, "orders stopped flowing while users was held: %s", s.log)

	type hold struct {
		Table  struct{ Namespace, Name string } `json:"table"`
		Status string                           `json:"status"`
		Reason string                           `json:"reason"`
		DDL    []string                         `json:"ddl"`
		Held   int                              `json:"held_changes"`
	}
	var holds struct {
		SchemaChanges []hold `json:"schema_changes"`
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "schema-changes", "shop", "-o", "json")), &holds))
		return len(holds.SchemaChanges) == 1 && holds.SchemaChanges[0].Held == 22
	}, 30*time.Second, 100*time.Millisecond, "the held table and its 22 changes were never listed: %+v", &holds)
	h := holds.SchemaChanges[0]
	require.Equal(t, "pending", h.Status)
	require.Equal(t, "users", h.Table.Name)
	require.Contains(t, h.Reason, "column mail was renamed to email")
	require.Equal(t, []string{`ALTER TABLE "wh"."users" RENAME COLUMN "mail" TO "email"`}, h.DDL)
	require.Equal(t, 50, count(`SELECT count(*) FROM wh.users WHERE NOT _cdc_deleted`), "held changes must not reach the destination")
	require.Equal(t, 0, count(`SELECT count(*) FROM wh.users WHERE mail LIKE 'renamed%'`))
	require.Contains(t, cli(t, env, 0, "pipelines", "schema-changes", "shop"), "RENAME COLUMN")
	// the held table shows in the pipeline's state: streaming, degraded, why
	var view struct {
		Status struct {
			State    string
			Degraded bool
			Reasons  []string
			Progress struct {
				Tables []struct{ Table, State string }
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "get", "shop", "-o", "json")), &view))
	require.Equal(t, "streaming", view.Status.State)
	require.True(t, view.Status.Degraded)
	require.Len(t, view.Status.Reasons, 1)
	require.Contains(t, view.Status.Reasons[0], "held by the schema-change policy")
	require.Contains(t, view.Status.Reasons[0], "users")
	states := map[string]string{}
	for _, tp := range view.Status.Progress.Tables {
		states[tp.Table] = tp.State
	}
	require.Equal(t, "held", states["public.users"], "%+v", view.Status.Progress.Tables)
	require.Equal(t, "streaming", states["public.orders"])
	require.Regexp(t, `shop\s+streaming \(degraded\)`, cli(t, env, 0, "pipelines", "list"))
	require.Contains(t, cli(t, env, 2, "pipelines", "resolve", "shop", "public.users", "maybe"), `decision: value is not one of the allowed values ["approve","reject","new_column"]`)
	require.Contains(t, cli(t, env, 1, "pipelines", "resolve", "shop", "public.nope", "approve"), "404")

	// a rename of orders holds it too; it is resolved as a new column
	exec(`ALTER TABLE orders RENAME COLUMN v TO qty`)
	exec(`UPDATE orders SET qty = qty * 10 WHERE id > 75`)
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "schema-changes", "shop", "-o", "json")), &holds))
		return len(holds.SchemaChanges) == 2
	}, 30*time.Second, 100*time.Millisecond, "the rename of orders was never held: %+v", &holds)
	require.Contains(t, cli(t, env, 0, "pipelines", "resolve", "shop", "public.orders", "new_column"), "new_column")

	// more changes while held, then approve: all of them arrive, in order
	exec(`UPDATE users SET email = 'again' || id || '@x' WHERE id <= 3`)
	require.Eventually(t, func() bool { return hook.has("firing", "pipeline shop holds") }, 30*time.Second, 100*time.Millisecond, "the held alert")
	require.Contains(t, cli(t, env, 0, "pipelines", "resolve", "shop", "public.users", "approve"), "approve")
	exec(`UPDATE users SET n = -id WHERE id = 4`)
	exec(`INSERT INTO orders SELECT g, g FROM generate_series(81, 90) g`)

	snapshot := func(pool *pgxpool.Pool, q string) string {
		rows, err := pool.Query(ctx, q)
		if err != nil {
			return err.Error()
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return err.Error()
			}
			fmt.Fprintln(&b, vals...)
		}
		return b.String()
	}
	want := func() string { return snapshot(src, `SELECT id, email, n, age FROM users ORDER BY id`) }
	got := func() string {
		return snapshot(dst, `SELECT id, email, n, age FROM wh.users WHERE NOT _cdc_deleted ORDER BY id`)
	}
	if !assert.Eventually(t, func() bool { return want() == got() && count(`SELECT count(*) FROM wh.orders`) == 90 }, 60*time.Second, 200*time.Millisecond) {
		t.Fatalf("after approval the destination differs (orders: %d):\nwant %s\ngot %s\nlog %s", count(`SELECT count(*) FROM wh.orders`), want(), got(), s.log)
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "schema-changes", "shop", "-o", "json")), &holds))
		return len(holds.SchemaChanges) == 0
	}, 10*time.Second, 100*time.Millisecond)
	// new_column: the old column keeps the values written before the rename, the
	// new one has every value written after it
	wantOrders := func() string { return snapshot(src, `SELECT id, qty FROM orders WHERE id > 75 ORDER BY id`) }
	gotOrders := func() string { return snapshot(dst, `SELECT id, qty FROM wh.orders WHERE id > 75 ORDER BY id`) }
	require.Eventually(t, func() bool { return wantOrders() == gotOrders() }, 30*time.Second, 100*time.Millisecond,
		"orders after new_column differ")
	require.Equal(t, 80, count(`SELECT count(*) FROM wh.orders WHERE v = id`), "the old column keeps the values written before the rename")
	require.Equal(t, 0, count(`SELECT count(*) FROM wh.orders WHERE id > 80 AND v IS NOT NULL`))
	require.Equal(t, 0, count(`SELECT count(*) FROM wh.orders WHERE id <= 75 AND qty IS NOT NULL`))
	require.Contains(t, s.log.String(), "held table resumed")
	require.Eventually(t, func() bool { return hook.has("resolved", "pipeline shop holds") }, 30*time.Second, 100*time.Millisecond, "the held alert resolved")
	events := cli(t, env, 0, "pipelines", "events", "shop", "-n", "0")
	require.Contains(t, events, "held by the schema-change policy: column mail was renamed to email")
	require.Contains(t, events, "held table resumed (approved)")
	require.Contains(t, events, "schema change applied at the sink")
	s.stop(t)
}
