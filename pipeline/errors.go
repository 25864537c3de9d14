package pipeline

import (
	"errors"

	"github.com/cdcd-dev/cdcd/internal/component"
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
)

// Classify returns the class of err, as declared by the error itself
// (Permanent() bool or NeedsResync() bool methods); unknown errors are retryable.
func Classify(err error) Class {
	switch {
	case component.NeedsResync(err):
		return ClassNeedsResync
	case component.IsPermanent(err):
		return ClassPermanent
	}
	return ClassRetryable
}
