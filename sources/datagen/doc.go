// Package datagen is a source that generates a deterministic stream of changes:
// an initial snapshot of every table, then transactions of inserts, updates and
// deletes. The same seed always yields the same changes at the same positions, so
// a pipeline restarted from any checkpoint resumes exactly — which makes it a real
// source for trying cdcd, for demos and for benchmarking sinks and the engine.
//
// Positions are (phase, transaction, index) tuples: phase 0 is the snapshot
// (one transaction per chunk), phase 1 the stream. A transaction's checkpoint is
// (phase, transaction, MaxUint64), after every change in it and before the next.
//
// Concurrency: Open, Read and Close from one goroutine; Ack and SourceStatus from
// any.
package datagen
