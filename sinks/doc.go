// Package sinks declares what a destination writer is: the Sink interface (Open,
// Apply deltas, Write batches idempotently, Close), its optional capabilities
// (Checker, OffsetStorer), and the Factory that builds one from config.
//
// Implementations live in sub-packages (file, postgres, clickhouse, …), import only
// schema and offsets of cdcd's packages, and pass sinktest.Run.
//
// Concurrency: the engine calls every method from one goroutine, in the order
// Open, then any number of Apply and Write, then Close.
package sinks
