package mysql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // the parser's value expressions (library requirement)
)

// ddlEffect is what a DDL statement does to the captured tables.
type ddlEffect struct {
	truncate []schema.TableID
	dropped  []schema.TableID
	renamed  map[schema.TableID]schema.TableID // old → new table name
	expect   map[schema.TableID]*expectation   // column changes the next TABLE_MAP must show
}

// expectation is what an ALTER TABLE said about a table's columns.
type expectation struct {
	added, dropped []string
	renames        map[string]string // old → new column name
	ddl            string
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
			e := &expectation{renames: map[string]string{}, ddl: query}
			for _, spec := range s.Specs {
				switch spec.Tp {
				case ast.AlterTableAddColumns:
					for _, c := range spec.NewColumns {
						e.added = append(e.added, c.Name.Name.O)
					}
				case ast.AlterTableDropColumn:
					e.dropped = append(e.dropped, spec.OldColumnName.Name.O)
				case ast.AlterTableRenameColumn:
					e.renames[spec.OldColumnName.Name.O] = spec.NewColumnName.Name.O
				case ast.AlterTableChangeColumn:
					if len(spec.NewColumns) > 0 && !strings.EqualFold(spec.OldColumnName.Name.O, spec.NewColumns[0].Name.Name.O) {
						e.renames[spec.OldColumnName.Name.O] = spec.NewColumns[0].Name.Name.O
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
	if e == nil || d == nil {
		return nil
	}
	has := func(name string) bool {
		_, ok := d.Table.Column(name)
		return ok
	}
	var problems []string
	for _, a := range e.added {
		if !has(a) {
			problems = append(problems, "added column "+a+" is missing")
		}
	}
	for _, x := range e.dropped {
		if has(x) {
			problems = append(problems, "dropped column "+x+" is still there")
		}
	}
	for old, nw := range e.renames {
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
	for old, nw := range e.renames {
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
