package pipeline

import (
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

var (
	evText = schema.Type{Kind: schema.KindString, Name: "text"}
	evInt4 = schema.Type{Kind: schema.KindInt, Name: "int4"}
	evInt8 = schema.Type{Kind: schema.KindInt, Name: "int8"}
)

func evTable(name string, v schema.Version, cols ...schema.Column) schema.Table {
	return schema.Table{ID: schema.TableID{Namespace: "public", Name: name}, Version: v, PrimaryKey: []string{"id"},
		Columns: append([]schema.Column{{Name: "id", Type: evInt8}}, cols...)}
}

func evDelta(old, new schema.Table) schema.Delta {
	return schema.Delta{Table: new, From: old.Version, Changes: schema.Diff(old, new)}
}

func evChange(t schema.TableID, n uint64) schema.Change {
	return schema.Change{Op: schema.OpInsert, Table: t, Pos: offsets.AppendUint(nil, n), Key: schema.Row{{Name: "id", Value: schema.Int(int64(n))}}}
}

func newTestEvolver(p schema.Evolution) *evolver {
	return &evolver{policy: p, holds: map[schema.TableID]*Hold{}, shapes: map[schema.TableID]schema.Table{}, now: time.Now}
}

func TestEvolutionDefaults(t *testing.T) {
	users1 := evTable("users", 1, schema.Column{Name: "mail", Type: evText, Nullable: true}, schema.Column{Name: "n", Type: evInt4, Nullable: true})
	orders := evTable("orders", 1)
	e := newTestEvolver(schema.Evolution{})
	b := schema.Batch{Deltas: []schema.Delta{{Table: users1, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}, {Table: orders}}}
	rt, err := e.route(&b)
	require.NoError(t, err)
	require.Len(t, b.Deltas, 2)
	require.Empty(t, rt.created)

	// added and widened: applied, nothing held
	users2 := evTable("users", 2, schema.Column{Name: "mail", Type: evText, Nullable: true}, schema.Column{Name: "n", Type: evInt8, Nullable: true}, schema.Column{Name: "age", Type: evInt4, Nullable: true})
	b = schema.Batch{Deltas: []schema.Delta{evDelta(users1, users2)}, Changes: []schema.Change{evChange(users1.ID, 1)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Empty(t, rt.created)
	require.Len(t, b.Deltas, 1)
	require.Equal(t, []schema.DeltaOp{schema.AlterColumnType, schema.AddColumn}, ops(b.Deltas[0].Changes))
	require.Len(t, b.Changes, 1)

	// a rename (seen by pgoutput as a drop and an add at the same place) holds the
	// table; the other table's changes pass
	users3 := evTable("users", 3, schema.Column{Name: "email", Type: evText, Nullable: true}, schema.Column{Name: "n", Type: evInt8, Nullable: true}, schema.Column{Name: "age", Type: evInt4, Nullable: true})
	b = schema.Batch{Deltas: []schema.Delta{evDelta(users2, users3)}, Changes: []schema.Change{evChange(users1.ID, 2), evChange(orders.ID, 3), evChange(users1.ID, 4)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Empty(t, b.Deltas)
	require.Len(t, b.Changes, 1)
	require.Equal(t, orders.ID, b.Changes[0].Table)
	require.Len(t, rt.created, 1)
	h := rt.created[0]
	require.Equal(t, HoldPending, h.Status)
	require.Contains(t, h.Reason, "column mail was renamed to email (schema_changes.rename_column: hold)")
	require.Equal(t, []string{`ALTER TABLE "public"."users" RENAME COLUMN "mail" TO "email"`}, h.DDL)
	require.Len(t, rt.entries, 3) // the delta and two changes, in order
	require.NotNil(t, rt.entries[0].Delta)
	require.Equal(t, offsets.Position(offsets.AppendUint(nil, 4)), rt.entries[2].Change.Pos)
	require.Less(t, string(rt.entries[0].Key), string(rt.entries[1].Key), "a delta sorts before the change at its position")

	// while held, a further change of the table is held too, even an addition
	users4 := evTable("users", 4, append(users3.Columns[1:], schema.Column{Name: "z", Type: evInt4, Nullable: true})...)
	b = schema.Batch{Deltas: []schema.Delta{evDelta(users3, users4)}, Changes: []schema.Change{evChange(users1.ID, 5)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Empty(t, b.Deltas)
	require.Empty(t, b.Changes)
	require.Len(t, rt.entries, 2)
}

func ops(steps []schema.ColumnChange) []schema.DeltaOp {
	out := make([]schema.DeltaOp, len(steps))
	for i, s := range steps {
		out[i] = s.Op
	}
	return out
}

func TestEvolutionPolicies(t *testing.T) {
	t1 := evTable("t", 1, schema.Column{Name: "a", Type: evInt8, Nullable: true})
	t2 := evTable("t", 2, schema.Column{Name: "a", Type: evInt4, Nullable: true}) // narrowed
	// fail names the table, the change and the policy field
	e := newTestEvolver(schema.Evolution{Default: schema.EvolutionPolicy{Narrow: schema.ActionFail}})
	e.shapes[t1.ID] = t1
	b := schema.Batch{Deltas: []schema.Delta{evDelta(t1, t2)}}
	_, err := e.route(&b)
	require.ErrorContains(t, err, "table public.t: column a changed type from int8 to int4")
	require.ErrorContains(t, err, "schema_changes.narrow is fail")
	require.Equal(t, ClassPermanent, Classify(err))

	// apply on a narrowing: the destination keeps its wider type (the step is not passed)
	e = newTestEvolver(schema.Evolution{Tables: []schema.TablePolicy{{Pattern: "public.*", Policy: schema.EvolutionPolicy{Narrow: schema.ActionApply}}}})
	b = schema.Batch{Deltas: []schema.Delta{evDelta(t1, t2)}}
	rt, err := e.route(&b)
	require.NoError(t, err)
	require.Empty(t, rt.created)
	require.Empty(t, b.Deltas[0].Changes)

	// new_column: a rename becomes an added column
	r1 := evTable("r", 1, schema.Column{Name: "old", Type: evText, Nullable: true})
	r2 := evTable("r", 2, schema.Column{Name: "new", Type: evText, Nullable: true})
	e = newTestEvolver(schema.Evolution{Default: schema.EvolutionPolicy{RenameColumn: schema.ActionNewColumn}})
	e.shapes[r1.ID] = r1
	b = schema.Batch{Deltas: []schema.Delta{evDelta(r1, r2)}}
	_, err = e.route(&b)
	require.NoError(t, err)
	require.Equal(t, []schema.DeltaOp{schema.AddColumn}, ops(b.Deltas[0].Changes))

	// rejected tables' changes are dropped and counted
	e = newTestEvolver(schema.Evolution{})
	e.holds[r1.ID] = &Hold{Table: r1.ID, Status: HoldRejected}
	b = schema.Batch{Changes: []schema.Change{evChange(r1.ID, 1), evChange(t1.ID, 2)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Len(t, b.Changes, 1)
	require.Equal(t, int64(1), rt.dropped[r1.ID])

	// an approved hold replays only once the stream passed its watermark
	e = newTestEvolver(schema.Evolution{})
	e.holds[r1.ID] = &Hold{Table: r1.ID, Status: HoldApproved, Watermark: offsets.AppendUint(nil, 10)}
	e.lastEmitted = offsets.AppendUint(nil, 9)
	b = schema.Batch{Changes: []schema.Change{evChange(r1.ID, 11)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Empty(t, rt.drain)
	require.Empty(t, b.Changes, "still held until the replay")
	e.lastEmitted = offsets.AppendUint(nil, 10)
	b = schema.Batch{Changes: []schema.Change{evChange(r1.ID, 12)}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Len(t, rt.drain, 1)
	require.Len(t, b.Changes, 1, "after the replay the table flows again")

	// restamped positions sort above the base and below what follows it
	base := offsets.AppendUint(nil, 10)
	p1, p2 := restamp(base, 1), restamp(base, 2)
	require.Equal(t, 1, p1.Compare(base))
	require.Equal(t, -1, p1.Compare(p2))
	require.Equal(t, -1, p2.Compare(offsets.AppendUint(nil, 11)))
}

func TestAddedColumnWithUnknownExistingValueHolds(t *testing.T) {
	a := schema.Column{Name: "a", Type: evInt8, Nullable: true}
	t1 := evTable("t", 1, a)
	added := schema.Column{Name: "b", Type: evInt8, Nullable: true, Existing: &schema.Existing{Unknown: "a volatile default"}}
	t2 := evTable("t", 2, a, added)

	// the default policy (apply) holds it: NULL for the older rows is a person's call
	e := newTestEvolver(schema.Evolution{})
	e.shapes[t1.ID] = t1
	b := schema.Batch{Deltas: []schema.Delta{evDelta(t1, t2)}, Changes: []schema.Change{evChange(t1.ID, 5)}}
	rt, err := e.route(&b)
	require.NoError(t, err)
	require.Len(t, rt.created, 1)
	require.Contains(t, rt.created[0].Reason, "column b added, and the rows already there hold values the source cannot tell (a volatile default)")
	require.Empty(t, b.Deltas)
	require.Empty(t, b.Changes, "the table's changes wait with it")

	// fail fails, naming the policy field
	e = newTestEvolver(schema.Evolution{Default: schema.EvolutionPolicy{AddColumn: schema.ActionFail}})
	e.shapes[t1.ID] = t1
	b = schema.Batch{Deltas: []schema.Delta{evDelta(t1, t2)}}
	_, err = e.route(&b)
	require.ErrorContains(t, err, "schema_changes.add_column is fail")

	// a known value passes with the step
	known := added
	known.Existing = &schema.Existing{Value: schema.Int(5)}
	e = newTestEvolver(schema.Evolution{})
	e.shapes[t1.ID] = t1
	b = schema.Batch{Deltas: []schema.Delta{evDelta(t1, evTable("t", 2, a, known))}}
	rt, err = e.route(&b)
	require.NoError(t, err)
	require.Empty(t, rt.created)
	v, ok := b.Deltas[0].Changes[0].Fill()
	require.True(t, ok)
	require.Equal(t, schema.Int(5), v)
}

func TestResolveHeldDelta(t *testing.T) {
	r1 := evTable("r", 1, schema.Column{Name: "old", Type: evText, Nullable: true}, schema.Column{Name: "a", Type: evInt8, Nullable: true})
	r2 := evTable("r", 2, schema.Column{Name: "new", Type: evText, Nullable: true}, schema.Column{Name: "a", Type: evInt4, Nullable: true})
	d := evDelta(r1, r2)
	d.Changes = schema.InferRenames(r1, r2, d.Changes)
	require.Equal(t, []schema.DeltaOp{schema.RenameColumn, schema.AlterColumnType}, ops(d.Changes))
	require.Equal(t, []schema.DeltaOp{schema.RenameColumn}, ops(resolve(Hold{Status: HoldApproved}, d).Changes))
	require.Equal(t, []schema.DeltaOp{schema.AddColumn}, ops(resolve(Hold{Status: HoldNewColumn}, d).Changes))
}
