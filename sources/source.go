package sources

import (
	"context"
	"log/slog"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/prometheus/client_golang/prometheus"
)

// Source reads ordered changes from a database.
type Source interface {
	// Open connects and positions the stream just after from. A nil from means a
	// fresh pipeline: the source runs its initial snapshot (resuming from saved
	// snapshot progress, if any) and then streams. A position the source can no
	// longer serve returns an error whose NeedsResync() is true. On ctx cancel Open
	// returns ctx's error and leaves nothing open.
	Open(ctx context.Context, from offsets.Position) error
	// Read blocks until it has a batch, ctx is done, or it fails. A batch holds at
	// most the configured limits, ends on a transaction boundary unless a single
	// transaction exceeds the limits (then its Checkpoint is nil), and its changes'
	// positions increase. A position identifies one change: a change delivered
	// again after a restart comes at the same position or a later one, and a
	// position is never reused for a different change (sinks skip positions they
	// hold). The caller owns the returned batch. On ctx cancel Read
	// returns ctx's error; the source stays usable only for Close.
	Read(ctx context.Context) (schema.Batch, error)
	// Ack reports that everything up to upTo is durable downstream and recorded in
	// the offset store. It may be called concurrently with Read, never with a
	// position lower than an earlier Ack's. It must not block on the stream.
	Ack(ctx context.Context, upTo offsets.Position) error
	// Close releases everything Open acquired. It is idempotent and may be called
	// without Open.
	Close(ctx context.Context) error
}

// Checker is implemented by sources that can check their configuration against the
// live server (the connection `test` action and pipeline start). Check returns nil,
// or an error joining every problem found, each in words a user can act on.
type Checker interface {
	Check(ctx context.Context) error
}

// ServerChecker is implemented by sources that can check their server
// without any table: connectivity, settings, privileges. A connection test of
// a source connection that leaves its tables to its pipelines runs it (the
// source is built with a placeholder table that it does not look at).
type ServerChecker interface {
	CheckServer(ctx context.Context) error
}

// Sampler is implemented by sources that can read a few current rows of one
// table outside any pipeline, for previews. It reads; it creates nothing on the
// server.
type Sampler interface {
	Sample(ctx context.Context, table schema.TableID, limit int) (schema.Table, []schema.Row, error)
}

// Warner is implemented by sources whose checks find conditions that do not
// stop a pipeline and that a user should know and may fix (an unlimited
// max_slot_wal_keep_size, a table without REPLICA IDENTITY FULL). Warnings
// returns those of the last Check or Open, each saying what to do; sources do
// not log them: the connection test and the pipeline's status show them, and
// the engine logs each once per pipeline.
type Warner interface {
	Warnings() []string
}

// TableLister is implemented by sources whose config names their tables:
// Tables returns them, as the source reports them (a resync of a whole
// pipeline requests each). Valid after New, without Open.
type TableLister interface {
	Tables() []schema.TableID
}

// Cleaner is implemented by sources that hold server-side state for a pipeline
// (a replication slot, a publication). Cleanup drops it when the pipeline is
// deleted; it is called without Open. Leftover says what Cleanup drops and the
// statements that drop it by hand, for a forced delete that could not run it.
type Cleaner interface {
	Cleanup(ctx context.Context) error
	Leftover() component.Leftover
}

// StatusReporter is implemented by sources that report progress. SourceStatus is
// safe to call concurrently with every other method.
type StatusReporter interface {
	SourceStatus() Status
}

// Status is what a source reports about itself.
type Status struct {
	Snapshotting bool               `json:"snapshotting"`
	Tables       []SnapshotProgress `json:"tables,omitempty"`
	// LastCommit is the commit time of the newest change read.
	LastCommit time.Time `json:"last_commit"`
	// SnapshotAt is when the running snapshot began: the replica is complete
	// as of no later time until it ends (zero: no snapshot runs).
	SnapshotAt time.Time `json:"snapshot_at,omitzero"`
	// LagBytes is how far the server's log is ahead of the position durable
	// downstream (Postgres: pg_current_wal_lsn() minus the confirmed LSN;
	// MySQL: the binlog bytes between the acked position and the server's),
	// as of LagBytesAt; nil until measured.
	LagBytes   *int64    `json:"lag_bytes,omitempty"`
	LagBytesAt time.Time `json:"lag_bytes_at,omitzero"`
	// Detail is source-specific (slot name, retained WAL bytes, binlog file).
	Detail map[string]any `json:"detail,omitempty"`
	// Warnings are the source's findings that do not stop it (see Warner).
	Warnings []string `json:"warnings,omitempty"`
}

// SnapshotProgress is the snapshot state of one table. State is the source's own
// resumable chunk state (opaque to everything else).
type SnapshotProgress struct {
	Table    schema.TableID `json:"table"`
	RowsDone int64          `json:"rows_done"`
	// RowsEstimated is the source's estimate of the table's rows, -1 when it
	// has none (Postgres: a table never analyzed); never a guess shown as done.
	RowsEstimated int64  `json:"rows_estimated"`
	Done          bool   `json:"done"`
	State         []byte `json:"-"`
	// Resync is a request, made with the pipeline stopped, to read the table
	// again while the others stream and then remove at the destination the
	// rows the source no longer has (schema.OpSweep). A source that starts
	// it saves the table's progress without it.
	Resync bool `json:"resync,omitempty"`
	// Resyncing, in a source's status, says the table's read under way is a
	// resync (Resync requested and started), not its first snapshot.
	Resyncing bool `json:"resyncing,omitempty"`
}

// ProgressStore keeps the snapshot progress of one pipeline, fenced by the epoch
// of the runner it was handed to: a stale runner's Save fails with
// offsets.ErrFenced. Safe for concurrent use.
type ProgressStore interface {
	SaveSnapshotProgress(ctx context.Context, p SnapshotProgress) error
	LoadSnapshotProgress(ctx context.Context) ([]SnapshotProgress, error)
}

// Deps is what a source gets from the engine.
type Deps struct {
	Pipeline string
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	Schema   schema.Registry
	Progress ProgressStore
	// MaxChanges and MaxBytes bound a batch; MaxWait bounds how long Read holds a
	// non-empty batch open waiting for more.
	MaxChanges int
	MaxBytes   int
	MaxWait    time.Duration
	// Epoch is this attempt's lease epoch; it grows with every attempt. A source
	// whose reads are not replayable in the same order (a resumed snapshot) puts it
	// in its positions, so that a position is never reused for a different change.
	Epoch uint64
}

// Factory builds a source from its config.
type Factory = component.Factory[Source, Deps]
