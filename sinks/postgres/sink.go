package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/dialer"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Factory returns the Postgres sink's factory.
func Factory() sinks.Factory {
	return component.Configured(func(c Config, d sinks.Deps) sinks.Sink { return New(c, d) })
}

// Sink is the Postgres sink. It implements sinks.Sink, sinks.Checker and
// sinks.OffsetStorer.
type Sink struct {
	cfg Config
	// names checks destination names: none cut, none shared
	names    *sinks.Names
	pipeline string
	// dial makes every connection, so that Close can cut them (dialer)
	dial    *dialer.Tracker
	log     *slog.Logger
	m       *metrics
	meta    sinks.MetaColumns
	offsets string // quoted offsets table
	tombs   string // quoted tombstones table (hard deletes)
	truncs  string // quoted table of truncations recorded by the destination tables' triggers
	truncFn string // quoted function those triggers run

	poolMu sync.Mutex
	pool   *pgxpool.Pool // offset store operations

	epochMu sync.Mutex
	epoch   offsets.Epoch    // from the last Acquire; Write checks it
	written offsets.Position // the highest checkpoint a Write of this epoch stored
	gen     []byte           // the generation prefix of _cdc_version

	conn       *pgx.Conn // writes: one session, so that staging tables persist
	merge      bool      // MERGE is available and chosen
	tables     map[schema.TableID]*destTable
	stages     int
	tombstones bool // tombstones may have been written since the last purge
	buf        bytes.Buffer
	warned     map[string]bool // columns whose unrepresentable values were logged
	swept      []sweptRows     // the sweeps of the batch being written
}

var _ interface {
	sinks.Sink
	sinks.Checker
	sinks.OffsetStorer
	sinks.Cleaner
} = (*Sink)(nil)

// New returns a Postgres sink; c must have its defaults applied and be valid.
func New(c Config, d sinks.Deps) *Sink {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: c, pipeline: d.Pipeline, log: log.With("component", "sink.postgres"), m: newMetrics(d.Metrics), dial: dialer.New(),
		tombstones: true, // an earlier run may have left some
		// Postgres cuts identifiers to NAMEDATALEN-1 bytes, silently
		names: sinks.NewNames(c.Common, sinks.Limits{Bytes: true, Table: 63, Column: 63})}
	s.meta = c.Meta()
	ns, name := c.Schema, c.OffsetsTable
	if a, b, ok := strings.Cut(c.OffsetsTable, "."); ok {
		ns, name = a, b
	}
	s.offsets = pgx.Identifier{ns, name}.Sanitize()
	s.tombs = pgx.Identifier{ns, strings.TrimSuffix(name, "offsets") + "tombstones"}.Sanitize()
	if s.tombs == s.offsets {
		s.tombs = pgx.Identifier{ns, name + "_tombstones"}.Sanitize()
	}
	base := strings.TrimSuffix(name, "offsets")
	if base == name {
		base = name + "_"
	}
	s.truncs = pgx.Identifier{ns, base + "truncations"}.Sanitize()
	s.truncFn = pgx.Identifier{ns, base + "record_truncate"}.Sanitize()
	return s
}

type metrics struct {
	rows   *prometheus.CounterVec
	nulled *prometheus.CounterVec
	swept  *prometheus.CounterVec
}

// sweptRows is what one sweep of a batch removed, counted once the batch commits.
type sweptRows struct {
	table string
	n     int64
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		rows: component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_sink_postgres_rows_total",
			Help: "Rows merged into destination tables (after collapsing per key), by pipeline and table.",
		}, []string{"pipeline", "table"})),
		nulled: sinks.NulledValues(reg),
		swept:  sinks.SweptRows(reg),
	}
}

// poolFor returns the offset store's pool, connecting on first use (the engine
// calls Acquire and Load before Open).
func (s *Sink) poolFor(ctx context.Context) (*pgxpool.Pool, error) {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if s.pool != nil {
		return s.pool, nil
	}
	pc, err := pgxpool.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, component.Permanent(fmt.Errorf("dsn: %s", redact.Text(err.Error())))
	}
	pc.MaxConns = 2
	pc.ConnConfig.DialFunc = s.dial.DialContext
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to destination: %w", err)
	}
	if err := s.ensureOffsetsTable(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s.pool = pool
	return pool, nil
}

func (s *Sink) ensureOffsetsTable(ctx context.Context, pool *pgxpool.Pool) error {
	ns, _, qualified := strings.Cut(s.cfg.OffsetsTable, ".")
	if !qualified {
		ns = s.cfg.Schema
	}
	seq := pgx.Identifier{ns, "_cdc_generations"}.Sanitize()
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{ns}.Sanitize(),
		"CREATE SEQUENCE IF NOT EXISTS " + seq,
		"CREATE TABLE IF NOT EXISTS " + s.offsets + ` (
			pipeline text PRIMARY KEY,
			epoch bigint NOT NULL,
			-- prefixes every _cdc_version this pipeline writes; a pipeline deleted
			-- and created again (a resync) starts a newer generation, so its
			-- snapshot's rows outrank the rows of the old history
			generation bigint NOT NULL DEFAULT nextval('` + strings.ReplaceAll(seq, "'", "''") + `'),
			position bytea,
			updated_at timestamptz NOT NULL DEFAULT now())`,
		// hard deletes leave a tombstone until the offset passes it, so that an
		// older change replayed after the delete cannot bring the row back
		"CREATE TABLE IF NOT EXISTS " + s.tombs + ` (
			dest_table text NOT NULL,
			key text NOT NULL,
			version bytea NOT NULL,
			PRIMARY KEY (dest_table, key))`,
		// a TRUNCATE of a destination table is never cdcd's (a replicated
		// truncate is a versioned DELETE): each table's trigger records it
		// here, and the next write or schema change of the table reports the
		// table lost, so that it is resynced (sinks.TableLostError)
		"CREATE TABLE IF NOT EXISTS " + s.truncs + ` (
			dest_schema text NOT NULL,
			dest_table text NOT NULL,
			at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (dest_schema, dest_table))`,
		"CREATE FUNCTION " + s.truncFn + `() RETURNS trigger LANGUAGE plpgsql AS '
			BEGIN
				INSERT INTO ` + strings.ReplaceAll(s.truncs, "'", "''") + ` (dest_schema, dest_table) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME)
					ON CONFLICT (dest_schema, dest_table) DO UPDATE SET at = now();
				RETURN NULL;
			END'`,
	}
	for _, q := range stmts {
		if _, err := pool.Exec(ctx, q); err != nil && !isDuplicateObject(err) {
			return classify(fmt.Errorf("create offsets table %s: %w", s.offsets, err))
		}
	}
	return nil
}

// Acquire implements offsets.Store: it bumps the pipeline's epoch at the
// destination, so a Write under an older epoch is refused.
func (s *Sink) Acquire(ctx context.Context, pipeline string) (offsets.Epoch, error) {
	pool, err := s.poolFor(ctx)
	if err != nil {
		return 0, err
	}
	var e, gen int64
	err = pool.QueryRow(ctx, "INSERT INTO "+s.offsets+` AS o (pipeline, epoch) VALUES ($1, 1)
		ON CONFLICT (pipeline) DO UPDATE SET epoch = o.epoch + 1, updated_at = now() RETURNING epoch, generation`, pipeline).Scan(&e, &gen)
	if err != nil {
		return 0, classify(fmt.Errorf("acquire lease: %w", err))
	}
	if pipeline == s.pipeline {
		s.epochMu.Lock()
		s.epoch, s.written = offsets.Epoch(e), nil
		s.gen = offsets.AppendUint(nil, uint64(gen))
		s.epochMu.Unlock()
	}
	return offsets.Epoch(e), nil
}

// Load implements offsets.Store.
func (s *Sink) Load(ctx context.Context, pipeline string) (offsets.Position, error) {
	pool, err := s.poolFor(ctx)
	if err != nil {
		return nil, err
	}
	var pos []byte
	err = pool.QueryRow(ctx, "SELECT position FROM "+s.offsets+" WHERE pipeline = $1", pipeline).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && pos == nil) {
		return nil, offsets.ErrNotFound
	}
	if err != nil {
		return nil, classify(fmt.Errorf("load offset: %w", err))
	}
	return offsets.Position(pos), nil
}

// Commit implements offsets.Store. After a Write the batch's checkpoint is
// already stored and this is a no-op; it writes only checkpoints of batches
// without changes (heartbeats).
func (s *Sink) Commit(ctx context.Context, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	pool, err := s.poolFor(ctx)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return s.commitIn(ctx, tx, pipeline, epoch, p)
	})
}

// commitIn checks and moves the offset inside tx, locking the pipeline's row.
func (s *Sink) commitIn(ctx context.Context, tx pgx.Tx, pipeline string, epoch offsets.Epoch, p offsets.Position) error {
	cur, stored, err := s.lockOffset(ctx, tx, pipeline)
	if err != nil {
		return err
	}
	skip, err := offsets.CheckCommit(pipeline, cur, epoch, stored, p)
	var re *offsets.RegressionError
	if errors.As(err, &re) && pipeline == s.pipeline {
		// The engine commits what it has seen durable; a Write of this epoch may
		// already have stored a later checkpoint with its data. Not a regression.
		s.epochMu.Lock()
		behindOwnWrite := s.epoch == epoch && p.Compare(s.written) <= 0
		s.epochMu.Unlock()
		if behindOwnWrite {
			return nil
		}
	}
	if err != nil || skip {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE "+s.offsets+" SET position = $2, updated_at = now() WHERE pipeline = $1", pipeline, []byte(p)); err != nil {
		return classify(fmt.Errorf("store offset: %w", err))
	}
	return nil
}

func (s *Sink) lockOffset(ctx context.Context, tx pgx.Tx, pipeline string) (offsets.Epoch, offsets.Position, error) {
	var e int64
	var pos []byte
	err := tx.QueryRow(ctx, "SELECT epoch, position FROM "+s.offsets+" WHERE pipeline = $1 FOR UPDATE", pipeline).Scan(&e, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, fmt.Errorf("%w (pipeline %q has no lease at the destination)", offsets.ErrFenced, pipeline)
	}
	if err != nil {
		return 0, nil, classify(fmt.Errorf("lock offset: %w", err))
	}
	return offsets.Epoch(e), pos, nil
}

// Check connects and reports what would stop the sink from working.
func (s *Sink) Check(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("connect to destination: %s", redact.Text(err.Error()))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var errs []error
	var canCreate bool
	err = conn.QueryRow(ctx, `SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')
		ELSE has_schema_privilege(n.oid, 'CREATE') END
		FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = $1`, s.cfg.Schema).Scan(&canCreate)
	if err != nil {
		errs = append(errs, fmt.Errorf("read privileges: %w", err))
	} else if !canCreate {
		errs = append(errs, fmt.Errorf("role %q cannot create tables in schema %q: GRANT CREATE ON SCHEMA %s TO %s (or on the database, if the schema does not exist yet)",
			conn.Config().User, s.cfg.Schema, pgx.Identifier{s.cfg.Schema}.Sanitize(), pgx.Identifier{conn.Config().User}.Sanitize()))
	}
	if s.cfg.WriteMode == "merge" && conn.PgConn().ParameterStatus("server_version") != "" && serverVersionNum(ctx, conn) < 150000 {
		errs = append(errs, errors.New("write_mode: merge needs Postgres 15 or later; use auto or upsert"))
	}
	return errors.Join(errs...)
}

func serverVersionNum(ctx context.Context, conn *pgx.Conn) int {
	var v int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0
	}
	return v
}

// Open connects the writing session.
func (s *Sink) Open(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return component.Permanent(fmt.Errorf("dsn: %s", redact.Text(err.Error())))
	}
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec // no cached plans: destination tables change shape
	cc.DialFunc = s.dial.DialContext
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect to destination: %w", err)
	}
	v := serverVersionNum(ctx, conn)
	switch s.cfg.WriteMode {
	case "merge":
		if v < 150000 {
			conn.Close(ctx)
			return component.Permanent(fmt.Errorf("write_mode: merge needs Postgres 15 or later, the destination runs %d", v))
		}
		s.merge = true
	case "auto":
		s.merge = v >= 150000
	}
	if _, err := conn.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("set time zone: %w", err)
	}
	s.conn = conn
	s.tables = map[schema.TableID]*destTable{}
	s.warned = map[string]bool{}
	return nil
}

// Close closes both connections. It is idempotent. It returns by the time ctx
// ends: a destination that does not answer (frozen) has its connections cut
// then, where pgx would wait 15 s per connection for a cancel request's answer.
func (s *Sink) Close(ctx context.Context) error {
	var err error
	s.dial.CloseWithin(ctx, func() {
		if s.conn != nil {
			err = s.conn.Close(ctx)
			s.conn = nil
		}
		s.poolMu.Lock()
		if s.pool != nil {
			s.pool.Close()
			s.pool = nil
		}
		s.poolMu.Unlock()
	})
	s.dial.Reset() // a Cleanup after Close connects again
	return err
}

// Write applies b's changes and stores b's checkpoint in one transaction.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) (err error) {
	defer func() {
		if err != nil {
			// staging tables created in the rolled-back transaction are gone
			clear(s.tables)
		}
	}()
	if s.conn == nil {
		return errors.New("postgres sink: Write before Open")
	}
	s.epochMu.Lock()
	epoch := s.epoch
	s.epochMu.Unlock()
	if epoch == 0 {
		return errors.New("postgres sink: Write before Acquire (the sink is the pipeline's offset store)")
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return classify(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	cur, stored, err := s.lockOffset(ctx, tx, s.pipeline)
	if err != nil {
		return err
	}
	if cur != epoch {
		return fmt.Errorf("%w (pipeline %q: have %d, current %d)", offsets.ErrFenced, s.pipeline, epoch, cur)
	}
	// Data and offset commit together: what is at or below the stored offset is
	// applied already. Positions increase in emission order and are never reused,
	// so a replayed change is exactly one at or below it.
	changes := b.Changes
	skip := 0
	for skip < len(changes) && changes[skip].Pos.Compare(stored) <= 0 {
		skip++
	}
	order, byTable := groupByTable(sinks.CollapseByKey(changes[skip:]))
	marked, err := s.truncations(ctx, tx)
	if err != nil {
		return err
	}
	for _, id := range order {
		if lost := s.truncated(marked, id); lost != nil {
			return lost
		}
	}
	s.swept = s.swept[:0]
	for _, id := range order {
		if err := s.writeTable(ctx, tx, id, byTable[id]); err != nil {
			return sinks.ForTable(id, err)
		}
	}
	if b.Checkpoint != nil && b.Checkpoint.Compare(stored) > 0 {
		if _, err := tx.Exec(ctx, "UPDATE "+s.offsets+" SET position = $2, updated_at = now() WHERE pipeline = $1", s.pipeline, []byte(b.Checkpoint)); err != nil {
			return classify(fmt.Errorf("store offset: %w", err))
		}
		if s.cfg.DeleteMode == "hard" && s.tombstones {
			// what is at or below the offset is never written again
			if _, err := tx.Exec(ctx, "DELETE FROM "+s.tombs+" WHERE version <= $1", s.version(b.Checkpoint)); err != nil {
				return classify(fmt.Errorf("purge tombstones: %w", err))
			}
			s.tombstones = false
		}
	}
	// The checkpoint is claimed before the transaction commits: an engine
	// Commit of an earlier checkpoint waits for this transaction's row lock
	// and reads its offset as soon as it commits, and must then know it is
	// this epoch's own (claimed after, the CI's four-pipeline test saw
	// "would move back" once). A claim whose transaction fails is harmless:
	// under this epoch only its own Writes move the offset.
	if b.Checkpoint != nil {
		s.epochMu.Lock()
		if s.epoch == epoch && b.Checkpoint.Compare(s.written) > 0 {
			s.written = b.Checkpoint.Clone()
		}
		s.epochMu.Unlock()
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	for _, sw := range s.swept {
		s.m.swept.WithLabelValues(s.pipeline, sw.table).Add(float64(sw.n))
		s.log.Info("table resync finished: rows no longer at the source removed", "table", sw.table, "rows", sw.n, "delete_mode", s.cfg.DeleteMode)
	}
	return nil
}

// version is the _cdc_version of position p: the generation prefix, then p.
func (s *Sink) version(p offsets.Position) []byte {
	return append(append(make([]byte, 0, len(s.gen)+len(p)), s.gen...), p...)
}

// Leftover implements sinks.Cleaner.
func (s *Sink) Leftover() component.Leftover {
	return component.Leftover{What: fmt.Sprintf("the pipeline's offset and lease in %s at the destination", s.offsets),
		SQL: fmt.Sprintf("DELETE FROM %s WHERE pipeline = '%s'", s.offsets, strings.ReplaceAll(s.pipeline, "'", "''"))}
}

// Cleanup forgets the pipeline at the destination (its offset and lease) when
// the pipeline is deleted; the replicated tables stay. A pipeline of the same
// name created later starts a new generation of row versions.
func (s *Sink) Cleanup(ctx context.Context) error {
	pool, err := s.poolFor(ctx)
	if err != nil {
		return err
	}
	defer s.Close(ctx) //nolint:errcheck // only the pool is open
	if _, err := pool.Exec(ctx, "DELETE FROM "+s.offsets+" WHERE pipeline = $1", s.pipeline); err != nil {
		return classify(fmt.Errorf("forget the offset of pipeline %q at the destination: %w", s.pipeline, err))
	}
	return nil
}

// classify marks errors that a retry cannot fix as permanent: data exceptions
// (a value the column rejects), undefined or duplicate objects, privileges,
// constraint violations. Connection errors stay retryable.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code[:2] {
	case "22", "23", "42", "0A", "28", "3F", "2B":
		return component.Permanent(err)
	}
	return err
}

func isDuplicateObject(err error) bool {
	var pe *pgconn.PgError
	// 23505: concurrent CREATE … IF NOT EXISTS racing on the catalog;
	// 42P06/42P07/42723/42710: the schema, table, function or trigger exists
	return errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P06" || pe.Code == "42P07" || pe.Code == "42723" || pe.Code == "42710")
}

// DestinationName implements sinks.Namer.
func (s *Sink) DestinationName(t schema.Table) (string, error) {
	return s.names.Qualified(t, s.cfg.Schema)
}

var _ sinks.Namer = (*Sink)(nil)

var _ sinks.DDLPlanner = (*Sink)(nil)
