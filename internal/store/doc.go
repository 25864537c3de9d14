// Package store is cdcd's metadata store: connections, pipelines (with their
// desired and observed state), offsets with lease epochs, schema versions,
// snapshot progress and API tokens.
//
// There is one implementation over database/sql with two dialects sharing one
// schema and one list of migrations: embedded SQLite (the default, pure Go,
// modernc.org/sqlite) and Postgres (for several cdcd nodes). Both pass
// storetest.Run.
//
// Invariants:
//   - Every write that moves an offset or snapshot progress is one transaction that
//     checks the caller's epoch against the pipeline's current one (offsets.CheckCommit).
//   - Connection and pipeline configs are sealed with the secrets.Cipher before they
//     are written; API tokens are kept only as SHA-256 hashes.
//
// Concurrency: a Store is safe for concurrent use, and several processes may share
// one database (SQLite with its file lock and busy timeout, Postgres with row locks).
package store
