package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
)

// ErrStopping is the cancel cause when a runner is stopped on purpose; it is never
// reported as a failure.
var ErrStopping = errors.New("pipeline stopping")

// ErrDrainTimeout is the cancel cause when in-flight batches did not drain within
// the drain timeout after a stop was requested.
var ErrDrainTimeout = errors.New("drain timeout: in-flight batches abandoned (they will be replayed)")

// Class is how the supervisor treats an error.
type Class string

// Error classes.
const (
	ClassRetryable   Class = "retryable"
	ClassPermanent   Class = "permanent"
	ClassNeedsResync Class = "needs_resync"
	// ClassResyncTables: some tables must be read again (ResyncTablesError);
	// the rest of the pipeline is fine.
	ClassResyncTables Class = "resync_tables"
)

// ResyncTablesError ends a run that found tables whose destination rows are
// gone (a sinks.TableLostError): they must be read again. Tables are the
// source's names. The Supervisor requests their resync and starts the
// pipeline again, or, with no way to (Spec.ResyncTables unset), parks it as
// needs_resync.
type ResyncTablesError struct {
	Tables []schema.TableID
	Err    error
}

func (e *ResyncTablesError) Error() string {
	return fmt.Sprintf("%v: source tables %s must be read again", e.Err, joinTables(e.Tables))
}

func (e *ResyncTablesError) Unwrap() error { return e.Err }

func joinTables(ids []schema.TableID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return strings.Join(names, ", ")
}

// tableFailure says which source tables a run's error concerns: a sink's
// sinks.TableError, its destination table mapped back to the source tables
// that feed it. The status shows them failed until an attempt commits.
type tableFailure struct {
	tables []schema.TableID
	err    error
}

func (e *tableFailure) Error() string { return e.err.Error() }
func (e *tableFailure) Unwrap() error { return e.err }

// failedTables returns the source tables err concerns: those of a sink's
// table error or of a ResyncTablesError.
func failedTables(err error) []schema.TableID {
	var tf *tableFailure
	var rt *ResyncTablesError
	switch {
	case errors.As(err, &tf):
		return tf.tables
	case errors.As(err, &rt):
		return rt.Tables
	}
	return nil
}

// Classify returns the class of err, as declared by the error itself
// (Permanent() bool or NeedsResync() bool methods); unknown errors are retryable.
func Classify(err error) Class {
	var rt *ResyncTablesError
	switch {
	case errors.As(err, &rt):
		return ClassResyncTables
	case component.NeedsResync(err):
		return ClassNeedsResync
	case component.IsPermanent(err):
		return ClassPermanent
	}
	return ClassRetryable
}
