package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cdcd-dev/cdcd/offsets"
	engine "github.com/cdcd-dev/cdcd/pipeline"
)

// BindOffsetsAndStats returns, for one run of a pipeline whose offsets the
// metadata store keeps, an offset store and a StatsStore that are one: the
// counts the runner saves before an offset commit are written in the commit's
// transaction, so the two never disagree, however the process dies.
func BindOffsetsAndStats(s Store, pipelineName string, epoch offsets.Epoch) interface {
	offsets.Store
	engine.StatsStore
} {
	return &atomicStats{Store: s, b: boundStats{s: s.(*sqlStore), pipeline: pipelineName, epoch: epoch}}
}

type atomicStats struct {
	Store
	b       boundStats
	mu      sync.Mutex
	pending *engine.Stats
}

func (a *atomicStats) LoadStats(ctx context.Context) (engine.Stats, error) { return a.b.LoadStats(ctx) }

// SaveStats keeps st for the next Commit.
func (a *atomicStats) SaveStats(_ context.Context, st engine.Stats) error {
	a.mu.Lock()
	a.pending = &st
	a.mu.Unlock()
	return nil
}

// Commit writes the offset and the counts saved before it in one transaction.
func (a *atomicStats) Commit(ctx context.Context, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	a.mu.Lock()
	st := a.pending
	a.pending = nil
	a.mu.Unlock()
	if st == nil || pipeline != a.b.pipeline {
		return a.Store.Commit(ctx, pipeline, epoch, p)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s := a.b.s
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.commitIn(ctx, tx, pipeline, epoch, p); err != nil {
			return err
		}
		return a.b.saveIn(ctx, tx, raw)
	})
}

// BindStats returns the pipeline's durable counts for one run, fenced by its
// epoch.
func BindStats(s Store, pipelineName string, epoch offsets.Epoch) engine.StatsStore {
	return boundStats{s: s.(*sqlStore), pipeline: pipelineName, epoch: epoch}
}

type boundStats struct {
	s        *sqlStore
	pipeline string
	epoch    offsets.Epoch
}

func (b boundStats) LoadStats(ctx context.Context) (engine.Stats, error) {
	var raw string
	err := b.s.db.QueryRowContext(ctx, b.s.q(`SELECT stats FROM cdcd_pipeline_stats WHERE pipeline = ?`), b.pipeline).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return engine.Stats{}, nil
	}
	if err != nil {
		return engine.Stats{}, fmt.Errorf("load the counts of pipeline %q: %w", b.pipeline, err)
	}
	var st engine.Stats
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return engine.Stats{}, fmt.Errorf("the stored counts of pipeline %q: %w", b.pipeline, err)
	}
	return st, nil
}

func (b boundStats) SaveStats(ctx context.Context, st engine.Stats) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.s.fenced(ctx, b.pipeline, b.epoch, func(tx *sql.Tx) error { return b.saveIn(ctx, tx, raw) })
}

func (b boundStats) saveIn(ctx context.Context, tx *sql.Tx, raw []byte) error {
	_, err := tx.ExecContext(ctx, b.s.q(`INSERT INTO cdcd_pipeline_stats (pipeline, stats, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (pipeline) DO UPDATE SET stats = excluded.stats, updated_at = excluded.updated_at`),
		b.pipeline, string(raw), b.s.micros())
	if err != nil {
		return fmt.Errorf("save the counts of pipeline %q: %w", b.pipeline, err)
	}
	return nil
}
