package bigquery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// bqTable is a destination table, as read from its metadata.
type bqTable struct {
	name   string // dataset.table, for messages
	table  string // the table id
	dest   string // quoted
	cols   []bqCol
	byName map[string]int
}

type bqCol struct {
	name string
	typ  colType
}

// rawMeta are the raw table's metadata columns, after the data columns. The
// raw table names its data columns c0, c1, … (any column name then makes a
// protobuf field name); the staging query gives them their names back.
func (s *Sink) rawMeta() []bqCol {
	return []bqCol{{s.meta.Version, tString}, {s.meta.Deleted, tBool}, {s.meta.Unchanged, tInt}, {s.meta.Op, tString}, {s.meta.SourceTS, tInt}}
}

// rawValues are a row's values of rawMeta's columns.
func rawValues(r warehouse.Row) []schema.Value {
	unchanged, ts := schema.Null(), schema.Null()
	if r.Unchanged > 0 {
		unchanged = schema.Int(int64(r.Unchanged))
	}
	if !r.C.CommitTS.IsZero() {
		ts = schema.Int(r.C.CommitTS.UnixMicro())
	}
	return []schema.Value{schema.String(r.Version), schema.Bool(r.Deleted()), unchanged, schema.String(r.C.Op.String()), ts}
}

// table returns the destination table of id, reading its metadata on first use
// in this run. A missing table is a permanent error: tables are created from
// their CreateTable delta, so one that is missing was dropped by someone.
func (s *Sink) table(ctx context.Context, id schema.TableID) (*bqTable, error) {
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
		return nil, &sinks.TableLostError{Table: id, Dest: s.cfg.Dataset + "." + s.cfg.DestName(id)}
	}
	s.mu.Lock()
	s.tables[id] = t
	s.mu.Unlock()
	return t, nil
}

// readTable reads a destination table's columns; nil if it does not exist.
func (s *Sink) readTable(ctx context.Context, id schema.TableID) (*bqTable, error) {
	name := s.cfg.DestName(id)
	md, err := s.bq.Dataset(s.cfg.Dataset).Table(name).Metadata(ctx)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("read the metadata of %s.%s: %w", s.cfg.Dataset, name, err))
	}
	t := &bqTable{name: s.cfg.Dataset + "." + name, table: name, dest: s.qualified(s.cfg.Dataset, name), byName: map[string]int{}}
	meta := map[string]bool{}
	for _, m := range s.meta.Names() {
		meta[m] = true
	}
	for _, f := range md.Schema {
		if meta[f.Name] {
			continue
		}
		t.byName[f.Name] = len(t.cols)
		t.cols = append(t.cols, bqCol{f.Name, fieldType(f)})
	}
	for _, m := range []string{s.meta.Version, s.meta.Deleted, s.meta.SyncedAt} {
		if !slices.ContainsFunc(md.Schema, func(f *bigquery.FieldSchema) bool { return f.Name == m }) {
			return nil, component.Permanent(fmt.Errorf("destination table %s has no %s column: it was not created by this sink (or with another metadata_prefix)", t.name, m))
		}
	}
	return t, nil
}

// Apply applies schema deltas before the rows that need them: CreateTable
// creates the table (or adds what an existing one lacks), AddColumn adds, a
// widening BigQuery allows in place (INT64 to NUMERIC, NUMERIC to BIGNUMERIC, …)
// is applied, RenameColumn renames. Drops keep the destination column and
// table. A primary-key change or another type change is a permanent error
// naming the table and column. Every load opens its write streams with the
// table's columns as they are then, so rows after a delta carry its columns.
func (s *Sink) Apply(ctx context.Context, deltas []schema.Delta) error {
	if s.bq == nil {
		return errors.New("bigquery sink: Apply before Open")
	}
	for _, d := range deltas {
		if err := s.names.Check(d.Table); err != nil {
			return err
		}
		if err := s.applyDelta(ctx, d); err != nil {
			return sinks.ForTable(d.Table.ID, err)
		}
	}
	return nil
}

// applyDelta creates or alters d's table and fills its added columns.
func (s *Sink) applyDelta(ctx context.Context, d schema.Delta) error {
	s.mu.Lock()
	delete(s.tables, d.Table.ID)
	s.mu.Unlock()
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return err
	}
	switch {
	case cur == nil && slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }):
	case cur == nil && d.From != 0:
		// a table replicated before: its rows are gone with it
		return &sinks.TableLostError{Table: d.Table.ID, Dest: s.cfg.Dataset + "." + s.cfg.DestName(d.Table.ID)}
	case cur == nil:
		err = s.createTable(ctx, d.Table)
	default:
		err = s.alterTable(ctx, cur, d)
	}
	if err != nil || cur == nil {
		return err
	}
	return s.fill(ctx, d)
}

// fill writes each added column's Existing value into the rows written before
// the delta (a version below d.Pos's): at the source they hold it, and the log
// carried nothing for them. The value takes the load path of every row (a raw
// table through the Storage Write API, then the column's conversion), and the
// UPDATE never touches a row written after the delta, so applying the delta
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
	var rnd [5]byte
	rand.Read(rnd[:])
	raw := fmt.Sprintf("%sfill_%s_%x_raw", s.cfg.MetadataPrefix, s.tag, rnd)
	from := s.qualified(s.cfg.StagingDataset, raw)
	var cols []bqCol
	var set []string
	for i, f := range row {
		j, ok := t.byName[f.Name]
		if !ok {
			return component.Permanent(fmt.Errorf("table %s: column %s to fill is not at the destination", t.name, f.Name))
		}
		c := t.cols[j]
		cols = append(cols, c)
		// a scalar subquery per column: the emulator has no UPDATE … FROM
		set = append(set, fmt.Sprintf("%s = (SELECT %s FROM %s LIMIT 1)", quote(c.name), c.typ.expr(fmt.Sprintf("c%d", i)), from))
	}
	l := &warehouse.Load{Table: d.Table.ID, Rows: []warehouse.Row{{C: &schema.Change{Op: schema.OpUpdate, Table: d.Table.ID, Pos: d.Pos, After: row}}}}
	defer s.drop(raw)
	if err := s.append(ctx, t, raw, cols, l); err != nil {
		return err
	}
	q := fmt.Sprintf("UPDATE %s SET %s WHERE %s < @version", t.dest, strings.Join(set, ", "), quote(s.meta.Version))
	st, err := s.query(ctx, "fill the added columns of "+t.name+"'s rows from before them", q,
		bigquery.QueryParameter{Name: "version", Value: warehouse.Version(s.gen, d.Pos)})
	if err != nil {
		return err
	}
	var n int64
	if qs, ok := st.Statistics.Details.(*bigquery.QueryStatistics); ok {
		n = qs.NumDMLAffectedRows
	}
	s.log.Info("added columns filled in the rows from before them", "table", t.name, "columns", len(cols), "rows", n)
	return nil
}

func (s *Sink) ddl(ctx context.Context, q string) error {
	if _, err := s.query(ctx, q, q); err != nil {
		return err
	}
	s.log.Info("schema change applied at destination", "statement", q)
	return nil
}

// ddlStep is one change of a destination table: the BigQuery DDL that says
// it (what a held schema change shows, sinks.DDLPlanner) and how the sink
// makes it (that statement, or the table metadata update it describes).
type ddlStep struct {
	sql string
	run func(ctx context.Context) error
}

// alterTable brings an existing destination table to d's shape: renames, added
// columns, widened types.
func (s *Sink) alterTable(ctx context.Context, cur *bqTable, d schema.Delta) error {
	steps, err := s.alterSteps(cur, d)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if err := st.run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// alterSteps are the changes that bring cur to d's shape, in order.
func (s *Sink) alterSteps(cur *bqTable, d schema.Delta) ([]ddlStep, error) {
	names := maps.Clone(cur.byName) // as they will be after the renames
	var steps []ddlStep
	for _, ch := range d.Changes {
		if ch.Op != schema.RenameColumn {
			continue
		}
		_, hasOld := names[ch.Old.Name]
		_, hasNew := names[ch.Column.Name]
		if hasOld && !hasNew {
			q := fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", cur.dest, quote(ch.Old.Name), quote(ch.Column.Name))
			steps = append(steps, ddlStep{q, func(ctx context.Context) error { return s.ddl(ctx, q) }})
			names[ch.Column.Name] = names[ch.Old.Name]
			delete(names, ch.Old.Name)
		}
	}
	var add []*bigquery.FieldSchema
	var adds []string
	for _, c := range d.Table.Columns {
		if _, ok := names[c.Name]; !ok {
			typ := destType(c.Type)
			add = append(add, &bigquery.FieldSchema{Name: c.Name, Type: typ.fieldType()})
			adds = append(adds, fmt.Sprintf("ADD COLUMN IF NOT EXISTS %s %s", quote(c.Name), typ))
		}
	}
	if len(add) > 0 {
		steps = append(steps, ddlStep{fmt.Sprintf("ALTER TABLE %s %s", cur.dest, strings.Join(adds, ", ")),
			func(ctx context.Context) error { return s.addColumns(ctx, cur, add) }})
	}
	for _, ch := range d.Changes {
		switch ch.Op {
		case schema.AlterColumnType:
			i, ok := names[ch.Column.Name]
			if !ok {
				continue
			}
			have, want := cur.cols[i].typ, destType(ch.Column.Type)
			if have == want {
				continue
			}
			if !widens(have, want) {
				return nil, component.Permanent(fmt.Errorf("table %s column %s: the source changed its type to %s; the destination column is %s and BigQuery cannot change it to %s in place (it widens INT64 to NUMERIC, BIGNUMERIC or FLOAT64 and NUMERIC to BIGNUMERIC): alter the destination column yourself, or resync the table",
					cur.name, ch.Column.Name, ch.Column.Type, have, want))
			}
			q := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE %s", cur.dest, quote(ch.Column.Name), want)
			steps = append(steps, ddlStep{q, func(ctx context.Context) error { return s.ddl(ctx, q) }})
		case schema.SetPrimaryKey:
			return nil, component.Permanent(fmt.Errorf("table %s: the source's primary key changed to (%s); the destination merges by key and cannot follow it: resync the table",
				cur.name, strings.Join(d.Table.PrimaryKey, ", ")))
		}
	}
	return steps, nil
}

// addColumns adds fields to cur, NULLABLE, through the table's metadata
// (guarded by its ETag, so a concurrent change is not lost).
func (s *Sink) addColumns(ctx context.Context, cur *bqTable, add []*bigquery.FieldSchema) error {
	tbl := s.bq.Dataset(s.cfg.Dataset).Table(cur.table)
	md, err := tbl.Metadata(ctx)
	if err != nil {
		return classify(fmt.Errorf("read the metadata of %s: %w", cur.name, err))
	}
	sch := slices.Clone(md.Schema)
	for _, f := range add {
		if !slices.ContainsFunc(sch, func(g *bigquery.FieldSchema) bool { return g.Name == f.Name }) {
			sch = append(sch, f)
		}
	}
	if _, err := tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: sch}, md.ETag); err != nil {
		return classify(fmt.Errorf("add columns to %s: %w", cur.name, err))
	}
	for _, f := range add {
		s.log.Info("schema change applied at destination", "table", cur.name, "added_column", f.Name, "type", f.Type)
	}
	return nil
}

// createTable creates the destination table with the source key (a NOT
// ENFORCED primary key, and clustering unless cluster: false) and the metadata
// columns, partitioned by partition_field when the table has it.
func (s *Sink) createTable(ctx context.Context, t schema.Table) error {
	md, _, err := s.createPlan(t, true)
	if err != nil {
		return err
	}
	name := s.cfg.DestName(t.ID)
	err = s.bq.Dataset(s.cfg.Dataset).Table(name).Create(ctx, md)
	if isStatus(err, http.StatusConflict) {
		// created meanwhile (another run): bring it to t's shape
		cur, err := s.readTable(ctx, t.ID)
		if err != nil || cur == nil {
			return err
		}
		return s.alterTable(ctx, cur, schema.Delta{Table: t})
	}
	if err != nil {
		return classify(fmt.Errorf("create destination table %s.%s for %s: %w", s.cfg.Dataset, name, t.ID, err))
	}
	s.log.Info("destination table created", "table", name, "source", t.ID.String())
	return nil
}

// rawColumns are the raw table's columns for a load of cols: c0… in their wire
// types, then the metadata columns.
func (s *Sink) rawColumns(cols []bqCol) []bqCol {
	out := make([]bqCol, 0, len(cols)+5)
	for i, c := range cols {
		out = append(out, bqCol{fmt.Sprintf("c%d", i), c.typ.wire()})
	}
	return append(out, s.rawMeta()...)
}

// append creates the raw table and appends l's rows to it through the Storage
// Write API: pending streams of one append request each, finalized and then
// committed in one BatchCommitWriteStreams, so the rows appear all at once or
// not at all.
func (s *Sink) append(ctx context.Context, t *bqTable, raw string, cols []bqCol, l *warehouse.Load) error {
	rc := s.rawColumns(cols)
	md := &bigquery.TableMetadata{ExpirationTime: time.Now().Add(time.Duration(s.cfg.StagingExpiration)),
		Description: "cdcd: one batch's rows of " + t.name + " before their merge"}
	desc := &descriptorpb.DescriptorProto{Name: proto.String("row")}
	for i, c := range rc {
		md.Schema = append(md.Schema, &bigquery.FieldSchema{Name: c.name, Type: c.typ.fieldType()})
		desc.Field = append(desc.Field, &descriptorpb.FieldDescriptorProto{Name: proto.String(c.name), Number: proto.Int32(int32(i + 1)),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: c.typ.protoType().Enum()})
	}
	tbl := s.bq.Dataset(s.cfg.StagingDataset).Table(raw)
	if err := tbl.Create(ctx, md); err != nil {
		return classify(fmt.Errorf("create raw table %s.%s: %w", s.cfg.StagingDataset, raw, err))
	}
	parent := managedwriter.TableParentFromParts(s.cfg.Project, s.cfg.StagingDataset, raw)
	var streams []string
	var chunk [][]byte
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		name, err := s.appendStream(ctx, parent, desc, chunk)
		if err != nil {
			return classify(fmt.Errorf("append %s's rows to %s.%s: %w", t.name, s.cfg.StagingDataset, raw, err))
		}
		s.m.bytes.WithLabelValues(s.pipeline).Add(float64(size))
		streams = append(streams, name)
		chunk, size = nil, 0
		return nil
	}
	meta := s.rawMeta()
	limit := int(s.cfg.RequestBytes) - 16<<10 // room for the request's own fields
	nc := len(cols)
	for _, r := range l.Rows {
		var b []byte
		for j, c := range cols {
			var problem string
			if v := r.Value(c.name); v.Kind() == schema.KindArray && sinks.JSONNull(v) {
				// arrays are JSON arrays here
				s.nulls.Alter(t.name, c.name, "an array element that is the JSON value null reads as NULL in a JSON array")
			}
			if b, problem = appendValue(b, protowire.Number(j+1), c.typ, r.Value(c.name), limit); problem != "" {
				if err := s.nulls.Handle(t.name, c.name, r.C, problem); err != nil {
					return err
				}
				// the field stays absent: NULL
			}
		}
		for j, v := range rawValues(r) {
			var problem string
			if b, problem = appendValue(b, protowire.Number(nc+j+1), meta[j].typ, v, limit); problem != "" {
				return fmt.Errorf("table %s: metadata column %s: %s", t.name, meta[j].name, problem)
			}
		}
		if len(b) > limit {
			return component.Permanent(fmt.Errorf("table %s: the row at position %s is %d bytes, more than one Storage Write API request (request_bytes) takes", t.name, r.C.Pos, len(b)))
		}
		if size+len(b) > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, b)
		size += len(b)
	}
	if err := flush(); err != nil {
		return err
	}
	resp, err := s.mw.BatchCommitWriteStreams(ctx, &storagepb.BatchCommitWriteStreamsRequest{Parent: parent, WriteStreams: streams})
	if err == nil && len(resp.GetStreamErrors()) > 0 {
		se := resp.GetStreamErrors()[0]
		err = fmt.Errorf("%s: %s", se.GetCode(), se.GetErrorMessage())
	}
	if err != nil {
		return classify(fmt.Errorf("commit %s's rows to %s.%s: %w", t.name, s.cfg.StagingDataset, raw, err))
	}
	return nil
}

// appendStream writes rows through a new pending stream in one append, then
// finalizes the stream and returns its name. One append per stream keeps a
// request's rows on the stream it was sent to, wherever the connection goes.
func (s *Sink) appendStream(ctx context.Context, parent string, desc *descriptorpb.DescriptorProto, rows [][]byte) (string, error) {
	ms, err := s.mw.NewManagedStream(ctx, managedwriter.WithDestinationTable(parent), managedwriter.WithType(managedwriter.PendingStream),
		managedwriter.WithSchemaDescriptor(desc))
	if err != nil {
		return "", err
	}
	defer ms.Close()
	res, err := ms.AppendRows(ctx, rows, managedwriter.WithOffset(0))
	if err != nil {
		return "", err
	}
	if _, err := res.GetResult(ctx); err != nil {
		return "", err
	}
	if _, err := ms.Finalize(ctx); err != nil {
		return "", err
	}
	return ms.StreamName(), nil
}

// stageSQL creates the staging table of a load: the raw rows in the
// destination's column types, with their sync time.
func (s *Sink) stageSQL(t *bqTable, raw, stage string, cols []bqCol) string {
	sel := make([]string, 0, len(cols)+6)
	for i, c := range cols {
		sel = append(sel, c.typ.expr(fmt.Sprintf("c%d", i))+" AS "+quote(c.name))
	}
	m := s.meta
	sel = append(sel, quote(m.Version), quote(m.Deleted), quote(m.Unchanged), "CURRENT_TIMESTAMP() AS "+quote(m.SyncedAt))
	if s.cfg.IncludeOp {
		sel = append(sel, quote(m.Op))
	}
	if s.cfg.IncludeSourceTS {
		sel = append(sel, "TIMESTAMP_MICROS("+quote(m.SourceTS)+") AS "+quote(m.SourceTS))
	}
	return fmt.Sprintf("CREATE TABLE %s OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL %d SECOND)) AS SELECT %s FROM %s",
		s.qualified(s.cfg.StagingDataset, stage), int64(time.Duration(s.cfg.StagingExpiration).Seconds()), strings.Join(sel, ", "), s.qualified(s.cfg.StagingDataset, raw))
}

// mergeSQL is the MERGE of one load from its staging table (one row per key).
func (t *bqTable) mergeSQL(s *Sink, stage string, cols []bqCol, l *warehouse.Load) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	var keys []string
	for _, f := range l.Rows[0].C.Key {
		keys = append(keys, f.Name)
	}
	return warehouse.Merge{
		Quote: quote, Target: t.dest, Source: stage, Columns: names, Key: keys, Meta: s.meta,
		UnchangedSets: l.UnchangedSets, Hard: s.cfg.DeleteMode == "hard",
		IncludeOp: s.cfg.IncludeOp, IncludeTS: s.cfg.IncludeSourceTS,
	}.SQL()
}

// DestinationExists implements pipeline.TableChecker.
func (s *Sink) DestinationExists(ctx context.Context, id schema.TableID) (bool, error) {
	t, err := s.readTable(ctx, id)
	return t != nil, err
}

// createPlan is the metadata createTable creates t's destination table with,
// and the CREATE TABLE statement that says the same (what a held schema
// change shows). logged: say when partition_field does not apply.
func (s *Sink) createPlan(t schema.Table, logged bool) (*bigquery.TableMetadata, string, error) {
	if len(t.PrimaryKey) == 0 {
		return nil, "", component.Permanent(fmt.Errorf("table %s has no primary key: the BigQuery sink merges by key, so it needs one at the source", t.ID))
	}
	md := &bigquery.TableMetadata{
		Description:      fmt.Sprintf("cdcd: %s", t.ID),
		TableConstraints: &bigquery.TableConstraints{PrimaryKey: &bigquery.PrimaryKey{Columns: t.PrimaryKey}},
	}
	types := map[string]colType{}
	var cols []string
	field := func(name string, typ colType, required bool) {
		md.Schema = append(md.Schema, &bigquery.FieldSchema{Name: name, Type: typ.fieldType(), Required: required})
		types[name] = typ
		col := quote(name) + " " + string(typ)
		if required {
			col += " NOT NULL"
		}
		cols = append(cols, col)
	}
	for _, c := range t.Columns {
		field(c.Name, destType(c.Type), slices.Contains(t.PrimaryKey, c.Name))
	}
	field(s.meta.Version, tString, true)
	field(s.meta.Deleted, tBool, true)
	field(s.meta.SyncedAt, tTimestamp, false)
	if s.cfg.IncludeOp {
		field(s.meta.Op, tString, false)
	}
	if s.cfg.IncludeSourceTS {
		field(s.meta.SourceTS, tTimestamp, false)
	}
	keys := make([]string, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		keys[i] = quote(k)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (%s, PRIMARY KEY (%s) NOT ENFORCED)", s.qualified(s.cfg.Dataset, s.cfg.DestName(t.ID)), strings.Join(cols, ", "), strings.Join(keys, ", "))
	if f := s.cfg.PartitionField; f != "" {
		switch types[f] {
		case tTimestamp, tDate, tDateTime:
			md.TimePartitioning = &bigquery.TimePartitioning{Field: f, Type: bigquery.TimePartitioningType(s.cfg.PartitionGranularity)}
			trunc := map[colType]string{tTimestamp: "TIMESTAMP_TRUNC", tDate: "DATE_TRUNC", tDateTime: "DATETIME_TRUNC"}[types[f]]
			fmt.Fprintf(&b, " PARTITION BY %s(%s, %s)", trunc, quote(f), s.cfg.PartitionGranularity)
		default:
			if logged {
				s.log.Info("table not partitioned: it has no TIMESTAMP, DATE or DATETIME column named like partition_field", "table", s.cfg.DestName(t.ID), "partition_field", f)
			}
		}
	}
	if *s.cfg.Cluster {
		var ck []string
		for _, k := range t.PrimaryKey {
			switch types[k] {
			case tFloat, tJSON:
				continue // not clusterable
			}
			if ck = append(ck, k); len(ck) == 4 {
				break
			}
		}
		if len(ck) > 0 {
			md.Clustering = &bigquery.Clustering{Fields: ck}
			q := make([]string, len(ck))
			for i, k := range ck {
				q[i] = quote(k)
			}
			fmt.Fprintf(&b, " CLUSTER BY %s", strings.Join(q, ", "))
		}
	}
	return md, b.String(), nil
}

// PlanDDL implements sinks.DDLPlanner: the statements that bring d's
// destination table to its shape, from the steps Apply takes (an added
// column, which Apply makes through the table's metadata, shows as the ALTER
// TABLE … ADD COLUMN it amounts to). It only reads.
func (s *Sink) PlanDDL(ctx context.Context, d schema.Delta) ([]string, error) {
	if s.bq == nil {
		return nil, errors.New("bigquery sink: PlanDDL before Open")
	}
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		if slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }) {
			return nil, nil
		}
		_, q, err := s.createPlan(d.Table, false)
		if err != nil {
			return nil, err
		}
		return []string{q}, nil
	}
	steps, err := s.alterSteps(cur, d)
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.sql
	}
	return out, err
}

var _ sinks.DDLPlanner = (*Sink)(nil)
