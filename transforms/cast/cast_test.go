package cast

import (
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestGolden(t *testing.T) {
	c, err := New(Config{Columns: map[string]string{"balance": "decimal(14,3)", "card": "int8", "id": "text"}}, transforms.Deps{})
	require.NoError(t, err)
	transformtest.Golden(t, c, "users")
}

func TestPolicies(t *testing.T) {
	_, err := New(Config{Columns: map[string]string{"a": "int9", "b": "varchar"}, OnError: "skip"}, transforms.Deps{})
	require.ErrorContains(t, err, `columns.a: type "int9": unknown`)
	require.ErrorContains(t, err, "columns.b: type \"varchar\": varchar needs a length")
	require.ErrorContains(t, err, "on_error: must be fail or set_null")

	users := transformtest.Users
	c, err := New(Config{Columns: map[string]string{"status": "bool"}}, transforms.Deps{})
	require.NoError(t, err)
	ch := schema.Change{Op: schema.OpInsert, Table: users.ID, After: schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "status", Value: schema.String("active")}}}
	_, err = c.Apply(&ch)
	require.ErrorContains(t, err, "cast column status: a string value does not convert to bool")
	require.NotContains(t, err.Error(), "active")

	c, err = New(Config{Columns: map[string]string{"status": "bool"}, OnError: "set_null"}, transforms.Deps{})
	require.NoError(t, err)
	out, err := c.Schema(users)
	require.NoError(t, err)
	col, _ := out.Column("status")
	require.Equal(t, schema.KindBool, col.Type.Kind)
	require.True(t, col.Nullable)
	_, err = c.Apply(&ch)
	require.NoError(t, err)
	v, _ := ch.After.Get("status")
	require.True(t, v.IsNull())
	require.Equal(t, 1.0, testutil.ToFloat64(c.nulled))

	c, err = New(Config{Columns: map[string]string{"id": "text"}, OnError: "set_null"}, transforms.Deps{})
	require.NoError(t, err)
	_, err = c.Schema(users)
	require.ErrorContains(t, err, "primary key")
	c, err = New(Config{Columns: map[string]string{"gone": "text"}}, transforms.Deps{})
	require.NoError(t, err)
	_, err = c.Schema(users)
	require.ErrorContains(t, err, "column gone to cast is not in table public.users")
}

func TestNulledValuesAreAMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`{columns: {status: bool}, on_error: set_null}`), &n))
	tr, err := Factory().New(n.Content[0], transforms.Deps{Pipeline: "p", Step: "to_bool", Metrics: reg})
	require.NoError(t, err)
	ch := schema.Change{Op: schema.OpInsert, After: schema.Row{{Name: "status", Value: schema.String("active")}}}
	_, err = tr.Apply(&ch)
	require.NoError(t, err)
	require.Equal(t, 1, testutil.CollectAndCount(reg, "cdcd_transform_values_nulled_total"))
	require.Equal(t, 1.0, testutil.ToFloat64(tr.(*Cast).nulled))
}

// TestExistingValueIsCast: the value the rows already there hold in an added
// column is cast like theirs; one that does not convert fails the shape (or is
// NULL under set_null), naming the column and never the value.
func TestExistingValueIsCast(t *testing.T) {
	tbl := func(v schema.Value) schema.Table {
		return schema.Table{ID: schema.TableID{Name: "t"}, PrimaryKey: []string{"id"}, Columns: []schema.Column{
			{Name: "id", Type: schema.Type{Kind: schema.KindInt}},
			{Name: "n", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true, Existing: &schema.Existing{Value: v}}}}
	}
	c, err := New(Config{Columns: map[string]string{"n": "int8"}}, transforms.Deps{})
	require.NoError(t, err)
	out, err := c.Schema(tbl(schema.String("42")))
	require.NoError(t, err)
	require.Equal(t, schema.Int(42), out.Columns[1].Existing.Value)
	_, err = c.Schema(tbl(schema.String("secret-ish")))
	require.ErrorContains(t, err, "cast column n: the value the rows already there hold")
	require.NotContains(t, err.Error(), "secret-ish")

	c, err = New(Config{Columns: map[string]string{"n": "int8"}, OnError: "set_null"}, transforms.Deps{})
	require.NoError(t, err)
	out, err = c.Schema(tbl(schema.String("x")))
	require.NoError(t, err)
	require.False(t, out.Columns[1].Existing.Known())
}
