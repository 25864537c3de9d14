// Package filter is the filter transform: it keeps or drops changes by an
// expression over the row, the operation and metadata, in expr-lang
// (github.com/expr-lang/expr), compiled and type-checked once at config time.
//
// The expression sees: op ("c", "u", "d", "r", "t"), row (the new image, or the
// old one for deletes: a map of column to value), before (the old image, when
// the source has it), key, table ("namespace.name") and commit_ts (a time).
// Values are Go values: integers int64/uint64, decimals float64 (for comparison
// only: the row keeps its exact text), strings, bools, times, nil for NULL.
package filter

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Config configures the filter.
type Config struct {
	// Keep is the expression; a change is kept when it is true.
	Keep string `yaml:"keep" json:"keep"`
	// Drop is the opposite: a change is dropped when it is true. Set one of them.
	Drop string `yaml:"drop" json:"drop"`
}

// opNames are the ops as the expression sees them, boxed once.
var opNames = func() (out [256]any) {
	for i := range out {
		out[i] = schema.Op(i).String()
	}
	return out
}()

// sampleEnv is the expression's environment with a value of each name's type,
// for the checker. At run time the same names hold the change's values; a map
// (not a struct) keeps the VM's lookups free of reflection.
func sampleEnv() map[string]any {
	return map[string]any{
		"op": "", "row": map[string]any{}, "before": map[string]any{}, "key": map[string]any{},
		"table": "", "commit_ts": time.Time{},
	}
}

// Filter is the transform.
type Filter struct {
	prog   *vm.Program
	negate bool
	// the top-level names the expression reads
	usesTS, usesTable, usesRow, usesBefore, usesKey bool
	// cols are the columns the expression reads by name from row, before and
	// key; only those are converted per change unless whole is set for the map
	// (the expression indexes it dynamically or passes it along).
	cols  map[string][]string
	whole map[string]bool

	// scratch reused across calls (a chain applies from one goroutine)
	vm   vm.VM
	env  map[string]any
	maps map[string]map[string]any
}

// New compiles the expression; a syntax or type error names the problem.
func New(c Config) (*Filter, error) {
	src, negate := c.Keep, false
	switch {
	case c.Keep != "" && c.Drop != "":
		return nil, errors.New("set keep or drop, not both")
	case c.Keep == "" && c.Drop == "":
		return nil, errors.New("keep: required (an expression, e.g. op != \"d\" && row.status != \"test\")")
	case c.Drop != "":
		src, negate = c.Drop, true
	}
	prog, err := expr.Compile(src, expr.Env(sampleEnv()), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	// build per change only the maps, and the columns, the expression reads
	v := &refs{ids: map[string]int{}, members: map[string]int{}, cols: map[string][]string{}}
	if tree, err := parser.Parse(src); err == nil {
		ast.Walk(&tree.Node, v)
	}
	f := &Filter{prog: prog, negate: negate, cols: v.cols, whole: map[string]bool{}, maps: map[string]map[string]any{}, env: sampleEnv()}
	for id, n := range v.ids {
		f.whole[id] = n > v.members[id]
	}
	uses := func(id string) bool { return v.ids[id] > 0 }
	f.usesTS, f.usesTable, f.usesRow, f.usesBefore, f.usesKey = uses("commit_ts"), uses("table"), uses("row"), uses("before"), uses("key")
	return f, nil
}

// refs collects the identifiers an expression reads and its static column
// accesses (row.x, row["x"]) of the row maps.
type refs struct {
	ids     map[string]int
	members map[string]int
	cols    map[string][]string
}

func (v *refs) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		v.ids[x.Value]++
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		prop, ok2 := x.Property.(*ast.StringNode)
		if ok && ok2 && (id.Value == "row" || id.Value == "before" || id.Value == "key") {
			v.members[id.Value]++
			if !slices.Contains(v.cols[id.Value], prop.Value) {
				v.cols[id.Value] = append(v.cols[id.Value], prop.Value)
			}
		}
	}
}

// Factory returns the filter's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{} },
		New: component.Decoded(func(c Config, _ transforms.Deps) (transforms.Transform, error) {
			return New(c)
		}),
	}
}

// Schema leaves shapes as they are. A column the expression reads that the table
// does not have (dropped or renamed at the source, or a table the transform was
// not meant for) is an error: the expression would silently see NULL.
func (f *Filter) Schema(in schema.Table) (schema.Table, error) {
	for _, m := range []string{"row", "before"} {
		for _, c := range f.cols[m] {
			if _, ok := in.Column(c); !ok {
				return schema.Table{}, fmt.Errorf("the expression reads %s.%s, which table %s does not have (dropped or renamed at the source?): update the expression, or scope the transform with tables", m, c, in.ID)
			}
		}
	}
	for _, c := range f.cols["key"] {
		if !slices.Contains(in.PrimaryKey, c) {
			return schema.Table{}, fmt.Errorf("the expression reads key.%s, which is not in the primary key of %s (%s)", c, in.ID, strings.Join(in.PrimaryKey, ", "))
		}
	}
	return in, nil
}

func (f *Filter) toMap(name string, r schema.Row) map[string]any {
	if f.whole[name] {
		return toMap(r)
	}
	if r == nil {
		return nil
	}
	cols := f.cols[name]
	m := f.maps[name]
	if m == nil {
		m = make(map[string]any, len(cols))
		f.maps[name] = m
	}
	clear(m)
	for _, c := range cols {
		if i := r.Index(c); i >= 0 {
			m[c] = GoValue(r[i].Value)
		}
	}
	return m
}

// Apply evaluates the expression on c. A run-time error (a type mismatch on a
// row) names the expression's problem, never the row's values.
func (f *Filter) Apply(c *schema.Change) (bool, error) {
	e := f.env
	e["op"] = opNames[c.Op]
	if f.usesTS {
		e["commit_ts"] = c.CommitTS
	}
	if f.usesTable {
		e["table"] = c.Table.String()
	}
	if f.usesRow {
		switch {
		case c.After != nil:
			e["row"] = f.toMap("row", c.After)
		case c.Before != nil:
			e["row"] = f.toMap("row", c.Before)
		default:
			e["row"] = f.toMap("row", c.Key)
		}
	}
	if f.usesBefore {
		e["before"] = f.toMap("before", c.Before)
	}
	if f.usesKey {
		e["key"] = f.toMap("key", c.Key)
	}
	out, err := f.vm.Run(f.prog, e)
	if err != nil {
		return false, component.Permanent(fmt.Errorf("filter: %w", err))
	}
	keep, _ := out.(bool)
	return keep != f.negate, nil
}

func toMap(r schema.Row) map[string]any {
	if r == nil {
		return nil
	}
	m := make(map[string]any, len(r))
	for _, f := range r {
		m[f.Name] = GoValue(f.Value)
	}
	return m
}

// GoValue is the value an expression sees.
func GoValue(v schema.Value) any {
	switch v.Kind() {
	case schema.KindNull, schema.KindUnchanged:
		return nil
	case schema.KindBool:
		return v.AsBool()
	case schema.KindInt:
		return v.AsInt()
	case schema.KindUint:
		return v.AsUint()
	case schema.KindFloat:
		return v.AsFloat()
	case schema.KindDecimal:
		f, _ := strconv.ParseFloat(v.Text(), 64)
		return f
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		return v.AsTime()
	case schema.KindBytes:
		return v.AsBytes()
	case schema.KindArray:
		es := v.Elems()
		out := make([]any, len(es))
		for i, e := range es {
			out[i] = GoValue(e)
		}
		return out
	}
	return v.Text()
}
