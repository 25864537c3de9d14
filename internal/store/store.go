package store

import (
	"context"
	"errors"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	engine "github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// ErrNotFound is returned for a connection, pipeline or token that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would violate a constraint (a connection
// still used by a pipeline, say).
var ErrConflict = errors.New("conflict")

// Connection is a named source or destination.
type Connection struct {
	Name string
	Type string
	// Config is the connection's config document as the user wrote it (JSON),
	// secrets and ${ENV} references included. It is sealed at rest.
	Config    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Pipeline is a pipeline's definition and state.
type Pipeline struct {
	Name string
	// Spec is the pipeline's config document (JSON). It is sealed at rest.
	Spec []byte
	// Paused is the desired state set by pause and resume.
	Paused bool
	// State and LastError are the observed state as the supervisor last saved it.
	State     string
	LastError string
	// Generation counts updates of Spec, from 1.
	Generation int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Store is the metadata store.
type Store interface {
	offsets.Store

	// SaveTableVersion and LoadTableVersions keep the schema history (schema.VersionStore).
	SaveTableVersion(ctx context.Context, pipeline string, tv schema.TableVersion) error
	LoadTableVersions(ctx context.Context, pipeline string) ([]schema.TableVersion, error)

	// SaveSnapshotProgress records one table's snapshot progress if epoch is the
	// pipeline's current one (else offsets.ErrFenced).
	SaveSnapshotProgress(ctx context.Context, pipeline string, epoch offsets.Epoch, p sources.SnapshotProgress) error
	LoadSnapshotProgress(ctx context.Context, pipeline string) ([]sources.SnapshotProgress, error)
	// RequestResync records a resync request for each table of a stopped
	// pipeline (clearing its holds); with reset, the pipeline's offsets,
	// schema history, snapshot progress and holds are deleted first. One
	// transaction.
	RequestResync(ctx context.Context, pipeline string, tables []schema.TableID, reset bool) error

	// Apply stores connections and pipelines (as PutConnection and
	// PutPipeline) in one transaction: all of them, or none.
	Apply(ctx context.Context, conns []Connection, pipes []PipelinePut) error
	PutConnection(ctx context.Context, c Connection) error
	GetConnection(ctx context.Context, name string) (Connection, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	// DeleteConnection fails with ErrConflict while a pipeline names it in usedBy.
	DeleteConnection(ctx context.Context, name string) error

	// PutPipeline creates or updates a pipeline's spec (bumping Generation) and
	// desired state; State and LastError are left to SavePipelineState.
	PutPipeline(ctx context.Context, p Pipeline, connections []string) error
	GetPipeline(ctx context.Context, name string) (Pipeline, error)
	ListPipelines(ctx context.Context) ([]Pipeline, error)
	SetPipelinePaused(ctx context.Context, name string, paused bool) error
	SavePipelineState(ctx context.Context, name, state, lastError string) error
	// DeletePipeline removes the pipeline with its offsets, schema history and
	// snapshot progress.
	DeletePipeline(ctx context.Context, name string) error

	// ListHolds returns the tables a pipeline's schema-change policy holds;
	// ResolveHold records a user's decision on one. BindHolds gives a run its
	// fenced view.
	ListHolds(ctx context.Context, pipeline string) ([]engine.Hold, error)
	ResolveHold(ctx context.Context, pipeline string, table schema.TableID, status engine.HoldStatus) error
	// ListSkipped returns the newest changes a transform failed on and the
	// pipeline skipped (on_transform_error: skip).
	ListSkipped(ctx context.Context, pipeline string, limit int) ([]SkippedChange, error)

	Tokens
	Audit
	Keys

	Close() error
}

// Bind returns the store's views for one pipeline run: snapshot progress fenced by
// epoch.
func Bind(s Store, pipeline string, epoch offsets.Epoch) sources.ProgressStore {
	return boundProgress{s: s, pipeline: pipeline, epoch: epoch}
}

type boundProgress struct {
	s        Store
	pipeline string
	epoch    offsets.Epoch
}

func (b boundProgress) SaveSnapshotProgress(ctx context.Context, p sources.SnapshotProgress) error {
	return b.s.SaveSnapshotProgress(ctx, b.pipeline, b.epoch, p)
}

func (b boundProgress) LoadSnapshotProgress(ctx context.Context) ([]sources.SnapshotProgress, error) {
	return b.s.LoadSnapshotProgress(ctx, b.pipeline)
}

// PipelinePut is one pipeline of Apply with the connections it names.
type PipelinePut struct {
	Pipeline    Pipeline
	Connections []string
}
