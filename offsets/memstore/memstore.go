package memstore

import (
	"context"
	"sync"

	"github.com/cdcd-dev/cdcd/offsets"
)

// Store is an in-memory offsets.Store. The zero value is ready to use.
type Store struct {
	mu    sync.Mutex
	state map[string]entry
}

type entry struct {
	epoch offsets.Epoch
	pos   offsets.Position
}

var _ offsets.Store = (*Store)(nil)

// Acquire implements offsets.Store.
func (s *Store) Acquire(ctx context.Context, pipeline string) (offsets.Epoch, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		s.state = map[string]entry{}
	}
	e := s.state[pipeline]
	e.epoch++
	s.state[pipeline] = e
	return e.epoch, nil
}

// Load implements offsets.Store.
func (s *Store) Load(ctx context.Context, pipeline string) (offsets.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.state[pipeline]
	if !ok || e.pos == nil {
		return nil, offsets.ErrNotFound
	}
	return e.pos.Clone(), nil
}

// Commit implements offsets.Store.
func (s *Store) Commit(ctx context.Context, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.state[pipeline]
	skip, err := offsets.CheckCommit(pipeline, e.epoch, epoch, e.pos, p)
	if err != nil || skip {
		return err
	}
	e.pos = p.Clone()
	s.state[pipeline] = e
	return nil
}
