// Package columns is the drop/keep/rename transform.
package columns

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Config configures the transform: drop or keep (one of them), then rename.
type Config struct {
	Drop   []string          `yaml:"drop" json:"drop"`
	Keep   []string          `yaml:"keep" json:"keep"`
	Rename map[string]string `yaml:"rename" json:"rename"`
}

// Columns is the transform.
type Columns struct{ cfg Config }

// New validates c.
func New(c Config) (*Columns, error) {
	var errs []error
	if len(c.Drop) > 0 && len(c.Keep) > 0 {
		errs = append(errs, errors.New("set drop or keep, not both"))
	}
	if len(c.Drop) == 0 && len(c.Keep) == 0 && len(c.Rename) == 0 {
		errs = append(errs, errors.New("set drop, keep or rename"))
	}
	seen := map[string]string{}
	for from, to := range c.Rename {
		if to == "" {
			errs = append(errs, fmt.Errorf("rename[%s]: empty new name", from))
		}
		if other, dup := seen[to]; dup {
			errs = append(errs, fmt.Errorf("rename: %s and %s both become %s", other, from, to))
		}
		seen[to] = from
	}
	return &Columns{cfg: c}, errors.Join(errs...)
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

func (t *Columns) dropped(name string) bool {
	if len(t.cfg.Keep) > 0 {
		return !slices.Contains(t.cfg.Keep, name)
	}
	return slices.Contains(t.cfg.Drop, name)
}

func (t *Columns) name(n string) string {
	if to, ok := t.cfg.Rename[n]; ok {
		return to
	}
	return n
}

// Schema drops and renames columns; a key column cannot be dropped, and a
// rename onto an existing column is an error.
func (t *Columns) Schema(in schema.Table) (schema.Table, error) {
	var missing []string
	for _, c := range t.cfg.Keep {
		if _, ok := in.Column(c); !ok {
			missing = append(missing, c)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(t.cfg.Rename)) {
		if _, ok := in.Column(c); !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return schema.Table{}, fmt.Errorf("columns %s to keep or rename are not in table %s (dropped or renamed at the source?): update the transform, or scope it with tables", strings.Join(missing, ", "), in.ID)
	}
	out := in.Clone()
	out.Columns = out.Columns[:0]
	names := map[string]bool{}
	for _, c := range in.Columns {
		if t.dropped(c.Name) {
			if slices.Contains(in.PrimaryKey, c.Name) {
				return schema.Table{}, fmt.Errorf("column %s is part of the primary key and cannot be dropped", c.Name)
			}
			continue
		}
		c.Name = t.name(c.Name)
		if names[c.Name] {
			return schema.Table{}, fmt.Errorf("column %s appears twice after renaming", c.Name)
		}
		names[c.Name] = true
		out.Columns = append(out.Columns, c)
	}
	for i, k := range out.PrimaryKey {
		out.PrimaryKey[i] = t.name(k)
	}
	return out, nil
}

// touches reports whether r has a column this transform drops or renames.
func (t *Columns) touches(r schema.Row) bool {
	for _, f := range r {
		if t.dropped(f.Name) || t.name(f.Name) != f.Name {
			return true
		}
	}
	return false
}

// Apply edits every image of c.
func (t *Columns) Apply(c *schema.Change) (bool, error) {
	for _, r := range []*schema.Row{&c.Key, &c.Before, &c.After} {
		if *r == nil || !t.touches(*r) {
			continue
		}
		out := make(schema.Row, 0, len(*r)) // a new slice: a source may share memory between images
		for _, f := range *r {
			if t.dropped(f.Name) {
				continue
			}
			f.Name = t.name(f.Name)
			out = append(out, f)
		}
		*r = out
	}
	return true, nil
}
