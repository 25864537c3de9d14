package sourcetest

import (
	"context"
	"sync"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// MemProgress is an in-memory sources.ProgressStore for source tests.
type MemProgress struct {
	mu sync.Mutex
	m  map[schema.TableID]sources.SnapshotProgress
}

// SaveSnapshotProgress implements sources.ProgressStore.
func (p *MemProgress) SaveSnapshotProgress(_ context.Context, sp sources.SnapshotProgress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[schema.TableID]sources.SnapshotProgress{}
	}
	p.m[sp.Table] = sp
	return nil
}

// LoadSnapshotProgress implements sources.ProgressStore.
func (p *MemProgress) LoadSnapshotProgress(context.Context) ([]sources.SnapshotProgress, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sources.SnapshotProgress
	for _, v := range p.m {
		out = append(out, v)
	}
	return out, nil
}
