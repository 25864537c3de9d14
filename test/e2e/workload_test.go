package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaSQL is the source schema: several tables, many column types, a
// composite key, a TOASTed text column stored out of line, jsonb, arrays.
const schemaSQL = `
CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4, price numeric(12,2), flag bool, at timestamptz,
	day date, doc jsonb, tags text[], body text, uid uuid, raw bytea, score float8);
ALTER TABLE items ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE events (id int8 PRIMARY KEY, kind text, payload jsonb, at timestamptz);
CREATE TABLE pairs (a int4, b text, v float8, note text, PRIMARY KEY (a, b));`

// tables are the replicated tables with their key expressions.
var tables = []struct{ name, key string }{
	{"items", "id::text"},
	{"events", "id::text"},
	{"pairs", "a::text || ',' || b"},
}

// workload writes a deterministic mix (per seed) of inserts, updates and
// deletes to the source: single-row and multi-row transactions, a few large
// ones (thousands of rows), updates that rewrite TOASTed text and jsonb and
// updates that leave them unchanged. Errors (a source killed under it) are
// retried; the oracle compares what the source holds, so an ambiguous commit
// needs no bookkeeping.
type workload struct {
	pool  *pgxpool.Pool
	rng   *rand.Rand
	nextI int64 // next new ids
	nextE int64
	txns  atomic.Int64
	fails atomic.Int64
}

func newWorkload(pool *pgxpool.Pool, seed uint64) *workload {
	return &workload{pool: pool, rng: rand.New(rand.NewPCG(seed, 11))}
}

// fill creates the schema and the snapshot's rows.
func (w *workload) fill(ctx context.Context, items, events, pairs int) error {
	if _, err := w.pool.Exec(ctx, schemaSQL); err != nil {
		return err
	}
	_, err := w.pool.Exec(ctx, fmt.Sprintf(`
INSERT INTO items SELECT g, 'item ' || g, g %% 1000, (g %% 10000) / 100.0, g %% 2 = 0, '2026-01-01'::timestamptz + g * interval '1 minute',
	'2026-01-01'::date + (g %% 365), jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g %% 7)), ARRAY['t' || (g %% 5), 'x'],
	CASE WHEN g %% 20 = 0 THEN repeat(md5(g::text), 200) END, md5(g::text)::uuid, decode(md5(g::text), 'hex'), g / 7.0
FROM generate_series(1, %d) g;
INSERT INTO events SELECT g, 'k' || (g %% 9), jsonb_build_object('n', g, 'body', repeat('e', g %% 300)), now() FROM generate_series(1, %d) g;
INSERT INTO pairs SELECT g %% 100, 'b' || (g / 100), g * 1.5, NULL FROM generate_series(1, %d) g ON CONFLICT DO NOTHING;`, items, events, pairs))
	w.nextI, w.nextE = int64(items)+1, int64(events)+1
	return err
}

func (w *workload) text(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[w.rng.IntN(len(letters))]
	}
	return string(b)
}

type stmt struct {
	sql  string
	args []any
}

// txn returns the next transaction's statements.
func (w *workload) txn() []stmt {
	r := w.rng
	n := 1 + r.IntN(10)
	switch x := r.IntN(100); {
	case x < 2: // large: thousands of rows in one transaction
		lo := 1 + r.Int64N(max(w.nextI-3000, 1))
		return []stmt{
			{`UPDATE items SET qty = qty + 1, price = price + 0.01 WHERE id BETWEEN $1 AND $1 + 2999`, []any{lo}},
			{`INSERT INTO events SELECT g, 'bulk', jsonb_build_object('g', g), now() FROM generate_series($1::int8, $1::int8 + 999) g`, []any{w.take(&w.nextE, 1000)}},
		}
	case x < 15:
		n = 10 + r.IntN(190)
	}
	out := make([]stmt, 0, n)
	for range n {
		id := 1 + r.Int64N(max(w.nextI-1, 1))
		switch op := r.IntN(100); {
		case op < 20:
			out = append(out, stmt{`INSERT INTO items (id, name, qty, price, flag, at, day, doc, tags, uid, raw, score) VALUES ($1, $2, $3, $4, $5, now(), current_date, $6, $7, gen_random_uuid(), $8, $9)`,
				[]any{w.take(&w.nextI, 1), w.text(12), r.Int32N(1000), fmt.Sprintf("%d.%02d", r.IntN(10000), r.IntN(100)), r.IntN(2) == 0,
					fmt.Sprintf(`{"k": %d, "s": %q}`, r.IntN(100), w.text(20)), []string{w.text(3), w.text(4)}, []byte(w.text(8)), r.Float64() * 1000}})
		case op < 45: // leaves the TOASTed body unchanged
			out = append(out, stmt{`UPDATE items SET qty = $2, flag = NOT flag, score = $3 WHERE id = $1`, []any{id, r.Int32N(100000), r.NormFloat64()}})
		case op < 55: // rewrites TOASTed text
			out = append(out, stmt{`UPDATE items SET body = $2 WHERE id = $1`, []any{id, strings.Repeat(w.text(64), 40+r.IntN(100))}})
		case op < 65:
			out = append(out, stmt{`UPDATE items SET doc = doc || $2::jsonb, tags = array_append(tags, $3) WHERE id = $1`,
				[]any{id, fmt.Sprintf(`{"u%d": %q}`, r.IntN(5), w.text(30)), w.text(2)}})
		case op < 72:
			out = append(out, stmt{`DELETE FROM items WHERE id = $1`, []any{id}})
		case op < 80:
			out = append(out, stmt{`INSERT INTO events VALUES ($1, $2, $3, now())`, []any{w.take(&w.nextE, 1), "k" + w.text(1),
				fmt.Sprintf(`{"n": %d, "body": %q}`, r.IntN(1000), w.text(r.IntN(3000)))}})
		case op < 85:
			out = append(out, stmt{`DELETE FROM events WHERE id = $1`, []any{1 + r.Int64N(max(w.nextE-1, 1))}})
		case op < 93:
			out = append(out, stmt{`INSERT INTO pairs VALUES ($1, $2, $3, $4) ON CONFLICT (a, b) DO UPDATE SET v = EXCLUDED.v, note = EXCLUDED.note`,
				[]any{r.Int32N(120), fmt.Sprintf("b%d", r.IntN(40)), r.Float64(), w.text(10)}})
		default:
			out = append(out, stmt{`DELETE FROM pairs WHERE a = $1 AND b = $2`, []any{r.Int32N(120), fmt.Sprintf("b%d", r.IntN(40))}})
		}
	}
	return out
}

func (w *workload) take(next *int64, n int64) int64 {
	v := *next
	*next += n
	return v
}

// run writes transactions until ctx ends.
func (w *workload) run(ctx context.Context) error {
	for ctx.Err() == nil {
		stmts := w.txn()
		for attempt := 0; ; attempt++ {
			err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
				for _, s := range stmts {
					if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				w.txns.Add(1)
				time.Sleep(5 * time.Millisecond) // a steady load two cores can replicate: a backlog proves nothing more
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			w.fails.Add(1)
			if attempt > 600 {
				return fmt.Errorf("writer gave up: %w", err)
			}
			// a duplicate key after an ambiguous commit: the transaction landed
			if strings.Contains(err.Error(), "duplicate key") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// rowHashes returns key → md5 of the given column expressions (each already
// text; NULL told from empty) of a Postgres table.
func rowHashes(ctx context.Context, pool *pgxpool.Pool, from, key string, exprs []string) (map[string]string, error) {
	parts := make([]string, len(exprs))
	for i, e := range exprs {
		parts[i] = fmt.Sprintf("COALESCE(%s, '<null>')", e)
	}
	rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT %s, md5(concat_ws('|', %s)) FROM %s`, key, strings.Join(parts, ", "), from))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, h string
		if err := rows.Scan(&k, &h); err != nil {
			return nil, err
		}
		out[k] = h
	}
	return out, rows.Err()
}

// asText is each column as text, for rowHashes.
func asText(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	return out
}

// columns lists a source table's columns in order.
func columns(ctx context.Context, pool *pgxpool.Pool, table string) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// diff counts missing, extra and stale rows of got against want, with examples.
type diff struct {
	missing, extra, stale int
	examples              []string
}

func (d diff) ok() bool { return d.missing == 0 && d.extra == 0 && d.stale == 0 }

func (d diff) String() string {
	return fmt.Sprintf("%d missing, %d extra, %d stale (e.g. %s)", d.missing, d.extra, d.stale, strings.Join(d.examples, ", "))
}

func compare(want, got map[string]string) diff {
	var d diff
	note := func(kind, k string) {
		if len(d.examples) < 5 {
			d.examples = append(d.examples, kind+" "+k)
		}
	}
	for k, h := range want {
		switch g, ok := got[k]; {
		case !ok:
			d.missing++
			note("missing", k)
		case g != h:
			d.stale++
			note("stale", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d.extra++
			note("extra", k)
		}
	}
	return d
}

var errNotYet = errors.New("not yet")
