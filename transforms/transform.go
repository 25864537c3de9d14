package transforms

import (
	"fmt"
	"log/slog"
	"path"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/prometheus/client_golang/prometheus"
)

// Transform is one SMT.
type Transform interface {
	// Schema maps an input table version to the shape this transform emits. It runs
	// once per table version, not per row.
	Schema(in schema.Table) (schema.Table, error)
	// Apply edits c in place; keep=false drops it. It must be pure: no I/O, no
	// goroutines, no clocks. A chain calls it from one goroutine at a time, so it
	// may reuse scratch memory between calls.
	Apply(c *schema.Change) (keep bool, err error)
}

// Deps is what a transform gets from the engine.
type Deps struct {
	Logger *slog.Logger
	// Pipeline and Step label the transform's metrics; Metrics is where they
	// are registered (nil: not exported).
	Pipeline, Step string
	Metrics        prometheus.Registerer
}

// Nulled returns the counter of values the transform wrote as NULL because
// they did not convert (on_error: set_null).
func (d Deps) Nulled() prometheus.Counter {
	v := component.Register(d.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdcd_transform_values_nulled_total", Help: "Values a transform wrote as NULL because they did not convert (on_error: set_null).",
	}, []string{"pipeline", "transform"}))
	return v.WithLabelValues(d.Pipeline, d.Step)
}

// OnError reads a transform's on_error setting: fail (the default: the row
// fails, and the pipeline's on_transform_error decides) or set_null. (Not
// "null": YAML reads a bare null as no value, which would mean fail.)
func OnError(s string) (setNull bool, err error) {
	switch s {
	case "", "fail":
		return false, nil
	case "set_null":
		return true, nil
	}
	return false, fmt.Errorf("on_error: must be fail or set_null, got %q", s)
}

// Factory builds a transform from its config.
type Factory = component.Factory[Transform, Deps]

// Step is a transform scoped to the tables whose "namespace.name" matches one of
// Tables (path.Match patterns; empty: every table).
type Step struct {
	Name      string
	Tables    []string
	Transform Transform
}

// Matches reports whether the step applies to table id (every table when
// Tables is empty).
func (s Step) Matches(id schema.TableID) bool {
	if len(s.Tables) == 0 {
		return true
	}
	for _, p := range s.Tables {
		if ok, _ := path.Match(p, id.String()); ok {
			return true
		}
	}
	return false
}

// Skipped is a change a transform failed on and the chain dropped, per the
// pipeline's on_transform_error: skip. It carries where, not what: transform
// errors never hold row values.
type Skipped struct {
	Table     schema.TableID   `json:"table"`
	Pos       offsets.Position `json:"position"`
	Transform string           `json:"transform"`
	Error     string           `json:"error"`
}

// Chain runs steps in order over batches. The zero Chain passes batches through.
type Chain struct {
	steps []Step
	// skip, when set, drops a change a step fails on and reports it, instead of
	// failing the batch.
	skip func(Skipped)
	// mapped remembers the output shape of each source table version, so the delta
	// a sink sees is computed between output shapes.
	mapped map[schema.TableID]map[schema.Version]schema.Table
	last   map[schema.TableID]schema.Table
}

// NewChain returns a Chain over steps.
func NewChain(steps ...Step) *Chain {
	return &Chain{steps: steps, mapped: map[schema.TableID]map[schema.Version]schema.Table{}, last: map[schema.TableID]schema.Table{}}
}

// SkipErrors makes the chain drop a change a step fails on and report it to f
// (on_transform_error: skip) instead of failing the batch (stop, the default).
func (c *Chain) SkipErrors(f func(Skipped)) *Chain {
	c.skip = f
	return c
}

// Len returns the number of steps.
func (c *Chain) Len() int { return len(c.steps) }

func (c *Chain) mapTable(t schema.Table) (schema.Table, error) {
	out := t.Clone()
	for _, s := range c.steps {
		if !s.Matches(t.ID) {
			continue
		}
		var err error
		if out, err = s.Transform.Schema(out); err != nil {
			return schema.Table{}, fmt.Errorf("transform %s on %s: %w", s.Name, t.ID, err)
		}
	}
	return out, nil
}

// ApplyBatch transforms b in place: deltas are mapped to output shapes and
// changes are edited or dropped. A transform error is returned with the step and
// table named; it carries no row values.
func (c *Chain) ApplyBatch(b *schema.Batch) error {
	if len(c.steps) == 0 {
		return nil
	}
	if c.mapped == nil {
		skip := c.skip
		*c = *NewChain(c.steps...)
		c.skip = skip
	}
	for i := range b.Deltas {
		d := &b.Deltas[i]
		in := d.Table
		out, err := c.mapTable(in)
		if err != nil {
			return component.Permanent(err)
		}
		if c.mapped[in.ID] == nil {
			c.mapped[in.ID] = map[schema.Version]schema.Table{}
		}
		c.mapped[in.ID][in.Version] = out
		prev, seen := c.last[in.ID]
		if seen && d.From != 0 {
			d.Changes = schema.Diff(prev, out)
		}
		c.last[in.ID] = out
		d.Table = out
	}
	n := 0 // changes are edited in place and the kept ones compacted to the front
	for i := range b.Changes {
		ch := &b.Changes[i]
		src := ch.Table
		if ch.Op == schema.OpSweep {
			// no row to transform: the sweep goes to the table the resync's
			// rows went to
			out, ok := c.last[src]
			if !ok {
				return component.Permanent(fmt.Errorf("the resync of %s ended before its table was announced: restart the pipeline", src))
			}
			ch.Table = out.ID
			if n != i {
				b.Changes[n] = *ch
			}
			n++
			continue
		}
		keep := true
		for _, s := range c.steps {
			if !s.Matches(src) {
				continue
			}
			ok, err := s.Transform.Apply(ch)
			if err != nil && c.skip != nil {
				c.skip(Skipped{Table: src, Pos: ch.Pos, Transform: s.Name, Error: err.Error()})
				keep = false
				break
			}
			if err != nil {
				return component.Permanent(fmt.Errorf("transform %s on %s at %s: %w (set on_transform_error: skip to drop such rows and record them)", s.Name, src, ch.Pos, err))
			}
			if !ok {
				keep = false
				break
			}
		}
		if keep {
			if n != i {
				b.Changes[n] = *ch
			}
			n++
		}
	}
	kept := b.Changes[:n]
	clear(b.Changes[len(kept):])
	b.Changes = kept
	return nil
}
