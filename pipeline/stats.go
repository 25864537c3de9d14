package pipeline

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
)

// Stats are a pipeline's counts of what it has made durable at the sink, kept
// across runs. They are saved before each offset commit with AsOf, the position
// committed next; a run that starts below AsOf (the offset commit did not
// happen) does not count again the changes it replays up to AsOf, so the counts
// stay exact across crashes.
type Stats struct {
	AsOf offsets.Position `json:"as_of,omitempty"`
	// Written is the number of changes written to the sink (after transforms).
	Written uint64 `json:"written"`
	// Tables are the source changes by source table.
	Tables map[string]*TableStats `json:"tables,omitempty"`
}

// TableStats are one source table's durable counts.
type TableStats struct {
	SnapshotRows uint64 `json:"snapshot_rows"`
	Inserts      uint64 `json:"inserts"`
	Updates      uint64 `json:"updates"`
	Deletes      uint64 `json:"deletes"`
	Truncates    uint64 `json:"truncates"`
	// LastChange is the source commit time of the newest durable change (zero
	// for snapshot rows); LastWritten is when cdcd made the newest one durable.
	LastChange  time.Time `json:"last_change,omitzero"`
	LastWritten time.Time `json:"last_written,omitzero"`
}

func (t *TableStats) add(o TableStats) {
	t.SnapshotRows += o.SnapshotRows
	t.Inserts += o.Inserts
	t.Updates += o.Updates
	t.Deletes += o.Deletes
	t.Truncates += o.Truncates
	if o.LastChange.After(t.LastChange) {
		t.LastChange = o.LastChange
	}
}

func (t *TableStats) count(c *schema.Change) {
	switch c.Op {
	case schema.OpSnapshot:
		t.SnapshotRows++
	case schema.OpInsert:
		t.Inserts++
	case schema.OpUpdate:
		t.Updates++
	case schema.OpDelete:
		t.Deletes++
	case schema.OpTruncate:
		t.Truncates++
	}
	if c.CommitTS.After(t.LastChange) {
		t.LastChange = c.CommitTS
	}
}

// Clone returns a deep copy of s.
func (s Stats) Clone() Stats {
	out := Stats{AsOf: s.AsOf.Clone(), Written: s.Written, Tables: make(map[string]*TableStats, len(s.Tables))}
	for k, v := range s.Tables {
		t := *v
		out.Tables[k] = &t
	}
	return out
}

// StatsStore keeps one pipeline's Stats, fenced by the epoch of the runner it
// was handed to (a stale runner's save fails with offsets.ErrFenced).
type StatsStore interface {
	LoadStats(ctx context.Context) (Stats, error)
	SaveStats(ctx context.Context, s Stats) error
}

// TableProgress is what the pipeline reports about one source table.
type TableProgress struct {
	Table string     `json:"table"`
	State TableState `json:"state"`
	TableStats
	// RowsDone and RowsEstimated are the snapshot's progress (RowsEstimated
	// nil: the source has no estimate); ETA is when, at the rate since the
	// snapshot began, it should be done.
	RowsDone      int64      `json:"rows_done"`
	RowsEstimated *int64     `json:"rows_estimated"`
	ETA           *time.Time `json:"eta,omitempty"`
	// Error is why the table is failed (State TableFailed).
	Error string `json:"error,omitempty"`
}

// TableState is a source table's state in its pipeline.
type TableState string

// Table states.
const (
	TableSnapshotting TableState = "snapshotting"
	TableResyncing    TableState = "resyncing" // read again (a resync), then swept
	TableStreaming    TableState = "streaming"
	TableHeld         TableState = "held"
	// TableFailed: the pipeline's last attempt failed on this table (a
	// value its destination cannot hold, a DDL it cannot apply, a lost
	// destination table that could not be resynced): it is failed, or
	// retrying, until an attempt commits.
	TableFailed TableState = "failed"
)

// tables merges the durable counts with the source's snapshot progress and
// the held tables.
func tables(st Stats, p *Progress, now time.Time) []TableProgress {
	byName := map[string]*TableProgress{}
	for name, t := range st.Tables {
		byName[name] = &TableProgress{Table: name, State: TableStreaming, TableStats: *t}
	}
	get := func(name string) *TableProgress {
		if tp, ok := byName[name]; ok {
			return tp
		}
		tp := &TableProgress{Table: name, State: TableStreaming}
		byName[name] = tp
		return tp
	}
	if p.Source != nil {
		for _, sp := range p.Source.Tables {
			tp := get(sp.Table.String())
			tp.RowsDone = sp.RowsDone
			if sp.RowsEstimated >= 0 {
				est := max(sp.RowsEstimated, sp.RowsDone)
				tp.RowsEstimated = &est
			}
			if !sp.Done {
				tp.State = TableSnapshotting
				if sp.Resyncing {
					tp.State = TableResyncing
				}
				if at := p.Source.SnapshotAt; tp.RowsEstimated != nil && sp.RowsDone > 0 && !at.IsZero() && now.After(at) {
					rate := float64(sp.RowsDone) / now.Sub(at).Seconds()
					eta := now.Add(time.Duration(float64(*tp.RowsEstimated-sp.RowsDone) / rate * float64(time.Second)))
					tp.ETA = &eta
				}
			}
		}
	}
	for _, h := range p.HeldTables {
		get(h).State = TableHeld
	}
	out := make([]TableProgress, 0, len(byName))
	for _, k := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[k])
	}
	return out
}
