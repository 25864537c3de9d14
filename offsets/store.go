package offsets

import (
	"context"
	"errors"
	"fmt"
)

// Epoch is a pipeline's lease generation. Every Acquire returns a larger one; a
// Commit made under an older epoch is refused with ErrFenced.
type Epoch uint64

// ErrNotFound is returned by Load when a pipeline has no committed position yet.
var ErrNotFound = errors.New("no committed position")

// ErrFenced is returned by Commit when the caller's epoch is not the pipeline's
// current one: another runner has taken the pipeline over.
var ErrFenced = errors.New("offset commit fenced: lease epoch is stale")

// RegressionError is returned by Commit when the position would move backwards.
// It is a permanent error: it means a bug or a mixed-up pipeline, never a retry.
type RegressionError struct {
	Pipeline string
	Stored   Position
	Proposed Position
}

func (e *RegressionError) Error() string {
	return fmt.Sprintf("offset for pipeline %q would move back from %s to %s", e.Pipeline, e.Stored, e.Proposed)
}

// Permanent marks the error as not retryable.
func (e *RegressionError) Permanent() bool { return true }

// Store persists the last durable position of each pipeline.
//
// Implementations are safe for concurrent use. Every method honours ctx
// cancellation and returns ctx's error when it is done before the operation is.
type Store interface {
	// Acquire takes the pipeline's lease and returns a new epoch, larger than any
	// returned before for that pipeline. Commits under earlier epochs fail from then on.
	Acquire(ctx context.Context, pipeline string) (Epoch, error)
	// Load returns the pipeline's committed position, or ErrNotFound.
	Load(ctx context.Context, pipeline string) (Position, error)
	// Commit stores p as the pipeline's position if epoch is current (else ErrFenced)
	// and p is not behind the stored position (else *RegressionError). Committing
	// the stored position again is a no-op. p is not retained.
	Commit(ctx context.Context, pipeline string, epoch Epoch, p Position) error
}

// CheckCommit holds the rule every Store applies on Commit, so that implementations
// cannot drift apart: it returns ErrFenced, a *RegressionError, or nil. skip reports
// that p equals the stored position and nothing needs writing.
func CheckCommit(pipeline string, current, epoch Epoch, stored, p Position) (skip bool, err error) {
	if epoch != current {
		return false, fmt.Errorf("%w (pipeline %q: have %d, current %d)", ErrFenced, pipeline, epoch, current)
	}
	switch c := p.Compare(stored); {
	case c < 0:
		return false, &RegressionError{Pipeline: pipeline, Stored: stored.Clone(), Proposed: p.Clone()}
	case c == 0:
		return true, nil
	}
	return false, nil
}
