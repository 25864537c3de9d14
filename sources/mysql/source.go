package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/go-mysql-org/go-mysql/client"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/prometheus/client_golang/prometheus"
)

// Factory returns the MySQL/MariaDB source factory.
func Factory() sources.Factory {
	return sources.Factory{
		Spec: func() any { return Config{}.WithDefaults("<pipeline>") },
		New: component.Decoded(func(c Config, d sources.Deps) (sources.Source, error) {
			c = c.WithDefaults(d.Pipeline)
			if err := c.Validate(); err != nil {
				return nil, err
			}
			return New(c, d), nil
		}),
	}
}

// Source reads a MySQL or MariaDB binlog. See doc.go.
type Source struct {
	cfg  Config
	deps sources.Deps
	log  *slog.Logger
	dec  decoder
	// zeros counts zero dates read as NULL
	zeros *prometheus.CounterVec

	flavor string // gmysql.MySQLFlavor or gmysql.MariaDBFlavor
	query  *client.Conn
	qmu    sync.Mutex
	syncer *replication.BinlogSyncer

	out    chan schema.Batch
	errc   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup

	windows chan windowReq // snapshot coordinator → reader
	// probe is the server's binlog end sampled at an instant, pending until
	// the stream reaches it (then the source is caught up as of then)
	probe sources.Probe[binlogPos]

	mu       sync.Mutex
	chunks   []emittedChunk // emitted, not yet acked
	progress map[schema.TableID]*sources.SnapshotProgress
	lastTS   time.Time
	curFile  string
	curPos   uint32
	snapAt   time.Time
	warnings []string
	acked    resume // the highest stream checkpoint acked
	lagBytes *int64
	lagAt    time.Time
}

// binlogPos is a position in the binlog.
type binlogPos struct {
	file string
	pos  uint32
}

// emittedChunk is a snapshot chunk handed to the engine, waiting for its ack.
type emittedChunk struct {
	table   schema.TableID
	ckpt    offsets.Position
	lastKey string // JSON of the chunk's last key values
	rows    int64
	done    bool             // the table's last chunk
	since   offsets.Position // a resync's start
}

// Tables implements sources.TableLister.
func (s *Source) Tables() []schema.TableID { return slices.Clone(s.cfg.tables) }

// New returns a source for a validated config.
func New(c Config, d sources.Deps) *Source {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxChanges == 0 {
		d.MaxChanges = 10_000
	}
	s := &Source{cfg: c, deps: d, log: d.Logger.With("component", "source.mysql", "server_id", c.ServerID),
		dec: decoder{zeroAsNull: c.ZeroDates == "null"}}
	s.zeros = component.Register(d.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcd_source_zero_dates_total",
		Help: "Zero dates, or dates with a zero month or day, a MySQL source read as NULL (zero_dates: null), by pipeline, table and column."},
		[]string{"pipeline", "table", "column"}))
	var warned sync.Map
	s.dec.nulled = func(c *colInfo) {
		s.zeros.WithLabelValues(d.Pipeline, c.table, c.name).Inc()
		if _, seen := warned.LoadOrStore(c.table+"\x00"+c.name, true); !seen {
			s.log.Warn("zero dates read as NULL (zero_dates: null); further ones are only counted in cdcd_source_zero_dates_total", "table", c.table, "column", c.name)
		}
	}
	return s
}

func (s *Source) connect(ctx context.Context) (*client.Conn, error) {
	return s.connectWrapped(ctx, nil)
}

// connectWrapped connects with the socket wrapped by wrap (when set).
func (s *Source) connectWrapped(ctx context.Context, wrap func(net.Conn) net.Conn) (*client.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	// a silent server (partition, frozen process) must not hang a query: every
	// read and write has a deadline, generous enough for a chunk's first row
	timeouts := func(c *client.Conn) error {
		c.ReadTimeout = max(time.Minute, 3*s.cfg.heartbeat)
		c.WriteTimeout = c.ReadTimeout
		return nil
	}
	// until the connection is set up, ctx's end closes the socket (the handshake
	// and the session settings are not cancellable otherwise)
	var stop func() bool
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			stop = context.AfterFunc(ctx, func() { c.Close() })
			if wrap != nil {
				c = wrap(c)
			}
		}
		return c, err
	}
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	conn, err := client.ConnectWithDialer(ctx, "tcp", s.cfg.Addr, s.cfg.User, s.cfg.Password, "", dial, timeouts)
	if err != nil {
		return nil, classify(fmt.Errorf("connect to %s: %w", s.cfg.Addr, err))
	}
	for _, q := range []string{"SET time_zone = '+00:00'", "SET NAMES utf8mb4"} {
		if _, err := conn.Execute(q); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return conn, nil
}

// exec runs a query on the shared query connection.
func (s *Source) exec(q string, args ...any) (*gmysql.Result, error) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.query.Execute(q, args...)
}

// querier runs queries: the shared connection, or a snapshot worker's own.
type querier func(q string, args ...any) (*gmysql.Result, error)

// readAheadEvents bounds the binlog events go-mysql reads and decodes ahead of
// the pipeline. Its default (10,240 events, up to ~700k decoded rows) held a
// gigabyte when the sink was slower than the binlog; the channel of batches
// behind the reader is the back-pressure, so a short read-ahead costs nothing.
const readAheadEvents = 64

// Open connects, checks the server, and starts the stream (and the snapshot of
// the tables not yet copied).
func (s *Source) Open(ctx context.Context, from offsets.Position) (err error) {
	if s.cfg.tables == nil {
		if err := s.cfg.Validate(); err != nil {
			return component.Permanent(err)
		}
	}
	s.query, err = s.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.query.Close()
			s.query = nil
		}
	}()
	flavor := gmysql.MySQLFlavor
	if strings.Contains(strings.ToLower(s.query.GetServerVersion()), "mariadb") {
		flavor = gmysql.MariaDBFlavor
	}
	s.mu.Lock() // SourceStatus reads it
	s.flavor = flavor
	s.mu.Unlock()
	if problems := s.check(s.cfg.tables); len(problems.blocking) > 0 {
		return component.Permanent(errors.Join(problems.blocking...))
	} else {
		s.setWarnings(problems.warnings)
	}
	var start resume
	if from != nil {
		if start, err = decodeCheckpoint(from); err != nil {
			return err
		}
	} else if start, err = s.currentPosition(); err != nil {
		return err
	}
	plan, err := s.plan(ctx, from != nil)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(s.cfg.Addr)
	p, _ := strconv.Atoi(port)
	s.syncer = replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.cfg.ServerID, Flavor: s.flavor, Host: host, Port: uint16(p), User: s.cfg.User, Password: s.cfg.Password,
		HeartbeatPeriod: s.cfg.heartbeat, ReadTimeout: 3 * s.cfg.heartbeat, DisableRetrySync: true, MaxReconnectAttempts: 1,
		TimestampStringLocation: time.UTC, RenderJSONAsMySQLText: true, Logger: slog.New(slog.DiscardHandler),
		EventCacheCount: readAheadEvents,
	})
	var streamer *replication.BinlogStreamer
	if start.gtid != "" {
		set, perr := gmysql.ParseGTIDSet(s.flavor, start.gtid)
		if perr != nil {
			return component.Permanent(fmt.Errorf("checkpoint GTID set %q: %w", start.gtid, perr))
		}
		streamer, err = s.syncer.StartSyncGTID(set)
	} else {
		streamer, err = s.syncer.StartSync(gmysql.Position{Name: start.file, Pos: start.pos})
	}
	if err != nil {
		s.syncer.Close()
		return classify(fmt.Errorf("start binlog stream at %+v: %w", start, err))
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.out = make(chan schema.Batch)
	s.errc = make(chan error, 1)
	s.windows = make(chan windowReq)
	r := &reader{s: s, streamer: streamer, file: start.file, pos: start.pos, gtid: newGTIDTracker(s.flavor, start.gtid),
		tables: map[uint64]*tableMap{}, byID: map[schema.TableID]schema.Table{}, open: map[int]*window{},
		expect: map[schema.TableID]*expectation{}}
	if err := r.restorePending(start.pending); err != nil {
		s.syncer.Close()
		return err
	}
	s.mu.Lock()
	s.acked, s.lagBytes, s.snapAt = start, nil, time.Time{}
	s.probe.Reset()
	if len(plan) > 0 {
		s.snapAt = time.Now()
	}
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.probeLoop(runCtx)
	}()
	go func() {
		defer s.wg.Done()
		var err error
		if len(plan) == 0 {
			err = r.run(runCtx)
		} else {
			err = runBoth(runCtx, r.run, func(ctx context.Context) error { return s.snapshot(ctx, plan) })
		}
		if err != nil && runCtx.Err() == nil {
			s.errc <- err
		}
	}()
	s.log.Info("source open", "flavor", s.flavor, "from", fmt.Sprintf("%+v", start), "snapshot_tables", len(plan))
	return nil
}

// runBoth runs a and b until both return; the first error cancels the other.
func runBoth(ctx context.Context, a, b func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	for _, f := range []func(context.Context) error{a, b} {
		go func() {
			err := f(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	return errors.Join(<-errs, <-errs)
}

// currentPosition is where the binlog ends now: a fresh pipeline starts there.
func (s *Source) currentPosition() (resume, error) { return s.positionOn(s.exec) }

func (s *Source) positionOn(exec querier) (resume, error) {
	var r resume
	res, err := exec("SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed it
		var err2 error
		if res, err2 = exec("SHOW BINARY LOG STATUS"); err2 != nil {
			return r, fmt.Errorf("SHOW MASTER STATUS: %w", err)
		}
	}
	if res.RowNumber() == 0 {
		return r, component.Permanent(errors.New("the binary log is off (SHOW MASTER STATUS is empty): start the server with log_bin"))
	}
	r.file, _ = res.GetString(0, 0)
	pos, _ := res.GetUint(0, 1)
	r.pos = uint32(pos)
	q := "SELECT @@GLOBAL.gtid_executed"
	if s.flavor == gmysql.MariaDBFlavor {
		q = "SELECT @@GLOBAL.gtid_binlog_pos" // not gtid_current_pos: it may hold positions never written here
	}
	if res, err := exec(q); err == nil && res.RowNumber() > 0 {
		r.gtid, _ = res.GetString(0, 0)
	}
	if s.flavor == gmysql.MySQLFlavor && !s.gtidMode(exec) {
		r.gtid = ""
	}
	return r, nil
}

func (s *Source) gtidMode(exec querier) bool {
	res, err := exec("SELECT @@GLOBAL.gtid_mode")
	if err != nil || res.RowNumber() == 0 {
		return false
	}
	v, _ := res.GetString(0, 0)
	return strings.EqualFold(v, "ON")
}

// Read returns the next batch.
func (s *Source) Read(ctx context.Context) (schema.Batch, error) {
	select {
	case b := <-s.out:
		return b, nil
	case err := <-s.errc:
		return schema.Batch{}, err
	case <-ctx.Done():
		return schema.Batch{}, ctx.Err()
	}
}

// Ack saves the snapshot progress of every chunk at or below upTo.
func (s *Source) Ack(ctx context.Context, upTo offsets.Position) error {
	r, rerr := decodeCheckpoint(upTo)
	s.mu.Lock()
	if rerr == nil && r.file != "" {
		s.acked = r
	}
	var done []emittedChunk
	for len(s.chunks) > 0 && s.chunks[0].ckpt.Compare(upTo) <= 0 {
		done = append(done, s.chunks[0])
		s.chunks = s.chunks[1:]
	}
	var save []sources.SnapshotProgress
	for _, c := range done {
		p := s.progress[c.table]
		if p == nil {
			continue
		}
		p.RowsDone += c.rows
		p.State = encodeState(c.lastKey, c.since)
		p.Done = c.done
		save = append(save, *p)
	}
	s.mu.Unlock()
	for _, p := range save {
		if err := s.deps.Progress.SaveSnapshotProgress(ctx, p); err != nil {
			return fmt.Errorf("save snapshot progress of %s: %w", p.Table, err)
		}
	}
	return nil
}

// Close stops the goroutines and closes the connections. It is idempotent.
func (s *Source) Close(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.syncer != nil {
		s.syncer.Close()
	}
	s.qmu.Lock()
	if s.query != nil {
		s.query.Close() // unblocks a snapshot query
	}
	s.qmu.Unlock()
	s.wg.Wait()
	s.qmu.Lock()
	s.query = nil
	s.qmu.Unlock()
	s.syncer, s.cancel = nil, nil
	return nil
}

// SourceStatus reports snapshot progress and the binlog position.
func (s *Source) SourceStatus() sources.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sources.Status{Warnings: s.warnings, LastCommit: s.lastTS, SnapshotAt: s.snapAt, LagBytes: s.lagBytes, LagBytesAt: s.lagAt, Detail: map[string]any{"flavor": s.flavor, "binlog_file": s.curFile, "binlog_pos": s.curPos}}
	for _, p := range s.progress {
		st.Tables = append(st.Tables, *p)
		if !p.Done {
			st.Snapshotting = true
		}
	}
	return st
}

// resyncError means the binlog the pipeline needs is gone.
type resyncError struct{ err error }

func (e *resyncError) Error() string     { return e.err.Error() }
func (e *resyncError) Unwrap() error     { return e.err }
func (e *resyncError) NeedsResync() bool { return true }

var purgedRE = regexp.MustCompile(`(?i)could not find first log file|purged|position > file size|log event entry exceeded max_allowed_packet|Could not find GTID|is not in the binlog|the slave is connecting using change master to master_use_gtid`)

// classify marks errors: 1236 (the server cannot serve the position) needs a
// resync, with what the server said; access and syntax errors are permanent.
func classify(err error) error {
	var me *gmysql.MyError
	if errors.As(err, &me) {
		switch {
		case me.Code == gmysql.ER_MASTER_FATAL_ERROR_READING_BINLOG:
			why := "the binlog at the pipeline's position is no longer on the server"
			switch {
			case strings.Contains(me.Message, "max_allowed_packet"):
				return component.Permanent(fmt.Errorf("a binlog event is larger than max_allowed_packet; raise it on the server (and for replicas): %w", err))
			case strings.Contains(me.Message, "position > file size"), strings.Contains(me.Message, "log file size"):
				why = "the position is past the end of its binlog file: the server was replaced or restored"
			case purgedRE.MatchString(me.Message):
				why = "the binlog files holding the pipeline's position were purged (binlog_expire_logs_seconds / expire_logs_days)"
			}
			return &resyncError{fmt.Errorf("%s; resync the pipeline (docs/runbooks.md, \"binlog purged\"): %w", why, err)}
		case me.Code == gmysql.ER_ACCESS_DENIED_ERROR, me.Code == gmysql.ER_SPECIFIC_ACCESS_DENIED_ERROR,
			me.Code == gmysql.ER_TABLEACCESS_DENIED_ERROR, me.Code == gmysql.ER_DBACCESS_DENIED_ERROR, me.Code == gmysql.ER_PARSE_ERROR:
			return component.Permanent(err)
		}
	}
	return err
}

// probeLoop samples the server's binlog end every heartbeat period on a
// connection of its own, until ctx ends: the stream reaching it says the
// source is caught up as of the sample (reader.current), and its distance
// from the acked position is the lag in bytes.
func (s *Source) probeLoop(ctx context.Context) {
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	t := time.NewTicker(s.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil {
			c, err := s.connect(ctx)
			if err != nil {
				s.log.Debug("connect to sample the binlog position", "error", err)
				continue
			}
			conn = c
		}
		if err := s.probeOnce(conn); err != nil {
			if ctx.Err() == nil {
				s.log.Debug("sample the binlog position", "error", err)
			}
			conn.Close()
			conn = nil
		}
	}
}

func (s *Source) probeOnce(conn *client.Conn) error {
	at := time.Now()
	res, err := conn.Execute("SHOW MASTER STATUS")
	if err != nil {
		return err
	}
	if res.RowNumber() == 0 {
		return errors.New("SHOW MASTER STATUS is empty")
	}
	file, _ := res.GetString(0, 0)
	pos, _ := res.GetUint(0, 1)
	logs, err := conn.Execute("SHOW BINARY LOGS")
	if err != nil {
		return err
	}
	sizes := make(map[string]uint64, logs.RowNumber())
	names := make([]string, 0, logs.RowNumber())
	for i := range logs.RowNumber() {
		n, _ := logs.GetString(i, 0)
		sz, _ := logs.GetUint(i, 1)
		sizes[n], names = sz, append(names, n)
	}
	s.probe.Offer(at, binlogPos{file: file, pos: uint32(pos)})
	s.mu.Lock()
	defer s.mu.Unlock()
	if behind, ok := binlogDistance(names, sizes, s.acked.file, uint64(s.acked.pos), file, pos); ok {
		s.lagBytes, s.lagAt = &behind, at
	}
	return nil
}

// binlogDistance is the number of binlog bytes from (fromFile, fromPos) to
// (toFile, toPos), given the server's binlog files in order with their sizes.
func binlogDistance(names []string, sizes map[string]uint64, fromFile string, fromPos uint64, toFile string, toPos uint64) (int64, bool) {
	if fromFile == toFile {
		return int64(max(toPos, fromPos) - fromPos), true
	}
	var n uint64
	in := false
	for _, f := range names {
		switch {
		case f == fromFile:
			in = true
			n += sizes[f] - min(fromPos, sizes[f])
		case f == toFile:
			if !in {
				return 0, false
			}
			return int64(n + toPos), true
		case in:
			n += sizes[f]
		}
	}
	return 0, false
}

func (s *Source) setWarnings(ws []error) {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Error()
	}
	s.mu.Lock()
	s.warnings = out
	s.mu.Unlock()
}

// Warnings implements sources.Warner.
func (s *Source) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.warnings)
}
