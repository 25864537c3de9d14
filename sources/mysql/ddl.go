package mysql

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	"github.com/pingcap/tidb/pkg/parser/test_driver" // the parser's value expressions (library requirement)
)

// ddlEffect is what a DDL statement does to the captured tables.
type ddlEffect struct {
	truncate []schema.TableID
	dropped  []schema.TableID
	renamed  map[schema.TableID]schema.TableID // old → new table name
	expect   map[schema.TableID]*expectation   // column changes the next TABLE_MAP must show
}

// expectation is what an ALTER TABLE said about a table's columns. While one
// waits for the table's next TABLE_MAP, it rides in every checkpoint (JSON), so
// a run that resumes after the DDL still knows it.
type expectation struct {
	Added   []string            `json:"added,omitempty"`
	Dropped []string            `json:"dropped,omitempty"`
	Renames map[string]string   `json:"renames,omitempty"` // old → new column name
	Fills   map[string]fillSpec `json:"fills,omitempty"`   // added column → what the rows already there hold
	// Unparsed: an ALTER of the table that cdcd's parser could not read; a
	// column it added holds values cdcd cannot know.
	Unparsed bool `json:"unparsed,omitempty"`
	ddl      string
}

// alterRE finds the table of an ALTER TABLE the parser could not read: one
// name, or two joined by a dot, each bare or in backquotes.
var alterRE = regexp.MustCompile("(?is)^\\s*ALTER\\s+(?:(?:ONLINE|OFFLINE|IGNORE)\\s+)*TABLE\\s+(?:IF\\s+EXISTS\\s+)?" +
	"(`(?:[^`]|``)+`|[\\w$]+)(?:\\s*\\.\\s*(`(?:[^`]|``)+`|[\\w$]+))?")

// unparsedAlter returns the table of an ALTER TABLE statement the parser
// rejected, if it is one.
func unparsedAlter(query, defaultDB string) (schema.TableID, bool) {
	m := alterRE.FindStringSubmatch(query)
	if m == nil {
		return schema.TableID{}, false
	}
	name := func(s string) string {
		if strings.HasPrefix(s, "`") {
			return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
		}
		return s
	}
	if m[2] != "" {
		return schema.TableID{Namespace: name(m[1]), Name: name(m[2])}, true
	}
	return schema.TableID{Namespace: defaultDB, Name: name(m[1])}, true
}

// fillSpec is what an ADD COLUMN says the rows already in the table hold in
// the new column: MySQL and MariaDB fill it in without logging a row. The zero
// fillSpec is NULL.
type fillSpec struct {
	Literal  *literal `json:"literal,omitempty"`  // DEFAULT <literal>
	Implicit bool     `json:"implicit,omitempty"` // NOT NULL without a DEFAULT: the type's implicit default
	Unknown  string   `json:"unknown,omitempty"`  // why the value cannot be known
}

// literal is a DEFAULT's constant as the DDL spelled it.
type literal struct {
	Bytes  []byte `json:"bytes"`            // a string's bytes, a number's digits
	Number bool   `json:"number,omitempty"` // a numeric literal (digits, sign, point, exponent)
	Hex    bool   `json:"hex,omitempty"`    // a hex or bit literal: bytes in a string column, a number in a numeric one
}

// fillOf reads a column definition of ADD COLUMN.
func fillOf(c *ast.ColumnDef) fillSpec {
	notNull := false
	var def ast.ExprNode
	for _, o := range c.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull, ast.ColumnOptionPrimaryKey:
			notNull = true
		case ast.ColumnOptionNull:
			notNull = false
		case ast.ColumnOptionDefaultValue:
			def = o.Expr
		case ast.ColumnOptionAutoIncrement:
			return fillSpec{Unknown: "an AUTO_INCREMENT column: the server numbered the rows already there"}
		case ast.ColumnOptionGenerated:
			return fillSpec{Unknown: "a generated column: the server computed it for the rows already there"}
		}
	}
	if def == nil {
		if notNull {
			return fillSpec{Implicit: true}
		}
		return fillSpec{}
	}
	neg := false
	if u, ok := def.(*ast.UnaryOperationExpr); ok && u.Op == opcode.Minus {
		neg, def = true, u.V
	}
	v, ok := def.(*test_driver.ValueExpr)
	if !ok {
		return fillSpec{Unknown: "its DEFAULT is an expression (" + exprName(def) + "), which the server evaluated when the column was added"}
	}
	var l literal
	switch v.Kind() {
	case test_driver.KindNull:
		return fillSpec{}
	case test_driver.KindInt64:
		l = literal{Bytes: strconv.AppendInt(nil, v.GetInt64(), 10), Number: true}
	case test_driver.KindUint64:
		l = literal{Bytes: strconv.AppendUint(nil, v.GetUint64(), 10), Number: true}
	case test_driver.KindFloat32, test_driver.KindFloat64:
		l = literal{Bytes: strconv.AppendFloat(nil, v.GetFloat64(), 'g', -1, 64), Number: true}
	case test_driver.KindMysqlDecimal:
		l = literal{Bytes: []byte(v.GetMysqlDecimal().String()), Number: true}
	case test_driver.KindString, test_driver.KindBytes:
		l = literal{Bytes: append([]byte(nil), v.GetBytes()...)}
	case test_driver.KindBinaryLiteral:
		l = literal{Bytes: append([]byte(nil), v.GetBinaryLiteral()...), Hex: true}
	default:
		return fillSpec{Unknown: "its DEFAULT is a constant cdcd does not read"}
	}
	if neg {
		if !l.Number {
			return fillSpec{Unknown: "its DEFAULT is a negated non-number"}
		}
		l.Bytes = append([]byte{'-'}, l.Bytes...)
	}
	return fillSpec{Literal: &l}
}

// exprName names an expression's kind for a message: the function's name, or
// "an expression".
func exprName(e ast.ExprNode) string {
	if f, ok := e.(*ast.FuncCallExpr); ok {
		return strings.ToUpper(f.FnName.O)
	}
	return "an expression"
}

// then is e followed by next, a later ALTER of the same table before its next
// TABLE_MAP: what both did together.
func (e *expectation) then(next *expectation) *expectation {
	out := &expectation{Renames: map[string]string{}, Fills: map[string]fillSpec{}, ddl: e.ddl + "; " + next.ddl, Unparsed: e.Unparsed || next.Unparsed}
	drops := map[string]bool{}
	for _, x := range next.Dropped {
		drops[x] = true
	}
	rename := func(n string) string {
		if to, ok := next.Renames[n]; ok {
			return to
		}
		return n
	}
	for _, a := range e.Added {
		if !drops[a] {
			out.Added = append(out.Added, rename(a))
		}
	}
	out.Added = append(out.Added, next.Added...)
	readded := map[string]bool{}
	for _, a := range next.Added {
		readded[a] = true
	}
	for _, x := range append(slices.Clone(e.Dropped), next.Dropped...) {
		if !readded[x] && !slices.Contains(out.Dropped, x) && !slices.Contains(e.Added, x) {
			out.Dropped = append(out.Dropped, x)
		}
	}
	for old, nw := range e.Renames {
		if !drops[nw] {
			out.Renames[old] = rename(nw)
		}
	}
	for old, nw := range next.Renames {
		if !slices.Contains(e.Added, old) && !slices.ContainsFunc(slices.Collect(maps.Values(e.Renames)), func(v string) bool { return v == old }) {
			out.Renames[old] = nw
		}
	}
	for c, f := range e.Fills {
		if !drops[c] {
			out.Fills[rename(c)] = f
		}
	}
	maps.Copy(out.Fills, next.Fills)
	return out
}

// parseDDL reads a statement with the TiDB parser (MySQL grammar). A statement
// it cannot parse has no effect cdcd relies on: shapes come from TABLE_MAP events.
func parseDDL(p *parser.Parser, query, defaultDB string) (ddlEffect, error) {
	var eff ddlEffect
	stmts, _, err := p.Parse(query, "", "")
	if err != nil {
		return eff, err
	}
	id := func(t *ast.TableName) schema.TableID {
		db := t.Schema.O
		if db == "" {
			db = defaultDB
		}
		return schema.TableID{Namespace: db, Name: t.Name.O}
	}
	for _, st := range stmts {
		switch s := st.(type) {
		case *ast.TruncateTableStmt:
			eff.truncate = append(eff.truncate, id(s.Table))
		case *ast.DropTableStmt:
			if !s.IsView {
				for _, t := range s.Tables {
					eff.dropped = append(eff.dropped, id(t))
				}
			}
		case *ast.RenameTableStmt:
			for _, tt := range s.TableToTables {
				if eff.renamed == nil {
					eff.renamed = map[schema.TableID]schema.TableID{}
				}
				eff.renamed[id(tt.OldTable)] = id(tt.NewTable)
			}
		case *ast.AlterTableStmt:
			e := &expectation{Renames: map[string]string{}, Fills: map[string]fillSpec{}, ddl: query}
			for _, spec := range s.Specs {
				switch spec.Tp {
				case ast.AlterTableAddColumns:
					for _, c := range spec.NewColumns {
						e.Added = append(e.Added, c.Name.Name.O)
						e.Fills[c.Name.Name.O] = fillOf(c)
					}
				case ast.AlterTableDropColumn:
					e.Dropped = append(e.Dropped, spec.OldColumnName.Name.O)
				case ast.AlterTableRenameColumn:
					e.Renames[spec.OldColumnName.Name.O] = spec.NewColumnName.Name.O
				case ast.AlterTableChangeColumn:
					if len(spec.NewColumns) > 0 && !strings.EqualFold(spec.OldColumnName.Name.O, spec.NewColumns[0].Name.Name.O) {
						e.Renames[spec.OldColumnName.Name.O] = spec.NewColumns[0].Name.Name.O
					}
				case ast.AlterTableRenameTable:
					if eff.renamed == nil {
						eff.renamed = map[schema.TableID]schema.TableID{}
					}
					eff.renamed[id(s.Table)] = id(spec.NewTable)
				}
			}
			if eff.expect == nil {
				eff.expect = map[schema.TableID]*expectation{}
			}
			eff.expect[id(s.Table)] = e
		}
	}
	return eff, nil
}

// apply checks a delta against what the DDL said and turns a drop plus an add
// that the DDL names as a rename into a RenameColumn. A TABLE_MAP that
// contradicts the DDL is an error carrying the diff: cdcd never guesses.
func (e *expectation) apply(d *schema.Delta) error {
	if e == nil || d == nil || e.Unparsed {
		return nil
	}
	has := func(name string) bool {
		_, ok := d.Table.Column(name)
		return ok
	}
	var problems []string
	for _, a := range e.Added {
		if !has(a) {
			problems = append(problems, "added column "+a+" is missing")
		}
	}
	for _, x := range e.Dropped {
		if has(x) {
			problems = append(problems, "dropped column "+x+" is still there")
		}
	}
	for old, nw := range e.Renames {
		if has(old) || !has(nw) {
			problems = append(problems, fmt.Sprintf("renamed column %s → %s not as expected", old, nw))
		}
	}
	if len(problems) > 0 {
		var cols []string
		for _, c := range d.Table.Columns {
			cols = append(cols, c.Name)
		}
		return fmt.Errorf("table %s: the binlog's row metadata disagrees with the DDL %q: %s (columns now: %s); the table is halted: check the DDL history, then resync the table",
			d.Table.ID, e.ddl, strings.Join(problems, "; "), strings.Join(cols, ", "))
	}
	for old, nw := range e.Renames {
		di := slices.IndexFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropColumn && c.Column.Name == old })
		ai := slices.IndexFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.AddColumn && c.Column.Name == nw })
		if di < 0 || ai < 0 {
			continue
		}
		oldCol, newCol := d.Changes[di].Column, d.Changes[ai].Column
		renamed := oldCol
		renamed.Name = newCol.Name
		steps := []schema.ColumnChange{{Op: schema.RenameColumn, Column: renamed, Old: &oldCol}}
		if !renamed.Type.Equal(newCol.Type) {
			r := renamed
			steps = append(steps, schema.ColumnChange{Op: schema.AlterColumnType, Column: newCol, Old: &r})
		}
		d.Changes = slices.Replace(d.Changes, ai, ai+1, steps...)
		d.Changes = slices.Delete(d.Changes, di, di+1)
	}
	return nil
}
