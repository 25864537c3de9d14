package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/internal/alerts"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/notify"
)

// alertHistoryRetention is how long delivery history is kept.
const alertHistoryRetention = 30 * 24 * time.Hour

// AlertStore keeps the alert rules, the firing alerts and the delivery
// history.
type AlertStore interface {
	alerts.Store
	LoadAlertRules(ctx context.Context) (config.Alerts, error)
	SaveAlertRules(ctx context.Context, a config.Alerts) error
	// ListAlertHistory returns the newest deliveries first.
	ListAlertHistory(ctx context.Context, limit int) ([]alerts.HistoryEntry, error)
}

// Alerts returns the store's alert tables.
func Alerts(s Store) AlertStore { return s.(*sqlStore) }

func (s *sqlStore) LoadAlertRules(ctx context.Context) (config.Alerts, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT doc FROM cdcd_alert_rules WHERE id = 1`)).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return config.Alerts{}, nil
	}
	if err != nil {
		return config.Alerts{}, fmt.Errorf("load the alert rules: %w", err)
	}
	a, err := config.ParseAlerts([]byte(doc))
	if err != nil {
		return config.Alerts{}, fmt.Errorf("the stored alert rules: %w", err)
	}
	return a, nil
}

func (s *sqlStore) SaveAlertRules(ctx context.Context, a config.Alerts) error {
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO cdcd_alert_rules (id, doc, updated_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`), string(doc), s.micros())
	if err != nil {
		return fmt.Errorf("save the alert rules: %w", err)
	}
	return nil
}

func (s *sqlStore) LoadFiring(ctx context.Context) ([]alerts.Active, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT doc FROM cdcd_alert_firing ORDER BY rule, pipeline`))
	if err != nil {
		return nil, fmt.Errorf("load the firing alerts: %w", err)
	}
	defer rows.Close()
	var out []alerts.Active
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var a alerts.Active
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			return nil, fmt.Errorf("a stored firing alert: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *sqlStore) SaveFiring(ctx context.Context, firing []alerts.Active) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cdcd_alert_firing`); err != nil {
			return err
		}
		for _, a := range firing {
			doc, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_alert_firing (rule, pipeline, doc) VALUES (?, ?, ?)`), a.Rule, a.Pipeline, string(doc)); err != nil {
				return fmt.Errorf("save the firing alerts: %w", err)
			}
		}
		return nil
	})
}

func (s *sqlStore) AppendAlertHistory(ctx context.Context, h alerts.HistoryEntry) error {
	id, err := randomHex(8)
	if err != nil {
		return err
	}
	if h.At.IsZero() {
		h.At = s.now()
	}
	delivered := 0
	if h.Delivered {
		delivered = 1
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_alert_history (id, at, rule, pipeline, status, channel, delivered, attempts, error, summary)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), id, h.At.UnixMicro(), h.Rule, h.Pipeline, string(h.Status), h.Channel, delivered, h.Attempts, h.Error, h.Summary); err != nil {
			return fmt.Errorf("record an alert delivery: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_alert_history WHERE at < ?`), h.At.Add(-alertHistoryRetention).UnixMicro())
		return err
	})
}

func (s *sqlStore) ListAlertHistory(ctx context.Context, limit int) ([]alerts.HistoryEntry, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, rule, pipeline, status, channel, delivered, attempts, error, summary FROM cdcd_alert_history
		ORDER BY at DESC, id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list the alert history: %w", err)
	}
	defer rows.Close()
	var out []alerts.HistoryEntry
	for rows.Next() {
		var h alerts.HistoryEntry
		var at int64
		var status string
		var delivered int
		if err := rows.Scan(&at, &h.Rule, &h.Pipeline, &status, &h.Channel, &delivered, &h.Attempts, &h.Error, &h.Summary); err != nil {
			return nil, err
		}
		h.At, h.Status, h.Delivered = time.UnixMicro(at).UTC(), notifyStatus(status), delivered == 1
		out = append(out, h)
	}
	return out, rows.Err()
}

func notifyStatus(s string) notify.Status { return notify.Status(s) }
