// Package postgres is the Postgres sink: it keeps one destination table per source
// table current, and stores the pipeline's offset in the same transaction as the
// data, so that a crash at any point neither loses nor re-applies a change.
//
// Write path, per batch, in one transaction on one session:
//
//  1. lock the pipeline's row in the offsets table (default "_cdc_offsets") and
//     check the lease epoch: a fenced runner writes nothing;
//  2. drop the changes at or below the stored offset (already applied: data and
//     offset commit together), collapse the rest per key to the newest;
//  3. per table: COPY (text format) into a session-local staging table typed like
//     the destination, then one MERGE (Postgres 15 and later) or an UPDATE, DELETE
//     and INSERT … ON CONFLICT DO NOTHING (older servers) guarded by _cdc_version,
//     so that a row never moves back to an older version;
//  4. move the offset to the batch's checkpoint and commit.
//
// Destination tables are created on first sight with the source's primary key,
// nullable data columns (soft-deleted tombstones carry only the key) and the
// metadata columns _cdc_version (bytea: the source position, ordered bytewise),
// _cdc_deleted and _cdc_synced_at (and optionally _cdc_op and _cdc_source_ts).
// The type mapping is in types.go and docs/type-mappings.md.
//
// Concurrency: Open, Apply, Write and Close are called from one goroutine; the
// offset store methods (Acquire, Load, Commit) may be called concurrently with
// them and use their own connection pool.
package postgres
