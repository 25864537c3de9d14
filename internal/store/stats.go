package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cdcd-dev/cdcd/offsets"
	engine "github.com/cdcd-dev/cdcd/pipeline"
)

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
	return b.s.fenced(ctx, b.pipeline, b.epoch, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, b.s.q(`INSERT INTO cdcd_pipeline_stats (pipeline, stats, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (pipeline) DO UPDATE SET stats = excluded.stats, updated_at = excluded.updated_at`),
			b.pipeline, string(raw), b.s.micros())
		if err != nil {
			return fmt.Errorf("save the counts of pipeline %q: %w", b.pipeline, err)
		}
		return nil
	})
}
