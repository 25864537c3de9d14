package app

import (
	"context"
	"time"

	"github.com/cdcd-dev/cdcd/internal/series"
)

// Timeseries returns a pipeline's chart points over the last window.
func (a *App) Timeseries(ctx context.Context, name string, window time.Duration) ([]series.Point, error) {
	if _, err := a.Store.GetPipeline(ctx, name); err != nil {
		return nil, err
	}
	if a.Series == nil {
		return []series.Point{}, nil
	}
	return a.Series.Series(ctx, name, window, time.Now())
}
