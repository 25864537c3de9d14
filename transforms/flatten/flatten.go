// Package flatten is the flatten transform: it turns fields of a JSON column
// into columns of their own, each with a declared type. Shapes are decided per
// table version, not per row, so the fields are declared in the config:
//
//	column: payload
//	fields: {color: text, dims.w: float8, tags: json}
//
// makes columns payload_color, payload_dims_w and payload_tags. A field a
// document lacks is NULL; a value that does not convert follows on_error.
package flatten

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the flatten.
type Config struct {
	// Column is the JSON (or text) column to read.
	Column string `yaml:"column" json:"column"`
	// Fields maps a dotted path in the document to its type (see cast).
	Fields map[string]string `yaml:"fields" json:"fields"`
	// Prefix starts each new column's name (default: the column and "_"); the
	// path's dots become underscores.
	Prefix *string `yaml:"prefix" json:"prefix"`
	// DropSource removes the JSON column once flattened (default: keep it).
	DropSource bool `yaml:"drop_source" json:"drop_source"`
	// OnError is what a field that does not convert, or a document that does
	// not parse, does: fail (the row fails) or null.
	OnError string `yaml:"on_error" json:"on_error"`
}

type field struct {
	path []string
	name string
	typ  schema.Type
}

// Flatten is the transform.
type Flatten struct {
	cfg    Config
	fields []field
	null   bool
	nulled prometheus.Counter
}

// New validates c; every problem is reported.
func New(c Config, d transforms.Deps) (*Flatten, error) {
	var errs []error
	if c.Column == "" {
		errs = append(errs, errors.New("column: name the JSON column to flatten"))
	}
	if len(c.Fields) == 0 {
		errs = append(errs, errors.New("fields: map each path to flatten to its type, e.g. {color: text, dims.w: float8}"))
	}
	null, err := transforms.OnError(c.OnError)
	if err != nil {
		errs = append(errs, err)
	}
	prefix := c.Column + "_"
	if c.Prefix != nil {
		prefix = *c.Prefix
	}
	f := &Flatten{cfg: c, null: null, nulled: d.Nulled()}
	paths := make([]string, 0, len(c.Fields))
	for p := range c.Fields {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		ty, err := transforms.ParseType(c.Fields[p])
		if err != nil {
			errs = append(errs, fmt.Errorf("fields.%s: %w", p, err))
			continue
		}
		parts := strings.Split(p, ".")
		if slices.Contains(parts, "") {
			errs = append(errs, fmt.Errorf("fields.%s: a path is names joined by dots", p))
			continue
		}
		f.fields = append(f.fields, field{path: parts, name: prefix + strings.Join(parts, "_"), typ: ty})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// Factory returns the flatten's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{OnError: "fail"} },
		New: component.Decoded(func(c Config, d transforms.Deps) (transforms.Transform, error) {
			return New(c, d)
		}),
	}
}

// Schema adds the new columns (nullable) after the JSON column.
func (f *Flatten) Schema(in schema.Table) (schema.Table, error) {
	i := slices.IndexFunc(in.Columns, func(c schema.Column) bool { return c.Name == f.cfg.Column })
	if i < 0 {
		return schema.Table{}, fmt.Errorf("column %s to flatten is not in table %s (dropped or renamed at the source?): update the transform, or scope it with tables", f.cfg.Column, in.ID)
	}
	if slices.Contains(in.PrimaryKey, f.cfg.Column) {
		return schema.Table{}, fmt.Errorf("column %s is part of the primary key and cannot be flattened", f.cfg.Column)
	}
	if k := in.Columns[i].Type.Kind; k != schema.KindJSON && k != schema.KindString {
		return schema.Table{}, fmt.Errorf("column %s of %s is %s, not JSON or text", f.cfg.Column, in.ID, in.Columns[i].Type)
	}
	out := in.Clone()
	added := make([]schema.Column, 0, len(f.fields))
	for _, fd := range f.fields {
		if _, ok := in.Column(fd.name); ok {
			return schema.Table{}, fmt.Errorf("column %s of %s already exists: set a prefix", fd.name, in.ID)
		}
		added = append(added, schema.Column{Name: fd.name, Type: fd.typ, Nullable: true})
	}
	if e := in.Columns[i].Existing; e.Known() {
		// the rows already there hold the document's default: flattened like theirs
		vals, err := f.values(e.Value)
		if err != nil {
			return schema.Table{}, fmt.Errorf("flatten column %s: the value the rows already there hold (its default): %w", f.cfg.Column, err)
		}
		for j, v := range vals {
			if !v.IsNull() {
				added[j].Existing = &schema.Existing{Value: v}
			}
		}
	}
	keep := 1
	if f.cfg.DropSource {
		keep = 0
	}
	out.Columns = slices.Concat(in.Columns[:i+keep], added, in.Columns[i+1:])
	return out, nil
}

// Apply flattens the document of the before and after images.
func (f *Flatten) Apply(c *schema.Change) (bool, error) {
	for _, r := range []*schema.Row{&c.Before, &c.After} {
		if *r == nil {
			continue
		}
		i := r.Index(f.cfg.Column)
		if i < 0 {
			continue
		}
		vals, err := f.values((*r)[i].Value)
		if err != nil {
			return false, fmt.Errorf("flatten column %s: %w", f.cfg.Column, err)
		}
		keep := 1
		if f.cfg.DropSource {
			keep = 0
		}
		out := make(schema.Row, 0, len(*r)+len(vals))
		out = append(out, (*r)[:i+keep]...)
		for j, fd := range f.fields {
			out = append(out, schema.Field{Name: fd.name, Value: vals[j]})
		}
		*r = append(out, (*r)[i+1:]...)
	}
	return true, nil
}

// values returns the fields' values of one document. The error never carries
// the document.
func (f *Flatten) values(doc schema.Value) ([]schema.Value, error) {
	out := make([]schema.Value, len(f.fields))
	switch doc.Kind() {
	case schema.KindNull:
		return out, nil
	case schema.KindUnchanged:
		for i := range out {
			out[i] = schema.Unchanged() // the stored row keeps its flattened values too
		}
		return out, nil
	}
	var root any
	dec := json.NewDecoder(strings.NewReader(doc.Text()))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		if !f.null {
			return nil, errors.New("the value is not a JSON document")
		}
		f.nulled.Add(float64(len(out)))
		return out, nil
	}
	for i, fd := range f.fields {
		v, err := transforms.Convert(jsonValue(lookup(root, fd.path)), fd.typ)
		if err != nil {
			if !f.null {
				return nil, fmt.Errorf("field %s: %w", strings.Join(fd.path, "."), err)
			}
			f.nulled.Inc()
			v = schema.Null()
		}
		out[i] = v
	}
	return out, nil
}

func lookup(v any, path []string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// jsonValue is a decoded JSON value as a Value: numbers stay exact (decimal
// text), objects and arrays stay JSON.
func jsonValue(v any) schema.Value {
	switch x := v.(type) {
	case nil:
		return schema.Null()
	case string:
		return schema.String(x)
	case bool:
		return schema.Bool(x)
	case json.Number:
		if d, err := schema.Decimal(x.String()); err == nil {
			return d
		}
		return schema.String(x.String())
	}
	b, err := json.Marshal(v)
	if err != nil {
		return schema.Null()
	}
	return schema.JSON(string(b))
}
