package flatten

import (
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestGolden(t *testing.T) {
	f, err := New(Config{Column: "payload", Fields: map[string]string{"color": "text", "dims.w": "float8", "dims.h": "int4", "tags": "json", "at": "timestamptz"}}, transforms.Deps{})
	require.NoError(t, err)
	transformtest.GoldenTable(t, f, "events", transformtest.Events)
}

func TestErrors(t *testing.T) {
	_, err := New(Config{Fields: map[string]string{"a..b": "text", "c": "nope"}, OnError: "x"}, transforms.Deps{})
	require.ErrorContains(t, err, "column: name the JSON column")
	require.ErrorContains(t, err, "fields.a..b: a path is names joined by dots")
	require.ErrorContains(t, err, `fields.c: type "nope": unknown`)
	require.ErrorContains(t, err, "on_error: must be fail or set_null")

	f, err := New(Config{Column: "payload", Fields: map[string]string{"n": "int4"}}, transforms.Deps{})
	require.NoError(t, err)
	doc := func(s string) *schema.Change {
		return &schema.Change{Op: schema.OpInsert, After: schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "payload", Value: schema.JSON(s)}}}
	}
	_, err = f.Apply(doc(`{"n":"secret-text"}`))
	require.ErrorContains(t, err, "flatten column payload: field n: a string value does not convert to int4")
	require.NotContains(t, err.Error(), "secret")
	_, err = f.Apply(doc(`{"n":1`))
	require.ErrorContains(t, err, "not a JSON document")

	f, err = New(Config{Column: "payload", Fields: map[string]string{"n": "int4"}, OnError: "set_null", DropSource: true, Prefix: new(string)}, transforms.Deps{})
	require.NoError(t, err)
	c := doc(`{"n":"x"}`)
	_, err = f.Apply(c)
	require.NoError(t, err)
	require.Equal(t, []string{"id", "n"}, []string{c.After[0].Name, c.After[1].Name})
	require.True(t, c.After[1].Value.IsNull())
	require.Equal(t, 1.0, testutil.ToFloat64(f.nulled))
	out, err := f.Schema(transformtest.Events)
	require.NoError(t, err)
	require.Equal(t, "n", out.Columns[1].Name)
	_, err = f.Schema(transformtest.Users)
	require.ErrorContains(t, err, "column payload to flatten is not in table public.users")
}

// TestExistingValueIsFlattened: an added JSON column's default, which the rows
// already there hold, is flattened like theirs into the new columns.
func TestExistingValueIsFlattened(t *testing.T) {
	f, err := New(Config{Column: "payload", Fields: map[string]string{"n": "int4", "s": "text"}}, transforms.Deps{})
	require.NoError(t, err)
	in := schema.Table{ID: schema.TableID{Name: "t"}, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt}},
		{Name: "payload", Type: schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, Nullable: true, Existing: &schema.Existing{Value: schema.JSON(`{"n": 7}`)}}}}
	out, err := f.Schema(in)
	require.NoError(t, err)
	byName := map[string]*schema.Existing{}
	for _, c := range out.Columns {
		byName[c.Name] = c.Existing
	}
	require.NotNil(t, byName["payload_n"])
	require.Equal(t, schema.Int(7), byName["payload_n"].Value)
	require.Nil(t, byName["payload_s"], "absent from the document: NULL")
}
