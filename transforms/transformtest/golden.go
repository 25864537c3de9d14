// Package transformtest runs golden tests of transforms: changes from
// testdata/NAME.in.jsonl go through a Chain of the transform, and the output
// shape and changes must equal testdata/NAME.golden.jsonl (go test -update
// rewrites the golden files; review their diff).
package transformtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Users is the golden tests' source table.
var Users = schema.Table{ID: schema.TableID{Namespace: "public", Name: "users"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
	{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
	{Name: "email", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	{Name: "card", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	{Name: "status", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
	{Name: "balance", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true},
}}

// Events is a source table with a JSON column, for transforms of documents.
var Events = schema.Table{ID: schema.TableID{Namespace: "public", Name: "events"}, Version: 1, PrimaryKey: []string{"id"}, Columns: []schema.Column{
	{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
	{Name: "payload", Type: schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, Nullable: true},
}}

type line struct {
	Op       string                     `json:"op"`
	Table    string                     `json:"table,omitempty"`
	Key      map[string]json.RawMessage `json:"key,omitempty"`
	Before   map[string]json.RawMessage `json:"before,omitempty"`
	After    map[string]json.RawMessage `json:"after,omitempty"`
	CommitTS string                     `json:"commit_ts,omitempty"`
}

func row(t *testing.T, tbl schema.Table, m map[string]json.RawMessage) schema.Row {
	if m == nil {
		return nil
	}
	var r schema.Row
	for _, c := range tbl.Columns {
		raw, ok := m[c.Name]
		if !ok {
			continue
		}
		var v schema.Value
		var x any
		require.NoError(t, json.Unmarshal(raw, &x))
		switch {
		case x == nil:
			v = schema.Null()
		case c.Type.Kind == schema.KindInt:
			v = schema.Int(int64(x.(float64)))
		case c.Type.Kind == schema.KindDecimal:
			v = schema.MustDecimal(fmt.Sprint(x))
		case c.Type.Kind == schema.KindJSON:
			v = schema.JSON(string(raw))
		default:
			v = schema.String(fmt.Sprint(x))
		}
		r = append(r, schema.Field{Name: c.Name, Value: v})
	}
	return r
}

// Golden runs the golden test NAME of a transform over Users.
func Golden(t *testing.T, tr transforms.Transform, name string) {
	t.Helper()
	GoldenTable(t, tr, name, Users)
}

// GoldenTable runs the golden test NAME of a transform over a source table.
func GoldenTable(t *testing.T, tr transforms.Transform, name string, tbl schema.Table) {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", name+".in.jsonl"))
	require.NoError(t, err)
	b := schema.Batch{Deltas: []schema.Delta{{Table: tbl, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}}
	sc := bufio.NewScanner(bytes.NewReader(in))
	for n := uint64(1); sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %d", n)
		op, err := schema.ParseOp(l.Op)
		require.NoError(t, err)
		c := schema.Change{Op: op, Table: tbl.ID, Version: 1, Pos: offsets.AppendUint(nil, n), TxID: fmt.Sprint(100 + n),
			Key: row(t, tbl, l.Key), Before: row(t, tbl, l.Before), After: row(t, tbl, l.After)}
		if l.CommitTS != "" {
			c.CommitTS, err = time.Parse(time.RFC3339, l.CommitTS)
			require.NoError(t, err)
		}
		b.Changes = append(b.Changes, c)
	}
	chain := transforms.NewChain(transforms.Step{Name: name, Transform: tr})
	require.NoError(t, chain.ApplyBatch(&b))
	var out bytes.Buffer
	shape, err := json.Marshal(b.Deltas[0].Table)
	require.NoError(t, err)
	fmt.Fprintf(&out, "{\"schema\":%s}\n", shape)
	for _, c := range b.Changes {
		fmt.Fprintf(&out, `{"op":%q,"table":%q`, c.Op, c.Table)
		for _, img := range []struct {
			name string
			r    schema.Row
		}{{"key", c.Key}, {"before", c.Before}, {"after", c.After}} {
			if img.r != nil {
				fmt.Fprintf(&out, `,%q:%s`, img.name, img.r.AppendJSON(nil))
			}
		}
		out.WriteString("}\n")
	}
	path := filepath.Join("testdata", name+".golden.jsonl")
	if *update {
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: run go test -update and review it")
	require.Equal(t, string(want), out.String())
}
