package schema

import "path"

// The vocabulary of schema-change policies: what a pipeline does with each kind
// of change its source's schema makes (DESIGN.md §7). The config document
// spells policies with it and the engine carries them out, so it lives with
// the data model, below both.

// Action is what a schema-change policy does with one kind of source change.
type Action string

// The actions. Not every action fits every kind: see EvolutionPolicy.
const (
	ActionApply     Action = "apply"      // apply it at the destination before the rows that need it
	ActionKeep      Action = "keep"       // drops: keep the destination column; new rows leave it NULL
	ActionHold      Action = "hold"       // hold the table until a user resolves the change
	ActionFail      Action = "fail"       // fail the pipeline with the change named
	ActionNewColumn Action = "new_column" // renames: add the new name as a new column, keep the old one
)

// EvolutionPolicy says what happens to each kind of schema change of a table.
// The zero value of a field means the default (DefaultEvolution).
type EvolutionPolicy struct {
	AddColumn    Action `json:"add_column,omitempty"`    // apply | hold | fail
	Widen        Action `json:"widen,omitempty"`         // apply | hold | fail (a type change that keeps every value)
	DropColumn   Action `json:"drop_column,omitempty"`   // keep | hold | fail
	RenameColumn Action `json:"rename_column,omitempty"` // hold | apply | new_column | fail
	Narrow       Action `json:"narrow,omitempty"`        // hold | apply | fail (apply: the destination keeps its wider type)
	KeyChange    Action `json:"key_change,omitempty"`    // hold | apply | fail (apply: the sink must support it)
}

// DefaultEvolution is DESIGN.md §7: additions and widenings apply, drops keep the
// destination column, renames, narrowings and key changes hold the table.
var DefaultEvolution = EvolutionPolicy{
	AddColumn: ActionApply, Widen: ActionApply, DropColumn: ActionKeep,
	RenameColumn: ActionHold, Narrow: ActionHold, KeyChange: ActionHold,
}

// PolicyActions lists the actions each policy field accepts, for validation.
var PolicyActions = map[string][]Action{
	"add_column":    {ActionApply, ActionHold, ActionFail},
	"widen":         {ActionApply, ActionHold, ActionFail},
	"drop_column":   {ActionKeep, ActionHold, ActionFail},
	"rename_column": {ActionHold, ActionApply, ActionNewColumn, ActionFail},
	"narrow":        {ActionHold, ActionApply, ActionFail},
	"key_change":    {ActionHold, ActionApply, ActionFail},
}

func (p EvolutionPolicy) over(base EvolutionPolicy) EvolutionPolicy {
	or := func(a, b Action) Action {
		if a != "" {
			return a
		}
		return b
	}
	return EvolutionPolicy{
		AddColumn: or(p.AddColumn, base.AddColumn), Widen: or(p.Widen, base.Widen),
		DropColumn: or(p.DropColumn, base.DropColumn), RenameColumn: or(p.RenameColumn, base.RenameColumn),
		Narrow: or(p.Narrow, base.Narrow), KeyChange: or(p.KeyChange, base.KeyChange),
	}
}

// TablePolicy overrides the pipeline's policy for the destination tables whose
// "namespace.name" matches Pattern (path.Match syntax).
type TablePolicy struct {
	Pattern string
	Policy  EvolutionPolicy
}

// Evolution is a pipeline's schema-change policy: a default and per-table
// overrides (the first matching override wins).
type Evolution struct {
	Default EvolutionPolicy
	Tables  []TablePolicy
}

// For returns the policy of one table, defaults filled in.
func (e Evolution) For(id TableID) EvolutionPolicy {
	p := e.Default.over(DefaultEvolution)
	for _, t := range e.Tables {
		if ok, _ := path.Match(t.Pattern, id.String()); ok {
			return t.Policy.over(p)
		}
	}
	return p
}
