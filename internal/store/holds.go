package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	engine "github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Holds are tables held by a pipeline's schema-change policy, with the changes
// kept aside for them. Held changes are row data: every entry is sealed at rest
// like connection secrets, and so is the proposal (it names columns).

// proposal is the sealed part of a hold record.
type proposal struct {
	Reason   string       `json:"reason"`
	Proposed schema.Delta `json:"proposed"`
	DDL      []string     `json:"ddl"`
}

// entry kinds in a sealed held entry's first byte.
const (
	entryDelta  = 'd'
	entryChange = 'c'
)

// ListHolds returns a pipeline's held tables, by table.
func (s *sqlStore) ListHolds(ctx context.Context, pipeline string) ([]engine.Hold, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT namespace, name, status, proposal, since, watermark, held, drained, dropped, created_at, resolved_at
		FROM cdcd_holds WHERE pipeline = ? ORDER BY namespace, name`), pipeline)
	if err != nil {
		return nil, fmt.Errorf("list held tables: %w", err)
	}
	defer rows.Close()
	var out []engine.Hold
	for rows.Next() {
		var h engine.Hold
		var sealed string
		var status string
		var created, resolved int64
		if err := rows.Scan(&h.Table.Namespace, &h.Table.Name, &status, &sealed, &h.Since, &h.Watermark, &h.Held, &h.Drained, &h.Dropped, &created, &resolved); err != nil {
			return nil, err
		}
		raw, err := s.open(holdProposal, sealed, pipeline, h.Table.Namespace, h.Table.Name)
		if err != nil {
			return nil, fmt.Errorf("held table %s: %w", h.Table, err)
		}
		var p proposal
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("held table %s: %w", h.Table, err)
		}
		h.Status, h.Reason, h.Proposed, h.DDL = engine.HoldStatus(status), p.Reason, p.Proposed, p.DDL
		h.CreatedAt = time.UnixMicro(created).UTC()
		if resolved != 0 {
			h.ResolvedAt = time.UnixMicro(resolved).UTC()
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// ResolveHold records a user's decision on a pending hold. Deciding again before
// the pipeline carried out the first decision replaces it; a hold already carried
// out is gone (ErrNotFound).
func (s *sqlStore) ResolveHold(ctx context.Context, pipelineName string, table schema.TableID, status engine.HoldStatus) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, s.q(`SELECT status FROM cdcd_holds WHERE pipeline = ? AND namespace = ? AND name = ?`+s.d.forUpdate),
			pipelineName, table.Namespace, table.Name).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no schema change held for table %s of pipeline %q: %w", table, pipelineName, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if engine.HoldStatus(cur) == engine.HoldRejected && status != engine.HoldRejected {
			return fmt.Errorf("table %s was rejected and its held changes discarded; resync the table to replicate it again: %w", table, ErrConflict)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE cdcd_holds SET status = ?, resolved_at = ? WHERE pipeline = ? AND namespace = ? AND name = ?`),
			string(status), s.micros(), pipelineName, table.Namespace, table.Name)
		return err
	})
}

// deleteHold deletes a table's held changes, and its hold unless keep is set.
func (s *sqlStore) deleteHold(ctx context.Context, tx *sql.Tx, pipelineName string, table schema.TableID, keep bool) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_held_changes WHERE pipeline = ? AND namespace = ? AND name = ?`),
		pipelineName, table.Namespace, table.Name); err != nil {
		return fmt.Errorf("delete held changes of %s: %w", table, err)
	}
	q := `DELETE FROM cdcd_holds WHERE pipeline = ? AND namespace = ? AND name = ?`
	if keep {
		q = `UPDATE cdcd_holds SET held = 0, drained = 0 WHERE pipeline = ? AND namespace = ? AND name = ?`
	}
	if _, err := tx.ExecContext(ctx, s.q(q), pipelineName, table.Namespace, table.Name); err != nil {
		return fmt.Errorf("finish hold of %s: %w", table, err)
	}
	return nil
}

// BindHolds returns the pipeline engine's view of the holds and skipped changes
// of one pipeline run, fenced by epoch (the metadata store's lease of the
// pipeline).
func BindHolds(s Store, pipelineName string, epoch offsets.Epoch) interface {
	engine.HoldStore
	engine.SkipStore
} {
	return boundHolds{s: s.(*sqlStore), pipeline: pipelineName, epoch: epoch}
}

type boundHolds struct {
	s        *sqlStore
	pipeline string
	epoch    offsets.Epoch
}

func (b boundHolds) fenced(ctx context.Context, f func(tx *sql.Tx) error) error {
	return b.s.fenced(ctx, b.pipeline, b.epoch, f)
}

func (b boundHolds) LoadHolds(ctx context.Context) ([]engine.Hold, error) {
	return b.s.ListHolds(ctx, b.pipeline)
}

func (b boundHolds) Spool(ctx context.Context, created []engine.Hold, entries []engine.HeldEntry, dropped map[schema.TableID]int64, watermark offsets.Position) error {
	s := b.s
	return b.fenced(ctx, func(tx *sql.Tx) error {
		for _, h := range created {
			raw, err := json.Marshal(proposal{Reason: h.Reason, Proposed: h.Proposed, DDL: h.DDL})
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_holds (pipeline, namespace, name, status, proposal, since, watermark, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, namespace, name) DO NOTHING`),
				b.pipeline, h.Table.Namespace, h.Table.Name, string(h.Status), s.seal(holdProposal, raw, b.pipeline, h.Table.Namespace, h.Table.Name), []byte(h.Since), []byte(watermark), h.CreatedAt.UnixMicro()); err != nil {
				return fmt.Errorf("hold table %s: %w", h.Table, err)
			}
		}
		type state struct {
			lastKey []byte
			seq     int64
			added   int64
		}
		tables := map[schema.TableID]*state{}
		for _, e := range entries {
			st := tables[e.Table]
			if st == nil {
				st = &state{}
				err := tx.QueryRowContext(ctx, s.q(`SELECT h.last_key, COALESCE((SELECT MAX(seq) FROM cdcd_held_changes c
					WHERE c.pipeline = h.pipeline AND c.namespace = h.namespace AND c.name = h.name), h.drained)
					FROM cdcd_holds h WHERE h.pipeline = ? AND h.namespace = ? AND h.name = ?`),
					b.pipeline, e.Table.Namespace, e.Table.Name).Scan(&st.lastKey, &st.seq)
				if err != nil {
					return fmt.Errorf("held changes of %s: no hold: %w", e.Table, err)
				}
				tables[e.Table] = st
			}
			if e.Key != nil && st.lastKey != nil && bytes.Compare(e.Key, st.lastKey) <= 0 {
				continue // kept already by an earlier run
			}
			var raw []byte
			if e.Delta != nil {
				j, err := json.Marshal(e.Delta)
				if err != nil {
					return err
				}
				raw = append([]byte{entryDelta}, j...)
			} else {
				raw = schema.AppendChange([]byte{entryChange}, e.Change)
			}
			st.seq++
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_held_changes (pipeline, namespace, name, seq, entry) VALUES (?, ?, ?, ?, ?)`),
				b.pipeline, e.Table.Namespace, e.Table.Name, st.seq, s.seal(heldEntry, raw, b.pipeline, e.Table.Namespace, e.Table.Name, st.seq)); err != nil {
				return fmt.Errorf("keep a held change of %s: %w", e.Table, err)
			}
			if e.Key != nil {
				st.lastKey = e.Key
			}
			if e.Change != nil {
				st.added++
			}
		}
		for t, st := range tables {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE cdcd_holds SET last_key = ?, held = held + ? WHERE pipeline = ? AND namespace = ? AND name = ?`),
				st.lastKey, st.added, b.pipeline, t.Namespace, t.Name); err != nil {
				return err
			}
		}
		for t, n := range dropped {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE cdcd_holds SET dropped = dropped + ? WHERE pipeline = ? AND namespace = ? AND name = ?`),
				n, b.pipeline, t.Namespace, t.Name); err != nil {
				return err
			}
		}
		if watermark != nil {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE cdcd_holds SET watermark = ? WHERE pipeline = ? AND (watermark IS NULL OR watermark < ?)`),
				[]byte(watermark), b.pipeline, []byte(watermark)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b boundHolds) ReadHeld(ctx context.Context, table schema.TableID, afterSeq int64, limit int) ([]engine.HeldEntry, error) {
	s := b.s
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, entry FROM cdcd_held_changes WHERE pipeline = ? AND namespace = ? AND name = ? AND seq > ?
		ORDER BY seq LIMIT ?`), b.pipeline, table.Namespace, table.Name, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read held changes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []engine.HeldEntry
	for rows.Next() {
		e := engine.HeldEntry{Table: table}
		var sealed string
		if err := rows.Scan(&e.Seq, &sealed); err != nil {
			return nil, err
		}
		raw, err := s.open(heldEntry, sealed, b.pipeline, table.Namespace, table.Name, e.Seq)
		if err != nil || len(raw) == 0 {
			return nil, fmt.Errorf("held change %d of %s does not open: %w", e.Seq, table, err)
		}
		switch raw[0] {
		case entryDelta:
			var d schema.Delta
			if err := json.Unmarshal(raw[1:], &d); err != nil {
				return nil, fmt.Errorf("held schema change %d of %s: %w", e.Seq, table, err)
			}
			e.Delta = &d
		case entryChange:
			c, err := schema.DecodeChange(raw[1:])
			if err != nil {
				return nil, fmt.Errorf("held change %d of %s: %w", e.Seq, table, err)
			}
			e.Change = &c
		default:
			return nil, fmt.Errorf("held change %d of %s: unknown entry kind %q", e.Seq, table, raw[0])
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (b boundHolds) MarkDrained(ctx context.Context, table schema.TableID, seq int64) error {
	return b.fenced(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, b.s.q(`UPDATE cdcd_holds SET drained = ? WHERE pipeline = ? AND namespace = ? AND name = ? AND drained < ?`),
			seq, b.pipeline, table.Namespace, table.Name, seq)
		return err
	})
}

func (b boundHolds) FinishHold(ctx context.Context, table schema.TableID, keep bool) error {
	return b.fenced(ctx, func(tx *sql.Tx) error {
		return b.s.deleteHold(ctx, tx, b.pipeline, table, keep)
	})
}

// keepSkipped bounds the skipped changes recorded per pipeline (the newest stay).
const keepSkipped = 10_000

// RecordSkipped records changes a transform failed on (on_transform_error: skip).
func (b boundHolds) RecordSkipped(ctx context.Context, skipped []transforms.Skipped) error {
	s := b.s
	return b.fenced(ctx, func(tx *sql.Tx) error {
		var seq int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(seq), 0) FROM cdcd_skipped WHERE pipeline = ?`), b.pipeline).Scan(&seq); err != nil {
			return err
		}
		now := s.micros()
		for _, k := range skipped {
			seq++
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_skipped (pipeline, seq, namespace, name, position, transform, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
				b.pipeline, seq, k.Table.Namespace, k.Table.Name, []byte(k.Pos), k.Transform, k.Error, now); err != nil {
				return fmt.Errorf("record a skipped change: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_skipped WHERE pipeline = ? AND seq <= ?`), b.pipeline, seq-keepSkipped)
		return err
	})
}

// SkippedChange is a recorded skipped change.
type SkippedChange struct {
	transforms.Skipped
	At time.Time `json:"at"`
}

// ListSkipped returns a pipeline's most recent skipped changes, newest first.
func (s *sqlStore) ListSkipped(ctx context.Context, pipelineName string, limit int) ([]SkippedChange, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT namespace, name, position, transform, error, created_at FROM cdcd_skipped
		WHERE pipeline = ? ORDER BY seq DESC LIMIT ?`), pipelineName, limit)
	if err != nil {
		return nil, fmt.Errorf("list skipped changes: %w", err)
	}
	defer rows.Close()
	out := []SkippedChange{}
	for rows.Next() {
		var k SkippedChange
		var at int64
		if err := rows.Scan(&k.Table.Namespace, &k.Table.Name, &k.Pos, &k.Transform, &k.Error, &at); err != nil {
			return nil, err
		}
		k.At = time.UnixMicro(at).UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}
