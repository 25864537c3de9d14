// Package addfields adds columns: static values, and the change's source
// metadata (operation, source table, commit time, position).
package addfields

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Config configures the transform.
type Config struct {
	// Static maps new column names to constant text values.
	Static map[string]string `yaml:"static" json:"static"`
	// Metadata maps new column names to one of op, source_table, commit_ts,
	// position, tx.
	Metadata map[string]string `yaml:"metadata" json:"metadata"`
}

// AddFields is the transform.
type AddFields struct {
	cfg   Config
	names []string // sorted: the order columns are added in
}

var metaTypes = map[string]schema.Type{
	"op":           {Kind: schema.KindString, Name: "text"},
	"source_table": {Kind: schema.KindString, Name: "text"},
	"commit_ts":    {Kind: schema.KindTimestamp, Name: "timestamptz"},
	"position":     {Kind: schema.KindString, Name: "text"},
	"tx":           {Kind: schema.KindString, Name: "text"},
}

// New validates c.
func New(c Config) (*AddFields, error) {
	var errs []error
	if len(c.Static) == 0 && len(c.Metadata) == 0 {
		errs = append(errs, errors.New("set static or metadata"))
	}
	a := &AddFields{cfg: c}
	for n := range c.Static {
		a.names = append(a.names, n)
	}
	for n, m := range c.Metadata {
		if _, ok := metaTypes[m]; !ok {
			errs = append(errs, fmt.Errorf("metadata[%s]: %q is not one of op, source_table, commit_ts, position, tx", n, m))
		}
		if _, dup := c.Static[n]; dup {
			errs = append(errs, fmt.Errorf("%s: both static and metadata", n))
		}
		a.names = append(a.names, n)
	}
	slices.Sort(a.names)
	return a, errors.Join(errs...)
}

// Factory returns the transform's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{} },
		New: component.Decoded(func(c Config, _ transforms.Deps) (transforms.Transform, error) {
			return New(c)
		}),
	}
}

// Schema appends the new columns; a name the table has is an error.
func (a *AddFields) Schema(in schema.Table) (schema.Table, error) {
	out := in.Clone()
	for _, n := range a.names {
		if _, ok := in.Column(n); ok {
			return schema.Table{}, fmt.Errorf("column %s exists already", n)
		}
		t := schema.Type{Kind: schema.KindString, Name: "text"}
		if m, ok := a.cfg.Metadata[n]; ok {
			t = metaTypes[m]
		}
		out.Columns = append(out.Columns, schema.Column{Name: n, Type: t, Nullable: true})
	}
	return out, nil
}

// Apply adds the values to the new image.
func (a *AddFields) Apply(c *schema.Change) (bool, error) {
	if c.After == nil {
		return true, nil
	}
	// a new slice of the final size: appending must not write into memory the
	// source shares
	c.After = append(make(schema.Row, 0, len(c.After)+len(a.names)), c.After...)
	for _, n := range a.names {
		v := schema.Null()
		if s, ok := a.cfg.Static[n]; ok {
			v = schema.String(s)
		} else {
			switch a.cfg.Metadata[n] {
			case "op":
				v = schema.String(c.Op.String())
			case "source_table":
				v = schema.String(c.Table.String())
			case "commit_ts":
				if !c.CommitTS.IsZero() {
					v = schema.Timestamp(c.CommitTS)
				}
			case "position":
				v = schema.String(c.Pos.String())
			case "tx":
				if c.TxID != "" {
					v = schema.String(c.TxID)
				}
			}
		}
		c.After = append(c.After, schema.Field{Name: n, Value: v})
	}
	return true, nil
}
