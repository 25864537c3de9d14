package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/catalog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestConfigValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	err := Config{Addr: []string{"nohost"}, Database: "a`b", Common: sinks.Common{TableName: "x", DeleteMode: "gone", MetadataPrefix: "Bad-",
		OnUnrepresentable: "guess"}, JSON: "yaml", WideDecimal: "round", Tables: map[string]TableOptions{"orders": {}}}.Validate()
	for _, want := range []string{"addr[0]:", "database:", "table_name:", "delete_mode:", "metadata_prefix:", "json:", "wide_decimal:", "on_unrepresentable:", "tables[orders]:"} {
		require.ErrorContains(t, err, want)
	}
	require.ErrorContains(t, Config{}.WithDefaults().Validate(), "addr:")
	require.NoError(t, Config{Addr: []string{"ch:9000", "[::1]:9440"}}.WithDefaults().Validate())
}

func TestDestTypeByServerVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ      schema.Type
		nullable bool
		now, old string // 26.9, 18.16
	}{
		{schema.Type{Kind: schema.KindBool, Name: "bool"}, false, "Bool", "UInt8"},
		{schema.Type{Kind: schema.KindInt, Name: "int2"}, true, "Nullable(Int16)", "Nullable(Int16)"},
		{schema.Type{Kind: schema.KindInt, Name: "tinyint"}, false, "Int8", "Int8"},
		{schema.Type{Kind: schema.KindUint, Name: "int unsigned"}, false, "UInt32", "UInt32"},
		{schema.Type{Kind: schema.KindUint, Name: "bigint unsigned"}, false, "UInt64", "UInt64"},
		{schema.Type{Kind: schema.KindFloat, Name: "float4"}, false, "Float32", "Float32"},
		{schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, true, "Nullable(Decimal(12, 2))", "Nullable(Decimal(12, 2))"},
		{schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 38, Scale: 10}, false, "Decimal(38, 10)", "String"},
		{schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 60, Scale: 0}, false, "Decimal(60, 0)", "String"},
		{schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, false, "String", "String"},
		{schema.Type{Kind: schema.KindString, Name: "uuid"}, false, "UUID", "UUID"},
		{schema.Type{Kind: schema.KindString, Name: "varchar", Length: 20}, true, "Nullable(String)", "Nullable(String)"},
		{schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, false, "DateTime64(6, 'UTC')", "String"},
		{schema.Type{Kind: schema.KindDate, Name: "date"}, false, "Date32", "Date"},
		{schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, false, "String", "String"},
		{schema.Type{Kind: schema.KindBytes, Name: "bytea"}, false, "String", "String"},
		{schema.Type{Kind: schema.KindArray, Name: "_int4", Elem: &schema.Type{Kind: schema.KindInt, Name: "int4"}}, true, "Array(Nullable(Int32))", "Array(Nullable(Int32))"},
		{schema.Type{Kind: schema.KindUnknown, Name: "interval"}, false, "String", "String"},
	}
	for _, c := range cases {
		for _, v := range []struct {
			f    features
			want string
		}{{featuresOf(26, 9), c.now}, {featuresOf(18, 16), c.old}} {
			s := New(Config{}.WithDefaults(), sinks.Deps{})
			s.feat = v.f
			ct, err := s.DestType(c.typ, c.nullable)
			require.NoError(t, err)
			require.Equal(t, v.want, ct.sql, "%s on %d.%d", c.typ, v.f.major, v.f.minor)
		}
	}
	s := New(Config{WideDecimal: "error"}.WithDefaults(), sinks.Deps{})
	s.feat = featuresOf(26, 9)
	_, err := s.DestType(schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, false)
	require.ErrorContains(t, err, "wide_decimal: string")
}

// recorder wraps a backend and keeps every statement and insert token.
type recorder struct {
	Backend
	mu     sync.Mutex
	stmts  []string
	tokens []string
}

func (r *recorder) Exec(ctx context.Context, sql string) error {
	r.mu.Lock()
	r.stmts = append(r.stmts, sql)
	r.mu.Unlock()
	return r.Backend.Exec(ctx, sql)
}

func (r *recorder) Insert(ctx context.Context, table string, cols []Column, rows [][]any, token string) error {
	r.mu.Lock()
	r.tokens = append(r.tokens, token)
	r.mu.Unlock()
	return r.Backend.Insert(ctx, table, cols, rows, token)
}

var orders = schema.Table{ID: schema.TableID{Namespace: "shop", Name: "orders"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
	{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
	{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 6, Scale: 2}, Nullable: true},
	{Name: "qty", Type: schema.Type{Kind: schema.KindInt, Name: "int4"}},
	{Name: "created", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, Nullable: true},
}}

func orderRow(n uint64, id int64, amount string) schema.Change {
	r := schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "amount", Value: schema.MustDecimal(amount)}, {Name: "qty", Value: schema.Int(1)}}
	return schema.Change{Op: schema.OpInsert, Table: orders.ID, Version: 1, Pos: offsets.AppendUint(nil, n), Key: r[:1], After: r}
}

func openChdb(t *testing.T, db *testenv.ChDB, mod func(*Config)) (*Sink, *recorder) {
	c := Config{Addr: []string{"chdb:0"}, Database: "dest"}.WithDefaults()
	if mod != nil {
		mod(&c)
	}
	require.NoError(t, c.Validate())
	rec := &recorder{Backend: chdbBackend{db}}
	s := New(c, sinks.Deps{Pipeline: "p"}, WithBackend(rec))
	require.NoError(t, s.Open(context.Background()))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, rec
}

func create(t *testing.T, s *Sink, tbl schema.Table) {
	require.NoError(t, s.Apply(context.Background(), []schema.Delta{{Table: tbl, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}))
}

func TestDDLAndViews(t *testing.T) {
	t.Parallel()
	db := testenv.StartChDB(t)
	s, rec := openChdb(t, db, func(c *Config) {
		c.DeleteMode, c.CreateViews, c.IncludeOp, c.IncludeSourceTS, c.TableName = "hard", true, true, true, "{namespace}_{table}"
		c.Tables = map[string]TableOptions{"shop.orders": {PartitionBy: "intDiv(id, 1000)"}}
	})
	create(t, s, orders)
	var ddl string
	for _, q := range rec.stmts {
		if strings.HasPrefix(q, "CREATE TABLE IF NOT EXISTS `dest`.`shop_orders`") {
			ddl = q
		}
	}
	require.Contains(t, ddl, "`id` Int64 COMMENT 'cdcd: primary key'")
	require.Contains(t, ddl, "`amount` Nullable(Decimal(6, 2))")
	require.Contains(t, ddl, "`qty` Int32,", "not Nullable where the source column is not")
	require.Contains(t, ddl, "`created` Nullable(DateTime64(6, 'UTC'))")
	require.Contains(t, ddl, "ENGINE = ReplacingMergeTree(`_cdc_version`, `_cdc_deleted`) PARTITION BY intDiv(id, 1000) ORDER BY (`id`)")
	require.Contains(t, ddl, "SETTINGS non_replicated_deduplication_window")

	ctx := context.Background()
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{orderRow(1, 1, "1.50"), orderRow(2, 2, "2.50")}}))
	del := schema.Change{Op: schema.OpDelete, Table: orders.ID, Version: 1, Pos: offsets.AppendUint(nil, 3), Key: schema.Row{{Name: "id", Value: schema.Int(2)}}}
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{del}}))
	rows, err := db.Query("SELECT toString(id), toString(amount), _cdc_op FROM dest.shop_orders_current ORDER BY id")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"1", "1.5", "c"}}, rows, "the view shows current rows only")
	var tokens []string // the data inserts' (the state and batch log go without)
	for _, tok := range rec.tokens {
		if tok != "" {
			tokens = append(tokens, tok)
		}
	}
	require.NotEmpty(t, tokens)
	require.Contains(t, tokens[0], "p:1:dest.shop_orders:", "a deduplication token per batch and table")

	// a sorting or partition key beyond the primary key is refused
	bad := orders.Clone()
	bad.ID.Name = "other"
	for opts, want := range map[string]TableOptions{
		"must be the primary key's columns": {OrderBy: []string{"id", "qty"}},
		"not a primary-key column":          {PartitionBy: "toYYYYMM(created)"},
	} {
		s2, _ := openChdb(t, db, func(c *Config) { c.Tables = map[string]TableOptions{"shop.other": want} })
		err = s2.Apply(ctx, []schema.Delta{{Table: bad, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}})
		require.True(t, component.IsPermanent(err))
		require.ErrorContains(t, err, opts)
	}
}

func TestUnrepresentable(t *testing.T) {
	t.Parallel()
	db := testenv.StartChDB(t)
	ctx := context.Background()
	s, _ := openChdb(t, db, nil)
	create(t, s, orders)
	err := s.Write(ctx, &schema.Batch{Changes: []schema.Change{orderRow(1, 1, "12345.67")}})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "column amount")
	require.NotContains(t, err.Error(), "12345")

	n, _ := openChdb(t, db, func(c *Config) { c.OnUnrepresentable, c.Database = "null", "dest2" })
	create(t, n, orders)
	require.NoError(t, n.Write(ctx, &schema.Batch{Changes: []schema.Change{orderRow(1, 1, "12345.67"), orderRow(2, 2, "1.25")}}))
	rows, err := db.Query("SELECT toString(id), toString(amount) FROM dest2.orders FINAL ORDER BY id")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"1", nil}, {"2", "1.25"}}, rows)
	require.Equal(t, 1.0, testutil.ToFloat64(n.nulled.WithLabelValues("p", "dest2.orders", "amount")))

	// a non-Nullable column cannot take NULL: still an error
	big := orderRow(3, 3, "1.00")
	big.After[2].Value = schema.Int(1 << 40) // qty is Int32
	err = n.Write(ctx, &schema.Batch{Changes: []schema.Change{big}})
	require.ErrorContains(t, err, "outside the range of Int32")
	require.ErrorContains(t, err, "not Nullable")
}

func TestDeduplicationTokenDropsARetriedBlock(t *testing.T) {
	t.Parallel()
	db := testenv.StartChDB(t)
	ctx := context.Background()
	s, _ := openChdb(t, db, nil)
	create(t, s, orders)
	b := &schema.Batch{Changes: []schema.Change{orderRow(1, 1, "1.00"), orderRow(2, 2, "2.00")}}
	require.NoError(t, s.Write(ctx, b))
	// the state row is lost (a crash between the data and the state insert)
	require.NoError(t, db.Exec("TRUNCATE TABLE dest._cdc_sink_state"))
	s2, _ := openChdb(t, db, nil)
	require.NoError(t, s2.Write(ctx, b))
	rows, err := db.Query("SELECT toString(count()) FROM dest.orders") // without FINAL: every stored row
	require.NoError(t, err)
	require.Equal(t, [][]any{{"2"}}, rows, "the retried block was deduplicated")
}

func TestColumnChanges(t *testing.T) {
	t.Parallel()
	db := testenv.StartChDB(t)
	ctx := context.Background()
	s, _ := openChdb(t, db, nil)
	create(t, s, orders)
	require.NoError(t, s.Write(ctx, &schema.Batch{Changes: []schema.Change{orderRow(1, 1, "9999.99")}}))
	v2 := orders.Clone()
	v2.Version = 2
	old := v2.Columns[2]
	v2.Columns[2].Type = schema.Type{Kind: schema.KindInt, Name: "int8"} // qty int4 → int8: widen
	oldAmt := v2.Columns[1]
	v2.Columns[1].Type.Precision = 10 // numeric(6,2) → numeric(10,2): widen
	require.NoError(t, s.Apply(ctx, []schema.Delta{{Table: v2, From: 1, Changes: []schema.ColumnChange{
		{Op: schema.AlterColumnType, Column: v2.Columns[2], Old: &old}, {Op: schema.AlterColumnType, Column: v2.Columns[1], Old: &oldAmt}}}}))
	rows, err := db.Query("SELECT type FROM system.columns WHERE database = 'dest' AND table = 'orders' AND name IN ('qty', 'amount') ORDER BY name")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"Nullable(Decimal(10, 2))"}, {"Int64"}}, rows)

	v3 := v2.Clone()
	v3.Version = 3
	prev := v3.Columns[2]
	v3.Columns[2].Type = schema.Type{Kind: schema.KindInt, Name: "int2"}
	err = s.Apply(ctx, []schema.Delta{{Table: v3, From: 2, Changes: []schema.ColumnChange{{Op: schema.AlterColumnType, Column: v3.Columns[2], Old: &prev}}}})
	require.True(t, component.IsPermanent(err))
	require.ErrorContains(t, err, "dest.orders column qty")

	v4 := v2.Clone()
	v4.Version = 4
	was := v4.Columns[3]
	v4.Columns[3].Name = "created_at"
	rename := schema.Delta{Table: v4, From: 2, Changes: []schema.ColumnChange{{Op: schema.RenameColumn, Column: v4.Columns[3], Old: &was}}}
	// what a held rename shows is what Apply runs, under the destination name
	planned, err := s.PlanDDL(ctx, rename)
	require.NoError(t, err)
	require.Equal(t, []string{"ALTER TABLE `dest`.`orders` RENAME COLUMN `" + was.Name + "` TO `created_at`"}, planned)
	again, err := s.PlanDDL(ctx, rename)
	require.NoError(t, err)
	require.Equal(t, planned, again, "planning changed nothing")
	require.NoError(t, s.Apply(ctx, []schema.Delta{rename}))
	rows, err = db.Query("SELECT name FROM system.columns WHERE database = 'dest' AND table = 'orders' AND name LIKE 'created%'")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"created_at"}}, rows)
}

func TestOldServerRefusesHardDelete(t *testing.T) {
	t.Parallel()
	h := newServerHarness(t).(serverHarness)
	s := h.NewSink(t, sinktest.Options{HardDelete: true})
	err := s.Open(context.Background())
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "delete_mode: hard needs ClickHouse 23.2")
	require.ErrorContains(t, New(h.config(sinktest.Options{HardDelete: true}), sinks.Deps{}).Check(context.Background()), "23.2")
}

// TestOldServerHasNoCatalog: the destination catalog needs query parameters;
// an 18.16 server gets a clear, permanent refusal instead of SQL built from a
// search text.
func TestOldServerHasNoCatalog(t *testing.T) {
	t.Parallel()
	h := newServerHarness(t).(serverHarness)
	_, err := h.NewSink(t, sinktest.Options{}).(*Sink).Catalog(context.Background(), catalog.Query{Search: "x'", Limit: 10})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "needs ClickHouse 21.x or later")
}

// TestEncodeDatesItCannotHold: Postgres infinity, -infinity, BC dates and
// years past 9999 arrive as their text; every date and time column refuses
// them (found: they were stored as 1970-01-01, even with on_unrepresentable:
// error).
func TestEncodeDatesItCannotHold(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"Date", "Date32", "DateTime64(6)", "DateTime64(6, 'UTC')"} {
		for _, v := range []schema.Value{schema.Unknown("date", "infinity"), schema.Unknown("timestamptz", "-infinity"),
			schema.Unknown("date", "0044-03-15 BC"), schema.Unknown("timestamp", "10000-01-01 00:00:00")} {
			x, p := encode(colType{base: base}, v)
			require.Nil(t, x)
			require.Contains(t, p, "not a date or time ClickHouse holds", "%s into %s", v.Text(), base)
		}
	}
	_, p := encode(colType{base: "Float64"}, schema.Unknown("float8", "x"))
	require.Contains(t, p, "not a float")
}

// TestEncodeDateTime64WhereTheEncoderWraps: clickhouse-go encodes DateTime64
// through time.UnixNano, which wraps after 2262-04-11 (found by the type
// matrix: 2299-12-31 was stored as 1715-06-13); later instants are refused,
// the last one it carries is kept.
func TestEncodeDateTime64WhereTheEncoderWraps(t *testing.T) {
	t.Parallel()
	ct := colType{base: "DateTime64(6, 'UTC')"}
	for _, v := range []schema.Value{schema.Timestamp(time.Date(2262, 4, 11, 23, 47, 16, 854776000, time.UTC)),
		schema.Timestamp(time.Date(2299, 12, 31, 23, 59, 59, 999999000, time.UTC)), schema.DateTime(time.Date(2270, 1, 1, 0, 0, 0, 0, time.UTC))} {
		x, p := encode(ct, v)
		require.Nil(t, x)
		require.Contains(t, p, "outside the DateTime64 range", "%s", v.AppendJSON(nil))
	}
	last := time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC)
	x, p := encode(ct, schema.Timestamp(last))
	require.Empty(t, p)
	require.Equal(t, last.UnixNano()/1000, x.(time.Time).UnixNano()/1000, "within the encoder's range")
}

// TestUnrepresentableArrays: a 2-D Postgres array has no place in an Array
// column; on_unrepresentable: null (found: it failed the pipeline anyway,
// Array columns cannot be Nullable) stores the empty array, counted.
func TestUnrepresentableArrays(t *testing.T) {
	t.Parallel()
	db := testenv.StartChDB(t)
	ctx := context.Background()
	tags := schema.Table{ID: schema.TableID{Namespace: "shop", Name: "tags"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
		{Name: "t", Type: schema.Type{Kind: schema.KindArray, Name: "_int4", Elem: &schema.Type{Kind: schema.KindInt, Name: "int4"}}, Nullable: true},
	}}
	row := func(id int64, v schema.Value) schema.Change {
		r := schema.Row{{Name: "id", Value: schema.Int(id)}, {Name: "t", Value: v}}
		return schema.Change{Op: schema.OpInsert, Table: tags.ID, Version: 1, Pos: offsets.AppendUint(nil, uint64(id)), Key: r[:1], After: r}
	}
	twoD := schema.Array(schema.Array(schema.Int(1), schema.Int(2)), schema.Array(schema.Int(3), schema.Int(4)))
	s, _ := openChdb(t, db, nil)
	create(t, s, tags)
	err := s.Write(ctx, &schema.Batch{Changes: []schema.Change{row(1, twoD)}})
	require.True(t, component.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "multi-dimensional")

	n, _ := openChdb(t, db, func(c *Config) { c.OnUnrepresentable, c.Database = "null", "dest2" })
	create(t, n, tags)
	require.NoError(t, n.Write(ctx, &schema.Batch{Changes: []schema.Change{row(1, twoD), row(2, schema.Array(schema.Int(5)))}}))
	rows, err := db.Query("SELECT toString(id), toString(t) FROM dest2.tags FINAL ORDER BY id")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"1", "[]"}, {"2", "[5]"}}, rows)
	require.Equal(t, 1.0, testutil.ToFloat64(n.nulled.WithLabelValues("p", "dest2.tags", "t")))
}

// TestClassifyDataErrors: a value the server cannot parse or hold fails the
// same on every retry: permanent at once (never ten retries first).
func TestClassifyDataErrors(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{"code: 6, message: Cannot parse string", "code: 27, message: Cannot parse input", "code: 321, message: Value is out of range",
		"code: 349, message: Cannot insert NULL value into a column", "code: 407, message: Decimal math overflow", "code: 62, message: Syntax error"} {
		require.True(t, component.IsPermanent(classify(fmt.Errorf("insert: %w", errors.New(msg)))), msg)
	}
	require.True(t, component.IsPermanent(classify(&column.ColumnConverterError{Op: "Append", To: "Int32", From: "string"})))
	for _, msg := range []string{"code: 209, message: Timeout exceeded", "code: 210, message: Connection refused", "read: connection reset by peer"} {
		require.False(t, component.IsPermanent(classify(errors.New(msg))), msg)
	}
}
