// Package clickhouse is the ClickHouse sink: one ReplacingMergeTree table per
// source table, written with batched native inserts (clickhouse-go), where every
// change is a row with a version and a deleted flag, so the current state is
// what `FINAL` (or the engine's background merges) keeps: the newest version of
// each key, without its tombstones in delete_mode hard.
//
// Versions. ClickHouse versions are integers, while cdcd positions are byte
// tuples, so the sink numbers its writes: each batch gets the next value of a
// sequence kept in the table _cdc_sink_state (one row per pipeline, with the
// position of the last change written), and change i of batch n gets version
// n<<24 | i. A change at or below the stored position was written already and is
// skipped, so a replayed or older batch never gets a newer version than the
// change it repeats; a crash between the data and the state insert replays the
// batch under the same or a later number, which is the same rows again. The
// sequence never goes backwards (Cleanup resets only the position), so a resync
// outranks the old history.
//
// Unchanged-TOAST markers are resolved at the server: such rows go through a
// staging table and are inserted with `INSERT … SELECT` joined to the current
// row (FINAL), taking the stored value for each unchanged column.
//
// Servers: features are chosen by server version (see features). Debian's 18.16
// is tested for the wire path; the current engine (chdb) for the SQL and the
// encodings; docs/testing.md says which covers what.
//
// Concurrency: the engine calls every method from one goroutine.
package clickhouse
