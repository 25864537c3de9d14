package warehouse

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestVersionOrdersLikePositions(t *testing.T) {
	ps := []offsets.Position{
		offsets.AppendUint(nil, 1), offsets.AppendUint(nil, 255), offsets.AppendUint(nil, 256),
		offsets.AppendUint(offsets.AppendUint(nil, 256), 1), offsets.AppendUint(nil, 1<<40),
	}
	for _, gen := range []uint64{1, 2} {
		for i := range ps {
			for j := range ps {
				want := ps[i].Compare(ps[j])
				got := strings.Compare(Version(gen, ps[i]), Version(gen, ps[j]))
				require.Equal(t, want, got, "positions %s and %s", ps[i], ps[j])
			}
		}
	}
	require.Less(t, Version(1, ps[4]), Version(2, ps[0]), "a newer generation outranks every older position")
}

func change(op schema.Op, table string, id int64, pos uint64, after ...schema.Field) schema.Change {
	c := schema.Change{Op: op, Table: schema.TableID{Namespace: "public", Name: table}, Pos: offsets.AppendUint(nil, pos),
		Key: schema.Row{{Name: "id", Value: schema.Int(id)}}}
	if op != schema.OpDelete && op != schema.OpTruncate {
		c.After = append(schema.Row{{Name: "id", Value: schema.Int(id)}}, after...)
	}
	return c
}

func TestPlan(t *testing.T) {
	doc := func(s string) schema.Field { return schema.Field{Name: "doc", Value: schema.String(s)} }
	unchanged := schema.Field{Name: "doc", Value: schema.Unchanged()}
	changes := []schema.Change{
		change(schema.OpInsert, "a", 1, 1, doc("x")),
		change(schema.OpInsert, "b", 1, 2, doc("y")),
		change(schema.OpUpdate, "a", 1, 3, unchanged), // the insert before it was written: the marker stays
		change(schema.OpUpdate, "a", 2, 4, unchanged), // the same set of unchanged columns
		change(schema.OpTruncate, "b", 0, 5),          // drops b's insert
		change(schema.OpDelete, "b", 7, 6),            // a delete after the truncate
		change(schema.OpUpdate, "a", 3, 7, doc("")),
	}
	loads, last := Plan(changes, offsets.AppendUint(nil, 1), 3) // position 1 was written
	require.Equal(t, offsets.Position(offsets.AppendUint(nil, 7)), last)
	require.Len(t, loads, 2)
	a, b := loads[0], loads[1]
	require.Equal(t, "a", a.Table.Name)
	require.Len(t, a.Rows, 3)
	require.Equal(t, Version(3, offsets.AppendUint(nil, 3)), a.Rows[0].Version)
	require.Equal(t, 1, a.Rows[0].Unchanged)
	require.Equal(t, schema.Null(), a.Rows[0].Value("doc"), "an unchanged value is loaded as NULL and skipped by its MERGE branch")
	require.Equal(t, 1, a.Rows[1].Unchanged, "one set for both")
	require.Equal(t, 0, a.Rows[2].Unchanged)
	require.Equal(t, schema.String(""), a.Rows[2].Value("doc"))
	require.Equal(t, [][]string{{"doc"}}, a.UnchangedSets)
	require.Equal(t, Version(3, offsets.AppendUint(nil, 5)), b.Truncate)
	require.Len(t, b.Rows, 1)
	require.True(t, b.Rows[0].Deleted())
	require.Equal(t, schema.Int(7), b.Rows[0].Value("id"), "a delete carries its key")

	loads, last = Plan(changes, offsets.AppendUint(nil, 7), 3)
	require.Nil(t, loads, "everything was written")
	require.Nil(t, last)
}

func TestMergeSQL(t *testing.T) {
	q := func(s string) string { return `"` + s + `"` }
	m := Merge{Quote: q, Target: `"db"."t"`, Source: `"db"."s"`, Columns: []string{"id", "a", "b"}, Key: []string{"id"},
		Meta: sinks.Common{MetadataPrefix: "_cdc_"}.Meta(), UnchangedSets: [][]string{{"b"}}}
	require.Equal(t, `MERGE INTO "db"."t" T USING "db"."s" S ON T."id" = S."id"`+
		` WHEN MATCHED AND S."_cdc_deleted" AND S."_cdc_version" > T."_cdc_version" THEN UPDATE SET "_cdc_deleted" = S."_cdc_deleted", "_cdc_version" = S."_cdc_version", "_cdc_synced_at" = S."_cdc_synced_at"`+
		` WHEN MATCHED AND S."_cdc_unchanged" = 1 AND S."_cdc_version" > T."_cdc_version" THEN UPDATE SET "id" = S."id", "a" = S."a", "_cdc_deleted" = S."_cdc_deleted", "_cdc_version" = S."_cdc_version", "_cdc_synced_at" = S."_cdc_synced_at"`+
		` WHEN MATCHED AND NOT S."_cdc_deleted" AND S."_cdc_unchanged" IS NULL AND S."_cdc_version" > T."_cdc_version" THEN UPDATE SET "id" = S."id", "a" = S."a", "b" = S."b", "_cdc_deleted" = S."_cdc_deleted", "_cdc_version" = S."_cdc_version", "_cdc_synced_at" = S."_cdc_synced_at"`+
		` WHEN NOT MATCHED THEN INSERT ("id", "a", "b", "_cdc_deleted", "_cdc_version", "_cdc_synced_at") VALUES (S."id", S."a", S."b", S."_cdc_deleted", S."_cdc_version", S."_cdc_synced_at")`,
		m.SQL())
	m.Hard, m.IncludeOp, m.UnchangedSets = true, true, nil
	got := m.SQL()
	require.Contains(t, got, `WHEN MATCHED AND S."_cdc_deleted" AND S."_cdc_version" > T."_cdc_version" THEN DELETE`)
	require.Contains(t, got, `WHEN NOT MATCHED AND NOT S."_cdc_deleted" THEN INSERT`, "hard deletes insert no tombstone")
	require.Contains(t, got, `"_cdc_op" = S."_cdc_op"`)
	require.Contains(t, got, `WHEN MATCHED AND NOT S."_cdc_deleted" AND S."_cdc_version" > T."_cdc_version" THEN UPDATE`, "without unchanged sets the plain clause needs no unchanged test")
}

// TestMergeAliasesNeverNameAColumn: columns named t, s or T_ (names are
// case-insensitive in BigQuery, and in Snowflake for an unquoted alias) get
// aliases of their own; BigQuery took SET `t` = … for the whole target row.
func TestMergeAliasesNeverNameAColumn(t *testing.T) {
	q := func(s string) string { return "`" + s + "`" }
	m := Merge{Quote: q, Target: "`d`.`x`", Source: "`d`.`y`", Columns: []string{"id", "t", "s", "T_"}, Key: []string{"id"},
		Meta: sinks.Common{MetadataPrefix: "_cdc_"}.Meta()}
	got := m.SQL()
	require.Contains(t, got, "MERGE INTO `d`.`x` T__ USING `d`.`y` S_ ON T__.`id` = S_.`id`")
	require.Contains(t, got, "`t` = S_.`t`, `s` = S_.`s`, `T_` = S_.`T_`")
	require.NotContains(t, got, " T.")
	require.NotContains(t, got, " S.")
}

func TestCarriedAndUnrepresentable(t *testing.T) {
	tbl := schema.TableID{Namespace: "public", Name: "t"}
	row := schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "extra", Value: schema.String("x")}}
	loads, _ := Plan([]schema.Change{
		{Op: schema.OpInsert, Table: tbl, Pos: offsets.AppendUint(nil, 1), Key: row[:1], After: row},
		{Op: schema.OpDelete, Table: tbl, Pos: offsets.AppendUint(nil, 2), Key: schema.Row{{Name: "id", Value: schema.Int(2)}}},
	}, nil, 1)
	require.Len(t, loads, 1)
	self := func(c string) string { return c }
	carried, err := Carried(&loads[0], "db.t", []string{"other", "extra", "id"}, self)
	require.NoError(t, err)
	require.Equal(t, []string{"extra", "id"}, carried, "the carried columns, in the table's order")
	_, err = Carried(&loads[0], "db.t", []string{"id"}, self)
	require.ErrorContains(t, err, "table db.t has no column extra, which changes at position")
	require.True(t, component.IsPermanent(err))

	reg := prometheus.NewRegistry()
	u := &Unrepresentable{Policy: "error", Pipeline: "p", Nulled: sinks.NulledValues(reg), Log: slog.New(slog.DiscardHandler)}
	err = u.Handle("db.t", "extra", loads[0].Rows[0].C, "too big")
	require.ErrorContains(t, err, "table db.t column extra at position")
	require.ErrorContains(t, err, "too big; set on_unrepresentable: null")
	require.True(t, component.IsPermanent(err))
	u.Policy = "null"
	require.NoError(t, u.Handle("db.t", "extra", loads[0].Rows[0].C, "too big"))
	require.NoError(t, u.Handle("db.t", "extra", loads[0].Rows[0].C, "too big"))
	require.Equal(t, 2.0, testutil.ToFloat64(u.Nulled.WithLabelValues("p", "db.t", "extra")))
}

func TestText(t *testing.T) {
	require.Equal(t, `{"a": 1}`, Text(schema.JSON(`{"a": 1}`)), "JSON as written")
	require.Equal(t, "1.50", Text(schema.MustDecimal("1.50")), "decimals keep their scale")
	require.Equal(t, `[1,null,"x"]`, Text(schema.Array(schema.Int(1), schema.Null(), schema.String("x"))))
	require.Equal(t, "1 day", Text(schema.Unknown("interval", "1 day")))
	require.Equal(t, "42", Text(schema.Int(42)))
}

func TestPositionText(t *testing.T) {
	p := offsets.Position(offsets.AppendUint(nil, 0xdeadbeef))
	got, err := ParsePosition("p", FormatPosition(p))
	require.NoError(t, err)
	require.Equal(t, p, got)
	got, err = ParsePosition("p", "")
	require.NoError(t, err)
	require.Nil(t, got)
	_, err = ParsePosition("p", "zz")
	require.ErrorContains(t, err, `sink state of pipeline "p": position "zz" is not hex`)
	require.True(t, component.IsPermanent(err))
	require.Len(t, Tag("p"), 12)
	require.NotEqual(t, Tag("p"), Tag("q"))
}
