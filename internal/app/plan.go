package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"go.yaml.in/yaml/v3"
)

// Plan is what a pipeline document would do, found without creating
// anything: the document's problems, the live checks of its source and
// destination as the pipeline configures them, and where each source table
// would go with the shape it would have there, or why it cannot go there as
// it is (a name the destination would cut, two tables on one destination
// table, a table without a key).
type Plan struct {
	// OK: no problem anywhere; creating the pipeline should work.
	OK bool `json:"ok"`
	// Problems are the document's, each at its path.
	Problems    config.Problems `json:"problems,omitempty"`
	Source      *CheckResult    `json:"source,omitempty"`
	Destination *CheckResult    `json:"destination,omitempty"`
	Tables      []PlanTable     `json:"tables"`
}

// PlanTable is one source table's way to the destination.
type PlanTable struct {
	Source string `json:"source"`
	// Destination is the table's destination name as the destination
	// qualifies it (schema.table, a file's path); empty when it has none.
	Destination string       `json:"destination,omitempty"`
	Columns     []PlanColumn `json:"columns,omitempty"`
	Problems    []string     `json:"problems,omitempty"`
}

// PlanColumn is a column of a table as the destination receives it.
type PlanColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Key      bool   `json:"key,omitempty"`
}

// maxPlanTables bounds the tables a plan reads the shapes of.
const maxPlanTables = 200

// PlanPipeline returns p's Plan. Secrets the checks resolve are scrubbed from
// every message.
func (a *App) PlanPipeline(ctx context.Context, p config.Pipeline) (Plan, error) {
	var seen []string
	sec := a.Secrets.Recording(&seen)
	plan, err := a.plan(ctx, p, sec)
	for i, pr := range plan.Problems {
		plan.Problems[i].Message = scrub(pr.Message, seen)
	}
	for _, r := range []*CheckResult{plan.Source, plan.Destination} {
		if r == nil {
			continue
		}
		for i := range r.Problems {
			r.Problems[i] = scrub(r.Problems[i], seen)
		}
		for i := range r.Warnings {
			r.Warnings[i] = scrub(r.Warnings[i], seen)
		}
	}
	for i := range plan.Tables {
		for j := range plan.Tables[i].Problems {
			plan.Tables[i].Problems[j] = scrub(plan.Tables[i].Problems[j], seen)
		}
	}
	return plan, err
}

func (a *App) plan(ctx context.Context, p config.Pipeline, sec config.Secrets) (Plan, error) {
	plan := Plan{Tables: []PlanTable{}}
	_, conns, err := a.checkPipeline(ctx, &p)
	if err != nil {
		if errors.As(err, &plan.Problems) {
			return plan, nil
		}
		return plan, err
	}
	r, err := config.Resolve(p, a.Registry, conns, sec)
	if err != nil {
		if errors.As(err, &plan.Problems) {
			return plan, nil
		}
		return plan, err
	}
	src, err := a.Registry.Sources[r.SourceType].New(r.Source, sources.Deps{Pipeline: p.Name, Logger: a.log()})
	if err != nil {
		return plan, err // validated above: not the document's problem
	}
	snk, err := a.Registry.Sinks[r.SinkType].New(r.Sink, sinks.Deps{Pipeline: p.Name, Logger: a.log()})
	if err != nil {
		return plan, err
	}
	steps := make([]transforms.Step, 0, len(r.Transforms))
	for i, t := range r.Pipeline.Transforms {
		tr, err := a.Registry.Transforms[t.Type].New(r.Transforms[i], transforms.Deps{Logger: a.log()})
		if err != nil {
			return plan, err
		}
		steps = append(steps, transforms.Step{Name: t.Name, Tables: t.Tables, Transform: tr})
	}
	chain := transforms.NewChain(steps...)

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	plan.Source = &CheckResult{OK: true}
	if ch, ok := src.(sources.Checker); ok {
		if err := ch.Check(cctx); err != nil {
			*plan.Source = failed(err)
		}
	}
	if w, ok := src.(sources.Warner); ok {
		plan.Source.Warnings = w.Warnings()
	}
	plan.Destination = &CheckResult{OK: true}
	if ch, ok := snk.(sinks.Checker); ok {
		if err := ch.Check(cctx); err != nil {
			*plan.Destination = failed(err)
		}
	} else if err := snk.Open(cctx); err != nil {
		*plan.Destination = failed(err)
	} else if err := snk.Close(cctx); err != nil {
		*plan.Destination = failed(err)
	}

	sm, canSample := src.(sources.Sampler)
	namer, canName := snk.(sinks.Namer)
	tables := stringList(r.Source, "tables")
	if len(tables) > maxPlanTables {
		tables = tables[:maxPlanTables]
	}
	ok := plan.Source.OK && plan.Destination.OK
	for _, name := range tables {
		pt := PlanTable{Source: name}
		problem := func(format string, args ...any) {
			pt.Problems = append(pt.Problems, fmt.Sprintf(format, args...))
			ok = false
		}
		switch {
		case !canSample:
			problem("a %s source cannot describe its tables ahead of time", r.SourceType)
		case !plan.Source.OK:
			// the source check says why; its tables cannot be read
		default:
			t, _, err := sm.Sample(cctx, schema.ParseTableID(name), 1)
			if err != nil {
				problem("%s", redact.Text(err.Error()))
				break
			}
			b := schema.Batch{Deltas: []schema.Delta{{Table: t, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}}}
			if err := chain.ApplyBatch(&b); err != nil {
				problem("the transforms: %v", err)
				break
			}
			if len(b.Deltas) == 0 {
				break // a transform drops the table
			}
			out := b.Deltas[0].Table
			for _, c := range out.Columns {
				pt.Columns = append(pt.Columns, PlanColumn{Name: c.Name, Type: c.Type.String(), Nullable: c.Nullable, Key: slices.Contains(out.PrimaryKey, c.Name)})
			}
			if !canName {
				pt.Destination = out.ID.String()
				break
			}
			dest, err := namer.DestinationName(out)
			if err != nil {
				problem("%v", err)
				break
			}
			pt.Destination = dest
		}
		plan.Tables = append(plan.Tables, pt)
	}
	plan.OK = ok
	return plan, nil
}

// stringList reads key of a mapping node as a list of strings (nil when it
// is not one).
func stringList(n *yaml.Node, key string) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key || n.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		var out []string
		for _, v := range n.Content[i+1].Content {
			if v.Kind == yaml.ScalarNode {
				out = append(out, v.Value)
			}
		}
		return out
	}
	return nil
}
