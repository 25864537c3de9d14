package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// VerificationRetention is how many of its newest verify reports a pipeline keeps.
const VerificationRetention = 100

// Verification is one stored verify report.
type Verification struct {
	At     time.Time
	Report []byte // JSON
}

// VerificationLog keeps the pipelines' verify reports.
type VerificationLog interface {
	// SaveVerification stores v, or replaces the report of the same time.
	SaveVerification(ctx context.Context, pipeline string, v Verification) error
	// ListVerifications returns a pipeline's newest reports, newest first.
	ListVerifications(ctx context.Context, pipeline string, limit int) ([]Verification, error)
}

// Verifications returns the store's verify reports.
func Verifications(s Store) VerificationLog { return s.(*sqlStore) }

func (s *sqlStore) SaveVerification(ctx context.Context, pipeline string, v Verification) error {
	at := v.At.UTC().UnixMicro()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_verifications (pipeline, at, report) VALUES (?, ?, ?)
			ON CONFLICT (pipeline, at) DO UPDATE SET report = excluded.report`), pipeline, at, string(v.Report)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_verifications WHERE pipeline = ? AND at NOT IN
			(SELECT at FROM (SELECT at FROM cdcd_verifications WHERE pipeline = ? ORDER BY at DESC LIMIT ?) newest)`), pipeline, pipeline, VerificationRetention)
		return err
	})
	if err != nil {
		return fmt.Errorf("store a verify report of pipeline %q: %w", pipeline, err)
	}
	return nil
}

func (s *sqlStore) ListVerifications(ctx context.Context, pipeline string, limit int) ([]Verification, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, report FROM cdcd_verifications WHERE pipeline = ? ORDER BY at DESC LIMIT ?`), pipeline, limit)
	if err != nil {
		return nil, fmt.Errorf("list verify reports of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	var out []Verification
	for rows.Next() {
		var at int64
		var report string
		if err := rows.Scan(&at, &report); err != nil {
			return nil, err
		}
		out = append(out, Verification{At: time.UnixMicro(at).UTC(), Report: []byte(report)})
	}
	return out, rows.Err()
}
