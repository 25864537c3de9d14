package bigquery

import (
	"context"
	"errors"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func items(n int64) []schema.Change {
	var cs []schema.Change
	for i := range n {
		cs = append(cs, schema.Change{Op: schema.OpInsert, Table: sinktest.Items.ID, Version: 1, Pos: offsets.AppendUint(nil, uint64(i+1)),
			Key:   schema.Row{{Name: "id", Value: schema.Int(i)}},
			After: schema.Row{{Name: "id", Value: schema.Int(i)}, {Name: "v", Value: schema.Int(10 * i)}, {Name: "doc", Value: schema.String("x")}}})
	}
	return cs
}

func create(t schema.Table) []schema.Delta {
	return []schema.Delta{{Table: t, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}
}

// TestCrashAfterLoad: a Write that committed a table's rows to its raw table
// and staged them, and died before the MERGE; the restarted pipeline writes the
// same batch again, which appends and merges it in full.
func TestCrashAfterLoad(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	crashing := New(h.cfg, sinks.Deps{Pipeline: "p"}, WithFault(func(step string) error {
		if step == "after_load" {
			return errors.New("crash after load")
		}
		return nil
	}))
	require.NoError(t, crashing.Open(ctx))
	require.NoError(t, crashing.Apply(ctx, create(sinktest.Items)))
	cs := items(3)
	b := &schema.Batch{Changes: cs, Checkpoint: cs[2].Pos}
	require.ErrorContains(t, crashing.Write(ctx, b), "crash after load")
	require.NoError(t, crashing.Close(ctx))
	require.Empty(t, h.State(t, sinktest.Items), "nothing was merged")

	s := New(h.cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Write(ctx, b))
	require.Len(t, h.State(t, sinktest.Items), 3)
	require.NoError(t, s.Write(ctx, b), "a replay after the batch was recorded")
	require.Len(t, h.State(t, sinktest.Items), 3)

	// the loads' raw and staging tables are gone, or expire by themselves
	c := h.client(t)
	defer c.Close()
	it := c.Dataset(h.cfg.Dataset).Tables(ctx)
	for {
		tbl, err := it.Next()
		if err != nil {
			break
		}
		md, err := tbl.Metadata(ctx)
		require.NoError(t, err)
		if tbl.TableID != "items" && tbl.TableID != "_cdc_sink_state" {
			require.False(t, md.ExpirationTime.IsZero(), "left-over table %s must expire", tbl.TableID)
		}
	}
}

// TestSchemaChangeStatements checks the schema changes the sink makes against
// the emulator, which adds a column to a table's metadata and not its storage
// (so sinktest's add_column, which then writes, runs only live): the column
// is added once, NULLABLE, in its BigQuery type; a type change BigQuery cannot
// make in place and a key change are permanent errors naming table and column.
func TestSchemaChangeStatements(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.cfg
	cfg.PartitionField, cfg.PartitionGranularity = "_cdc_synced_at", "MONTH"
	s := New(cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Apply(ctx, create(sinktest.Items)))

	v2 := sinktest.Items.Clone()
	v2.Version = 2
	added := schema.Column{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true}
	v2.Columns = append(v2.Columns, added)
	d := schema.Delta{Table: v2, From: 1, Changes: []schema.ColumnChange{{Op: schema.AddColumn, Column: added}}}
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}))
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}), "applying a delta again is a no-op")
	c := h.client(t)
	defer c.Close()
	md, err := c.Dataset(h.cfg.Dataset).Table("items").Metadata(ctx)
	require.NoError(t, err)
	var found []*bigquery.FieldSchema
	for _, f := range md.Schema {
		if f.Name == "amount" {
			found = append(found, f)
		}
	}
	require.Len(t, found, 1)
	require.Equal(t, bigquery.NumericFieldType, found[0].Type)
	require.False(t, found[0].Required)
	require.Equal(t, []string{"id"}, md.Clustering.Fields, "clustered by the key")
	require.NotNil(t, md.TimePartitioning)
	require.Equal(t, "_cdc_synced_at", md.TimePartitioning.Field)
	require.Equal(t, bigquery.MonthPartitioningType, md.TimePartitioning.Type)

	v3 := v2.Clone()
	v3.Version = 3
	v3.Columns[1].Type = schema.Type{Kind: schema.KindString, Name: "text"}
	err = s.Apply(ctx, []schema.Delta{{Table: v3, From: 2, Changes: []schema.ColumnChange{{Op: schema.AlterColumnType, Column: v3.Columns[1], Old: &v2.Columns[1]}}}})
	require.ErrorContains(t, err, "table "+h.cfg.Dataset+".items column v: the source changed its type to text")
	require.True(t, component.IsPermanent(err))

	v4 := v2.Clone()
	v4.Version = 4
	v4.PrimaryKey = []string{"id", "v"}
	err = s.Apply(ctx, []schema.Delta{{Table: v4, From: 2, Changes: []schema.ColumnChange{{Op: schema.SetPrimaryKey}}}})
	require.ErrorContains(t, err, "primary key changed to (id, v)")
	require.True(t, component.IsPermanent(err))

	require.NoError(t, c.Dataset(h.cfg.Dataset).Table("items").Delete(ctx))
	s2 := New(h.cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s2.Open(ctx))
	defer s2.Close(ctx)
	err = s2.Write(ctx, &schema.Batch{Changes: items(1)})
	var lost *sinks.TableLostError
	require.ErrorAs(t, err, &lost)
	require.Equal(t, "public.items", lost.Table.String())
	require.True(t, component.IsPermanent(err))
}

// TestPlanDDL: what a held schema change shows is what Apply does, in
// BigQuery's DDL, and planning changes nothing: a new table's CREATE TABLE
// (key, metadata columns, partitioning, clustering) describes the table
// Apply creates; an existing table's rename, added column and widened type
// are the ALTER TABLE statements of the steps Apply takes; a change Apply
// refuses is refused when planned.
func TestPlanDDL(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.cfg
	cfg.PartitionField, cfg.PartitionGranularity = "_cdc_synced_at", "DAY"
	s := New(cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	plan, err := s.PlanDDL(ctx, create(sinktest.Items)[0])
	require.NoError(t, err)
	ds := "`" + h.cfg.Project + "`.`" + h.cfg.Dataset + "`.`items`"
	require.Equal(t, []string{"CREATE TABLE " + ds + " (`id` INT64 NOT NULL, `v` INT64, `doc` STRING, `_cdc_version` STRING NOT NULL, `_cdc_deleted` BOOL NOT NULL, `_cdc_synced_at` TIMESTAMP, " +
		"PRIMARY KEY (`id`) NOT ENFORCED) PARTITION BY TIMESTAMP_TRUNC(`_cdc_synced_at`, DAY) CLUSTER BY `id`"}, plan)
	exists, err := s.DestinationExists(ctx, sinktest.Items.ID)
	require.NoError(t, err)
	require.False(t, exists, "planning created nothing")

	// the table Apply creates is the one the statement describes
	require.NoError(t, s.Apply(ctx, create(sinktest.Items)))
	c := h.client(t)
	defer c.Close()
	md, err := c.Dataset(h.cfg.Dataset).Table("items").Metadata(ctx)
	require.NoError(t, err)
	var cols []string
	for _, f := range md.Schema {
		col := "`" + f.Name + "`"
		if f.Required {
			col += " NOT NULL"
		}
		cols = append(cols, col)
	}
	require.Equal(t, []string{"`id` NOT NULL", "`v`", "`doc`", "`_cdc_version` NOT NULL", "`_cdc_deleted` NOT NULL", "`_cdc_synced_at`"}, cols)
	require.Equal(t, []string{"id"}, md.Clustering.Fields)
	require.Equal(t, bigquery.DayPartitioningType, md.TimePartitioning.Type)

	v2 := sinktest.Items.Clone()
	v2.Version = 2
	v2.Columns[2].Name = "body" // doc renamed
	v2.Columns[1].Type = schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 30, Scale: 2}
	added := schema.Column{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true}
	v2.Columns = append(v2.Columns, added)
	d := schema.Delta{Table: v2, From: 1, Changes: []schema.ColumnChange{
		{Op: schema.RenameColumn, Column: v2.Columns[2], Old: &sinktest.Items.Columns[2]},
		{Op: schema.AlterColumnType, Column: v2.Columns[1], Old: &sinktest.Items.Columns[1]},
		{Op: schema.AddColumn, Column: added}}}
	plan, err = s.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.Equal(t, []string{
		"ALTER TABLE " + ds + " RENAME COLUMN `doc` TO `body`",
		"ALTER TABLE " + ds + " ADD COLUMN IF NOT EXISTS `amount` NUMERIC",
		"ALTER TABLE " + ds + " ALTER COLUMN `v` SET DATA TYPE NUMERIC",
	}, plan)
	again, err := s.PlanDDL(ctx, d)
	require.NoError(t, err)
	require.Equal(t, plan, again, "planning ran nothing")

	v3 := sinktest.Items.Clone()
	v3.Version = 3
	v3.Columns[1].Type = schema.Type{Kind: schema.KindString, Name: "text"}
	_, err = s.PlanDDL(ctx, schema.Delta{Table: v3, From: 1, Changes: []schema.ColumnChange{{Op: schema.AlterColumnType, Column: v3.Columns[1], Old: &sinktest.Items.Columns[1]}}})
	require.ErrorContains(t, err, "BigQuery cannot change it to STRING in place")
}

// TestFillOlderRows: an added column's Existing value reaches the rows written
// before its delta, of every type of the matrix, and never a row written after
// it, however often the delta is applied. The emulator adds no column to a
// table's storage, so the table has the columns from the start and the delta
// finds them there (the live run of sinktest covers ADD COLUMN with the fill).
func TestFillOlderRows(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	s := New(h.cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	full := sinktest.TypesTable()
	require.NoError(t, s.Apply(ctx, create(full)))
	pos := func(n uint64) offsets.Position { return offsets.AppendUint(nil, n) }
	id := func(n int64) schema.Row { return schema.Row{{Name: "id", Value: schema.Int(n)}} }
	older := []schema.Change{
		{Op: schema.OpInsert, Table: full.ID, Version: 1, Pos: pos(1), Key: id(1), After: id(1)},
		{Op: schema.OpInsert, Table: full.ID, Version: 1, Pos: pos(2), Key: id(2), After: id(2)},
	}
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: older, Checkpoint: pos(2)}))

	v2 := full.Clone()
	v2.Version = 2
	d := schema.Delta{Table: v2, From: 1, Pos: pos(3)}
	want := id(1)
	for i, c := range sinktest.TypeCases {
		col := v2.Columns[i+1]
		col.Existing = &schema.Existing{Value: c.Values[0]}
		v2.Columns[i+1] = col
		d.Changes = append(d.Changes, schema.ColumnChange{Op: schema.AddColumn, Column: col})
		want = append(want, schema.Field{Name: c.Name, Value: c.Values[0]})
	}
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}))
	// after the delta, row 2 carries its own values: NULL
	after := id(2)
	for _, c := range sinktest.TypeCases {
		after = append(after, schema.Field{Name: c.Name, Value: schema.Null()})
	}
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{{Op: schema.OpUpdate, Table: full.ID, Version: 2, Pos: pos(4), Key: id(2), After: after}}, Checkpoint: pos(4)}))
	require.NoError(t, s.Apply(ctx, []schema.Delta{d}), "a replay of the delta")

	got := h.State(t, v2)
	require.Len(t, got, 2)
	for _, f := range want {
		gv, _ := got[string(id(1).AppendJSON(nil))].Row.Get(f.Name)
		require.True(t, sinktest.Equal(f.Value, gv), "type %s: filled %s, read back %s", f.Name, f.Value.AppendJSON(nil), gv.AppendJSON(nil))
	}
	for _, f := range got[string(id(2).AppendJSON(nil))].Row[1:] {
		require.True(t, f.Value.IsNull(), "row 2 was written after the delta: %s must stay NULL, is %s", f.Name, f.Value.AppendJSON(nil))
	}
}

// TestOnUnrepresentableNull: with on_unrepresentable: null a value the column
// cannot hold is stored as NULL and counted; by default the Write fails with
// the table, column and position.
func TestOnUnrepresentableNull(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tbl := schema.Table{ID: schema.TableID{Namespace: "public", Name: "prices"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
		{Name: "p", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 10, Scale: 2}, Nullable: true}}}
	row := func(pos uint64, id int64, p string) schema.Change {
		r := schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "p", Value: schema.MustDecimal(p)}}
		return schema.Change{Op: schema.OpInsert, Table: tbl.ID, Version: 1, Pos: offsets.AppendUint(nil, pos), Key: r[:1], After: r}
	}
	s := New(h.cfg, sinks.Deps{Pipeline: "p"})
	require.NoError(t, s.Open(ctx))
	require.NoError(t, s.Apply(ctx, create(tbl)))
	err := s.Write(ctx, &schema.Batch{Changes: []schema.Change{row(1, 1, "1.50"), row(2, 2, "NaN")}})
	require.ErrorContains(t, err, "table "+h.cfg.Dataset+".prices column p at position")
	require.ErrorContains(t, err, "NUMERIC has no NaN; set on_unrepresentable: null")
	require.True(t, component.IsPermanent(err))
	require.NoError(t, s.Close(ctx))

	cfg := h.cfg
	cfg.OnUnrepresentable = "null"
	reg := prometheus.NewRegistry()
	s = New(cfg, sinks.Deps{Pipeline: "p", Metrics: reg})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{row(1, 1, "1.50"), row(2, 2, "NaN")}}))
	got := h.State(t, tbl)
	require.Len(t, got, 2)
	p, _ := got[`{"id":2}`].Row.Get("p")
	require.True(t, p.IsNull())
	p, _ = got[`{"id":1}`].Row.Get("p")
	require.Equal(t, "1.50", p.Text())
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.nulled.WithLabelValues("p", h.cfg.Dataset+".prices", "p")))
}

// TestLoadOverSeveralStreams: a load larger than one append request goes
// through several pending streams, committed together.
func TestLoadOverSeveralStreams(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := h.cfg
	cfg.RequestBytes = 64 << 10
	reg := prometheus.NewRegistry()
	s := New(cfg, sinks.Deps{Pipeline: "p", Metrics: reg})
	require.NoError(t, s.Open(ctx))
	defer s.Close(ctx)
	require.NoError(t, s.Apply(ctx, create(sinktest.Items)))
	cs := items(300)
	doc := strings.Repeat("d", 1024)
	for i := range cs {
		cs[i].After[2].Value = schema.String(doc)
	}
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: cs}))
	got := h.State(t, sinktest.Items)
	require.Equal(t, 300, len(got), "the rows of every stream")
	require.Greater(t, testutil.ToFloat64(s.m.bytes.WithLabelValues("p")), float64(300*1024))
}
