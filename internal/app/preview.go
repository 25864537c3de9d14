package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/catalog"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"go.yaml.in/yaml/v3"
)

// PreviewRequest asks to run a transform chain on sample rows: given rows (with
// an optional table shape), or rows read live from a source table.
type PreviewRequest struct {
	Transforms []config.Transform `yaml:"transforms"`
	// Table is the shape of the given rows; without it, columns and types are
	// inferred from the rows (numbers with a fraction as decimals, objects as
	// JSON) and the key is id, or the first column.
	Table *PreviewTable `yaml:"table"`
	// Rows are the sample rows, as objects of column to value (the new images of
	// inserts).
	Rows []yaml.Node `yaml:"rows"`
	// Source reads the rows live instead: a stored connection, a table, a limit.
	Source *PreviewSource `yaml:"source"`
}

// PreviewTable declares the shape of given rows.
type PreviewTable struct {
	Name       string   `yaml:"name"`
	PrimaryKey []string `yaml:"primary_key"`
	Columns    []struct {
		Name     string `yaml:"name"`
		Type     string `yaml:"type"`
		Nullable *bool  `yaml:"nullable"`
	} `yaml:"columns"`
}

// PreviewSource reads sample rows from a live table.
type PreviewSource struct {
	Connection string `yaml:"connection"`
	Table      string `yaml:"table"`
	Limit      int    `yaml:"limit"`
}

// PreviewRow is one sample row before and after the chain.
type PreviewRow struct {
	Before schema.Row `json:"before"`
	// After is the row as the sink would get it; absent when the chain dropped
	// it (Dropped) or failed on it (Error).
	After   schema.Row `json:"after,omitempty"`
	Table   string     `json:"table,omitempty"`
	Dropped bool       `json:"dropped,omitempty"`
	Error   string     `json:"error,omitempty"`
}

// PreviewResult is the chain's output shape and rows.
type PreviewResult struct {
	Input  schema.Table `json:"input"`
	Output schema.Table `json:"output"`
	Rows   []PreviewRow `json:"rows"`
}

// maxPreviewRows bounds a preview.
const maxPreviewRows = 1000

// ParsePreview decodes a preview request (JSON or YAML) strictly.
func ParsePreview(b []byte) (PreviewRequest, error) {
	var r PreviewRequest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r, nil
}

// Preview runs a transform chain on sample rows and returns each row before and
// after, with the destination shape. Nothing is written anywhere; a transform
// that does not build, or a shape it rejects, is an error with its path.
//
// Secrets the transforms reference resolve as in a pipeline (within the
// server's allow-list), but no resolved value shows in the answer: a row value
// or error that would carry one shows the placeholder instead.
func (a *App) Preview(ctx context.Context, req PreviewRequest) (PreviewResult, error) {
	var seen []string
	res, err := a.preview(ctx, req, a.Secrets.Recording(&seen))
	if len(seen) == 0 {
		return res, err
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		out := make(config.Problems, len(ps))
		for i, p := range ps {
			out[i] = config.Problem{Path: p.Path, Message: scrub(p.Message, seen)}
		}
		return res, out
	}
	if err != nil {
		return res, scrubbedError{msg: scrub(err.Error(), seen), err: err}
	}
	for i := range res.Rows {
		r := &res.Rows[i]
		r.Before, r.After, r.Error = scrubRow(r.Before, seen), scrubRow(r.After, seen), scrub(r.Error, seen)
	}
	return res, nil
}

// scrubbedError is err shown without secrets; errors.Is and As still see err.
type scrubbedError struct {
	msg string
	err error
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }

// scrubRow returns r with every value that holds a resolved secret replaced:
// strings keep their other text, any other value becomes the placeholder.
func scrubRow(r schema.Row, secrets []string) schema.Row {
	for i, f := range r {
		text := string(f.Value.AppendJSON(nil))
		if !slices.ContainsFunc(secrets, func(s string) bool { return strings.Contains(text, s) }) {
			continue
		}
		if f.Value.Kind() == schema.KindString {
			r[i].Value = schema.String(scrub(f.Value.Text(), secrets))
		} else {
			r[i].Value = schema.String(redact.Placeholder)
		}
	}
	return r
}

func (a *App) preview(ctx context.Context, req PreviewRequest, sec config.Secrets) (PreviewResult, error) {
	var ps config.Problems
	steps := make([]transforms.Step, 0, len(req.Transforms))
	named := config.Pipeline{Transforms: req.Transforms}.WithDefaults().Transforms // default step names
	for i, t := range named {
		path := fmt.Sprintf("transforms[%d]", i)
		f, ok := a.Registry.Transforms[t.Type]
		if !ok {
			ps = append(ps, config.Problem{Path: path + ".type", Message: fmt.Sprintf("unknown transform %q", t.Type)})
			continue
		}
		node, err := sec.Expand(&t.Config, path+".config")
		if err != nil {
			var eps config.Problems
			if errors.As(err, &eps) {
				ps = append(ps, eps...)
				continue
			}
			return PreviewResult{}, err
		}
		tr, err := f.New(node, transforms.Deps{Logger: a.log()})
		if err != nil {
			ps = append(ps, config.Problem{Path: path + ".config", Message: err.Error()})
			continue
		}
		steps = append(steps, transforms.Step{Name: t.Name, Tables: t.Tables, Transform: tr})
	}
	table, rows, err := a.previewInput(ctx, req, sec)
	if err != nil {
		var eps config.Problems
		if !errors.As(err, &eps) {
			return PreviewResult{}, err
		}
		ps = append(ps, eps...)
	}
	if len(ps) > 0 {
		return PreviewResult{}, ps
	}
	var failed *transforms.Skipped
	chain := transforms.NewChain(steps...).SkipErrors(func(s transforms.Skipped) { failed = &s })
	b := schema.Batch{Deltas: []schema.Delta{{Table: table, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}}
	if err := chain.ApplyBatch(&b); err != nil {
		return PreviewResult{}, config.Problems{{Path: "transforms", Message: err.Error()}}
	}
	res := PreviewResult{Input: table, Output: b.Deltas[0].Table, Rows: make([]PreviewRow, 0, len(rows))}
	now := time.Now().UTC()
	for i, r := range rows {
		c := schema.Change{Op: schema.OpInsert, Table: table.ID, Version: table.Version, Pos: []byte(fmt.Sprint(i)), CommitTS: now, After: r}
		for _, k := range table.PrimaryKey {
			v, _ := r.Get(k)
			c.Key = append(c.Key, schema.Field{Name: k, Value: v})
		}
		row := PreviewRow{Before: r}
		b := schema.Batch{Changes: []schema.Change{c}}
		failed = nil
		switch err := chain.ApplyBatch(&b); {
		case err != nil:
			row.Error = err.Error()
		case failed != nil:
			row.Error = fmt.Sprintf("transform %s: %s", failed.Transform, failed.Error)
		case len(b.Changes) == 0:
			row.Dropped = true
		default:
			row.After, row.Table = b.Changes[0].After, b.Changes[0].Table.String()
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

func (a *App) previewInput(ctx context.Context, req PreviewRequest, sec config.Secrets) (schema.Table, []schema.Row, error) {
	bad := func(path, format string, args ...any) (schema.Table, []schema.Row, error) {
		return schema.Table{}, nil, config.Problems{{Path: path, Message: fmt.Sprintf(format, args...)}}
	}
	switch {
	case req.Source != nil && len(req.Rows) > 0:
		return bad("rows", "give rows or a source, not both")
	case req.Source != nil:
		return a.sampleSource(ctx, *req.Source, sec)
	case len(req.Rows) == 0:
		return bad("rows", "give sample rows, or a source to read them from")
	case len(req.Rows) > maxPreviewRows:
		return bad("rows", "at most %d rows", maxPreviewRows)
	}
	table := schema.Table{ID: schema.TableID{Namespace: "public", Name: "sample"}, Version: 1}
	var declared map[string]schema.Type
	if t := req.Table; t != nil {
		if t.Name != "" {
			table.ID = schema.ParseTableID(t.Name)
		}
		declared = map[string]schema.Type{}
		for i, c := range t.Columns {
			ty, err := transforms.ParseType(c.Type)
			if err != nil {
				return bad(fmt.Sprintf("table.columns[%d].type", i), "%v", err)
			}
			table.Columns = append(table.Columns, schema.Column{Name: c.Name, Type: ty, Nullable: c.Nullable == nil || *c.Nullable})
			declared[c.Name] = ty
		}
		table.PrimaryKey = t.PrimaryKey
	}
	rows := make([]schema.Row, 0, len(req.Rows))
	for i, n := range req.Rows {
		if n.Kind != yaml.MappingNode {
			return bad(fmt.Sprintf("rows[%d]", i), "a row is an object of column to value")
		}
		var r schema.Row
		for j := 0; j+1 < len(n.Content); j += 2 {
			name := n.Content[j].Value
			v, inferred, err := nodeValue(n.Content[j+1])
			if err != nil {
				return bad(fmt.Sprintf("rows[%d].%s", i, name), "%v", err)
			}
			if ty, ok := declared[name]; ok {
				if v, err = transforms.Convert(v, ty); err != nil {
					return bad(fmt.Sprintf("rows[%d].%s", i, name), "%v", err)
				}
			} else if declared != nil {
				return bad(fmt.Sprintf("rows[%d].%s", i, name), "not a column of the declared table")
			} else if _, ok := table.Column(name); !ok {
				table.Columns = append(table.Columns, schema.Column{Name: name, Type: inferred, Nullable: true})
			}
			r = append(r, schema.Field{Name: name, Value: v})
		}
		rows = append(rows, r)
	}
	if declared == nil { // rows in table order, missing columns NULL
		for i, r := range rows {
			out := make(schema.Row, len(table.Columns))
			for j, c := range table.Columns {
				v, _ := r.Get(c.Name)
				out[j] = schema.Field{Name: c.Name, Value: v}
			}
			rows[i] = out
		}
	}
	if len(table.Columns) == 0 {
		return bad("rows", "the rows have no columns: give each row its columns, or declare them in table.columns")
	}
	if len(table.PrimaryKey) == 0 {
		table.PrimaryKey = []string{table.Columns[0].Name}
		if _, ok := table.Column("id"); ok {
			table.PrimaryKey = []string{"id"}
		}
	}
	for i := range table.Columns {
		if table.Columns[i].Name == table.PrimaryKey[0] {
			table.Columns[i].Nullable = false
		}
	}
	if err := table.Validate(); err != nil {
		return bad("table", "%v", err)
	}
	return table, rows, nil
}

// nodeValue reads a sample value and the type it suggests.
func nodeValue(n *yaml.Node) (schema.Value, schema.Type, error) {
	text := schema.Type{Kind: schema.KindString, Name: "text"}
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		var x any
		if err := n.Decode(&x); err != nil {
			return schema.Value{}, text, err
		}
		b, err := json.Marshal(x)
		if err != nil {
			return schema.Value{}, text, err
		}
		return schema.JSON(string(b)), schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, nil
	case yaml.ScalarNode:
	default:
		return schema.Value{}, text, errors.New("unsupported value")
	}
	switch n.Tag {
	case "!!null":
		return schema.Null(), text, nil
	case "!!bool":
		return schema.Bool(strings.EqualFold(n.Value, "true")), schema.Type{Kind: schema.KindBool, Name: "bool"}, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return schema.Int(i), schema.Type{Kind: schema.KindInt, Name: "int8"}, nil
		}
		fallthrough
	case "!!float":
		d, err := schema.Decimal(n.Value)
		if err != nil {
			return schema.Value{}, text, err
		}
		return d, schema.Type{Kind: schema.KindDecimal, Name: "numeric"}, nil
	}
	return schema.String(n.Value), text, nil
}

// sampleSource reads rows from a stored connection's table.
func (a *App) sampleSource(ctx context.Context, src PreviewSource, sec config.Secrets) (schema.Table, []schema.Row, error) {
	limit := src.Limit
	if limit == 0 {
		limit = 10
	}
	if limit < 1 || limit > maxPreviewRows {
		return schema.Table{}, nil, config.Problems{{Path: "source.limit", Message: fmt.Sprintf("must be from 1 to %d", maxPreviewRows)}}
	}
	if src.Table == "" {
		return schema.Table{}, nil, config.Problems{{Path: "source.table", Message: "name the table to read, e.g. public.users"}}
	}
	s, c, err := a.connectionSource(ctx, src.Connection, src.Table, sec, "source.connection")
	if err != nil {
		return schema.Table{}, nil, err
	}
	sm, ok := s.(sources.Sampler)
	if !ok {
		return schema.Table{}, nil, config.Problems{{Path: "source.connection", Message: fmt.Sprintf("a %s source cannot read sample rows; give rows instead", c.Type)}}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t, rows, err := sm.Sample(ctx, schema.ParseTableID(src.Table), limit)
	if err != nil {
		return schema.Table{}, nil, config.Problems{{Path: "source", Message: fmt.Sprintf("read sample rows of %s: %v", src.Table, redact.Text(err.Error()))}}
	}
	return t, rows, nil
}

// connectionSource builds the source of stored connection name to read
// table outside any pipeline (a connection leaves the tables to its
// pipelines: it names that one); path prefixes the problems it reports.
func (a *App) connectionSource(ctx context.Context, name, table string, sec config.Secrets, path string) (sources.Source, config.Connection, error) {
	sc, err := a.Store.GetConnection(ctx, name)
	if err != nil {
		return nil, config.Connection{}, fmt.Errorf("%s %q: %w", path, name, err)
	}
	c, err := config.ParseConnection(sc.Config)
	if err != nil {
		return nil, c, err
	}
	f, ok := a.Registry.Sources[c.Type]
	if !ok {
		return nil, c, config.Problems{{Path: path, Message: fmt.Sprintf("connection %s is a %s, not a source", name, c.Type)}}
	}
	node, err := sec.Expand(&c.Config, path+".config")
	if err != nil {
		return nil, c, err
	}
	if node == nil || node.Kind != yaml.MappingNode {
		node = &yaml.Node{Kind: yaml.MappingNode}
	}
	hasTables := false
	for i := 0; i+1 < len(node.Content); i += 2 {
		hasTables = hasTables || node.Content[i].Value == "tables"
	}
	if !hasTables {
		node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "tables"},
			&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: table}}})
	}
	s, err := f.New(node, sources.Deps{Pipeline: "preview", Logger: a.log()})
	if err != nil {
		// the stored connection does not make a source that can read one
		// table (a datagen connection, whose tables is a count)
		return nil, c, config.Problems{{Path: path, Message: fmt.Sprintf("connection %s cannot be read from as a %s source: %s", name, c.Type, config.PlainYAML(err.Error()))}}
	}
	return s, c, nil
}

// ErrUnavailable wraps a failure of a server cdcd reads from for a request
// (the API answers 502).
var ErrUnavailable = errors.New("the server did not answer")

// Catalog lists a page of the tables of a connection's server: as a source
// (the tables to pick) or as a destination (the tables that exist there).
// role "" is the role the connection's type has: a source when it has both.
func (a *App) Catalog(ctx context.Context, name, role string, q catalog.Query) (catalog.Page, error) {
	var seen []string
	sec := a.Secrets.Recording(&seen)
	var list func(context.Context, catalog.Query) (catalog.Page, error)
	if role == "" {
		role = "source"
		if sc, err := a.Store.GetConnection(ctx, name); err == nil {
			if c, err := config.ParseConnection(sc.Config); err == nil {
				if _, ok := a.Registry.Sources[c.Type]; !ok {
					role = "destination"
				}
			}
		}
	}
	switch role {
	case "source":
		s, c, err := a.connectionSource(ctx, name, "catalog.catalog", sec, "connection")
		if err != nil {
			return catalog.Page{}, err
		}
		cat, ok := s.(sources.Cataloger)
		if !ok {
			return catalog.Page{}, config.Problems{{Path: "connection", Message: fmt.Sprintf("a %s source has no catalog to list", c.Type)}}
		}
		list = cat.Catalog
	default:
		snk, c, err := a.connectionSink(ctx, name, sec)
		if err != nil {
			return catalog.Page{}, err
		}
		cat, ok := snk.(sinks.Cataloger)
		if !ok {
			return catalog.Page{}, config.Problems{{Path: "connection", Message: fmt.Sprintf("a %s destination has no tables to list", c.Type)}}
		}
		list = cat.Catalog
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	page, err := list(ctx, q)
	if err != nil {
		return catalog.Page{}, fmt.Errorf("list the tables of %s: %s: %w", name, scrub(redact.Text(err.Error()), seen), ErrUnavailable)
	}
	return page, nil
}

// connectionSink builds the sink of stored connection name, to read from.
func (a *App) connectionSink(ctx context.Context, name string, sec config.Secrets) (sinks.Sink, config.Connection, error) {
	sc, err := a.Store.GetConnection(ctx, name)
	if err != nil {
		return nil, config.Connection{}, fmt.Errorf("connection %q: %w", name, err)
	}
	c, err := config.ParseConnection(sc.Config)
	if err != nil {
		return nil, c, err
	}
	f, ok := a.Registry.Sinks[c.Type]
	if !ok {
		return nil, c, config.Problems{{Path: "connection", Message: fmt.Sprintf("connection %s is a %s, not a destination", name, c.Type)}}
	}
	node, err := sec.Expand(&c.Config, "connection.config")
	if err != nil {
		return nil, c, err
	}
	snk, err := f.New(node, sinks.Deps{Pipeline: "catalog", Logger: a.log()})
	if err != nil {
		return nil, c, config.Problems{{Path: "connection", Message: fmt.Sprintf("connection %s as a destination: %v", name, err)}}
	}
	return snk, c, nil
}
