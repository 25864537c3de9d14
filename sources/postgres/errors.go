package postgres

import (
	"errors"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/jackc/pgx/v5/pgconn"
)

// permanent marks an error not retried: the pipeline parks as failed with its message.
func permanent(err error) error { return component.Permanent(err) }

// ResyncError means the source lost history the pipeline needs (a dropped or
// invalidated slot, a position behind the slot): the pipeline goes to
// needs_resync and is never restarted "from now" silently.
type ResyncError struct{ error }

// NeedsResync marks the error.
func (ResyncError) NeedsResync() bool { return true }

// Unwrap returns the cause.
func (e ResyncError) Unwrap() error { return e.error }

// classify marks errors whose SQLSTATE says retrying cannot help.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "28P01", "28000", // authentication
		"42501",          // insufficient privilege
		"3D000",          // database does not exist
		"42P01", "42703": // table or column does not exist
		return permanent(err)
	}
	return err
}

// classifyStart classifies an error of START_REPLICATION: a missing (42704) or
// invalidated (55000) slot means the history is gone.
func classifyStart(slot string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42704" || pe.Code == "55000") {
		return ResyncError{errors.New("replication slot " + slot + " can no longer serve this pipeline (" + pe.Message + "): resync the pipeline; raise max_slot_wal_keep_size to make this less likely")}
	}
	return classify(err)
}
