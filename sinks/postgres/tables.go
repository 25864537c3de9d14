package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/jackc/pgx/v5"
)

// destTable is a destination table as read from the catalog.
type destTable struct {
	ident  string // quoted schema.table
	name   string // unquoted, for messages
	cols   []destCol
	byName map[string]int
	pk     []string
	stages map[string]*stage // by staged column list
}

type destCol struct {
	name string
	typ  string // format_type(): valid SQL for a staging column
	spec colSpec
}

// stage is a session-local staging table for one column list of a table.
type stage struct {
	ident string
	cols  []int // indexes into destTable.cols, in staging order
}

func (s *Sink) destIdent(id schema.TableID) string {
	return pgx.Identifier{s.cfg.Schema, s.cfg.DestName(id)}.Sanitize()
}

// table returns the destination table of id, reading the catalog on first use.
// A table that does not exist is a sinks.TableLostError: the sink creates
// tables from their CreateTable delta, so one that is missing was dropped by
// someone.
func (s *Sink) table(ctx context.Context, q pgx.Tx, id schema.TableID) (*destTable, error) {
	if t := s.tables[id]; t != nil {
		return t, nil
	}
	t, err := s.readTable(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, &sinks.TableLostError{Table: id, Dest: s.cfg.Schema + "." + s.cfg.DestName(id)}
	}
	if err := s.ensureTruncateTrigger(ctx, q, id); err != nil {
		return nil, err
	}
	s.tables[id] = t
	return t, nil
}

// readTable reads a table's columns and key from the catalog; nil if it does not exist.
func (s *Sink) readTable(ctx context.Context, q pgx.Tx, id schema.TableID) (*destTable, error) {
	ident := s.destIdent(id)
	rows, err := q.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, coalesce(et.typname, ''), a.atttypmod,
			coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0)
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
		LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, ident)
	if err != nil {
		return nil, classify(fmt.Errorf("read destination table %s: %w", ident, err))
	}
	t := &destTable{ident: ident, name: s.cfg.Schema + "." + s.cfg.DestName(id), byName: map[string]int{}, stages: map[string]*stage{}}
	type keyCol struct {
		name string
		pos  int
	}
	var keys []keyCol
	for rows.Next() {
		var c destCol
		var typname, elem string
		var typmod int32
		var keyPos int
		if err := rows.Scan(&c.name, &c.typ, &typname, &elem, &typmod, &keyPos); err != nil {
			rows.Close()
			return nil, err
		}
		c.spec = specFrom(typname, elem, typmod)
		t.byName[c.name] = len(t.cols)
		t.cols = append(t.cols, c)
		if keyPos > 0 {
			keys = append(keys, keyCol{c.name, keyPos})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read destination table %s: %w", ident, err))
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	slices.SortFunc(keys, func(a, b keyCol) int { return a.pos - b.pos })
	for _, k := range keys {
		t.pk = append(t.pk, k.name)
	}
	if len(t.pk) == 0 {
		return nil, component.Permanent(fmt.Errorf("destination table %s has no primary key; the sink needs one to merge changes (add it, or drop the table so the sink recreates it)", ident))
	}
	for _, m := range []string{s.meta.Version, s.meta.Deleted, s.meta.SyncedAt} {
		if _, ok := t.byName[m]; !ok {
			return nil, component.Permanent(fmt.Errorf("destination table %s has no %s column: it was not created by this sink (or with another metadata_prefix)", ident, m))
		}
	}
	return t, nil
}

// Apply applies schema deltas in one transaction: CreateTable creates the table
// (or adds what an existing one lacks), AddColumn adds, AlterColumnType widens
// where Postgres can do it without loss, RenameColumn renames. Drops keep the
// destination column and table. A primary-key change or a narrowing is a
// permanent error naming the table and column.
func (s *Sink) Apply(ctx context.Context, deltas []schema.Delta) error {
	if s.conn == nil {
		return errors.New("postgres sink: Apply before Open")
	}
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.cfg.Schema}.Sanitize()); err != nil && !isDuplicateObject(err) {
			return classify(fmt.Errorf("create schema %s: %w", s.cfg.Schema, err))
		}
		marked, err := s.truncations(ctx, tx)
		if err != nil {
			return err
		}
		for _, d := range deltas {
			if err := s.names.Check(d.Table); err != nil {
				return err
			}
			delete(s.tables, d.Table.ID) // re-read after the change
			if err := s.applyDelta(ctx, tx, d, marked); err != nil {
				return sinks.ForTable(d.Table.ID, err)
			}
			delete(s.tables, d.Table.ID)
		}
		return nil
	})
}

// applyDelta applies d; marked are the destination tables truncated behind
// the sink's back (truncations).
func (s *Sink) applyDelta(ctx context.Context, tx pgx.Tx, d schema.Delta, marked []string) error {
	run := func(cur *destTable, q string) error {
		if cur == nil { // the table's creation
			if _, err := tx.Exec(ctx, q); err != nil && !isDuplicateObject(err) {
				return classify(fmt.Errorf("create destination table for %s: %w", d.Table.ID, err))
			}
			s.log.Info("destination table created", "table", s.cfg.Schema+"."+s.cfg.DestName(d.Table.ID), "source", d.Table.ID.String())
			return nil
		}
		if _, err := tx.Exec(ctx, q); err != nil {
			return classify(fmt.Errorf("apply schema change to %s: %s: %w", cur.ident, q, err))
		}
		s.log.Info("schema change applied at destination", "table", cur.name, "statement", q)
		return nil
	}
	if lost := s.truncated(marked, d.Table.ID); lost != nil {
		if d.From != 0 {
			return lost
		}
		// the table's read from its first row begins: it writes every row
		// again and sweeps the others
		if _, err := tx.Exec(ctx, "DELETE FROM "+s.truncs+" WHERE dest_schema = $1 AND dest_table = $2", s.cfg.Schema, s.cfg.DestName(d.Table.ID)); err != nil {
			return classify(fmt.Errorf("forget the truncation of %s: %w", lost.Dest, err))
		}
	}
	created, err := s.deltaStatements(ctx, tx, d, run)
	if err != nil || !created {
		if err == nil {
			err = s.fill(ctx, tx, d)
		}
		return err
	}
	// an existing table gets its trigger at its first write of a run (table)
	return s.ensureTruncateTrigger(ctx, tx, d.Table.ID)
}

// truncateTrigger is the name of the trigger that records a TRUNCATE of a
// destination table (see ensureOffsetsTable).
const truncateTrigger = "_cdc_truncated"

// ensureTruncateTrigger gives table id's destination its TRUNCATE trigger,
// unless it has it (tables created before the trigger existed get it at
// their next schema change or first write of a run).
func (s *Sink) ensureTruncateTrigger(ctx context.Context, tx pgx.Tx, id schema.TableID) error {
	ident := s.destIdent(id)
	var has, exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2)",
		ident, truncateTrigger).Scan(&exists, &has); err != nil {
		return classify(fmt.Errorf("read the triggers of %s: %w", ident, err))
	}
	if has || !exists {
		return nil
	}
	q := fmt.Sprintf("CREATE TRIGGER %s AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE %s()", pgx.Identifier{truncateTrigger}.Sanitize(), ident, s.truncFn)
	if _, err := tx.Exec(ctx, q); err != nil && !isDuplicateObject(err) {
		return classify(fmt.Errorf("create the TRUNCATE trigger of %s: %w", ident, err))
	}
	return nil
}

// truncations returns the destination tables of the sink's schema that were
// truncated behind its back (their triggers recorded it).
func (s *Sink) truncations(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, "SELECT dest_table FROM "+s.truncs+" WHERE dest_schema = $1", s.cfg.Schema)
	if err != nil {
		return nil, classify(fmt.Errorf("read %s: %w", s.truncs, err))
	}
	marked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return marked, classify(err)
}

// truncated returns the sinks.TableLostError of table id when it is among the
// marked ones.
func (s *Sink) truncated(marked []string, id schema.TableID) *sinks.TableLostError {
	if name := s.cfg.DestName(id); slices.Contains(marked, name) {
		return &sinks.TableLostError{Table: id, Dest: s.cfg.Schema + "." + name, Truncated: true}
	}
	return nil
}

// PlanDDL implements sinks.DDLPlanner: the statements Apply would run for d
// against the destination table as it is now, under its destination name
// (the fill of added columns' existing rows not included).
func (s *Sink) PlanDDL(ctx context.Context, d schema.Delta) ([]string, error) {
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, component.Permanent(fmt.Errorf("dsn: %s", redact.Text(err.Error())))
	}
	conn, err := pgx.ConnectConfig(ctx, cc) // its own session: the writer's may be busy
	if err != nil {
		return nil, classify(fmt.Errorf("connect to destination: %w", err))
	}
	defer conn.Close(ctx)
	var out []string
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := s.deltaStatements(ctx, tx, d, func(_ *destTable, q string) error { out = append(out, q); return nil })
		return err
	})
	return out, err
}

// deltaStatements hands run the statements that bring the destination table
// to d (created: the table did not exist and the statement creates it).
func (s *Sink) deltaStatements(ctx context.Context, tx pgx.Tx, d schema.Delta, run func(cur *destTable, q string) error) (created bool, err error) {
	cur, err := s.readTable(ctx, tx, d.Table.ID)
	if err != nil {
		return false, err
	}
	if cur == nil {
		if slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }) {
			return false, nil
		}
		if d.From != 0 {
			// a table replicated before: its rows are gone with it
			return false, &sinks.TableLostError{Table: d.Table.ID, Dest: s.cfg.Schema + "." + s.cfg.DestName(d.Table.ID)}
		}
		q, err := s.createTableSQL(d.Table)
		if err != nil {
			return false, err
		}
		return true, run(nil, q)
	}
	exec := func(q string) error { return run(cur, q) }
	// columns of the delta's table the destination lacks (a CreateTable for an
	// existing table, or an AddColumn)
	for _, c := range d.Table.Columns {
		if _, ok := cur.byName[c.Name]; ok || renamedTo(d, c.Name) {
			continue
		}
		if err := exec(fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", cur.ident, pgx.Identifier{c.Name}.Sanitize(), DestType(c.Type))); err != nil {
			return false, err
		}
	}
	for _, ch := range d.Changes {
		switch ch.Op {
		case schema.RenameColumn:
			_, hasOld := cur.byName[ch.Old.Name]
			_, hasNew := cur.byName[ch.Column.Name]
			if hasOld && !hasNew {
				if err := exec(fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", cur.ident, pgx.Identifier{ch.Old.Name}.Sanitize(), pgx.Identifier{ch.Column.Name}.Sanitize())); err != nil {
					return false, err
				}
			} else if !hasNew {
				if err := exec(fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", cur.ident, pgx.Identifier{ch.Column.Name}.Sanitize(), DestType(ch.Column.Type))); err != nil {
					return false, err
				}
			}
		case schema.AlterColumnType:
			i, ok := cur.byName[ch.Column.Name]
			if !ok {
				continue
			}
			want := DestType(ch.Column.Type)
			if have, w := cur.cols[i].spec, parseDest(want); have == w || (w.typname == "text" && have.typname == "text") {
				continue
			} else if !widens(have, w) {
				return false, component.Permanent(fmt.Errorf("table %s column %s: the source changed its type to %s; the destination column is %s and cannot take it without loss (not a widening): alter the destination column yourself, or resync the table",
					cur.name, ch.Column.Name, ch.Column.Type, cur.cols[i].typ))
			}
			if err := exec(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", cur.ident, pgx.Identifier{ch.Column.Name}.Sanitize(), want)); err != nil {
				return false, err
			}
		case schema.SetPrimaryKey:
			if !slices.Equal(cur.pk, d.Table.PrimaryKey) {
				return false, component.Permanent(fmt.Errorf("table %s: the source's primary key changed from (%s) to (%s); the destination merges by key and cannot follow it: resync the table",
					cur.name, strings.Join(cur.pk, ", "), strings.Join(d.Table.PrimaryKey, ", ")))
			}
		case schema.DropColumn, schema.DropTable, schema.SetNullable, schema.CreateTable, schema.AddColumn:
			// drops keep the destination's column or table; data columns are nullable
		}
	}
	return false, nil
}

// fill writes each added column's Existing value into the rows written before
// the delta (a version below d.Pos): at the source they hold it, and the log
// carried nothing for them. Rows written after the delta are never touched, so
// applying it again, after a crash or a held table's replay, changes nothing.
func (s *Sink) fill(ctx context.Context, tx pgx.Tx, d schema.Delta) error {
	fills, err := sinks.Fills(d)
	if len(fills) == 0 || err != nil {
		return err
	}
	t, err := s.readTable(ctx, tx, d.Table.ID)
	if err != nil {
		return err
	}
	for _, f := range fills {
		v := f.Value
		i, ok := t.byName[f.Name]
		if !ok {
			return component.Permanent(fmt.Errorf("table %s: column %s to fill is not at the destination", t.name, f.Name))
		}
		col := &t.cols[i]
		if p := col.spec.problem(v); p != "" {
			nv, err := s.unrepresentable(t, col.name, &schema.Change{Pos: d.Pos}, p)
			if err != nil {
				return err
			}
			if v = nv; v.IsNull() {
				continue // nothing to write: the rows hold NULL already
			}
		}
		c, ver := pgx.Identifier{col.name}.Sanitize(), pgx.Identifier{s.meta.Version}.Sanitize()
		// compared as text: some types (json, point) have no equality
		q := fmt.Sprintf("UPDATE %s SET %s = $1::%s WHERE %s < $2 AND %s::text IS DISTINCT FROM ($1::%s)::text", t.ident, c, col.typ, ver, c, col.typ)
		tag, err := tx.Exec(ctx, q, string(appendText(nil, v)), s.version(d.Pos))
		if err != nil {
			return classify(fmt.Errorf("fill column %s of %s's rows from before it was added: %w", col.name, t.name, err))
		}
		s.log.Info("added column filled in the rows from before it", "table", t.name, "column", col.name, "rows", tag.RowsAffected())
	}
	return nil
}

func renamedTo(d schema.Delta, name string) bool {
	return slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.RenameColumn && c.Column.Name == name })
}

// createTable creates the destination table with the source key and the metadata columns.
func (s *Sink) createTableSQL(t schema.Table) (string, error) {
	if len(t.PrimaryKey) == 0 {
		return "", component.Permanent(fmt.Errorf("table %s has no primary key: the Postgres sink merges by key, so it needs one at the source", t.ID))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", s.destIdent(t.ID))
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "%s %s", pgx.Identifier{c.Name}.Sanitize(), DestType(c.Type))
		if slices.Contains(t.PrimaryKey, c.Name) {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "%s bytea NOT NULL, %s boolean NOT NULL DEFAULT false, %s timestamptz NOT NULL DEFAULT now(), ",
		pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Deleted}.Sanitize(), pgx.Identifier{s.meta.SyncedAt}.Sanitize())
	if s.cfg.IncludeOp {
		fmt.Fprintf(&b, "%s text, ", pgx.Identifier{s.meta.Op}.Sanitize())
	}
	if s.cfg.IncludeSourceTS {
		fmt.Fprintf(&b, "%s timestamptz, ", pgx.Identifier{s.meta.SourceTS}.Sanitize())
	}
	b.WriteString("PRIMARY KEY (")
	for i, k := range t.PrimaryKey {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{k}.Sanitize())
	}
	b.WriteString("))")
	return b.String(), nil
}

// sqlNames maps the SQL spellings DestType produces to pg_type names.
var sqlNames = map[string]string{
	"boolean": "bool", "smallint": "int2", "integer": "int4", "bigint": "int8", "real": "float4",
	"double precision": "float8", "char": "bpchar", `"char"`: "char",
}

// parseDest reads a type as DestType spells it into a colSpec.
func parseDest(t string) colSpec {
	var s colSpec
	if base, ok := strings.CutSuffix(t, "[]"); ok {
		s = parseDest(base)
		s.array = true
		return s
	}
	name, args, _ := strings.Cut(strings.TrimSuffix(t, ")"), "(")
	if n, ok := sqlNames[name]; ok {
		name = n
	}
	s.typname = name
	if args != "" {
		a, b, _ := strings.Cut(args, ",")
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		switch name {
		case "numeric":
			s.precision, s.scale = x, y
		case "varchar", "bpchar":
			s.length = x
		default:
			s.precision = x
		}
	}
	return s
}

// widens reports whether changing a column from have to want keeps every value
// exactly: an integer to a larger integer or a numeric with room for it, real to
// double, varchar(n) to a longer varchar or text, numeric(p,s) to one with at
// least as many integer and fraction digits, a timestamp's precision up.
func widens(have, want colSpec) bool {
	if have.array != want.array {
		return false
	}
	intDigits := map[string]int{"int2": 5, "int4": 10, "int8": 19}
	switch {
	case intDigits[have.typname] > 0 && intDigits[want.typname] > 0:
		return intDigits[want.typname] >= intDigits[have.typname]
	case intDigits[have.typname] > 0 && want.typname == "numeric":
		return want.precision == 0 || want.precision-want.scale >= intDigits[have.typname]
	case have.typname == "float4" && want.typname == "float8":
		return true
	case (have.typname == "varchar" || have.typname == "bpchar") && want.typname == "text":
		return true
	case have.typname == "varchar" && want.typname == "varchar", have.typname == "bpchar" && want.typname == "varchar":
		return want.length == 0 || (have.length > 0 && want.length >= have.length)
	case have.typname == "numeric" && want.typname == "numeric":
		if want.precision == 0 {
			return true
		}
		return have.precision > 0 && want.scale >= have.scale && want.precision-want.scale >= have.precision-have.scale
	case have.typname == want.typname && (have.typname == "timestamp" || have.typname == "timestamptz" || have.typname == "time"):
		return want.precision == 0 || want.precision >= have.precision
	}
	return false
}

// stageFor returns the staging table for the given destination columns, creating
// it in this session on first use. It is emptied at every commit.
func (s *Sink) stageFor(ctx context.Context, tx pgx.Tx, t *destTable, cols []int) (*stage, error) {
	var sig strings.Builder
	for _, i := range cols {
		sig.WriteString(t.cols[i].name)
		sig.WriteByte(0)
		sig.WriteString(t.cols[i].typ)
		sig.WriteByte(0)
	}
	if st := t.stages[sig.String()]; st != nil {
		return st, nil
	}
	h := fnv.New64a()
	h.Write([]byte(t.ident + "\x00" + sig.String()))
	s.stages++
	st := &stage{ident: pgx.Identifier{fmt.Sprintf("_cdc_stage_%x_%d", h.Sum64(), s.stages)}.Sanitize(), cols: cols}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TEMP TABLE %s (", st.ident)
	for _, i := range cols {
		fmt.Fprintf(&b, "%s %s, ", pgx.Identifier{t.cols[i].name}.Sanitize(), t.cols[i].typ)
	}
	fmt.Fprintf(&b, "%s bytea NOT NULL, %s \"char\" NOT NULL, %s int2[], %s timestamptz) ON COMMIT DELETE ROWS",
		pgx.Identifier{s.meta.Version}.Sanitize(), pgx.Identifier{s.meta.Op}.Sanitize(),
		pgx.Identifier{s.meta.Unchanged}.Sanitize(), pgx.Identifier{s.meta.SourceTS}.Sanitize())
	if _, err := tx.Exec(ctx, b.String()); err != nil {
		return nil, classify(fmt.Errorf("create staging table for %s: %w", t.name, err))
	}
	t.stages[sig.String()] = st
	return st, nil
}

// DestinationExists implements pipeline.TableChecker.
func (s *Sink) DestinationExists(ctx context.Context, id schema.TableID) (bool, error) {
	if s.conn == nil {
		return false, errors.New("postgres sink: DestinationExists before Open")
	}
	var ok bool
	err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.destIdent(id)).Scan(&ok)
	return ok, err
}
