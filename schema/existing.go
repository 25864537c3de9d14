package schema

import (
	"encoding/json"
	"fmt"
)

// Existing is what the rows a table already held when a column was added hold
// in that column: the column's default at that moment. The source's log carries
// nothing for those rows (Postgres keeps the value in the catalog as
// attmissingval and reads it for older tuples; MySQL and MariaDB fill it in
// without logging a row), so a sink writes it into the rows it holds from before
// the column (Delta.Pos), and a change encoded before the column existed is read
// as holding it (FillExisting).
//
// A Column's Existing matters only when the column is added to a table that
// has rows (an AddColumn step); a nil Existing means the rows hold NULL.
type Existing struct {
	// Value is what every existing row holds (not NULL).
	Value Value
	// Unknown, when set, says why the source cannot know the value: a volatile
	// default (random(), clock_timestamp()), an identity or AUTO_INCREMENT
	// column, an expression. Value is then NULL, and the schema-change policy
	// holds the table for a person to decide.
	Unknown string
}

// Known reports whether e gives a value for existing rows.
func (e *Existing) Known() bool { return e != nil && e.Unknown == "" && !e.Value.IsNull() }

type existingJSON struct {
	// Value is for people (the value's JSON form); Encoded is what is read back.
	Value   json.RawMessage `json:"value,omitempty"`
	Encoded []byte          `json:"encoded,omitempty"`
	Unknown string          `json:"unknown,omitempty"`
}

// MarshalJSON renders e with the value both readable and exact (its binary
// encoding, base64): table versions and held deltas are stored as JSON.
func (e Existing) MarshalJSON() ([]byte, error) {
	j := existingJSON{Unknown: e.Unknown}
	if !e.Value.IsNull() {
		j.Value = e.Value.AppendJSON(nil)
		j.Encoded = appendValue(nil, e.Value)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *Existing) UnmarshalJSON(b []byte) error {
	var j existingJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Existing{Unknown: j.Unknown}
	if len(j.Encoded) == 0 {
		return nil
	}
	d := decoder{b: j.Encoded}
	e.Value = d.value(0)
	if d.err != nil {
		return fmt.Errorf("existing value: %w", d.err)
	}
	return nil
}

// Fill returns the value a sink writes into the rows it holds from before an
// AddColumn step: the column's Existing value, when it is known and not NULL.
func (c ColumnChange) Fill() (Value, bool) {
	if c.Op != AddColumn || !c.Column.Existing.Known() {
		return Value{}, false
	}
	return c.Column.Existing.Value, true
}

// FillExisting gives the changes of b that were encoded before a column the
// batch's deltas add (a position below the delta's) that column's Existing
// value: the rows existed when the column was added, so they hold it at the
// source. Sinks apply a batch's deltas before its changes, so without this a
// row inserted earlier in the same source transaction would reach the
// destination without the value the sink wrote into the rows it already held.
// Images that carry the column already are left as they are.
func FillExisting(b *Batch) {
	for _, d := range b.Deltas {
		if d.Pos == nil {
			continue
		}
		for _, s := range d.Changes {
			v, ok := s.Fill()
			if !ok {
				continue
			}
			for i := range b.Changes {
				c := &b.Changes[i]
				if c.Table != d.Table.ID || c.After == nil || c.Pos.Compare(d.Pos) >= 0 {
					continue
				}
				if _, has := c.After.Get(s.Column.Name); has {
					continue
				}
				c.After = append(c.After.Clone(), Field{Name: s.Column.Name, Value: v})
			}
		}
	}
}
