package transforms

import (
	"errors"
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

// dropColumn removes one column from shapes and rows (a minimal real transform).
type dropColumn struct{ name string }

func (d dropColumn) Schema(t schema.Table) (schema.Table, error) {
	out := t.Clone()
	out.Columns = out.Columns[:0]
	for _, c := range t.Columns {
		if c.Name != d.name {
			out.Columns = append(out.Columns, c)
		}
	}
	return out, nil
}

func (d dropColumn) Apply(c *schema.Change) (bool, error) {
	for _, r := range []*schema.Row{&c.Before, &c.After} {
		if i := r.Index(d.name); i >= 0 {
			*r = append((*r)[:i:i], (*r)[i+1:]...)
		}
	}
	return true, nil
}

type failing struct{}

func (failing) Schema(t schema.Table) (schema.Table, error) { return t, nil }
func (failing) Apply(*schema.Change) (bool, error)          { return false, errors.New("boom") }

func table(cols ...string) schema.Table {
	t := schema.Table{ID: schema.TableID{Namespace: "public", Name: "users"}, PrimaryKey: []string{"id"}}
	for _, c := range cols {
		t.Columns = append(t.Columns, schema.Column{Name: c, Type: schema.Type{Kind: schema.KindString, Name: "text"}})
	}
	return t
}

func TestChainMapsDeltasAndRows(t *testing.T) {
	t.Parallel()
	c := NewChain(Step{Name: "drop_ssn", Tables: []string{"public.*"}, Transform: dropColumn{"ssn"}})
	v1 := table("id", "ssn")
	v1.Version = 1
	b := schema.Batch{
		Deltas:  []schema.Delta{{Table: v1, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}},
		Changes: []schema.Change{{Op: schema.OpInsert, Table: v1.ID, Pos: offsets.AppendUint(nil, 1), After: schema.Row{{Name: "id", Value: schema.Int(1)}, {Name: "ssn", Value: schema.String("123")}}}},
	}
	require.NoError(t, c.ApplyBatch(&b))
	require.Equal(t, []string{"id"}, []string{b.Deltas[0].Table.Columns[0].Name})
	require.Len(t, b.Deltas[0].Table.Columns, 1)
	require.Equal(t, `{"id":1}`, string(b.Changes[0].After.AppendJSON(nil)))

	// A source-side change to a dropped column yields no output change at all;
	// an added column does.
	v2 := table("id", "ssn", "email")
	v2.Version = 2
	b = schema.Batch{Deltas: []schema.Delta{{Table: v2, From: 1, Changes: schema.Diff(v1, v2)}}}
	require.NoError(t, c.ApplyBatch(&b))
	require.Len(t, b.Deltas[0].Changes, 1)
	require.Equal(t, schema.AddColumn, b.Deltas[0].Changes[0].Op)
	require.Equal(t, "email", b.Deltas[0].Changes[0].Column.Name)

	// Out-of-scope tables pass untouched.
	other := schema.Change{Op: schema.OpInsert, Table: schema.TableID{Namespace: "audit", Name: "x"}, After: schema.Row{{Name: "ssn", Value: schema.String("1")}}}
	b = schema.Batch{Changes: []schema.Change{other}}
	require.NoError(t, c.ApplyBatch(&b))
	require.Equal(t, 1, b.Changes[0].After.Index("ssn")+1)
}

// renameTable is a route-like transform.
type renameTable struct{ to string }

func (r renameTable) Schema(t schema.Table) (schema.Table, error) {
	t = t.Clone()
	t.ID.Name = r.to
	return t, nil
}

func (r renameTable) Apply(c *schema.Change) (bool, error) {
	c.Table.Name = r.to
	return true, nil
}

// dropAll is a filter that keeps nothing.
type dropAll struct{}

func (dropAll) Schema(t schema.Table) (schema.Table, error) { return t, nil }
func (dropAll) Apply(*schema.Change) (bool, error)          { return false, nil }

// TestChainPassesSweepsToTheirTable: a sweep (the end of a resync) is never
// filtered and goes to the table its rows went to.
func TestChainPassesSweepsToTheirTable(t *testing.T) {
	t.Parallel()
	c := NewChain(Step{Name: "route", Transform: renameTable{"people"}}, Step{Name: "filter", Transform: dropAll{}}, Step{Name: "bad", Transform: failing{}})
	v1 := table("id")
	v1.Version = 1
	sweep := schema.Change{Op: schema.OpSweep, Table: v1.ID, Pos: offsets.AppendUint(nil, 2), Since: offsets.AppendUint(nil, 1)}
	b := schema.Batch{
		Deltas:  []schema.Delta{{Table: v1, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}},
		Changes: []schema.Change{{Op: schema.OpInsert, Table: v1.ID, Pos: offsets.AppendUint(nil, 1)}, sweep},
	}
	require.NoError(t, c.ApplyBatch(&b))
	require.Len(t, b.Changes, 1)
	require.Equal(t, schema.OpSweep, b.Changes[0].Op)
	require.Equal(t, "people", b.Changes[0].Table.Name)
	// a sweep of a table the chain never saw is an error, never a sweep of the
	// source's name
	b = schema.Batch{Changes: []schema.Change{{Op: schema.OpSweep, Table: schema.TableID{Name: "other"}, Since: offsets.AppendUint(nil, 1)}}}
	require.ErrorContains(t, NewChain(Step{Name: "route", Transform: renameTable{"x"}}).ApplyBatch(&b), "before its table was announced")
}

func TestChainErrorsNameTheStep(t *testing.T) {
	t.Parallel()
	c := NewChain(Step{Name: "bad", Transform: failing{}})
	b := schema.Batch{Changes: []schema.Change{{Op: schema.OpInsert, Table: schema.TableID{Name: "t"}, Pos: offsets.AppendUint(nil, 9),
		After: schema.Row{{Name: "secret", Value: schema.String("hunter2")}}}}}
	err := c.ApplyBatch(&b)
	require.ErrorContains(t, err, "transform bad on t")
	require.NotContains(t, err.Error(), "hunter2", "errors carry no row values")
	var zero Chain
	require.NoError(t, zero.ApplyBatch(&b), "the zero chain passes batches through")
}

func TestChainSkipsAndReportsFailedRows(t *testing.T) {
	t.Parallel()
	var got []Skipped
	c := NewChain(Step{Name: "bad", Tables: []string{"t"}, Transform: failing{}}).SkipErrors(func(s Skipped) { got = append(got, s) })
	b := schema.Batch{Changes: []schema.Change{
		{Op: schema.OpInsert, Table: schema.TableID{Name: "t"}, Pos: offsets.AppendUint(nil, 1)},
		{Op: schema.OpInsert, Table: schema.TableID{Name: "u"}, Pos: offsets.AppendUint(nil, 2)},
	}}
	require.NoError(t, c.ApplyBatch(&b))
	require.Len(t, b.Changes, 1)
	require.Equal(t, "u", b.Changes[0].Table.Name)
	require.Equal(t, []Skipped{{Table: schema.TableID{Name: "t"}, Pos: offsets.AppendUint(nil, 1), Transform: "bad", Error: "boom"}}, got)
}
