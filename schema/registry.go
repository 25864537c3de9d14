package schema

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cdcd-dev/cdcd/offsets"
)

// TableVersion is a table shape and the source position where it came into force.
type TableVersion struct {
	Table Table            `json:"table"`
	Pos   offsets.Position `json:"pos"`
}

// VersionStore persists table versions of a pipeline. The metadata store implements
// it; tests may use MemoryVersions.
type VersionStore interface {
	// SaveTableVersion records tv. Saving the same (table, version) again with the
	// same content is a no-op.
	SaveTableVersion(ctx context.Context, pipeline string, tv TableVersion) error
	// LoadTableVersions returns every recorded version of the pipeline's tables.
	LoadTableVersions(ctx context.Context, pipeline string) ([]TableVersion, error)
}

// ErrUnknownVersion is returned by Registry.At for a version never recorded.
var ErrUnknownVersion = errors.New("unknown table version")

// Registry ties table shapes to the positions where they came into force.
type Registry interface {
	// Observe records the shape t seen in the stream at pos and returns it with its
	// Version set, plus the Delta from the version in force before pos (nil when the
	// shape is unchanged). Observing the same shape again, or a shape that a replay
	// sees again after the position it was first recorded, makes no version and no
	// delta. A replay that observes a version at exactly the position where it was
	// recorded gets that version's delta again: the batch that carried it may never
	// have reached the sink, and sinks apply deltas idempotently.
	Observe(ctx context.Context, t Table, pos offsets.Position) (Table, *Delta, error)
	// At returns version v of table id.
	At(ctx context.Context, id TableID, v Version) (Table, error)
	// Tables returns the newest version of every known table.
	Tables() []Table
}

type registry struct {
	mu       sync.Mutex
	store    VersionStore
	pipeline string
	versions map[TableID][]TableVersion // ascending by version
}

// NewRegistry loads the pipeline's versions from store and returns a Registry that
// persists new ones there. It is safe for concurrent use.
func NewRegistry(ctx context.Context, store VersionStore, pipeline string) (Registry, error) {
	all, err := store.LoadTableVersions(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("load schema history of pipeline %q: %w", pipeline, err)
	}
	r := &registry{store: store, pipeline: pipeline, versions: map[TableID][]TableVersion{}}
	for _, tv := range all {
		r.versions[tv.Table.ID] = append(r.versions[tv.Table.ID], tv)
	}
	for id := range r.versions {
		slices.SortFunc(r.versions[id], func(a, b TableVersion) int { return int(a.Table.Version) - int(b.Table.Version) })
	}
	return r, nil
}

func (r *registry) Observe(ctx context.Context, t Table, pos offsets.Position) (Table, *Delta, error) {
	if err := t.Validate(); err != nil {
		return Table{}, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.versions[t.ID]
	// The version in force at pos: the newest recorded at or before pos.
	var inForce *TableVersion
	at := -1
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Pos.Compare(pos) <= 0 {
			inForce, at = &vs[i], i
			break
		}
	}
	if inForce != nil && inForce.Table.SameShape(t) {
		if inForce.Pos.Compare(pos) == 0 {
			return inForce.Table.Clone(), recorded(vs, at), nil
		}
		return inForce.Table.Clone(), nil, nil
	}
	// A replay may see a shape before the position where it was first recorded
	// (Postgres resends Relation messages after a reconnect): reuse that version.
	for i := range vs {
		if vs[i].Pos.Compare(pos) > 0 && vs[i].Table.SameShape(t) && (inForce == nil || vs[i].Table.Version == inForce.Table.Version+1) {
			return vs[i].Table.Clone(), nil, nil
		}
	}
	next := t.Clone()
	next.Version = 1
	d := &Delta{Table: next}
	if len(vs) > 0 {
		prev := vs[len(vs)-1].Table
		if inForce != nil {
			prev = inForce.Table
		}
		next.Version = vs[len(vs)-1].Table.Version + 1
		d.From = prev.Version
		d.Changes = Diff(prev, next)
	} else {
		d.Changes = []ColumnChange{{Op: CreateTable}}
	}
	d.Table = next
	d.Pos = pos.Clone()
	tv := TableVersion{Table: next, Pos: pos.Clone()}
	if err := r.store.SaveTableVersion(ctx, r.pipeline, tv); err != nil {
		return Table{}, nil, fmt.Errorf("save version %d of %s: %w", next.Version, t.ID, err)
	}
	r.versions[t.ID] = append(vs, tv)
	return next.Clone(), d, nil
}

// recorded rebuilds the delta that version vs[i] was recorded with: from the
// version before it, or a CreateTable for the first.
func recorded(vs []TableVersion, i int) *Delta {
	d := &Delta{Table: vs[i].Table.Clone(), Pos: vs[i].Pos.Clone()}
	if i == 0 {
		d.Changes = []ColumnChange{{Op: CreateTable}}
		return d
	}
	prev := vs[i-1].Table
	d.From = prev.Version
	d.Changes = Diff(prev, d.Table)
	return d
}

func (r *registry) At(_ context.Context, id TableID, v Version) (Table, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tv := range r.versions[id] {
		if tv.Table.Version == v {
			return tv.Table.Clone(), nil
		}
	}
	return Table{}, fmt.Errorf("%w: %s version %d", ErrUnknownVersion, id, v)
}

func (r *registry) Tables() []Table {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Table, 0, len(r.versions))
	for _, vs := range r.versions {
		out = append(out, vs[len(vs)-1].Table.Clone())
	}
	slices.SortFunc(out, func(a, b Table) int {
		if a.ID.String() < b.ID.String() {
			return -1
		}
		if a.ID.String() > b.ID.String() {
			return 1
		}
		return 0
	})
	return out
}

// MemoryVersions is an in-memory VersionStore for tests and ephemeral pipelines.
// The zero value is ready to use; it is safe for concurrent use.
type MemoryVersions struct {
	mu sync.Mutex
	m  map[string][]TableVersion
}

// SaveTableVersion implements VersionStore.
func (m *MemoryVersions) SaveTableVersion(_ context.Context, pipeline string, tv TableVersion) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]TableVersion{}
	}
	for _, have := range m.m[pipeline] {
		if have.Table.ID == tv.Table.ID && have.Table.Version == tv.Table.Version {
			return nil
		}
	}
	tv.Table = tv.Table.Clone()
	m.m[pipeline] = append(m.m[pipeline], tv)
	return nil
}

// LoadTableVersions implements VersionStore.
func (m *MemoryVersions) LoadTableVersions(_ context.Context, pipeline string) ([]TableVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.m[pipeline]), nil
}
