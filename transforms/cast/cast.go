// Package cast is the cast transform: it converts columns to declared types
// (text to integers, decimals, timestamps…, numbers to text), with a policy for
// values that do not convert: fail the row (the pipeline's on_transform_error
// decides what that means) or write NULL and count it.
//
// The conversions are transforms.Convert and transforms.ParseType.
package cast

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the cast.
type Config struct {
	// Columns maps a column to its type: int2, int4, int8 (int), float4, float8
	// (float), decimal(p,s) (numeric), text (string), varchar(n), bool,
	// timestamptz (timestamp), timestamp without time zone (datetime), date,
	// json, bytes.
	Columns map[string]string `yaml:"columns" json:"columns"`
	// OnError is what a value that does not convert does: fail (the row fails)
	// or set_null (the column is written as NULL and counted).
	OnError string `yaml:"on_error" json:"on_error"`
}

// Cast is the transform.
type Cast struct {
	cols   map[string]schema.Type
	null   bool
	nulled prometheus.Counter
}

// New validates c; every problem is reported.
func New(c Config, d transforms.Deps) (*Cast, error) {
	var errs []error
	if len(c.Columns) == 0 {
		errs = append(errs, errors.New("columns: map each column to cast to its type"))
	}
	null, err := transforms.OnError(c.OnError)
	if err != nil {
		errs = append(errs, err)
	}
	t := &Cast{cols: map[string]schema.Type{}, null: null, nulled: d.Nulled()}
	for _, name := range slices.Sorted(maps.Keys(c.Columns)) {
		ty, err := transforms.ParseType(c.Columns[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("columns.%s: %w", name, err))
			continue
		}
		t.cols[name] = ty
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Factory returns the cast's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{OnError: "fail"} },
		New: component.Decoded(func(c Config, d transforms.Deps) (transforms.Transform, error) {
			return New(c, d)
		}),
	}
}

// Schema gives each cast column its declared type; with on_error set_null it becomes
// nullable. A column to cast that the table lacks is an error.
func (t *Cast) Schema(in schema.Table) (schema.Table, error) {
	out := in.Clone()
	for _, name := range slices.Sorted(maps.Keys(t.cols)) {
		i := slices.IndexFunc(out.Columns, func(c schema.Column) bool { return c.Name == name })
		if i < 0 {
			return schema.Table{}, fmt.Errorf("column %s to cast is not in table %s (dropped or renamed at the source?): update the transform, or scope it with tables", name, in.ID)
		}
		if t.null && slices.Contains(in.PrimaryKey, name) {
			return schema.Table{}, fmt.Errorf("column %s is part of the primary key: cast it with on_error: fail, since a key cannot be NULL", name)
		}
		out.Columns[i].Type = t.cols[name]
		if t.null {
			out.Columns[i].Nullable = true
		}
		if e := out.Columns[i].Existing; e.Known() {
			// the rows already there hold the default: it is cast like theirs
			v, err := transforms.Convert(e.Value, t.cols[name])
			if err != nil && !t.null {
				return schema.Table{}, fmt.Errorf("cast column %s: the value the rows already there hold (its default): %w", name, err)
			}
			if err != nil {
				t.nulled.Inc()
				v = schema.Null()
			}
			out.Columns[i].Existing = &schema.Existing{Value: v}
		}
	}
	return out, nil
}

// Apply casts the columns in every image of c. An error names the column and the
// types, never the value.
func (t *Cast) Apply(c *schema.Change) (bool, error) {
	for _, r := range []*schema.Row{&c.Key, &c.Before, &c.After} {
		var out schema.Row
		for i, f := range *r {
			to, ok := t.cols[f.Name]
			if !ok {
				continue
			}
			v, err := transforms.Convert(f.Value, to)
			if err != nil {
				if !t.null {
					return false, fmt.Errorf("cast column %s: %w", f.Name, err)
				}
				t.nulled.Inc()
				v = schema.Null()
			}
			if out == nil {
				out = (*r).Clone()
			}
			out[i].Value = v
		}
		if out != nil {
			*r = out
		}
	}
	return true, nil
}
