package bigquery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Factory returns the BigQuery sink's factory.
func Factory() sinks.Factory {
	return component.Configured(func(c Config, d sinks.Deps) sinks.Sink { return New(c, d) })
}

// Option adjusts a Sink.
type Option func(*Sink)

// WithFault makes the sink call f at its named steps ("after_load": a table's
// rows are committed to its raw table and staged, not merged; "after_merge":
// every table of a batch is merged and the batch is not yet recorded); an
// error from f fails the Write there, as a crash would. Tests use it.
func WithFault(f func(step string) error) Option { return func(s *Sink) { s.fault = f } }

// Sink is the BigQuery sink. It implements sinks.Sink, sinks.Checker and
// sinks.Cleaner.
type Sink struct {
	cfg Config
	// names checks destination names: none cut, none shared
	names    *sinks.Names
	pipeline string
	tag      string // the pipeline's prefix of raw and staging table names
	labels   map[string]string
	log      *slog.Logger
	m        *metrics
	meta     sinks.MetaColumns
	fault    func(string) error
	nulls    *warehouse.Unrepresentable

	bq     *bigquery.Client
	mw     *managedwriter.Client
	state  string // quoted state table
	gen    uint64 // the pipeline's generation (bumped by Cleanup)
	seq    uint64 // the last batch recorded
	hwm    offsets.Position
	mu     sync.Mutex // guards tables (loads run in parallel)
	tables map[schema.TableID]*bqTable
}

var _ interface {
	sinks.Sink
	sinks.Checker
	sinks.Cleaner
} = (*Sink)(nil)

// New returns a BigQuery sink; c must have its defaults applied and be valid.
func New(c Config, d sinks.Deps, opts ...Option) *Sink {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: c, pipeline: d.Pipeline, tag: warehouse.Tag(d.Pipeline), log: log.With("component", "sink.bigquery"),
		m: newMetrics(d.Metrics), meta: c.Meta(),
		// table names hold 1,024 UTF-8 bytes, column names 300 characters
		// (counted here in bytes, the stricter)
		names: sinks.NewNames(c.Common, sinks.Limits{Bytes: true, Table: 1024, Column: 300})}
	s.nulls = &warehouse.Unrepresentable{Policy: c.OnUnrepresentable, Pipeline: d.Pipeline, Nulled: s.m.nulled, Altered: sinks.AlteredValues(d.Metrics), Log: s.log}
	s.labels = maps.Clone(c.Labels)
	if s.labels == nil {
		s.labels = map[string]string{}
	}
	s.labels["cdcd_pipeline"] = labelValue(d.Pipeline)
	for _, o := range opts {
		o(s)
	}
	s.state = s.qualified(c.Dataset, c.MetadataPrefix+"sink_state")
	return s
}

// labelValue makes a pipeline name a label value (lower case, [a-z0-9_-], ≤ 63).
func labelValue(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 63)])
}

type metrics struct {
	rows, bytes *prometheus.CounterVec
	nulled      *prometheus.CounterVec
	swept       *prometheus.CounterVec
	load        *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		rows: component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_sink_bigquery_rows_total",
			Help: "Rows merged into destination tables (after collapsing per key), by pipeline and table.",
		}, []string{"pipeline", "table"})),
		bytes: component.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_sink_bigquery_appended_bytes_total",
			Help: "Bytes of rows appended through the Storage Write API, by pipeline.",
		}, []string{"pipeline"})),
		load: component.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cdcd_sink_bigquery_load_seconds",
			Help:    "Time to append, stage and merge one table's part of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"pipeline"})),
		nulled: sinks.NulledValues(reg),
		swept:  sinks.SweptRows(reg),
	}
}

// quote quotes one identifier (BigQuery identifiers cannot hold a backquote).
func quote(s string) string { return "`" + strings.ReplaceAll(s, "`", "\\`") + "`" }

// qualified is the quoted name of a table of the sink's project.
func (s *Sink) qualified(dataset, table string) string {
	return quote(s.cfg.Project) + "." + quote(dataset) + "." + quote(table)
}

// clientOptions are the REST client's options (opts) and the Storage Write
// API's (wopts) for c's credentials and endpoints.
func (c Config) clientOptions() (opts, wopts []option.ClientOption, err error) {
	switch {
	case c.NoAuth:
		opts = append(opts, option.WithoutAuthentication())
		wopts = append(wopts, option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	case c.CredentialsJSON != "" || c.CredentialsFile != "":
		key, err := c.credentials()
		if err != nil {
			return nil, nil, component.Permanent(err)
		}
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
		wopts = append(wopts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
	}
	if c.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	if c.StorageEndpoint != "" {
		wopts = append(wopts, option.WithEndpoint(c.StorageEndpoint))
	}
	return opts, wopts, nil
}

func (s *Sink) connect(ctx context.Context) error {
	opts, wopts, err := s.cfg.clientOptions()
	if err != nil {
		return err
	}
	bq, err := bigquery.NewClient(ctx, s.cfg.Project, opts...)
	if err != nil {
		return classify(fmt.Errorf("BigQuery client for project %s: %w", s.cfg.Project, err))
	}
	bq.Location = s.cfg.Location
	mw, err := managedwriter.NewClient(ctx, s.cfg.Project, wopts...)
	if err != nil {
		bq.Close()
		return classify(fmt.Errorf("Storage Write API client for project %s: %w", s.cfg.Project, err))
	}
	s.bq, s.mw = bq, mw
	return nil
}

// Check connects and creates what the sink needs (the datasets and the state
// table), reporting what stops it.
func (s *Sink) Check(ctx context.Context) error {
	if s.bq != nil {
		return s.prepare(ctx)
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	defer s.Close(ctx) //nolint:errcheck // nothing was written
	return s.prepare(ctx)
}

func (s *Sink) prepare(ctx context.Context) error {
	datasets := []string{s.cfg.Dataset}
	if s.cfg.StagingDataset != s.cfg.Dataset {
		datasets = append(datasets, s.cfg.StagingDataset)
	}
	for _, ds := range datasets {
		d := s.bq.Dataset(ds)
		if _, err := d.Metadata(ctx); err == nil {
			continue
		} else if !isStatus(err, http.StatusNotFound) {
			return classify(fmt.Errorf("prepare the destination: read dataset %s.%s: %w", s.cfg.Project, ds, err))
		}
		err := d.Create(ctx, &bigquery.DatasetMetadata{Location: s.cfg.Location, Labels: map[string]string{"created_by": "cdcd"}})
		if err != nil && !isStatus(err, http.StatusConflict) {
			return classify(fmt.Errorf("prepare the destination: create dataset %s.%s: %w", s.cfg.Project, ds, err))
		}
		s.log.Info("dataset created", "dataset", ds, "location", s.cfg.Location)
	}
	st := s.bq.Dataset(s.cfg.Dataset).Table(s.cfg.MetadataPrefix + "sink_state")
	if _, err := st.Metadata(ctx); err == nil {
		return nil
	} else if !isStatus(err, http.StatusNotFound) {
		return classify(fmt.Errorf("prepare the destination: read the state table: %w", err))
	}
	err := st.Create(ctx, &bigquery.TableMetadata{
		Description: "cdcd: the batches each pipeline has merged into this dataset",
		Schema: bigquery.Schema{
			{Name: "pipeline", Type: bigquery.StringFieldType, Required: true},
			{Name: "generation", Type: bigquery.IntegerFieldType, Required: true},
			{Name: "batch", Type: bigquery.IntegerFieldType, Required: true},
			{Name: "position", Type: bigquery.StringFieldType},
			{Name: "updated_at", Type: bigquery.TimestampFieldType},
		},
	})
	if err != nil && !isStatus(err, http.StatusConflict) {
		return classify(fmt.Errorf("prepare the destination: create the state table %s: %w", s.state, err))
	}
	return nil
}

// Open connects, prepares the datasets and the state table, and loads the
// pipeline's state.
func (s *Sink) Open(ctx context.Context) error {
	if s.bq != nil {
		return nil
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	s.tables = map[schema.TableID]*bqTable{}
	if err := s.prepare(ctx); err != nil {
		s.Close(ctx) //nolint:errcheck // the error that matters is err
		return err
	}
	if err := s.loadState(ctx); err != nil {
		s.Close(ctx) //nolint:errcheck // the error that matters is err
		return err
	}
	return nil
}

func (s *Sink) loadState(ctx context.Context) error {
	rows, err := s.read(ctx, "read sink state from "+s.state, `SELECT generation, batch, position FROM `+s.state+` WHERE pipeline = @pipeline ORDER BY generation DESC LIMIT 1`,
		bigquery.QueryParameter{Name: "pipeline", Value: s.pipeline})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		if _, err := s.query(ctx, "record pipeline "+s.pipeline+" in "+s.state,
			`INSERT INTO `+s.state+` (pipeline, generation, batch, updated_at) VALUES (@pipeline, 1, 0, CURRENT_TIMESTAMP())`,
			bigquery.QueryParameter{Name: "pipeline", Value: s.pipeline}); err != nil {
			return err
		}
		s.gen, s.seq, s.hwm = 1, 0, nil
		return nil
	}
	gen, _ := rows[0][0].(int64)
	seq, _ := rows[0][1].(int64)
	pos, _ := rows[0][2].(string)
	s.gen, s.seq = uint64(gen), uint64(seq)
	s.hwm, err = warehouse.ParsePosition(s.pipeline, pos)
	return err
}

// Leftover implements sinks.Cleaner.
func (s *Sink) Leftover() component.Leftover {
	return component.Leftover{What: fmt.Sprintf("the pipeline's written position in %s at the destination", s.state),
		SQL: fmt.Sprintf(`UPDATE %s SET generation = generation + 1, batch = 0, position = NULL, updated_at = CURRENT_TIMESTAMP() WHERE pipeline = '%s'`,
			s.state, strings.ReplaceAll(strings.ReplaceAll(s.pipeline, `\`, `\\`), "'", `\'`))}
}

// Cleanup forgets the pipeline's written position when it is deleted and starts
// a new generation, so a resync's rows outrank the old ones.
func (s *Sink) Cleanup(ctx context.Context) error {
	if s.bq == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
		defer s.Close(ctx) //nolint:errcheck // nothing was written
	}
	_, err := s.query(ctx, "forget the position of pipeline "+s.pipeline+" at the destination",
		`UPDATE `+s.state+` SET generation = generation + 1, batch = 0, position = NULL, updated_at = CURRENT_TIMESTAMP() WHERE pipeline = @pipeline`,
		bigquery.QueryParameter{Name: "pipeline", Value: s.pipeline})
	return err
}

// Close closes the clients. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.bq == nil {
		return nil
	}
	err := errors.Join(s.mw.Close(), s.bq.Close())
	s.bq, s.mw = nil, nil
	return err
}

// query runs one statement as a query job and waits for it.
func (s *Sink) query(ctx context.Context, what, sql string, params ...bigquery.QueryParameter) (*bigquery.JobStatus, error) {
	q := s.bq.Query(sql)
	q.Parameters = params
	q.Labels = s.labels
	job, err := q.Run(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", what, err))
	}
	st, err := job.Wait(ctx)
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", what, err))
	}
	return st, nil
}

// read runs a query and returns its (few) rows.
func (s *Sink) read(ctx context.Context, what, sql string, params ...bigquery.QueryParameter) ([][]bigquery.Value, error) {
	q := s.bq.Query(sql)
	q.Parameters = params
	q.Labels = s.labels
	it, err := q.Read(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", what, err))
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, classify(fmt.Errorf("%s: %w", what, err))
		}
		out = append(out, row)
	}
}

// Write appends, stages and merges b's changes newer than the recorded
// position, table by table (up to merge_parallelism at once), then records the
// batch.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	if s.bq == nil {
		return errors.New("bigquery sink: Write before Open")
	}
	loads, last := warehouse.Plan(b.Changes, s.hwm, s.gen)
	if len(loads) == 0 {
		return nil
	}
	n := s.seq + 1
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.MergeParallelism)
	for i := range loads {
		g.Go(func() error { return sinks.ForTable(loads[i].Table, s.writeLoad(gctx, &loads[i])) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if s.fault != nil {
		if err := s.fault("after_merge"); err != nil {
			return err
		}
	}
	st, err := s.query(ctx, fmt.Sprintf("record batch %d", n),
		`UPDATE `+s.state+` SET batch = @batch, position = @position, updated_at = CURRENT_TIMESTAMP() WHERE pipeline = @pipeline AND generation = @generation`,
		bigquery.QueryParameter{Name: "batch", Value: int64(n)}, bigquery.QueryParameter{Name: "position", Value: warehouse.FormatPosition(last)},
		bigquery.QueryParameter{Name: "pipeline", Value: s.pipeline}, bigquery.QueryParameter{Name: "generation", Value: int64(s.gen)})
	if err != nil {
		return err
	}
	if qs, ok := st.Statistics.Details.(*bigquery.QueryStatistics); ok && qs.DMLStats != nil && qs.NumDMLAffectedRows != 1 {
		return fmt.Errorf("record batch %d: the state row of pipeline %q (generation %d) is gone from %s", n, s.pipeline, s.gen, s.state)
	}
	s.seq, s.hwm = n, last.Clone()
	return nil
}

// writeLoad appends one table's rows to a new raw table through pending write
// streams committed at once, stages them in the destination's types, and
// merges them. The raw and staging tables are the attempt's own (a random
// name), so a retried batch never meets an earlier attempt's rows; one that a
// crash leaves behind expires.
func (s *Sink) writeLoad(ctx context.Context, l *warehouse.Load) error {
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
		if err := s.mergeLoad(ctx, t, l); err != nil {
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
func (s *Sink) mergeLoad(ctx context.Context, t *bqTable, l *warehouse.Load) error {
	start := time.Now()
	cols, err := warehouse.Carried(l, t.name, t.cols, func(c bqCol) string { return c.name })
	if err != nil {
		return err
	}
	var rnd [5]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("%sload_%s_%x", s.cfg.MetadataPrefix, s.tag, rnd)
	raw, stage := name+"_raw", name+"_stage"
	defer s.drop(raw, stage)
	if err := s.append(ctx, t, raw, cols, l); err != nil {
		return err
	}
	appended := time.Now()
	if _, err := s.query(ctx, "stage "+t.name+"'s rows", s.stageSQL(t, raw, stage, cols)); err != nil {
		return err
	}
	staged := time.Now()
	if s.fault != nil {
		if err := s.fault("after_load"); err != nil {
			return err
		}
	}
	if _, err := s.query(ctx, "merge into "+t.name, t.mergeSQL(s, s.qualified(s.cfg.StagingDataset, stage), cols, l)); err != nil {
		return err
	}
	s.log.Debug("load merged", "table", t.name, "rows", len(l.Rows), "append", appended.Sub(start), "stage", staged.Sub(appended), "merge", time.Since(staged))
	s.m.rows.WithLabelValues(s.pipeline, t.name).Add(float64(len(l.Rows)))
	s.m.load.WithLabelValues(s.pipeline).Observe(time.Since(start).Seconds())
	return nil
}

// drop deletes a load's raw and staging tables. It runs after the load's
// context may be done, so it has its own; a table it cannot drop expires.
func (s *Sink) drop(tables ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range tables {
		err := s.bq.Dataset(s.cfg.StagingDataset).Table(name).Delete(ctx)
		if err != nil && !isStatus(err, http.StatusNotFound) {
			s.log.Warn("could not drop a staging table; it expires by itself", "table", name, "err", err)
		}
	}
}

// truncate marks every row older than version deleted (or deletes it).
func (s *Sink) truncate(ctx context.Context, t *bqTable, version string) error {
	v, d := quote(s.meta.Version), quote(s.meta.Deleted)
	q := fmt.Sprintf("UPDATE %s SET %s = TRUE, %s = @version, %s = CURRENT_TIMESTAMP() WHERE %s < @version", t.dest, d, v, quote(s.meta.SyncedAt), v)
	if s.cfg.DeleteMode == "hard" {
		q = fmt.Sprintf("DELETE FROM %s WHERE %s < @version", t.dest, v)
	}
	_, err := s.query(ctx, "truncate "+t.name, q, bigquery.QueryParameter{Name: "version", Value: version})
	return err
}

// sweep deletes the live rows older than the resync sw ends (marks them
// deleted at the sweep's version, or deletes them).
func (s *Sink) sweep(ctx context.Context, t *bqTable, sw warehouse.Sweep) error {
	v, d := quote(s.meta.Version), quote(s.meta.Deleted)
	q := fmt.Sprintf("UPDATE %s SET %s = TRUE, %s = @version, %s = CURRENT_TIMESTAMP() WHERE %s < @below AND NOT %s", t.dest, d, v, quote(s.meta.SyncedAt), v, d)
	if s.cfg.DeleteMode == "hard" {
		q = fmt.Sprintf("DELETE FROM %s WHERE %s < @below", t.dest, v)
	}
	params := []bigquery.QueryParameter{{Name: "below", Value: sw.Below}}
	// counted first (two columns scanned, once per resync): DML statistics
	// are not reported everywhere (the emulator leaves them out)
	rows, err := s.read(ctx, "count the rows of "+t.name+" that its resync did not find",
		fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s < @below AND NOT %s", t.dest, v, d), params...)
	if err != nil {
		return err
	}
	var n int64
	if len(rows) == 1 && len(rows[0]) == 1 {
		n, _ = rows[0][0].(int64)
	}
	if s.cfg.DeleteMode != "hard" {
		params = append(params, bigquery.QueryParameter{Name: "version", Value: sw.Version})
	}
	if _, err := s.query(ctx, "remove the rows of "+t.name+" that its resync did not find", q, params...); err != nil {
		return err
	}
	s.m.swept.WithLabelValues(s.pipeline, t.name).Add(float64(n))
	s.log.Info("table resync finished: rows no longer at the source removed", "table", t.name, "rows", n)
	return nil
}

// isStatus reports whether err is an HTTP error of the REST API with code.
func isStatus(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}

// classify marks errors that a retry cannot fix as permanent: a statement
// BigQuery rejects (invalid, invalidQuery), a missing object, a denied
// permission, and bad credentials. Rate limits, backend errors and network
// errors stay retryable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code == http.StatusUnauthorized {
			return component.Permanent(err)
		}
		for _, e := range ge.Errors {
			if permanentReason(e.Reason) {
				return component.Permanent(err)
			}
		}
		return err
	}
	var be *bigquery.Error
	if errors.As(err, &be) {
		if permanentReason(be.Reason) {
			return component.Permanent(err)
		}
		return err
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition:
			return component.Permanent(err)
		}
	}
	return err
}

func permanentReason(r string) bool {
	switch r {
	case "invalid", "invalidQuery", "notFound", "accessDenied", "billingNotEnabled", "billingTierLimitExceeded", "resourcesExceeded", "responseTooLarge", "notImplemented":
		return true
	}
	return false
}

// DestinationName implements sinks.Namer.
func (s *Sink) DestinationName(t schema.Table) (string, error) {
	return s.names.Qualified(t, s.cfg.Project, s.cfg.Dataset)
}

var _ sinks.Namer = (*Sink)(nil)
