package testenv

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// AcctTable is the end-to-end tests' source table: text, bigint, numeric,
// timestamptz, text[] (with NULL elements) and jsonb columns.
const AcctTable = `CREATE TABLE acct (id int8 PRIMARY KEY, note text, v int8, amount numeric(12,2), at timestamptz, tags text[], doc jsonb)`

// FillAcct creates acct with rows rows.
func FillAcct(ctx context.Context, pool *pgxpool.Pool, rows int) error {
	if _, err := pool.Exec(ctx, AcctTable); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `INSERT INTO acct SELECT g, 'note ' || g, g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 second',
			ARRAY['t' || (g % 7), NULL], jsonb_build_object('g', g)
		FROM generate_series(1, $1) g`, rows)
	return err
}

// WriteAcct changes acct (filled with rows rows) until total rows were changed,
// in transactions of 1 to 1,000 rows: inserts, updates, deletes and key updates
// (which move a row: the old key is deleted at the destination).
func WriteAcct(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, rows, total int) error {
	w := AcctWriter{Rows: rows, Next: int64(rows + 1)}
	return w.Write(ctx, pool, rng, total)
}

// AcctWriter is WriteAcct in installments: Next, the next new key, carries over
// from one Write to the next, so a writer can stop on an error and go on.
type AcctWriter struct {
	Rows int
	Next int64
	// Span is how many rows one statement touches at most (default 1,000).
	Span int
}

// Write makes total row changes (see WriteAcct).
func (w *AcctWriter) Write(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, total int) error {
	done := 0
	for done < total {
		span := w.Span
		if span == 0 {
			span = 1000
		}
		n := 1 + rng.IntN(span)
		lo := 1 + rng.Int64N(int64(w.Rows))
		var q string
		var args []any
		switch rng.IntN(5) {
		case 0:
			q, args = `INSERT INTO acct SELECT g, 'ins', 0, g / 3.0, now(), ARRAY['new'], '{"new": true}' FROM generate_series($1::int8, $2::int8) g`, []any{w.Next, w.Next + int64(n) - 1}
			w.Next += int64(n) // taken even if the statement fails: a commit may have landed
		case 1, 2:
			q, args = `UPDATE acct SET v = v + 1, note = note || '+', amount = amount + 0.01, doc = doc || '{"u": 1}' WHERE id BETWEEN $1 AND $2`, []any{lo, lo + int64(n) - 1}
		case 3:
			q, args = `DELETE FROM acct WHERE id BETWEEN $1 AND $2`, []any{lo, lo + int64(n/4)}
		case 4:
			q, args = `UPDATE acct SET id = id + 1000000000 WHERE id BETWEEN $1 AND $2 AND id < 1000000000`, []any{lo, lo + 9}
		}
		tag, err := pool.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		done += int(max(tag.RowsAffected(), 1))
	}
	return nil
}

// AcctRow renders one acct row's columns (note, v, amount, at as µs since the
// epoch, tags, doc) the same way whichever side they were read from: decimal
// trailing zeros, timestamp formats and JSON spacing and key order differ
// between destinations.
func AcctRow(note, v, amount *string, at *int64, tags []*string, doc *string) string {
	str := func(p *string) string {
		if p == nil {
			return "∅"
		}
		return *p
	}
	am := str(amount)
	if strings.Contains(am, ".") {
		am = strings.TrimRight(strings.TrimRight(am, "0"), ".")
	}
	ts := "∅"
	if at != nil {
		ts = strconv.FormatInt(*at, 10)
	}
	tj, _ := json.Marshal(tags)
	d := str(doc)
	var x any
	if doc != nil && json.Unmarshal([]byte(*doc), &x) == nil {
		b, _ := json.Marshal(x) // object keys sorted, no spaces
		d = string(b)
	}
	return strings.Join([]string{str(note), str(v), am, ts, string(tj), d}, "|")
}

// AcctSource reads acct at the source, rendered by AcctRow, by id.
func AcctSource(ctx context.Context, pool *pgxpool.Pool) (map[int64]string, error) {
	rows, err := pool.Query(ctx, `SELECT id, note, v::text, amount::text, (extract(epoch FROM at) * 1000000)::int8,
		coalesce(array_to_json(tags)::text, '[]'), doc::text FROM acct`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var at *int64
		var note, v, amount, doc *string
		var tagsJSON string
		if err := rows.Scan(&id, &note, &v, &amount, &at, &tagsJSON, &doc); err != nil {
			return nil, err
		}
		var tags []*string
		if err := json.Unmarshal([]byte(tagsJSON), &tags); err != nil {
			return nil, err
		}
		out[id] = AcctRow(note, v, amount, at, tags, doc)
	}
	return out, rows.Err()
}

// AcctClickHouseQuery reads acct's current rows (FINAL, no tombstones) from a
// ClickHouse database in the columns AcctClickHouseRow decodes, every one a
// String so that any client can read it.
func AcctClickHouseQuery(db string) string {
	return `SELECT toString(id), ifNull(note, '\\N'), ifNull(toString(v), '\\N'), ifNull(toString(amount), '\\N'), ifNull(toString(at), '\\N'),
		arrayStringConcat(arrayMap(x -> ifNull(concat('+', hex(x)), '-'), tags), ','), ifNull(doc, '\\N')
		FROM ` + "`" + db + "`" + `.acct FINAL WHERE _cdc_deleted = 0`
}

// AcctClickHouseRow decodes one row of AcctClickHouseQuery.
func AcctClickHouseRow(r []string) (int64, string, error) {
	id, err := strconv.ParseInt(r[0], 10, 64)
	if err != nil {
		return 0, "", err
	}
	opt := func(s string) *string {
		if s == `\N` {
			return nil
		}
		return &s
	}
	var at *int64
	if s := opt(r[4]); s != nil {
		// DateTime64 prints as "2006-01-02 15:04:05.000000"; servers without it
		// hold the sink's ISO 8601 text
		ts, err := time.Parse("2006-01-02 15:04:05.999999", *s)
		if err != nil {
			ts, err = time.Parse("2006-01-02T15:04:05.999999Z", *s)
		}
		if err != nil {
			return 0, "", err
		}
		us := ts.UnixMicro()
		at = &us
	}
	tags := []*string{}
	if r[5] != "" {
		for _, e := range strings.Split(r[5], ",") {
			if e == "-" {
				tags = append(tags, nil)
				continue
			}
			b, err := hex.DecodeString(strings.TrimPrefix(e, "+"))
			if err != nil {
				return 0, "", err
			}
			s := string(b)
			tags = append(tags, &s)
		}
	}
	return id, AcctRow(opt(r[1]), opt(r[2]), opt(r[3]), at, tags, opt(r[6])), nil
}
