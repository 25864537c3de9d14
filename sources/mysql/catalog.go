package mysql

import (
	"context"
	"fmt"
	"github.com/cdcd-dev/cdcd/catalog"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
)

// systemSchemas are the server's own databases, never listed.
const systemSchemas = `('mysql', 'information_schema', 'performance_schema', 'sys')`

// Catalog implements sources.Cataloger: the server's base tables outside its
// system databases, a page at a time, with their columns, primary key,
// estimate, and what stands in the way of replicating them.
func (s *Source) Catalog(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	afterNS, afterName, err := catalog.ParseCursor(q.After)
	if err != nil {
		return catalog.Page{}, err
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return catalog.Page{}, err
	}
	defer conn.Close()
	search := ""
	if q.Search != "" {
		search = catalog.LikePattern(q.Search)
	}
	// names first: TABLE_ROWS and ENGINE make the server open every table
	// the query scans (3.5 s for a first page among 10,000 tables), so they
	// are read for the page's tables alone, a database at a time
	res, err := conn.Execute(`SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN `+systemSchemas+`
			AND (? = '' OR TABLE_SCHEMA = ?) AND (? = '' OR LOWER(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) LIKE LOWER(?))
			AND (CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY)) > (CAST(? AS BINARY), CAST(? AS BINARY))
		ORDER BY CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY) LIMIT ?`,
		q.Schema, q.Schema, search, search, afterNS, afterName, q.Limit+1)
	if err != nil {
		return catalog.Page{}, fmt.Errorf("read the catalog: %w", err)
	}
	var page catalog.Page
	index := map[schema.TableID]int{}
	for i := range res.RowNumber() {
		ns, _ := res.GetString(i, 0)
		name, _ := res.GetString(i, 1)
		t := catalog.Table{Table: schema.TableID{Namespace: ns, Name: name}, Columns: []catalog.Column{}, PrimaryKey: []string{}}
		index[t.Table] = len(page.Tables)
		page.Tables = append(page.Tables, t)
	}
	for _, t := range page.Tables[min(q.Limit, len(page.Tables)):] {
		delete(index, t.Table)
	}
	page.Cut(q.Limit)
	byDB := map[string][]any{}
	var dbs []string
	for _, t := range page.Tables {
		if _, ok := byDB[t.Table.Namespace]; !ok {
			dbs = append(dbs, t.Table.Namespace)
		}
		byDB[t.Table.Namespace] = append(byDB[t.Table.Namespace], t.Table.Name)
	}
	for _, db := range dbs {
		names := byDB[db]
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
		sres, err := conn.Execute(`SELECT TABLE_NAME, TABLE_ROWS, ENGINE FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (`+marks+`)`, append([]any{db}, names...)...)
		if err != nil {
			return catalog.Page{}, fmt.Errorf("read the catalog's estimates: %w", err)
		}
		for i := range sres.RowNumber() {
			name, _ := sres.GetString(i, 0)
			j, ok := index[schema.TableID{Namespace: db, Name: name}]
			if !ok {
				continue
			}
			t := &page.Tables[j]
			if null, _ := sres.IsNull(i, 1); !null {
				n, _ := sres.GetInt(i, 1)
				t.EstimatedRows = &n
			}
			if engine, _ := sres.GetString(i, 2); engine != "" && !strings.EqualFold(engine, "InnoDB") {
				t.Problems = append(t.Problems, fmt.Sprintf("engine %s is not transactional: the snapshot cannot be consistent with the binlog, and a failed statement may be half applied; ALTER TABLE %s ENGINE = InnoDB", engine, quoteID(t.Table)))
			}
		}
	}
	if len(page.Tables) > 0 {
		// the page's tables, as parameters: (?, ?), (?, ?) …
		marks := make([]string, len(page.Tables))
		args := make([]any, 0, 2*len(page.Tables))
		for i, t := range page.Tables {
			marks[i] = "(?, ?)"
			args = append(args, t.Table.Namespace, t.Table.Name)
		}
		in := "(TABLE_SCHEMA, TABLE_NAME) IN (" + strings.Join(marks, ", ") + ")"
		cres, err := conn.Execute(`SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS
			WHERE `+in+` ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args...)
		if err != nil {
			return catalog.Page{}, fmt.Errorf("read the catalog's columns: %w", err)
		}
		for i := range cres.RowNumber() {
			ns, _ := cres.GetString(i, 0)
			name, _ := cres.GetString(i, 1)
			var c catalog.Column
			c.Name, _ = cres.GetString(i, 2)
			c.Type, _ = cres.GetString(i, 3)
			nullable, _ := cres.GetString(i, 4)
			c.Nullable = nullable == "YES"
			if j, ok := index[schema.TableID{Namespace: ns, Name: name}]; ok {
				page.Tables[j].Columns = append(page.Tables[j].Columns, c)
			}
		}
		kres, err := conn.Execute(`SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
			WHERE CONSTRAINT_NAME = 'PRIMARY' AND `+in+` ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args...)
		if err != nil {
			return catalog.Page{}, fmt.Errorf("read the catalog's primary keys: %w", err)
		}
		for i := range kres.RowNumber() {
			ns, _ := kres.GetString(i, 0)
			name, _ := kres.GetString(i, 1)
			col, _ := kres.GetString(i, 2)
			if j, ok := index[schema.TableID{Namespace: ns, Name: name}]; ok {
				page.Tables[j].PrimaryKey = append(page.Tables[j].PrimaryKey, col)
			}
		}
	}
	for i := range page.Tables {
		if t := &page.Tables[i]; len(t.PrimaryKey) == 0 {
			t.Problems = append(t.Problems, fmt.Sprintf("no primary key: its updates and deletes cannot be matched at the destination; ALTER TABLE %s ADD PRIMARY KEY (…)", quoteID(t.Table)))
		}
	}
	if q.After == "" && q.Search == "" && q.Schema == "" {
		sres, err := conn.Execute(`SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES
			WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ` + systemSchemas + ` GROUP BY TABLE_SCHEMA ORDER BY CAST(TABLE_SCHEMA AS BINARY)`)
		if err != nil {
			return catalog.Page{}, fmt.Errorf("read the catalog's databases: %w", err)
		}
		for i := range sres.RowNumber() {
			var sc catalog.Schema
			sc.Name, _ = sres.GetString(i, 0)
			n, _ := sres.GetInt(i, 1)
			sc.Tables = int(n)
			page.Schemas = append(page.Schemas, sc)
		}
	}
	return page, nil
}

func quoteID(id schema.TableID) string { return quoteIdent(id.Namespace) + "." + quoteIdent(id.Name) }

// Sample implements sources.Sampler: the table's first rows by primary key,
// read as the snapshot reads them, on a connection of its own.
func (s *Source) Sample(ctx context.Context, id schema.TableID, limit int) (schema.Table, []schema.Row, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return schema.Table{}, nil, err
	}
	defer conn.Close()
	exec := func(q string, args ...any) (*gmysql.Result, error) { return conn.Execute(q, args...) }
	cols, t, err := s.describe(exec, id)
	if err != nil {
		return schema.Table{}, nil, err
	}
	tp := &tablePlan{id: id, cols: cols, table: t}
	first, _ := tp.queries(limit)
	res, err := readChunk(conn, first)
	if err != nil {
		return schema.Table{}, nil, fmt.Errorf("read %s: %w", id, err)
	}
	rows := make([]schema.Row, 0, res.RowNumber())
	for i := range res.RowNumber() {
		row := make(schema.Row, len(cols))
		for j := range cols {
			v, err := res.GetValue(i, j)
			if err != nil {
				return schema.Table{}, nil, err
			}
			val, err := s.dec.queried(&cols[j], v)
			if err != nil {
				return schema.Table{}, nil, fmt.Errorf("table %s column %s: %w", id, cols[j].name, err)
			}
			row[j] = schema.Field{Name: cols[j].name, Value: val}
		}
		rows = append(rows, row)
	}
	return t, rows, nil
}
