package snowflake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
	"github.com/prometheus/client_golang/prometheus"
	sf "github.com/snowflakedb/gosnowflake/v2"
	"golang.org/x/sync/errgroup"
)

// Factory returns the Snowflake sink's factory.
func Factory() sinks.Factory {
	return component.Configured(func(c Config, d sinks.Deps) sinks.Sink { return New(c, d) })
}

// Option adjusts a Sink.
type Option func(*Sink)

// WithFault makes the sink call f at its named steps ("after_copy": a table's
// rows are in its raw table and not merged; "after_merge": every table of a
// batch is merged and the batch is not yet recorded); an error from f fails
// the Write there, as a crash would. Tests use it.
func WithFault(f func(step string) error) Option { return func(s *Sink) { s.fault = f } }

// Sink is the Snowflake sink. It implements sinks.Sink, sinks.Checker and
// sinks.Cleaner.
type Sink struct {
	cfg Config
	// names checks destination names: none cut, none shared
	names    *sinks.Names
	pipeline string
	tag      string // the pipeline's prefix of load ids and stage paths
	log      *slog.Logger
	m        *metrics
	meta     sinks.MetaColumns
	fault    func(string) error
	nulls    *warehouse.Unrepresentable

	db     *sql.DB
	state  string // quoted state table
	stage  string // quoted stage
	gen    uint64 // the pipeline's generation (bumped by Cleanup)
	seq    uint64 // the last batch recorded
	hwm    offsets.Position
	mu     sync.Mutex // guards tables (loads run in parallel)
	tables map[schema.TableID]*sfTable
}

var _ interface {
	sinks.Sink
	sinks.Checker
	sinks.Cleaner
} = (*Sink)(nil)

// New returns a Snowflake sink; c must have its defaults applied and be valid.
func New(c Config, d sinks.Deps, opts ...Option) *Sink {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: c, pipeline: d.Pipeline, tag: warehouse.Tag(d.Pipeline), log: log.With("component", "sink.snowflake"),
		m: newMetrics(d.Metrics), meta: c.Meta(),
		// identifiers hold 255 characters; the raw table prefixes the name
		names: sinks.NewNames(c.Common, sinks.Limits{Table: 255 - len(c.MetadataPrefix+"raw_"), Column: 255})}
	s.nulls = &warehouse.Unrepresentable{Policy: c.OnUnrepresentable, Pipeline: d.Pipeline, Nulled: s.m.nulled, Altered: sinks.AlteredValues(d.Metrics), Log: s.log}
	for _, o := range opts {
		o(s)
	}
	s.state = s.qualified(c.MetadataPrefix + "sink_state")
	s.stage = s.qualified(c.Stage)
	return s
}

type metrics struct {
	rows, bytes *prometheus.CounterVec
	nulled      *prometheus.CounterVec
	swept       *prometheus.CounterVec
	merge       *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		rows: component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_sink_snowflake_rows_total",
			Help: "Rows merged into destination tables (after collapsing per key), by pipeline and table.",
		}, []string{"pipeline", "table"})),
		bytes: component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_sink_snowflake_uploaded_bytes_total",
			Help: "Bytes of batch files uploaded to the stage, by pipeline.",
		}, []string{"pipeline"})),
		merge: component.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cdcd_sink_snowflake_load_seconds",
			Help:    "Time to upload, copy and merge one table's part of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"pipeline"})),
		nulled: sinks.NulledValues(reg),
		swept:  sinks.SweptRows(reg),
	}
}

// quote quotes one identifier.
func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// qualified is the quoted name of an object in the destination schema.
func (s *Sink) qualified(name string) string {
	return quote(s.cfg.Database) + "." + quote(s.cfg.Schema) + "." + quote(name)
}

func (s *Sink) connector() (sf.Config, error) {
	c := sf.Config{
		Account: s.cfg.Account, User: s.cfg.User, Role: s.cfg.Role, Warehouse: s.cfg.Warehouse,
		Database: s.cfg.Database, Schema: s.cfg.Schema,
		Host: s.cfg.Host, Port: s.cfg.Port, Protocol: s.cfg.Protocol,
		Application: "cdcd",
		Params:      map[string]*string{},
	}
	tag := s.cfg.QueryTag
	if tag == "" {
		tag = "cdcd:" + s.pipeline
	}
	c.Params["QUERY_TAG"] = &tag
	utc := "UTC"
	c.Params["TIMEZONE"] = &utc
	if s.cfg.PasswordAuth {
		c.Authenticator, c.Password = sf.AuthTypeSnowflake, s.cfg.Password
	} else {
		key, err := s.cfg.rsaKey()
		if err != nil {
			return c, component.Permanent(err)
		}
		c.Authenticator, c.PrivateKey = sf.AuthTypeJwt, key
	}
	if c.Host == "" {
		c.Host = s.cfg.Account + ".snowflakecomputing.com"
	}
	if c.Port == 0 {
		c.Port = 443
		if c.Protocol == "http" {
			c.Port = 80
		}
	}
	return c, nil
}

func (s *Sink) connect(ctx context.Context) (*sql.DB, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, c))
	db.SetMaxOpenConns(s.cfg.MergeParallelism + 1)
	db.SetMaxIdleConns(s.cfg.MergeParallelism + 1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, classify(fmt.Errorf("connect to Snowflake account %s as %s: %w", s.cfg.Account, s.cfg.User, err))
	}
	return db, nil
}

// Check connects and creates what the sink needs (the schema, the stage and
// the state table), reporting what stops it.
func (s *Sink) Check(ctx context.Context) error {
	db, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return s.prepare(ctx, db)
}

func (s *Sink) prepare(ctx context.Context, db *sql.DB) error {
	for _, st := range []struct{ what, q string }{
		{"create schema", "CREATE SCHEMA IF NOT EXISTS " + quote(s.cfg.Database) + "." + quote(s.cfg.Schema)},
		{"create stage", "CREATE STAGE IF NOT EXISTS " + s.stage},
		{"create state table", "CREATE TABLE IF NOT EXISTS " + s.state + ` ("pipeline" VARCHAR NOT NULL, "generation" NUMBER(20,0) NOT NULL,
			"batch" NUMBER(20,0) NOT NULL, "position" VARCHAR, "updated_at" TIMESTAMP_TZ(6), PRIMARY KEY ("pipeline"))`},
	} {
		if _, err := db.ExecContext(ctx, st.q); err != nil {
			return classify(fmt.Errorf("prepare the destination: %s: %w", st.what, err))
		}
	}
	return nil
}

// Open connects, prepares the schema, stage and state table, and loads the
// pipeline's state.
func (s *Sink) Open(ctx context.Context) error {
	if s.db != nil {
		return nil
	}
	db, err := s.connect(ctx)
	if err != nil {
		return err
	}
	if err := s.prepare(ctx, db); err != nil {
		db.Close()
		return err
	}
	s.db = db
	s.tables = map[schema.TableID]*sfTable{}
	if err := s.loadState(ctx); err != nil {
		s.db = nil
		db.Close()
		return err
	}
	return nil
}

func (s *Sink) loadState(ctx context.Context) error {
	var gen, seq int64
	var pos sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT "generation", "batch", "position" FROM `+s.state+` WHERE "pipeline" = ?`, s.pipeline).Scan(&gen, &seq, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO `+s.state+` ("pipeline", "generation", "batch", "updated_at") SELECT ?, 1, 0, CURRENT_TIMESTAMP()`, s.pipeline); err != nil {
			return classify(fmt.Errorf("record pipeline %q in %s: %w", s.pipeline, s.state, err))
		}
		s.gen, s.seq, s.hwm = 1, 0, nil
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("read sink state from %s: %w", s.state, err))
	}
	s.gen, s.seq = uint64(gen), uint64(seq)
	s.hwm, err = warehouse.ParsePosition(s.pipeline, pos.String)
	return err
}

// Leftover implements sinks.Cleaner.
func (s *Sink) Leftover() component.Leftover {
	return component.Leftover{What: fmt.Sprintf("the pipeline's written position in %s at the destination", s.state),
		SQL: fmt.Sprintf(`UPDATE %s SET "generation" = "generation" + 1, "batch" = 0, "position" = NULL, "updated_at" = CURRENT_TIMESTAMP() WHERE "pipeline" = '%s'`,
			s.state, strings.ReplaceAll(strings.ReplaceAll(s.pipeline, `\`, `\\`), "'", `\'`))}
}

// Cleanup forgets the pipeline's written position when it is deleted and starts
// a new generation, so a resync's rows outrank the old ones.
func (s *Sink) Cleanup(ctx context.Context) error {
	if s.db == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
		defer s.Close(ctx) //nolint:errcheck // nothing was written
	}
	_, err := s.db.ExecContext(ctx, `UPDATE `+s.state+` SET "generation" = "generation" + 1, "batch" = 0, "position" = NULL, "updated_at" = CURRENT_TIMESTAMP() WHERE "pipeline" = ?`, s.pipeline)
	if err != nil {
		return classify(fmt.Errorf("forget the position of pipeline %q at the destination: %w", s.pipeline, err))
	}
	return nil
}

// Close closes the connections. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// Write loads and merges b's changes newer than the recorded position, table by
// table (up to merge_parallelism at once), then records the batch.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	if s.db == nil {
		return errors.New("snowflake sink: Write before Open")
	}
	loads, last := warehouse.Plan(b.Changes, s.hwm, s.gen)
	if len(loads) == 0 {
		return nil
	}
	n := s.seq + 1
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.MergeParallelism)
	for i := range loads {
		g.Go(func() error { return sinks.ForTable(loads[i].Table, s.writeLoad(gctx, n, i, &loads[i])) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if s.fault != nil {
		if err := s.fault("after_merge"); err != nil {
			return err
		}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE `+s.state+` SET "batch" = ?, "position" = ?, "updated_at" = CURRENT_TIMESTAMP() WHERE "pipeline" = ?`,
		int64(n), warehouse.FormatPosition(last), s.pipeline)
	if err != nil {
		return classify(fmt.Errorf("record batch %d: %w", n, err))
	}
	if k, err := res.RowsAffected(); err == nil && k != 1 {
		return fmt.Errorf("record batch %d: the state row of pipeline %q is gone from %s", n, s.pipeline, s.state)
	}
	s.seq, s.hwm = n, last.Clone()
	return nil
}

// writeLoad uploads one table's rows as a Parquet file, copies it into the raw
// table, and merges it into the destination.
func (s *Sink) writeLoad(ctx context.Context, n uint64, i int, l *warehouse.Load) error {
	t, err := s.table(ctx, l.Table)
	if err != nil {
		return err
	}
	if l.Truncate != "" {
		if err := s.truncate(ctx, t, l.Truncate); err != nil {
			return err
		}
	}
	if len(l.Rows) > 0 {
		if err := s.mergeLoad(ctx, n, i, t, l); err != nil {
			return err
		}
	}
	for _, sw := range l.Sweeps {
		if err := s.sweep(ctx, t, sw); err != nil {
			return err
		}
	}
	return nil
}

// mergeLoad loads and merges the rows of l into t.
func (s *Sink) mergeLoad(ctx context.Context, n uint64, i int, t *sfTable, l *warehouse.Load) error {
	start := time.Now()
	cols, err := warehouse.Carried(l, t.name, t.cols, func(c sfCol) string { return c.name })
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.cfg.SpoolDir, "cdcd-snowflake-")
	if err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	defer os.RemoveAll(dir)
	load := s.loadID(n, i, cols, l)
	file, size, err := s.encode(dir, load, batchKey(s.gen, n), t, cols, l)
	if err != nil {
		return err
	}
	if err := s.upload(ctx, t, file, load, size, len(l.Rows)); err != nil {
		return err
	}
	if s.fault != nil {
		if err := s.fault("after_copy"); err != nil {
			return err
		}
	}
	if _, err := s.db.ExecContext(ctx, t.mergeSQL(s, cols, l), load); err != nil {
		return classify(fmt.Errorf("merge into %s: %w", t.name, err))
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM `+t.raw+` WHERE `+quote(rawLoad)+` = ?`, load); err != nil {
		return classify(fmt.Errorf("clean up %s: %w", t.raw, err))
	}
	s.m.rows.WithLabelValues(s.pipeline, t.name).Add(float64(len(l.Rows)))
	s.m.merge.WithLabelValues(s.pipeline).Observe(time.Since(start).Seconds())
	return nil
}

// upload puts a load's file on the stage and copies it into t's raw table.
// COPY keeps load history: a file loaded before is skipped, and the rows it
// loaded are still in the raw table until their MERGE is done.
func (s *Sink) upload(ctx context.Context, t *sfTable, file, load string, size int64, rows int) error {
	at := fmt.Sprintf("%s/%s/%s/", s.stage, s.tag, load)
	put := fmt.Sprintf("PUT '%s' @%s AUTO_COMPRESS = FALSE", "file://"+strings.ReplaceAll(file, "'", `\'`), at)
	if _, err := s.db.ExecContext(ctx, put); err != nil {
		return classify(fmt.Errorf("upload %s's rows to stage %s: %w", t.name, s.cfg.Stage, err))
	}
	s.m.bytes.WithLabelValues(s.pipeline).Add(float64(size))
	copyQ := fmt.Sprintf("COPY INTO %s FROM @%s FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE", t.raw, at)
	return s.copyInto(ctx, copyQ, t, rows)
}

// copyInto runs a COPY and checks its per-file result: every file loaded, or
// skipped as loaded before.
func (s *Sink) copyInto(ctx context.Context, q string, t *sfTable, want int) error {
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return classify(fmt.Errorf("copy %s's rows into %s: %w", t.name, t.raw, err))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("copy %s's rows: read the result: %w", t.name, err)
		}
		res := map[string]string{}
		for i, c := range cols {
			res[strings.ToLower(c)] = vals[i].String
		}
		switch st := res["status"]; st {
		case "LOADED", "LOAD_SKIPPED", "":
			s.log.Debug("copy", "table", t.name, "file", res["file"], "status", st, "rows_loaded", res["rows_loaded"], "rows", want)
		default:
			return fmt.Errorf("copy %s's rows into %s: file %s: %s: %s", t.name, t.raw, res["file"], st, res["first_error"])
		}
	}
	return classify(rows.Err())
}

// truncate marks every row older than version deleted (or deletes it).
func (s *Sink) truncate(ctx context.Context, t *sfTable, version string) error {
	v, d := quote(s.meta.Version), quote(s.meta.Deleted)
	var q string
	if s.cfg.DeleteMode == "hard" {
		q = fmt.Sprintf("DELETE FROM %s WHERE %s < ?", t.dest, v)
		_, err := s.db.ExecContext(ctx, q, version)
		return classify(errWrap("truncate "+t.name, err))
	}
	q = fmt.Sprintf("UPDATE %s SET %s = TRUE, %s = ?, %s = CURRENT_TIMESTAMP() WHERE %s < ?", t.dest, d, v, quote(s.meta.SyncedAt), v)
	_, err := s.db.ExecContext(ctx, q, version, version)
	return classify(errWrap("truncate "+t.name, err))
}

// sweep deletes the live rows older than the resync sw ends (marks them
// deleted at the sweep's version, or deletes them).
func (s *Sink) sweep(ctx context.Context, t *sfTable, sw warehouse.Sweep) error {
	v, d := quote(s.meta.Version), quote(s.meta.Deleted)
	q, args := fmt.Sprintf("DELETE FROM %s WHERE %s < ?", t.dest, v), []any{sw.Below}
	if s.cfg.DeleteMode != "hard" {
		q = fmt.Sprintf("UPDATE %s SET %s = TRUE, %s = ?, %s = CURRENT_TIMESTAMP() WHERE %s < ? AND NOT %s", t.dest, d, v, quote(s.meta.SyncedAt), v, d)
		args = []any{sw.Version, sw.Below}
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return classify(errWrap("remove the rows of "+t.name+" that its resync did not find", err))
	}
	n, _ := res.RowsAffected()
	s.m.swept.WithLabelValues(s.pipeline, t.name).Add(float64(n))
	s.log.Info("table resync finished: rows no longer at the source removed", "table", t.name, "rows", n)
	return nil
}

func errWrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// classify marks errors that a retry cannot fix as permanent: SQL compilation
// errors (an object or column that does not exist, no privilege), data errors
// (a value a column rejects) and authentication failures. Network errors and
// server errors stay retryable.
func classify(err error) error {
	var se *sf.SnowflakeError
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch {
	case strings.HasPrefix(se.SQLState, "42"), strings.HasPrefix(se.SQLState, "22"), strings.HasPrefix(se.SQLState, "28"),
		strings.HasPrefix(se.SQLState, "08004"), se.Number >= 390100 && se.Number < 390200:
		return component.Permanent(err)
	}
	return err
}

// DestinationName implements sinks.Namer.
func (s *Sink) DestinationName(t schema.Table) (string, error) {
	return s.names.Qualified(t, s.cfg.Database, s.cfg.Schema)
}

var _ sinks.Namer = (*Sink)(nil)

var _ sinks.DDLPlanner = (*Sink)(nil)
