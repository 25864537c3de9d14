// Package offsets holds the checkpoint model of cdcd: the opaque, totally ordered
// Position a source hands out, the Store that persists the last durable position of
// a pipeline under a fencing epoch, and the Tracker that turns out-of-order batch
// completions into the highest contiguous durable position.
//
// Invariants:
//   - Positions of one pipeline compare with bytes.Compare. Sources build them with
//     the order-preserving tuple encoding of this package (AppendUint, AppendString),
//     so the engine, stores and tracker order them without knowing the
//     source. A source's own Decode recovers the typed fields.
//   - A Store never moves a pipeline's position backwards, and accepts a commit only
//     from the holder of the pipeline's current epoch (DESIGN.md §4, invariant 4).
//
// Concurrency: Position is an immutable value. Store implementations are safe for
// concurrent use. Tracker is safe for concurrent use: Begin, Done and Resolve may be
// called from different goroutines.
//
// This package imports nothing of cdcd's; every other package may import it.
package offsets
