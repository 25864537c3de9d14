package transforms_test

import (
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/cdcd-dev/cdcd/transforms/addfields"
	"github.com/cdcd-dev/cdcd/transforms/columns"
	"github.com/cdcd-dev/cdcd/transforms/filter"
	"github.com/cdcd-dev/cdcd/transforms/mask"
	"github.com/cdcd-dev/cdcd/transforms/route"
	"github.com/cdcd-dev/cdcd/transforms/transformtest"
)

// BenchmarkChain5 runs a five-transform chain (filter, mask, drop+rename,
// route, add fields) over batches of 1,000 changes and reports changes/s on
// one core, then each transform alone.
//
//	go test -run XXX -bench Chain5 -cpu 1 ./transforms
func BenchmarkChain5(b *testing.B) {
	must := func(t transforms.Transform, err error) transforms.Transform {
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	f, err := filter.New(filter.Config{Keep: `op != "d" && row.status != "test"`})
	m, err2 := mask.New(mask.Config{Columns: []string{"email"}, Key: "0123456789abcdef-bench"})
	c, err3 := columns.New(columns.Config{Drop: []string{"card"}, Rename: map[string]string{"email": "contact"}})
	r, err4 := route.New(route.Config{Map: map[string]string{"public.users": "raw.users"}})
	a, err5 := addfields.New(addfields.Config{Metadata: map[string]string{"_op": "op"}})
	for _, e := range []error{err, err2, err3, err4, err5} {
		if e != nil {
			b.Fatal(e)
		}
	}
	steps := []transforms.Step{{Name: "filter", Transform: must(f, nil)}, {Name: "mask", Transform: must(m, nil)},
		{Name: "columns", Transform: must(c, nil)}, {Name: "route", Transform: must(r, nil)}, {Name: "add_fields", Transform: must(a, nil)}}
	b.Run("chain5", func(b *testing.B) { benchChain(b, transforms.NewChain(steps...)) })
	for _, s := range steps { // each alone, to see what bounds the chain
		b.Run(s.Name, func(b *testing.B) { benchChain(b, transforms.NewChain(s)) })
	}
}

func benchChain(b *testing.B, chain *transforms.Chain) {
	first := schema.Batch{Deltas: []schema.Delta{{Table: transformtest.Users, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}}
	if err := chain.ApplyBatch(&first); err != nil {
		b.Fatal(err)
	}
	src := make([]schema.Change, 1000)
	for i := range src {
		row := schema.Row{{Name: "id", Value: schema.Int(int64(i))}, {Name: "email", Value: schema.String("user@example.com")},
			{Name: "card", Value: schema.String("4111111111111111")}, {Name: "status", Value: schema.String("active")}, {Name: "balance", Value: schema.MustDecimal("10.50")}}
		src[i] = schema.Change{Op: schema.OpUpdate, Table: transformtest.Users.ID, Version: 1, Pos: offsets.AppendUint(nil, uint64(i)), Key: row[:1], After: row}
	}
	batch := make([]schema.Change, len(src))
	b.ResetTimer()
	for b.Loop() {
		copy(batch, src)
		bb := schema.Batch{Changes: batch}
		if err := chain.ApplyBatch(&bb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(src)*b.N)/b.Elapsed().Seconds(), "changes/s")
}
