package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/internal/series"
)

// Series returns the store's keeper of the pipelines' coarse history.
func Series(s Store) series.Store { return s.(*sqlStore) }

func (s *sqlStore) AppendSamples(ctx context.Context, pipeline string, samples []series.Sample, keep time.Duration) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, x := range samples {
			doc, err := json.Marshal(x)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_series (pipeline, at, sample) VALUES (?, ?, ?)
				ON CONFLICT (pipeline, at) DO UPDATE SET sample = excluded.sample`), pipeline, x.At.UnixMicro(), string(doc)); err != nil {
				return fmt.Errorf("keep the history of pipeline %q: %w", pipeline, err)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_series WHERE pipeline = ? AND at < ?`), pipeline, s.now().Add(-keep).UnixMicro())
		return err
	})
}

func (s *sqlStore) LoadSamples(ctx context.Context, pipeline string, since time.Time) ([]series.Sample, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT sample FROM cdcd_series WHERE pipeline = ? AND at >= ? ORDER BY at`), pipeline, since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("load the history of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	var out []series.Sample
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var x series.Sample
		if err := json.Unmarshal([]byte(doc), &x); err != nil {
			return nil, fmt.Errorf("a stored sample of pipeline %q: %w", pipeline, err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}
