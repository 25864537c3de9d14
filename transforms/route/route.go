// Package route is the route transform: it renames destination tables by a map
// of source names, or by a regular expression.
package route

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Config configures the route: Map first, then Pattern/Replace on
// "namespace.name" (Go regexp, $1 in Replace).
type Config struct {
	Map     map[string]string `yaml:"map" json:"map"`
	Pattern string            `yaml:"pattern" json:"pattern"`
	Replace string            `yaml:"replace" json:"replace"`
}

// Route is the transform.
type Route struct {
	cfg Config
	re  *regexp.Regexp
}

// New validates c.
func New(c Config) (*Route, error) {
	r := &Route{cfg: c}
	var errs []error
	if len(c.Map) == 0 && c.Pattern == "" {
		errs = append(errs, errors.New("set map or pattern"))
	}
	if c.Pattern != "" {
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			errs = append(errs, fmt.Errorf("pattern: %w", err))
		}
		r.re = re
		if c.Replace == "" {
			errs = append(errs, errors.New("replace: required with pattern"))
		}
	}
	for from, to := range c.Map {
		if schema.ParseTableID(to).Name == "" {
			errs = append(errs, fmt.Errorf("map[%s]: %q is not a table name", from, to))
		}
	}
	return r, errors.Join(errs...)
}

// Factory returns the route's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{} },
		New: component.Decoded(func(c Config, _ transforms.Deps) (transforms.Transform, error) {
			return New(c)
		}),
	}
}

func (r *Route) to(id schema.TableID) schema.TableID {
	if to, ok := r.cfg.Map[id.String()]; ok {
		return schema.ParseTableID(to)
	}
	if r.re != nil && r.re.MatchString(id.String()) {
		return schema.ParseTableID(r.re.ReplaceAllString(id.String(), r.cfg.Replace))
	}
	return id
}

// Schema renames the table.
func (r *Route) Schema(in schema.Table) (schema.Table, error) {
	out := in.Clone()
	out.ID = r.to(in.ID)
	return out, nil
}

// Apply renames the change's table.
func (r *Route) Apply(c *schema.Change) (bool, error) {
	c.Table = r.to(c.Table)
	return true, nil
}
