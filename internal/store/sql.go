package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

type dialect struct {
	name      string
	blob      string
	bigint    string
	numbered  bool   // $1 placeholders instead of ?
	forUpdate string // row lock suffix for read-modify-write
	lock      string // statement that serialises migrations
}

type sqlStore struct {
	db     *sql.DB
	d      dialect
	cipher *secrets.Cipher
	now    func() time.Time
}

var _ Store = (*sqlStore)(nil)

func newSQLStore(ctx context.Context, db *sql.DB, d dialect, c *secrets.Cipher) (*sqlStore, error) {
	if c == nil {
		return nil, errors.New("store needs a cipher for secrets at rest")
	}
	s := &sqlStore{db: db, d: d, cipher: c, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.upgradeSealed(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// q rewrites ? placeholders for the dialect. Our statements hold no literal '?'.
func (s *sqlStore) q(query string) string {
	if !s.d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *sqlStore) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin metadata transaction: %w", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit metadata transaction: %w", err)
	}
	return nil
}

func (s *sqlStore) micros() int64 { return s.now().UnixMicro() }

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func (s *sqlStore) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lock != "" {
			if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS cdcd_schema_migrations (version `+s.d.bigint+` PRIMARY KEY, applied_at `+s.d.bigint+` NOT NULL)`); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM cdcd_schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(migrations) {
			return fmt.Errorf("metadata store is at schema version %d, newer than this cdcd (%d): upgrade cdcd", have, len(migrations))
		}
		for i := have; i < len(migrations); i++ {
			stmt := strings.NewReplacer("{{blob}}", s.d.blob, "{{bigint}}", s.d.bigint).Replace(migrations[i])
			for _, part := range strings.Split(stmt, ";") {
				if strings.TrimSpace(part) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, part); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_schema_migrations (version, applied_at) VALUES (?, ?)`), i+1, s.micros()); err != nil {
				return fmt.Errorf("record migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// Close implements Store.
func (s *sqlStore) Close() error { return s.db.Close() }

// --- offsets ---

func (s *sqlStore) Acquire(ctx context.Context, pipeline string) (offsets.Epoch, error) {
	var e int64
	err := s.db.QueryRowContext(ctx, s.q(`INSERT INTO cdcd_offsets (pipeline, epoch, position, updated_at) VALUES (?, 1, NULL, ?)
		ON CONFLICT (pipeline) DO UPDATE SET epoch = cdcd_offsets.epoch + 1 RETURNING epoch`), pipeline, s.micros()).Scan(&e)
	if err != nil {
		return 0, fmt.Errorf("acquire lease of pipeline %q: %w", pipeline, err)
	}
	return offsets.Epoch(e), nil
}

func (s *sqlStore) Load(ctx context.Context, pipeline string) (offsets.Position, error) {
	var p []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT position FROM cdcd_offsets WHERE pipeline = ?`), pipeline).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && p == nil) {
		return nil, offsets.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load offset of pipeline %q: %w", pipeline, err)
	}
	return offsets.Position(p), nil
}

// lockEpoch reads the pipeline's epoch and position inside tx, locking the row.
func (s *sqlStore) lockEpoch(ctx context.Context, tx *sql.Tx, pipeline string) (offsets.Epoch, offsets.Position, error) {
	var e int64
	var p []byte
	err := tx.QueryRowContext(ctx, s.q(`SELECT epoch, position FROM cdcd_offsets WHERE pipeline = ?`+s.d.forUpdate), pipeline).Scan(&e, &p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read lease of pipeline %q: %w", pipeline, err)
	}
	return offsets.Epoch(e), p, nil
}

func (s *sqlStore) Commit(ctx context.Context, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.commitIn(ctx, tx, pipeline, epoch, p) })
}

// commitIn commits an offset within tx, fenced by epoch.
func (s *sqlStore) commitIn(ctx context.Context, tx *sql.Tx, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	cur, stored, err := s.lockEpoch(ctx, tx, pipeline)
	if err != nil {
		return err
	}
	skip, err := offsets.CheckCommit(pipeline, cur, epoch, stored, p)
	if err != nil || skip {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q(`UPDATE cdcd_offsets SET position = ?, updated_at = ? WHERE pipeline = ? AND epoch = ?`),
		[]byte(p), s.micros(), pipeline, int64(epoch))
	if err != nil {
		return fmt.Errorf("commit offset of pipeline %q: %w", pipeline, err)
	}
	return nil
}

// --- schema history ---

func (s *sqlStore) SaveTableVersion(ctx context.Context, pipeline string, tv schema.TableVersion) error {
	shape, err := json.Marshal(tv.Table)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO cdcd_schema_versions (pipeline, namespace, name, version, position, shape, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, namespace, name, version) DO NOTHING`),
		pipeline, tv.Table.ID.Namespace, tv.Table.ID.Name, int64(tv.Table.Version), []byte(tv.Pos), string(shape), s.micros())
	if err != nil {
		return fmt.Errorf("save schema version: %w", err)
	}
	return nil
}

func (s *sqlStore) LoadTableVersions(ctx context.Context, pipeline string) ([]schema.TableVersion, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT position, shape FROM cdcd_schema_versions WHERE pipeline = ? ORDER BY namespace, name, version`), pipeline)
	if err != nil {
		return nil, fmt.Errorf("load schema history: %w", err)
	}
	defer rows.Close()
	var out []schema.TableVersion
	for rows.Next() {
		var pos []byte
		var shape string
		if err := rows.Scan(&pos, &shape); err != nil {
			return nil, err
		}
		var tv schema.TableVersion
		if err := json.Unmarshal([]byte(shape), &tv.Table); err != nil {
			return nil, fmt.Errorf("decode stored schema version: %w", err)
		}
		tv.Pos = pos
		out = append(out, tv)
	}
	return out, rows.Err()
}

// --- snapshot progress ---

// fenced runs f in a transaction that holds the pipeline's lease row, if epoch
// is the pipeline's current one (else offsets.ErrFenced).
func (s *sqlStore) fenced(ctx context.Context, pipeline string, epoch offsets.Epoch, f func(tx *sql.Tx) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		cur, _, err := s.lockEpoch(ctx, tx, pipeline)
		if err != nil {
			return err
		}
		if cur != epoch {
			return fmt.Errorf("%w (pipeline %q: have %d, current %d)", offsets.ErrFenced, pipeline, epoch, cur)
		}
		return f(tx)
	})
}

func (s *sqlStore) SaveSnapshotProgress(ctx context.Context, pipeline string, epoch offsets.Epoch, p sources.SnapshotProgress) error {
	return s.fenced(ctx, pipeline, epoch, func(tx *sql.Tx) error {
		done := 0
		if p.Done {
			done = 1
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_snapshot_progress (pipeline, namespace, name, rows_done, rows_estimated, done, state, updated_at, resync)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (pipeline, namespace, name) DO UPDATE SET rows_done = excluded.rows_done,
				rows_estimated = excluded.rows_estimated, done = excluded.done, state = excluded.state, updated_at = excluded.updated_at,
				resync = excluded.resync`),
			pipeline, p.Table.Namespace, p.Table.Name, p.RowsDone, p.RowsEstimated, done, p.State, s.micros(), boolInt(p.Resync))
		if err != nil {
			return fmt.Errorf("save snapshot progress of %s: %w", p.Table, err)
		}
		return nil
	})
}

func (s *sqlStore) LoadSnapshotProgress(ctx context.Context, pipeline string) ([]sources.SnapshotProgress, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT namespace, name, rows_done, rows_estimated, done, state, resync FROM cdcd_snapshot_progress
		WHERE pipeline = ? ORDER BY namespace, name`), pipeline)
	if err != nil {
		return nil, fmt.Errorf("load snapshot progress: %w", err)
	}
	defer rows.Close()
	var out []sources.SnapshotProgress
	for rows.Next() {
		var p sources.SnapshotProgress
		var done, resync int
		if err := rows.Scan(&p.Table.Namespace, &p.Table.Name, &p.RowsDone, &p.RowsEstimated, &done, &p.State, &resync); err != nil {
			return nil, err
		}
		p.Done, p.Resync = done != 0, resync != 0
		out = append(out, p)
	}
	return out, rows.Err()
}

// execEach runs each statement with the pipeline's name in tx.
func (s *sqlStore) execEach(ctx context.Context, tx *sql.Tx, what, pipeline string, stmts ...string) error {
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, s.q(q), pipeline); err != nil {
			return fmt.Errorf("%s pipeline %q: %w", what, pipeline, err)
		}
	}
	return nil
}

// RequestResync records resync requests for tables of a stopped pipeline, in
// one transaction. Each table's held changes and hold go (what it held is read
// again). With reset, the pipeline's history goes first: offsets, schema
// history, snapshot progress, holds.
func (s *sqlStore) RequestResync(ctx context.Context, pipeline string, tables []schema.TableID, reset bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM cdcd_pipelines WHERE name = ?`), pipeline).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("pipeline %q: %w", pipeline, ErrNotFound)
		}
		if reset {
			if err := s.execEach(ctx, tx, "reset", pipeline,
				// the epoch stays: a lease never repeats one
				`UPDATE cdcd_offsets SET position = NULL WHERE pipeline = ?`,
				`DELETE FROM cdcd_schema_versions WHERE pipeline = ?`,
				`DELETE FROM cdcd_snapshot_progress WHERE pipeline = ?`,
				`DELETE FROM cdcd_held_changes WHERE pipeline = ?`,
				`DELETE FROM cdcd_holds WHERE pipeline = ?`); err != nil {
				return err
			}
		}
		for _, t := range tables {
			if err := s.deleteHold(ctx, tx, pipeline, t, false); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_snapshot_progress (pipeline, namespace, name, rows_done, rows_estimated, done, state, updated_at, resync)
				VALUES (?, ?, ?, 0, -1, 0, NULL, ?, 1)
				ON CONFLICT (pipeline, namespace, name) DO UPDATE SET rows_done = 0, rows_estimated = -1, done = 0, state = NULL,
					updated_at = excluded.updated_at, resync = 1`), pipeline, t.Namespace, t.Name, s.micros()); err != nil {
				return fmt.Errorf("request the resync of %s: %w", t, err)
			}
		}
		return nil
	})
}

// --- connections ---

func (s *sqlStore) Apply(ctx context.Context, conns []Connection, pipes []PipelinePut) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, c := range conns {
			if err := s.putConnection(ctx, tx, c); err != nil {
				return err
			}
		}
		for _, p := range pipes {
			if err := s.putPipeline(ctx, tx, p.Pipeline, p.Connections); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqlStore) PutConnection(ctx context.Context, c Connection) error {
	return s.Apply(ctx, []Connection{c}, nil)
}

func (s *sqlStore) putConnection(ctx context.Context, tx *sql.Tx, c Connection) error {
	now := s.micros()
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_connections (name, type, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET type = excluded.type, config = excluded.config, updated_at = excluded.updated_at`),
		c.Name, c.Type, s.seal(connConfig, c.Config, c.Name), now, now)
	if err != nil {
		return fmt.Errorf("save connection %q: %w", c.Name, err)
	}
	return nil
}

func (s *sqlStore) scanConnection(sc interface{ Scan(...any) error }) (Connection, error) {
	var c Connection
	var sealed string
	var created, updated int64
	if err := sc.Scan(&c.Name, &c.Type, &sealed, &created, &updated); err != nil {
		return c, err
	}
	cfg, err := s.open(connConfig, sealed, c.Name)
	if err != nil {
		return c, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	c.Config, c.CreatedAt, c.UpdatedAt = cfg, fromMicros(created), fromMicros(updated)
	return c, nil
}

func (s *sqlStore) GetConnection(ctx context.Context, name string) (Connection, error) {
	c, err := s.scanConnection(s.db.QueryRowContext(ctx, s.q(`SELECT name, type, config, created_at, updated_at FROM cdcd_connections WHERE name = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("connection %q: %w", name, ErrNotFound)
	}
	return c, err
}

func (s *sqlStore) ListConnections(ctx context.Context) ([]Connection, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, type, config, created_at, updated_at FROM cdcd_connections ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		c, err := s.scanConnection(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *sqlStore) DeleteConnection(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT pipeline FROM cdcd_pipeline_connections WHERE connection = ? ORDER BY pipeline`), name)
		if err != nil {
			return err
		}
		var users []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			users = append(users, p)
		}
		rows.Close()
		if len(users) > 0 {
			return fmt.Errorf("%w: connection %q is used by pipelines %s; delete or change them first", ErrConflict, name, strings.Join(users, ", "))
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_connections WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("delete connection %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("connection %q: %w", name, ErrNotFound)
		}
		return nil
	})
}

// --- pipelines ---

func (s *sqlStore) PutPipeline(ctx context.Context, p Pipeline, connections []string) error {
	return s.Apply(ctx, nil, []PipelinePut{{Pipeline: p, Connections: connections}})
}

func (s *sqlStore) putPipeline(ctx context.Context, tx *sql.Tx, p Pipeline, connections []string) error {
	now := s.micros()
	var sealed string
	err := tx.QueryRowContext(ctx, s.q(`SELECT spec FROM cdcd_pipelines WHERE name = ?`+s.d.forUpdate), p.Name).Scan(&sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_pipelines (name, spec, paused, state, last_error, generation, created_at, updated_at)
			VALUES (?, ?, ?, 'created', '', 1, ?, ?)`), p.Name, s.seal(pipelineSpec, p.Spec, p.Name), boolInt(p.Paused), now, now)
	case err != nil:
		return fmt.Errorf("read pipeline %q: %w", p.Name, err)
	default:
		old, oerr := s.open(pipelineSpec, sealed, p.Name)
		bump := 1
		if oerr == nil && string(old) == string(p.Spec) {
			bump = 0
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE cdcd_pipelines SET spec = ?, paused = ?, generation = generation + ?, updated_at = ? WHERE name = ?`),
			s.seal(pipelineSpec, p.Spec, p.Name), boolInt(p.Paused), bump, now, p.Name)
	}
	if err != nil {
		return fmt.Errorf("save pipeline %q: %w", p.Name, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_pipeline_connections WHERE pipeline = ?`), p.Name); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range connections {
		if seen[c] {
			continue
		}
		seen[c] = true
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_pipeline_connections (pipeline, connection) VALUES (?, ?)`), p.Name, c); err != nil {
			return fmt.Errorf("record connection %q of pipeline %q: %w", c, p.Name, err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sqlStore) scanPipeline(sc interface{ Scan(...any) error }) (Pipeline, error) {
	var p Pipeline
	var sealed string
	var paused int
	var created, updated int64
	if err := sc.Scan(&p.Name, &sealed, &paused, &p.State, &p.LastError, &p.Generation, &created, &updated); err != nil {
		return p, err
	}
	spec, err := s.open(pipelineSpec, sealed, p.Name)
	if err != nil {
		return p, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	p.Spec, p.Paused, p.CreatedAt, p.UpdatedAt = spec, paused != 0, fromMicros(created), fromMicros(updated)
	return p, nil
}

const pipelineCols = `name, spec, paused, state, last_error, generation, created_at, updated_at`

func (s *sqlStore) GetPipeline(ctx context.Context, name string) (Pipeline, error) {
	p, err := s.scanPipeline(s.db.QueryRowContext(ctx, s.q(`SELECT `+pipelineCols+` FROM cdcd_pipelines WHERE name = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("pipeline %q: %w", name, ErrNotFound)
	}
	return p, err
}

func (s *sqlStore) ListPipelines(ctx context.Context) ([]Pipeline, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+pipelineCols+` FROM cdcd_pipelines ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	defer rows.Close()
	var out []Pipeline
	for rows.Next() {
		p, err := s.scanPipeline(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *sqlStore) exec1(ctx context.Context, what, name, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", what, name, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) SetPipelinePaused(ctx context.Context, name string, paused bool) error {
	return s.exec1(ctx, "pipeline", name, `UPDATE cdcd_pipelines SET paused = ?, updated_at = ? WHERE name = ?`, boolInt(paused), s.micros(), name)
}

func (s *sqlStore) SavePipelineState(ctx context.Context, name, state, lastError string) error {
	return s.exec1(ctx, "pipeline", name, `UPDATE cdcd_pipelines SET state = ?, last_error = ? WHERE name = ?`, state, lastError, name)
}

func (s *sqlStore) DeletePipeline(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.execEach(ctx, tx, "delete", name,
			`DELETE FROM cdcd_pipeline_connections WHERE pipeline = ?`,
			`DELETE FROM cdcd_offsets WHERE pipeline = ?`,
			`DELETE FROM cdcd_schema_versions WHERE pipeline = ?`,
			`DELETE FROM cdcd_snapshot_progress WHERE pipeline = ?`,
			`DELETE FROM cdcd_held_changes WHERE pipeline = ?`,
			`DELETE FROM cdcd_holds WHERE pipeline = ?`,
			`DELETE FROM cdcd_skipped WHERE pipeline = ?`,
			`DELETE FROM cdcd_pipeline_stats WHERE pipeline = ?`,
			`DELETE FROM cdcd_events WHERE pipeline = ?`,
			`DELETE FROM cdcd_series WHERE pipeline = ?`,
			`DELETE FROM cdcd_verifications WHERE pipeline = ?`); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_pipelines WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("delete pipeline %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("pipeline %q: %w", name, ErrNotFound)
		}
		return nil
	})
}
