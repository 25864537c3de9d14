package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/jackc/pgx/v5"
)

// groupByTable splits collapsed changes per table, keeping each table's order
// (a truncate, if any, comes first: CollapseByKey dropped what preceded it).
func groupByTable(changes []schema.Change) ([]schema.TableID, map[schema.TableID][]schema.Change) {
	var order []schema.TableID
	counts := map[schema.TableID]int{}
	for i := range changes {
		if counts[changes[i].Table] == 0 {
			order = append(order, changes[i].Table)
		}
		counts[changes[i].Table]++
	}
	by := make(map[schema.TableID][]schema.Change, len(order))
	if len(order) == 1 { // the common case: no copy
		by[order[0]] = changes
		return order, by
	}
	for _, id := range order {
		by[id] = make([]schema.Change, 0, counts[id])
	}
	for i := range changes {
		by[changes[i].Table] = append(by[changes[i].Table], changes[i])
	}
	return order, by
}

// writeTable applies one table's collapsed changes inside tx.
func (s *Sink) writeTable(ctx context.Context, tx pgx.Tx, id schema.TableID, changes []schema.Change) error {
	t, err := s.table(ctx, tx, id)
	if err != nil {
		return err
	}
	changes, sweeps := sinks.SplitSweeps(changes)
	if len(changes) > 0 && changes[0].Op == schema.OpTruncate {
		if err := s.truncate(ctx, tx, t, changes[0]); err != nil {
			return err
		}
		changes = changes[1:]
	}
	if len(changes) > 0 {
		if err := s.writeRows(ctx, tx, t, changes); err != nil {
			return err
		}
	}
	for _, c := range sweeps {
		if err := s.sweep(ctx, tx, t, c); err != nil {
			return err
		}
	}
	return nil
}

// writeRows stages a table's collapsed row changes and merges them.
func (s *Sink) writeRows(ctx context.Context, tx pgx.Tx, t *destTable, changes []schema.Change) error {
	cols, err := stagedColumns(t, changes)
	if err != nil {
		return err
	}
	st, err := s.stageFor(ctx, tx, t, cols)
	if err != nil {
		return err
	}
	anyUnchanged, err := s.encode(t, st, changes)
	if err != nil {
		return err
	}
	var copySQL strings.Builder
	fmt.Fprintf(&copySQL, "COPY %s (", st.ident)
	for _, i := range st.cols {
		copySQL.WriteString(pgx.Identifier{t.cols[i].name}.Sanitize())
		copySQL.WriteString(", ")
	}
	fmt.Fprintf(&copySQL, "%s, %s, %s, %s) FROM STDIN", pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Op}.Sanitize(),
		pgx.Identifier{s.meta.Unchanged}.Sanitize(), pgx.Identifier{s.meta.SourceTS}.Sanitize())
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(s.buf.Bytes()), copySQL.String()); err != nil {
		return classify(fmt.Errorf("copy %d rows into staging for %s: %w", len(changes), t.name, err))
	}
	hard := s.cfg.DeleteMode == "hard"
	if hard {
		// staged changes older than a recorded hard delete of their key are replays
		if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s AS s USING %s AS d WHERE d.dest_table = $1 AND d.key = %s AND d.version >= s.%s",
			st.ident, s.tombs, keyText(t), pgx.Identifier{s.meta.Version}.Sanitize()), t.ident); err != nil {
			return classify(fmt.Errorf("filter replayed changes of %s: %w", t.name, err))
		}
	}
	for _, q := range s.mergeSQL(t, st, anyUnchanged) {
		if _, err := tx.Exec(ctx, q); err != nil {
			return classify(fmt.Errorf("merge into %s: %w", t.name, err))
		}
	}
	if hard {
		v, op := pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Op}.Sanitize()
		tag, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]s AS d (dest_table, key, version) SELECT $1, %[2]s, s.%[3]s FROM %[4]s AS s WHERE s.%[5]s = 'd'
			ON CONFLICT (dest_table, key) DO UPDATE SET version = EXCLUDED.version WHERE d.version < EXCLUDED.version`,
			s.tombs, keyText(t), v, st.ident, op), t.ident)
		if err != nil {
			return classify(fmt.Errorf("record deletes of %s: %w", t.name, err))
		}
		if tag.RowsAffected() > 0 {
			s.tombstones = true
		}
	}
	s.m.rows.WithLabelValues(s.pipeline, t.name).Add(float64(len(changes)))
	return nil
}

// keyText renders a staged row's primary key as text (the key of a tombstone).
func keyText(t *destTable) string {
	var b strings.Builder
	b.WriteString("ROW(")
	for i, k := range t.pk {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("s." + pgx.Identifier{k}.Sanitize())
	}
	b.WriteString(")::text")
	return b.String()
}

// stagedColumns returns the destination columns the changes carry, in the
// destination's order. A field the destination lacks is a permanent error: the
// delta that adds it was missed.
func stagedColumns(t *destTable, changes []schema.Change) ([]int, error) {
	seen := make([]bool, len(t.cols))
	mark := func(r schema.Row) error {
		for _, f := range r {
			i, ok := t.byName[f.Name]
			if !ok {
				return component.Permanent(fmt.Errorf("table %s: column %q is not at the destination (the schema change that added it was not applied): resync the table or add the column", t.name, f.Name))
			}
			seen[i] = true
		}
		return nil
	}
	for i := range changes {
		if err := mark(changes[i].Key); err != nil {
			return nil, err
		}
		if err := mark(changes[i].After); err != nil {
			return nil, err
		}
	}
	var out []int
	for i, ok := range seen {
		if ok {
			out = append(out, i)
		}
	}
	for _, k := range t.pk {
		if !seen[t.byName[k]] {
			return nil, component.Permanent(fmt.Errorf("table %s: changes do not carry key column %q", t.name, k))
		}
	}
	return out, nil
}

// encode writes the staging rows of changes into s.buf in COPY text format and
// reports whether any row marks a column unchanged.
func (s *Sink) encode(t *destTable, st *stage, changes []schema.Change) (anyUnchanged bool, err error) {
	s.buf.Reset()
	var unchanged []int
	for ci := range changes {
		c := &changes[ci]
		row := c.After
		if c.Op == schema.OpDelete {
			row = c.Key
		}
		unchanged = unchanged[:0]
		for k, i := range st.cols {
			col := &t.cols[i]
			v, ok := row.Get(col.name)
			if !ok {
				if kv, isKey := c.Key.Get(col.name); isKey {
					v, ok = kv, true
				}
			}
			switch {
			case !ok && c.Op != schema.OpDelete:
				v = schema.Unchanged() // not carried by this row's version: keep what is stored
				fallthrough
			case v.Kind() == schema.KindUnchanged:
				unchanged = append(unchanged, k+1)
			case ok:
				if p := col.spec.problem(v); p != "" {
					nv, err := s.unrepresentable(t, col.name, c, p)
					if err != nil {
						return false, err
					}
					v = nv
				}
			}
			s.buf.Write(appendCopyText(s.buf.AvailableBuffer(), v))
			s.buf.WriteByte('\t')
		}
		s.buf.WriteString(`\\x`)
		s.buf.Write(hex.AppendEncode(s.buf.AvailableBuffer(), s.gen))
		s.buf.Write(hex.AppendEncode(s.buf.AvailableBuffer(), c.Pos))
		s.buf.WriteByte('\t')
		s.buf.WriteString(c.Op.String())
		s.buf.WriteByte('\t')
		if len(unchanged) == 0 {
			s.buf.WriteString(`\N`)
		} else {
			anyUnchanged = true
			s.buf.WriteByte('{')
			for j, k := range unchanged {
				if j > 0 {
					s.buf.WriteByte(',')
				}
				s.buf.Write(strconv.AppendInt(s.buf.AvailableBuffer(), int64(k), 10))
			}
			s.buf.WriteByte('}')
		}
		s.buf.WriteByte('\t')
		if c.CommitTS.IsZero() {
			s.buf.WriteString(`\N`)
		} else {
			s.buf.Write(appendTimestamp(s.buf.AvailableBuffer(), c.CommitTS.UTC(), true))
		}
		s.buf.WriteByte('\n')
	}
	return anyUnchanged, nil
}

// unrepresentable applies the on_unrepresentable policy to a value of column
// col. Neither the error nor the log carries the value (it may be personal
// data); they name the table, column, position and reason.
func (s *Sink) unrepresentable(t *destTable, col string, c *schema.Change, reason string) (schema.Value, error) {
	if s.cfg.OnUnrepresentable == "null" && !containsString(t.pk, col) {
		s.m.nulled.WithLabelValues(s.pipeline, t.name, col).Inc()
		if k := t.name + "\x00" + col; !s.warned[k] {
			s.warned[k] = true
			s.log.Warn("value the destination column cannot hold stored as NULL (on_unrepresentable: null); further ones are only counted",
				"table", t.name, "column", col, "position", c.Pos.String(), "reason", "the value "+reason)
		}
		return schema.Null(), nil
	}
	return schema.Value{}, component.Permanent(fmt.Errorf("table %s column %s at position %s: the value %s; set on_unrepresentable: null to store NULL instead, or widen the destination column",
		t.name, col, c.Pos, reason))
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// truncate marks (soft) or removes (hard) every row older than the truncate.
func (s *Sink) truncate(ctx context.Context, tx pgx.Tx, t *destTable, c schema.Change) error {
	v, del, sy := pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Deleted}.Sanitize(), pgx.Identifier{s.meta.SyncedAt}.Sanitize()
	q := fmt.Sprintf("DELETE FROM %s WHERE %s < $1", t.ident, v)
	if s.cfg.DeleteMode == "soft" {
		q = fmt.Sprintf("UPDATE %s SET %s = true, %s = $1, %s = now()%s WHERE %s < $1 AND NOT %s", t.ident, del, v, sy, s.opSet("'t'"), v, del)
	}
	if _, err := tx.Exec(ctx, q, s.version(c.Pos)); err != nil {
		return classify(fmt.Errorf("truncate %s: %w", t.name, err))
	}
	return nil
}

// sweep deletes the live rows of t older than the resync that c ends (their
// version is below c.Since's): they were neither read by the resync nor changed
// since it began, so the source no longer has them. Soft deletes mark them at
// the sweep's own version.
func (s *Sink) sweep(ctx context.Context, tx pgx.Tx, t *destTable, c schema.Change) error {
	if len(c.Since) == 0 {
		return component.Permanent(fmt.Errorf("sweep of %s carries no position its resync began at", t.name))
	}
	v, del, sy := pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Deleted}.Sanitize(), pgx.Identifier{s.meta.SyncedAt}.Sanitize()
	q, args := fmt.Sprintf("DELETE FROM %s WHERE %s < $1", t.ident, v), []any{s.version(c.Since)}
	if s.cfg.DeleteMode == "soft" {
		q = fmt.Sprintf("UPDATE %s SET %s = true, %s = $2, %s = now()%s WHERE %s < $1 AND NOT %s", t.ident, del, v, sy, s.opSet("'d'"), v, del)
		args = append(args, s.version(c.Pos))
	}
	tag, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return classify(fmt.Errorf("remove the rows of %s that its resync did not find: %w", t.name, err))
	}
	s.swept = append(s.swept, sweptRows{t.name, tag.RowsAffected()})
	return nil
}

// opSet is the optional SET of the op column.
func (s *Sink) opSet(expr string) string {
	if !s.cfg.IncludeOp {
		return ""
	}
	return ", " + pgx.Identifier{s.meta.Op}.Sanitize() + " = " + expr
}

// mergeSQL returns the statements that merge a staging table into t: one MERGE,
// or the upsert sequence for servers without MERGE. Every branch that changes a
// stored row requires the staged version to be newer than the stored one. With
// unchanged, a column a row marks unchanged keeps its stored value (a CASE per
// column); without, the plain assignment is cheaper.
func (s *Sink) mergeSQL(t *destTable, st *stage, unchanged bool) []string {
	q := pgx.Identifier.Sanitize
	v, del, sy := q(pgx.Identifier{s.meta.Version}), q(pgx.Identifier{s.meta.Deleted}), q(pgx.Identifier{s.meta.SyncedAt})
	op, unch, ts := q(pgx.Identifier{s.meta.Op}), q(pgx.Identifier{s.meta.Unchanged}), q(pgx.Identifier{s.meta.SourceTS})
	hard := s.cfg.DeleteMode == "hard"

	var on strings.Builder
	for i, k := range t.pk {
		if i > 0 {
			on.WriteString(" AND ")
		}
		fmt.Fprintf(&on, "t.%[1]s = s.%[1]s", q(pgx.Identifier{k}))
	}
	// SET list for an update: a column marked unchanged keeps its stored value
	var set strings.Builder
	for k, i := range st.cols {
		name := t.cols[i].name
		if containsString(t.pk, name) {
			continue
		}
		n := q(pgx.Identifier{name})
		if !unchanged {
			fmt.Fprintf(&set, "%[1]s = s.%[1]s, ", n)
			continue
		}
		fmt.Fprintf(&set, "%[1]s = CASE WHEN s.%[2]s IS NOT NULL AND %[3]d = ANY(s.%[2]s) THEN t.%[1]s ELSE s.%[1]s END, ", n, unch, k+1)
	}
	fmt.Fprintf(&set, "%s = false, %s = s.%s, %s = now()", del, v, v, sy)
	extra := func(b *strings.Builder, prefix string) {
		if s.cfg.IncludeOp {
			fmt.Fprintf(b, ", %s%s = s.%s::text", prefix, op, op)
		}
		if s.cfg.IncludeSourceTS {
			fmt.Fprintf(b, ", %s%s = s.%s", prefix, ts, ts)
		}
	}
	extra(&set, "")
	var delSet strings.Builder
	fmt.Fprintf(&delSet, "%s = true, %s = s.%s, %s = now()", del, v, v, sy)
	extra(&delSet, "")

	// INSERT column and value lists
	var cols, vals strings.Builder
	for _, i := range st.cols {
		n := q(pgx.Identifier{t.cols[i].name})
		fmt.Fprintf(&cols, "%s, ", n)
		fmt.Fprintf(&vals, "s.%s, ", n)
	}
	fmt.Fprintf(&cols, "%s, %s, %s", v, del, sy)
	fmt.Fprintf(&vals, "s.%s, s.%s = 'd', now()", v, op)
	if s.cfg.IncludeOp {
		fmt.Fprintf(&cols, ", %s", op)
		fmt.Fprintf(&vals, ", s.%s::text", op)
	}
	if s.cfg.IncludeSourceTS {
		fmt.Fprintf(&cols, ", %s", ts)
		fmt.Fprintf(&vals, ", s.%s", ts)
	}
	insertWhen := ""
	if hard {
		insertWhen = fmt.Sprintf(" AND s.%s <> 'd'", op)
	}

	if s.merge {
		onDelete := "UPDATE SET " + delSet.String()
		if hard {
			onDelete = "DELETE"
		}
		return []string{fmt.Sprintf(`MERGE INTO %[1]s AS t USING %[2]s AS s ON %[3]s
WHEN MATCHED AND s.%[4]s <= t.%[4]s THEN DO NOTHING
WHEN MATCHED AND s.%[5]s = 'd' THEN %[6]s
WHEN MATCHED THEN UPDATE SET %[7]s
WHEN NOT MATCHED%[8]s THEN INSERT (%[9]s) VALUES (%[10]s)`,
			t.ident, st.ident, on.String(), v, op, onDelete, set.String(), insertWhen, cols.String(), vals.String())}
	}
	stmts := []string{
		fmt.Sprintf("UPDATE %s AS t SET %s FROM %s AS s WHERE %s AND s.%s > t.%s AND s.%s <> 'd'",
			t.ident, set.String(), st.ident, on.String(), v, v, op),
	}
	if hard {
		stmts = append(stmts, fmt.Sprintf("DELETE FROM %s AS t USING %s AS s WHERE %s AND s.%s > t.%s AND s.%s = 'd'",
			t.ident, st.ident, on.String(), v, v, op))
	} else {
		stmts = append(stmts, fmt.Sprintf("UPDATE %s AS t SET %s FROM %s AS s WHERE %s AND s.%s > t.%s AND s.%s = 'd'",
			t.ident, delSet.String(), st.ident, on.String(), v, v, op))
	}
	stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s AS s WHERE NOT EXISTS (SELECT 1 FROM %s AS t WHERE %s)%s ON CONFLICT DO NOTHING",
		t.ident, cols.String(), vals.String(), st.ident, t.ident, on.String(), insertWhen))
	return stmts
}
