package filter

import (
	"slices"
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/stretchr/testify/require"
)

func TestGolden(t *testing.T) {
	f, err := New(Config{Keep: `op != "d" && row.status != "test"`})
	require.NoError(t, err)
	transformtest.Golden(t, f, "users")
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{Keep: `op == `})
	require.ErrorContains(t, err, "expression")
	_, err = New(Config{Keep: `op + "x"`})
	require.ErrorContains(t, err, "bool", "the result must be a boolean, checked at config time")
	_, err = New(Config{Keep: "true", Drop: "false"})
	require.ErrorContains(t, err, "not both")
	_, err = New(Config{})
	require.ErrorContains(t, err, "keep: required")
	f, err := New(Config{Drop: `row.balance > 50`})
	require.NoError(t, err)
	c := schema.Change{Op: schema.OpInsert, After: schema.Row{{Name: "balance", Value: schema.MustDecimal("99.99")}}}
	keep, err := f.Apply(&c)
	require.NoError(t, err)
	require.False(t, keep)
}

// FuzzFilter: evaluating any expression that compiles on any row never panics.
func FuzzFilter(f *testing.F) {
	f.Add(`row.a > 1`, "x", int64(3))
	f.Add(`row.a matches "^[a-z]+$"`, "abc", int64(0))
	f.Add(`len(row.s) > row.a`, "", int64(-1))
	f.Fuzz(func(t *testing.T, src, s string, n int64) {
		flt, err := New(Config{Keep: src})
		if err != nil {
			return
		}
		c := schema.Change{Op: schema.OpUpdate, After: schema.Row{{Name: "a", Value: schema.Int(n)}, {Name: "s", Value: schema.String(s)}}}
		_, _ = flt.Apply(&c)
	})
}

func TestFilterNeedsItsColumns(t *testing.T) {
	f, err := New(Config{Keep: `row.status != "test" && key.id > 0`})
	require.NoError(t, err)
	_, err = f.Schema(transformtest.Users)
	require.NoError(t, err)
	gone := transformtest.Users.Clone()
	gone.Columns = slices.DeleteFunc(gone.Columns, func(c schema.Column) bool { return c.Name == "status" })
	_, err = f.Schema(gone)
	require.ErrorContains(t, err, "the expression reads row.status, which table public.users does not have")
	// a dynamic index reads whole rows and cannot be checked: it is not an error
	f, err = New(Config{Keep: `row["sta" + "tus"] != "test"`})
	require.NoError(t, err)
	_, err = f.Schema(gone)
	require.NoError(t, err)
}
