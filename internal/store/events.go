package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	engine "github.com/cdcd-dev/cdcd/pipeline"
)

// EventRetention is how many of its newest events a pipeline keeps.
const EventRetention = 10_000

// EventLog keeps the pipelines' events (engine.Event).
type EventLog interface {
	// AppendEvent stores e with the pipeline's next sequence number and
	// returns it as stored.
	AppendEvent(ctx context.Context, e engine.Event) (engine.Event, error)
	// ListEvents returns a pipeline's events after seq after (0: from the
	// oldest kept), oldest first, at most limit.
	ListEvents(ctx context.Context, pipeline string, after int64, limit int) ([]engine.Event, error)
}

// Events returns the store's event log.
func Events(s Store) EventLog { return s.(*sqlStore) }

func (s *sqlStore) AppendEvent(ctx context.Context, e engine.Event) (engine.Event, error) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(seq), 0) + 1 FROM cdcd_events WHERE pipeline = ?`), e.Pipeline).Scan(&e.Seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_events (pipeline, seq, at, kind, level, tbl, message) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			e.Pipeline, e.Seq, e.At.UnixMicro(), string(e.Kind), string(e.Level), e.Table, e.Message); err != nil {
			return err
		}
		if e.Seq%100 == 0 {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_events WHERE pipeline = ? AND seq <= ?`), e.Pipeline, e.Seq-EventRetention); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return engine.Event{}, fmt.Errorf("record an event of pipeline %q: %w", e.Pipeline, err)
	}
	return e, nil
}

func (s *sqlStore) ListEvents(ctx context.Context, pipeline string, after int64, limit int) ([]engine.Event, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, at, kind, level, tbl, message FROM cdcd_events
		WHERE pipeline = ? AND seq > ? ORDER BY seq LIMIT ?`), pipeline, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	var out []engine.Event
	for rows.Next() {
		e := engine.Event{Pipeline: pipeline}
		var at int64
		var kind, level string
		if err := rows.Scan(&e.Seq, &at, &kind, &level, &e.Table, &e.Message); err != nil {
			return nil, err
		}
		e.At, e.Kind, e.Level = time.UnixMicro(at).UTC(), engine.EventKind(kind), engine.EventLevel(level)
		out = append(out, e)
	}
	return out, rows.Err()
}
