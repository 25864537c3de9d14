package snowflake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
)

// sfTable is a destination table and its raw table, as read from the catalog.
type sfTable struct {
	name      string // database.schema.table, for messages
	dest, raw string // quoted
	rawName   string
	cols      []sfCol
	byName    map[string]int
}

type sfCol struct {
	name string
	typ  colType
}

// Raw-table metadata columns (fixed names: the raw tables are the sink's own).
const (
	rawLoad  = "_cdc_load"  // the load id
	rawBatch = "_cdc_batch" // batchKey of the load's batch
)

// rawMeta are the raw table's metadata columns, in the order the batch file
// holds them after the data columns.
func (s *Sink) rawMeta() []sfCol {
	text := colType{base: "TEXT"}
	return []sfCol{{s.meta.Version, text}, {s.meta.Deleted, colType{base: "BOOLEAN"}}, {s.meta.Unchanged, colType{base: "NUMBER", prec: 9}},
		{s.meta.Op, text}, {s.meta.SourceTS, colType{base: "TIMESTAMP_TZ"}}, {rawLoad, text}, {rawBatch, text}}
}

// rawValues are a row's values of rawMeta's columns.
func rawValues(r warehouse.Row, load, batch string) []schema.Value {
	unchanged, ts := schema.Null(), schema.Null()
	if r.Unchanged > 0 {
		unchanged = schema.Int(int64(r.Unchanged))
	}
	if !r.C.CommitTS.IsZero() {
		ts = schema.Timestamp(r.C.CommitTS)
	}
	return []schema.Value{schema.String(r.Version), schema.Bool(r.Deleted()), unchanged, schema.String(r.C.Op.String()), ts,
		schema.String(load), schema.String(batch)}
}

// batchKey orders a pipeline's batches as text, across generations.
func batchKey(gen, n uint64) string { return fmt.Sprintf("%016x%016x", gen, n) }

func (s *Sink) rawName(id schema.TableID) string {
	return s.cfg.MetadataPrefix + "raw_" + s.cfg.DestName(id)
}

// table returns the destination table of id, reading the catalog on first use
// in this run. It removes the raw rows an earlier run of the pipeline left of
// batches it recorded (merged, then a crash before their rows were deleted);
// the rows of the unrecorded batch stay, because its retry's COPY of the same
// file is skipped by load history and merges them. A missing table is a permanent error: tables are created from their
// CreateTable delta, so one that is missing was dropped by someone.
func (s *Sink) table(ctx context.Context, id schema.TableID) (*sfTable, error) {
	s.mu.Lock()
	t := s.tables[id]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := s.readTable(ctx, id)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, &sinks.TableLostError{Table: id, Dest: s.qualified(s.cfg.DestName(id))}
	}
	if err := s.ensureRaw(ctx, t); err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM `+t.raw+` WHERE `+quote(rawLoad)+` LIKE ? AND `+quote(rawBatch)+` <= ?`,
		s.tag+"-%", batchKey(s.gen, s.seq)); err != nil {
		return nil, classify(fmt.Errorf("clean up %s: %w", t.raw, err))
	}
	s.mu.Lock()
	s.tables[id] = t
	s.mu.Unlock()
	return t, nil
}

// columns reads a table's columns from the catalog; nil if it does not exist.
func (s *Sink) columns(ctx context.Context, name string) ([]sfCol, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT "COLUMN_NAME", "DATA_TYPE", COALESCE("NUMERIC_PRECISION", 0), COALESCE("NUMERIC_SCALE", 0)
		FROM `+quote(s.cfg.Database)+`."INFORMATION_SCHEMA"."COLUMNS" WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" = ? ORDER BY "ORDINAL_POSITION"`,
		s.cfg.Schema, name)
	if err != nil {
		return nil, classify(fmt.Errorf("read the columns of %s: %w", name, err))
	}
	defer rows.Close()
	var out []sfCol
	for rows.Next() {
		var c sfCol
		var dt string
		var p, sc int64
		if err := rows.Scan(&c.name, &dt, &p, &sc); err != nil {
			return nil, err
		}
		c.typ = parseInfoType(dt, int(p), int(sc))
		out = append(out, c)
	}
	return out, classify(rows.Err())
}

func (s *Sink) readTable(ctx context.Context, id schema.TableID) (*sfTable, error) {
	name := s.cfg.DestName(id)
	cols, err := s.columns(ctx, name)
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	raw := s.rawName(id)
	t := &sfTable{name: s.cfg.Database + "." + s.cfg.Schema + "." + name, dest: s.qualified(name), raw: s.qualified(raw), rawName: raw, byName: map[string]int{}}
	meta := map[string]bool{}
	for _, m := range s.meta.Names() {
		meta[m] = true
	}
	for _, c := range cols {
		if meta[c.name] {
			continue
		}
		t.byName[c.name] = len(t.cols)
		t.cols = append(t.cols, c)
	}
	// COPY matches Parquet columns to raw columns by name without case (Snowflake
	// and its stand-in agree only on that), so names must differ in more than case
	upper := map[string]string{}
	for _, c := range cols {
		if o, ok := upper[strings.ToUpper(c.name)]; ok {
			return nil, component.Permanent(fmt.Errorf("destination table %s has columns %s and %s, which differ only in case; the Snowflake sink loads by case-insensitive name: rename one at the source (or map it with the columns transform)", t.name, o, c.name))
		}
		upper[strings.ToUpper(c.name)] = c.name
	}
	for _, m := range []string{s.meta.Version, s.meta.Deleted, s.meta.SyncedAt} {
		if !slices.ContainsFunc(cols, func(c sfCol) bool { return c.name == m }) {
			return nil, component.Permanent(fmt.Errorf("destination table %s has no %s column: it was not created by this sink (or with another metadata_prefix)", t.name, m))
		}
	}
	return t, nil
}

// ensureRaw creates the raw table, or adds the columns it lacks, so that it has
// every data column of t in its raw type and the metadata columns.
func (s *Sink) ensureRaw(ctx context.Context, t *sfTable) error {
	have, err := s.columns(ctx, t.rawName)
	if err != nil {
		return err
	}
	want := make([]sfCol, 0, len(t.cols)+7)
	for _, c := range t.cols {
		want = append(want, sfCol{c.name, c.typ.raw()})
	}
	want = append(want, s.rawMeta()...)
	if len(have) == 0 {
		defs := make([]string, len(want))
		for i, c := range want {
			defs[i] = quote(c.name) + " " + c.typ.sql()
		}
		_, err := s.db.ExecContext(ctx, fmt.Sprintf("CREATE TRANSIENT TABLE IF NOT EXISTS %s (%s) DATA_RETENTION_TIME_IN_DAYS = 0", t.raw, strings.Join(defs, ", ")))
		return classify(errWrap("create raw table "+t.raw, err))
	}
	for _, c := range want {
		i := slices.IndexFunc(have, func(h sfCol) bool { return h.name == c.name })
		switch {
		case i < 0:
			err = s.exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", t.raw, quote(c.name), c.typ.sql()))
		case have[i].typ != c.typ:
			err = s.exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE %s", t.raw, quote(c.name), c.typ.sql()))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) exec(ctx context.Context, q string) error {
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return classify(fmt.Errorf("%s: %w", q, err))
	}
	s.log.Info("schema change applied at destination", "statement", q)
	return nil
}

// Apply applies schema deltas: CreateTable creates the table (or adds what an
// existing one lacks), AddColumn adds (ADD COLUMN IF NOT EXISTS), a widening
// of NUMBER precision is applied, RenameColumn renames. Drops keep the
// destination column and table. A primary-key change or another type change is
// a permanent error naming the table and column.
func (s *Sink) Apply(ctx context.Context, deltas []schema.Delta) error {
	if s.db == nil {
		return errors.New("snowflake sink: Apply before Open")
	}
	for _, d := range deltas {
		if err := s.names.Check(d.Table); err != nil {
			return err
		}
		s.mu.Lock()
		delete(s.tables, d.Table.ID)
		s.mu.Unlock()
		if err := s.applyDelta(ctx, d); err != nil {
			return sinks.ForTable(d.Table.ID, err)
		}
	}
	return nil
}

func (s *Sink) applyDelta(ctx context.Context, d schema.Delta) error {
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return err
	}
	run := func(q string) error { return s.exec(ctx, q) }
	switch {
	case cur == nil && slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }):
		return nil
	case cur == nil && d.From != 0:
		// a table replicated before: its rows are gone with it
		return &sinks.TableLostError{Table: d.Table.ID, Dest: s.qualified(s.cfg.DestName(d.Table.ID))}
	case cur == nil:
		var q string
		if q, err = s.createTableSQL(d.Table); err == nil {
			if _, err = s.db.ExecContext(ctx, q); err != nil {
				err = classify(fmt.Errorf("create destination table for %s: %w", d.Table.ID, err))
			} else {
				s.log.Info("destination table created", "table", s.cfg.DestName(d.Table.ID), "source", d.Table.ID.String())
			}
		}
	default:
		err = s.alterTable(cur, d, run)
	}
	if err != nil {
		return err
	}
	// the raw table follows the destination's columns
	t, err := s.readTable(ctx, d.Table.ID)
	if err != nil || t == nil {
		return err
	}
	if err := s.ensureRaw(ctx, t); err != nil {
		return err
	}
	if cur == nil {
		return nil // a new table has no rows to fill
	}
	return s.fill(ctx, d)
}

// alterTable brings an existing destination table to d's shape: renames, added
// columns, NUMBER precision growth.
func (s *Sink) alterTable(cur *sfTable, d schema.Delta, run func(q string) error) error {
	for _, ch := range d.Changes {
		if ch.Op != schema.RenameColumn {
			continue
		}
		_, hasOld := cur.byName[ch.Old.Name]
		_, hasNew := cur.byName[ch.Column.Name]
		if hasOld && !hasNew {
			for _, tbl := range []string{cur.dest, cur.raw} {
				if err := run(fmt.Sprintf("ALTER TABLE IF EXISTS %s RENAME COLUMN %s TO %s", tbl, quote(ch.Old.Name), quote(ch.Column.Name))); err != nil {
					return err
				}
			}
			cur.cols[cur.byName[ch.Old.Name]].name = ch.Column.Name
			cur.byName[ch.Column.Name] = cur.byName[ch.Old.Name]
			delete(cur.byName, ch.Old.Name)
		}
	}
	for _, c := range d.Table.Columns {
		if _, ok := cur.byName[c.Name]; ok {
			continue
		}
		if err := run(fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", cur.dest, quote(c.Name), DestType(c.Type))); err != nil {
			return err
		}
	}
	for _, ch := range d.Changes {
		switch ch.Op {
		case schema.AlterColumnType:
			i, ok := cur.byName[ch.Column.Name]
			if !ok {
				continue
			}
			have, want := cur.cols[i].typ, destType(ch.Column.Type)
			if have == want {
				continue
			}
			if have.base != "NUMBER" || want.base != "NUMBER" || want.scale != have.scale || want.prec < have.prec {
				return component.Permanent(fmt.Errorf("table %s column %s: the source changed its type to %s; the destination column is %s and Snowflake cannot change it to %s in place (only NUMBER precision grows): alter the destination column yourself, or resync the table",
					cur.name, ch.Column.Name, ch.Column.Type, have.sql(), want.sql()))
			}
			if err := run(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE %s", cur.dest, quote(ch.Column.Name), want.sql())); err != nil {
				return err
			}
		case schema.SetPrimaryKey:
			return component.Permanent(fmt.Errorf("table %s: the source's primary key changed to (%s); the destination merges by key and cannot follow it: resync the table",
				cur.name, strings.Join(d.Table.PrimaryKey, ", ")))
		}
	}
	return nil
}

// createTable creates the destination table with the source key and the
// metadata columns.
func (s *Sink) createTableSQL(t schema.Table) (string, error) {
	if len(t.PrimaryKey) == 0 {
		return "", component.Permanent(fmt.Errorf("table %s has no primary key: the Snowflake sink merges by key, so it needs one at the source", t.ID))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", s.qualified(s.cfg.DestName(t.ID)))
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "%s %s", quote(c.Name), DestType(c.Type))
		if slices.Contains(t.PrimaryKey, c.Name) {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "%s VARCHAR NOT NULL, %s BOOLEAN NOT NULL DEFAULT FALSE, %s TIMESTAMP_TZ(6), ", quote(s.meta.Version), quote(s.meta.Deleted), quote(s.meta.SyncedAt))
	if s.cfg.IncludeOp {
		fmt.Fprintf(&b, "%s VARCHAR, ", quote(s.meta.Op))
	}
	if s.cfg.IncludeSourceTS {
		fmt.Fprintf(&b, "%s TIMESTAMP_TZ(6), ", quote(s.meta.SourceTS))
	}
	keys := make([]string, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		keys[i] = quote(k)
	}
	fmt.Fprintf(&b, "PRIMARY KEY (%s))", strings.Join(keys, ", "))
	return b.String(), nil
}

// PlanDDL implements sinks.DDLPlanner: the statements Apply would run for d
// against the destination table as it is now, under its destination name
// (the raw table's matching changes and the fill of added columns not
// included).
func (s *Sink) PlanDDL(ctx context.Context, d schema.Delta) ([]string, error) {
	if s.db == nil {
		return nil, errors.New("snowflake sink: PlanDDL before Open")
	}
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		if slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }) {
			return nil, nil
		}
		q, err := s.createTableSQL(d.Table)
		if err != nil {
			return nil, err
		}
		return []string{q}, nil
	}
	var out []string
	err = s.alterTable(cur, d, func(q string) error {
		if cur.raw == "" || !strings.Contains(q, cur.raw) {
			out = append(out, q)
		}
		return nil
	})
	return out, err
}

// mergeSQL is the MERGE of one load: the source is the load's rows in the raw
// table, one per key (a file copied twice still merges once), with JSON text
// parsed into VARIANT and ARRAY values.
func (t *sfTable) mergeSQL(s *Sink, cols []sfCol, l *warehouse.Load) string {
	var sel, names, keys []string
	for _, c := range cols {
		names = append(names, c.name)
		sel = append(sel, c.fromRaw()+" AS "+quote(c.name))
	}
	var quotedKeys []string
	for _, f := range l.Rows[0].C.Key {
		keys = append(keys, f.Name)
		quotedKeys = append(quotedKeys, quote(f.Name))
	}
	m := s.meta
	sel = append(sel, quote(m.Version), quote(m.Deleted), quote(m.Unchanged), "CURRENT_TIMESTAMP() AS "+quote(m.SyncedAt))
	if s.cfg.IncludeOp {
		sel = append(sel, quote(m.Op))
	}
	if s.cfg.IncludeSourceTS {
		sel = append(sel, quote(m.SourceTS))
	}
	source := fmt.Sprintf("(SELECT %s FROM %s WHERE %s = ? QUALIFY ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s DESC) = 1)",
		strings.Join(sel, ", "), t.raw, quote(rawLoad), strings.Join(quotedKeys, ", "), quote(m.Version))
	return warehouse.Merge{
		Quote: quote, Target: t.dest, Source: source, Columns: names, Key: keys, Meta: m,
		UnchangedSets: l.UnchangedSets, Hard: s.cfg.DeleteMode == "hard",
		IncludeOp: s.cfg.IncludeOp, IncludeTS: s.cfg.IncludeSourceTS,
	}.SQL()
}

// fromRaw is the column's value from its raw-table column: JSON text parsed
// into VARIANT, OBJECT and ARRAY values.
func (c sfCol) fromRaw() string {
	switch c.typ.base {
	case "VARIANT", "OBJECT":
		return fmt.Sprintf("PARSE_JSON(%s)", quote(c.name))
	case "ARRAY":
		return fmt.Sprintf("PARSE_JSON(%s)::ARRAY", quote(c.name))
	}
	return quote(c.name)
}

// fill writes each added column's Existing value into the rows written before
// the delta (a version below d.Pos's): at the source they hold it, and the log
// carried nothing for them. The values take the load path of every row (one
// Parquet row, PUT and COPY into the raw table under a load id of its own), and
// the UPDATE never touches a row written after the delta, so applying the delta
// again changes nothing.
func (s *Sink) fill(ctx context.Context, d schema.Delta) error {
	row, err := sinks.Fills(d)
	if len(row) == 0 || err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.tables, d.Table.ID)
	s.mu.Unlock()
	t, err := s.table(ctx, d.Table.ID)
	if err != nil {
		return err
	}
	var cols []sfCol
	var set, sel []string
	for _, f := range row {
		j, ok := t.byName[f.Name]
		if !ok {
			return component.Permanent(fmt.Errorf("table %s: column %s to fill is not at the destination", t.name, f.Name))
		}
		c := t.cols[j]
		cols = append(cols, c)
		set = append(set, fmt.Sprintf("%s = S.%s", quote(c.name), quote(c.name)))
		sel = append(sel, c.fromRaw()+" AS "+quote(c.name))
	}
	l := &warehouse.Load{Table: d.Table.ID, Rows: []warehouse.Row{{C: &schema.Change{Op: schema.OpUpdate, Table: d.Table.ID, Pos: d.Pos, After: row},
		Version: warehouse.Version(s.gen, d.Pos)}}}
	dir, err := os.MkdirTemp(s.cfg.SpoolDir, "cdcd-snowflake-")
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	defer os.RemoveAll(dir)
	var rnd [6]byte
	rand.Read(rnd[:])
	// a load id of its own (never skipped by load history); under the last
	// recorded batch, so that a crash's leftover is cleaned up like a merged load's
	load := fmt.Sprintf("%s-%d-fill-%x", s.tag, s.gen, rnd)
	file, size, err := s.encode(dir, load, batchKey(s.gen, s.seq), t, cols, l)
	if err != nil {
		return err
	}
	if err := s.upload(ctx, t, file, load, size, 1); err != nil {
		return err
	}
	q := fmt.Sprintf("UPDATE %s T SET %s FROM (SELECT %s FROM %s WHERE %s = ? LIMIT 1) S WHERE T.%s < ?", t.dest, strings.Join(set, ", "),
		strings.Join(sel, ", "), t.raw, quote(rawLoad), quote(s.meta.Version))
	res, err := s.db.ExecContext(ctx, q, load, warehouse.Version(s.gen, d.Pos))
	if err != nil {
		return classify(fmt.Errorf("fill the added columns of %s's rows from before them: %w", t.name, err))
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM `+t.raw+` WHERE `+quote(rawLoad)+` = ?`, load); err != nil {
		return classify(fmt.Errorf("clean up %s: %w", t.raw, err))
	}
	n, _ := res.RowsAffected()
	s.log.Info("added columns filled in the rows from before them", "table", t.name, "columns", len(cols), "rows", n)
	return nil
}

// loadID names one table's part of batch n: the pipeline's tag, generation and
// batch number, and a digest of the row versions and columns, so that a retried
// batch with the same rows has the same id (and file name) and one with other
// rows does not.
func (s *Sink) loadID(n uint64, i int, cols []sfCol, l *warehouse.Load) string {
	h := sha256.New()
	for _, c := range cols {
		io.WriteString(h, c.name+"\x00")
	}
	for _, r := range l.Rows {
		io.WriteString(h, r.Version+"\x00")
	}
	return fmt.Sprintf("%s-%d-%d-%d-%s", s.tag, s.gen, n, i, hex.EncodeToString(h.Sum(nil))[:16])
}

// encode writes l's rows as the Parquet file <load>.parquet in dir and returns
// its path and size.
func (s *Sink) encode(dir, load, batch string, t *sfTable, cols []sfCol, l *warehouse.Load) (string, int64, error) {
	meta := s.rawMeta()
	fields := make([]arrow.Field, 0, len(cols)+len(meta))
	for _, c := range cols {
		fields = append(fields, arrow.Field{Name: c.name, Type: c.typ.raw().arrowType(), Nullable: true})
	}
	for _, c := range meta {
		fields = append(fields, arrow.Field{Name: c.name, Type: c.typ.arrowType(), Nullable: true})
	}
	sch := arrow.NewSchema(fields, nil)
	path := filepath.Join(dir, load+".parquet")
	f, err := os.Create(path)
	if err != nil {
		return "", 0, fmt.Errorf("spool file: %w", err)
	}
	defer f.Close()
	cw := &countWriter{w: f}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(64<<10))
	fw, err := pqarrow.NewFileWriter(sch, cw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return "", 0, fmt.Errorf("parquet writer: %w", err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer rb.Release()
	flush := func() error {
		rec := rb.NewRecord()
		defer rec.Release()
		return fw.WriteBuffered(rec)
	}
	nc := len(cols)
	for i, r := range l.Rows {
		for j, c := range cols {
			v := r.Value(c.name)
			if v.Kind() == schema.KindArray && sinks.JSONNull(v) {
				// arrays are JSON arrays here
				s.nulls.Alter(t.name, c.name, "an array element that is the JSON value null reads as NULL in a JSON array")
			}
			if problem := appendValue(rb.Field(j), c.typ, v); problem != "" {
				if err := s.nulls.Handle(t.name, c.name, r.C, problem); err != nil {
					return "", 0, err
				}
				rb.Field(j).AppendNull()
			}
		}
		for j, v := range rawValues(r, load, batch) {
			if problem := appendValue(rb.Field(nc+j), meta[j].typ, v); problem != "" {
				return "", 0, fmt.Errorf("table %s: metadata column %s: %s", t.name, meta[j].name, problem)
			}
		}
		if (i+1)%8192 == 0 {
			if err := flush(); err != nil {
				return "", 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return "", 0, err
	}
	if err := fw.Close(); err != nil {
		return "", 0, fmt.Errorf("parquet writer: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	return path, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// DestinationExists implements pipeline.TableChecker.
func (s *Sink) DestinationExists(ctx context.Context, id schema.TableID) (bool, error) {
	t, err := s.readTable(ctx, id)
	return t != nil, err
}
