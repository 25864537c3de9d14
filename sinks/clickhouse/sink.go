package clickhouse

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Factory returns the ClickHouse sink's factory.
func Factory() sinks.Factory {
	return component.Configured(func(c Config, d sinks.Deps) sinks.Sink { return New(c, d) })
}

// Option adjusts a Sink.
type Option func(*Sink)

// WithBackend makes the sink use b instead of dialing the configured servers
// (tests run the sink against the chdb engine this way).
func WithBackend(b Backend) Option {
	return func(s *Sink) {
		s.dial = func(context.Context) (Backend, error) { return b, nil }
		s.injected = true
	}
}

// Sink is the ClickHouse sink. It implements sinks.Sink, sinks.Checker and
// sinks.Cleaner.
type Sink struct {
	cfg Config
	// injected: the backend is a test's (WithBackend), shared and not ours to close
	injected bool
	// names checks destination names: none cut, none shared
	names    *sinks.Names
	pipeline string
	log      *slog.Logger
	rows     *prometheus.CounterVec
	nulled   *prometheus.CounterVec
	altered  *prometheus.CounterVec
	swept    *prometheus.CounterVec
	dial     func(context.Context) (Backend, error)

	be     Backend
	feat   features
	db     string // quoted database
	meta   sinks.MetaColumns
	tables map[schema.TableID]*chTable
	seq    uint64           // the last batch number stored in the state table
	hwm    offsets.Position // the position of the last change stored
	warned map[string]bool
	// pending are the sweeps of the batch being written
	pending []sweptRows
	// written are the destination tables this pipeline has put rows in
	// (the tables table): rows never leave them (deletes and truncates are
	// tombstones), so one of them found empty was truncated behind the
	// sink's back
	written map[string]bool
}

var _ interface {
	sinks.Sink
	sinks.Checker
	sinks.Cleaner
} = (*Sink)(nil)

type chTable struct {
	ident  string // quoted db.table
	name   string // unquoted, for messages
	cols   []chCol
	byName map[string]int
	pk     []string
}

type chCol struct {
	name      string
	ct        colType
	defaulted bool // the column has a DEFAULT expression (an added column's fill)
}

// keyComment marks the primary-key columns (the sorting key may be longer).
const keyComment = "cdcd: primary key"

// New returns a ClickHouse sink; c must have its defaults applied and be valid.
func New(c Config, d sinks.Deps, opts ...Option) *Sink {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: c, pipeline: d.Pipeline, log: log.With("component", "sink.clickhouse"), db: ident(c.Database),
		// a table's metadata is a file named after it, and a wide part has a
		// file per column (escaped names, 255 bytes a file name): room for both
		names: sinks.NewNames(c.Common, sinks.Limits{Bytes: true, Table: 200, Column: 200})}
	s.meta = c.Meta()
	s.rows = component.Register(d.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcd_sink_clickhouse_rows_total",
		Help: "Rows inserted into ClickHouse tables (after collapsing per key), by pipeline and table."}, []string{"pipeline", "table"}))
	s.nulled = sinks.NulledValues(d.Metrics)
	s.altered = sinks.AlteredValues(d.Metrics)
	s.swept = sinks.SweptRows(d.Metrics)
	s.dial = func(ctx context.Context) (Backend, error) { return dialNative(ctx, c) }
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Sink) stateTable() string { return s.db + "." + ident(s.cfg.MetadataPrefix+"sink_state") }

// batchTable logs each batch's number and last position, and each start of a
// history (a row with an empty position), so that a sweep can find the batch
// its resync began in (see sweep).
func (s *Sink) batchTable() string { return s.db + "." + ident(s.cfg.MetadataPrefix+"sink_batches") }

// tablesTable records, per pipeline, the destination tables it has written
// rows to (live 1), and those whose read from the first row began (live 0).
func (s *Sink) tablesTable() string { return s.db + "." + ident(s.cfg.MetadataPrefix+"sink_tables") }

// batchLogDays is how long the batch log keeps a row (where the server has
// TTL): a resync of one table may last up to that.
const batchLogDays = 30

// connect dials and reads the server's features.
func (s *Sink) connect(ctx context.Context) (Backend, features, error) {
	be, err := s.dial(ctx)
	if err != nil {
		return nil, features{}, fmt.Errorf("connect to ClickHouse: %w", err)
	}
	ma, mi, err := be.ServerVersion(ctx)
	if err != nil {
		be.Close()
		return nil, features{}, fmt.Errorf("server version: %w", err)
	}
	return be, featuresOf(ma, mi), nil
}

// requirements lists what the config needs that the server lacks.
func (s *Sink) requirements(f features) []error {
	var errs []error
	if s.cfg.DeleteMode == "hard" && !f.isDeleted {
		errs = append(errs, fmt.Errorf("delete_mode: hard needs ClickHouse 23.2 or later (ReplacingMergeTree's is_deleted column); the server runs %d.%d: use delete_mode: soft and read with WHERE %s = 0", f.major, f.minor, s.meta.Deleted))
	}
	if s.cfg.JSON == "json" && !f.jsonType {
		errs = append(errs, fmt.Errorf("json: json needs ClickHouse 25.3 or later; the server runs %d.%d: use json: string", f.major, f.minor))
	}
	return errs
}

// Check connects and reports what would stop the sink from working.
func (s *Sink) Check(ctx context.Context) error {
	be, f, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer be.Close()
	errs := s.requirements(f)
	if err := be.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		errs = append(errs, fmt.Errorf("cannot create database %s: %w", s.cfg.Database, err))
	}
	return errors.Join(errs...)
}

// Open connects, creates the database and the state table, and reads the state.
func (s *Sink) Open(ctx context.Context) error {
	if s.be != nil {
		return nil
	}
	be, f, err := s.connect(ctx)
	if err != nil {
		return err
	}
	if errs := s.requirements(f); len(errs) > 0 {
		be.Close()
		return component.Permanent(errors.Join(errs...))
	}
	s.be, s.feat = be, f
	s.tables = map[schema.TableID]*chTable{}
	s.warned = map[string]bool{}
	if f.major < 20 {
		s.log.Warn("old ClickHouse server: timestamps are stored as ISO 8601 text, booleans as UInt8, dates as Date (1970–2149)",
			"version", fmt.Sprintf("%d.%d", f.major, f.minor))
	}
	ttl := ""
	if f.ttl {
		ttl = fmt.Sprintf(" TTL written + INTERVAL %d DAY", batchLogDays)
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + s.db,
		"CREATE TABLE IF NOT EXISTS " + s.stateTable() + " (pipeline String, seq UInt64, position String) ENGINE = ReplacingMergeTree(seq) ORDER BY pipeline",
		"CREATE TABLE IF NOT EXISTS " + s.batchTable() + " (pipeline String, seq UInt64, last String, written DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY (pipeline, seq)" + ttl,
		"CREATE TABLE IF NOT EXISTS " + s.tablesTable() + " (pipeline String, table String, seq UInt64, live UInt8) ENGINE = ReplacingMergeTree(seq) ORDER BY (pipeline, table)",
	} {
		if err := be.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := s.loadState(ctx); err != nil {
		return err
	}
	if err := s.loadWritten(ctx); err != nil {
		return err
	}
	if len(s.hwm) == 0 {
		// a new history (a new pipeline, a Cleanup, or the Leftover statement
		// run by hand): batches before it are not the resyncs' to find
		return s.logBatch(ctx, s.seq, nil)
	}
	return nil
}

func (s *Sink) logBatch(ctx context.Context, seq uint64, last offsets.Position) error {
	cols := []Column{{"pipeline", "String"}, {"seq", "UInt64"}, {"last", "String"}}
	if err := s.be.Insert(ctx, s.batchTable(), cols, [][]any{{s.pipeline, seq, hex.EncodeToString(last)}}, ""); err != nil {
		return fmt.Errorf("log batch %d: %w", seq, err)
	}
	return nil
}

func (s *Sink) loadState(ctx context.Context) error {
	rows, err := s.be.QueryStrings(ctx, "SELECT pipeline, toString(seq), position FROM "+s.stateTable()+" FINAL")
	if err != nil {
		return fmt.Errorf("read sink state: %w", err)
	}
	s.seq, s.hwm = 0, nil
	for _, r := range rows {
		if r[0] != s.pipeline {
			continue
		}
		seq, err := strconv.ParseUint(r[1], 10, 64)
		if err != nil {
			return fmt.Errorf("sink state: seq %q: %w", r[1], err)
		}
		pos, err := hex.DecodeString(r[2])
		if err != nil {
			return fmt.Errorf("sink state: position %q: %w", r[2], err)
		}
		s.seq, s.hwm = seq, pos
	}
	return nil
}

// loadWritten reads the destination tables this pipeline has put rows in.
func (s *Sink) loadWritten(ctx context.Context) error {
	rows, err := s.be.QueryStrings(ctx, "SELECT table, toString(live) FROM "+s.tablesTable()+" FINAL WHERE pipeline = "+literal(s.pipeline))
	if err != nil {
		return fmt.Errorf("read the tables written: %w", err)
	}
	s.written = map[string]bool{}
	for _, r := range rows {
		if r[1] == "1" {
			s.written[r[0]] = true
		}
	}
	return nil
}

// markWritten records that this pipeline's rows are in table name (live) or
// that its read from the first row began (not live).
func (s *Sink) markWritten(ctx context.Context, name string, live bool) error {
	if s.written[name] == live {
		return nil
	}
	var l uint8
	if live {
		l = 1
	}
	cols := []Column{{"pipeline", "String"}, {"table", "String"}, {"seq", "UInt64"}, {"live", "UInt8"}}
	// seq orders the rows of one table: a batch number is not enough (a
	// read that begins and rows written in one batch), so its double and one
	seq := 2*(s.seq+1) + uint64(l)
	if err := s.be.Insert(ctx, s.tablesTable(), cols, [][]any{{s.pipeline, name, seq, l}}, ""); err != nil {
		return fmt.Errorf("record the tables written: %w", err)
	}
	s.written[name] = live
	return nil
}

// truncated returns a sinks.TableLostError for the first of ids (tables
// that exist) that holds rows of this pipeline's and is empty: truncated
// behind the sink's back. The database's tables with rows are read in one
// query, and only when one of ids was written.
func (s *Sink) truncated(ctx context.Context, ids ...schema.TableID) error {
	if !slices.ContainsFunc(ids, func(id schema.TableID) bool { return s.written[s.cfg.DestName(id)] }) {
		return nil
	}
	rows, err := s.be.QueryStrings(ctx, "SELECT table FROM system.parts WHERE active AND database = "+literal(s.cfg.Database)+" GROUP BY table HAVING sum(rows) > 0")
	if err != nil {
		return fmt.Errorf("read which tables hold rows: %w", err)
	}
	full := make(map[string]bool, len(rows))
	for _, r := range rows {
		full[r[0]] = true
	}
	for _, id := range ids {
		if name := s.cfg.DestName(id); s.written[name] && !full[name] {
			return &sinks.TableLostError{Table: id, Dest: s.cfg.Database + "." + name, Truncated: true}
		}
	}
	return nil
}

func (s *Sink) saveState(ctx context.Context, seq uint64, pos offsets.Position) error {
	cols := []Column{{"pipeline", "String"}, {"seq", "UInt64"}, {"position", "String"}}
	return s.be.Insert(ctx, s.stateTable(), cols, [][]any{{s.pipeline, seq, hex.EncodeToString(pos)}}, "")
}

// Leftover implements sinks.Cleaner.
func (s *Sink) Leftover() component.Leftover {
	st, p := s.stateTable(), literal(s.pipeline)
	return component.Leftover{What: fmt.Sprintf("the pipeline's written position in %s at the destination", st),
		SQL: fmt.Sprintf("INSERT INTO %s (pipeline, seq, position) SELECT %s, max(seq) + 1, '' FROM %s WHERE pipeline = %s", st, p, st, p)}
}

// Cleanup forgets the pipeline's written position when it is deleted; the batch
// numbers go on, so a resync's rows outrank the old ones.
func (s *Sink) Cleanup(ctx context.Context) error {
	opened := s.be != nil
	if !opened {
		if err := s.Open(ctx); err != nil {
			return err
		}
		defer s.Close(ctx) //nolint:errcheck // nothing was written
	}
	s.seq++
	if err := s.saveState(ctx, s.seq, nil); err != nil {
		return err
	}
	return s.logBatch(ctx, s.seq, nil)
}

// Close closes the connection. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.be == nil {
		return nil
	}
	err := s.be.Close()
	s.be = nil
	return err
}

// readTable reads a destination table's columns; nil if it does not exist.
func (s *Sink) readTable(ctx context.Context, id schema.TableID) (*chTable, error) {
	name := s.cfg.DestName(id)
	rows, err := s.be.QueryStrings(ctx, "SELECT table, name, type, comment, default_kind FROM system.columns WHERE database = "+literal(s.cfg.Database))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	t := &chTable{ident: s.db + "." + ident(name), name: s.cfg.Database + "." + name, byName: map[string]int{}}
	for _, r := range rows {
		if r[0] != name {
			continue
		}
		t.byName[r[1]] = len(t.cols)
		t.cols = append(t.cols, chCol{name: r[1], ct: parseType(r[2]), defaulted: r[4] == "DEFAULT"})
		if r[3] == keyComment {
			t.pk = append(t.pk, r[1])
		}
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	if len(t.pk) == 0 {
		return nil, component.Permanent(fmt.Errorf("destination table %s has no columns marked %q: it was not created by this sink", t.name, keyComment))
	}
	if _, ok := t.byName[s.meta.Version]; !ok {
		return nil, component.Permanent(fmt.Errorf("destination table %s has no %s column: it was not created by this sink (or with another metadata_prefix)", t.name, s.meta.Version))
	}
	return t, nil
}

// parseType reads a ClickHouse type as system.columns spells it.
func parseType(s string) colType {
	ct := colType{sql: s, base: s}
	if inner, ok := strings.CutPrefix(s, "Nullable("); ok {
		ct.nullable, ct.base = true, strings.TrimSuffix(inner, ")")
	}
	if inner, ok := strings.CutPrefix(ct.base, "LowCardinality("); ok {
		ct.base = strings.TrimSuffix(inner, ")")
	}
	if inner, ok := strings.CutPrefix(ct.base, "Array("); ok {
		e := parseType(strings.TrimSuffix(inner, ")"))
		ct.elem = &e
	}
	if strings.HasPrefix(ct.base, "Decimal(") {
		fmt.Sscanf(ct.base, "Decimal(%d, %d)", &ct.p, &ct.s)
	}
	return ct
}

func (s *Sink) table(ctx context.Context, id schema.TableID) (*chTable, error) {
	if t := s.tables[id]; t != nil {
		return t, nil
	}
	t, err := s.readTable(ctx, id)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, &sinks.TableLostError{Table: id, Dest: s.cfg.Database + "." + s.cfg.DestName(id)}
	}
	s.tables[id] = t
	return t, nil
}

// Apply creates tables and applies column changes ClickHouse can take without
// loss: added columns, widened integers, floats and decimals, renames (20.4+).
// Drops keep the destination column. Anything else is a permanent error naming
// the table and column.
func (s *Sink) Apply(ctx context.Context, deltas []schema.Delta) error {
	if s.be == nil {
		return errors.New("clickhouse sink: Apply before Open")
	}
	for _, d := range deltas {
		if err := s.names.Check(d.Table); err != nil {
			return err
		}
		delete(s.tables, d.Table.ID)
		if err := s.applyDelta(ctx, d); err != nil {
			return sinks.ForTable(d.Table.ID, err)
		}
		delete(s.tables, d.Table.ID)
	}
	return nil
}

func (s *Sink) exec(ctx context.Context, q string) error {
	if err := s.be.Exec(ctx, q); err != nil {
		return classify(fmt.Errorf("%s: %w", q, err))
	}
	return nil
}

func (s *Sink) applyDelta(ctx context.Context, d schema.Delta) error {
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return err
	}
	if cur != nil {
		err = s.truncated(ctx, d.Table.ID)
	}
	var lost *sinks.TableLostError
	if err != nil && (!errors.As(err, &lost) || d.From != 0) {
		return err
	}
	if d.From == 0 && (cur == nil || lost != nil) {
		// created (again), or read from its first row: it holds none of
		// this pipeline's rows yet (the read writes every row again and
		// sweeps the others)
		if err := s.markWritten(ctx, s.cfg.DestName(d.Table.ID), false); err != nil {
			return err
		}
	}
	return s.deltaStatements(ctx, d, cur, func(q string) error { return s.exec(ctx, q) }, false)
}

// PlanDDL implements sinks.DDLPlanner: the statements Apply would run for d
// against the destination table as it is now, under its destination name. An
// added column's DEFAULT for the rows already there is not rendered (Apply
// checks it through a staging table first).
func (s *Sink) PlanDDL(ctx context.Context, d schema.Delta) ([]string, error) {
	if s.be == nil {
		return nil, errors.New("clickhouse sink: PlanDDL before Open")
	}
	cur, err := s.readTable(ctx, d.Table.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	err = s.deltaStatements(ctx, d, cur, func(q string) error { out = append(out, q); return nil }, true)
	return out, err
}

// deltaStatements hands run the statements that bring the destination table
// cur (nil: it does not exist) to d; planning skips what writes (an added
// column's fill check).
func (s *Sink) deltaStatements(ctx context.Context, d schema.Delta, cur *chTable, run func(q string) error, planning bool) error {
	if cur == nil {
		if slices.ContainsFunc(d.Changes, func(c schema.ColumnChange) bool { return c.Op == schema.DropTable }) {
			return nil
		}
		if d.From != 0 {
			// a table replicated before: its rows are gone with it
			return &sinks.TableLostError{Table: d.Table.ID, Dest: s.cfg.Database + "." + s.cfg.DestName(d.Table.ID)}
		}
		if err := s.createTable(d.Table, run); err != nil {
			return err
		}
		if !planning {
			s.log.Info("destination table created", "table", s.cfg.Database+"."+s.cfg.DestName(d.Table.ID), "source", d.Table.ID.String())
		}
		return nil
	}
	for _, ch := range d.Changes {
		switch ch.Op {
		case schema.RenameColumn:
			_, hasOld := cur.byName[ch.Old.Name]
			_, hasNew := cur.byName[ch.Column.Name]
			if hasOld && !hasNew {
				if s.feat.major < 20 || (s.feat.major == 20 && s.feat.minor < 4) {
					return component.Permanent(fmt.Errorf("table %s: column %s was renamed to %s at the source; ClickHouse before 20.4 cannot rename columns: rename or add it yourself, then resume", cur.name, ch.Old.Name, ch.Column.Name))
				}
				if err := run(fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", cur.ident, ident(ch.Old.Name), ident(ch.Column.Name))); err != nil {
					return err
				}
				cur.byName[ch.Column.Name] = cur.byName[ch.Old.Name]
			}
		case schema.AlterColumnType:
			i, ok := cur.byName[ch.Column.Name]
			if !ok {
				continue
			}
			want, err := s.DestType(ch.Column.Type, !slices.Contains(d.Table.PrimaryKey, ch.Column.Name) && (ch.Column.Nullable || cur.cols[i].ct.nullable))
			if err != nil {
				return component.Permanent(fmt.Errorf("table %s column %s: %w", cur.name, ch.Column.Name, err))
			}
			have := cur.cols[i].ct
			if have.base == want.base {
				continue
			}
			if !widens(have, want) {
				return component.Permanent(fmt.Errorf("table %s column %s: the source changed its type to %s; the destination column is %s and cannot take it without loss: alter the column yourself, or resync the table",
					cur.name, ch.Column.Name, ch.Column.Type, have.sql))
			}
			if err := run(fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s %s", cur.ident, ident(ch.Column.Name), want.sql)); err != nil {
				return err
			}
		case schema.SetPrimaryKey:
			if !slices.Equal(cur.pk, d.Table.PrimaryKey) {
				return component.Permanent(fmt.Errorf("table %s: the source's primary key changed from (%s) to (%s); the table's sorting key cannot follow it: resync the table",
					cur.name, strings.Join(cur.pk, ", "), strings.Join(d.Table.PrimaryKey, ", ")))
			}
		}
	}
	fills := map[string]schema.Value{}
	for _, ch := range d.Changes {
		if v, ok := ch.Fill(); ok {
			fills[ch.Column.Name] = v
		}
	}
	// columns the destination lacks
	for _, c := range d.Table.Columns {
		if i, ok := cur.byName[c.Name]; ok {
			if _, fill := fills[c.Name]; fill && !cur.cols[i].defaulted {
				// kept from a drop at the source: its rows hold the old values,
				// which no DEFAULT replaces
				return component.Permanent(fmt.Errorf("table %s: column %s was added at the source with a default for the rows already there, but the destination still has a column of that name (kept when the source dropped it), whose older rows would keep their old values: drop the destination column, or resync the table",
					cur.name, c.Name))
			}
			continue
		}
		ct, err := s.DestType(c.Type, true) // added later: existing rows have no value
		if err != nil {
			return component.Permanent(fmt.Errorf("table %s column %s: %w", cur.name, c.Name, err))
		}
		def := ""
		if v, ok := fills[c.Name]; ok && !planning {
			if def, err = s.fillDefault(ctx, cur, c.Name, ct, v, d.Pos); err != nil {
				return err
			}
		}
		q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s", cur.ident, ident(c.Name), ct.sql, def)
		if s.feat.ifNotExists {
			q = fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s%s", cur.ident, ident(c.Name), ct.sql, def)
		}
		if err := run(q); err != nil {
			return err
		}
		if planning {
			continue
		}
		s.log.Info("column added at destination", "table", cur.name, "column", c.Name, "type", ct.sql, "fills_older_rows", def != "")
	}
	return nil
}

// fillDefault returns the DEFAULT clause that gives the rows already in the
// table an added column's Existing value v: in ClickHouse a part written
// before a column existed reads the column's DEFAULT, so the column's
// addition and its fill are one statement, and nothing is rewritten. Rows
// inserted later always carry the column. ClickHouse cannot take a bound
// value in DDL, so v goes through the sink's own encoding into a one-row
// staging table, the server renders it as text, and the DEFAULT casts that
// text back, checked to give the same value before it is used. "" means NULL
// (the on_unrepresentable: null policy).
func (s *Sink) fillDefault(ctx context.Context, t *chTable, col string, ct colType, v schema.Value, pos offsets.Position) (string, error) {
	x, problem := encode(ct, v)
	if problem != "" {
		var err error
		if x, err = s.unrepresentable(t, &chCol{name: col, ct: ct}, &schema.Change{Pos: pos}, problem); err != nil {
			return "", err
		}
		if x == nil {
			return "", nil
		}
	}
	h := fnv.New64a()
	h.Write([]byte(s.pipeline + "\x00" + t.ident + "\x00" + col))
	stage := s.db + "." + ident(fmt.Sprintf("%sfill_%x", s.cfg.MetadataPrefix, h.Sum64()))
	if err := s.exec(ctx, "DROP TABLE IF EXISTS "+stage); err != nil {
		return "", err
	}
	if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s (v %s) ENGINE = Memory", stage, ct.sql)); err != nil {
		return "", err
	}
	defer s.be.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stage) //nolint:errcheck // best effort: recreated next time
	if err := s.be.Insert(ctx, stage, []Column{{"v", ct.sql}}, [][]any{{x}}, ""); err != nil {
		return "", classify(fmt.Errorf("stage the value of column %s for %s's older rows: %w", col, t.name, err))
	}
	// as hex, so that no byte of the value is ever read as SQL: the bits of a
	// float (its text does not always parse back on old servers), the text
	// form of anything else
	render, back := "hex(toString(v))", "CAST(unhex(%s) AS %s)"
	if ct.base == "Float32" || ct.base == "Float64" {
		render, back = "hex(reinterpretAsString(assumeNotNull(v)))", "reinterpretAs"+ct.base+"(unhex(%s))%.0s"
	}
	rows, err := s.be.QueryStrings(ctx, "SELECT "+render+" FROM "+stage)
	if err != nil || len(rows) != 1 {
		return "", classify(fmt.Errorf("render the value of column %s for %s's older rows: %w (%d rows)", col, t.name, err, len(rows)))
	}
	if _, err := hex.DecodeString(rows[0][0]); err != nil {
		return "", fmt.Errorf("render the value of column %s for %s's older rows: the server's hex is not hex", col, t.name)
	}
	// to the base type (old servers cannot CAST to every Nullable type); the
	// column's DEFAULT converts it
	expr := fmt.Sprintf(back, literal(rows[0][0]), ct.base)
	same, err := s.be.QueryStrings(ctx, fmt.Sprintf("SELECT toString(toString(%s) = toString(v)) FROM %s", expr, stage))
	if err != nil {
		return "", classify(fmt.Errorf("check the value of column %s for %s's older rows: %w", col, t.name, err))
	}
	if len(same) != 1 || same[0][0] != "1" {
		return "", component.Permanent(fmt.Errorf("table %s column %s (%s): the value the rows already there hold at the source does not survive ClickHouse's text form, so it cannot be their DEFAULT: fill the column yourself, or resync the table", t.name, col, ct.sql))
	}
	return " DEFAULT " + expr, nil
}

func (s *Sink) tableOptions(id schema.TableID) TableOptions {
	return s.cfg.Tables[id.String()]
}

func (s *Sink) createTable(t schema.Table, run func(q string) error) error {
	if len(t.PrimaryKey) == 0 {
		return component.Permanent(fmt.Errorf("table %s has no primary key: ReplacingMergeTree needs one to replace rows", t.ID))
	}
	opts := s.tableOptions(t.ID)
	var b strings.Builder
	name := s.db + "." + ident(s.cfg.DestName(t.ID))
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", name)
	for _, c := range t.Columns {
		key := slices.Contains(t.PrimaryKey, c.Name)
		ct, err := s.DestType(c.Type, c.Nullable && !key)
		if err != nil {
			return component.Permanent(fmt.Errorf("table %s column %s: %w", t.ID, c.Name, err))
		}
		fmt.Fprintf(&b, "%s %s", ident(c.Name), ct.sql)
		if key {
			fmt.Fprintf(&b, " COMMENT %s", literal(keyComment))
		}
		b.WriteString(", ")
	}
	synced := "DateTime DEFAULT now()"
	if s.feat.dateTime64 {
		synced = "DateTime64(6, 'UTC') DEFAULT now64(6)"
	}
	fmt.Fprintf(&b, "%s UInt64, %s UInt8, %s %s", ident(s.meta.Version), ident(s.meta.Deleted), ident(s.meta.SyncedAt), synced)
	if s.cfg.IncludeOp {
		fmt.Fprintf(&b, ", %s String", ident(s.meta.Op))
	}
	if s.cfg.IncludeSourceTS {
		tsType, _ := s.DestType(schema.Type{Kind: schema.KindTimestamp}, true)
		fmt.Fprintf(&b, ", %s %s", ident(s.meta.SourceTS), tsType.sql)
	}
	b.WriteString(") ENGINE = ")
	switch {
	case opts.Engine != "":
		b.WriteString(opts.Engine)
	case s.cfg.DeleteMode == "hard":
		fmt.Fprintf(&b, "ReplacingMergeTree(%s, %s)", ident(s.meta.Version), ident(s.meta.Deleted))
	default:
		fmt.Fprintf(&b, "ReplacingMergeTree(%s)", ident(s.meta.Version))
	}
	if opts.PartitionBy != "" {
		b.WriteString(" PARTITION BY " + opts.PartitionBy)
	}
	order := opts.OrderBy
	if len(order) == 0 {
		order = t.PrimaryKey
	} else if len(order) != len(t.PrimaryKey) || !sameSet(order, t.PrimaryKey) {
		// The sorting key decides which rows replace each other, and a delete
		// carries only the key: any other column would leave tombstones apart
		// from the rows they delete.
		return component.Permanent(fmt.Errorf("tables[%s].order_by: (%s) must be the primary key's columns (%s) in any order: rows replace each other by the sorting key, and a delete carries only the key",
			t.ID, strings.Join(order, ", "), strings.Join(t.PrimaryKey, ", ")))
	}
	if p := opts.PartitionBy; p != "" {
		for _, m := range identRE.FindAllStringSubmatch(p, -1) {
			if m[2] != "(" && !slices.Contains(t.PrimaryKey, strings.Trim(m[1], "`")) {
				return component.Permanent(fmt.Errorf("tables[%s].partition_by: %q uses %s, which is not a primary-key column: FINAL does not merge across partitions, so a delete (which carries only the key) would not reach the row",
					t.ID, p, m[1]))
			}
		}
	}
	quoted := make([]string, len(order))
	for i, k := range order {
		quoted[i] = ident(k)
	}
	fmt.Fprintf(&b, " ORDER BY (%s)", strings.Join(quoted, ", "))
	if s.feat.dedupToken {
		b.WriteString(" SETTINGS non_replicated_deduplication_window = 1000")
	}
	if err := run(b.String()); err != nil {
		return err
	}
	if s.cfg.CreateViews {
		view := s.db + "." + ident(s.cfg.DestName(t.ID)+"_current")
		if err := run(fmt.Sprintf("CREATE VIEW IF NOT EXISTS %s AS SELECT * FROM %s FINAL WHERE %s = 0", view, name, ident(s.meta.Deleted))); err != nil {
			return err
		}
	}
	return nil
}

// identRE finds identifiers in an expression; group 2 is "(" for function names.
var identRE = regexp.MustCompile("(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\\s*(\\(?)")

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// widens reports whether changing a column from have to want keeps every value.
func widens(have, want colType) bool {
	if have.nullable && !want.nullable {
		return false
	}
	hb, wb := have.base, want.base
	ints := []string{"Int8", "Int16", "Int32", "Int64"}
	uints := []string{"UInt8", "UInt16", "UInt32", "UInt64"}
	hi, wi := slices.Index(ints, hb), slices.Index(ints, wb)
	hu, wu := slices.Index(uints, hb), slices.Index(uints, wb)
	switch {
	case hi >= 0 && wi >= 0:
		return wi >= hi
	case hu >= 0 && wu >= 0:
		return wu >= hu
	case hu >= 0 && wi >= 0:
		return wi > hu
	case hb == "Float32" && wb == "Float64":
		return true
	case have.p > 0 && want.p > 0:
		return want.s >= have.s && want.p-want.s >= have.p-have.s
	}
	return hb == wb
}

// classify marks ClickHouse errors a retry cannot fix as permanent: syntax,
// unknown identifiers and types, type mismatches, access denied.
func classify(err error) error {
	var conv *column.ColumnConverterError
	if errors.As(err, &conv) {
		return component.Permanent(err) // a value the client cannot put in its column: the same next time
	}
	msg := err.Error()
	// syntax, schema and auth errors, and data errors (a value the server
	// cannot parse or hold: the same next time, never a retry loop)
	for _, code := range []string{"code: 62,", "code: 47,", "code: 50,", "code: 53,", "code: 60,", "code: 44,", "code: 497,", "code: 516,", "code: 36,", "code: 43,",
		"code: 6,", "code: 27,", "code: 38,", "code: 41,", "code: 69,", "code: 70,", "code: 72,", "code: 117,", "code: 131,", "code: 190,",
		"code: 321,", "code: 349,", "code: 407,"} {
		if strings.Contains(strings.ToLower(msg), code) {
			return component.Permanent(err)
		}
	}
	return err
}

// Write inserts b's changes (collapsed per key, each a row with a version) and
// then records the batch in the state table.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	if s.be == nil {
		return errors.New("clickhouse sink: Write before Open")
	}
	changes := b.Changes
	skip := 0
	for skip < len(changes) && changes[skip].Pos.Compare(s.hwm) <= 0 {
		skip++ // written already: positions increase and are never reused
	}
	if skip == len(changes) {
		return nil
	}
	last := changes[len(changes)-1].Pos
	changes = sinks.CollapseByKey(changes[skip:])
	if len(changes) >= 1<<24 {
		return component.Permanent(fmt.Errorf("a batch of %d changes is more than the ClickHouse sink numbers (16,777,215): lower batch.max_changes", len(changes)))
	}
	n := s.seq + 1
	s.pending = s.pending[:0]
	var order []schema.TableID
	byTable := map[schema.TableID][]int{}
	for i := range changes {
		id := changes[i].Table
		if _, ok := byTable[id]; !ok {
			order = append(order, id)
		}
		byTable[id] = append(byTable[id], i)
	}
	for _, id := range order {
		if _, err := s.table(ctx, id); err != nil { // a table that is gone is lost, not truncated
			return sinks.ForTable(id, err)
		}
	}
	if err := s.truncated(ctx, order...); err != nil {
		return err
	}
	for _, id := range order {
		if err := s.writeTable(ctx, id, changes, byTable[id], n); err != nil {
			return sinks.ForTable(id, err)
		}
	}
	if err := s.logBatch(ctx, n, last); err != nil {
		return err
	}
	if err := s.saveState(ctx, n, last); err != nil {
		return fmt.Errorf("record batch %d: %w", n, err)
	}
	s.seq, s.hwm = n, last.Clone()
	for _, sw := range s.pending {
		s.swept.WithLabelValues(s.pipeline, sw.table).Add(float64(sw.n))
		s.log.Info("table resync finished: rows no longer at the source removed", "table", sw.table, "rows", sw.n)
	}
	return nil
}

func version(n uint64, i int) uint64 { return n<<24 | uint64(i) }

func (s *Sink) writeTable(ctx context.Context, id schema.TableID, changes []schema.Change, idx []int, n uint64) error {
	t, err := s.table(ctx, id)
	if err != nil {
		return err
	}
	var sweeps []int
	for len(idx) > 0 && changes[idx[len(idx)-1]].Op == schema.OpSweep {
		sweeps = append([]int{idx[len(idx)-1]}, sweeps...)
		idx = idx[:len(idx)-1]
	}
	if len(idx) > 0 {
		if err := s.writeRows(ctx, t, changes, idx, n); err != nil {
			return err
		}
		// rows went in (a truncate alone adds tombstones only where rows are)
		if slices.ContainsFunc(idx, func(i int) bool { return changes[i].Op != schema.OpTruncate }) {
			if err := s.markWritten(ctx, s.cfg.DestName(id), true); err != nil {
				return err
			}
		}
	}
	for _, i := range sweeps {
		if err := s.sweep(ctx, t, &changes[i], version(n, i), n); err != nil {
			return err
		}
	}
	return nil
}

// sweep ends a table's resync: every live row written before the batch that
// holds the resync's first position (c.Since) gets a tombstone at version v.
// Versions here are batch numbers, not positions, so the batch log says which
// batch that is: the first one of the current history whose last position is
// at or past Since (none yet: the batch being written, n). A row of that batch
// older than Since stays: it was written in the same batch as the resync's
// first rows, so it is no ghost of lost history.
func (s *Sink) sweep(ctx context.Context, t *chTable, c *schema.Change, v, n uint64) error {
	if len(c.Since) == 0 {
		return component.Permanent(fmt.Errorf("sweep of %s carries no position its resync began at", t.name))
	}
	bt, p := s.batchTable(), literal(s.pipeline)
	start := fmt.Sprintf("(SELECT max(seq) FROM %s WHERE pipeline = %s AND last = '')", bt, p)
	rows, err := s.be.QueryStrings(ctx, fmt.Sprintf("SELECT toString(min(seq)), toString(count()), toString(%s) FROM %s WHERE pipeline = %s AND seq > %s AND last >= %s",
		start, bt, p, start, literal(hex.EncodeToString(c.Since))))
	if err != nil {
		return classify(fmt.Errorf("find where the resync of %s began: %w", t.name, err))
	}
	from := n
	if len(rows) == 1 && rows[0][1] != "0" {
		if from, err = strconv.ParseUint(rows[0][0], 10, 64); err != nil {
			return fmt.Errorf("batch log: %w", err)
		}
	}
	if len(rows) == 1 && rows[0][2] != "" {
		// the batch before must still be in the log, or rows older than the
		// resync could have been written in batches the log no longer lists
		histStart, _ := strconv.ParseUint(rows[0][2], 10, 64)
		if from > histStart+1 {
			prev, err := s.be.QueryStrings(ctx, fmt.Sprintf("SELECT toString(count()) FROM %s WHERE pipeline = %s AND seq = %d", bt, p, from-1))
			if err != nil {
				return classify(fmt.Errorf("find where the resync of %s began: %w", t.name, err))
			}
			if len(prev) != 1 || prev[0][0] == "0" {
				return component.Permanent(fmt.Errorf("the resync of %s began before the oldest batch in %s (kept %d days): resync the table again", t.name, bt, batchLogDays))
			}
		}
	}
	keys := make([]string, len(t.pk))
	for i, k := range t.pk {
		keys[i] = ident(k)
	}
	where := fmt.Sprintf("%s = 0 AND %s < %d", ident(s.meta.Deleted), ident(s.meta.Version), version(from, 0))
	cnt, err := s.be.QueryStrings(ctx, fmt.Sprintf("SELECT toString(count()) FROM %s FINAL WHERE %s", t.ident, where))
	if err != nil {
		return classify(fmt.Errorf("count the rows of %s its resync did not find: %w", t.name, err))
	}
	q := fmt.Sprintf("INSERT INTO %s (%s, %s, %s) SELECT %s, toUInt64(%d), toUInt8(1) FROM %s FINAL WHERE %s",
		t.ident, strings.Join(keys, ", "), ident(s.meta.Version), ident(s.meta.Deleted), strings.Join(keys, ", "), v, t.ident, where)
	if err := s.exec(ctx, q); err != nil {
		return fmt.Errorf("remove the rows of %s that its resync did not find: %w", t.name, err)
	}
	var k int64
	if len(cnt) == 1 {
		k, _ = strconv.ParseInt(cnt[0][0], 10, 64)
	}
	s.pending = append(s.pending, sweptRows{t.name, k})
	return nil
}

// sweptRows is what one sweep of a batch removed, counted once the batch is recorded.
type sweptRows struct {
	table string
	n     int64
}

// writeRows writes a table's collapsed row changes (a truncate first) of batch n.
func (s *Sink) writeRows(ctx context.Context, t *chTable, changes []schema.Change, idx []int, n uint64) error {
	var err error
	if c := &changes[idx[0]]; c.Op == schema.OpTruncate {
		// a tombstone, at the truncate's version, for every live key
		keys := make([]string, len(t.pk))
		for i, k := range t.pk {
			keys[i] = ident(k)
		}
		q := fmt.Sprintf("INSERT INTO %s (%s, %s, %s) SELECT %s, toUInt64(%d), toUInt8(1) FROM %s FINAL WHERE %s = 0",
			t.ident, strings.Join(keys, ", "), ident(s.meta.Version), ident(s.meta.Deleted), strings.Join(keys, ", "), version(n, idx[0]), t.ident, ident(s.meta.Deleted))
		if err := s.exec(ctx, q); err != nil {
			return fmt.Errorf("truncate %s: %w", t.name, err)
		}
		idx = idx[1:]
	}
	if len(idx) == 0 {
		return nil
	}
	// the columns this batch carries, in table order, then the metadata
	present := make([]bool, len(t.cols))
	for _, i := range idx {
		c := &changes[i]
		for _, r := range []schema.Row{c.Key, c.After} {
			for _, f := range r {
				j, ok := t.byName[f.Name]
				if !ok {
					return component.Permanent(fmt.Errorf("table %s: column %q is not at the destination (the schema change that added it was not applied): resync the table or add the column", t.name, f.Name))
				}
				present[j] = true
			}
		}
	}
	var cols []Column
	var colIdx []int
	for j, c := range t.cols {
		if present[j] {
			cols = append(cols, Column{c.name, c.ct.sql})
			colIdx = append(colIdx, j)
		}
	}
	cols = append(cols, Column{s.meta.Version, "UInt64"}, Column{s.meta.Deleted, "UInt8"})
	opIdx, tsIdx := -1, -1
	if j, ok := t.byName[s.meta.Op]; ok && s.cfg.IncludeOp {
		opIdx = len(cols)
		cols = append(cols, Column{s.meta.Op, t.cols[j].ct.sql})
	}
	if j, ok := t.byName[s.meta.SourceTS]; ok && s.cfg.IncludeSourceTS {
		tsIdx = len(cols)
		cols = append(cols, Column{s.meta.SourceTS, t.cols[j].ct.sql})
	}
	var direct, staged [][]any
	var unchangedCols [][]any
	first, lastPos := changes[idx[0]].Pos, changes[idx[len(idx)-1]].Pos
	for _, i := range idx {
		c := &changes[i]
		row := make([]any, len(cols))
		src := c.After
		if c.Op == schema.OpDelete {
			src = c.Key
		}
		var unchanged []any
		for k, j := range colIdx {
			col := &t.cols[j]
			v, ok := src.Get(col.name)
			if !ok {
				v, ok = c.Key.Get(col.name)
			}
			if ok && v.Kind() == schema.KindUnchanged {
				unchanged = append(unchanged, col.name)
			}
			if ok && v.IsNull() && col.ct.elem != nil && c.Op != schema.OpDelete {
				s.alter(t, col, "an Array cannot be NULL: a NULL array is stored as []")
			}
			x, problem := encode(col.ct, v)
			if problem != "" {
				if x, err = s.unrepresentable(t, col, c, problem); err != nil {
					return err
				}
			}
			row[k] = x
		}
		row[len(colIdx)] = version(n, i)
		var del uint8
		if c.Op == schema.OpDelete {
			del = 1
		}
		row[len(colIdx)+1] = del
		if opIdx >= 0 {
			row[opIdx] = c.Op.String()
		}
		if tsIdx >= 0 {
			if c.CommitTS.IsZero() {
				row[tsIdx] = nil
			} else {
				row[tsIdx], _ = encode(t.cols[t.byName[s.meta.SourceTS]].ct, schema.Timestamp(c.CommitTS))
			}
		}
		if len(unchanged) > 0 {
			staged = append(staged, row)
			unchangedCols = append(unchangedCols, unchanged)
		} else {
			direct = append(direct, row)
		}
	}
	token := ""
	if s.feat.dedupToken {
		// the same rows replayed get the same token and are dropped as a duplicate
		// block; different rows under the same batch number get another one
		token = fmt.Sprintf("%s:%d:%s:%s:%s:%d", s.pipeline, n, t.name, hex.EncodeToString(first), hex.EncodeToString(lastPos), len(idx))
	}
	if len(direct) > 0 {
		if err := s.be.Insert(ctx, t.ident, cols, direct, token); err != nil {
			return classify(fmt.Errorf("insert %d rows into %s: %w", len(direct), t.name, err))
		}
	}
	if len(staged) > 0 {
		if err := s.insertKeepingUnchanged(ctx, t, cols, staged, unchangedCols); err != nil {
			return err
		}
	}
	s.rows.WithLabelValues(s.pipeline, t.name).Add(float64(len(idx)))
	return nil
}

// insertKeepingUnchanged inserts rows whose unchanged-TOAST columns take the
// stored value: the rows go to a staging table, then INSERT … SELECT joins them
// to the current row of their key.
func (s *Sink) insertKeepingUnchanged(ctx context.Context, t *chTable, cols []Column, rows [][]any, unchanged [][]any) error {
	h := fnv.New64a()
	h.Write([]byte(s.pipeline + "\x00" + t.ident))
	stage := s.db + "." + ident(fmt.Sprintf("%sstage_%x", s.cfg.MetadataPrefix, h.Sum64()))
	var def strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&def, "%s %s, ", ident(c.Name), c.Type)
	}
	fmt.Fprintf(&def, "%s Array(String)", ident(s.meta.Unchanged))
	if err := s.exec(ctx, "DROP TABLE IF EXISTS "+stage); err != nil {
		return err
	}
	if err := s.exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s) ENGINE = Memory", stage, def.String())); err != nil {
		return err
	}
	defer s.be.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stage) //nolint:errcheck // best effort: recreated next time
	scols := append(slices.Clone(cols), Column{s.meta.Unchanged, "Array(String)"})
	srows := make([][]any, len(rows))
	for i, r := range rows {
		srows[i] = append(slices.Clone(r), unchanged[i])
	}
	if err := s.be.Insert(ctx, stage, scols, srows, ""); err != nil {
		return classify(fmt.Errorf("stage %d rows for %s: %w", len(rows), t.name, err))
	}
	var names, sel, cur []string
	keys := make([]string, len(t.pk))
	for i, k := range t.pk {
		keys[i] = ident(k)
	}
	for i, c := range cols {
		names = append(names, ident(c.Name))
		_, inTable := t.byName[c.Name]
		isData := inTable && c.Name != s.meta.Version && c.Name != s.meta.Deleted && c.Name != s.meta.Op && c.Name != s.meta.SourceTS
		if !isData || slices.Contains(t.pk, c.Name) {
			sel = append(sel, "s."+ident(c.Name))
			continue
		}
		alias := fmt.Sprintf("%scur_%d", s.cfg.MetadataPrefix, i)
		cur = append(cur, fmt.Sprintf("%s AS %s", ident(c.Name), ident(alias)))
		sel = append(sel, fmt.Sprintf("if(has(s.%s, %s), %s, s.%s)", ident(s.meta.Unchanged), literal(c.Name), ident(alias), ident(c.Name)))
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s AS s ANY LEFT JOIN (SELECT %s, %s FROM %s FINAL) AS c USING (%s)",
		t.ident, strings.Join(names, ", "), strings.Join(sel, ", "), stage, strings.Join(keys, ", "), strings.Join(cur, ", "), t.ident, strings.Join(keys, ", "))
	if err := s.exec(ctx, q); err != nil {
		return fmt.Errorf("insert rows keeping unchanged values into %s: %w", t.name, err)
	}
	return nil
}

// alter counts a value stored as another one (sinks.AlteredValues), logged
// once per column.
func (s *Sink) alter(t *chTable, col *chCol, why string) {
	s.altered.WithLabelValues(s.pipeline, t.name, col.name).Inc()
	if k := "altered\x00" + t.name + "\x00" + col.name; !s.warned[k] {
		s.warned[k] = true
		s.log.Warn("values stored as another value the destination cannot tell apart; further ones are only counted", "table", t.name, "column", col.name, "reason", why)
	}
}

// unrepresentable applies on_unrepresentable; neither error nor log carries the value.
//
// An Array column cannot be NULL in ClickHouse: under on_unrepresentable:
// null it takes the empty array instead, counted and said like a NULL.
func (s *Sink) unrepresentable(t *chTable, col *chCol, c *schema.Change, problem string) (any, error) {
	if s.cfg.OnUnrepresentable == "null" && (col.ct.nullable || col.ct.elem != nil) {
		s.nulled.WithLabelValues(s.pipeline, t.name, col.name).Inc()
		stored, as := any(nil), "NULL"
		if col.ct.elem != nil {
			stored, as = []any{}, "an empty array (an Array column cannot be NULL)"
		}
		if k := t.name + "\x00" + col.name; !s.warned[k] {
			s.warned[k] = true
			s.log.Warn("value the destination column cannot hold stored as "+as+" (on_unrepresentable: null); further ones are only counted",
				"table", t.name, "column", col.name, "position", c.Pos.String(), "reason", "the value "+problem)
		}
		return stored, nil
	}
	hint := "set on_unrepresentable: null to store NULL instead, or change the column's type"
	if !col.ct.nullable {
		hint = "the column is not Nullable, so on_unrepresentable: null cannot apply; change the column's type"
	}
	return nil, component.Permanent(fmt.Errorf("table %s column %s (%s) at position %s: the value %s; %s", t.name, col.name, col.ct.sql, c.Pos, problem, hint))
}

// DestinationName implements sinks.Namer.
func (s *Sink) DestinationName(t schema.Table) (string, error) {
	return s.names.Qualified(t, s.cfg.Database)
}

var _ sinks.Namer = (*Sink)(nil)

var _ sinks.DDLPlanner = (*Sink)(nil)

// DestinationExists implements pipeline.TableChecker.
func (s *Sink) DestinationExists(ctx context.Context, id schema.TableID) (bool, error) {
	t, err := s.readTable(ctx, id)
	return t != nil, err
}
