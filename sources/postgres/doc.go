// Package postgres is cdcd's Postgres source: an initial snapshot consistent with
// the stream (the replication slot's exported snapshot, tables read in parallel CTID
// chunks), then logical replication with pgoutput through pglogrepl.
//
// Guarantees (DESIGN.md §4):
//   - The publication is created before the slot; both are named from the pipeline.
//   - The LSN confirmed to the server is only ever one the engine has Acked, that
//     is, durable in the sink and the offset store; standby status updates always
//     carry explicit write, flush and apply positions, and replication always starts
//     from the stored position.
//   - When nothing is in flight, keepalives and heartbeats (pg_logical_emit_message)
//     become empty checkpoint batches, so an idle database does not pin WAL and the
//     stored offset never falls behind the slot.
//   - A dropped or invalidated slot, or a slot confirmed past the stored position,
//     is a ResyncError (needs_resync), never a retry loop.
//   - Memory is bounded: a transaction larger than a batch is emitted in parts; the
//     checkpoint lands only on its commit.
//
// Concurrency: Open, Read and Close are called from one goroutine; Ack and
// SourceStatus from any. Between Open and Close the source owns a goroutine that
// owns the replication connection (it alone reads and writes it), plus snapshot
// workers and a heartbeat/slot-health goroutine; Close waits for all of them.
package postgres
